"""Rendering: tables (tabulate), JSON, CSV, Markdown, and SVG/HTML pictures of what the library computed.
Computes no sizes.

The names load lazily: the format and view names (for the command line's choices) come without tabulate.
"""
from __future__ import annotations

from ..lazy import lazy_exports

VIEWS = ("role", "layer", "dtype", "device", "tensor")
TEXT_FORMATS = ("table", "json", "csv", "markdown")
PICTURE_FORMATS = ("svg", "html")
FORMATS = TEXT_FORMATS + PICTURE_FORMATS

_EXPORTS = {
    **dict.fromkeys(("human_bytes", "human_count", "safe"), ".base"),
    "render_fit": ".fit",
    **dict.fromkeys(("render", "to_json"), ".inspection"),
    **dict.fromkeys(("render_listing", "render_quant_list", "render_validation"), ".lists"),
    **dict.fromkeys(("render_html", "render_svg", "render_picture", "refuse_picture"), ".picture"),
}
__all__ = sorted(_EXPORTS) + ["FORMATS", "PICTURE_FORMATS", "TEXT_FORMATS", "VIEWS"]
__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
