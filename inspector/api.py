"""The library entry points: `load` a checkpoint with roles, `inspect` it under a placement."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import SourceError, UsageError
from .formats import read_checkpoint
from .memory import MemoryOptions, TrainOptions, check_budgets, memory_plan_for, train_memory
from .memory.fit import FitResult, QuantChoice, best_quant
from .memory.fit import fit as fit_search
from .model import Checkpoint
from .placement import (
    LlamaCppFlags,
    ValidationResult,
    normalize_device,
    place_from_file,
    place_llamacpp,
    place_simple,
    validate_placement,
)
from .quant import COMMON_FTYPES, Prediction, QuantOptions, predict, resolve_ftype
from .convert import to_gguf_view
from .quant.recipe import apply_recipe
from .roles import RoleRules, assign_roles, load_rules
from .sources import HubListing, ResolvedSource, is_hub_ref, resolve_hub, resolve_local
from .sources.local import find_gguf_models
from .summary import Inspection, summarize


@dataclass(frozen=True)
class PlacementOptions:
    """How to place tensors: at most one of the literal plan, llama.cpp flags, or a placement file."""

    experts_on: str | None = None
    default_device: str = "cuda:0"
    llamacpp: LlamaCppFlags | None = None
    placement_file: str | None = None  # KTransformers optimize rules or our own plan file
    gpus: int | None = None

    def check(self) -> None:
        chosen = [name for name, given in (("--experts-on", bool(self.experts_on)),
                                           ("llama.cpp flags", self.llamacpp is not None and self.llamacpp.given),
                                           ("--placement", bool(self.placement_file))) if given]
        if len(chosen) > 1:
            raise UsageError(f"{' and '.join(chosen)} each make a plan; give only one")


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
    if checkpoint.format == "safetensors":
        view = to_gguf_view(checkpoint)
        return predict(view.checkpoint, options, header_estimate=view.header_estimate)
    return predict(checkpoint, options)


def quant_summary(prediction: Prediction) -> dict[str, Any]:
    """The JSON-ready facts of a prediction: which parts are exact and which are estimated."""
    return {
        "mode": "predicted",
        "ftype": prediction.ftype.name if prediction.ftype else prediction.options.ftype if prediction.options else None,
        "rules": prediction.options.rules if prediction.options else "current",
        "file_size": prediction.file_size,
        "header_bytes": prediction.header_bytes,
        "header_exact": prediction.header_exact,
        "data_bytes": prediction.data_bytes,
        "notes": list(prediction.notes),
    }


def place(checkpoint: Checkpoint, options: PlacementOptions) -> Inspection:
    """Assign devices under the chosen plan and sum everything up."""
    return _place(checkpoint, options)[0]


def _place(checkpoint: Checkpoint, options: PlacementOptions) -> tuple[Inspection, Any]:
    """The summary, and the placement object itself (the memory plan needs llama.cpp's layer devices)."""
    options.check()
    if options.placement_file:
        placed = place_from_file(checkpoint, options.placement_file, gpus=options.gpus)
        plan_line = f"{placed.kind} plan from {options.placement_file}"
        runtime = placed.checkpoint.with_(warnings=placed.checkpoint.warnings + placed.warnings)
        return summarize(runtime, plan_line, notes=placed.notes, source=checkpoint), placed
    if options.llamacpp is not None and options.llamacpp.given:
        plan = place_llamacpp(checkpoint, options.llamacpp)
        if options.gpus is not None and plan.n_gpus > options.gpus:
            raise UsageError(f"these llama.cpp flags use {plan.n_gpus} GPU(s) but --gpus is {options.gpus}",
                             hint="check -ts, -mg and the CUDAn buffers in -ot")
        return summarize(plan.checkpoint, plan.summary, flags_line=plan.flags_line, notes=plan.notes,
                         source=checkpoint), plan
    placed_ck = place_simple(checkpoint, experts_on=options.experts_on, default_device=options.default_device)
    _check_gpus({t.device for t in placed_ck.tensors if t.device}, options.gpus)
    default = normalize_device(options.default_device)
    notes: tuple[str, ...] = ()
    if options.experts_on:
        plan_line = f"literal plan: routed experts on {normalize_device(options.experts_on)}, everything else on {default}"
        if not any(t.role == "routed_experts" for t in checkpoint.tensors):
            notes = ("--experts-on: this model has no routed experts; everything is on " + default,)
    else:
        plan_line = f"literal plan: everything on {default}"
    return summarize(placed_ck, plan_line, notes=notes, source=checkpoint), placed_ck


def _check_gpus(devices: set[str], gpus: int | None) -> None:
    """Devices beyond `--gpus N` (cuda:N and up) are a usage error rather than a plan for a machine that is not."""
    beyond = sorted(d for d in devices if d.startswith("cuda:") and gpus is not None and int(d[5:]) >= gpus)
    if beyond:
        raise UsageError(f"{beyond[0]} is beyond --gpus {gpus}", hint="use cpu or cuda:0..cuda:N-1")


def add_memory(result: Inspection, placement: Any, memory: MemoryOptions | None,
               budgets: dict[str, int] | None) -> Inspection:
    """KV cache, state and buffers per device for a context, and the verdict against budgets."""
    if memory is None and not budgets:
        return result
    plan = memory_plan_for(placement, memory or MemoryOptions())
    extras = {**result.extras, "memory": plan}
    if budgets:
        extras["budget"] = check_budgets(plan, budgets)
    return replace(result, extras=extras, notes=result.notes + plan.notes)


def inspect(
    source: str | Checkpoint,
    *,
    experts_on: str | None = None,
    default_device: str = "cuda:0",
    quant: str | QuantOptions | None = None,
    llamacpp: LlamaCppFlags | None = None,
    placement_file: str | None = None,
    gpus: int | None = None,
    memory: MemoryOptions | None = None,
    budgets: dict[str, int] | None = None,
    train: TrainOptions | None = None,
    hub: HubOptions | None = None,
    recipe: tuple[tuple[str, str], ...] | None = None,
) -> Inspection:
    """Load (unless given a Checkpoint), apply `--quant`, and place it.

    Args:
        experts_on: the literal plan: routed experts on this device, the rest on `default_device`.
        llamacpp: llama.cpp offload flags; the plan llama.cpp itself would make.
        placement_file: a KTransformers optimize-rule YAML or our own plan file (docs/placement.md).
        memory: context settings; adds KV cache, state and buffers per device (docs/memory.md).
        budgets: device -> bytes; adds a fits / does not fit verdict per device.
        train: adds the training memory arithmetic (weights, gradients, optimizer, activations).
        hub: revision, token, file and progress for Hub refs.
        recipe: `regex=type` lines applied literally, first match wins (quant recipes; ik_llama.cpp types too).
        quant: "this model at NAME": files of that quant when the source holds them (a folder of quants, a
            file named so, a GGUF whose file type is NAME), else llama-quantize's prediction from the most
            precise tensors available. A QuantOptions carries llama-quantize's overrides.
    """
    options = QuantOptions(quant) if isinstance(quant, str) else quant
    placement = PlacementOptions(experts_on, default_device, llamacpp, placement_file, gpus)
    placement.check()
    if isinstance(source, Checkpoint):
        checkpoint, selected = source, False
    else:
        checkpoint, selected = _load(source, options.ftype if options else None, hub=hub)
    extras: dict[str, Any] = {}
    notes: tuple[str, ...] = ()
    if options is not None:
        if is_selection(checkpoint, options, named=selected):
            extras["quant"] = {"mode": "selected", "ftype": options.ftype}
        else:
            prediction = predict_quant(checkpoint, options)
            checkpoint, notes = prediction.checkpoint, prediction.notes
            extras["quant"] = quant_summary(prediction)
    if recipe:
        if options is not None:
            raise UsageError("--quant predicts llama-quantize (its --tensor-type overrides included); a recipe alone "
                             "is applied literally", hint="give either --quant or the recipe")
        view = to_gguf_view(checkpoint).checkpoint if checkpoint.format == "safetensors" else checkpoint
        checkpoint = apply_recipe(view, recipe)
        extras["recipe"] = {"lines": len(recipe)}
    if train is not None:
        extras["train"] = train_memory(checkpoint, train)
    result, placed = _place(checkpoint, placement)
    result = replace(result, extras={**result.extras, **extras}, notes=result.notes + notes)
    return add_memory(result, placed, memory, budgets)


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


def quant_list(source: str | Checkpoint, *, options: QuantOptions | None = None,
               placement: PlacementOptions = PlacementOptions(), ftypes: tuple[str, ...] = COMMON_FTYPES
               ) -> tuple[Checkpoint, list[QuantRow]]:
    """Every common file type predicted from the most precise tensors, placed as `placement` says."""
    placement.check()
    checkpoint = source if isinstance(source, Checkpoint) else load(source)
    rows = []
    for ftype in ftypes:
        prediction = predict_quant(checkpoint, replace(options or QuantOptions(ftype), ftype=ftype))
        placed = place(prediction.checkpoint, placement)
        rows.append(QuantRow(ftype, prediction.file_size, prediction.header_exact,
                             {g.key: g.bytes for g in placed.by_device}))
    return checkpoint, rows


def validate(placement_file: str, source: str | Checkpoint, *, gpus: int | None = None) -> ValidationResult:
    """Findings of a placement file against a checkpoint, and its per-device bytes when it can be applied."""
    checkpoint = source if isinstance(source, Checkpoint) else load(source)
    return validate_placement(placement_file, checkpoint, gpus=gpus)


@dataclass(frozen=True)
class FitReport:
    """`ckpt-size fit`: the chosen plan, and with several quants to choose from, how each one fared."""

    source: str
    result: FitResult | None  # None: no quant fits
    quant: str | None = None
    quants: tuple[QuantChoice, ...] = ()


def fit(source: str | Checkpoint, budgets: dict[str, int], *, memory: MemoryOptions | None = None,
        runtime: str = "llamacpp", quant: str | QuantOptions | None = None, hub: HubOptions | None = None
        ) -> FitReport:
    """The plan that keeps the most bytes on GPUs within `budgets`, with the largest context and parallelism.

    A folder or Hub repo holding several GGUF quants (and no `quant`) is a choice too: the best quant that fits.
    """
    options = memory or MemoryOptions()
    candidates = _quant_candidates(source, hub) if isinstance(source, str) and quant is None else {}
    if len(candidates) > 1:
        best, rows = best_quant(candidates, budgets, options, runtime=runtime)
        return FitReport(source, best.result if best else None, best.name if best else None, rows)
    if quant is not None:
        checkpoint = inspect(source, quant=quant, hub=hub).checkpoint
    else:
        checkpoint = source if isinstance(source, Checkpoint) else load(source, hub=hub)
    name = quant if isinstance(quant, str) else quant.ftype if quant else None
    return FitReport(checkpoint.source, fit_search(checkpoint, budgets, options, runtime=runtime), name)


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
