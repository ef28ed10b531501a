"""Runtime memory beyond the weights: KV cache, recurrent state, buffers, budgets, fit search, training.

This is the runtime-neutral toolkit the runtimes build on: hyperparameters (`hparams`), the ggml (llama.cpp-style)
KV cache, recurrent state and buffer arithmetic (`kv`, `state`, `buffers`, `plan`), budgets, the generic per-device
table (`table`) and training arithmetic. Formulas and their sources: docs/memory.md.
"""
from __future__ import annotations

from .budget import BudgetVerdict, DeviceVerdict, check_totals, parse_budget, parse_size
from .hparams import HParams, from_config, from_gguf, hparams_of
from .kv import KV_CACHE_TYPES, ContextShape, LayerKV, context_shape, kv_bytes_per_token, kv_layers
from .plan import DeviceMemory, LayerMemory, MemoryOptions, MemoryPlan, check_budgets, memory_plan
from .state import LayerState, state_layers
from .train import TrainMemory, TrainOptions, train_memory


__all__ = [
    "BudgetVerdict", "ContextShape", "DeviceMemory", "DeviceVerdict", "HParams", "KV_CACHE_TYPES", "LayerKV",
    "LayerMemory", "LayerState", "MemoryOptions", "MemoryPlan", "check_budgets", "check_totals", "context_shape",
    "from_config", "from_gguf", "hparams_of", "kv_bytes_per_token", "kv_layers", "memory_plan", "parse_budget",
    "parse_size", "state_layers", "TrainMemory", "TrainOptions", "train_memory",
]
