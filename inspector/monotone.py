"""Bisection over monotone tests: the searches of every runtime (largest -ngl that fits, smallest --n-cpu-moe,
most Marlin layers) and the planner's context limits."""
from __future__ import annotations

from typing import Callable


def largest_fitting(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The largest x in [lo, hi] with ok(x), for ok monotone (true then false); lo - 1 when none."""
    if not ok(lo):
        return lo - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def smallest_fitting(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The smallest x in [lo, hi] with ok(x), for ok monotone (false then true); hi + 1 when none."""
    if not ok(hi):
        return hi + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
