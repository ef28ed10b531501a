"""Rendering: tables (tabulate), JSON, CSV and Markdown of what the library computed. Computes no sizes."""
from __future__ import annotations

from .base import human_bytes, human_count, safe
from .fit import render_fit
from .inspection import FORMATS, VIEWS, render, to_json
from .lists import render_listing, render_quant_list, render_validation

__all__ = ["FORMATS", "VIEWS", "human_bytes", "human_count", "render", "render_fit", "render_listing",
           "render_quant_list", "render_validation", "safe", "to_json"]
