"""Memory budgets: `DEV=SIZE` parsing (sizes: inspector.units) and the per-device fits / does-not-fit verdict."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from ..devices import device_sort_key, parse_per_device
from ..units import parse_size

def parse_budget(values: Iterable[str]) -> dict[str, int]:
    """`["cuda:0=24GiB", "cpu=128G"]` → `{"cuda:0": 25769803776, "cpu": 137438953472}` (device names normalized)."""
    return parse_per_device(values, "--budget", parse_size, "DEV=SIZE", "--budget cuda:0=24GiB")


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
    unchecked = tuple(sorted((d for d in totals if d not in budgets and totals[d] > 0), key=device_sort_key))
    return BudgetVerdict(devices, unchecked)

