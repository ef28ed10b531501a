"""The library entry points: `load` a checkpoint with roles, `inspect` it under a placement."""
from __future__ import annotations

from pathlib import Path

from .errors import SourceError
from .formats import read_checkpoint
from .model import Checkpoint
from .placement import normalize_device, place_simple
from .roles import RoleRules, assign_roles, load_rules
from .sources import ResolvedSource, resolve_local
from .summary import Inspection, summarize


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


def inspect(
    source: str | Checkpoint,
    *,
    experts_on: str | None = None,
    default_device: str = "cuda:0",
    quant: str | None = None,
) -> Inspection:
    """Load (unless given a Checkpoint) and place: routed experts on `experts_on`, the rest on `default_device`."""
    checkpoint = source if isinstance(source, Checkpoint) else load(source, quant=quant)
    placed = place_simple(checkpoint, experts_on=experts_on, default_device=default_device)
    default = normalize_device(default_device)
    if experts_on:
        plan = f"literal plan: routed experts on {normalize_device(experts_on)}, everything else on {default}"
    else:
        plan = f"literal plan: everything on {default}"
    return summarize(placed, plan)
