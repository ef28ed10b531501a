"""The memory-bandwidth bound on decode speed, and the cache one token reads.

Batch-1 decode streams every weight it touches once per token (about one multiply-add per byte read), so a device
cannot finish its part of a token faster than the bytes it reads divided by its memory bandwidth. The layers run one
after another, so the parts add up along the layer order:

    t_token >= sum over devices of (weight bytes read + cache bytes read on the device) / bandwidth of the device
    tokens/s <= 1 / t_token

An upper bound, not a promise: it leaves out compute, kernel launches, transfers between devices and the fraction
of peak bandwidth a kernel really reaches (tuned GPU kernels 60-85%, CPU DRAM under STREAM 60-85% of peak).
Sources: docs/speed.md (vLLM issue #7379, llama.cpp PR #1642, Databricks' MBU definition).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping

from ..devices import device_sort_key
from ..errors import UsageError
from .bandwidth import Bandwidth


def kv_read_bytes(memory: Any, n_past: int) -> dict[str, int] | None:
    """Cache bytes one token reads at position n_past, per device, from a runtime's memory report: its own
    `kv_read_bytes(n_past)` (PowerInfer), else the ggml memory plan's per-layer caches (each full-attention layer
    reads min(n_past, its cells per sequence) cells; a sliding-window layer at most its window); None when the
    report says neither."""
    own = getattr(memory, "kv_read_bytes", None)
    if callable(own):
        return dict(own(n_past))
    layers = getattr(memory, "per_layer", None)
    context = getattr(memory, "context", None)
    if layers is None or context is None:
        return None
    out: dict[str, int] = {}
    for x in layers:
        if not x.cells or not x.kv_bytes:
            continue
        per_cell = Fraction(x.kv_bytes, x.cells)
        cells_per_sequence = x.cells // max(1, context.n_stream)
        out[x.device] = out.get(x.device, 0) + int(per_cell * min(n_past, cells_per_sequence))
    return out


@dataclass(frozen=True)
class DeviceTime:
    device: str
    bytes: int  # read per token (weights + cache)
    bandwidth: Bandwidth
    seconds: Fraction


@dataclass(frozen=True)
class SpeedBound:
    """tokens/s <= 1 / sum(bytes_d / bandwidth_d), at one context position."""

    n_past: int
    devices: tuple[DeviceTime, ...]

    @property
    def seconds_per_token(self) -> Fraction:
        return sum((d.seconds for d in self.devices), Fraction(0))

    @property
    def tokens_per_s(self) -> float:
        s = self.seconds_per_token
        return float(1 / s) if s else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_past": self.n_past, "tokens_per_s_max": round(self.tokens_per_s, 3),
            "ms_per_token_min": round(float(self.seconds_per_token) * 1000, 6),
            "devices": {d.device: {"bytes_per_token": d.bytes, "bandwidth": d.bandwidth.as_dict(),
                                   "ms": round(float(d.seconds) * 1000, 6)} for d in self.devices},
        }


def speed_bound(read: Mapping[str, int], bandwidths: Mapping[str, Bandwidth], n_past: int) -> SpeedBound:
    """The bound for bytes read per device (weights and cache) and the devices' bandwidths.

    Raises:
        UsageError: a device reads bytes but has no bandwidth.
    """
    missing = sorted((d for d, n in read.items() if n and d not in bandwidths), key=device_sort_key)
    if missing:
        raise UsageError(f"--bandwidth gives no rate for {', '.join(missing)}, which reads "
                         f"{sum(read[d] for d in missing):,} bytes per token",
                         hint=f"add {missing[0]}=RATE (e.g. {missing[0]}=80GB/s or a name from docs/speed.md)")
    devices = tuple(DeviceTime(d, n, bandwidths[d], Fraction(n, bandwidths[d].bytes_per_s))
                    for d, n in sorted(read.items(), key=lambda kv: device_sort_key(kv[0])) if n)
    return SpeedBound(n_past, devices)
