"""Device names: `cpu`, `cuda:0`, `cuda:1`, …; `gpu` means `cuda:0`; llama.cpp's `CPU`, `CUDA0` are accepted."""
from __future__ import annotations

import re

from .errors import UsageError

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
