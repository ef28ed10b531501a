"""vLLM's memory per rank: weights by role (exact), the KV cache vLLM allocates (exact blocks x pages from the
memory left under --gpu-memory-utilization), the estimates it measures at start-up, the headroom, what is free.

`Worker.determine_available_memory` (vllm/v1/worker/gpu_worker.py): available KV memory = total GPU memory x
gpu_memory_utilization - (weights + torch activation peak of the profiling run + non-torch memory), or
--kv-cache-memory when given (which ignores the utilization). The blocks follow kvcache.py; every worker of an
engine keeps the smallest count (`get_kv_cache_configs`). The verdict asks for what vLLM needs to start with
`min_sequences` requests of max_model_len tokens: weights, estimates, their KV, and the headroom (or the CUDA
graphs, when larger).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Mapping

from ...memory.serving import ServingReport
from ...memory.table import MemoryTable, Part
from ...model import ROLES
from .estimates import activation_peak, cuda_graphs, non_torch
from .kvcache import KvPlan, WorkerKv, kv_groups, kv_tokens, largest_length, layer_specs, max_concurrency, workers
from .layout import Settings

GIB = 1 << 30


def gib(n: int) -> str:
    """Sizes in refusals, as vLLM words them (GiB with one decimal; MiB below one GiB)."""
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / (1 << 20):.0f} MiB"


@dataclass
class _Rank:
    device: str
    stage: int
    engine: int
    weights: dict[str, int]
    budget: int | None
    activation: int
    non_torch: int
    graphs: int

    @property
    def weight_bytes(self) -> int:
        return sum(self.weights.values())


def _ranks(s: Settings, roles: Mapping[str, Mapping[str, int]], budgets: Mapping[str, int]) -> list[_Rank]:
    out = []
    for r in range(s.world):
        stage = (r // s.tp) % s.pp
        dev = f"cuda:{r}"
        out.append(_Rank(dev, stage, r // (s.tp * s.pp), dict(roles.get(dev, {})), budgets.get(dev),
                         activation_peak(s, stage), non_torch(s), cuda_graphs(s, stage)))
    return out


def _available(s: Settings, rank: _Rank) -> int | None:
    if s.kv_cache_memory is not None:
        return s.kv_cache_memory
    if rank.budget is None:
        return None
    return int(rank.budget * Fraction(str(s.utilization))) - rank.weight_bytes - rank.activation - rank.non_torch


def _per_request_blocks(s: Settings, plan: KvPlan, w: WorkerKv) -> int:
    if plan.uniform_type:
        return -(-w.needed // w.page)
    return w.needed // (w.group_size * w.page)


def auto_fit(s: Settings, ranks: list[_Rank]) -> Settings:
    """`--max-model-len -1` (`_auto_fit_max_model_len`, kv_cache_utils.py): the longest length whose one request
    fits every worker's available memory, at most the model's."""
    plan = kv_groups(s, layer_specs(s))
    stage_kv = workers(s, plan)
    lengths = [largest_length(s, stage_kv[r.stage], plan, a) for r in ranks
               if (a := _available(s, r)) is not None]
    return replace(s, max_model_len=max(1, min(lengths))) if lengths and min(lengths) < s.max_model_len else s


def vllm_memory(s: Settings, roles: Mapping[str, Mapping[str, int]], budgets: Mapping[str, int]) -> ServingReport:
    """The report for per-device role bytes (`role_bytes` of a placement, or the search's sums)."""
    ranks = _ranks(s, roles, budgets)
    fitted: tuple[str, ...] = ()
    if s.auto_fit:
        longest = s.max_model_len
        s = auto_fit(s, ranks)
        if s.max_model_len < longest:
            fitted = (f"Auto-fit max_model_len: reduced from {longest} to {s.max_model_len} to fit in available GPU "
                      "memory (--max-model-len -1)",)
    plan = kv_groups(s, layer_specs(s))
    stage_kv = workers(s, plan)
    refusal: str | None = None
    longest: int | None = None
    blocks_by_engine: dict[int, int] = {}
    for rank in ranks:
        w = stage_kv[rank.stage]
        available = _available(s, rank)
        if available is None:
            blocks = _per_request_blocks(s, plan, w) * s.min_sequences
        else:
            blocks = w.blocks(available)
            if refusal is None:
                refusal, longest = _refusal(s, plan, w, rank, available)
        blocks_by_engine[rank.engine] = min(blocks_by_engine.get(rank.engine, blocks), blocks)
    present = [r for r in ROLES if any(rank.weights.get(r) for rank in ranks)]
    cpu = {role: n for role, n in roles.get("cpu", {}).items() if n}
    present += [r for r in ROLES if cpu.get(r) and r not in present]
    rows: dict[str, dict[str, int]] = {}
    required: dict[str, int] = {}
    for rank in ranks:
        w = stage_kv[rank.stage]
        kv = w.bytes(blocks_by_engine[rank.engine])
        row = {role: rank.weights.get(role, 0) for role in present}
        row.update(kv_cache=kv, activation=rank.activation, non_torch=rank.non_torch, cuda_graphs=rank.graphs)
        need_kv = w.bytes(_per_request_blocks(s, plan, w) * s.min_sequences)
        base = rank.weight_bytes + rank.activation + rank.non_torch
        if rank.budget is not None and s.kv_cache_memory is None:
            reserved = rank.budget - int(rank.budget * Fraction(str(s.utilization)))
            row["headroom"] = max(0, reserved - rank.graphs)
            row["free"] = max(0, rank.budget - (base + kv + rank.graphs + row["headroom"]))
            required[rank.device] = base + need_kv + max(reserved, rank.graphs)
        else:
            row["headroom"] = 0
            total = base + kv + rank.graphs
            row["free"] = max(0, rank.budget - total) if rank.budget is not None else 0
            required[rank.device] = base + max(kv, need_kv) + rank.graphs
        rows[rank.device] = row
    if cpu:
        rows["cpu"] = {role: cpu.get(role, 0) for role in present}
        required["cpu"] = sum(cpu.values())
    parts = tuple(Part(role, role) for role in present) + (
        Part("kv_cache", "kv cache"), Part("activation", "activation peak", "estimate"),
        Part("non_torch", "non-torch", "estimate"), Part("cuda_graphs", "cuda graphs", "estimate"),
        Part("headroom", "headroom", "margin"), Part("free", "free", in_total=False))
    facts, title = _facts(s, plan, stage_kv, blocks_by_engine)
    facts["kv_cache"]["longest_max_model_len"] = longest
    notes = fitted + (() if any(r.budget is not None for r in ranks) or s.kv_cache_memory is not None else (
        "no --budget: the KV cache row is what one max_model_len request needs; give --budget cuda:K=SIZE (each "
        "GPU's memory) for the blocks vLLM allocates and its maximum concurrency",))
    return ServingReport(MemoryTable(parts, rows, title), required, facts, notes, refusal)


def _refusal(s: Settings, plan: KvPlan, w: WorkerKv, rank: _Rank, available: int
             ) -> tuple[str | None, int | None]:
    """vLLM's refusal on this rank, if any, and the longest max_model_len it would accept (None: no memory)."""
    if available <= 0:
        return (f"vLLM would refuse to start: no memory left for the KV cache on {rank.device} (weights "
                f"{gib(rank.weight_bytes)} + activation {gib(rank.activation)} + non-torch {gib(rank.non_torch)} "
                f"exceed {s.utilization} x {gib(rank.budget or 0)}); raise --gpu-memory-utilization or add GPUs "
                "(-tp, -pp)", None)
    if w.needed > available:
        longest = largest_length(s, w, plan, available)
        return (f"vLLM would refuse to start: one {s.max_model_len:,}-token sequence needs {gib(w.needed)} of KV per "
                f"rank, {gib(available)} left on {rank.device}; use --max-model-len {longest} or less, raise "
                "--gpu-memory-utilization, or add GPUs (-tp, -pp)", longest)
    return None, None


def _facts(s: Settings, plan: KvPlan, stage_kv: list[WorkerKv], blocks: Mapping[int, int]
           ) -> tuple[dict[str, Any], str]:
    first = stage_kv[0]
    n = blocks[0]
    conc = max_concurrency(s, plan, first, n)
    tokens = kv_tokens(plan, n)
    facts = {
        "runtime_settings": {"tensor_parallel_size": s.tp, "pipeline_parallel_size": s.pp,
                             "data_parallel_size": s.dp, "enable_expert_parallel": s.expert_parallel,
                             "max_model_len": s.max_model_len, "max_num_seqs": s.max_num_seqs,
                             "max_num_batched_tokens": s.max_num_batched_tokens,
                             "gpu_memory_utilization": s.utilization, "block_size": plan.block,
                             "kv_cache_bytes_per_element": s.kv_bytes, "dtype": s.dtype},
        "kv_cache": {"groups": len(plan.groups), "num_gpu_blocks": n, "tokens": tokens,
                     "page_bytes": [w.page for w in stage_kv], "tensors_per_rank": [w.group_size for w in stage_kv],
                     "request_bytes": [w.needed for w in stage_kv],
                     "max_concurrency": round(float(conc), 2), "max_full_length_requests": int(conc),
                     "engines": len(blocks), "min_sequences": s.min_sequences},
    }
    title = (f"vLLM per rank (docs/vllm.md): {n:,} KV blocks of {plan.block} tokens = {tokens:,} tokens; maximum "
             f"concurrency for {s.max_model_len:,} tokens per request: {float(conc):.2f}x"
             + (f" per engine ({len(blocks)} engines)" if len(blocks) > 1 else ""))
    return facts, title
