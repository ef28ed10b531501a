"""Hugging Face transformers + accelerate: `from_pretrained(device_map=..., max_memory=..., dtype=...,
quantization_config=BitsAndBytesConfig(...))` replayed from headers: accelerate's device map, bitsandbytes sizes,
bytes per device (docs/transformers.md)."""
from __future__ import annotations

from typing import Any

from ...memory.options import TRANSFORMERS_VERSION_OPTION
from ...options import OptionSpec
from ..base import RuntimeSpec


def _load():  # type: ignore[no-untyped-def]
    from .runtime import TransformersRuntime

    return TransformersRuntime(SPEC)


def _option(dest: str, flag: str, kind: str, text: str, **kw: Any) -> OptionSpec:
    """A transformers option: it selects the runtime, asks for its memory table, and is not an option of `fit`
    (transformers has no fit search: accelerate's map is the plan)."""
    return OptionSpec(dest, (flag,), kind, "transformers: " + text, memory=True, searched=True, **kw)


OPTIONS = (
    _option("device_map", "--device-map", "str", "device_map: auto, balanced, balanced_low_0, sequential, one "
            "device (cpu, cuda:1) or a pasted {module: device} dict.", metavar="MAP"),
    _option("max_memory", "--max-memory", "str", "accelerate's max_memory: 0=20GiB,1=20GiB,cpu=60GiB or a pasted "
            "dict {0: '20GiB', 'cpu': '60GiB'} (GiB = 2^30, GB = 10^9, Gb = bits); default: the --budget values.",
            metavar="DEV=SIZE,..", multiple=True),
    _option("torch_dtype", "--torch-dtype", "choice", "dtype= of from_pretrained (default: auto in transformers 5, "
            "float32 in 4).", choices=("auto", "bfloat16", "float16", "float32"), native=("--dtype",)),
    _option("offload_folder", "--offload-folder", "str", "offload_folder= for weights offloaded to disk.",
            metavar="DIR"),
    _option("offload_buffers", "--offload-buffers", "flag", "offload_buffers=True: buffers of offloaded modules "
            "stay offloaded."),
    _option("load_in_8bit", "--load-in-8bit", "flag", "BitsAndBytesConfig(load_in_8bit=True)."),
    _option("load_in_4bit", "--load-in-4bit", "flag", "BitsAndBytesConfig(load_in_4bit=True)."),
    _option("bnb_4bit_quant_type", "--bnb-4bit-quant-type", "choice", "4-bit data type (default fp4, as "
            "BitsAndBytesConfig).", choices=("nf4", "fp4")),
    _option("bnb_4bit_use_double_quant", "--bnb-4bit-use-double-quant", "flag", "quantize the 4-bit absmax too "
            "(double quantization)."),
    _option("llm_int8_skip_modules", "--llm-int8-skip-modules", "str", "modules kept unquantized, replacing the "
            "default (lm_head): lm_head,mlp.gate.", metavar="NAME,.."),
    _option("llm_int8_enable_fp32_cpu_offload", "--llm-int8-enable-fp32-cpu-offload", "flag", "allow bitsandbytes "
            "models on cpu/disk too."),
    TRANSFORMERS_VERSION_OPTION,
)

SUMMARY = "from_pretrained with accelerate's device_map / max_memory and bitsandbytes"
SPEC = RuntimeSpec.memory_only("transformers", "transformers", SUMMARY, OPTIONS, _load, order=40)
