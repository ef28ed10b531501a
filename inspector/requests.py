"""Request objects: what a command asks for, validated in one place before any work (the click layer only
collects values). Choosing the runtime from the options given is here too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import UsageError
from .model import Checkpoint
from .options import QuantOptions
from .runtimes import get_spec, runtime_specs
from .runtimes.base import RuntimeSpec

# values every runtime receives besides its own options
META_KEYS = ("argv", "gpus", "budgets", "placement_file")
# the training runtime's options that `--train` (one device, any runtime) reads too: with --train they do not
# select the training runtime
TRAIN_KEYS = ("optimizer", "micro_batch", "seq_len")


def given_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values that were given (not None, False or empty)."""
    return {k: v for k, v in values.items() if v is not None and v is not False and v != () and k not in META_KEYS}


def _exclusive(spec: RuntimeSpec, given: Mapping[str, Any]) -> list[str]:
    """The runtime-selecting options of `spec` among those given (dests)."""
    return [o.dest for o in spec.options if not o.shared and o.dest in given]


def _plan_maker(spec: RuntimeSpec, dests: list[str]) -> str:
    """How a message names what makes a plan: the literal plan's flags by name, other runtimes' as '<title> flags'."""
    if spec.name == "literal":
        return " and ".join(o.name for o in spec.options if o.dest in dests)
    return f"{spec.title} flags"


def placement_file_runtime(kind: str) -> RuntimeSpec:
    """The runtime that reads placement files of this kind ("ktransformers", "plan")."""
    for spec in runtime_specs():
        if kind in spec.placement_file_kinds:
            return spec
    raise UsageError(f"no runtime reads {kind} placement files")


def choose_runtime(explicit: str | None, values: Mapping[str, Any], *, placement_kind: str | None = None,
                   default: str = "literal") -> str:
    """The runtime a command line asks for: `--runtime`, else the one whose own options were given (where several
    declare an option, the first in registry order), else the one that reads the --placement file, else `default`.

    Raises:
        UsageError: options of different runtimes (or options beside a placement file) together, an option the
            explicit runtime does not have, an unknown runtime.
    """
    given = given_options(values)
    specs = runtime_specs()
    unknown = [k for k in given if not any(k == o.dest for s in specs for o in s.options)]
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(sorted(unknown))}",
                         hint="runtime options are listed by `ckpt-size inspect --help`")
    makers = [(s, _exclusive(s, given)) for s in specs if _exclusive(s, given)]
    # a runtime whose given options an earlier one also declares (-ngl: llama.cpp and PowerInfer) is not named again
    makers = [(s, d) for i, (s, d) in enumerate(makers) if not any(set(d) <= set(e) for _, e in makers[:i])]
    covering = [s for s in specs if all(any(o.dest == k for o in s.options) for k in given)]
    if explicit is not None:
        spec = get_spec(explicit)
        missing = [k for k in given if not any(o.dest == k for o in spec.options)]
        if missing:
            flag = next(o.name for s in specs for o in s.options if o.dest == missing[0])
            owners = [s.name for s in specs if any(o.dest == missing[0] for o in s.options)]
            raise UsageError(f"{flag} is not a {spec.title} option",
                             hint=f"drop it, or use --runtime {' or '.join(owners)}")
        if placement_kind is not None and placement_kind not in spec.placement_file_kinds:
            raise UsageError(f"--placement gives a {placement_kind} file, which {spec.title} does not read")
        return spec.name
    if placement_kind is not None:
        if makers:
            names = [_plan_maker(s, d) for s, d in makers] + ["--placement"]
            raise UsageError(f"{' and '.join(names)} each make a plan; give only one")
        return placement_file_runtime(placement_kind).name
    if not makers:
        return default
    selecting = [s for s in covering if _exclusive(s, given)]
    if not selecting:
        names = list(dict.fromkeys(_plan_maker(s, d) for s, d in makers))
        raise UsageError(f"{' and '.join(names)} each make a plan; give only one")
    return selecting[0].name


