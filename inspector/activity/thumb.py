"""Rules of thumb people size models with, as named comparison rows beside the exact answer (docs/speed.md):

- "Substratus 1.2x": memory = (weights + KV) x 1.2. The 1.2 (20% overhead) is Substratus.ai's "Calculating GPU
  memory for serving LLMs" (M = P x 4B / (32 / Q) x 1.2, applied to the weights); adding the KV cache inside the
  parentheses is the common extension of it. Compared with the runtime's exact total over all devices.
- "NVIDIA KV formula": KV bytes per token = 2 x n_layers x n_kv_heads x head_dim x 2 (fp16), times context times
  concurrent users (NVIDIA Technical Blog, "Mastering LLM Techniques: Inference Optimization", Nov 2023, in its GQA
  form). Compared with the runtime's exact KV cache and recurrent state.
- "KV capacity": concurrent users = floor((VRAM - weights) / (KV per token x context)) with the formula's KV per
  token and the weights this plan keeps on the GPUs (the folk rule assumes all of them), against the most
  parallel sequences that fit the budgets with this placement.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..memory.hparams import HParams

FP16 = 2


@dataclass(frozen=True)
class ThumbRow:
    name: str
    formula: str
    shortcut: int
    exact: int
    exact_label: str
    unit: str = "bytes"  # or "sequences"

    @property
    def difference(self) -> int:
        return self.shortcut - self.exact

    @property
    def ratio(self) -> float | None:
        return self.shortcut / self.exact if self.exact else None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "formula": self.formula, "shortcut": self.shortcut, "exact": self.exact,
                "exact_is": self.exact_label, "unit": self.unit, "difference": self.difference,
                "ratio": round(self.ratio, 4) if self.ratio is not None else None}


def formula_kv_per_token(hp: HParams) -> int:
    """2 x n_layers x n_kv_heads x head_dim x 2 bytes, with the first layer's KV heads and head size."""
    n_kv = hp.n_head_kv[0] if hp.n_head_kv else 0
    return 2 * hp.n_layer * n_kv * hp.head_k_full * FP16


def thumb_rows(hp: HParams, *, weights: int, ctx: int, parallel: int, exact_total: int, exact_kv: int,
               gpu_budget: int | None = None, gpu_weights: int = 0, exact_parallel: int | None = None
               ) -> tuple[ThumbRow, ...]:
    per_token = formula_kv_per_token(hp)
    kv = per_token * ctx * parallel
    rows = [
        ThumbRow("Substratus 1.2x", f"(weights {weights:,} + formula KV {kv:,}) x 1.2", (weights + kv) * 6 // 5,
                 exact_total, "the runtime's total over all devices"),
        ThumbRow("NVIDIA KV formula", f"2 x {hp.n_layer} layers x {hp.n_head_kv[0] if hp.n_head_kv else 0} KV heads "
                 f"x {hp.head_k_full} x 2 B = {per_token:,} B/token x {ctx:,} x {parallel}", kv, exact_kv,
                 "the runtime's KV cache and state"),
    ]
    if gpu_budget is not None and exact_parallel is not None and per_token:
        users = max(0, (gpu_budget - gpu_weights) // (per_token * ctx))
        rows.append(ThumbRow("KV capacity", f"floor((GPU budget {gpu_budget:,} - weights on GPUs {gpu_weights:,}) / "
                             f"({per_token:,} x {ctx:,}))", users, exact_parallel,
                             "most parallel sequences that fit the budgets with this placement", "sequences"))
    return tuple(rows)
