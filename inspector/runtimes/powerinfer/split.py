"""How many FFN neurons PowerInfer puts on the GPU: from a `.generated.gpuidx`, or from its own budget rule.

Source: SJTU-IPADS/PowerInfer `llama.cpp` (d3ebd7c5), `llm_load_gpu_split` and `llm_load_gpu_split_with_budget`,
and `powerinfer-py/powerinfer/solver.py`:
1. Nothing is split when `--disable-gpu-index` is given or when the dense tensors did not all fit the budget
   (`disable_ffn_split || !alloc.tensor_offload_complete`), nor in a build without CUDA.
2. A cached `<model>.generated.gpuidx` is used unless `--reset-gpu-index`, when it has 2·n_layer tensors and its
   `split.vram_capacity` is at most the budget left now (`check_vram_allocable`).
3. Otherwise PowerInfer runs `python3 -m powerinfer` on the `activation/` folder beside the model (it needs it:
   "activation files under ... not found" leaves the split empty), with the capacity
       slice_size           = n_ff · type_size(ffn_up) / block_size(ffn_up)          (integer division)
       vram_bytes_per_slice = int(slice_size · (4.5 if the model has ffn_gate else 2))
       neuron_cap           = floor(budget_left / vram_bytes_per_slice) · 4
   and the solver picks binary groups of 256 neurons (`freq.view(-1, 256)`, so n_ff must be a multiple of 256)
   maximising the profiled activation counts under `groups <= int(neuron_cap / 256)`. cvxopt's `ilp(c, G, h, A, b,
   I, B)` is called with the full index set in the B (binary) position. Every group has a positive count in real
   profiles, so the optimum takes `min(int(neuron_cap / 256), n_layer · n_ff / 256)` groups: the total number of
   GPU neurons is known from the header; how they spread over layers needs the activation files.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ...formats.ggml_types import type_by_name
from .gpuindex import GpuIndex
from .layout import SparseLayout

SOLVER_BATCH = 256  # solver.py --batch default, passed by no caller: neurons per group


@dataclass(frozen=True)
class FfnSplit:
    """The neuron split: `source` is "none", "index" (per-layer counts from the file) or "solver" (a total)."""

    source: str
    reason: str
    neurons: tuple[int, ...] | None = None  # per layer ("index")
    total: int = 0
    neuron_cap: int | None = None  # what C++ passes to the solver ("solver")
    index: GpuIndex | None = None

    @property
    def label(self) -> str:
        return {"none": "no FFN split", "index": "split file", "solver": "PowerInfer's solver"}[self.source]


def neuron_cap(layout: SparseLayout, budget_left: int) -> int:
    """The `--capacity` llm_load_gpu_split_with_budget gives the solver (layer 0's ffn_up and ffn_gate decide)."""
    up = next(t for t in layout.ffn_matrices(0) if t.name.endswith("ffn_up.weight"))
    has_gate = any(t.name.endswith("ffn_gate.weight") for t in layout.ffn_matrices(0))
    gtype = type_by_name(up.dtype)
    assert gtype is not None, up.dtype
    slice_size = up.shape[1] * gtype.type_size // gtype.block_size
    per_slice = int(slice_size * (4.5 if has_gate else 2))  # C++: int = int * double (truncation)
    return math.floor(budget_left / per_slice) * 4


def solver_neurons(layout: SparseLayout, n_ff: int, cap: int) -> int:
    """GPU neurons the solver chooses in total: whole groups of 256, at most the capacity's."""
    groups = min(int(cap / SOLVER_BATCH), layout.n_layer * (n_ff // SOLVER_BATCH))
    return groups * SOLVER_BATCH


def choose_split(layout: SparseLayout, *, n_ff: int, gpu: bool, complete: bool, budget_left: int,
                 disabled: bool, reset: bool, index: GpuIndex | None, model_path: str) -> FfnSplit:
    """PowerInfer's decision (module docstring), with the reason in words."""
    if not gpu:
        return FfnSplit("none", "no GPU budget: every FFN neuron on the CPU (llm_load_gpu_split needs CUDA)")
    if disabled:
        return FfnSplit("none", "--disable-gpu-index: every FFN neuron on the CPU")
    if not complete:
        return FfnSplit("none", "the dense tensors did not all fit the VRAM budget, so PowerInfer splits no FFN "
                                "neuron (tensor_offload_complete is false)")
    stale = ""
    if index is not None and not reset:
        if index.n_layer != layout.n_layer:
            stale = f"{index.path} has {2 * index.n_layer} tensors, not 2 x {layout.n_layer} layers; "
        elif index.vram_capacity > budget_left:
            stale = (f"{index.path} was made for {index.vram_capacity:,} bytes of VRAM, more than the "
                     f"{budget_left:,} left now (check_vram_allocable); ")
        else:
            return FfnSplit("index", f"split read from {index.path}", index.neurons, sum(index.neurons),
                            index=index)
    elif index is not None:
        stale = f"--reset-gpu-index: {index.path} is regenerated; "
    activation = activation_dir(model_path)
    if activation is not None and not os.path.isdir(activation):
        return FfnSplit("none", stale + f"no {activation} beside the model: PowerInfer cannot run its solver "
                                        "and places no FFN neuron on the GPU")
    if n_ff % SOLVER_BATCH:
        return FfnSplit("none", stale + f"n_ff {n_ff} is not a multiple of {SOLVER_BATCH}: the solver "
                                        "(freq.view(-1, 256)) fails and the split stays empty")
    cap = neuron_cap(layout, budget_left)
    where = "the activation/ statistics" if activation else "the activation/ statistics of the model's repo"
    return FfnSplit("solver", stale + f"PowerInfer's solver over {where}, capacity {cap:,} neurons",
                    total=solver_neurons(layout, n_ff, cap), neuron_cap=cap)


def activation_dir(model_path: str) -> str | None:
    """`<model folder>/activation` for a local model; None when the model is not a local file (a Hub repo:
    PowerInfer's repos ship the folder, so it is assumed there)."""
    if not os.path.isfile(model_path):
        return None
    return os.path.join(os.path.dirname(os.path.abspath(model_path)), "activation")
