"""Per-rank tensor rows of a sharded checkpoint, as the serving engines hold them (the rules are in sharding.py):
one row per (tensor, rank) with its shard shape, bytes and dtype; routed experts as vLLM's fused FusedMoE
parameters per layer and rank; per-role byte sums for a search that does not need the rows."""
from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from ..model import Checkpoint, TensorInfo
from .sharding import ModelDims, Parallel, Sharder, Split, out_axis, shard_nbytes, shard_params, stage_plan

DtypeOf = Callable[[TensorInfo, tuple[int, ...], int], tuple[str, int]]


def iter_shards(checkpoint: Checkpoint, dims: ModelDims, par: Parallel):  # type: ignore[no-untyped-def]
    """(tensor, stage or None, rank, shard shape) for every part a rank loads; (tensor, None, -1, shape) for a
    tensor no rank loads. A tied embedding is also yielded for the last stage when pp > 1 (its lm_head copy)."""
    for sharder, t, stages in _tensor_stages(checkpoint, dims, par):
        if not stages:
            yield t, None, -1, t.shape
        for s in stages:
            for rank, shape in sharder.shards(t, s):
                yield t, s, rank, shape


def _tensor_stages(checkpoint: Checkpoint, dims: ModelDims, par: Parallel
                   ) -> Iterator[tuple[Sharder, TensorInfo, tuple[int, ...]]]:
    """Each tensor with the pipeline stages that load it: none, its own, or its own and the last (a tied
    embedding's lm_head copy when pp > 1)."""
    sharder = Sharder(checkpoint, dims, par)
    plan = stage_plan(dims.n_layers, par)
    tied = tied_copy(checkpoint, dims, par)
    for t in checkpoint.tensors:
        stage = plan.stage_of(t, dims.n_layers)
        if stage is None:
            yield sharder, t, ()
        elif tied and t.role == "embedding" and t.layer is None:
            yield sharder, t, (stage, par.pp - 1)
        else:
            yield sharder, t, (stage,)


def role_bytes(tensors: Iterable[TensorInfo]) -> dict[str, dict[str, int]]:
    """Bytes per role of every device the tensors are on."""
    roles: dict[str, dict[str, int]] = {}
    for t in tensors:
        if t.device is not None:
            row = roles.setdefault(t.device, {})
            row[t.role] = row.get(t.role, 0) + t.nbytes
    return roles


W13 = frozenset({"w1", "w3", "gate_proj", "up_proj"})
W2 = frozenset({"w2", "down_proj"})


def fused_expert_name(t: TensorInfo, split: Split) -> str | None:
    """vLLM's FusedMoE parameter holding this per-expert tensor: `<prefix>.experts.w13_weight` (gate and up),
    `w2_weight` (down), with the quantization suffix (`w13_weight_scale_inv`, `w2_qweight` …); None when the tensor
    is not one expert's gate / up / down."""
    if t.expert is None or split.kind not in ("column", "row"):
        return None
    head, sep, _ = t.name.partition(".experts.")
    which = "w13" if split.leaf in W13 else "w2" if split.leaf in W2 else None
    return f"{head}.experts.{which}_{split.param}" if sep and which and split.param else None


@dataclass
class _Fused:
    first: TensorInfo
    ranks: list[tuple[int, tuple[int, ...]]]  # the ranks holding these experts, each with one expert's shard shape
    member: tuple[int, ...]  # shard shape of one expert's tensor (w13: gate's; up adds the same rows)
    experts: set[int]
    parts: int  # member tensors per expert (w13: 2)
    axis: int  # the axis gate and up are stacked on (the output dim: 0, or 1 for AWQ / GPTQ [in, out] layouts)
    nbytes: int = 0
    params: int = 0
    dtype: str = ""


