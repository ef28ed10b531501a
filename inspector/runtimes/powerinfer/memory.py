"""PowerInfer's memory per device: weights as placed, its KV cache as its llama.cpp fork allocates it, buffers.

Sources: SJTU-IPADS/PowerInfer `llama.cpp` (d3ebd7c5) and `ggml.h`:
- `llama_kv_cache_init`: one 1-D K and one 1-D V tensor of `n_ctx · n_layer · n_embd_gqa` elements each (f16, or
  f32 with --memory-f32; n_ctx as given by -c, not padded), in a host buffer of
  `2 · n_elements · type_size + 2 · ggml_tensor_overhead()` bytes that is allocated (and zeroed) whatever is
  offloaded; `ggml_cuda_assign_buffers_no_scratch` then gives V (and K) a GPU copy. So the host always holds the
  whole cache and the GPU holds V, or V and K, besides.
- `ggml_tensor_overhead()` = sizeof(struct ggml_object) + sizeof(struct ggml_tensor) = 32 + 352 = 384 bytes on
  64-bit builds (ggml.h of the fork: ggml_object {size_t offs, size; ggml_object *next; enum type; char pad[4]};
  ggml_tensor with its perf counters, name[64], extra and padding[12]).
- `llama_new_context_with_model`: logits `n_vocab` floats on the host; `buf_compute` of
  `ggml_tensor_overhead() · LLAMA_MAX_NODES (4096)` plus the graph; `alloc_size` measured on the worst-case graph of
  min(n_ctx, n_batch = 512) tokens, held on the host and, in CUDA builds, as the VRAM scratch
  (`ggml_cuda_set_scratch_size(alloc_size)`). The graph part is an estimate (`compute` below, the same per-layer
  peak formula as inspector/memory/buffers.py with flash attention off, as this fork has none).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping

from ...memory.budget import BudgetVerdict, check_totals
from ...memory.buffers import estimate_buffers
from ...memory.hparams import HParams
from ...memory.kv import ContextShape
from ...memory.table import MemoryTable, Part
from .place import GPU

TENSOR_OVERHEAD = 384  # ggml_tensor_overhead() of the fork on 64-bit builds (module docstring)
LLAMA_MAX_NODES = 4096
DEFAULT_N_BATCH = 512  # common.h n_batch
PARTS = (Part("weights", "weights"), Part("kv_cache", "kv cache"), Part("buffers", "buffers", "estimate"),
         Part("overhead", "overhead", "margin"))
BASIS = {
    "weights": "exact: tensor bytes from the headers where PowerInfer puts them, hot FFN rows and the split's "
               "index included (docs/powerinfer.md)",
    "kv_cache": "exact: llama_kv_cache_init of PowerInfer's llama.cpp: K and V of n_ctx x n_layer x n_embd_gqa "
                "elements in a host buffer always (+ 2 x 384 bytes of tensor headers), V and then K copied to the "
                "GPU when the VRAM budget reserved them",
    "buffers": "estimate: host logits n_vocab x 4 B and buf_compute 384 x 4096 B (exact formulas) + the graph "
               "allocation of min(n_ctx, 512) tokens on the host and as the GPU scratch (docs/powerinfer.md)",
    "overhead": "margin: --overhead PCT of weights + kv_cache + buffers per device",
}


@dataclass(frozen=True)
class PowerInferMemory:
    devices: Mapping[str, Mapping[str, int]]
    n_ctx: int
    kv_type: str
    kv_elements: int  # elements of K (= of V)
    kv_on: Mapping[str, str]  # {"k": device, "v": device} where attention reads them
    n_layer: int
    n_embd_gqa: int
    overhead_pct: float
    plan: Any  # the SparsePlan or DensePlan
    notes: tuple[str, ...] = ()

    @property
    def table(self) -> MemoryTable:
        title = (f"PowerInfer memory at -c {self.n_ctx:,} ({self.kv_type} K and V, "
                 f"{2 * self.n_layer * self.n_embd_gqa * _width(self.kv_type):,} bytes of KV per token)")
        return MemoryTable(PARTS, {d: dict(row) for d, row in self.devices.items()}, title)

    @property
    def totals(self) -> dict[str, int]:
        return self.table.totals

    def check(self, budgets: Mapping[str, int]) -> BudgetVerdict:
        return check_totals(self.totals, budgets)

    def kv_read_bytes(self, n_past: int) -> dict[str, int]:
        """Bytes of cache one decoded token reads at position n_past: all past K and V rows, from where
        attention reads them (the GPU copy when there is one)."""
        per = n_past * self.n_layer * self.n_embd_gqa * _width(self.kv_type)
        out: dict[str, int] = {}
        for which in ("k", "v"):
            out[self.kv_on[which]] = out.get(self.kv_on[which], 0) + per
        return out

    def as_dict(self) -> dict[str, Any]:
        plan = self.plan
        doc: dict[str, Any] = {
            "context": {"n_ctx": self.n_ctx, "kv_type": self.kv_type, "overhead_pct": self.overhead_pct},
            "kv": {"elements_per_tensor": self.kv_elements, "k_device": self.kv_on["k"],
                   "v_device": self.kv_on["v"]},
            "devices": {d: self.table.row_dict(d) for d in self.table.devices},
            "mode": plan.mode, "n_gpu_layers": plan.n_gpu_layers,
            "basis": dict(BASIS), "notes": list(self.notes),
        }
        if plan.mode == "sparse":
            s = plan.split
            doc["powerinfer"] = {
                "vram_budget": plan.settings.budget, "dense_gpu_bytes": plan.dense_gpu_bytes,
                "tensor_offload_complete": plan.complete, "kv_reserved": plan.kv_reserved,
                "budget_left_for_ffn": plan.budget_left, "split_source": s.source, "split_reason": s.reason,
                "neuron_cap": s.neuron_cap, "gpu_neurons": s.total,
                "gpu_neurons_per_layer": list(s.neurons) if s.neurons is not None else None,
                "ffn_gpu_bytes": plan.ffn_gpu_bytes,
            }
        return doc


def _width(kv_type: str) -> int:
    return 4 if kv_type == "f32" else 2


def powerinfer_memory(plan: Any, hp: HParams, *, n_ctx: int, f32: bool, overhead_pct: float) -> PowerInferMemory:
    kv_type = "f32" if f32 else "f16"
    n_layer = plan.n_layer
    gqa = hp.n_embd_k_gqa(0)
    elements = n_ctx * n_layer * gqa
    cache = elements * _width(kv_type)
    rows: dict[str, dict[str, int]] = {}

    def add(device: str, part: str, n: int) -> None:
        row = rows.setdefault(device, {p.key: 0 for p in PARTS})
        row[part] += n

    for t in plan.checkpoint.tensors:
        if t.device is not None:
            add(t.device, "weights", t.nbytes)
    add("cpu", "kv_cache", 2 * cache + 2 * TENSOR_OVERHEAD)
    kv_on = {"v": GPU if plan.v_on_gpu else "cpu", "k": GPU if plan.k_on_gpu else "cpu"}
    for which in ("v", "k"):
        if kv_on[which] == GPU:
            add(GPU, "kv_cache", cache)
    compute = _compute_estimate(hp, n_ctx)
    add("cpu", "buffers", (hp.n_vocab or 0) * 4 + TENSOR_OVERHEAD * LLAMA_MAX_NODES + compute)
    if GPU in rows:
        add(GPU, "buffers", compute)
    pct = Fraction(str(overhead_pct))
    for row in rows.values():
        base = sum(v for k, v in row.items() if k != "overhead")
        row["overhead"] = math.ceil(base * pct / 100)
    notes: tuple[str, ...] = ()  # the plan's own notes travel with the placement
    if plan.mode == "sparse" and plan.split.source != "none" and plan.settings.budget is not None:
        notes += (f"the VRAM budget covers weights and KV ({plan.settings.budget:,} bytes); PowerInfer's GPU "
                  "scratch and split index come on top",)
    return PowerInferMemory(rows, n_ctx, kv_type, elements, kv_on, n_layer, gqa, overhead_pct, plan, notes)


def _compute_estimate(hp: HParams, n_ctx: int) -> int:
    """The worst-case graph allocation: one device's compute buffer for min(n_ctx, 512) tokens over n_ctx cells."""
    t = min(n_ctx, DEFAULT_N_BATCH)
    shape = ContextShape(n_ctx, n_ctx, n_ctx, 1, 1, t, True)
    buffers = estimate_buffers(hp, shape, flash_attn=False, layer_devices={0: "cpu"},
                               output_device="cpu", n_kv=n_ctx)
    return buffers["cpu"].compute
