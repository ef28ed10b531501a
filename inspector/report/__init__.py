"""Rendering: tables (tabulate), JSON, CSV, Markdown, and SVG/HTML pictures of what the library computed.
Computes no sizes."""
from __future__ import annotations

from .base import human_bytes, human_count, safe
from .fit import render_fit
from .inspection import FORMATS, TEXT_FORMATS, VIEWS, render, to_json
from .lists import render_listing, render_quant_list, render_validation
from .picture import PICTURE_FORMATS, render_html, render_svg

__all__ = ["FORMATS", "PICTURE_FORMATS", "TEXT_FORMATS", "VIEWS", "human_bytes", "human_count", "render",
           "render_fit", "render_html", "render_listing", "render_quant_list", "render_svg", "render_validation",
           "safe", "to_json"]
