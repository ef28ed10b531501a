"""The library entry points: `load` a checkpoint with roles, `inspect` it under a placement."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import CheckFailed, SourceError, UsageError
from .fit import FitReport, best_quant
from .fit import fit as fit_plan
from .formats import read_checkpoint
from .memory.train import TrainOptions, train_memory
from .model import Checkpoint
from .placement import ValidationResult, detect_placement_kind, read_placement, require_placement
from .placement.findings import PlacedPlan
from .quant import COMMON_FTYPES, Prediction, QuantOptions, predict, resolve_ftype
from .quant.convert import to_gguf_view
from .quant.recipe import apply_recipe
from .requests import FitRequest, InspectRequest, placement_file_runtime
from .roles import RoleRules, assign_roles, load_rules
from .runtimes import get_runtime
from .sources import HubListing, ResolvedSource, is_hub_ref, resolve_hub, resolve_local
from .sources.local import find_gguf_models
from .summary import Inspection, QuantInfo, by_device, summarize


@dataclass(frozen=True)
class HubOptions:
    """How to reach a Hub repo: `--revision`, `--token` (else HF_TOKEN or the stored login), `--file`, progress."""

    revision: str | None = None
    token: str | None = None
    file: str | None = None
    progress: Any = None  # progress(files_done, files_total, bytes_read), called from worker threads


def resolve(source: str, *, quant: str | None = None, hub: HubOptions | None = None) -> ResolvedSource | HubListing:
    """Turn a SOURCE string into the files of one model: a local path, or a Hub ref (`owner/repo[@rev][/path]`,
    `hf://…`); a Hub repo of several GGUF quants without a selection gives its listing instead."""
    hub = hub or HubOptions()
    if Path(source).exists():
        if hub.file or hub.revision:
            raise UsageError("--file and --revision are for Hub repos", hint=f"{source} is a local path")
        return resolve_local(source, quant=quant)
    if is_hub_ref(source):
        return resolve_hub(source, revision=hub.revision, token=hub.token, file=hub.file, quant=quant,
                           progress=hub.progress)
    raise SourceError(f"{source}: no such file or directory",
                      hint="pass a local .gguf, .safetensors, index or folder, or a Hub repo owner/name")


def load(source: str, *, quant: str | None = None, rules: RoleRules | str | None = None,
         hub: HubOptions | None = None) -> Checkpoint:
    """Read every header of SOURCE and give each tensor its role, layer and expert."""
    return _load(source, quant, rules, hub)[0]


def _load(source: str, quant: str | None, rules: RoleRules | str | None = None,
          hub: HubOptions | None = None) -> tuple[Checkpoint, bool]:
    """The checkpoint, and whether its files already are the quant asked for (named so)."""
    resolved = resolve(source, quant=quant, hub=hub)
    if isinstance(resolved, HubListing):
        names = ", ".join(r.name for r in resolved.rows[:6])
        raise UsageError(f"{resolved.description} holds {len(resolved.rows)} GGUF models ({names})",
                         hint="pick one with --quant NAME or --file PATH")
    checkpoint = read_checkpoint(resolved)
    if resolved.notes:
        checkpoint = checkpoint.with_(warnings=checkpoint.warnings + resolved.notes)
    if resolved.fetch_stats is not None:
        checkpoint = checkpoint.with_(fetch=resolved.fetch_stats())
    role_rules = rules if isinstance(rules, RoleRules) else load_rules(rules)
    return assign_roles(checkpoint, role_rules), resolved.quant_selected


def is_selection(checkpoint: Checkpoint, options: QuantOptions, *, named: bool) -> bool:
    """Whether `--quant` means these very files (read them) rather than a prediction.

    A GGUF is that quant when its `general.file_type` says so, or when it has no file type and its name says so.
    Any llama-quantize override asks for a prediction whatever the files are.
    """
    if checkpoint.format != "gguf" or options != QuantOptions(options.ftype, rules=options.rules,
                                                               allow_requantize=options.allow_requantize):
        return False
    file_type = checkpoint.metadata.get("general.file_type")
    if isinstance(file_type, int) and not isinstance(file_type, bool):
        return file_type == resolve_ftype(options.ftype, options.rules).ftype
    return named


def predict_quant(checkpoint: Checkpoint, options: QuantOptions) -> Prediction:
    """What llama-quantize would write; safetensors go through the converter's GGUF view first."""
    view = to_gguf_view(checkpoint) if checkpoint.format == "safetensors" else checkpoint
    return predict(view, options)


def quant_info(prediction: Prediction) -> QuantInfo:
    """The facts of a prediction: which parts are exact and which are estimated."""
    options = prediction.options
    return QuantInfo("predicted", prediction.ftype.name if prediction.ftype else options.ftype if options else None,
                     options.rules if options else "current", prediction.file_size, prediction.header_bytes,
                     prediction.header_exact, prediction.data_bytes, tuple(prediction.notes))