@dataclass(frozen=True)
class InspectRequest:
    """`inspect`: one model, one plan.

    `values` are runtime option values by dest (`ngl`, `cpu_moe`, `experts_on`, `ctx` …, only those given);
    `quant` is llama-quantize's options when `--quant` (or an override) was given.
    """

    source: Any  # a SOURCE string, a sources.RepoView (opened once) or a Checkpoint
    values: Mapping[str, Any] = field(default_factory=dict)
    runtime: str | None = None
    placement_file: str | None = None
    gpus: int | None = None
    budgets: Mapping[str, int] = field(default_factory=dict)
    quant: QuantOptions | None = None
    recipe: tuple[tuple[str, str], ...] | None = None
    train: Any = None  # TrainOptions
    hub: Any = None  # HubOptions
    argv: tuple[str, ...] = ()
    quant_overrides: QuantOptions | None = None  # llama-quantize options given without --quant (--quant-list)

    def check(self) -> str:
        """The runtime this request uses, after checking that its options make sense together."""
        extra = self.quant_overrides
        if extra is not None and extra != QuantOptions("COPY", rules=extra.rules):
            raise UsageError("llama-quantize options need --quant NAME (or --quant-list)")
        if self.recipe and self.quant is not None:
            raise UsageError("--quant predicts llama-quantize (its --tensor-type overrides included); a recipe alone "
                             "is applied literally", hint="give either --quant or the recipe")
        kind = None
        if self.placement_file:
            from .placement.files import detect_placement_kind

            kind = detect_placement_kind(self.placement_file)
        values = self.values if self.train is None else {k: v for k, v in self.values.items() if k not in TRAIN_KEYS}
        return choose_runtime(self.runtime, values, placement_kind=kind)

    def runtime_values(self) -> dict[str, Any]:
        """What the runtime's `options()` receives: the option values plus the command-wide ones."""
        return {**self.values, "argv": self.argv, "gpus": self.gpus, "budgets": dict(self.budgets),
                "placement_file": self.placement_file}

    @property
    def memory_asked(self) -> bool:
        """Whether runtime memory (KV cache, buffers) is part of the answer: a memory option or a budget given."""
        given = given_options(self.values)
        return bool(self.budgets) or any(o.memory and o.dest in given for s in runtime_specs() for o in s.options)


@dataclass(frozen=True)
class FitRequest:
    """`fit`: the plan that keeps the most on GPUs within the budgets."""

    source: Any  # a SOURCE string, a sources.RepoView (opened once) or a Checkpoint
    budgets: Mapping[str, int]
    values: Mapping[str, Any] = field(default_factory=dict)
    runtime: str = "llamacpp"
    quant: str | QuantOptions | None = None
    hub: Any = None
    emit: str | None = None  # --emit-yaml FILE

    def check(self) -> str:
        if not self.budgets:
            raise UsageError("fit needs at least one --budget DEV=SIZE")
        runtime = "ktransformers" if self.emit else self.runtime
        spec = get_spec(runtime)
        if not spec.can_fit:
            raise UsageError(f"{spec.title} has no fit search", hint="use --runtime llamacpp or ktransformers")
        return choose_runtime(runtime, self.values)

    def runtime_values(self) -> dict[str, Any]:
        """The runtime's values; `placement_file` is where --emit-yaml writes the rule file (its command names it)."""
        return {**self.values, "budgets": dict(self.budgets), "placement_file": self.emit}


def is_checkpoint(source: Any) -> bool:
    return isinstance(source, Checkpoint)


QUANT_KEYS = ("quant", "quant_rules", "tensor_type", "tensor_type_file", "pure", "output_tensor_type",
              "token_embedding_type", "imatrix", "allow_requantize", "leave_output_tensor", "keep_split",
              "prune_layers", "override_kv")


