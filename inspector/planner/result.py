"""What `fit` answers: the chosen plan, its memory and verdict, how far it stretches, and the quants compared."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import UsageError
from ..memory.budget import BudgetVerdict
from ..runtimes.base import Limits, MemoryReport, Placement


@dataclass(frozen=True)
class FitResult:
    """The plan the search chose, its memory report and verdict, and the context / parallel limits under it.

    `command` is the runtime's flags line, ready to paste (placement and context options). `artifact` is a file
    the runtime writes on request (KTransformers: the rule YAML)."""

    runtime: str
    fits: bool
    placement: Placement
    memory: MemoryReport
    verdict: BudgetVerdict
    command: str
    limits: Limits
    ready: str = ""  # the runtime's whole command line (program, model, flags), ready to paste
    all_on_gpu: bool = False
    artifact: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    steps: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    activity: Any = None  # an ActivityReport when asked (--bandwidth): per-token bytes and the speed bound

    @property
    def summary(self) -> str:
        return self.placement.summary

    def write_artifact(self, path: str | Path) -> Path:
        if self.artifact is None:
            raise UsageError("--emit-yaml writes KTransformers rules", hint="use it with --runtime ktransformers")
        target = Path(path)
        target.write_text(self.artifact, encoding="utf-8")
        return target

    def as_dict(self) -> dict[str, object]:
        lim = self.limits
        return {
            "runtime": self.runtime, "fits": self.fits, "all_on_gpu": self.all_on_gpu, "flags": self.command,
            "command": self.ready,
            "placement": self.summary, "max_ctx": lim.max_ctx, "max_parallel": lim.max_parallel,
            "max_ctx_flags": lim.max_ctx_command, "max_parallel_flags": lim.max_parallel_command,
            "replanned_max_ctx": lim.replanned_max_ctx, "replanned_max_ctx_flags": lim.replanned_max_ctx_command,
            "replanned_max_parallel": lim.replanned_max_parallel,
            "replanned_max_parallel_flags": lim.replanned_max_parallel_command, "limits_note": lim.note,
            "limits_at": {"ctx": lim.ctx, "parallel": lim.parallel}, "max_ctx_cap": lim.ctx_cap,
            "max_parallel_cap": lim.parallel_cap,
            **dict(self.details), "verdict": self.verdict.as_dict(),
            "memory": self.memory.as_dict(), "steps": list(self.steps), "notes": list(self.notes),
            **({"activity": self.activity.as_dict()} if self.activity is not None else {}),
        }


@dataclass(frozen=True)
class QuantChoice:
    """One quant of several: its fit, its weight bytes, and whether it fits entirely on the GPUs."""

    name: str
    result: FitResult
    weight_bytes: int
    all_on_gpu: bool


@dataclass(frozen=True)
class FitReport:
    """`ckpt-size fit`: the chosen plan, and with several quants to choose from, how each one fared."""

    source: str
    result: FitResult | None  # None: no quant fits
    quant: str | None = None
    quants: tuple[QuantChoice, ...] = ()