def _apply_quant(checkpoint: Checkpoint, request: InspectRequest, selected: bool
                 ) -> tuple[Checkpoint, QuantInfo | None, tuple[str, ...]]:
    """`--quant`: the files as they are when they are that quant, else llama-quantize's prediction; a recipe is
    applied literally."""
    options = request.quant
    if options is not None:
        if is_selection(checkpoint, options, named=selected):
            return checkpoint, QuantInfo("selected", options.ftype), ()
        prediction = predict_quant(checkpoint, options)
        return prediction.checkpoint, quant_info(prediction), tuple(prediction.notes)
    if request.recipe:
        view = to_gguf_view(checkpoint) if checkpoint.format == "safetensors" else checkpoint
        return apply_recipe(view, request.recipe), None, ()
    return checkpoint, None, ()


def run_inspect(request: InspectRequest) -> Inspection:
    """Load (unless given a Checkpoint), apply `--quant` or a recipe, place it with the chosen runtime, and add its
    memory and the budget verdict when asked."""
    runtime_name = request.check()
    runtime = get_runtime(runtime_name)
    options = runtime.options(request.runtime_values())
    if isinstance(request.source, Checkpoint):
        checkpoint, selected = request.source, False
    else:
        checkpoint, selected = _load(request.source, request.quant.ftype if request.quant else None, hub=request.hub)
    checkpoint, quant, quant_notes = _apply_quant(checkpoint, request, selected)
    train = train_memory(checkpoint, request.train) if request.train is not None else None
    placement = runtime.place(checkpoint, options)
    memory = budget = None
    if request.memory_asked or runtime.spec.always_memory:
        memory = runtime.memory(placement, options)
        budget = memory.check(request.budgets) if request.budgets else None
    notes = placement.notes + quant_notes + (memory.notes if memory is not None else ())
    recipe_lines = len(request.recipe) if request.recipe else None
    return summarize(placement.checkpoint, placement.summary, flags_line=placement.command, notes=notes,
                     source=checkpoint, runtime=runtime_name, quant=quant, recipe_lines=recipe_lines, memory=memory,
                     budget=budget, train=train)


def inspect(source: str | Checkpoint, *, runtime: str | None = None, placement_file: str | None = None,
            gpus: int | None = None, budgets: dict[str, int] | None = None, quant: str | QuantOptions | None = None,
            recipe: tuple[tuple[str, str], ...] | None = None, train: TrainOptions | None = None,
            hub: HubOptions | None = None, **options: Any) -> Inspection:
    """Load SOURCE (unless given a Checkpoint), apply `--quant`, and place it as a runtime would.

    Args:
        runtime: "literal", "llamacpp", "ktransformers" … (`inspector.runtimes.runtime_names()`); None picks the
            runtime whose options are given (literal when none).
        options: runtime options by name, as the command line's dests: `experts_on="cpu"`, `ngl="99"`,
            `cpu_moe=True`, `override_tensor=("REGEX=CUDA0",)`, `ctx=32768`, `parallel=4`, `cache_type_k="q8_0"` …
        placement_file: a KTransformers optimize-rule YAML or a ckpt-size plan file (docs/placement.md).
        budgets: device -> bytes; adds the runtime's memory and a fits / does not fit verdict per device.
        train: adds the training memory arithmetic (weights, gradients, optimizer, activations).
        hub: revision, token, file and progress for Hub refs.
        recipe: `regex=type` lines applied literally, first match wins (quant recipes; ik_llama.cpp types too).
        quant: "this model at NAME": files of that quant when the source holds them (a folder of quants, a
            file named so, a GGUF whose file type is NAME), else llama-quantize's prediction from the most
            precise tensors available. A QuantOptions carries llama-quantize's overrides.
    """
    request = InspectRequest(source, options, runtime, placement_file, gpus, budgets or {},
                             QuantOptions(quant) if isinstance(quant, str) else quant, recipe, train, hub)
    return run_inspect(request)


def listing(source: str, *, hub: HubOptions | None = None) -> HubListing | None:
    """The quants of a Hub repo holding several GGUF models (from its file listing alone), else None."""
    if Path(source).exists() or not is_hub_ref(source):
        return None
    resolved = resolve(source, hub=hub)
    return resolved if isinstance(resolved, HubListing) else None


@dataclass(frozen=True)
class QuantRow:
    """One line of `--quant-list`: a file type's predicted file size and bytes per device."""

    ftype: str
    file_size: int
    header_exact: bool
    devices: dict[str, int]


def quant_list(request: InspectRequest, ftypes: tuple[str, ...] = COMMON_FTYPES) -> tuple[Checkpoint, list[QuantRow]]:
    """Every common file type predicted from the most precise tensors, placed as the request's runtime would."""
    if request.memory_asked or request.train is not None or request.quant is not None:
        raise UsageError("--quant-list shows file sizes and weights per device; --ctx, --budget, --train and "
                         "--quant go with one quant", hint="drop them, or use --quant NAME")
    base = request.quant_overrides or QuantOptions("COPY")
    runtime = get_runtime(replace(request, quant_overrides=None).check())
    options = runtime.options(request.runtime_values())
    source = request.source
    checkpoint = source if isinstance(source, Checkpoint) else load(source, hub=request.hub)
    rows = []
    for ftype in ftypes:
        prediction = predict_quant(checkpoint, replace(base, ftype=ftype))
        placed = runtime.place(prediction.checkpoint, options)
        rows.append(QuantRow(ftype, prediction.file_size, prediction.header_exact,
                             {g.key: g.bytes for g in summarize(placed.checkpoint, "").by_device}))
    return checkpoint, rows


