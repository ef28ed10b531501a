"""What llama.cpp's `convert_hf_to_gguf.py` writes for a Hugging Face safetensors checkpoint.

    from inspector.convert import to_gguf_view, config_metadata
    view = to_gguf_view(checkpoint)          # ConvertedView: .checkpoint (the GGUF), .header_estimate, .outtype ...
    kvs = config_metadata(config)            # WrittenKVs: the GGUF KVs the converter writes from config.json

Modules: `expr` (the table's expression language), `table` + `schema` (the data model and parser of
rules/hf_architectures.yaml), `kv` (the KV writer: the one config.json -> hyperparameter mapping), `steps` +
`engine` (the conversion of tensor names, shapes and types), `header` (the header estimate), `view` (the typed
result). Nothing here reads a file except the table. docs/quantization.md, "From safetensors: the converter
view", documents the behaviour and the table's schema.
"""
from __future__ import annotations

from .engine import to_gguf_view
from .kv import WrittenKVs, config_metadata
from .table import ArchSpec, ArchTable, ConversionError, load_table, supported_architectures
from .schema import parse_table
from .view import ConvertedView

__all__ = [
    "ArchSpec",
    "ArchTable",
    "ConversionError",
    "ConvertedView",
    "WrittenKVs",
    "config_metadata",
    "load_table",
    "parse_table",
    "supported_architectures",
    "to_gguf_view",
]
