"""Former home of the converter view, kept for callers that still import it from here.

The converter is the package `inspector.convert` now; its `to_gguf_view` returns a typed `ConvertedView`. This
module's `to_gguf_view` returns only the view's checkpoint (a GGUF checkpoint comes back unchanged), as before.
New code should import from `inspector.convert`.
"""
from __future__ import annotations

from ..convert import ConversionError, ConvertedView, load_table, parse_table, supported_architectures
from ..convert import to_gguf_view as convert_view
from ..model import Checkpoint

__all__ = ["ConversionError", "ConvertedView", "convert_view", "load_table", "parse_table",
           "supported_architectures", "to_gguf_view"]


def to_gguf_view(checkpoint: Checkpoint) -> Checkpoint:
    """The checkpoint of `inspector.convert.to_gguf_view(checkpoint)`; a GGUF checkpoint is returned unchanged."""
    return checkpoint if checkpoint.format == "gguf" else convert_view(checkpoint).checkpoint
