"""The library entry points: `load` a checkpoint with roles, `inspect` it under a placement."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CheckFailed, UsageError
from .formats import read_checkpoint
from .model import Checkpoint
from .options import QuantOptions
from .requests import FitRequest, InspectRequest, placement_file_runtime
from .roles import RoleRules, classify_names, load_rules, unmatched_warning
from .runtimes import get_runtime
from .sources import HubListing, HubOptions, RepoView, ResolvedSource, open_repo
from .summary import Inspection, QuantInfo, by_device, summarize

# Imported inside the functions that need them, so that a plain `inspect` loads neither the planner, nor the
# placement-file readers (yaml), nor the converter (gguf, numpy): docs/performance.md, "Local".
if TYPE_CHECKING:
    from .activity import ActivityOptions
    from .memory.train import TrainOptions
    from .placement import ValidationResult
    from .placement.findings import PlacedPlan
    from .planner import FitReport, FitResult
    from .quant import Prediction


def resolve(source: str | RepoView, *, quant: str | None = None,
            hub: HubOptions | None = None) -> ResolvedSource | HubListing:
    """Turn a SOURCE into the files of one model: a local path, or a Hub ref (`owner/repo[@rev][/path]`,
    `hf://…`); a Hub repo of several GGUF quants without a selection gives its listing instead."""
    repo = source if isinstance(source, RepoView) else open_repo(source, hub)
    found = repo.listing() if quant is None else None
    return found if found is not None else repo.select(quant)


def load(source: str | RepoView, *, quant: str | None = None, rules: RoleRules | str | None = None,
         hub: HubOptions | None = None) -> Checkpoint:
    """Read every header of SOURCE and give each tensor its role, layer and expert."""
    return _load(source, quant, rules, hub)[0]


def _load(source: str | RepoView, quant: str | None, rules: RoleRules | str | None = None,
          hub: HubOptions | None = None, *, model: str | None = None) -> tuple[Checkpoint, bool]:
    """The checkpoint, and whether its files already are the quant asked for (named so).

    SOURCE is opened once (`open_repo`), unless it is already a `RepoView`; `model` picks one of its `quants()`."""
    repo = source if isinstance(source, RepoView) else open_repo(source, hub)
    resolved = repo.select(quant, model=model)
    role_rules = rules if isinstance(rules, RoleRules) else load_rules(rules)
    # Roles are given as each tensor record is built: no second copy of every tensor (docs/performance.md)
    checkpoint = read_checkpoint(resolved, lambda names: classify_names(names, role_rules))
    warnings = checkpoint.warnings + resolved.notes + unmatched_warning(checkpoint.tensors)
    fetch = resolved.fetch_stats() if resolved.fetch_stats is not None else checkpoint.fetch
    return checkpoint.with_(warnings=warnings, fetch=fetch), resolved.quant_selected


def is_selection(checkpoint: Checkpoint, options: QuantOptions, *, named: bool) -> bool:
    """Whether `--quant` means these very files (read them) rather than a prediction.

    A GGUF is that quant when its `general.file_type` says so; without one, when the type llama.cpp's loader guesses
    from its most common tensor type is it, or when the files were chosen by that name and their most common tensor
    type is the quant's own (a Q3_K_S file guesses as Q3_K_M; a BF16 file is never "the F16 quant", whatever its
    name). Any llama-quantize override asks for a prediction whatever the files are.
    """
    from .quant import resolve_ftype
    from .quant.ftypes import guess_file_type, most_common_type

    if checkpoint.format != "gguf" or options != QuantOptions(options.ftype, rules=options.rules,
                                                               allow_requantize=options.allow_requantize):
        return False
    asked = resolve_ftype(options.ftype, options.rules)
    file_type = checkpoint.metadata.get("general.file_type")
    if isinstance(file_type, int) and not isinstance(file_type, bool):
        return file_type == asked.ftype
    types = [t.dtype for t in checkpoint.tensors]
    return guess_file_type(types).ftype == asked.ftype or (named and most_common_type(types) == asked.default_type)


def predict_quant(checkpoint: Checkpoint, options: QuantOptions) -> Prediction:
    """What llama-quantize would write; safetensors go through the converter's GGUF view first."""
    from .convert import to_gguf_view
    from .quant import predict

    if checkpoint.format == "safetensors":
        view = to_gguf_view(checkpoint)
        return predict(view.checkpoint, options, header_estimate=view.header_estimate)
    return predict(checkpoint, options)


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
        from .convert import to_gguf_view
        from .quant.recipe import apply_recipe

        view = to_gguf_view(checkpoint).checkpoint if checkpoint.format == "safetensors" else checkpoint
        return apply_recipe(view, request.recipe), None, ()
    return checkpoint, None, ()


