"""KTransformers: its optimize-rule YAML replayed on the checkpoint (placement and runtime formats), and fit
writing a rule file (`--emit-yaml`)."""
from __future__ import annotations

from ...memory.options import GGML_MEMORY_OPTIONS
from ..base import RuntimeSpec


def _load():  # type: ignore[no-untyped-def]
    from .runtime import KtRuntime

    return KtRuntime(SPEC)


SPEC = RuntimeSpec(
    name="ktransformers",
    title="KTransformers",
    summary="a KTransformers optimize-rule YAML (--placement FILE), or one written by fit (--emit-yaml)",
    options=GGML_MEMORY_OPTIONS,
    load=_load,
    order=20,
    placement_file_kinds=("ktransformers",),
)
