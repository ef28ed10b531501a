"""Header parsing (GGUF, safetensors) over a ByteSource, and ggml/safetensors type sizes. No roles, no devices."""
from __future__ import annotations

from .checkpoint import read_checkpoint
from .gguf import GgufHeader, parse_gguf
from .safetensors import SafetensorsHeader, parse_safetensors

__all__ = ["GgufHeader", "SafetensorsHeader", "parse_gguf", "parse_safetensors", "read_checkpoint"]
