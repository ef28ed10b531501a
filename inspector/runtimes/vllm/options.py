"""vLLM's options as given (None: vLLM's default, decided with the model and the GPU in `settings`)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ...errors import UsageError
from ...units import parse_size

GIB = 1 << 30
DEFAULT_UTILIZATION = 0.9  # CacheConfig.gpu_memory_utilization of vLLM releases (docs/vllm.md: newest main has 0.92)
_HUMAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*$")


def human_int(text: str | int, flag: str) -> int:
    """vLLM's `human_readable_int` (vllm/engine/arg_utils.py): `32k` = 32,000, `32K` = 32,768 (lower case decimal,
    upper case binary); a plain number as is. (`--max-model-len -1`, the auto-fit, is handled by options_from.)"""
    if isinstance(text, int):
        return text
    m = _HUMAN.match(str(text))
    if not m:
        raise UsageError(f"{flag} {text!r}: expected a whole number (32768, 32k, 32K)")
    number, unit = m.groups()
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "K": 2**10, "M": 2**20, "G": 2**30}[unit]
    value = float(number) * scale
    if value != int(value) or value < 1:
        raise UsageError(f"{flag} {text!r}: expected a whole number of tokens")
    return int(value)


@dataclass(frozen=True)
class VllmOptions:
    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    expert_parallel: bool | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    utilization: float | None = None
    kv_cache_dtype: str | None = None
    block_size: int | None = None
    dtype: str | None = None
    quantization: str | None = None
    cpu_offload_gb: float | None = None
    kv_cache_memory: int | None = None
    enforce_eager: bool = False
    budgets: Mapping[str, int] = field(default_factory=dict)
    gpus: int | None = None
    min_sequences: int = 1  # requests of max_model_len tokens the verdict asks for (fit's max_parallel varies it)
    auto_fit: bool = False  # --max-model-len -1: vLLM fits the length to the memory (_auto_fit_max_model_len)

    @property
    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and k not in ("budgets", "gpus")}

    def with_(self, **changes: Any) -> "VllmOptions":
        return replace(self, **changes)


VLLM_KV_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bfloat16", "float16")  # CacheDType, vllm/config/cache.py


def options_from(values: Mapping[str, Any]) -> VllmOptions:
    """VllmOptions from option values (dests of vllm's OptionSpecs).

    Raises:
        UsageError: a utilization outside (0, 1], a bad length or size.
    """
    kv = values.get("kv_cache_dtype")
    if kv is not None and kv not in VLLM_KV_DTYPES:
        raise UsageError(f"vLLM's --kv-cache-dtype takes {', '.join(VLLM_KV_DTYPES)}, not {kv}")
    util = values.get("gpu_memory_utilization")
    if util is not None and not 0 < util <= 1:
        raise UsageError(f"--gpu-memory-utilization {util}: must be in (0, 1]", hint="e.g. 0.9")
    length = values.get("max_model_len")
    kv_mem = values.get("kv_cache_memory")
    flag = values.get("enable_expert_parallel")
    return VllmOptions(
        tp=values.get("vllm_tp"), pp=values.get("vllm_pp"), dp=values.get("vllm_dp"),
        expert_parallel=None if flag is None else bool(flag),
        max_model_len=human_int(length, "--max-model-len") if length is not None and str(length) != "-1" else None,
        auto_fit=str(length) == "-1",
        max_num_seqs=values.get("max_num_seqs"), max_num_batched_tokens=values.get("max_num_batched_tokens"),
        utilization=util, kv_cache_dtype=values.get("kv_cache_dtype"), block_size=values.get("block_size"),
        dtype=values.get("serve_dtype"), quantization=values.get("quantization"),
        cpu_offload_gb=values.get("cpu_offload_gb"),
        kv_cache_memory=parse_size(str(kv_mem)) if kv_mem is not None else None,
        enforce_eager=bool(values.get("enforce_eager")), budgets=dict(values.get("budgets") or {}),
        gpus=values.get("gpus"))
