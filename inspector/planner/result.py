"""What `fit` answers: the chosen plan, its memory and verdict, how far it stretches, and the quants compared."""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import OutputError, UsageError
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
        """Write the runtime's file (--emit-yaml).

        Raises:
            UsageError: this runtime writes no file.
            OutputError: the file cannot be written (missing folder, a folder, no permission, disk full).
        """
        if self.artifact is None:
            raise UsageError("--emit-yaml writes KTransformers rules", hint="use it with --runtime ktransformers")
        return write_text(path, self.artifact)

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


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` (a file, or a device such as /dev/stdout); a file we created and could not finish
    is removed, so a disk-full error leaves no truncated file behind that looks like a result.

    Raises:
        OutputError: naming the file and why, with what to do.
    """
    target = Path(path)
    existed = os.path.lexists(target)
    try:
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        if not existed and target.is_file():
            target.unlink(missing_ok=True)
        raise _output_error(target, e) from None
    return target


def _output_error(target: Path, e: OSError) -> OutputError:
    if isinstance(e, FileNotFoundError):
        folder = target.parent
        return OutputError(f"cannot write {target}: the folder {folder} does not exist",
                           hint="create it first, or give a path in an existing folder")
    if isinstance(e, IsADirectoryError):
        return OutputError(f"cannot write {target}: it is a folder", hint="give a file path, e.g. "
                           f"{target / 'rules.yaml'}")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"cannot write {target}: {e.strerror}", hint="free some space or write elsewhere")
    return OutputError(f"cannot write {target}: {e.strerror or e}", hint="give a path you can write to")


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
