"""The memory plan: weights, KV cache, recurrent state, buffers and a safety margin, per device.

Exact rows: `weights` (tensor bytes from headers, on the devices the placement chose), `kv_cache` and `state`
(llama.cpp's allocation formulas, src/llama-kv-cache*.cpp and src/llama-memory-recurrent.cpp). Estimated row:
`buffers` (the host output buffer is an exact formula; the compute buffers an estimate, see buffers.py).
`overhead` is the user's margin (`--overhead PCT` of the other rows), never mixed into them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Mapping

from ..errors import UsageError
from ..model import Checkpoint, TensorInfo
from ..devices import device_sort_key
from .budget import BudgetVerdict, check_totals
from .buffers import DeviceBuffers, estimate_buffers
from .hparams import HParams, hparams_of
from .kv import (ContextShape, cache_type, check_types, context_shape, kv_bytes_per_token, kv_layers,
                 resolve_flash_attn)
from .state import state_layers
from .table import MemoryTable, Part

UNPLACED = "unplaced"
PARTS = (Part("weights", "weights"), Part("kv_cache", "kv cache"), Part("state", "state"),
         Part("buffers", "buffers", "estimate"), Part("overhead", "overhead", "margin"))


@dataclass(frozen=True)
class MemoryOptions:
    """Runtime settings, named after llama.cpp's options. `ctx` is the context of each of `parallel` sequences
    (llama.cpp gets `-c ctx*parallel -np parallel`); `ctx_total` is llama.cpp's own `-c` when it was given that
    way (shared by the sequences; `ctx` is then its share, rounded down)."""

    ctx: int = 4096
    parallel: int = 1
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    no_kv_offload: bool = False
    flash_attn: str = "auto"
    ubatch: int = 512
    overhead_pct: float = 0.0
    kv_unified: bool = False
    swa_full: bool = False
    ctx_total: int | None = None

    @property
    def n_ctx_flag(self) -> int:
        """llama.cpp's -c: the total context of all sequences."""
        return self.ctx_total if self.ctx_total is not None else self.ctx * self.parallel

    def __post_init__(self) -> None:
        """Refuse values llama.cpp would refuse (or that make no sense as a margin) before any arithmetic uses
        them: a NaN or infinite overhead would otherwise fail deep in Fraction()."""
        for name, flag in (("ctx", "--ctx"), ("parallel", "--parallel"), ("ubatch", "--ubatch-size")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UsageError(f"{flag} must be a positive whole number, got {value!r}")
        pct = self.overhead_pct
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not math.isfinite(pct) or pct < 0:
            raise UsageError(f"--overhead must be a finite percentage >= 0, got {pct!r}")

    def with_(self, **changes: Any) -> "MemoryOptions":
        """A copy with some settings changed; a new context or parallelism drops a given total (-c)."""
        if "ctx" in changes or "parallel" in changes:
            changes.setdefault("ctx_total", None)
        return replace(self, **changes)

    def with_kv_type(self, name: str) -> "MemoryOptions":
        """`--kv-type T`: the same type for K and V."""
        return replace(self, cache_type_k=name, cache_type_v=name)

    def llama_cpp_flags(self) -> str:
        """The llama.cpp options that reproduce these settings."""
        parts = [f"-c {self.n_ctx_flag}"]
        if self.parallel != 1:
            parts.append(f"-np {self.parallel}")
        if self.kv_unified and self.parallel != 1:
            parts.append("-kvu")
        if self.cache_type_k.lower() != "f16":
            parts.append(f"-ctk {self.cache_type_k.lower()}")
        if self.cache_type_v.lower() != "f16":
            parts.append(f"-ctv {self.cache_type_v.lower()}")
        if self.flash_attn != "auto":
            parts.append(f"-fa {self.flash_attn}")
        if self.ubatch != 512:
            parts.append(f"-ub {self.ubatch}")
        if self.no_kv_offload:
            parts.append("-nkvo")
        if self.swa_full:
            parts.append("--swa-full")
        return " ".join(parts)


@dataclass(frozen=True)
class DeviceMemory:
    """One device's rows, all integers. `buffers` is an estimate; the others are exact; `overhead` is the margin."""

    weights: int = 0
    kv_cache: int = 0
    state: int = 0
    buffers: int = 0
    overhead: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.state + self.buffers + self.overhead

    def as_dict(self) -> dict[str, int]:
        return {"weights": self.weights, "kv_cache": self.kv_cache, "state": self.state, "buffers": self.buffers,
                "overhead": self.overhead, "total": self.total}


@dataclass(frozen=True)
class LayerMemory:
    """The runtime memory one layer owns on its device."""

    layer: int
    device: str
    kind: str  # "full", "swa", "recurrent", "full+recurrent"
    cells: int  # KV cells over all streams (0 for a recurrent-only layer)
    kv_bytes: int
    state_bytes: int


@dataclass(frozen=True)
class MemoryPlan:
    devices: Mapping[str, DeviceMemory]
    per_layer: tuple[LayerMemory, ...]
    buffers: Mapping[str, DeviceBuffers]
    context: ContextShape
    options: MemoryOptions
    flash_attn: bool  # resolved
    kv_bytes_per_token: int  # growth of the full-attention caches per token (all sequences count separately)
    hparams: HParams
    notes: tuple[str, ...] = ()
    basis: Mapping[str, str] = field(default_factory=dict)
    command: str | None = None  # the runtime's flags for these settings (default: llama.cpp's)

    @property
    def totals(self) -> dict[str, int]:
        return {dev: mem.total for dev, mem in self.devices.items()}

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def per_layer_kv(self) -> tuple[LayerMemory, ...]:
        return self.per_layer

    def check(self, budgets: Mapping[str, int]) -> BudgetVerdict:
        return check_totals(self.totals, budgets)

    @property
    def table(self) -> MemoryTable:
        """The rows as the report shows them (one column per DeviceMemory field)."""
        o = self.options
        sequences = f"{o.parallel} sequence" + ("" if o.parallel == 1 else "s")
        title = (f"memory at {o.ctx:,} tokens x {sequences}, K {o.cache_type_k} / V {o.cache_type_v}, "
                 f"{self.kv_bytes_per_token:,} bytes of KV per token  [{self.command or o.llama_cpp_flags()}]")
        rows = {dev: {p.key: getattr(mem, p.key) for p in PARTS} for dev, mem in self.devices.items()}
        return MemoryTable(PARTS, rows, title)

    def as_dict(self) -> dict[str, Any]:
        hp = self.hparams
        return {
            "context": {
                "ctx": self.options.ctx, "parallel": self.options.parallel, "n_ctx": self.context.n_ctx,
                "n_ctx_seq": self.context.n_ctx_seq, "n_stream": self.context.n_stream,
                "n_ubatch": self.context.n_ubatch, "cache_type_k": self.options.cache_type_k.lower(),
                "cache_type_v": self.options.cache_type_v.lower(), "flash_attn": self.flash_attn,
                "no_kv_offload": self.options.no_kv_offload, "overhead_pct": self.options.overhead_pct,
                "llama_cpp_flags": self.options.llama_cpp_flags(),
            },
            "hparams": {
                "arch": hp.arch, "source": hp.source, "n_layer": hp.n_layer, "n_layer_nextn": hp.n_layer_nextn,
                "memory": hp.memory, "mla": hp.is_mla, "n_swa": hp.n_swa,
                "swa_layers": sum(1 for il in range(hp.n_layer_all) if hp.is_swa[il] and hp.attn_kv[il]),
                "kv_layers": sum(hp.attn_kv), "recurrent_layers": sum(1 for x in self.per_layer if x.state_bytes),
                "n_vocab": hp.n_vocab,
            },
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "devices": {dev: mem.as_dict() for dev, mem in self.devices.items()},
            "buffers": {dev: {"output": b.output, "compute": b.compute, "parts": dict(b.parts)}
                        for dev, b in self.buffers.items()},
            "layers": [{"layer": x.layer, "device": x.device, "kind": x.kind, "cells": x.cells,
                        "kv_cache": x.kv_bytes, "state": x.state_bytes} for x in self.per_layer],
            "basis": dict(self.basis),
            "notes": list(self.notes),
        }


BASIS = {
    "weights": "exact: tensor bytes from the headers, on the devices of the placement",
    "kv_cache": "exact: llama.cpp's KV allocation (src/llama-kv-cache.cpp, llama-kv-cache-iswa.cpp): per layer "
                "K [n_embd_k_gqa, cells] + V [n_embd_v_gqa, cells] in the cache types, no V for MLA, SWA layers "
                "capped at pad(n_swa + n_ubatch, 256) cells; ggml's buffer alignment padding not included",
    "state": "exact: llama.cpp's recurrent state (src/llama-memory-recurrent.cpp): f32 r and s rows per sequence",
    "buffers": "estimate: output buffer n_vocab x n_seq x 4 B on the host (exact formula) + compute buffers from "
               "the worst-case ubatch graph (docs/memory.md); GPU backends differ",
    "overhead": "margin: --overhead PCT of weights + kv_cache + state + buffers per device",
}


def memory_plan(
    checkpoint: Checkpoint,
    options: MemoryOptions = MemoryOptions(),
    *,
    layer_devices: Mapping[int, str] | None = None,
    output_device: str | None = None,
    hparams: HParams | None = None,
    cpu_staging: bool = True,
) -> MemoryPlan:
    """The memory plan of a placed checkpoint (every TensorInfo.device set) under `options`.

    `cpu_staging=False` leaves out llama.cpp's GPU copy of a CPU weight (other runtimes do not make it).
    A layer's KV and state go where llama.cpp puts them: on the layer's device (`layer_devices`, e.g. from a
    llama.cpp plan; otherwise the device of the layer's attention weights), or on the CPU with
    `options.no_kv_offload`.

    Raises:
        UsageError: bad options (cache type, flash attention, sizes) or combinations llama.cpp refuses.
        FormatError: the checkpoint has no hyperparameters to size the cache from.
    """
    hp = hparams or hparams_of(checkpoint)
    type_k = cache_type(options.cache_type_k, "--cache-type-k")
    type_v = cache_type(options.cache_type_v, "--cache-type-v")
    flash = resolve_flash_attn(options.flash_attn, type_v)
    check_types(hp, type_k, type_v, flash)
    shape = context_shape(options.ctx, options.parallel, ubatch=options.ubatch, unified=options.kv_unified,
                          total=options.ctx_total)

    devices_of = dict(layer_devices) if layer_devices is not None else derive_layer_devices(checkpoint, hp)
    out_dev = output_device or derive_output_device(checkpoint, devices_of, hp)

    kv = {x.layer: x for x in kv_layers(hp, shape, type_k, type_v, flash_attn=flash, swa_full=options.swa_full)}
    state = {x.layer: x for x in state_layers(hp, shape.n_seq)}
    per_layer = []
    kv_by_dev: dict[str, int] = {}
    state_by_dev: dict[str, int] = {}
    for il in sorted(set(kv) | set(state)):
        dev = "cpu" if options.no_kv_offload else devices_of.get(il, "cpu")
        k, s = kv.get(il), state.get(il)
        kind = "+".join(filter(None, [k.kind if k else "", "recurrent" if s else ""]))
        per_layer.append(LayerMemory(il, dev, kind, k.cells if k else 0, k.bytes if k else 0, s.bytes if s else 0))
        kv_by_dev[dev] = kv_by_dev.get(dev, 0) + (k.bytes if k else 0)
        state_by_dev[dev] = state_by_dev.get(dev, 0) + (s.bytes if s else 0)

    weights: dict[str, int] = {}
    placed_any = any(t.device for t in checkpoint.tensors)
    not_loaded = [t for t in checkpoint.tensors if t.device is None] if placed_any else []
    for t in checkpoint.tensors:
        if t.device is None and placed_any:
            continue  # a runtime plan left it on no device: not loaded (MTP layers, unused tensors)
        dev = t.device or UNPLACED
        weights[dev] = weights.get(dev, 0) + t.nbytes
    gpu_layers = {d for d in devices_of.values() if d != "cpu"} | ({out_dev} - {"cpu", None})
    # GGML_OP_OFFLOAD_MIN_BATCH: a GPU takes a CPU weight's op only for batches of 32 tokens or more
    staging = _cpu_staging(checkpoint.tensors) if cpu_staging and gpu_layers and shape.n_ubatch >= 32 else 0
    buffers = estimate_buffers(hp, shape, flash_attn=flash, layer_devices=devices_of, output_device=out_dev,
                               cpu_staging=staging, kv_on_cpu=options.no_kv_offload)

    names = set(weights) | set(kv_by_dev) | set(state_by_dev) | set(buffers)
    pct = Fraction(str(options.overhead_pct))
    devices: dict[str, DeviceMemory] = {}
    for dev in sorted(names, key=device_sort_key):  # "unplaced" sorts after the CPU
        mem = DeviceMemory(weights.get(dev, 0), kv_by_dev.get(dev, 0), state_by_dev.get(dev, 0),
                           buffers[dev].bytes if dev in buffers else 0)
        base = mem.total
        devices[dev] = replace(mem, overhead=int(-(-base * pct // 100)))  # ceiling: a margin never rounds down
    notes = list(hp.notes) + _notes(hp, options, shape, flash)
    if not_loaded:
        notes.append(f"{len(not_loaded)} tensors on no device (not loaded by the runtime): "
                     f"{sum(t.nbytes for t in not_loaded):,} bytes not counted")
    return MemoryPlan(devices, tuple(per_layer), buffers, shape, options, flash,
                      kv_bytes_per_token(hp, type_k, type_v, flash_attn=flash), hp, tuple(notes), dict(BASIS))


def derive_layer_devices(checkpoint: Checkpoint, hp: HParams) -> dict[int, str]:
    """Each layer's device: where its attention weights are (most bytes), else its other non-expert weights;
    a layer with no tensors follows the layer before it."""
    by_layer: dict[int, dict[str, dict[str, int]]] = {}
    for t in checkpoint.tensors:
        if t.layer is None or t.device is None:
            continue
        kind = "attention" if t.role == "attention" else ("experts" if t.role == "routed_experts" else "other")
        slot = by_layer.setdefault(t.layer, {}).setdefault(kind, {})
        slot[t.device] = slot.get(t.device, 0) + t.nbytes
    devices: dict[int, str] = {}
    previous = "cpu"
    for il in range(hp.n_layer_all):
        kinds = by_layer.get(il, {})
        for kind in ("attention", "other", "experts"):
            if kinds.get(kind):
                previous = max(kinds[kind].items(), key=lambda kv: (kv[1], kv[0]))[0]
                break
        devices[il] = previous
    return devices


def derive_output_device(checkpoint: Checkpoint, layer_devices: Mapping[int, str], hp: HParams) -> str:
    """Where llama.cpp computes the logits: the output matrix's device (tied embeddings: the last layer's)."""
    outputs = [t for t in checkpoint.tensors if t.role == "output" and t.device]
    if outputs:
        return max(outputs, key=lambda t: t.nbytes).device or "cpu"
    if layer_devices:
        return layer_devices[max(layer_devices)]
    return "cpu"


def _cpu_staging(tensors: tuple[TensorInfo, ...]) -> int:
    """The largest layer weight left on the CPU: what a GPU copies in to run a large-batch op on it."""
    return max((t.nbytes for t in tensors if t.device == "cpu" and t.layer is not None), default=0)


def _notes(hp: HParams, options: MemoryOptions, shape: ContextShape, flash: bool) -> list[str]:
    notes = []
    if hp.n_ctx_train and shape.n_ctx_seq > hp.n_ctx_train:
        notes.append(f"context {shape.n_ctx_seq} per sequence is past the trained {hp.n_ctx_train} "
                     "(llama.cpp warns: possible training context overflow)")
    if shape.n_ctx_flag != shape.n_ctx:
        notes.append(f"llama.cpp pads the context: -c {shape.n_ctx_flag} allocates {shape.n_ctx} cells")
    if options.flash_attn == "auto":
        notes.append("flash attention auto taken as on (supported by the CPU, CUDA and Metal backends)")
    if hp.memory == "none":
        notes.append(f"{hp.arch}: llama.cpp keeps no KV cache for this architecture")
    if not flash and hp.is_mla is False and len({hp.n_embd_v_gqa(il) for il in range(hp.n_layer_all)
                                                if hp.attn_kv[il]}) > 1:
        notes.append("flash attention off: llama.cpp pads every V row to the widest layer's")
    return notes


def check_budgets(plan: MemoryPlan, budgets: Mapping[str, int]) -> BudgetVerdict:
    """Per budgeted device: total vs budget, fits or over by how many bytes."""
    return plan.check(budgets)
