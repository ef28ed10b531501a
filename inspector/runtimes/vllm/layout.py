"""vLLM's settings resolved against a model and GPUs, its start-up checks, and its weight placement per rank.

Read in vllm-project/vllm at commit 001cabc1 (2026):
- `vllm/config/model.py` `verify_with_parallel_config`: "Total number of attention heads (H) must be divisible by
  tensor parallel size (T)."; `_get_and_verify_max_len`: "User-specified max_model_len (L) is greater than the
  derived max_model_len (...)".
- `vllm/model_executor/layers/linear.py` `QKVParallelLinear`: KV heads divide TP or TP divides them.
- `vllm/model_executor/layers/quantization/fp8.py` `validate_fp8_block_shape`: with block-quantized FP8 the
  per-rank output of a column-parallel layer must be a multiple of block_n, the per-rank input of a row-parallel
  one of block_k.
- `vllm/distributed/utils.py` `get_pp_indices`: n // pp layers per stage, the remainder added one each to the
  stages before the last, from the second-to-last backwards.
- `vllm/engine/arg_utils.py` `get_batch_defaults`: `vllm serve` defaults to max_num_batched_tokens 8192 and
  max_num_seqs 1024 on GPUs of at least 70 GiB (A100 excepted), else 2048 and 256.
- `vllm/platforms/cuda.py` `check_and_update_config`: MLA models on FlashMLA use blocks of 64 tokens.
- `vllm/model_executor/models/utils.py` `make_layers` / `maybe_offload_to_cpu`: `--cpu-offload-gb` moves
  parameters to CPU memory, layer after layer in model order, until the budget is reached.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ...errors import UsageError
from ...memory.serving import (DTYPE_BYTES, ServingModel, check_quantization, kv_bytes_per_element, model_dtype,
                               runtime_dtype, serving_model)
from ...memory.shard_rows import shard_checkpoint
from ...memory.sharding import ModelDims, Parallel
from ...model import Checkpoint, TensorInfo
from ..base import Placement
from .options import DEFAULT_UTILIZATION, GIB, VllmOptions

BIG_GPU = 70 * GIB
MLA_BLOCK = 64


def vllm_pp_layers(n: int, stage: int, pp: int) -> tuple[int, int]:
    """get_pp_indices without VLLM_PP_LAYER_PARTITION."""
    parts = [n // pp] * pp
    for i in range(2, n % pp + 2):
        parts[-i] += 1
    start = sum(parts[:stage])
    return start, start + parts[stage]


@dataclass(frozen=True)
class Settings:
    """Everything vLLM decides before loading: parallel sizes, lengths, batch limits, dtypes."""

    model: ServingModel
    tp: int
    pp: int
    dp: int
    expert_parallel: bool
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    utilization: float
    kv_bytes: int
    block_size: int
    dtype: str
    fp8_online: bool
    offload_bytes: int
    enforce_eager: bool = False
    kv_cache_memory: int | None = None
    min_sequences: int = 1
    auto_fit: bool = False

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def ep(self) -> int:
        return self.tp * self.dp if self.expert_parallel else 1

    @property
    def moe_tp(self) -> int:
        return 1 if self.expert_parallel else self.tp * self.dp

    def parallel(self) -> Parallel:
        tp = self.tp
        if self.expert_parallel:
            def group(d: int, t: int) -> tuple[int, int]:
                return d * tp + t, 0
        else:
            def group(d: int, t: int) -> tuple[int, int]:
                return 0, d * tp + t
        return Parallel(self.tp, self.pp, self.dp, self.ep, self.moe_tp, group, vllm_pp_layers)

    def dims(self) -> ModelDims:
        m = self.model
        return ModelDims(m.n_layers, m.n_heads, m.n_kv_heads, m.n_experts, m.tie_embeddings, m.block)


def smallest_budget(budgets: Mapping[str, int], world: int) -> int | None:
    gpus = [budgets[f"cuda:{r}"] for r in range(world) if f"cuda:{r}" in budgets]
    return min(gpus) if gpus else None


def resolve(checkpoint: Checkpoint, options: VllmOptions, model: ServingModel | None = None) -> Settings:
    """vLLM's settings for this model and these options, with its start-up checks.

    Raises:
        UsageError: TP not dividing the heads, a length above the model's limit, a quantization that contradicts
            the checkpoint, more ranks than --gpus, budgets missing for some ranks.
    """
    m = model or serving_model(checkpoint)
    tp, pp, dp = options.tp or 1, options.pp or 1, options.dp or 1
    check_parallel(m, tp, pp, dp, bool(options.expert_parallel))
    world = tp * pp * dp
    if options.gpus is not None and world > options.gpus:
        raise UsageError(f"-tp {tp} -pp {pp} -dp {dp} needs {world} GPUs but --gpus is {options.gpus}")
    budget = smallest_budget(options.budgets, world)
    missing = [f"cuda:{r}" for r in range(world) if f"cuda:{r}" not in options.budgets]
    if budget is not None and missing:
        raise UsageError(f"vLLM runs {world} rank(s) on cuda:0..cuda:{world - 1}; no --budget for "
                         f"{', '.join(missing[:4])}", hint="give one --budget cuda:K=SIZE per rank (the GPU's memory)")
    limit = m.max_len
    length = options.max_model_len or limit
    if length is None:
        raise UsageError("config.json states no context length", hint="give --max-model-len")
    if limit is not None and length > limit:
        raise UsageError(f"User-specified max_model_len ({length}) is greater than the derived max_model_len "
                         f"({m.max_len_key}={limit} in model's config.json)",
                         hint=f"use --max-model-len {limit} or less (vLLM allows more only with "
                              "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1)")
    big = budget is not None and budget >= BIG_GPU
    dtype = model_dtype(m, options.dtype)
    fp8_online = check_quantization(m, options.quantization)
    settings = Settings(
        model=m, tp=tp, pp=pp, dp=dp, expert_parallel=bool(options.expert_parallel) and m.is_moe,
        max_model_len=length, max_num_seqs=options.max_num_seqs or (1024 if big else 256),
        max_num_batched_tokens=options.max_num_batched_tokens or (8192 if big else 2048),
        utilization=options.utilization if options.utilization is not None else DEFAULT_UTILIZATION,
        kv_bytes=kv_bytes_per_element(options.kv_cache_dtype, dtype),
        block_size=options.block_size or (MLA_BLOCK if m.is_mla else 16), dtype=dtype, fp8_online=fp8_online,
        offload_bytes=int((options.cpu_offload_gb or 0) * GIB), enforce_eager=options.enforce_eager,
        kv_cache_memory=options.kv_cache_memory, min_sequences=options.min_sequences,
        auto_fit=options.auto_fit and options.max_model_len is None)
    check_blocks(settings)
    return settings


def check_parallel(m: ServingModel, tp: int, pp: int, dp: int, ep: bool) -> None:
    if m.n_heads % tp:
        raise UsageError(f"Total number of attention heads ({m.n_heads}) must be divisible by tensor parallel size "
                         f"({tp})", hint=f"use -tp {', '.join(str(d) for d in _divisors(m.n_heads)[:6])} …")
    kv = m.n_kv_heads
    if not m.is_mla and ((tp >= kv and tp % kv) or (tp < kv and kv % tp)):
        raise UsageError(f"{kv} KV heads cannot be split over tensor parallel size {tp} (vLLM's QKVParallelLinear "
                         "needs one to divide the other)", hint="use a -tp that divides or is a multiple of "
                                                                f"{kv}")
    if pp > m.n_layers:
        raise UsageError(f"pipeline parallel size {pp} is larger than the {m.n_layers} layers")


def check_blocks(s: Settings) -> None:
    """FP8 block quantization: per-rank widths must stay whole blocks (fp8.py validate_fp8_block_shape)."""
    block = s.model.block
    if block is None or s.fp8_online:
        return
    widths = [("intermediate_size", s.model.intermediate, s.tp)]
    if s.model.is_moe:
        widths.append(("moe_intermediate_size", s.model.moe_intermediate, s.moe_tp))
    for name, width, parts in widths:
        if parts > 1 and width % parts == 0 and (width // parts) % block[0]:
            raise UsageError(f"Weight output_partition_size = {width // parts} is not divisible by weight "
                             f"quantization block_n = {block[0]} ({name} {width} / {parts} ranks)",
                             hint="use fewer ranks for these layers (or --enable-expert-parallel for experts)")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True)
class Placed:
    """Placement.detail of a vLLM plan: its settings, and whether fit's search made it (then a plan vLLM would
    refuse is reported, not raised)."""

    settings: Settings
    searched: bool = False


def place(checkpoint: Checkpoint, s: Settings, *, searched: bool = False) -> Placement:
    """Every rank's tensor parts (device cuda:<rank>), weights offloaded to the CPU by --cpu-offload-gb."""
    par = s.parallel()

    def dtype_of(t: TensorInfo, shape: tuple[int, ...], nbytes: int) -> tuple[str, int]:
        return runtime_dtype(t, shape, nbytes, s.dtype, s.fp8_online)

    tensors = shard_checkpoint(checkpoint, s.dims(), par, dtype_of)
    copies = mla_absorb_copies(checkpoint, s, tensors)
    tensors += copies
    notes: list[str] = []
    if copies:
        notes.append(f"MLA: vLLM keeps a {s.dtype} copy of each quantized kv_b_proj (W_UK_T / W_UV) for absorbed "
                     "attention ('[W_UK_T/W_UV copy]' rows)")
    if s.offload_bytes:
        tensors = offload(tensors, s.offload_bytes)
        notes.append(f"--cpu-offload-gb: up to {s.offload_bytes:,} bytes of each rank's layers live in CPU memory")
    skipped = sum(1 for t in tensors if t.device is None)
    if skipped:
        notes.append(f"{skipped} tensor(s) vLLM does not load without speculative decoding (MTP layers)")
    if s.model.is_moe and s.tp * s.dp > 1:
        notes.append(f"experts: {'whole experts per rank, EP ' + str(s.ep) if s.expert_parallel else 'each expert split over ' + str(s.moe_tp) + ' rank(s)'}")
    placed = checkpoint.with_(tensors=tensors)
    summary = (f"vLLM: TP {s.tp} x PP {s.pp}" + (f" x DP {s.dp}" if s.dp > 1 else "")
               + (" with expert parallelism" if s.expert_parallel else "") + f" ({s.world} GPU{'s' * (s.world > 1)})")
    return Placement("vllm", placed, checkpoint, summary, notes=tuple(notes), detail=Placed(s, searched))


