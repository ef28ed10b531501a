"""The runtime-neutral planner behind `ckpt-size fit` (docs/memory.md)."""
from __future__ import annotations

from ..monotone import largest_fitting, smallest_fitting
from .limits import context_limits
from .planner import best_quant, fit
from .result import FitReport, FitResult, QuantChoice

__all__ = ["FitReport", "FitResult", "QuantChoice", "best_quant", "context_limits", "fit", "largest_fitting",
           "smallest_fitting"]
