"""Device names: `cpu`, `cuda:0`, `cuda:1`, …; `gpu` means `cuda:0`; llama.cpp's `CPU`, `CUDA0` are accepted."""
from __future__ import annotations

import re
from typing import Callable, Iterable, TypeVar

from .errors import UsageError

V = TypeVar("V")

_CUDA = re.compile(r"^(?:cuda|gpu)(?::?(\d+))?$", re.IGNORECASE)


def normalize_device(name: str) -> str:
    """The canonical spelling of a device name, or a usage error naming the accepted forms."""
    text = name.strip()
    if text.lower() == "cpu":
        return "cpu"
    m = _CUDA.match(text)
    if m:
        return f"cuda:{int(m.group(1) or 0)}"
    raise UsageError(f"unknown device {name!r}", hint="use cpu, gpu, cuda:N (or llama.cpp's CPU, CUDAN)")


def device_sort_key(device: str) -> tuple[int, int]:
    """GPUs in index order first, then the CPU."""
    if device.startswith("cuda:"):
        return (0, int(device.split(":")[1]))
    return (1, 0) if device == "cpu" else (2, 0)


def parse_per_device(items: Iterable[str], option: str, parse_value: Callable[[str], V], expected: str,
                     example: str) -> dict[str, V]:
    """`DEV=VALUE` items (`--budget`, `--bandwidth`) -> {device: value} in device order; each device once.

    Raises:
        UsageError: not DEV=VALUE, an unknown device, a device named twice (and what `parse_value` raises).
    """
    out: dict[str, V] = {}
    for item in items:
        device, sep, value = item.partition("=")
        if not sep or not device.strip() or not value.strip():
            raise UsageError(f"{option} {item!r}: expected {expected}", hint=f"e.g. {example}")
        dev = normalize_device(device)
        if dev in out:
            raise UsageError(f"{option} names {dev} twice")
        out[dev] = parse_value(value)
    return dict(sorted(out.items(), key=lambda kv: device_sort_key(kv[0])))
