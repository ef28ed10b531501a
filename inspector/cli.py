"""The `ckpt-size` command line: thin click commands over the library (inspector/api.py). Runtime options come
from the runtime registry as data; errors become one `Error:` line with the exit code of the error table."""
from __future__ import annotations

import gc
import importlib
import os
import sys
from typing import Any

import click

from .errors import exit_code_of
from .memory.budget import parse_budget
from .options import OptionSpec
from .report import FORMATS, TEXT_FORMATS, VIEWS
from .runtimes import runtime_specs


class _Lazy:
    """A module imported on first use: `--help` and shell completion never load the library behind the commands."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


api = _Lazy("inspector.api")
report = _Lazy("inspector.report")
requests = _Lazy("inspector.requests")

PLAN, TRAIN = "Plan", "Training"


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("CKPT_SIZE_DEBUG") == "1"


def _warn(warnings: tuple[str, ...], notes: tuple[str, ...] = ()) -> None:
    for w in warnings:
        click.echo(f"Warning: {report.safe(w)}", err=True)
    for n in notes:
        click.echo(f"Note: {report.safe(n)}", err=True)


def apply_options(options: list[Any], f: Any) -> Any:
    """Decorate `f` with click options so that they list in the given order."""
    for option in reversed(options):
        f = option(f)
    return f


# --- help in sections ----------------------------------------------------------------------------------------
class GroupedOption(click.Option):
    """An option that knows its help section."""

    def __init__(self, *args: Any, group: str = "Options", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = group


class GroupedCommand(click.Command):
    """`--help` lists options under their sections, in the order the sections first appear."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record is not None:
                sections.setdefault(getattr(param, "group", "Options"), []).append(record)
        for title, records in sections.items():
            with formatter.section(title):
                formatter.write_dl(records)


