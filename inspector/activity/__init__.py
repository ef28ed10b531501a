"""What one token touches and how fast decode can go, for any runtime's placement (docs/speed.md).

- `tokens`: parameters and bytes read per token, by device and role (top-k routed experts, one embedding row, the
  head), and the published "active parameter" conventions;
- `speed`: the cache one token reads and the memory-bandwidth bound on tokens/s along the layer order;
- `bandwidth`: `--bandwidth DEV=RATE` and the table of common GPUs and CPUs (rules/bandwidth.yaml);
- `thumb`: the rules of thumb, as comparison rows beside the exact numbers.
Runtime-neutral: it sees a placed checkpoint, hyperparameters and a memory report, never a runtime's flags.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Mapping

from ..model import Checkpoint
from .bandwidth import Bandwidth, bandwidth_table, parse_bandwidths, parse_rate, resolve_rate
from .speed import SpeedBound, kv_read_bytes, speed_bound
from .thumb import ThumbRow, formula_kv_per_token, thumb_rows
from .tokens import TokenActivity, token_activity


@dataclass(frozen=True)
class ActivityOptions:
    """`--activity`, `--bandwidth`, `--rules-of-thumb`."""

    bandwidths: Mapping[str, Bandwidth] = field(default_factory=dict)
    rules_of_thumb: bool = False


@dataclass(frozen=True)
class ActivityReport:
    tokens: TokenActivity
    ctx: int | None  # the context position of the "full context" cache read (None: no memory report)
    kv_read: Mapping[str, int] | None  # cache bytes one token reads at ctx, per device
    bounds: tuple[SpeedBound, ...] = ()  # empty cache, then full context
    thumbs: tuple[ThumbRow, ...] = ()
    notes: tuple[str, ...] = ()

    def read_by_device(self, *, full_context: bool) -> dict[str, int]:
        """Weight bytes read per token, plus the cache at `ctx` when `full_context`."""
        out = self.tokens.bytes_by_device()
        if full_context and self.kv_read:
            for device, n in self.kv_read.items():
                out[device] = out.get(device, 0) + n
        return out

    def as_dict(self) -> dict[str, Any]:
        doc = self.tokens.as_dict()
        doc["kv_read"] = {"ctx": self.ctx, "devices": dict(self.kv_read) if self.kv_read is not None else None}
        doc["speed_bound"] = [b.as_dict() for b in self.bounds]
        if self.thumbs:
            doc["rules_of_thumb"] = [t.as_dict() for t in self.thumbs]
        doc["notes"] = list(doc["notes"]) + list(self.notes)
        return doc


def activity_report(placed: Checkpoint, *, n_expert: int, n_expert_used: int, memory: Any = None,
                    ctx: int | None = None, read_fractions: Mapping[str, Fraction] | None = None,
                    options: ActivityOptions = ActivityOptions(), thumbs: tuple[ThumbRow, ...] = ()
                    ) -> ActivityReport:
    """Per-token activity of a placed checkpoint, the cache read at `ctx` (from the runtime's memory report) and,
    with bandwidths, the speed bound with an empty cache and at `ctx`."""
    tokens = token_activity(placed.tensors, n_expert=n_expert, n_expert_used=n_expert_used,
                            gguf=placed.format == "gguf", read_fractions=read_fractions)
    notes: list[str] = []
    kv = kv_read_bytes(memory, ctx) if memory is not None and ctx else None
    if memory is not None and kv is None:
        notes.append("this runtime's memory report does not say where its cache is read: cache reads left out")
    report = ActivityReport(tokens, ctx if kv is not None else None, kv, (), thumbs, tuple(notes))
    if options.bandwidths:
        bounds = [speed_bound(report.read_by_device(full_context=False), options.bandwidths, 0)]
        if kv is not None and ctx:
            bounds.append(speed_bound(report.read_by_device(full_context=True), options.bandwidths, ctx))
        report = ActivityReport(tokens, report.ctx, kv, tuple(bounds), thumbs, tuple(notes))
    return report


__all__ = ["ActivityOptions", "ActivityReport", "Bandwidth", "SpeedBound", "ThumbRow", "TokenActivity",
           "activity_report", "bandwidth_table", "formula_kv_per_token", "kv_read_bytes", "parse_bandwidths",
           "parse_rate", "resolve_rate", "speed_bound", "thumb_rows", "token_activity"]
