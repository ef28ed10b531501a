"""Device assignment: the literal `--experts-on` plan, llama.cpp's flags, KTransformers rules and plan files."""
from __future__ import annotations

from .devices import normalize_device
from .llamacpp import LlamaCppFlags, LlamaCppPlan, place_llamacpp
from .simple import place_simple

__all__ = ["LlamaCppFlags", "LlamaCppPlan", "normalize_device", "place_llamacpp", "place_simple"]
