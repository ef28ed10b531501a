"""What a placement file yields: the placed checkpoint (`PlacedPlan`) and what is wrong with it (`Finding`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..model import Checkpoint

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One problem (or remark) about a placement file, located at file:line:column.

    `code` is a stable kebab-case identifier (docs/placement.md lists them all); `fix` is one line saying
    what to change. `line`/`column` are 1-based; 0 when the finding concerns the file as a whole.
    """

    path: str
    line: int
    column: int
    severity: str  # "error" | "warning" | "info"
    code: str
    message: str
    fix: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    @property
    def location(self) -> str:
        if not self.line:
            return self.path
        return f"{self.path}:{self.line}:{self.column}" if self.column else f"{self.path}:{self.line}"

    def render(self) -> str:
        """`file:line:col: severity [code]: message (fix: …)`; one line."""
        return f"{self.location}: {self.severity} [{self.code}]: {self.message} (fix: {self.fix})"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)  # every field, in declaration order (the JSON keys docs/json.md lists)


@dataclass(frozen=True)
class PlacedPlan:
    """A checkpoint as a placement file puts it on devices.

    Every tensor has `device` set. Where the runtime keeps a tensor in another format than the file stores
    (KTransformers' Marlin re-quantization, bf16 dequantization), `dtype` and `nbytes` are the runtime ones;
    `params` stay the logical count. Tensors the runtime never loads are left out and named in `notes`.
    """

    checkpoint: Checkpoint
    kind: str  # "ktransformers" | "plan"
    notes: tuple[str, ...]
    warnings: tuple[str, ...] = ()  # warning-level findings, printed as warnings


@dataclass(frozen=True)
class ValidationResult:
    findings: tuple[Finding, ...]
    placed: PlacedPlan | None
    has_errors: bool
    devices: tuple[Any, ...] = ()  # the placed bytes per device (summary.Group), when placed


def sort_findings(findings: list[Finding]) -> tuple[Finding, ...]:
    """In file order; at one position, errors first."""
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return tuple(sorted(findings, key=lambda f: (f.line, f.column, order[f.severity], f.code)))
