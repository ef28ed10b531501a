"""Logical parameter counts for packed quantized safetensors checkpoints.

Bytes are always exact as stored. Parameters are not: a GPTQ `qweight` int32 holds 32/bits weights, an MXFP4
`*_blocks` byte holds two, and scales, zero points and quantizer state are not parameters at all. The
`quantization_config` in config.json says which scheme applies (transformers' quantizer names).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from ..model import TensorInfo

# Tensors that belong to a quantizer, not to the model: they take their weight's role but count no parameters.
AUX_ENDINGS = (
    ".weight_scale_inv", ".weight_scale", ".input_scale", ".qzeros", ".scales", ".g_idx", ".SCB", ".weight_format",
    ".weight.absmax", ".weight.quant_map", ".weight.nested_absmax", ".weight.nested_quant_map", "_scales",
)
AUX_STATE = ".weight.quant_state."  # then a name: `.weight.quant_state.bitsandbytes__nf4`
AUX_TENSOR = re.compile(f"({'|'.join(map(re.escape, AUX_ENDINGS))}|{re.escape(AUX_STATE)}[\\w.]+)$")
PACKING_METHODS = ("gptq", "awq", "mxfp4", "bitsandbytes")  # the quant_method values _packing_factor knows


def _is_aux(name: str) -> bool:
    """AUX_TENSOR.search(name), asked only of names that can match: those ending in one of AUX_ENDINGS or holding
    AUX_STATE, and those ending in a newline (`$` also matches before one). Most names are neither: a C-level
    suffix test, not a regex search, for each of them."""
    if name.endswith(AUX_ENDINGS) or AUX_STATE in name or name.endswith("\n"):
        return AUX_TENSOR.search(name) is not None
    return False


def _packing_factor(name: str, dtype: str, qconfig: Mapping[str, Any]) -> int | None:
    """How many logical weights one stored element holds, or None when this tensor is not packed."""
    method = str(qconfig.get("quant_method", "")).lower()
    if method in ("gptq", "awq") and name.endswith(".qweight"):
        bits = qconfig.get("bits") or qconfig.get("w_bit") or 4
        if not isinstance(bits, int) or bits not in (2, 3, 4, 8):
            return None  # an odd config: counted as stored elements, with the warning below
        return 32 // bits if dtype in ("I32", "U32") else 8 // bits
    if method == "mxfp4" and name.endswith("_blocks") and dtype == "U8":
        return 2  # two E2M1 values per byte; the E8M0 scales are in `*_scales`
    if method == "bitsandbytes" and qconfig.get("load_in_4bit") and name.endswith(".weight") and dtype == "U8":
        return 2  # bnb 4-bit stores two weights per uint8 (bnb_4bit_quant_storage uint8)
    return None


def logical_params(
    tensors: tuple[TensorInfo, ...], config: Mapping[str, Any] | None
) -> tuple[tuple[TensorInfo, ...], list[str]]:
    """Return tensors with `params` set to logical parameters, and warnings for packing we could not resolve."""
    qconfig = (config or {}).get("quantization_config") or {}
    if not isinstance(qconfig, Mapping):
        return tensors, ["config.json's quantization_config is not an object; params are counted as stored elements"]
    packs = str(qconfig.get("quant_method", "")).lower() in PACKING_METHODS  # else no tensor has a factor
    out = []
    unresolved = []
    for t in tensors:
        name = t.name
        if _is_aux(name):
            out.append(t.with_(params=0))
            continue
        factor = _packing_factor(name, t.dtype, qconfig) if packs else None
        if factor is None and name.endswith((".qweight", "_blocks")):
            unresolved.append(name)
        out.append(t.with_(params=t.params * factor) if factor else t)
    warnings = []
    if unresolved:
        warnings.append(
            f"{len(unresolved)} packed tensors (e.g. {unresolved[0]!r}) without a quantization_config that says how "
            "they pack; their params are counted as stored elements (bytes are exact)"
        )
    return tuple(out), warnings
