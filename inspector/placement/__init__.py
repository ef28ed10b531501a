"""Device assignment: the literal `--experts-on` plan, llama.cpp's flags, KTransformers rules and plan files."""
from __future__ import annotations

from .devices import normalize_device
from .llamacpp import LlamaCppFlags, LlamaCppPlan, place_llamacpp
from .simple import place_simple
from .validate import (
    Finding,
    PlacedPlan,
    ValidationResult,
    detect_placement_kind,
    place_from_file,
    validate_placement,
)

__all__ = [
    "Finding",
    "LlamaCppFlags",
    "LlamaCppPlan",
    "PlacedPlan",
    "ValidationResult",
    "detect_placement_kind",
    "normalize_device",
    "place_from_file",
    "place_llamacpp",
    "place_simple",
    "validate_placement",
]