def run_inspect(request: InspectRequest, activity: ActivityOptions | None = None) -> Inspection:
    """Load (unless given a Checkpoint), apply `--quant` or a recipe, place it with the chosen runtime, and add its
    memory and the budget verdict when asked; with `activity`, what one token touches and the speed bound."""
    runtime_name = request.check()
    runtime = get_runtime(runtime_name)
    options = runtime.options(request.runtime_values())
    if isinstance(request.source, Checkpoint):
        checkpoint, selected = request.source, False
    else:
        checkpoint, selected = _load(request.source, request.quant.ftype if request.quant else None, hub=request.hub)
    checkpoint, quant, quant_notes = _apply_quant(checkpoint, request, selected)
    train = None
    if request.train is not None:
        from .memory.train import train_memory

        train = train_memory(checkpoint, request.train)
    placement = runtime.place(checkpoint, options)
    memory = budget = None
    advice: tuple[str, ...] = ()
    if request.memory_asked or runtime.spec.always_memory:
        memory = runtime.memory(placement, options)
        budget = memory.check(request.budgets) if request.budgets else None
        if budget is not None and not budget.fits:
            from .planner.advice import inspect_advice

            advice = inspect_advice(runtime_name, checkpoint, placement, options, request.budgets, budget)
    notes = placement.notes + quant_notes + (memory.notes if memory is not None else ())
    recipe_lines = len(request.recipe) if request.recipe else None
    tokens = None
    if activity is not None:
        from .activity.assemble import plan_activity  # only when asked: it loads the hyperparameter reader

        tokens = plan_activity(placement, runtime, options, memory, activity, budgets=request.budgets)
    return summarize(placement.checkpoint, placement.summary, flags_line=placement.command, notes=notes,
                     source=checkpoint, runtime=runtime_name, quant=quant, recipe_lines=recipe_lines, memory=memory,
                     budget=budget, train=train, advice=advice, activity=tokens)


def inspect(source: str | Checkpoint | RepoView, *, runtime: str | None = None, placement_file: str | None = None,
            gpus: int | None = None, budgets: dict[str, int] | None = None, quant: str | QuantOptions | None = None,
            recipe: tuple[tuple[str, str], ...] | None = None, train: TrainOptions | None = None,
            hub: HubOptions | None = None, activity: ActivityOptions | None = None, **options: Any) -> Inspection:
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
        activity: per-token parameters and bytes, with bandwidths the decode-speed bound, with rules_of_thumb
            the shortcut rows (docs/speed.md); `Inspection.activity`.
    """
    request = InspectRequest(source, options, runtime, placement_file, gpus, budgets or {},
                             QuantOptions(quant) if isinstance(quant, str) else quant, recipe, train, hub)
    return run_inspect(request, activity)


def opened(request: InspectRequest) -> InspectRequest:
    """The request with its SOURCE opened (a RepoView: a Hub repo is listed once for the whole command)."""
    if isinstance(request.source, str):
        return replace(request, source=open_repo(request.source, request.hub))
    return request


def listing(source: str | RepoView, *, hub: HubOptions | None = None) -> HubListing | None:
    """The quants of a Hub repo holding several GGUF models (from its file listing alone), else None."""
    repo = source if isinstance(source, RepoView) else open_repo(source, hub)
    return repo.listing()


@dataclass(frozen=True)
class QuantRow:
    """One line of `--quant-list`: a file type's predicted file size and bytes per device."""

    ftype: str
    file_size: int
    header_exact: bool
    devices: dict[str, int]
    notes: tuple[str, ...] = ()  # what llama-quantize would warn about (imatrix needed, requantizing …)


