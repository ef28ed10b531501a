"""bitsandbytes as transformers uses it (`load_in_8bit`, `load_in_4bit`): which nn.Linear modules are converted, and
the exact tensors a converted one holds in memory. Shared by the transformers and training (QLoRA) runtimes.

Which modules (transformers `replace_with_bnb_linear`): every nn.Linear (GPT-2 Conv1D too) except
`modules_to_not_convert` = `llm_int8_skip_modules` when given (it replaces the defaults), else the defaults of
`get_keys_to_not_convert`, plus `_keep_in_fp32_modules`:
- transformers 5 (quantizers/base.py): the tied parameters (both sides) | the module of the model's last parameter |
  the output embedding; matched by `should_convert_module` (quantizers_utils.py): a pattern matching the full
  module name from its start up to a module boundary, as a regex with the same boundary, or as a plain suffix;
- transformers 4 (integrations/bitsandbytes.py): untied: the output embedding alone; tied: the tied parameters and
  the last parameter's module, ".weight" removed; a module is skipped when its own name is in the list, or a key
  followed by "." occurs in its full name, or a key is its full name.

What a converted module holds (bitsandbytes 0.50 functional.py `quantize_4bit`, nn/modules.py `Int8Params`), for a
weight of n = out x in values:
- 8-bit: the int8 weight [out, in] and `SCB`, one float32 absmax per row [out] (outliers are a run-time matter);
- 4-bit (nf4 and fp4 store alike): the packed weight, two values per byte: [(n + 1) // 2, 1] uint8
  (`quant_storage` bf16: [(n + 1) // 4, 1], the same bytes); `absmax`, one per 64-value block
  (ceil(n / 64)), float32; the 16-value float32 code book (`quant_map`);
- 4-bit with double quantization (`bnb_4bit_use_double_quant`): `absmax` as uint8 (8-bit blockwise over blocks of
  256), their float32 absmax (`nested_absmax`, ceil(ceil(n / 64) / 256)), a copy of the 256-value float32 dynamic
  code book (`nested_quant_map`) and the float32 mean subtracted first (`nested_offset`, a 0-d tensor).
The bias (if any) stays in the model's dtype, like every module that is not converted.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import UsageError
from .hf_model import HfModel, Module

BLOCK = 64  # bitsandbytes' default 4-bit blocksize (Linear4bit / Params4bit)
NESTED_BLOCK = 256  # quantize_4bit(compress_statistics=True): quantize_blockwise(absmax, blocksize=256)
CODE_VALUES = 16  # get_4bit_type: 16 float32 values (nf4 or fp4)
DYNAMIC_CODE_VALUES = 256  # create_dynamic_map(): the 8-bit code book of the nested absmax
QUANT_TYPES = ("nf4", "fp4")
STORAGE_BYTES = {"uint8": 1, "bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True)
class BnbConfig:
    """The BitsAndBytesConfig fields that change memory (defaults as transformers' BitsAndBytesConfig)."""

    bits: int  # 4 or 8
    quant_type: str = "fp4"
    double_quant: bool = False
    skip_modules: tuple[str, ...] | None = None  # llm_int8_skip_modules
    fp32_cpu_offload: bool = False  # llm_int8_enable_fp32_cpu_offload
    quant_storage: str = "uint8"

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise UsageError(f"bitsandbytes quantizes to 4 or 8 bits, not {self.bits}")
        if self.quant_type not in QUANT_TYPES:
            raise UsageError(f"bnb_4bit_quant_type {self.quant_type!r}: use nf4 or fp4")
        if self.quant_storage not in STORAGE_BYTES:
            raise UsageError(f"bnb_4bit_quant_storage {self.quant_storage!r}: use one of {', '.join(STORAGE_BYTES)}")

    @property
    def label(self) -> str:
        if self.bits == 8:
            return "int8"
        return f"{self.quant_type}{'+dq' if self.double_quant else ''}"

    def python(self) -> str:
        """The BitsAndBytesConfig(...) expression."""
        if self.bits == 8:
            args = ["load_in_8bit=True"]
        else:
            args = ["load_in_4bit=True", f'bnb_4bit_quant_type="{self.quant_type}"']
            if self.double_quant:
                args.append("bnb_4bit_use_double_quant=True")
            if self.quant_storage != "uint8":
                args.append(f"bnb_4bit_quant_storage=torch.{self.quant_storage}")
        if self.skip_modules is not None:
            args.append(f"llm_int8_skip_modules={list(self.skip_modules)!r}")
        if self.fp32_cpu_offload:
            args.append("llm_int8_enable_fp32_cpu_offload=True")
        return f"BitsAndBytesConfig({', '.join(args)})"


def config_from_quantization(quant: Mapping[str, Any]) -> BnbConfig:
    """A pre-quantized checkpoint's config.json `quantization_config` (quant_method bitsandbytes)."""
    bits = 8 if quant.get("load_in_8bit") or quant.get("_load_in_8bit") else 4
    skip = quant.get("llm_int8_skip_modules")
    storage = str(quant.get("bnb_4bit_quant_storage") or "uint8").removeprefix("torch.")
    return BnbConfig(bits, str(quant.get("bnb_4bit_quant_type") or "fp4"),
                     bool(quant.get("bnb_4bit_use_double_quant")), tuple(skip) if skip else None,
                     bool(quant.get("llm_int8_enable_fp32_cpu_offload")), storage)


# --- which modules ---------------------------------------------------------------------------------------------
def default_not_convert(model: HfModel) -> list[str]:
    """`get_keys_to_not_convert(model)` of the modelled transformers version."""
    params = model.parameters()
    last = params[-1].name if params else ""
    output = model.spec.output
    tied = sorted({*model.tied, *model.tied.values()})
    if model.spec.version >= 5:
        keys = set(tied) | {last} | {output}
        return sorted(k.removesuffix(".weight") for k in keys)
    if not tied:
        return [output]
    untouched = list(dict.fromkeys(tied)) + [k for k in [last] if k not in tied]
    out = []
    for name in untouched:
        for suffix in (".weight", ".bias"):
            if suffix in name:
                name = name.replace(suffix, "")
        out.append(name)
    return out


def modules_to_not_convert(model: HfModel, config: BnbConfig) -> list[str]:
    """The defaults unless `llm_int8_skip_modules` replaces them, plus `_keep_in_fp32_modules`."""
    keys = default_not_convert(model) if config.skip_modules is None else []
    keys += list(config.skip_modules or ())
    keys += list(model.spec.keep_fp32_fp16)
    return list(dict.fromkeys(keys))


def should_convert(name: str, patterns: list[str], version: int) -> bool:
    """Whether module `name` is converted despite `patterns` (the version's matching rule, module docstring)."""
    if version >= 5:
        boundary = r"(?:(?<=\.)|(?=\.|$))"
        for key in patterns:
            try:
                if re.match(rf"(?:{key}){boundary}", name) or name.endswith(key):
                    return False
            except re.error:
                raise UsageError(f"llm_int8_skip_modules: {key!r} is not a valid pattern") from None
        return True
    short = name.rsplit(".", 1)[-1]
    return short not in patterns and not any(k + "." in name or k == name for k in patterns)


def converted_modules(model: HfModel, config: BnbConfig, *, also_skip: tuple[str, ...] = ()) -> list[Module]:
    """The nn.Linear modules bitsandbytes replaces (`also_skip`: modules a dict device map sends to cpu/disk with
    llm_int8_enable_fp32_cpu_offload)."""
    patterns = modules_to_not_convert(model, config) + list(also_skip)
    return [m for m in model.modules() if m.kind == "linear" and m.weight is not None
            and m.weight.tied_to is None and should_convert(m.path, patterns, model.spec.version)]


# --- what a converted module holds ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredTensor:
    """One tensor of a converted weight in memory: suffix after the module path, dtype, shape, bytes."""

    suffix: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    params: int = 0


def _blocks(n: int, size: int) -> int:
    return -(-n // size)


def quantized_weight(out_features: int, in_features: int, config: BnbConfig) -> tuple[StoredTensor, ...]:
    """The tensors of one converted weight [out, in] (module docstring), each with its exact bytes."""
    n = out_features * in_features
    if config.bits == 8:
        return (StoredTensor(".weight", "I8", (out_features, in_features), n, n),
                StoredTensor(".SCB", "F32", (out_features,), 4 * out_features))
    item = STORAGE_BYTES[config.quant_storage]
    packed = (n + 1) // (item * 2)
    storage = {"uint8": "U8", "bfloat16": "BF16", "float16": "F16", "float32": "F32"}[config.quant_storage]
    blocks = _blocks(n, BLOCK)
    out = [StoredTensor(".weight", storage, (packed, 1), packed * item, n)]
    if config.double_quant:
        nested = _blocks(blocks, NESTED_BLOCK)
        out += [StoredTensor(".weight.absmax", "U8", (blocks,), blocks),
                StoredTensor(".weight.quant_map", "F32", (CODE_VALUES,), 4 * CODE_VALUES),
                StoredTensor(".weight.nested_absmax", "F32", (nested,), 4 * nested),
                StoredTensor(".weight.nested_quant_map", "F32", (DYNAMIC_CODE_VALUES,), 4 * DYNAMIC_CODE_VALUES),
                StoredTensor(".weight.nested_offset", "F32", (), 4)]
    else:
        out += [StoredTensor(".weight.absmax", "F32", (blocks,), 4 * blocks),
                StoredTensor(".weight.quant_map", "F32", (CODE_VALUES,), 4 * CODE_VALUES)]
    return tuple(out)


def linear_dims(module: Module, conv1d: bool = False) -> tuple[int, int]:
    """(out_features, in_features) of an nn.Linear weight [out, in] (GPT-2 Conv1D stores [in, out])."""
    w = module.weight
    if w is None or len(w.shape) != 2:
        raise ValueError(f"{module.path} has no 2-D weight")
    return (w.shape[1], w.shape[0]) if conv1d else (w.shape[0], w.shape[1])
