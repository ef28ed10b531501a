"""The per-device memory table every runtime reports: named parts (columns), integers per device.

A part is `exact` (from headers and the runtime's allocation formulas), an `estimate` (cannot be known before
running: compute buffers, activation peaks, CUDA graphs; each runtime documents its formula), or a `margin`
(the user's safety overhead). The report renders any table the same way; the JSON keeps every integer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..devices import device_sort_key
from .budget import BudgetVerdict, check_totals

PART_KINDS = ("exact", "estimate", "margin")


@dataclass(frozen=True)
class Part:
    key: str  # JSON key: "kv_cache"
    label: str  # table header: "kv cache"
    kind: str = "exact"
    in_total: bool = True  # counted in the device total (a "free" column is not)

    @property
    def header(self) -> str:
        return f"{self.label} (est.)" if self.kind == "estimate" else self.label


@dataclass(frozen=True)
class MemoryTable:
    """Rows per device (sorted GPUs first, then the CPU), one integer per part."""

    parts: tuple[Part, ...]
    rows: Mapping[str, Mapping[str, int]]
    title: str = ""

    def total(self, device: str) -> int:
        row = self.rows[device]
        return sum(row.get(p.key, 0) for p in self.parts if p.in_total)

    @property
    def totals(self) -> dict[str, int]:
        return {device: self.total(device) for device in self.devices}

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(sorted(self.rows, key=device_sort_key))

    def row_dict(self, device: str) -> dict[str, int]:
        """One device's parts and its total, for JSON and CSV."""
        row = self.rows[device]
        return {**{p.key: row.get(p.key, 0) for p in self.parts}, "total": self.total(device)}

    def check(self, budgets: Mapping[str, int]) -> BudgetVerdict:
        return check_totals(self.totals, budgets)
