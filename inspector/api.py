"""The library entry points: `load` a checkpoint with roles, `inspect` it under a placement."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import SourceError, UsageError
from .formats import read_checkpoint
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
from .quant.convert import to_gguf_view
from .roles import RoleRules, assign_roles, load_rules
from .sources import ResolvedSource, resolve_local
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


def resolve(source: str, *, quant: str | None = None) -> ResolvedSource:
    """Turn a SOURCE string into the files of one model (local paths; Hub refs arrive with the Hub sources)."""
    if Path(source).exists():
        return resolve_local(source, quant=quant)
    raise SourceError(f"{source}: no such file or directory", hint="pass a local .gguf, .safetensors, index or folder")


def load(source: str, *, quant: str | None = None, rules: RoleRules | str | None = None) -> Checkpoint:
    """Read every header of SOURCE and give each tensor its role, layer and expert."""
    return _load(source, quant, rules)[0]


def _load(source: str, quant: str | None, rules: RoleRules | str | None = None) -> tuple[Checkpoint, bool]:
    """The checkpoint, and whether its files already are the quant asked for (named so)."""
    resolved = resolve(source, quant=quant)
    checkpoint = read_checkpoint(resolved)
    if resolved.fetch_stats is not None:
        checkpoint = checkpoint.with_(fetch=resolved.fetch_stats())
    role_rules = rules if isinstance(rules, RoleRules) else load_rules(rules)
    return assign_roles(checkpoint, role_rules), resolved.quant_selected


def already_quant(checkpoint: Checkpoint, options: QuantOptions) -> bool:
    """A GGUF whose `general.file_type` is the file type asked for needs no prediction."""
    if checkpoint.format != "gguf" or checkpoint.metadata.get("ckpt_size.converter"):
        return False
    return checkpoint.metadata.get("general.file_type") == resolve_ftype(options.ftype, options.rules).ftype


def predict_quant(checkpoint: Checkpoint, options: QuantOptions) -> Prediction:
    """What llama-quantize would write; safetensors go through the converter's GGUF view first."""
    view = to_gguf_view(checkpoint) if checkpoint.format == "safetensors" else checkpoint
    return predict(view, options)


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
    options.check()
    if options.placement_file:
        placed = place_from_file(checkpoint, options.placement_file, gpus=options.gpus)
        return summarize(placed.checkpoint, f"{placed.kind} plan from {options.placement_file}", notes=placed.notes)
    if options.llamacpp is not None and options.llamacpp.given:
        plan = place_llamacpp(checkpoint, options.llamacpp)
        return summarize(plan.checkpoint, plan.summary, flags_line=plan.flags_line, notes=plan.notes)
    placed = place_simple(checkpoint, experts_on=options.experts_on, default_device=options.default_device)
    default = normalize_device(options.default_device)
    if options.experts_on:
        plan_line = f"literal plan: routed experts on {normalize_device(options.experts_on)}, everything else on {default}"
    else:
        plan_line = f"literal plan: everything on {default}"
    return summarize(placed, plan_line)


def inspect(
    source: str | Checkpoint,
    *,
    experts_on: str | None = None,
    default_device: str = "cuda:0",
    quant: str | QuantOptions | None = None,
    llamacpp: LlamaCppFlags | None = None,
    placement_file: str | None = None,
    gpus: int | None = None,
) -> Inspection:
    """Load (unless given a Checkpoint), apply `--quant`, and place it.

    Args:
        experts_on: the literal plan: routed experts on this device, the rest on `default_device`.
        llamacpp: llama.cpp offload flags; the plan llama.cpp itself would make.
        placement_file: a KTransformers optimize-rule YAML or our own plan file (docs/placement.md).
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
        checkpoint, selected = _load(source, options.ftype if options else None)
    if options is None:
        return place(checkpoint, placement)
    if selected or already_quant(checkpoint, options):
        result = place(checkpoint, placement)
        return replace(result, extras={"quant": {"mode": "selected", "ftype": options.ftype}})
    prediction = predict_quant(checkpoint, options)
    result = place(prediction.checkpoint, placement)
    return replace(result, extras={"quant": quant_summary(prediction)}, notes=result.notes + prediction.notes)


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
