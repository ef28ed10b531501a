"""Sizes written by people: `24GiB`, `80GB`, `512G`, `1.5TiB`, `1000000` (bytes).

Units: `B`; decimal `KB MB GB TB PB` (10^3 steps, as disk and network vendors use them); binary
`KiB MiB GiB TiB PiB` (2^10 steps). A bare one-letter suffix `K M G T P` (also `k m g t p`) is **binary**, as in
`dd bs=1G`, `docker -m 512g` or GNU `sort -S`: `512G` = 512 GiB = 549,755,813,888 bytes. A plain number is bytes.
Fractions are allowed (`1.5GiB`) and rounded down to whole bytes. The one size parser: `--budget` and the
`budgets:` of plan files both use it.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .errors import UsageError

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes of a size like `24GiB`, `80GB`, `512G`, `1.5TiB` or `1000000`."""
    m = _SIZE.match(text)
    if not m or m.group(2).lower() not in _UNITS:
        raise UsageError(f"bad size {text!r}", hint="write a number with B, KB/MB/GB/TB/PB (decimal), "
                                                    "KiB/MiB/GiB/TiB/PiB or K/M/G/T/P (binary), e.g. 24GiB")
    try:
        value = Decimal(m.group(1)) * _UNITS[m.group(2).lower()]
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        raise UsageError(f"bad size {text!r}") from None
    return int(value)