def shard_checkpoint(checkpoint: Checkpoint, dims: ModelDims, par: Parallel, dtype_of: DtypeOf | None = None
                     ) -> tuple[TensorInfo, ...]:
    """Every tensor part each rank loads, as the runtime holds it (`device` cuda:<rank>, params counted once per
    rank); tensors no rank loads are kept with device None. `dtype_of(t, shape, nbytes)` gives the dtype and bytes
    the runtime stores a shard in.

    Per-expert tensors become the FusedMoE parameters vLLM (and SGLang) allocate per layer and rank:
    `…experts.w13_weight` [local experts, gate + up rows per rank, hidden] and `…experts.w2_weight`, with their
    quantization companions; their bytes are the sum of the expert shards. The other tensors keep their file names
    with their shard shapes. Tens of thousands of shards (DeepSeek-V3 under TP 8) are built as copies of one field
    dict per tensor and shape, with the cyclic garbage collector paused (they hold no cycles; its scans of the
    growing heap would cost more than building them)."""
    out: list[TensorInfo] = []
    append, new = out.append, object.__new__
    devices = [f"cuda:{r}" for r in range(par.world)]
    fused: dict[tuple[str, tuple[int, ...]], _Fused] = {}  # (parameter, ranks holding it) -> its experts
    memo: dict[int, tuple[int, int, str, tuple[int, ...]]] = {}  # id of a shared shard list -> one expert's sizes
    paused = gc.isenabled()
    gc.disable()
    try:
        for sharder, t, stages in _tensor_stages(checkpoint, dims, par):
            if not stages:
                append(t.with_(device=None))
            for s in stages:
                shards, split = sharder.shards_and_split(t, s)
                target = fused_expert_name(t, split) if t.expert is not None else None
                if target is not None and shards:  # one expert's shard: the same shape on each rank of its list
                    _add_expert(fused, target, shards, split, t, dtype_of, memo)
                    continue
                shape_fields: dict[tuple[int, ...], dict[str, object]] = {}
                for rank, shape in shards:
                    fields = shape_fields.get(shape)
                    if fields is None:
                        nbytes = shard_nbytes(t, shape)
                        dtype, nbytes = dtype_of(t, shape, nbytes) if dtype_of is not None else (t.dtype, nbytes)
                        fields = shape_fields[shape] = {**t.__dict__, "shape": shape, "nbytes": nbytes,
                                                        "params": shard_params(t, shape), "dtype": dtype}
                    copy = new(TensorInfo)
                    d = copy.__dict__
                    d.update(fields)
                    d["device"] = devices[rank]
                    append(copy)
        for (name, _), f in fused.items():
            member = list(f.member)
            if member:
                member[f.axis] *= f.parts
            shape = (len(f.experts), *member)
            for rank, _shape in f.ranks:
                append(f.first.with_(name=name, shape=shape, nbytes=f.nbytes, params=f.params, dtype=f.dtype,
                                     expert=None, device=devices[rank]))
    finally:
        if paused:
            gc.enable()
    return tuple(out)


def _add_expert(fused: dict[tuple[str, tuple[int, ...]], _Fused], target: str,
                shards: list[tuple[int, tuple[int, ...]]], split: Split, t: TensorInfo, dtype_of: DtypeOf | None,
                memo: dict[int, tuple[int, int, str, tuple[int, ...]]]) -> None:
    """Add one expert's tensor (gate, up or down) to the fused parameter of the ranks holding it. The experts of one
    template share the sharder's list object, and so their shard sizes (`memo`)."""
    sizes = memo.get(id(shards))
    if sizes is None:
        shape = shards[0][1]
        nbytes = shard_nbytes(t, shape)
        dtype, nbytes = dtype_of(t, shape, nbytes) if dtype_of is not None else (t.dtype, nbytes)
        sizes = memo[id(shards)] = (nbytes, shard_params(t, shape), dtype, tuple(rank for rank, _ in shards))
    nbytes, params, dtype, ranks = sizes
    key = (target, ranks)
    f = fused.get(key)
    if f is None:
        parts = 2 if target.rsplit(".", 1)[-1].startswith("w13_") else 1
        shape = shards[0][1]
        f = fused[key] = _Fused(t, shards, shape, set(), parts, out_axis(split, len(shape)) or 0, dtype=dtype)
    f.experts.add(t.expert)  # type: ignore[arg-type]
    f.nbytes += nbytes
    f.params += params


def tied_copy(checkpoint: Checkpoint, dims: ModelDims, par: Parallel) -> bool:
    """Whether the last stage holds its own copy of a tied embedding as lm_head (pp > 1, no lm_head tensor)."""
    return dims.tie_embeddings and par.pp > 1 and not any(t.role == "output" for t in checkpoint.tensors)


def rank_role_bytes(checkpoint: Checkpoint, dims: ModelDims, par: Parallel, dtype_of: DtypeOf | None = None
                    ) -> dict[str, dict[str, int]]:
    """Bytes per role of each rank (`cuda:<rank>`), without building the shard tensors (fit's search). Tensors
    sharing the sharder's answer (one template, shape and dtype) share their per-rank sizes: they are counted, and
    the counts expanded over the ranks at the end."""
    sharder = Sharder(checkpoint, dims, par)
    plan = stage_plan(dims.n_layers, par)
    tied = tied_copy(checkpoint, dims, par)
    sizes: dict[int, list[tuple[int, int]]] = {}  # id of a shard list -> (rank, bytes) per rank
    counts: dict[tuple[int, str], int] = {}
    for t in checkpoint.tensors:
        stage = plan.stage_of(t, dims.n_layers)
        if stage is None:
            continue
        for s in ([stage, par.pp - 1] if tied and t.role == "embedding" and t.layer is None else [stage]):
            shards = sharder.shards(t, s)
            if id(shards) not in sizes:
                sizes[id(shards)] = [(rank, _stored(t, shape, dtype_of)) for rank, shape in shards]
            counts[(id(shards), t.role)] = counts.get((id(shards), t.role), 0) + 1
    out: dict[str, dict[str, int]] = {}
    for (list_id, role), count in counts.items():
        for rank, nbytes in sizes[list_id]:
            row = out.setdefault(f"cuda:{rank}", {})
            row[role] = row.get(role, 0) + count * nbytes
    return out


def _stored(t: TensorInfo, shape: tuple[int, ...], dtype_of: DtypeOf | None) -> int:
    nbytes = shard_nbytes(t, shape)
    return dtype_of(t, shape, nbytes)[1] if dtype_of is not None else nbytes