def quant_list(request: InspectRequest, ftypes: tuple[str, ...] | None = None, *,
               activity: ActivityOptions | None = None) -> tuple[Checkpoint, list[QuantRow]]:
    """Every file type of `ftypes` (default: the common ones) predicted from the most precise tensors, placed as the
    request's runtime would."""
    if activity is not None:
        raise UsageError("--activity, --bandwidth and --rules-of-thumb go with one plan, not --quant-list",
                         hint="drop them, or use --quant NAME")
    if request.memory_asked or request.train is not None or request.quant is not None:
        raise UsageError("--quant-list shows file sizes and weights per device; --ctx, --budget, --train and "
                         "--quant go with one quant", hint="drop them, or use --quant NAME")
    if ftypes is None:
        from .quant import COMMON_FTYPES as ftypes
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
                             {g.key: g.bytes for g in summarize(placed.checkpoint, "").by_device},
                             tuple(prediction.notes)))
    return checkpoint, rows


QUANT_LIST_WARNINGS = (
    # (what a prediction note starts with, the warning llama-quantize prints for it; tools/quantize/quantize.cpp)
    ("llama-quantize writes this file only with an imatrix",
     "llama-quantize refuses these without --imatrix (IQ1/IQ2/IQ3_XXS types need an importance matrix)"),
    ("already-quantized tensors are requantized",
     "requantized from an already-quantized file (llama-quantize needs --allow-requantize and warns that "
     "quality suffers; quantize from the BF16/F16 file if you have it)"),
)


def quant_list_notes(rows: list[QuantRow]) -> tuple[str, ...]:
    """The warnings llama-quantize would print for the quants of a `--quant-list`, each once with its quants."""
    found: dict[str, list[str]] = {}
    for row in rows:
        for note in row.notes:
            for marker, warning in QUANT_LIST_WARNINGS:
                if marker in note and row.ftype not in found.setdefault(warning, []):
                    found[warning].append(row.ftype)
    return tuple(f"{', '.join(ftypes)}: {warning}" for warning, ftypes in found.items() if ftypes)


def _placement_reader(path: str) -> Any:
    from .placement import detect_placement_kind

    runtime = get_runtime(placement_file_runtime(detect_placement_kind(path)).name)
    return runtime.read_placement_file


def validate_placement(path: str | Path, checkpoint: Checkpoint, *, gpus: int | None = None) -> ValidationResult:
    """Every finding of a placement file (KTransformers rules or a plan file) against a checkpoint, and its
    placement when it can be made; the file's runtime reads it."""
    from .placement import read_placement

    return read_placement(path, checkpoint, _placement_reader(str(path)), gpus=gpus)


def place_from_file(checkpoint: Checkpoint, path: str | Path, *, gpus: int | None = None) -> PlacedPlan:
    """The checkpoint as a placement file places it (errors stop it; warnings and infos travel along)."""
    from .placement import require_placement

    return require_placement(validate_placement(path, checkpoint, gpus=gpus), path)


def validate(placement_file: str, source: str | Checkpoint, *, gpus: int | None = None,
             hub: HubOptions | None = None) -> ValidationResult:
    """Findings of a placement file against a checkpoint, and its per-device bytes when it can be applied."""
    checkpoint = source if isinstance(source, Checkpoint) else load(source, hub=hub)
    result = validate_placement(placement_file, checkpoint, gpus=gpus)
    return replace(result, devices=by_device(result.placed.checkpoint.tensors)) if result.placed else result


