"""Device assignment. `simple` is the literal `--experts-on` plan; runtime-specific plans come with their runtimes."""
from __future__ import annotations

from .devices import normalize_device
from .simple import place_simple

__all__ = ["normalize_device", "place_simple"]