def quant_request(values: Mapping[str, Any]) -> tuple[QuantOptions, bool, tuple[tuple[str, str], ...] | None]:
    """`--quant` and llama-quantize's overrides as QuantOptions (file type COPY without --quant), whether --quant
    was given, and, without --quant, the `--tensor-type` / `--tensor-type-file` lines as a recipe applied
    literally (ik_llama.cpp types allowed).

    Raises:
        UsageError: bad `regex=type` lines.
    """
    v = {k: values.get(k) for k in QUANT_KEYS}
    if not any(v[k] for k in QUANT_KEYS if k not in ("quant_rules", "allow_requantize")):
        # no quant option at all (most commands): no quant module to load (docs/performance.md, "Local")
        allow = True if v["allow_requantize"] is None else v["allow_requantize"]
        return QuantOptions("COPY", rules=v["quant_rules"] or "current", allow_requantize=allow), False, None
    from .quant import parse_tensor_type, parse_tensor_type_file
    from .quant.layout import parse_override_kv, parse_prune_layers
    from .quant.recipe import parse_recipe, parse_recipe_items

    if v["quant"] is None and (v["tensor_type"] or v["tensor_type_file"]):
        recipe = parse_recipe_items(tuple(v["tensor_type"] or ()))
        if v["tensor_type_file"]:
            recipe += parse_recipe(v["tensor_type_file"])
        v.update(tensor_type=(), tensor_type_file=None)
    else:
        recipe = None
    type_of = None
    if v["quant_rules"] == "ik_llama":  # ik_llama.cpp's quantizer takes its own types too
        from .quant.rules_ik import resolve_ik_type as type_of
    kw = {"type_of": type_of} if type_of else {}
    tensor_types = tuple(parse_tensor_type(x, **kw) for x in v["tensor_type"] or ())
    if v["tensor_type_file"]:
        tensor_types += parse_tensor_type_file(v["tensor_type_file"], **kw)
    options = QuantOptions(
        ftype=v["quant"] or "COPY", rules=v["quant_rules"] or "current", tensor_types=tensor_types,
        output_tensor_type=v["output_tensor_type"], token_embedding_type=v["token_embedding_type"],
        pure=bool(v["pure"]), imatrix=bool(v["imatrix"]),
        allow_requantize=True if v["allow_requantize"] is None else v["allow_requantize"],
        leave_output_tensor=bool(v["leave_output_tensor"]), keep_split=bool(v["keep_split"]),
        prune_layers=parse_prune_layers(v["prune_layers"]) if v["prune_layers"] else (),
        override_kv=tuple(parse_override_kv(x) for x in v["override_kv"] or ()))
    return options, v["quant"] is not None, recipe


@dataclass(frozen=True)
class CommandLine:
    """SOURCE, or a pasted command line after `--`, as the command's positional arguments give them."""

    source: str
    runtime: str | None = None  # the pasted program's runtime
    values: Mapping[str, Any] = field(default_factory=dict)  # the pasted options, by dest
    argv: tuple[str, ...] = ()
    quant: str | None = None  # `-hf owner/repo:QUANT`
    warning: str | None = None  # flags of the pasted command that were not used, in one line
    placement_file: str | None = None  # a rule file the pasted command names (KTransformers' --optimize_config_path)


def command_line(args: tuple[str, ...], pasted: bool, *, fit: bool = False) -> CommandLine:
    """What the positional arguments say: one SOURCE, or (after `--`) a runtime's command line, read as that program
    reads it (inspector/runtimes/argv.py). For `fit`, options the search chooses itself are dropped and named.

    Raises:
        UsageError: no SOURCE, several, a pasted command without a model, an unknown program.
    """
    if not pasted:
        if len(args) != 1:
            raise UsageError("give one SOURCE" if not args else f"one SOURCE, not {len(args)}: {' '.join(args)}",
                             hint="or paste a runtime's command line after --, e.g. -- llama-server -m M.gguf -ngl 99")
        return CommandLine(args[0])
    from .runtimes.argv import parse_command

    command = parse_command(args, runtime_specs())
    if command.model is None:
        raise UsageError(f"the pasted {command.program} command names no model",
                         hint="include its model argument (-m FILE, --model-path REPO, or the positional model)")
    values = dict(command.values)
    spec = get_spec(command.runtime)
    dropped = [o.name for o in spec.options if fit and o.searched and o.dest in values]
    for option in spec.options:
        if option.name in dropped:
            values.pop(option.dest)
    warning = command.warning()
    if dropped:
        warning = (warning + "; " if warning else f"{command.program}: ") + \
            f"{', '.join(dropped)} left to the fit search"
    placement = values.pop("placement_file", None)
    return CommandLine(command.model, command.runtime, values, command.argv, command.quant, warning, placement)


def merge_values(typed: Mapping[str, Any], pasted: Mapping[str, Any]) -> dict[str, Any]:
    """ckpt-size's own options and a pasted command's, refusing one option given both ways."""
    both = sorted(set(typed) & set(pasted))
    if both:
        raise UsageError(f"{', '.join(both)} given both before -- and in the pasted command", hint="give it once")
    return {**typed, **pasted}