def _placement_reader(path: str) -> Any:
    runtime = get_runtime(placement_file_runtime(detect_placement_kind(path)).name)
    return runtime.read_placement_file


def validate_placement(path: str | Path, checkpoint: Checkpoint, *, gpus: int | None = None) -> ValidationResult:
    """Every finding of a placement file (KTransformers rules or a plan file) against a checkpoint, and its
    placement when it can be made; the file's runtime reads it."""
    return read_placement(path, checkpoint, _placement_reader(str(path)), gpus=gpus)


def place_from_file(checkpoint: Checkpoint, path: str | Path, *, gpus: int | None = None) -> PlacedPlan:
    """The checkpoint as a placement file places it (errors stop it; warnings and infos travel along)."""
    return require_placement(validate_placement(path, checkpoint, gpus=gpus), path)


def validate(placement_file: str, source: str | Checkpoint, *, gpus: int | None = None,
             hub: HubOptions | None = None) -> ValidationResult:
    """Findings of a placement file against a checkpoint, and its per-device bytes when it can be applied."""
    checkpoint = source if isinstance(source, Checkpoint) else load(source, hub=hub)
    result = validate_placement(placement_file, checkpoint, gpus=gpus)
    return replace(result, devices=by_device(result.placed.checkpoint.tensors)) if result.placed else result


def run_fit(request: FitRequest) -> FitReport:
    """The plan that keeps the most bytes on GPUs within the budgets, with the largest context and parallelism.

    A folder or Hub repo holding several GGUF quants (and no `quant`) is a choice too: the best quant that fits.
    """
    runtime_name = request.check()
    options = get_runtime(runtime_name).options(request.runtime_values())
    source, quant, hub = request.source, request.quant, request.hub
    candidates = _quant_candidates(source, hub) if isinstance(source, str) and quant is None else {}
    if len(candidates) > 1:
        best, rows = best_quant(candidates, request.budgets, runtime_name, options)
        return FitReport(source, best.result if best else None, best.name if best else None, rows)
    if quant is not None:
        checkpoint = inspect(source, quant=quant, hub=hub).checkpoint
    else:
        checkpoint = source if isinstance(source, Checkpoint) else load(source, hub=hub)
    name = quant if isinstance(quant, str) else quant.ftype if quant else None
    return FitReport(checkpoint.source, fit_plan(checkpoint, request.budgets, runtime_name, options), name)


def fit(source: str | Checkpoint, budgets: dict[str, int], *, runtime: str = "llamacpp",
        quant: str | QuantOptions | None = None, hub: HubOptions | None = None, **options: Any) -> FitReport:
    """`ckpt-size fit` as a function: `options` are the runtime's (context, cache types …) by name."""
    return run_fit(FitRequest(source, budgets, options, runtime, quant, hub))


def _quant_candidates(source: str, hub: HubOptions | None) -> dict[str, Checkpoint]:
    """Every GGUF model of a local folder or a Hub repo of quants, loaded (headers only), by name.

    They must be quants of one model (at least one architecture); a folder of different models is not a choice
    of quants.
    """
    if Path(source).is_dir():
        candidates = {m.name: load(str(m.paths[0])) for m in find_gguf_models(Path(source))}
    else:
        found = listing(source, hub=hub)
        base = hub or HubOptions()
        candidates = {row.name: load(source, hub=replace(base, file=row.files[0]))
                      for row in (found.rows if found else ()) if row.complete}
    models = {ck.architecture for ck in candidates.values()}
    if len(models) > 1:
        raise UsageError(f"{source} holds different models, not quants of one ({', '.join(candidates)})",
                         hint="pass one model's file or folder, or --quant NAME")
    return candidates


def check_budget(result: Inspection) -> None:
    """Raise CheckFailed (exit 3) when the inspection's plan is over a budget."""
    verdict = result.budget
    if verdict is not None and not verdict.fits:
        over = ", ".join(f"{d.device} by {d.over_by:,} bytes" for d in verdict.devices if not d.fits)
        raise CheckFailed(f"does not fit: {over}")


def check_findings(result: ValidationResult, placement_file: str) -> None:
    """Raise CheckFailed (exit 3) when a placement file has error-level findings."""
    if result.has_errors:
        raise CheckFailed(f"{placement_file}: {sum(f.severity == 'error' for f in result.findings)} error(s)")


def check_fit(report: FitReport) -> None:
    """Raise CheckFailed (exit 3) when no plan fits the budgets."""
    if report.result is None or not report.result.fits:
        raise CheckFailed("the model does not fit these budgets")
