"""vLLM's paged KV cache: the page of each attention layer, how layers are grouped, the blocks each worker
allocates from the memory left, and the maximum concurrency vLLM logs.

Read in vllm-project/vllm at commit 001cabc1 (2026):
- `vllm/v1/kv_cache_interface.py`: `FullAttentionSpec.real_page_size_bytes` = block_size x num_kv_heads x
  (head_size + head_size_v) x dtype bytes (K and V); `MLAAttentionSpec` = block_size x 1 x head_size x dtype bytes,
  head_size = kv_lora_rank + qk_rope_head_dim, one latent per token not split by TP; max memory of one request:
  full attention cdiv(max_model_len, block) pages, `SlidingWindowSpec` (cdiv(min(window - 1 +
  max_num_batched_tokens, max_model_len), block) + 1) pages.
- `vllm/v1/core/kv_cache_utils.py`: `get_kv_cache_groups` (one group when every layer has the same spec; the
  uniform-type case when only page sizes differ; else `unify_kv_cache_spec_page_size` and
  `_get_kv_cache_groups_uniform_page_size`: group size = the smallest layer count of a type, or the largest when it
  is below 1.5x the smallest, layers[i::num_groups]); `get_kv_cache_configs` projects the groups on each worker,
  checks `_check_enough_kv_cache_memory`, computes `get_num_blocks` = available // page // group_size per worker and
  keeps the smallest on every worker; `get_max_concurrency_for_kv_cache_config`; `_report_kv_cache_config`
  ("GPU KV cache size: N tokens", "Maximum concurrency for L tokens per request: X.XXx").
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Sequence

from ...memory.sharding import cdiv
from .layout import Settings, vllm_pp_layers


@dataclass(frozen=True)
class LayerSpec:
    kind: str  # "full", "sliding" or "mla"
    page: int  # bytes of one block of this layer on one rank
    window: int = 0

    def max_bytes(self, s: Settings, block: int) -> int:
        """Bytes one request of max_model_len tokens needs in this layer (max_memory_usage_bytes)."""
        pages = cdiv(s.max_model_len, block)
        if self.kind == "sliding":
            tokens = min(self.window - 1 + s.max_num_batched_tokens, s.max_model_len)
            pages = cdiv(tokens, block) + 1
        return pages * self.page


def layer_specs(s: Settings) -> list[LayerSpec]:
    """The KV spec of every decoder layer on one rank (TP splits KV heads, replicated below one per rank)."""
    m, b = s.model, s.block_size
    if m.is_mla:
        return [LayerSpec("mla", b * (m.kv_lora_rank + m.qk_rope_head_dim) * s.kv_bytes)] * m.n_layers
    heads = max(1, m.n_kv_heads // s.tp)
    page = b * heads * (m.head_dim + m.head_dim) * s.kv_bytes
    return [LayerSpec("sliding", page, m.window(il)) if m.window(il) else LayerSpec("full", page)
            for il in range(m.n_layers)]


@dataclass(frozen=True)
class Group:
    spec: LayerSpec
    layers: tuple[int, ...]


@dataclass(frozen=True)
class KvPlan:
    """The groups (model-wide), the block size after page unification, and whether the uniform-type rule applies
    (one group, per-layer pages summed)."""

    groups: tuple[Group, ...]
    block: int
    uniform_type: bool = False

    def page(self) -> int:
        return self.groups[0].spec.page

    def worker_layers(self, stage_layers: range) -> list[tuple[Group, list[int]]]:
        return [(g, [il for il in g.layers if il in stage_layers]) for g in self.groups]


def kv_groups(s: Settings, specs: Sequence[LayerSpec]) -> KvPlan:
    if len(set(specs)) == 1:
        return KvPlan((Group(specs[0], tuple(range(len(specs)))),), s.block_size)
    if len({sp.kind for sp in specs}) == 1 and len({sp.window for sp in specs}) == 1:
        return KvPlan(tuple(Group(sp, (il,)) for il, sp in enumerate(specs)), s.block_size, uniform_type=True)
    biggest = max(sp.page for sp in specs)
    if any(biggest % sp.page for sp in specs):
        from ...errors import UsageError

        raise UsageError("vLLM cannot unify these layers' KV page sizes (not multiples of each other)")
    ratio = {sp: biggest // sp.page for sp in specs}
    unified = [LayerSpec(sp.kind, biggest, sp.window) for sp in specs]
    block = s.block_size * max(ratio.values())
    by_type: dict[LayerSpec, list[int]] = defaultdict(list)
    for il, sp in enumerate(unified):
        by_type[sp].append(il)
    smallest = min(len(v) for v in by_type.values())
    largest = max(len(v) for v in by_type.values())
    size = largest if largest < smallest * 1.5 else smallest
    groups = []
    for sp, layers in by_type.items():
        n = cdiv(len(layers), size)
        groups += [Group(sp, tuple(layers[i::n])) for i in range(n)]
    return KvPlan(tuple(groups), block)


@dataclass(frozen=True)
class WorkerKv:
    """One pipeline stage's KV layout (every TP rank of a stage holds the same)."""

    stage: int
    group_size: int  # KV tensors of the worker (layers per group, padded)
    page: int  # bytes of one block in one tensor (uniform type: summed over the worker's layers)
    needed: int  # bytes one max_model_len request needs (_max_memory_usage_bytes_from_groups)

    def blocks(self, available: int) -> int:
        return max(0, available // self.page // self.group_size) if self.page else 0

    def bytes(self, blocks: int) -> int:
        return self.group_size * self.page * blocks


def workers(s: Settings, plan: KvPlan) -> list[WorkerKv]:
    out = []
    for stage in range(s.pp):
        start, end = vllm_pp_layers(s.model.n_layers, stage, s.pp)
        projected = plan.worker_layers(range(start, end))
        if plan.uniform_type:
            page = sum(g.spec.page for g, layers in projected if layers)
            needed = sum(g.spec.max_bytes(s, plan.block) for g, layers in projected if layers)
            out.append(WorkerKv(stage, 1, page, needed))
            continue
        size = max(len(layers) for _, layers in projected)
        page = plan.page()
        needed = size * page * sum(cdiv(g.spec.max_bytes(s, plan.block), page) for g, _ in projected)
        out.append(WorkerKv(stage, size, page, needed))
    return out


def max_concurrency(s: Settings, plan: KvPlan, worker: WorkerKv, blocks: int) -> Fraction:
    """get_max_concurrency_for_kv_cache_config of a worker (kept exact; vLLM prints it with two decimals)."""
    if plan.uniform_type:
        per_request = cdiv(worker.needed, worker.page)
    else:
        per_request = cdiv(sum(g.spec.max_bytes(s, plan.block) for g in plan.groups), plan.page())
    return Fraction(blocks, per_request) if per_request else Fraction(0)


def kv_tokens(plan: KvPlan, blocks: int) -> int:
    """"GPU KV cache size: N tokens": num_blocks // number of groups x block size."""
    groups = 1 if plan.uniform_type else len(plan.groups)
    return blocks // groups * plan.block


def largest_length(s: Settings, worker: WorkerKv, plan: KvPlan, available: int) -> int:
    """_estimate_max_model_len_from_groups: the longest max_model_len whose one request fits `available`."""
    lo, hi, best = 1, s.max_model_len, 0
    while lo <= hi:
        mid = (lo + hi) // 2
        probe = replace(s, max_model_len=mid)
        need = workers(probe, plan)[worker.stage].needed
        if need <= available:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best