# --- shell completion (docs/cli.md): light, so completing never loads the library ----------------------------
def complete_files(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """SOURCE and FILE arguments: let the shell complete paths."""
    return [click.shell_completion.CompletionItem(incomplete, type="file")]


def complete_quants(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from .quant.ftypes import FTYPES  # only when completing --quant

    return [name for name in FTYPES if name.lower().startswith(incomplete.lower())]


def complete_budgets(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    devices = ["cpu=", *(f"cuda:{i}=" for i in range(8))]
    return [d for d in devices if d.startswith(incomplete)]


def opt(group: str, *args: Any, **kwargs: Any) -> Any:
    """click.option in a help section."""
    return click.option(*args, cls=GroupedOption, group=group, **kwargs)


# --- options as data -> click -------------------------------------------------------------------------------
_TYPES = {"int": int, "float": float, "str": str}


def click_option(spec: OptionSpec, group: str = "Options") -> Any:
    """A click option from a runtime's OptionSpec."""
    kwargs: dict[str, Any] = {"help": spec.help, "metavar": spec.metavar, "multiple": spec.multiple}
    if spec.kind == "flag":
        kwargs.update(is_flag=True, metavar=None)
    elif spec.kind == "choice":
        kwargs["type"] = click.Choice(list(spec.choices))
    elif spec.minimum is not None:
        kwargs["type"] = (click.IntRange if spec.kind == "int" else click.FloatRange)(min=spec.minimum)
    else:
        kwargs["type"] = _TYPES[spec.kind]
    if spec.default is not None:
        kwargs.update(default=spec.default, show_default=spec.show_default)
    return click.option(*spec.flags, spec.dest, cls=GroupedOption, group=group, **kwargs)


def runtime_option_specs(*, fit: bool) -> list[tuple[OptionSpec, str]]:
    """Every runtime's options once (an option several runtimes share is declared once), each with its help
    section: a runtime's own options under its title, shared ones under the runtimes that share them."""
    seen: dict[str, OptionSpec] = {}
    owners: dict[str, list[str]] = {}
    for runtime in runtime_specs():
        for spec in runtime.options:
            if (fit and spec.searched) or not spec.flags:  # no ckpt-size spelling: read from pasted commands only
                continue
            if spec.dest in seen and seen[spec.dest] != spec:
                raise RuntimeError(f"runtime {runtime.name} redefines option {spec.name}")
            seen[spec.dest] = spec
            owners.setdefault(spec.dest, []).append(runtime.title)
    own = [(s, f"{owners[d][0]} options") for d, s in seen.items() if not s.shared]
    shared = [(s, f"Context and memory ({', '.join(owners[d])})") for d, s in seen.items() if s.shared]
    return own + shared


def given_values(specs: list[tuple[OptionSpec, str]]) -> dict[str, Any]:
    """The runtime option values typed on the command line (defaults are the runtime's business)."""
    ctx = click.get_current_context()
    return {s.dest: ctx.params[s.dest] for s, _ in specs
            if ctx.get_parameter_source(s.dest) not in (click.core.ParameterSource.DEFAULT, None)}


def runtime_options(specs: list[tuple[OptionSpec, str]]) -> Any:
    return lambda f: apply_options([click_option(s, group) for s, group in specs], f)


OUTPUT = "Output"


def format_option(f: Any, formats: tuple[str, ...] = FORMATS) -> Any:
    pictures = ("; html (one self-contained page) and svg draw the bytes per device (docs/pictures.md)"
                if "svg" in formats else "")
    return opt(OUTPUT, "--format", "fmt", type=click.Choice(formats), default="table", show_default=True,
               help=f"Output format; json and csv carry exact byte counts{pictures}.")(f)


def text_format_option(f: Any) -> Any:
    """`validate` answers with findings, not a plan to draw: no html or svg."""
    return format_option(f, TEXT_FORMATS)


def debug_option(f: Any) -> Any:
    return opt(OUTPUT, "--debug", is_flag=True, help="Show tracebacks for errors.")(f)


def common_output_options(f: Any) -> Any:
    f = debug_option(f)
    f = opt(OUTPUT, "--by", "view", type=click.Choice(VIEWS), default="role", show_default=True,
            help="Rows of the main table.")(f)
    return format_option(f)


# --quant-rules names (inspector/quant/rulesets.py; kept literal so that --help loads no library; a test checks them)
QUANT_RULE_NAMES = ("current", "legacy", "2026-10", "2026-07", "2025-08", "ik_llama")


def quant_options(f: Any) -> Any:
    """`--quant NAME` and llama-quantize's own overrides (docs/quantization.md)."""
    q = "Quantization (llama-quantize)"
    options = [
        opt(q, "--quant", "quant", metavar="NAME", shell_complete=complete_quants,
                     help="This model at NAME (Q4_K_M, IQ4_XS …): the files of that quant when SOURCE holds them, "
                          "else llama-quantize's prediction."),
        opt(q, "--quant-list", "quant_list", is_flag=True,
                     help="One row per common file type: predicted file size and bytes per device."),
        opt(q, "--quant-rules", "quant_rules", type=click.Choice(QUANT_RULE_NAMES), default="current",
                     show_default=True, help="Which llama-quantize: dated llama.cpp rule sets (current = 2026-10, "
                                             "legacy = 2025-08, most Hub files) or ik_llama.cpp's; "
                                             "docs/quantization.md."),
        opt(q, "--tensor-type", "tensor_type", multiple=True, metavar="REGEX=TYPE",
                     help="With --quant: llama-quantize --tensor-type. Without: a recipe line applied literally."),
        opt(q, "--tensor-type-file", "tensor_type_file", type=click.Path(dir_okay=False), metavar="FILE",
                     help="regex=type lines: llama-quantize's with --quant; else a recipe (first match wins, "
                          "ik_llama.cpp types allowed, # comments)."),
        opt(q, "--pure", is_flag=True, help="llama-quantize --pure: no mixture, the default type everywhere."),
        opt(q, "--output-tensor-type", "output_tensor_type", metavar="TYPE", help="Type of output.weight."),
        opt(q, "--token-embedding-type", "token_embedding_type", metavar="TYPE", help="Type of token_embd."),
        opt(q, "--imatrix", is_flag=True, help="Predict as if an importance matrix were given."),
        opt(q, "--allow-requantize/--no-allow-requantize", "allow_requantize", default=True,
                     show_default=True, help="Requantize tensors that are already quantized (llama-quantize's "
                                             "--allow-requantize; without it, llama-quantize refuses)."),
        opt(q, "--leave-output-tensor", "leave_output_tensor", is_flag=True,
                     help="llama-quantize --leave-output-tensor: output.weight keeps its input type."),
        opt(q, "--keep-split", "keep_split", is_flag=True,
                     help="llama-quantize --keep-split: one output file per input split, sized each."),
        opt(q, "--prune-layers", "prune_layers", metavar="L0,L1,…",
                     help="llama-quantize --prune-layers: remove these blocks (the rest are renumbered)."),
        opt(q, "--override-kv", "override_kv", multiple=True, metavar="KEY=TYPE:VALUE",
                     help="llama-quantize --override-kv (TYPE int, float, bool or str): header bytes, file type, "
                          "and the hyperparameters the rules read."),
    ]
    return apply_options(options, f)


def hub_options(f: Any) -> Any:
    """How to reach a Hub repo (docs/hub.md)."""
    options = [
        opt("Hugging Face Hub", "--revision", metavar="REV", help="Hub: branch, tag, commit or refs/pr/N."),
        opt("Hugging Face Hub", "--token", metavar="TOKEN", help="Hub token (default: HF_TOKEN or the stored login)."),
        opt("Hugging Face Hub", "--file", "file", metavar="PATH", help="Hub: the file or folder in the repo to inspect."),
        opt("Hugging Face Hub", "--verbose", "-v", is_flag=True, help="Say what reading the headers cost (requests, bytes)."),
    ]
    return apply_options(options, f)


def budget_option(f: Any) -> Any:
    return opt("Budgets", "--budget", "budget", multiple=True, metavar="DEV=SIZE", shell_complete=complete_budgets,
               help="Memory of a device (cuda:0=24GiB, cpu=512G; gpu, gpuN, cudaN and llama.cpp's CUDAN mean "
                    "cuda:N); exit 3 when something does not fit.")(f)


SPEED = "Activity and speed (docs/speed.md)"


def bandwidth_option(f: Any) -> Any:
    return opt(SPEED, "--bandwidth", "bandwidth", multiple=True, metavar="DEV=RATE[,..]",
               help="Peak memory bandwidth per device (cuda:0=3.35TB/s, cuda:0=H100-SXM, cpu=ddr5-4800x8): adds the "
                    "decode-speed upper bound; implies --activity.")(f)


def activity_options(f: Any) -> Any:
    options = [
        opt(SPEED, "--activity", is_flag=True, help="What one token touches: parameters and bytes per role and "
                                                    "device (top-k routed experts, one embedding row, the head)."),
        bandwidth_option,
        opt(SPEED, "--rules-of-thumb", "rules_of_thumb", is_flag=True,
            help="Set (weights + KV) x 1.2 and the KV-per-token formula beside the exact numbers; implies --activity."),
    ]
    return apply_options(options, f)


def activity_request(p: dict[str, Any]) -> Any:
    """The activity options a command line asks for (None: not asked)."""
    if not (p.get("activity") or p.get("bandwidth") or p.get("rules_of_thumb")):
        return None
    from .activity import ActivityOptions, parse_bandwidths

    return ActivityOptions(parse_bandwidths(p["bandwidth"]), bool(p.get("rules_of_thumb")))


def hub_settings(revision: str | None, token: str | None, file: str | None) -> Any:
    """Hub options, with a progress line on stderr when stderr is a terminal."""
    return api.HubOptions(revision, token, file, _progress_printer() if sys.stderr.isatty() else None)


def _progress_printer() -> Any:
    def show(done: int, total: int, nbytes: int) -> None:
        end = "\n" if done == total else "\r"
        click.echo(f"reading headers: {done}/{total} files, {nbytes:,} bytes", err=True, nl=False)
        click.echo(end, err=True, nl=False)

    return show


def _report_fetch(fetch: Any, verbose: bool) -> None:
    if verbose and fetch:
        click.echo(f"Fetched: {fetch['requests']} requests, {fetch['bytes']:,} bytes", err=True)


def _argv() -> tuple[str, ...]:
    ctx = click.get_current_context(silent=True)
    return tuple((ctx.find_root().obj or {}).get("argv", [])) if ctx else ()


def pasted() -> bool:
    """Whether the positional arguments are a pasted command line (they come after `--`)."""
    return "--" in _argv()


def positional(args: tuple[str, ...], *, fit: bool = False) -> Any:
    line = requests.command_line(args, pasted(), fit=fit)
    if line.warning:
        _warn((line.warning,))
    return line


def inspect_request(args: tuple[str, ...], p: dict[str, Any], specs: list[tuple[OptionSpec, str]]) -> Any:
    """The request a command line makes (values only; the request object checks them)."""
    line = positional(args)
    quant, given, recipe = requests.quant_request({**{k: p[k] for k in requests.QUANT_KEYS},
                                                   **({"quant": line.quant} if line.quant else {})})
    training = None
    if p["train"]:
        from .memory.train import TrainOptions

        training = TrainOptions(optimizer=p["optimizer"], micro_batch=p["micro_batch"], seq_len=p["seq_len"])
    return requests.InspectRequest(
        line.source, requests.merge_values(given_values(specs), line.values), p["runtime"] or line.runtime,
        p["placement_file"] or line.placement_file, p["gpus"], parse_budget(p["budget"]), quant if given else None,
        recipe, training, hub_settings(p["revision"], p["token"], p["file"]), line.argv or _argv(),
        None if given else quant)


def fit_request(args: tuple[str, ...], p: dict[str, Any], specs: list[tuple[OptionSpec, str]]) -> Any:
    line = positional(args, fit=True)
    runtime = line.runtime if line.runtime and not p["runtime_given"] else p["runtime"]
    return requests.FitRequest(line.source, parse_budget(p["budget"]),
                               requests.merge_values(given_values(specs), line.values),
                      runtime, p["quant"] or line.quant, hub_settings(p["revision"], p["token"], p["file"]),
                      p["emit_yaml"])


def build_cli() -> click.Group:
    """The command group, with every registered runtime's options (built anew when a runtime is registered)."""
    inspect_specs = runtime_option_specs(fit=False)
    fit_specs = runtime_option_specs(fit=True)
    names = [s.name for s in runtime_specs()]
    fit_names = [s.name for s in runtime_specs() if s.can_fit]

    @click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
    @click.version_option(package_name="ckpt-size")
    def cli() -> None:
        """How many bytes of a model land on each device, read from tensor headers only."""

    @cli.command(cls=GroupedCommand)
    @click.argument("source", nargs=-1, type=click.UNPROCESSED, metavar="SOURCE | -- COMMAND...",
                    shell_complete=complete_files)
    @common_output_options
    @opt(PLAN, "--runtime", type=click.Choice(names), help="Whose placement and memory to model (default: the "
                                                          "runtime whose options are given, else literal).")
    @opt(PLAN, "--placement", "placement_file", type=click.Path(dir_okay=False), metavar="FILE",
         help="A KTransformers optimize-rule YAML or a ckpt-size plan file (detected).")
    @opt(PLAN, "--gpus", type=click.IntRange(min=0), metavar="N",
         help="How many GPUs the machine has: plans using more are refused.")
    @runtime_options(inspect_specs)
    @budget_option
    @quant_options
    @hub_options
    @activity_options
    @opt(TRAIN, "--train", is_flag=True, help="Also show one device's training memory (weights, gradients, "
                                              "optimizer, activations; --optimizer, --micro-batch, --seq-len).")
    def inspect(source: tuple[str, ...], **p: Any) -> None:
        """Sizes of SOURCE by role, layer, dtype, device or tensor.

        SOURCE is a .gguf file (any shard of a split set loads the whole set), a .safetensors file, a
        model.safetensors.index.json, a directory holding one of those, or a Hugging Face repo (owner/name).
        After --, a runtime's own command line is read as that program would read it:
        `ckpt-size inspect -- llama-server -m model.gguf -ngl 99 -c 32768`.
        """
        request = api.opened(inspect_request(source, p, inspect_specs))  # SOURCE resolved (and listed) once
        found = None if request.quant else api.listing(request.source)
        if found is not None:  # a Hub repo of several quants and no selection: its rows, from the listing alone
            _warn(found.notes)
            click.echo(report.render_listing(found, fmt=p["fmt"]), nl=False)
            return _report_fetch(found.fetch, p["verbose"])
        if p["quant_list"]:
            checkpoint, rows = api.quant_list(request, activity=activity_request(p))
            _warn(checkpoint.warnings, api.quant_list_notes(rows))
            return click.echo(report.render_quant_list(checkpoint, rows, fmt=p["fmt"]), nl=False)
        result = api.run_inspect(request, activity_request(p))
        _warn(result.checkpoint.warnings, result.notes)
        click.echo(report.render(result, view=p["view"], fmt=p["fmt"]), nl=False)
        _report_fetch(result.checkpoint.fetch, p["verbose"])
        api.check_budget(result)

    @cli.command(cls=GroupedCommand)
    @click.argument("placement_file", type=click.Path(dir_okay=False))
    @click.argument("source", shell_complete=complete_files)
    @opt(PLAN, "--gpus", type=click.IntRange(min=0), metavar="N", help="Devices beyond cuda:N-1 are errors.")
    @text_format_option
    @debug_option
    @hub_options
    def validate(placement_file: str, source: str, gpus: int | None, fmt: str, debug: bool, revision: str | None,
                 token: str | None, file: str | None, verbose: bool) -> None:
        """Check PLACEMENT_FILE (KTransformers rules or a plan file) against SOURCE; exit 3 on errors."""
        checkpoint = api.load(source, hub=hub_settings(revision, token, file))
        _report_fetch(checkpoint.fetch, verbose)
        result = api.validate(placement_file, checkpoint, gpus=gpus)
        click.echo(report.render_validation(result, fmt=fmt), nl=False)
        api.check_findings(result, placement_file)

    @cli.command(cls=GroupedCommand)
    @click.argument("source", nargs=-1, type=click.UNPROCESSED, metavar="SOURCE | -- COMMAND...",
                    shell_complete=complete_files)
    @format_option
    @debug_option
    @opt(PLAN, "--runtime", type=click.Choice(fit_names), default="llamacpp", show_default=True,
         help="Whose plan to search for.")
    @opt(PLAN, "--emit-yaml", "emit_yaml", type=click.Path(dir_okay=False), metavar="FILE",
         help="Write the KTransformers rule file of the plan (implies --runtime ktransformers).")
    @budget_option
    @runtime_options(fit_specs)
    @opt("Quantization (llama-quantize)", "--quant", metavar="NAME", shell_complete=complete_quants,
         help="Fit this quant (selected or predicted, as with inspect).")
    @hub_options
    @bandwidth_option
    @opt(SPEED, "--rank", type=click.Choice(["size", "speed"]), default="size", show_default=True,
         help="Choose among quants: the largest that fits, or the highest decode-speed bound (needs --bandwidth).")
    def fit(source: tuple[str, ...], **p: Any) -> None:
        """The plan that keeps the most of SOURCE on GPUs within --budget; exit 3 when nothing fits.

        After --, a runtime's command line gives the model, the runtime and its settings:
        `ckpt-size fit --budget cuda:0=24GiB -- llama-server -m model.gguf -c 32768`.
        """
        p["runtime_given"] = click.get_current_context().get_parameter_source("runtime") not in (
            click.core.ParameterSource.DEFAULT, None)
        plan = api.run_fit(fit_request(source, p, fit_specs), activity_request(p), p["rank"])
        if plan.result is not None:
            _warn((), plan.result.notes)
        click.echo(report.render_fit(plan, fmt=p["fmt"]), nl=False)
        if p["emit_yaml"] and plan.result is not None:
            plan.result.write_artifact(p["emit_yaml"])
            click.echo(f"wrote {p['emit_yaml']}", err=True)
        api.check_fit(plan)

    return cli


cli = build_cli()


def main(argv: list[str] | None = None, *, group: click.Group | None = None) -> None:
    """Entry point: runs the click group and turns errors into one `Error:` line and the exit code of the error
    table (inspector/errors.py)."""
    args = sys.argv[1:] if argv is None else argv
    # A command's objects live to its end: the cyclic collector would only walk the 100k tensor records of a
    # large header again and again (a fifth of such a run). Reference counting still frees everything else; the
    # collector is on again when the command ends (main() also runs inside tests and other programs).
    collecting = gc.isenabled()
    gc.disable()
    try:
        _run(group or cli, args)
    finally:
        if collecting:
            gc.enable()


def _run(group: click.Group, args: list[str]) -> None:
    try:
        group.main(args=args, prog_name="ckpt-size", standalone_mode=False, obj={"argv": args})
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:  # usage errors: click prints usage and the message, exit 2
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - every error becomes one line; a bug says so (traceback with --debug)
        _fail(e, args)
    sys.exit(0)


def _fail(error: BaseException, args: list[str]) -> None:
    if _debug_requested(args):
        import traceback

        traceback.print_exception(error)
    code, message = exit_code_of(error)
    click.echo(f"Error: {report.safe(message)}", err=True)
    sys.exit(code)
