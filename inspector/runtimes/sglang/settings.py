"""SGLang's settings resolved against a model and GPUs, and its start-up checks.

Read in sgl-project/sglang (python/sglang/srt, 2025-2026 main):
- `server_args.py` `_handle_gpu_memory_settings`: by the GPU's memory (MiB) the default chunked_prefill_size and
  cuda_graph_max_bs (< 20 GiB: 2048 / 8; < 35 GiB: 2048 / 24, 80 from tp 4; < 60 GiB: 4096 / 32, 160 from tp 4;
  < 90 GiB and < 160 GiB: 8192 / 256, 512 from tp 4; else 16384 / 512), then, unless given,
  mem_fraction_static = round((gpu_mem - reserved) / gpu_mem, 3) with reserved = 512 + max(chunked_prefill_size,
  2048) x 1.5 + cuda_graph_max_bs x 2 + tp x pp / 8 x 1024 MiB, at least 10 GiB on GPUs above 60 GiB.
- `configs/model_config.py`: "User-specified context_length (L) is greater than the derived context_length (D)".
- `distributed/utils.py` `get_pp_indices`: n // pp layers per stage, the last n % pp stages one more.
- `layers/moe/ep_moe`: --ep-size ranks inside the TP group each hold num_experts / ep_size whole experts, the
  remaining tp / ep ranks of an expert group split it (moe_tp_size = tp_size / ep_size).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from ...errors import UsageError
from ...memory.serving import (ServingModel, check_quantization, kv_bytes_per_element, model_dtype, serving_model)
from ...memory.sharding import ModelDims, Parallel

MIB = 1 << 20
GIB = 1 << 30
# (upper bound in MiB, chunked_prefill_size, cuda_graph_max_bs below tp 4, from tp 4)
GPU_TIERS = ((20 * 1024, 2048, 8, 8), (35 * 1024, 2048, 24, 80), (60 * 1024, 4096, 32, 160),
             (90 * 1024, 8192, 256, 512), (160 * 1024, 8192, 256, 512))
LARGEST_TIER = (16384, 512)


def sglang_pp_layers(n: int, stage: int, pp: int) -> tuple[int, int]:
    parts = [n // pp] * pp
    for i in range(n % pp):
        parts[pp - 1 - i] += 1
    start = sum(parts[:stage])
    return start, start + parts[stage]


@dataclass(frozen=True)
class SglangOptions:
    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    ep: int | None = None
    mem_fraction_static: float | None = None
    context_length: int | None = None
    max_running_requests: int | None = None
    max_total_tokens: int | None = None
    kv_cache_dtype: str | None = None
    page_size: int | None = None
    chunked_prefill_size: int | None = None
    cuda_graph_max_bs: int | None = None
    dtype: str | None = None
    quantization: str | None = None
    budgets: Mapping[str, int] = None  # type: ignore[assignment]
    gpus: int | None = None
    min_sequences: int = 1

    def with_(self, **changes: Any) -> "SglangOptions":
        return replace(self, **changes)


SGLANG_KV_DTYPES = ("auto", "fp8_e4m3", "fp8_e5m2", "bf16", "bfloat16")  # server_args.py --kv-cache-dtype choices


def options_from(values: Mapping[str, Any]) -> SglangOptions:
    kv = values.get("kv_cache_dtype")
    if kv is not None and kv not in SGLANG_KV_DTYPES:
        raise UsageError(f"SGLang's --kv-cache-dtype takes {', '.join(SGLANG_KV_DTYPES)}, not {kv}")
    mfs = values.get("mem_fraction_static")
    if mfs is not None and not 0 < mfs < 1:
        raise UsageError(f"--mem-fraction-static {mfs}: must be between 0 and 1", hint="e.g. 0.85")
    return SglangOptions(
        tp=values.get("sglang_tp"), pp=values.get("sglang_pp"), dp=values.get("sglang_dp"),
        ep=values.get("sglang_ep"), mem_fraction_static=mfs, context_length=values.get("context_length"),
        max_running_requests=values.get("max_running_requests"), max_total_tokens=values.get("max_total_tokens"),
        kv_cache_dtype=values.get("kv_cache_dtype"), page_size=values.get("page_size"),
        chunked_prefill_size=values.get("chunked_prefill_size"), cuda_graph_max_bs=values.get("cuda_graph_max_bs"),
        dtype=values.get("serve_dtype"), quantization=values.get("quantization"),
        budgets=dict(values.get("budgets") or {}), gpus=values.get("gpus"))


@dataclass(frozen=True)
class Settings:
    model: ServingModel
    tp: int
    pp: int
    dp: int
    ep: int
    context_length: int
    page_size: int
    kv_bytes: int
    dtype: str
    fp8_online: bool
    options: SglangOptions

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def min_sequences(self) -> int:
        return self.options.min_sequences

    @property
    def moe_tp(self) -> int:
        return self.tp // self.ep

    def parallel(self) -> Parallel:
        moe_tp = self.moe_tp

        def group(d: int, t: int) -> tuple[int, int]:
            return t // moe_tp, t % moe_tp

        return Parallel(self.tp, self.pp, self.dp, self.ep, moe_tp, group, sglang_pp_layers)

    def dims(self) -> ModelDims:
        m = self.model
        return ModelDims(m.n_layers, m.n_heads, m.n_kv_heads, m.n_experts, m.tie_embeddings, m.block)

    def mem_fraction(self, gpu_bytes: int) -> float:
        """--mem-fraction-static, or SGLang's default for a GPU of `gpu_bytes`."""
        if self.options.mem_fraction_static is not None:
            return self.options.mem_fraction_static
        gpu_mem = gpu_bytes / MIB
        chunk, graph_bs = self.gpu_defaults(gpu_bytes)
        reserved = 512 + max(chunk, 2048) * 1.5 + graph_bs * 2 + self.tp * self.pp / 8 * 1024
        if gpu_mem > 60 * 1024:
            reserved = max(reserved, 10 * 1024)
        return round((gpu_mem - reserved) / gpu_mem, 3)

    def gpu_defaults(self, gpu_bytes: int) -> tuple[int, int]:
        o = self.options
        mib = gpu_bytes / MIB
        chunk, small, large = next(((c, s, l) for top, c, s, l in GPU_TIERS if mib < top),
                                   (LARGEST_TIER[0], LARGEST_TIER[1], LARGEST_TIER[1]))
        return (o.chunked_prefill_size or chunk, o.cuda_graph_max_bs or (small if self.tp < 4 else large))


