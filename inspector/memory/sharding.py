"""Tensor-parallel, pipeline-parallel and expert-parallel sharding of a Hugging Face checkpoint, runtime-neutral.

vLLM and SGLang (which copied vLLM's parallel layers) load an HF checkpoint the same way; the rules below were read
in vllm-project/vllm at commit 001cabc1 (2026), each cited beside the code that reproduces it:
- `vllm/model_executor/layers/linear.py`: `ColumnParallelLinear` splits the output dim (q_proj, gate/up, kv_b_proj,
  q_b_proj), `RowParallelLinear` the input dim (o_proj, down_proj; its bias is kept whole), `ReplicatedLinear`
  keeps both (DeepSeek's q_a_proj / kv_a_proj_with_mqa, routers). `QKVParallelLinear`: query heads / tp; KV heads
  / tp when tp <= n_kv_heads, else one KV head per rank (`num_kv_head_replicas = tp / n_kv_heads`).
- `vllm/model_executor/layers/vocab_parallel_embedding.py`: `pad_vocab_size` rounds the vocabulary up to a
  multiple of `DEFAULT_VOCAB_PADDING_SIZE = 64`, then each rank holds padded / tp rows (embedding and lm_head).
- `vllm/model_executor/layers/fused_moe/layer.py` + `config.py` (`FusedMoEParallelConfig.make`): experts are
  tensor-split across TP x DP ranks (`flatten_tp_across_dp`), each expert's intermediate dim divided (w13 rows,
  w2 columns); with expert parallelism each rank holds whole experts, `determine_expert_map` ("linear"):
  base = E // ep, the first E % ep ranks one more, contiguous.
- `vllm/distributed/utils.py` `get_pp_indices`: the runtime passes its own layer partition.
- Quantized layers: the auxiliary tensors follow their weight's split: FP8 block scales
  (`weight_scale_inv`, `vllm/model_executor/layers/quantization/fp8.py` `create_weights`: rows
  cdiv(out_per_rank, block_n), columns cdiv(in_per_rank, block_k)); AWQ / GPTQ packed int32 `qweight`, `qzeros`,
  `scales` ([in, out] layouts, awq.py / gptq.py), GPTQ `g_idx` split with the input dim; compressed-tensors
  `weight_packed` / `weight_scale` ([out, ...]); bitsandbytes flattened 4-bit data and `absmax` split like their
  weight; per-tensor scales replicated.

A shard is computed from the tensor's own shape with exact integer arithmetic; `shard_rows.shard_checkpoint` turns
them into the rows each rank holds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from math import prod
from typing import Callable, Mapping

from ..errors import UsageError
from ..model import Checkpoint, TensorInfo

VOCAB_PADDING = 64  # DEFAULT_VOCAB_PADDING_SIZE, vocab_parallel_embedding.py

# Module leaf names -> how their weights split (vLLM's model files choose the layer class per module).
COLUMN = frozenset({"q_proj", "q_b_proj", "kv_b_proj", "gate_proj", "up_proj", "gate_up_proj", "w1", "w3",
                    "c_fc", "fc1", "dense_h_to_4h", "input_linear", "in_proj"})
KV_HEADS = frozenset({"k_proj", "v_proj"})
QKV = frozenset({"qkv_proj", "query_key_value", "Wqkv", "c_attn"})
ROW = frozenset({"o_proj", "down_proj", "w2", "dense_4h_to_h", "fc2", "c_proj", "dense", "out_proj",
                 "output_linear", "wo"})
VOCAB = frozenset({"embed_tokens", "lm_head", "wte", "word_embeddings", "head"})
HEAD_VECTORS = frozenset({"sinks"})  # one value per query head (gpt-oss attention sinks): split by heads
# Stacked expert tensors ([E, ...], gpt-oss): the axis holding the intermediate dim, None = replicated (row bias).
STACKED_AXIS = {"gate_up_proj": 2, "down_proj": 1, "gate_up_proj_blocks": 1, "gate_up_proj_scales": 1,
                "gate_up_proj_bias": 1, "down_proj_blocks": 2, "down_proj_scales": 2, "down_proj_bias": None}
# Parameters stored [in, out] (AWQ, GPTQ) rather than [out, in].
IN_OUT_LAYOUT = frozenset({"qweight", "qzeros", "scales"})
SCALARISH = frozenset({"weight_shape", "input_scale", "k_scale", "v_scale", "quant_map", "nested_quant_map"})
_LAYER_IN_NAME = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_DIGITS = re.compile(r"(?<=\.)\d+(?=\.|$)")  # layer and expert numbers, not w1 / w3


@dataclass(frozen=True)
class Parallel:
    """How a model is laid out on ranks. Rank r of DP replica d, stage s, TP rank t is cuda:(d*pp + s)*tp + t.

    `moe_group(d, t)` gives (ep_rank, moe_tp_rank) of a rank for its stage's experts; `ep` / `moe_tp` are their
    widths (vLLM: TP x DP flattened into one of them; SGLang: ep within tp). `layers(n, stage, pp)` is the
    runtime's pipeline partition."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    moe_tp: int = 1
    moe_group: Callable[[int, int], tuple[int, int]] = lambda d, t: (0, t)
    layers: Callable[[int, int, int], tuple[int, int]] = lambda n, s, pp: (n * s // pp, n * (s + 1) // pp)

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp

    def rank(self, d: int, s: int, t: int) -> int:
        return (d * self.pp + s) * self.tp + t


@dataclass(frozen=True)
class ModelDims:
    """What sharding needs from config.json."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    n_experts: int = 0
    tie_embeddings: bool = False
    block: tuple[int, int] | None = None  # FP8 weight_block_size (block_n, block_k)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def expert_owner(expert: int, n_experts: int, ep: int) -> tuple[int, int]:
    """(ep rank, local count of that rank) under determine_expert_map's linear placement."""
    base, rem = divmod(n_experts, ep)
    for r in range(ep):
        start = r * base + min(r, rem)
        count = base + (1 if r < rem else 0)
        if start <= expert < start + count:
            return r, count
    raise ValueError(f"expert {expert} out of range for {n_experts} experts")


def local_experts(n_experts: int, ep: int, ep_rank: int) -> int:
    base, rem = divmod(n_experts, ep)
    return base + (1 if ep_rank < rem else 0)


@dataclass(frozen=True)
class Split:
    """How one tensor splits: `kind` column / row / vocab / heads / kv / qkv / stacked / replicated, the module leaf,
    the parameter name after it, and whether the tensor is a routed expert."""

    kind: str
    leaf: str
    param: str
    expert: bool


@lru_cache(maxsize=4096)
def _split_of_template(template: str, role: str, per_expert: bool) -> Split:
    parts = template.split(".")
    for i in range(len(parts) - 1, -1, -1):
        leaf = parts[i]
        param = ".".join(parts[i + 1:])
        if role == "routed_experts" and not per_expert and leaf in STACKED_AXIS:
            return Split("stacked", leaf, param, True)
        kind = ("column" if leaf in COLUMN else "kv" if leaf in KV_HEADS else "qkv" if leaf in QKV else
                "row" if leaf in ROW else "heads" if leaf in HEAD_VECTORS else None)
        if kind is not None and param:
            return Split(kind, leaf, param, role == "routed_experts")
        if kind == "heads":
            return Split(kind, leaf, "", False)
    if role in ("embedding", "output") and any(p in VOCAB for p in parts):
        return Split("vocab", parts[-2] if len(parts) > 1 else parts[-1], parts[-1], False)
    return Split("replicated", parts[-1], "", role == "routed_experts")


def split_of(t: TensorInfo) -> Split:
    return _split_of_template(_DIGITS.sub("#", t.name), t.role, t.expert is not None)


def out_axis(split: Split, ndim: int) -> int | None:
    """The axis of the output dim for column splits (None: not split)."""
    if ndim == 0:
        return None
    base = split.param.split(".")[0]
    if base in SCALARISH:
        return None
    if base == "g_idx":
        return None
    if base in IN_OUT_LAYOUT:
        return 1 if ndim >= 2 else None
    return 0


def _in_axis(split: Split, ndim: int) -> int | None:
    """The axis of the input dim for row splits (None: kept whole, like a row-parallel bias)."""
    base = split.param.split(".")[0]
    if ndim == 0 or base in SCALARISH or base == "bias":
        return None
    if base == "g_idx" or base in IN_OUT_LAYOUT:
        return 0
    return 1 if ndim >= 2 else None


def scaled(size: int, num: int, den: int) -> int:
    """size * num / den, exact when divisible, else rounded up (a rank holds whole rows)."""
    return cdiv(size * num, den)


class Sharder:
    """Per-rank shapes of a checkpoint's tensors under a Parallel layout (see the module docstring)."""

    def __init__(self, checkpoint: Checkpoint, dims: ModelDims, par: Parallel) -> None:
        self.ck = checkpoint
        self.dims = dims
        self.par = par
        self.bnb = _is_bnb(checkpoint.config)
        self.weights = {t.name.rsplit(".", 1)[0]: t.shape for t in checkpoint.tensors if t.name.endswith(".weight")}
        self._cache: dict[tuple, tuple[list[tuple[int, tuple[int, ...]]], Split]] = {}

    # -- column / row fractions -----------------------------------------------------------------------------
    def _column_fraction(self, split: Split, tp: int) -> tuple[int, int]:
        d = self.dims
        if split.kind == "kv":
            return max(1, d.n_kv_heads // tp), d.n_kv_heads
        if split.kind == "qkv":
            kv = max(1, d.n_kv_heads // tp)
            return d.n_heads // tp + 2 * kv, d.n_heads + 2 * d.n_kv_heads
        return 1, tp

    def _flat(self, t: TensorInfo, split: Split) -> bool:
        """bitsandbytes 4-bit data and absmax: flat tensors of a weight ([numel/2, 1] U8, [numel/blocksize])."""
        return self.bnb and split.param.startswith("weight") and len(t.shape) >= 1 and \
            (len(t.shape) == 1 or t.shape[-1] == 1)

    def column_shape(self, t: TensorInfo, split: Split, tp: int) -> tuple[int, ...]:
        num, den = self._column_fraction(split, tp)
        return self._split_shape(t, split, out_axis(split, len(t.shape)), 0, num, den)

    def row_shape(self, t: TensorInfo, split: Split, tp: int) -> tuple[int, ...]:
        return self._split_shape(t, split, _in_axis(split, len(t.shape)), 1, 1, tp)

    def _split_shape(self, t: TensorInfo, split: Split, axis: int | None, block_dim: int, num: int, den: int
                     ) -> tuple[int, ...]:
        """`t`'s shard: the split axis scaled by num/den; a 2-D block-scale tensor (`weight_scale_inv`) scales the
        weight's dimension `block_dim` and counts its blocks again."""
        if self._flat(t, split):
            return self._flat_split(t, split, num, den)
        shape = list(t.shape)
        if axis is None:
            return tuple(shape)
        if split.param == "weight_scale_inv" and self.dims.block and len(shape) == 2:
            block = self.dims.block[block_dim]
            weight_dim = self._sibling_dim(t, block_dim) or shape[block_dim] * block
            shape[block_dim] = cdiv(scaled(weight_dim, num, den), block)
        elif shape[axis] > 1:
            shape[axis] = scaled(shape[axis], num, den)
        return tuple(shape)

    def _flat_split(self, t: TensorInfo, split: Split, num: int, den: int) -> tuple[int, ...]:
        """bitsandbytes 4-bit: data and absmax split with the weight; the code books and the quant_state JSON
        are replicated."""
        leaf = split.param.rsplit(".", 1)[-1]
        if leaf in ("quant_map", "nested_quant_map") or "quant_state" in split.param or t.shape[0] <= 1:
            return t.shape
        return (scaled(t.shape[0], num, den),) + tuple(t.shape[1:])

    def _sibling_dim(self, t: TensorInfo, axis: int) -> int | None:
        shape = self.weights.get(t.name.rsplit(".", 1)[0])
        return shape[axis] if shape and len(shape) > axis else None

    # -- per tensor -----------------------------------------------------------------------------------------
    def dense_shape(self, t: TensorInfo, split: Split) -> tuple[int, ...]:
        """The shard shape every TP rank holds of a tensor that is not a routed expert."""
        tp = self.par.tp
        if split.kind in ("column", "kv", "qkv"):
            return self.column_shape(t, split, tp)
        if split.kind == "row":
            return self.row_shape(t, split, tp)
        if split.kind == "vocab" and t.shape:
            return (cdiv(cdiv(t.shape[0], VOCAB_PADDING) * VOCAB_PADDING, tp),) + tuple(t.shape[1:])
        if split.kind == "heads" and t.shape:
            return (scaled(t.shape[0], 1, tp),)
        return t.shape

    def expert_shape(self, t: TensorInfo, split: Split, ep_rank: int) -> tuple[int, ...]:
        """The shard shape an MoE rank holds of a routed-expert tensor (stacked: its local experts)."""
        par = self.par
        if split.kind == "stacked":
            shape = list(t.shape)
            if par.ep > 1:
                shape[0] = local_experts(shape[0], par.ep, ep_rank)
            axis = STACKED_AXIS[split.leaf]
            if axis is not None and par.moe_tp > 1 and axis < len(shape):
                shape[axis] = scaled(shape[axis], 1, par.moe_tp)
            return tuple(shape)
        if par.moe_tp > 1 and split.kind in ("column", "row"):
            return (self.column_shape if split.kind == "column" else self.row_shape)(t, split, par.moe_tp)
        return t.shape

    def shards(self, t: TensorInfo, stage: int) -> list[tuple[int, tuple[int, ...]]]:
        """(rank, shape) for every rank of pipeline stage `stage` holding part of t."""
        return self.shards_and_split(t, stage)[0]

    def shards_and_split(self, t: TensorInfo, stage: int) -> tuple[list[tuple[int, tuple[int, ...]]], Split]:
        """`shards` and the tensor's Split. Tensors that differ only in their layer or expert number (and so in
        nothing sharding looks at, the expert's owner aside) share one answer, the same list object."""
        template = _DIGITS.sub("#", t.name)
        owner = None
        if t.expert is not None and self.par.ep > 1:
            owner = expert_owner(t.expert, self.dims.n_experts or t.expert + 1, self.par.ep)[0]
        sibling = self.weights.get(t.name.rsplit(".", 1)[0]) if t.name.endswith("_scale_inv") else None
        key = (template, t.role, t.expert is not None, t.shape, t.dtype, owner, stage, sibling)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = (self._shards(t, stage), _split_of_template(template, t.role,
                                                                                   t.expert is not None))
        return found

    def _shards(self, t: TensorInfo, stage: int) -> list[tuple[int, tuple[int, ...]]]:
        split = split_of(t)
        par = self.par
        ranks = [(d, r) for d in range(par.dp) for r in range(par.tp)]
        if not split.expert:
            shape = self.dense_shape(t, split)
            return [(par.rank(d, stage, r), shape) for d, r in ranks]
        out = []
        owner = None
        if split.kind != "stacked" and t.expert is not None and par.ep > 1:
            owner = expert_owner(t.expert, self.dims.n_experts or t.expert + 1, par.ep)[0]
        shapes: dict[int, tuple[int, ...]] = {}
        for d, r in ranks:
            ep_rank = par.moe_group(d, r)[0]
            if owner is not None and ep_rank != owner:
                continue
            if ep_rank not in shapes:
                shapes[ep_rank] = self.expert_shape(t, split, ep_rank)
            out.append((par.rank(d, stage, r), shapes[ep_rank]))
        return out


def _is_bnb(config: Mapping | None) -> bool:
    q = (config or {}).get("quantization_config") or {}
    return isinstance(q, Mapping) and q.get("quant_method") == "bitsandbytes"


def shard_nbytes(t: TensorInfo, shape: tuple[int, ...]) -> int:
    """Bytes of a shard: the tensor's bytes scaled by its element count (exact: elements are whole)."""
    total = prod(t.shape) if t.shape else 1
    part = prod(shape) if shape else 1
    return t.nbytes * part // total if total else t.nbytes


def shard_params(t: TensorInfo, shape: tuple[int, ...]) -> int:
    total = prod(t.shape) if t.shape else 1
    part = prod(shape) if shape else 1
    return t.params * part // total if total else t.params


@dataclass(frozen=True)
class StagePlan:
    """Which tensors each pipeline stage loads: decoder layers [start, end), the embedding on the first stage,
    the final norm and lm_head on the last (a tied lm_head is the embedding, copied to the last stage when
    pp > 1); layers past n_layers (MTP) and role `mtp` are not loaded."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def stage_of(self, t: TensorInfo, n_layers: int) -> int | None:
        pp = len(self.starts)
        if t.role == "mtp" or (t.layer is not None and t.layer >= n_layers):
            return None
        named = _LAYER_IN_NAME.search(t.name) if t.layer is None else None
        if named and int(named.group(1)) >= n_layers:  # DeepSeek's MTP block keeps its own embed_tokens
            return None
        if t.layer is not None:
            for s in range(pp):
                if self.starts[s] <= t.layer < self.ends[s]:
                    return s
            return None
        if t.role == "embedding":
            return 0
        if t.role in ("output", "norm"):
            return pp - 1
        return 0


def stage_plan(n_layers: int, par: Parallel) -> StagePlan:
    bounds = [par.layers(n_layers, s, par.pp) for s in range(par.pp)]
    if any(end <= start for start, end in bounds):
        raise UsageError(f"pipeline parallel size {par.pp} leaves a stage without layers ({n_layers} layers)",
                         hint="use a smaller pipeline parallel size")
    return StagePlan(tuple(b[0] for b in bounds), tuple(b[1] for b in bounds))
