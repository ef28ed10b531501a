"""Memory budgets: `DEV=SIZE` parsing and the per-device fits / does-not-fit verdict.

Units: `B`; decimal `KB MB GB TB` (10^3 steps, as disk and network vendors use them); binary `KiB MiB GiB TiB`
(2^10 steps). A bare one-letter suffix `K M G T` (also `k m g t`) is **binary**, as in `dd bs=1G`, `docker -m 512g`
or GNU `sort -S`: `512G` = 512 GiB = 549,755,813,888 bytes. A plain number is bytes. Fractions are allowed
(`1.5GiB`) and rounded down to whole bytes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Iterable, Mapping

from ..errors import UsageError
from ..placement.devices import device_sort_key, normalize_device

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes of a size like `24GiB`, `80GB`, `512G`, `1.5TiB` or `1000000`."""
    m = _SIZE.match(text)
    if not m or m.group(2).lower() not in _UNITS:
        raise UsageError(f"bad size {text!r}", hint="write a number with B, KB/MB/GB/TB (decimal), "
                                                    "KiB/MiB/GiB/TiB or K/M/G/T (binary), e.g. 24GiB")
    try:
        value = Decimal(m.group(1)) * _UNITS[m.group(2).lower()]
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        raise UsageError(f"bad size {text!r}") from None
    return int(value)


def parse_budget(values: Iterable[str]) -> dict[str, int]:
    """`["cuda:0=24GiB", "cpu=128G"]` → `{"cuda:0": 25769803776, "cpu": 137438953472}` (device names normalized)."""
    budgets: dict[str, int] = {}
    for value in values:
        device, sep, size = value.partition("=")
        if not sep or not device.strip() or not size.strip():
            raise UsageError(f"--budget {value!r}: expected DEV=SIZE", hint="e.g. --budget cuda:0=24GiB")
        dev = normalize_device(device)
        if dev in budgets:
            raise UsageError(f"--budget names {dev} twice")
        budgets[dev] = parse_size(size)
    return dict(sorted(budgets.items(), key=lambda kv: device_sort_key(kv[0])))


@dataclass(frozen=True)
class DeviceVerdict:
    device: str
    budget: int
    total: int

    @property
    def fits(self) -> bool:
        return self.total <= self.budget

    @property
    def over_by(self) -> int:
        """Bytes past the budget (0 when it fits)."""
        return max(0, self.total - self.budget)

    @property
    def headroom(self) -> int:
        """Bytes left under the budget (0 when it does not fit)."""
        return max(0, self.budget - self.total)


@dataclass(frozen=True)
class BudgetVerdict:
    devices: tuple[DeviceVerdict, ...]
    unchecked: tuple[str, ...]  # devices the plan uses that no budget names (unlimited)

    @property
    def fits(self) -> bool:
        return all(d.fits for d in self.devices)

    @property
    def exit_code(self) -> int:
        """0 when everything fits, 3 (the check said no) otherwise."""
        return 0 if self.fits else 3

    def as_dict(self) -> dict[str, object]:
        return {
            "fits": self.fits,
            "devices": {d.device: {"budget": d.budget, "total": d.total, "fits": d.fits, "over_by": d.over_by,
                                   "headroom": d.headroom} for d in self.devices},
            "unchecked": list(self.unchecked),
        }


def check_totals(totals: Mapping[str, int], budgets: Mapping[str, int]) -> BudgetVerdict:
    devices = tuple(DeviceVerdict(dev, budget, totals.get(dev, 0)) for dev, budget in budgets.items())
    unchecked = tuple(sorted((d for d in totals if d not in budgets and totals[d] > 0), key=_sort_key))
    return BudgetVerdict(devices, unchecked)


def _sort_key(device: str) -> tuple[int, int]:
    try:
        return device_sort_key(device)
    except (ValueError, IndexError):
        return (2, 0)