def run_fit(request: FitRequest, activity: ActivityOptions | None = None, rank: str = "size") -> FitReport:
    """The plan that keeps the most bytes on GPUs within the budgets, with the largest context and parallelism.

    A folder or Hub repo holding several GGUF quants (and no `quant`) is a choice too: the best quant that fits
    (`rank="size"`: the largest that fits all on GPUs, else the largest that fits; `rank="speed"`: of those that fit,
    the highest decode-speed bound, which needs `activity` with bandwidths). With `activity`, every plan carries its
    per-token activity and bound (`FitResult.activity`).
    """
    from .planner import FitReport, best_quant
    from .planner import fit as fit_plan

    if rank not in ("size", "speed"):
        raise UsageError(f"--rank {rank!r}: use size or speed")
    if rank == "speed" and not (activity and activity.bandwidths):
        raise UsageError("--rank speed ranks by the decode-speed bound", hint="give --bandwidth DEV=RATE[,..]")
    runtime_name = request.check()
    options = get_runtime(runtime_name).options(request.runtime_values())
    quant, hub = request.quant, request.hub
    repo = open_repo(request.source, hub) if isinstance(request.source, str) else request.source  # listed once
    candidates = _quant_candidates(repo) if isinstance(repo, RepoView) and quant is None else {}
    if len(candidates) > 1:
        best, rows = best_quant(candidates, request.budgets, runtime_name, options)
        if activity is not None:
            rows = tuple(replace(q, result=_with_activity(q.result, runtime_name, options, activity, request))
                         for q in rows)
            best = next((q for q in rows if best is not None and q.name == best.name), None)
            if rank == "speed":
                best = max((q for q in rows if q.result.fits), key=_speed_key, default=None)
        return FitReport(repo.source, best.result if best else None, best.name if best else None, rows)
    if quant is not None:
        checkpoint = inspect(repo, quant=quant).checkpoint
    else:
        checkpoint = repo if isinstance(repo, Checkpoint) else load(repo)
    name = quant if isinstance(quant, str) else quant.ftype if quant else None
    result = fit_plan(checkpoint, request.budgets, runtime_name, options)
    if activity is not None:
        result = _with_activity(result, runtime_name, options, activity, request)
    return FitReport(checkpoint.source, result, name)


def _with_activity(result: FitResult, runtime_name: str, options: Any, activity: ActivityOptions,
                   request: FitRequest) -> FitResult:
    """A fit plan with its per-token activity and speed bound (the placement and context the plan chose)."""
    runtime = get_runtime(runtime_name)
    from .activity.assemble import plan_activity

    report = plan_activity(result.placement, runtime, options, result.memory, activity, budgets=request.budgets)
    return replace(result, activity=report)


def _speed_key(choice: Any) -> tuple[float, int]:
    """A quant's decode-speed bound at full context (else with an empty cache), then its size."""
    bounds = choice.result.activity.bounds if choice.result.activity else ()
    return (bounds[-1].tokens_per_s if bounds else 0.0, choice.weight_bytes)


def fit(source: str | Checkpoint, budgets: dict[str, int], *, runtime: str = "llamacpp",
        quant: str | QuantOptions | None = None, hub: HubOptions | None = None, **options: Any) -> FitReport:
    """`ckpt-size fit` as a function: `options` are the runtime's (context, cache types …) by name."""
    return run_fit(FitRequest(source, budgets, options, runtime, quant, hub))


def _quant_candidates(repo: RepoView) -> dict[str, Checkpoint]:
    """Every GGUF model of a local folder or a Hub repo of quants, loaded (headers only), by name; the repo is not
    listed again, each quant's headers are read once.

    They must be quants of one model (at least one architecture); a folder of different models is not a choice
    of quants.
    """
    rows = [row for row in repo.choices() if row.complete]
    candidates = {row.name: _load(repo, None, model=row.name)[0] for row in rows} if len(rows) > 1 else {}
    models = {ck.architecture for ck in candidates.values()}
    if len(models) > 1:
        raise UsageError(f"{repo.source} holds different models, not quants of one ({', '.join(candidates)})",
                         hint="pass one model's file or folder, or --quant NAME")
    return candidates


def check_budget(result: Inspection) -> None:
    """Raise CheckFailed (exit 3) when the inspection's plan is over a budget."""
    verdict = result.budget
    if verdict is not None and not verdict.fits:
        from .planner.advice import over_lines

        over = ", ".join(f"{d.device} by {d.over_by:,} bytes" for d in verdict.devices if not d.fits)
        raise CheckFailed(f"does not fit: {over}", hint="; ".join(result.advice[len(over_lines(verdict)):]) or None)


def check_findings(result: ValidationResult, placement_file: str) -> None:
    """Raise CheckFailed (exit 3) when a placement file has error-level findings."""
    if result.has_errors:
        raise CheckFailed(f"{placement_file}: {sum(f.severity == 'error' for f in result.findings)} error(s)")


def check_fit(report: FitReport) -> None:
    """Raise CheckFailed (exit 3) when no plan fits the budgets."""
    from .planner.advice import fit_advice

    if report.result is None or not report.result.fits:
        result = report.result
        advice = fit_advice(result.verdict if result else None, result.runtime if result else None)
        raise CheckFailed("the model does not fit these budgets: " + "; ".join(advice))
