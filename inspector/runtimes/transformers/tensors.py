"""Every tensor of the loaded model: its dtype and bytes in memory, and the size accelerate counts for it.

The model dtype (`from_pretrained(dtype=...)`): transformers 5 defaults to "auto" (config.json's dtype /
torch_dtype, else the first floating tensor of the checkpoint); transformers 4 to float32 (the torch default), and
float16 when bitsandbytes quantizes and no dtype is given (`Bnb*HfQuantizer.update_dtype`). AWQ casts bfloat16 to
float16 on CUDA (`AwqQuantizer.update_dtype`). Floating parameters take the model dtype, except the keep-in-fp32
modules; integer tensors, buffers (float32 rotary frequencies) and quantizer state keep their own dtype.

accelerate's count (what the device map is computed with) differs from the bytes in memory:
- transformers 5 (`compute_module_sizes` with `hf_quantizer.param_element_size`): a bitsandbytes-converted
  weight counts 0.5 B (4-bit) or 1 B (8-bit) per value, its absmax / code book not at all; other tensors their
  own element size;
- transformers 4 (accelerate `compute_module_sizes(dtype=target, special_dtypes=...)`): the target dtype is the
  model dtype, or int8 (8-bit) / 0.5 B (4-bit, accelerate's CustomDtype.INT4) for EVERY floating tensor except
  `special_dtypes` (the parameters of modules not converted, and keep-in-fp32 ones); a floating tensor counts
  min(target, its own size); integer tensors their own size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ...memory.bnb import BnbConfig, config_from_quantization, converted_modules, linear_dims, \
    modules_to_not_convert, quantized_weight
from ...memory.hf_model import HfModel, Module, Tensor
from ...model import Checkpoint

Number = Union[int, float]
FLOAT_DTYPES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2}
BYTES = {**FLOAT_DTYPES, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I64": 8, "U64": 8, "I32": 4, "U32": 4,
         "I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1}
AS_STORED = ("gptq", "awq", "fp8", "mxfp4", "compressed-tensors", "fbgemm_fp8", "bitnet", "hqq", "torchao")


@dataclass(frozen=True)
class RuntimeTensor:
    """One tensor as the loaded model holds it."""

    name: str
    module: str  # owning module path (the device map places modules)
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    params: int
    kind: str  # what accelerate sees: "param", "buffer", or "state" (bitsandbytes QuantState: not seen)
    part: str  # memory part: "weights" (from the checkpoint), "quant_state", "buffers" (made by the model)
    counted: Number  # accelerate's size for it (0 for state)
    source: Tensor | None = None


@dataclass(frozen=True)
class Quantization:
    """How the weights are quantized: bitsandbytes now (`bnb`), a pre-quantized checkpoint (`method`), or not."""

    bnb: BnbConfig | None = None  # bitsandbytes, on the fly or pre-quantized
    prequantized: bool = False
    method: str | None = None  # quantization_config.quant_method of the checkpoint

    @property
    def label(self) -> str:
        if self.bnb is not None:
            return f"bitsandbytes {self.bnb.label}{' (pre-quantized)' if self.prequantized else ''}"
        return f"{self.method} (as stored)" if self.method else "none"


def quantization_of(checkpoint: Checkpoint, asked: BnbConfig | None) -> tuple[Quantization, list[str]]:
    """The checkpoint's own quantization wins over one asked for (transformers merges the configs and keeps the
    checkpoint's loading attributes)."""
    qconfig = (checkpoint.config or {}).get("quantization_config")
    notes: list[str] = []
    if isinstance(qconfig, dict) and qconfig.get("quant_method"):
        method = str(qconfig["quant_method"]).lower()
        if asked is not None:
            notes.append(f"the checkpoint is already quantized ({method}); transformers keeps its "
                         "quantization_config, so --load-in-4bit/8bit change nothing")
        if method == "bitsandbytes":
            return Quantization(config_from_quantization(qconfig), True, method), notes
        if method not in AS_STORED:
            notes.append(f"quantization method {method!r} is sized as stored in the checkpoint")
        return Quantization(None, True, method), notes
    return Quantization(asked), notes


def model_dtype(checkpoint: Checkpoint, asked: str | None, version: int, quant: Quantization) -> str:
    """The dtype floating parameters take (module docstring)."""
    config = checkpoint.config or {}
    dtype = asked
    if dtype is None and version >= 5:
        dtype = "auto"
    if dtype == "auto":
        raw = str(config.get("dtype") or config.get("torch_dtype") or "").removeprefix("torch.")
        dtype = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}.get(raw)
        if dtype is None:
            dtype = next((t.dtype for t in checkpoint.tensors if t.dtype in FLOAT_DTYPES), "F32")
    if dtype is None:
        dtype = "F16" if quant.bnb is not None and not quant.prequantized or quant.method == "bitsandbytes" else "F32"
    if quant.method == "awq" and dtype == "BF16":
        dtype = "F16"
    return dtype


