"""The literal plan: routed experts on one device, everything else on another.

It is deliberately runtime-agnostic: llama.cpp, for one, keeps `token_embd` on the CPU whatever the flags,
which this plan does not model (docs/placement.md).
"""
from __future__ import annotations

from ...model import Checkpoint, with_devices
from ...devices import normalize_device


def place_simple(checkpoint: Checkpoint, *, experts_on: str | None, default_device: str = "cuda:0") -> Checkpoint:
    """A copy of the checkpoint with `device` set on every tensor."""
    default = normalize_device(default_device)
    experts = normalize_device(experts_on) if experts_on else default
    devices = (experts if t.role == "routed_experts" else default for t in checkpoint.tensors)
    return checkpoint.with_(tensors=with_devices(checkpoint.tensors, devices))