def resolve(checkpoint: Any, options: SglangOptions, model: ServingModel | None = None) -> Settings:
    """Raises UsageError where SGLang refuses the settings."""
    m = model or serving_model(checkpoint)
    tp, pp, dp, ep = options.tp or 1, options.pp or 1, options.dp or 1, options.ep or 1
    if m.n_heads % tp:
        raise UsageError(f"{m.n_heads} attention heads are not divisible by --tp-size {tp}",
                         hint="use a --tp-size that divides the number of attention heads")
    if ep > 1 and (tp % ep or not m.is_moe or m.n_experts % ep):
        raise UsageError(f"--ep-size {ep} must divide --tp-size {tp} and the {m.n_experts} experts",
                         hint="SGLang's expert parallelism runs inside the TP group")
    world = tp * pp * dp
    if options.gpus is not None and world > options.gpus:
        raise UsageError(f"--tp-size {tp} --pp-size {pp} --dp-size {dp} needs {world} GPUs but --gpus is "
                         f"{options.gpus}")
    budgets = options.budgets or {}
    missing = [f"cuda:{r}" for r in range(world) if f"cuda:{r}" not in budgets]
    if budgets and any(d.startswith("cuda:") for d in budgets) and missing:
        raise UsageError(f"SGLang runs {world} rank(s) on cuda:0..cuda:{world - 1}; no --budget for "
                         f"{', '.join(missing[:4])}", hint="give one --budget cuda:K=SIZE per rank")
    length = options.context_length or m.max_len
    if length is None:
        raise UsageError("config.json states no context length", hint="give --context-length")
    if m.max_len is not None and length > m.max_len:
        raise UsageError(f"User-specified context_length ({length}) is greater than the derived context_length "
                         f"({m.max_len})", hint=f"use --context-length {m.max_len} or less (SGLang allows more only "
                                                "with SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1)")
    dtype = model_dtype(m, options.dtype)
    fp8 = check_quantization(m, options.quantization)
    return Settings(m, tp, pp, dp, ep if m.is_moe else 1, length, options.page_size or 1,
                    kv_bytes_per_element(options.kv_cache_dtype, dtype), dtype, fp8, options)
