"""The library entry points: `load` a checkpoint with roles, `inspect` it under a placement."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import SourceError, UsageError
from .formats import read_checkpoint
from .model import Checkpoint
from .placement import LlamaCppFlags, normalize_device, place_llamacpp, place_simple
from .roles import RoleRules, assign_roles, load_rules
from .sources import ResolvedSource, resolve_local
from .summary import Inspection, summarize


@dataclass(frozen=True)
class PlacementOptions:
    """How to place tensors: at most one of the literal plan, llama.cpp flags, or a placement file."""

    experts_on: str | None = None
    default_device: str = "cuda:0"
    llamacpp: LlamaCppFlags | None = None

    def check(self) -> None:
        if self.experts_on and self.llamacpp is not None and self.llamacpp.given:
            raise UsageError("--experts-on is the literal plan; llama.cpp flags make their own plan",
                             hint="use --cpu-moe (or -ot) instead of --experts-on with llama.cpp flags")


def resolve(source: str, *, quant: str | None = None) -> ResolvedSource:
    """Turn a SOURCE string into the files of one model (local paths; Hub refs arrive with the Hub sources)."""
    if Path(source).exists():
        return resolve_local(source, quant=quant)
    raise SourceError(f"{source}: no such file or directory", hint="pass a local .gguf, .safetensors, index or folder")


def load(source: str, *, quant: str | None = None, rules: RoleRules | str | None = None) -> Checkpoint:
    """Read every header of SOURCE and give each tensor its role, layer and expert."""
    resolved = resolve(source, quant=quant)
    checkpoint = read_checkpoint(resolved)
    if resolved.fetch_stats is not None:
        checkpoint = checkpoint.with_(fetch=resolved.fetch_stats())
    role_rules = rules if isinstance(rules, RoleRules) else load_rules(rules)
    return assign_roles(checkpoint, role_rules)


def place(checkpoint: Checkpoint, options: PlacementOptions) -> Inspection:
    """Assign devices under the chosen plan and sum everything up."""
    options.check()
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
    quant: str | None = None,
    llamacpp: LlamaCppFlags | None = None,
) -> Inspection:
    """Load (unless given a Checkpoint) and place it.

    Args:
        experts_on: the literal plan: routed experts on this device, the rest on `default_device`.
        llamacpp: llama.cpp offload flags; the plan llama.cpp itself would make (exclusive with `experts_on`).
        quant: in a folder of several GGUF quants, the one to read.
    """
    checkpoint = source if isinstance(source, Checkpoint) else load(source, quant=quant)
    return place(checkpoint, PlacementOptions(experts_on, default_device, llamacpp))
