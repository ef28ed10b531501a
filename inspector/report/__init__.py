"""Rendering: tables (tabulate), JSON, CSV and Markdown of what the library computed. Computes no sizes.

The names load lazily: `VIEWS` and `FORMATS` (for the command line's choices) come without tabulate.
"""
from __future__ import annotations

from ..lazy import lazy_exports

VIEWS = ("role", "layer", "dtype", "device", "tensor")
FORMATS = ("table", "json", "csv", "markdown")

_EXPORTS = {
    **dict.fromkeys(("human_bytes", "human_count", "safe"), ".base"),
    "render_fit": ".fit",
    **dict.fromkeys(("render", "to_json"), ".inspection"),
    **dict.fromkeys(("render_listing", "render_quant_list", "render_validation"), ".lists"),
}
__all__ = sorted(_EXPORTS) + ["FORMATS", "VIEWS"]
__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
