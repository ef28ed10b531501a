"""PowerInfer's placement of a sparse (PWRI) model under a VRAM budget: the dense tensors, the KV reservation, the
hot FFN neurons.

Source: SJTU-IPADS/PowerInfer `llama.cpp` (d3ebd7c5):
- `llama_set_vram_budget`: `--vram-budget N` gives `(size_t)(N · 1024³)` bytes (N read with `std::stof`, a float);
  without it, the free memory of the main GPU less 256 MiB. Every later step subtracts from this global
  (`llama_reduce_vram_budget`: a request fits when it is at most what is left).
- `buffered_tensor_allocator::flush`: the GPU tiers in order (attention of every layer, then the predictors, then
  the ffn_norms, then the output head), each in creation order; the first tensor that does not fit stops the walk
  (a greedy prefix: later, smaller tensors are not tried). `offloaded_layers` becomes il + 1 at each attn_output
  placed and n_layer + 1 at any output-tier tensor; `tensor_offload_complete` only when every tier fitted.
- `llama_reserve_model_kv_cache`, only when n_gpu_layers >= n_layer + 1: V then K, each `n_ctx · n_layer ·
  n_embd_gqa` elements in f16 (f32 with --memory-f32), each success adding one to n_gpu_layers;
  `llama_kv_cache_init` puts V on the GPU when n_gpu_layers > n_layer + 1 and K when > n_layer + 2.
- `llm_load_gpu_split` (split.py) with the budget left, then `llama_augmentation_model_loader::slice_ffn_mat_to_gpu`:
  for a layer with k of n_ff neurons on the GPU, gate (when present), up and down_t each get a GPU copy of their k
  rows (`create_striped_mat_to_gpu`, `ggml_new_tensor_2d(type, ne0, k)`) while the CPU keeps every row; a layer
  with all its neurons on the GPU moves the whole tensors there (`gpu_bucket == NULL`); its gpu_bucket goes to the
  GPU when 0 < k < n_ff. Without a split every layer gets a zero I32 gpu_idx of n_ff on the host.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Mapping

from ...formats.ggml_types import row_nbytes, type_by_name
from ...model import Checkpoint, TensorInfo
from .gpuindex import GpuIndex, index_tensors
from .layout import ATTN, GPU_TIERS, OUTPUT, SparseLayout, kind_of
from .split import FfnSplit, choose_split

GPU = "cuda:0"  # PowerInfer places on its main GPU only
GIB = 1024 ** 3
FREE_VRAM_MARGIN = 256 * 1024 * 1024  # llama_set_vram_budget: "leave 256 MB as a safety margin"


def vram_budget_bytes(gib: float) -> int:
    """`--vram-budget N` as PowerInfer reads it: std::stof (a float), then (size_t)(N · 1024³) in double."""
    as_float = struct.unpack("f", struct.pack("f", gib))[0]
    return int(as_float * GIB)


@dataclass(frozen=True)
class SparseSettings:
    """What the sparse placement depends on."""

    budget: int | None  # VRAM budget in bytes; None: no GPU
    n_ctx: int  # -c: the context the KV cache is reserved for
    kv_bytes: int  # bytes per K (or V) element: 2 (f16), 4 with --memory-f32
    disable_gpu_index: bool = False
    reset_gpu_index: bool = False


@dataclass(frozen=True)
class SparsePlan:
    checkpoint: Checkpoint  # placed: the file's tensors, hot-row copies and the split's tensors
    settings: SparseSettings
    dense_gpu_bytes: int
    complete: bool
    n_gpu_layers: int  # PowerInfer's counter after the KV reservation
    kv_reserved: int
    budget_left: int  # what the FFN split was given
    split: FfnSplit
    ffn_gpu_bytes: int
    v_on_gpu: bool
    k_on_gpu: bool
    n_layer: int
    n_ff: int
    notes: tuple[str, ...] = ()
    read_fractions: Mapping[str, Fraction] = field(default_factory=dict)
    mode: str = "sparse"


def place_sparse(checkpoint: Checkpoint, layout: SparseLayout, settings: SparseSettings, *, n_embd_gqa: int,
                 n_ff: int, index: GpuIndex | None, model_path: str) -> SparsePlan:
    devices: dict[str, str] = {t.name: "cpu" for t in checkpoint.tensors}
    left = settings.budget or 0
    n_gpu_layers, complete, dense = 0, settings.budget is not None, 0
    if settings.budget is not None:
        for t in _gpu_queue(layout):
            if t[0].nbytes > left:
                complete = False
                break
            left -= t[0].nbytes
            dense += t[0].nbytes
            devices[t[0].name] = GPU
            if t[1] == ATTN and kind_of(t[0].name) == "attn_output":
                n_gpu_layers = t[0].layer + 1
            elif t[1] == OUTPUT:
                n_gpu_layers = layout.n_layer + 1
    reserved = 0
    if settings.budget is not None and n_gpu_layers >= layout.n_layer + 1:
        cache = settings.n_ctx * layout.n_layer * n_embd_gqa * settings.kv_bytes
        for _ in ("v", "k"):
            if cache > left:
                break
            left -= cache
            reserved += cache
            n_gpu_layers += 1
    split = choose_split(layout, n_ff=n_ff, gpu=settings.budget is not None, complete=complete, budget_left=left,
                         disabled=settings.disable_gpu_index, reset=settings.reset_gpu_index, index=index,
                         model_path=model_path)
    tensors = [t.with_(device=devices[t.name]) for t in checkpoint.tensors]
    extra, fractions, ffn_gpu = _apply_split(layout, split, n_ff, tensors, len(checkpoint.files))
    files = checkpoint.files + ((split.index.file,) if split.source == "index" and split.index else ())
    placed = checkpoint.with_(tensors=tuple(tensors) + tuple(extra), files=files)
    return SparsePlan(placed, settings, dense, complete, n_gpu_layers, reserved, left, split, ffn_gpu,
                      n_gpu_layers > layout.n_layer + 1, n_gpu_layers > layout.n_layer + 2, layout.n_layer, n_ff,
                      _notes(split), fractions)


def _gpu_queue(layout: SparseLayout) -> list[tuple[TensorInfo, str]]:
    return [(t, tier) for tier in GPU_TIERS for t in layout.tier(tier)]


def _apply_split(layout: SparseLayout, split: FfnSplit, n_ff: int, tensors: list[TensorInfo], file_index: int
                 ) -> tuple[list[TensorInfo], dict[str, Fraction], int]:
    """Move or copy the hot rows; add the split's own tensors. Returns (added tensors, read fractions of the CPU
    FFN matrices, GPU FFN bytes)."""
    every = split.source == "solver" and split.total == layout.n_layer * n_ff
    if split.source == "solver" and not every:
        return _solver_rows(layout, split, n_ff, tensors)
    neurons = (n_ff,) * layout.n_layer if every else split.neurons
    extra: list[TensorInfo] = []
    fractions: dict[str, Fraction] = {}
    ffn_gpu = 0
    position = {t.name: i for i, t in enumerate(tensors)}
    for il in range(layout.n_layer):
        k = neurons[il] if neurons else 0
        for t in layout.ffn_matrices(il):
            if k == n_ff:  # the whole matrix moves to the GPU (create_striped_mat_to_gpu with no bucket)
                tensors[position[t.name]] = tensors[position[t.name]].with_(device=GPU)
                ffn_gpu += t.nbytes
            elif k:
                rows = _rows(t, k)
                extra.append(rows)
                ffn_gpu += rows.nbytes
                fractions[t.name] = Fraction(n_ff - k, n_ff)
                fractions[rows.name] = Fraction(1)  # the other part of the same weight
    if split.source == "index" and split.index is not None:
        for t in index_tensors(split.index, file_index):
            k = split.neurons[t.layer] if split.neurons else 0
            hybrid = t.name.endswith("gpu_bucket") and 0 < k < n_ff
            extra.append(t.with_(device=GPU) if hybrid else t)
    elif every:  # the split file the solver run writes: every layer whole on the GPU, no bucket moved
        extra += [TensorInfo(f"blk.{il}.{name} [solver]", (n_ff,), "I32", 4 * n_ff, -1, 0, 0, role="predictor",
                             layer=il, device="cpu") for il in range(layout.n_layer) for name in ("gpu_idx", "gpu_bucket")]
    else:  # offload_ffn_split: a zero mask per layer in the augmentation context (host memory)
        extra += [TensorInfo(f"blk.{il}.gpu_idx [zeros]", (n_ff,), "I32", 4 * n_ff, -1, 0, 0, role="predictor",
                             layer=il, device="cpu") for il in range(layout.n_layer)]
    return extra, fractions, ffn_gpu


def _rows(t: TensorInfo, k: int) -> TensorInfo:
    gtype = type_by_name(t.dtype)
    assert gtype is not None, t.dtype
    return t.with_(name=f"{t.name} [gpu rows]", shape=(t.shape[0], k), nbytes=k * row_nbytes(gtype, t.shape[0]),
                   params=0, device=GPU, offset=-1)


def _solver_rows(layout: SparseLayout, split: FfnSplit, n_ff: int, tensors: list[TensorInfo]
                 ) -> tuple[list[TensorInfo], dict[str, Fraction], int]:
    """The solver's total on the GPU, its spread over layers unknown: one aggregate copy per FFN matrix kind (the
    bytes are exact when every layer stores that matrix in one type; otherwise the dearest layers' rows count), and
    the split file PowerInfer writes (gpu_idx per layer; gpu_bucket of every hybrid layer on the GPU)."""
    total = split.total
    extra: list[TensorInfo] = []
    ffn_gpu = 0
    kinds: dict[str, list[TensorInfo]] = {}
    for il in range(layout.n_layer):
        for t in layout.ffn_matrices(il):
            kinds.setdefault(kind_of(t.name), []).append(t)
    for kind, mats in kinds.items():
        row_bytes = []
        for t in mats:
            gtype = type_by_name(t.dtype)
            assert gtype is not None, t.dtype
            row_bytes += [row_nbytes(gtype, t.shape[0])] * n_ff
        nbytes = sum(sorted(row_bytes, reverse=True)[:total])
        if total:
            extra.append(mats[0].with_(name=f"blk.*.{kind}.weight [gpu rows, solver]", shape=(mats[0].shape[0], total),
                                       nbytes=nbytes, params=0, device=GPU, offset=-1, layer=None))
            ffn_gpu += nbytes
    fractions = {t.name: Fraction(layout.n_layer * n_ff - total, layout.n_layer * n_ff)
                 for mats in kinds.values() for t in mats} if total else {}
    fractions.update({t.name: Fraction(1) for t in extra})  # the GPU part of the same weights
    extra += [TensorInfo(f"blk.{il}.gpu_idx [solver]", (n_ff,), "I32", 4 * n_ff, -1, 0, 0, role="predictor",
                         layer=il, device="cpu") for il in range(layout.n_layer)]
    if total:
        extra.append(TensorInfo("blk.*.gpu_bucket [solver]", (total,), "I32", 4 * total, -1, 0, 0,
                                role="predictor", device=GPU))
    return extra, fractions, ffn_gpu


def _notes(split: FfnSplit) -> tuple[str, ...]:
    notes = [f"FFN split: {split.reason}"]
    if split.source == "solver":
        notes.append("the solver's spread over layers depends on the activation statistics: its GPU rows are one "
                     "aggregate per matrix, the CPU keeps every row (a layer whose neurons all go to the GPU frees "
                     "its CPU rows) and every hybrid layer's gpu_bucket is counted on the GPU")
    return tuple(notes)
