"""llama.cpp quantization emulation: what `llama-quantize FTYPE` would write, per tensor and in bytes.

    from inspector.quant import QuantOptions, predict
    prediction = predict(checkpoint, QuantOptions("Q4_K_M"))

`checkpoint` holds GGUF tensor names, `ne` shapes and ggml type names, with GGUF KVs in its metadata: a GGUF
file, or the converter's GGUF view of a safetensors repo (`inspector.convert.to_gguf_view`, whose
`header_estimate` — the unpadded size of the header convert_hf_to_gguf.py would write — goes to
`predict(..., header_estimate=...)`). See docs/quantization.md for what is exact and what is estimated.
"""
from __future__ import annotations

from .ftypes import COMMON_FTYPES, FTYPES, RULE_SETS, FtypeInfo, ftype_names, resolve_ftype, valid_type_names
from .overrides import parse_tensor_type, parse_tensor_type_file
from .predict import Prediction, QuantOptions, predict, predict_many
from .rules import QuantizeError

__all__ = [
    "COMMON_FTYPES",
    "FTYPES",
    "RULE_SETS",
    "FtypeInfo",
    "Prediction",
    "QuantOptions",
    "QuantizeError",
    "ftype_names",
    "parse_tensor_type",
    "parse_tensor_type_file",
    "predict",
    "predict_many",
    "resolve_ftype",
    "valid_type_names",
]