class TensorPlan:
    """The runtime tensors of `model` under a dtype and a quantization, with accelerate's counts."""

    def __init__(self, model: HfModel, dtype: str, quant: Quantization, also_skip: tuple[str, ...] = ()) -> None:
        self.model = model
        self.dtype = dtype
        self.quant = quant
        self.version = model.spec.version
        bnb = quant.bnb
        self.not_convert = modules_to_not_convert(model, bnb) + list(also_skip) if bnb else []
        fresh = bnb is not None and not quant.prequantized
        self.converted = {m.path for m in converted_modules(model, bnb, also_skip=also_skip)} if fresh else set()
        self.tensors: list[RuntimeTensor] = []
        for module in model.modules():
            self.tensors += self._module_tensors(module)

    # --- sizes ----------------------------------------------------------------------------------------------
    def runtime_dtype(self, t: Tensor) -> str:
        if t.kind != "param" or t.dtype not in FLOAT_DTYPES:
            return t.dtype
        return "F32" if self.model.is_fp32_kept(t.name, self.dtype) else self.dtype

    def _special(self, t: Tensor) -> str | None:
        """transformers 4's special_dtypes: not-converted modules' parameters (model dtype), keep-in-fp32 (F32)."""
        if t.kind != "param":
            return None
        if self.model.is_fp32_kept(t.name, self.dtype):
            return "F32"
        if self.quant.bnb is not None and any(m in t.name for m in self.not_convert):
            return self.dtype
        return None

    def counted(self, t: Tensor, runtime_dtype: str, quantized_bits: int | None) -> Number:
        numel = t.source.params if t.source is not None and quantized_bits else t.numel
        if self.version >= 5:
            if quantized_bits:
                return numel * (0.5 if quantized_bits == 4 else 1)
            return numel * BYTES[runtime_dtype]
        special = self._special(t)
        if special is not None:
            return numel * BYTES[special]
        if runtime_dtype not in FLOAT_DTYPES and not quantized_bits:
            return numel * BYTES[runtime_dtype]
        target: Number = BYTES[self.dtype]
        if self.quant.bnb is not None:
            target = 0.5 if self.quant.bnb.bits == 4 else 1
        own = BYTES[runtime_dtype] if runtime_dtype in FLOAT_DTYPES else BYTES[self.dtype]
        return numel * min(target, own)

    # --- tensors of one module -------------------------------------------------------------------------------
    def _module_tensors(self, module: Module) -> list[RuntimeTensor]:
        out: list[RuntimeTensor] = []
        bnb = self.quant.bnb
        if module.path in self.converted and bnb is not None:
            out += self._converted(module, bnb)
        else:
            prequantized_bits = bnb.bits if bnb and self.quant.prequantized and module.state else None
            for p in module.params:
                if p.tied_to is not None:
                    continue
                bits = prequantized_bits if p.name.endswith(".weight") else None
                out.append(self._plain(module, p, bits))
            if prequantized_bits == 4 and bnb is not None and bnb.double_quant:
                out.append(RuntimeTensor(f"{module.path}.weight.nested_offset", module.path, "F32", (), 4, 0,
                                         "state", "quant_state", 0))
        out += [self._plain(module, b, None) for b in module.buffers]
        out += [self._plain(module, s, None) for s in module.state]
        return out

    def _plain(self, module: Module, t: Tensor, bits: int | None) -> RuntimeTensor:
        dtype = t.dtype if bits else self.runtime_dtype(t)
        stored = t.source.nbytes if t.source is not None and dtype == t.dtype else None
        nbytes = stored if stored is not None else t.numel * BYTES[dtype]
        params = t.source.params if t.source is not None else 0
        part = "quant_state" if t.kind == "state" else "buffers" if t.source is None else "weights"
        counted = 0 if t.kind == "state" else self.counted(t, dtype, bits)
        return RuntimeTensor(t.name, module.path, dtype, t.shape, nbytes, params, t.kind, part, counted, t)

    def _converted(self, module: Module, bnb: BnbConfig) -> list[RuntimeTensor]:
        w = module.weight
        assert w is not None
        out_f, in_f = linear_dims(module, self.model.spec.conv1d)
        out: list[RuntimeTensor] = []
        for s in quantized_weight(out_f, in_f, bnb):
            weight = s.suffix == ".weight"
            counted = self.counted(w, self.dtype, bnb.bits) if weight else 0
            params = (w.source.params if w.source is not None else s.params) if weight else 0
            out.append(RuntimeTensor(module.path + s.suffix, module.path, s.dtype, s.shape, s.nbytes, params,
                                     "param" if weight else "state", "weights" if weight else "quant_state",
                                     counted, w))
        for p in module.params:
            if p is not w and p.tied_to is None:
                out.append(self._plain(module, p, None))
        return out

    # --- what accelerate iterates ---------------------------------------------------------------------------
    def accelerate_tensors(self) -> list[tuple[str, Number]]:
        """(name, size) in named_parameters() then named_buffers() order; quantization state is not there."""
        params = [(t.name, t.counted) for t in self.tensors if t.kind == "param"]
        buffers = [(t.name, t.counted) for t in self.tensors if t.kind == "buffer"]
        return params + buffers

    def buffer_sizes(self) -> dict[str, Number]:
        """Buffer bytes (as accelerate counts them) of every module subtree."""
        out: dict[str, Number] = {}
        for t in self.tensors:
            if t.kind != "buffer":
                continue
            parts = t.module.split(".") if t.module else []
            for i in range(len(parts) + 1):
                key = ".".join(parts[:i])
                out[key] = out.get(key, 0) + t.counted
        return out