def mla_absorb_copies(checkpoint: Checkpoint, s: Settings, tensors: tuple[TensorInfo, ...]) -> tuple[TensorInfo, ...]:
    """MLAAttention.process_weights_after_loading (vllm/model_executor/layers/attention/mla_attention.py): W_UK_T and
    W_UV are views of `get_and_maybe_dequant_weights(kv_b_proj)`, the weight itself when unquantized, else a new
    tensor in the model dtype of kv_lora_rank x heads per rank x (qk_nope_head_dim + v_head_dim), one per layer."""
    m = s.model
    if not m.is_mla:
        return ()
    width = m.kv_lora_rank * (m.n_heads // s.tp) * (m.qk_nope_head_dim + m.head_dim_v)
    out = []
    for t in tensors:
        if t.device and t.device.startswith("cuda:") and t.name.endswith("kv_b_proj.weight") and \
                t.dtype not in ("BF16", "F16", "F32"):
            out.append(t.with_(name=t.name.removesuffix(".weight") + " [W_UK_T/W_UV copy]",
                               shape=(m.kv_lora_rank, m.n_heads // s.tp, m.qk_nope_head_dim + m.head_dim_v),
                               dtype=s.dtype, nbytes=width * DTYPE_BYTES[s.dtype], params=0))
    return tuple(out)


def mla_copy_bytes(checkpoint: Checkpoint, s: Settings) -> dict[str, int]:
    """The bytes mla_absorb_copies adds per rank, from the stage layouts alone (fit's search)."""
    m = s.model
    if not m.is_mla:
        return {}
    layers = [t.layer for t in checkpoint.tensors if t.name.endswith("kv_b_proj.weight") and t.layer is not None
              and t.layer < m.n_layers and t.dtype not in ("BF16", "F16", "F32")]
    width = m.kv_lora_rank * (m.n_heads // s.tp) * (m.qk_nope_head_dim + m.head_dim_v) * DTYPE_BYTES[s.dtype]
    out = {}
    for r in range(s.world):
        start, end = vllm_pp_layers(m.n_layers, (r // s.tp) % s.pp, s.pp)
        count = sum(1 for il in layers if start <= il < end)
        if count:
            out[f"cuda:{r}"] = count * width
    return out


def offload(tensors: tuple[TensorInfo, ...], budget: int) -> tuple[TensorInfo, ...]:
    """maybe_offload_to_cpu per rank: decoder-layer parameters in order go to the CPU until `budget` is reached."""
    used: dict[str, int] = {}
    out = []
    for t in sorted(enumerate(tensors), key=lambda it: (it[1].layer is None, it[1].layer or 0, it[0])):
        i, tensor = t
        dev = tensor.device
        if dev is not None and dev.startswith("cuda:") and tensor.layer is not None and used.get(dev, 0) < budget:
            used[dev] = used.get(dev, 0) + tensor.nbytes
            tensor = tensor.with_(device="cpu")
        out.append((i, tensor))
    return tuple(t for _, t in sorted(out, key=lambda it: it[0]))
