"""The literal plan: routed experts on one device and everything else on another (`--experts-on`), or the rules
of a ckpt-size plan file (`--placement plan.yaml`). Runtime-agnostic; memory is sized with the ggml model."""
from __future__ import annotations

from ...memory.options import GGML_MEMORY_OPTIONS
from ...options import OptionSpec
from ..base import RuntimeSpec


def _load():  # type: ignore[no-untyped-def]
    from .runtime import LiteralRuntime

    return LiteralRuntime(SPEC)


SPEC = RuntimeSpec(
    "literal", "literal plan",
    "routed experts on one device, everything else on another; or a ckpt-size plan file",
    (
        OptionSpec("experts_on", ("--experts-on",), "str", "Put routed experts on DEVICE (cpu, cuda:N).",
                   metavar="DEVICE", searched=True),
        OptionSpec("default_device", ("--default-device",), "str", "Device for every tensor no other option places.",
                   default="cuda:0", metavar="DEVICE", show_default=True, searched=True),
        *GGML_MEMORY_OPTIONS,
    ), _load,
    can_fit=False,
    order=0,
    placement_file_kinds=("plan",),
)
