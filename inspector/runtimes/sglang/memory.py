"""SGLang's memory per rank: weights by role, the KV token pool, the CUDA context estimate, the share
--mem-fraction-static keeps back, and what is free.

Read in sgl-project/sglang (python/sglang/srt, 2025-2026 main):
- `model_executor/model_runner.py` `profile_max_num_token`: rest = memory free after loading the weights -
  memory free before loading x (1 - mem_fraction_static), the minimum over all ranks; max_total_num_tokens =
  rest // cell_size, cell_size = KV heads per rank (max(1, kv_heads / tp)) x (head_dim + v_head_dim) x the rank's
  layers x dtype bytes, or for MLA (kv_lora_rank + qk_rope_head_dim) x layers x dtype bytes (not split by TP);
  --max-total-tokens caps it; it is rounded down to whole pages; "Not enough memory. Please try to increase
  --mem-fraction-static." when nothing is left.
- `mem_cache/memory_pool.py` `MHATokenToKVPool` / `MLATokenToKVPool`: buffers of (size + page_size) slots per layer
  (the padded slot 0 included).
- `init_memory_pool`: max_running_requests defaults to min(max(tokens / context_length x 512, 2048), 4096).
The CUDA context and NCCL buffers exist before SGLang measures free memory: estimated at 512 MiB, plus 512 MiB with
more than one rank (docs/vllm.md).
"""
from __future__ import annotations

from typing import Any, Mapping

from ...memory.serving import ServingReport
from ...memory.table import MemoryTable, Part
from ...model import ROLES
from .settings import MIB, Settings, sglang_pp_layers

CONTEXT = 512 * MIB
NCCL = 512 * MIB
GIB = 1 << 30


def cell_size(s: Settings, stage: int) -> int:
    """KV bytes of one token on a rank of pipeline stage `stage`."""
    m = s.model
    start, end = sglang_pp_layers(m.n_layers, stage, s.pp)
    per_layer = ((m.kv_lora_rank + m.qk_rope_head_dim) if m.is_mla else
                 max(1, m.n_kv_heads // s.tp) * (m.head_dim + m.head_dim))
    return per_layer * (end - start) * s.kv_bytes


def overhead(s: Settings) -> int:
    return CONTEXT + (NCCL if s.tp * s.pp > 1 else 0)


def sglang_memory(s: Settings, roles: Mapping[str, Mapping[str, int]], budgets: Mapping[str, int]) -> ServingReport:
    ranks = [(f"cuda:{r}", (r // s.tp) % s.pp, r // (s.tp * s.pp)) for r in range(s.world)]
    weights = {dev: sum(roles.get(dev, {}).values()) for dev, _, _ in ranks}
    tokens_by_engine: dict[int, int] = {}
    refusal = None
    reserved: dict[str, int] = {}
    for dev, stage, engine in ranks:
        budget = budgets.get(dev)
        if budget is None:
            tokens = s.min_sequences * s.context_length
        else:
            pre = budget - overhead(s)
            reserved[dev] = int(pre * (1 - s.mem_fraction(budget)))
            rest = pre - weights[dev] - reserved[dev]
            tokens = max(0, rest // cell_size(s, stage))
            if tokens <= 0 and refusal is None:
                refusal = (f"SGLang would refuse to start: Not enough memory on {dev} (weights "
                           f"{weights[dev] / GIB:.1f} GiB, {s.mem_fraction(budget)} x memory kept for weights and "
                           "KV); increase --mem-fraction-static or add GPUs (--tp-size, --pp-size)")
        tokens_by_engine[engine] = min(tokens_by_engine.get(engine, tokens), tokens)
    for engine, tokens in tokens_by_engine.items():
        if s.options.max_total_tokens:
            tokens = min(tokens, s.options.max_total_tokens)
        tokens_by_engine[engine] = tokens // s.page_size * s.page_size
    present = [r for r in ROLES if any(roles.get(dev, {}).get(r) for dev, _, _ in ranks)]
    rows: dict[str, dict[str, int]] = {}
    required: dict[str, int] = {}
    for dev, stage, engine in ranks:
        cell = cell_size(s, stage)
        row: dict[str, int] = {role: roles.get(dev, {}).get(role, 0) for role in present}
        kv = (tokens_by_engine[engine] + s.page_size) * cell
        row.update(kv_cache=kv, context=overhead(s), reserved=reserved.get(dev, 0))
        used = weights[dev] + kv + overhead(s) + row["reserved"]
        budget = budgets.get(dev)
        row["free"] = budget - used if budget is not None else 0
        if row["free"] < 0:  # the pool's padding page comes out of the share SGLang keeps back
            row["reserved"] += row["free"]
            row["free"] = 0
        need = (s.min_sequences * s.context_length + s.page_size) * cell
        required[dev] = weights[dev] + overhead(s) + row["reserved"] + need
        rows[dev] = row
    parts = tuple(Part(role, role) for role in present) + (
        Part("kv_cache", "kv cache"), Part("context", "cuda context + nccl", "estimate"),
        Part("reserved", "reserved (1 - mem fraction)", "margin"), Part("free", "free", in_total=False))
    tokens = tokens_by_engine[0]
    running = s.options.max_running_requests or min(max(int(tokens / s.context_length * 512), 2048), 4096)
    first_budget = budgets.get("cuda:0")
    facts: dict[str, Any] = {
        "runtime_settings": {"tp_size": s.tp, "pp_size": s.pp, "dp_size": s.dp, "ep_size": s.ep,
                             "context_length": s.context_length, "page_size": s.page_size,
                             "mem_fraction_static": s.mem_fraction(first_budget) if first_budget else None,
                             "kv_cache_bytes_per_element": s.kv_bytes, "dtype": s.dtype},
        "kv_cache": {"max_total_num_tokens": tokens, "cell_size": [cell_size(s, st) for st in range(s.pp)],
                     "max_running_requests": running, "full_length_requests": tokens // s.context_length,
                     "min_sequences": s.min_sequences},
    }
    notes: list[str] = []
    if not first_budget:
        notes.append("no --budget: the KV row is what one context_length request needs; give --budget cuda:K=SIZE "
                     "(each GPU's memory) for the token pool SGLang allocates")
    elif tokens and tokens < s.context_length:
        notes.append(f"SGLang starts, but its pool holds {tokens:,} tokens: requests longer than that are rejected")
    title = (f"SGLang per rank (docs/vllm.md): KV pool of {tokens:,} tokens ({tokens // s.context_length} "
             f"request(s) of {s.context_length:,} tokens at once); max_running_requests {running}")
    return ServingReport(MemoryTable(parts, rows, title), required, facts, tuple(notes), refusal)
