"""Runtime memory beyond the weights: KV cache, recurrent state, buffers, budgets, fit search, training.

This is the runtime-neutral toolkit the runtimes build on: hyperparameters (`hparams`), the ggml (llama.cpp-style)
KV cache, recurrent state and buffer arithmetic (`kv`, `state`, `buffers`, `plan`), budgets, the generic per-device
table (`table`) and training arithmetic. Formulas and their sources: docs/memory.md.
"""
from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("BudgetVerdict", "DeviceVerdict", "check_totals", "parse_budget", "parse_size"), ".budget"),
    **dict.fromkeys(("HParams", "from_config", "from_gguf", "hparams_of"), ".hparams"),
    **dict.fromkeys(("KV_CACHE_TYPES", "ContextShape", "LayerKV", "context_shape", "kv_bytes_per_token", "kv_layers"),
                    ".kv"),
    **dict.fromkeys(("DeviceMemory", "LayerMemory", "MemoryOptions", "MemoryPlan", "check_budgets", "memory_plan"),
                    ".plan"),
    **dict.fromkeys(("LayerState", "state_layers"), ".state"),
    **dict.fromkeys(("TrainMemory", "TrainOptions", "train_memory"), ".train"),
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
