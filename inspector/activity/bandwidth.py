"""Memory bandwidths: `--bandwidth cuda:0=3.35TB/s,cpu=80GB/s`, or names from rules/bandwidth.yaml
(`cuda:0=H100-SXM`), or a DRAM configuration (`cpu=ddr5-4800x8`).

Rates: a number with B/s, KB/s, MB/s, GB/s, TB/s (decimal, as vendors state bandwidth) or KiB/s … TiB/s (binary).
A DRAM configuration `ddrN-RATExCH` (also `lpddrN-…`) is RATE MT/s x 8 bytes (one 64-bit channel) x CH channels.
Everything is kept in whole bytes per second.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Iterable, Mapping

import yaml

from ..datafiles import read_packaged
from ..devices import parse_per_device
from ..errors import RulesError, UsageError

_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]i?)?b(?:/s|ps)\s*$", re.IGNORECASE)
_PREFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15,
           "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "pi": 2**50}
_DRAM = re.compile(r"^(lp)?ddr(\d)x?-(\d+)x(\d+)$", re.IGNORECASE)
DRAM_CHANNEL_BYTES = 8  # a DDR channel (two 32-bit sub-channels on DDR5) moves 64 bits per transfer


@dataclass(frozen=True)
class Bandwidth:
    """A device's peak memory bandwidth and where the figure comes from."""

    bytes_per_s: int
    label: str  # what the user wrote or the table entry's name
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"bytes_per_s": self.bytes_per_s, "label": self.label, "source": self.source}


@dataclass(frozen=True)
class TableEntry:
    name: str
    aliases: tuple[str, ...]
    kind: str
    memory: str
    bytes_per_s: int
    source: str


def parse_rate(text: str) -> int:
    """`3.35TB/s` -> 3,350,000,000,000 bytes per second."""
    m = _RATE.match(text)
    if not m:
        raise UsageError(f"bad bandwidth {text!r}", hint="write e.g. 3.35TB/s, 80GB/s, 900GiB/s, a name from "
                                                          "docs/speed.md (H100-SXM) or a DRAM setup (ddr5-4800x8)")
    try:
        value = Decimal(m.group(1)) * _PREFIX[(m.group(2) or "").lower()]
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        raise UsageError(f"bad bandwidth {text!r}") from None
    if value <= 0:
        raise UsageError(f"bandwidth {text!r} must be positive")
    return int(value)


def dram_rate(text: str) -> int | None:
    """`ddr5-4800x8` -> 4800e6 x 8 x 8 = 307,200,000,000; None when `text` is not a DRAM configuration."""
    m = _DRAM.match(text.strip())
    if not m:
        return None
    rate, channels = int(m.group(3)), int(m.group(4))
    if rate <= 0 or channels <= 0:
        raise UsageError(f"{text!r}: transfer rate and channel count must be positive")
    return rate * 10**6 * DRAM_CHANNEL_BYTES * channels


def _entry_rate(raw: Mapping[str, Any], where: str) -> int:
    """An entry's bytes per second from gb_per_s, bus_bits x gbps_per_pin, or dram; they must agree."""
    found: list[tuple[str, int]] = []
    if "gb_per_s" in raw:
        found.append(("gb_per_s", int(Decimal(str(raw["gb_per_s"])) * 10**9)))
    if "bus_bits" in raw or "gbps_per_pin" in raw:
        found.append(("bus_bits x gbps_per_pin",
                      int(Decimal(str(raw["bus_bits"])) * Decimal(str(raw["gbps_per_pin"])) * 10**9 / 8)))
    if "dram" in raw:
        rate = dram_rate(str(raw["dram"]))
        if rate is None:
            raise RulesError(f"{where}: dram {raw['dram']!r} is not ddrN-RATExCHANNELS")
        found.append(("dram", rate))
    if not found:
        raise RulesError(f"{where}: give gb_per_s, bus_bits + gbps_per_pin, or dram")
    if len({v for _, v in found}) > 1:
        raise RulesError(f"{where}: {' and '.join(f'{k} ({v:,} B/s)' for k, v in found)} disagree")
    return found[0][1]


@lru_cache(maxsize=1)
def bandwidth_table() -> tuple[TableEntry, ...]:
    """The packaged table (rules/bandwidth.yaml), validated."""
    doc = yaml.safe_load(read_packaged("bandwidth.yaml"))
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("devices"), list):
        raise RulesError("rules/bandwidth.yaml: expected version: 1 and a devices list")
    entries, seen = [], set()
    for i, raw in enumerate(doc["devices"]):
        where = f"rules/bandwidth.yaml devices[{i}]"
        if not isinstance(raw, dict) or not raw.get("name") or not raw.get("source"):
            raise RulesError(f"{where}: every entry needs a name and a source")
        names = [str(raw["name"])] + [str(a) for a in raw.get("aliases") or ()]
        for name in names:
            if name.lower() in seen:
                raise RulesError(f"{where}: {name!r} is named twice")
            seen.add(name.lower())
        entries.append(TableEntry(names[0], tuple(names[1:]), str(raw.get("kind", "")), str(raw.get("memory", "")),
                                  _entry_rate(raw, where), str(raw["source"])))
    return tuple(entries)


def lookup(name: str) -> TableEntry | None:
    key = name.strip().lower()
    for entry in bandwidth_table():
        if key == entry.name.lower() or key in (a.lower() for a in entry.aliases):
            return entry
    return None


def resolve_rate(text: str) -> Bandwidth:
    """A rate, a table name or a DRAM configuration."""
    entry = lookup(text)
    if entry is not None:
        return Bandwidth(entry.bytes_per_s, entry.name, entry.source)
    dram = dram_rate(text)
    if dram is not None:
        return Bandwidth(dram, text.strip().lower(), "RATE MT/s x 8 B x channels")
    return Bandwidth(parse_rate(text), text.strip())


def parse_bandwidths(values: Iterable[str]) -> dict[str, Bandwidth]:
    """`["cuda:0=3.35TB/s,cpu=ddr5-4800x8"]` (commas or repeats) -> {device: Bandwidth}.

    Raises:
        UsageError: not DEV=RATE, an unknown device or rate, a device named twice.
    """
    items = [x.strip() for value in values for x in value.split(",") if x.strip()]
    return parse_per_device(items, "--bandwidth", resolve_rate, "DEV=RATE", "cuda:0=3.35TB/s,cpu=80GB/s")
