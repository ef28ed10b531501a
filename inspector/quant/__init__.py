"""llama.cpp quantization emulation: what `llama-quantize FTYPE` would write, per tensor and in bytes.

    from inspector.quant import QuantOptions, predict
    prediction = predict(checkpoint, QuantOptions("Q4_K_M"))

`checkpoint` holds GGUF tensor names, `ne` shapes and ggml type names, with GGUF KVs in its metadata: a GGUF
file, or the converter's GGUF view of a safetensors repo (`inspector.quant.convert`, which records its header
estimate as `metadata["ckpt_size.header_estimate"]`: the unpadded size of the header convert_hf_to_gguf.py would
write). See docs/quantization.md for what is exact and what is estimated.
"""
from __future__ import annotations

from .ftypes import COMMON_FTYPES, FTYPES, RULE_SETS, FtypeInfo, ftype_names, resolve_ftype, valid_type_names
from .overrides import parse_tensor_type, parse_tensor_type_file
from .predict import HEADER_ESTIMATE_KEY, Prediction, QuantOptions, predict, predict_many
from .rules import QuantizeError

__all__ = [
    "COMMON_FTYPES",
    "FTYPES",
    "HEADER_ESTIMATE_KEY",
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
