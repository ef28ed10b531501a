"""llama.cpp's loader, tensor by tensor: which layer slot a tensor belongs to, which device that slot is on, the
-ot overrides, -sm row splits, and the copies llama.cpp makes (facts and sources: place.py's docstring)."""
from __future__ import annotations

import bisect
import re
import struct
from dataclasses import dataclass
from typing import Callable, Sequence

from ...formats.ggml_types import row_nbytes, type_by_name
from ...model import Checkpoint, TensorInfo
from ...patterns import UserPattern
from . import tensors as facts

# CUDA split buffers (-sm row): rows per device are rounded down to a multiple of get_mmq_y_host(cc), 128 on
# NVIDIA Volta and newer (and AMD except RDNA1), 64 on older GPUs (ggml-cuda/mmq.cuh); we assume 128.
ROW_SPLIT_ROUNDING = 128
# MATRIX_ROW_PADDING (ggml-cuda/common.cuh): each device's slice of a split tensor is padded to whole 512-element
# rows, so a slice costs ggml_row_size(type, 512 - ne0 % 512) more when ne0 is not a multiple of 512.
MATRIX_ROW_PADDING = 512

BLOCK = re.compile(r"^((?:enc\.|dec\.)?blk|posnet|convnext)\.(\d+)\.")
_SUFFIXES = ("weight", "bias", "scale", "input_scale", "lora_a", "lora_b")


@dataclass(frozen=True)
class Override:
    pattern: re.Pattern[str] | UserPattern  # ours (FFN_EXPS_REGEX) or a user's (-ot)
    device: str
    origin: str  # "-ot REGEX=BUFT", "--cpu-moe", "--n-cpu-moe"


def _f32(x: float) -> float:
    """Round to IEEE single precision: llama.cpp computes splits in `float`."""
    return struct.unpack("f", struct.pack("f", x))[0]


# --- layers -----------------------------------------------------------------------------------------------------


def layer_assigner(n_layer: int, ngl: int, gpus: Sequence[str], proportions: Sequence[float]) -> Callable[[int], str]:
    """Device of layer slot `il` (0..n_layer-1 blocks, n_layer the output layer), as load_tensors computes it."""
    i_gpu_start = max(n_layer + 1 - ngl, 0)
    act_gpu_layers = min(ngl, n_layer + 1) if gpus else 0
    splits: list[float] = []
    total = 0.0
    for p in proportions[: len(gpus)]:
        total = _f32(total + _f32(p))
        splits.append(total)
    splits = [_f32(s / total) for s in splits] if total else []

    def device(il: int) -> str:
        if il < i_gpu_start or il - i_gpu_start >= act_gpu_layers:
            return "cpu"
        fraction = _f32(_f32(float(il - i_gpu_start)) / _f32(float(act_gpu_layers)))
        return gpus[bisect.bisect_right(splits, fraction)]

    return device


# --- -sm row ----------------------------------------------------------------------------------------------------


def row_splitter(n_gpus: int, proportions: Sequence[float]) -> Callable[[int], list[tuple[int, int]]]:
    """(row_low, row_high) per GPU for a tensor of `nrows` rows: get_row_split of the CUDA split buffer."""
    starts: list[float] = []
    total = 0.0
    for p in proportions:
        starts.append(total)
        total = _f32(total + _f32(p))
    starts = [_f32(s / total) for s in starts]

    def rows(nrows: int) -> list[tuple[int, int]]:
        result = []
        for gpu in range(n_gpus):
            low = 0 if gpu == 0 else int(_f32(_f32(float(nrows)) * starts[gpu]))
            low -= low % ROW_SPLIT_ROUNDING
            if gpu == n_gpus - 1:
                high = nrows
            else:
                high = int(_f32(_f32(float(nrows)) * starts[gpu + 1]))
                high -= high % ROW_SPLIT_ROUNDING
            result.append((low, high))
        return result

    return rows


# --- tensors ----------------------------------------------------------------------------------------------------


def template(name: str) -> tuple[str, str, int | None]:
    """(base template, suffix, block index): `blk.7.ffn_up_exps.weight` → (`blk.#.ffn_up_exps`, `weight`, 7)."""
    m = BLOCK.match(name)
    block = int(m.group(2)) if m else None
    templated = f"{m.group(1)}.#.{name[m.end():]}" if m else name
    head, _, tail = templated.rpartition(".")
    if head and tail in _SUFFIXES:
        return head, tail, block
    return templated, "", block


class Placer:
    """Places tensors one by one and keeps what the notes need."""

    def __init__(self, ckpt: Checkpoint, arch: str, n_layer: int, n_trunk: int, layer_device: Callable[[int], str],
                 overrides: list[Override], row_split: Callable[[int], list[tuple[int, int]]] | None) -> None:
        self.ckpt = ckpt
        self.arch = arch
        self.n_layer = n_layer
        self.n_trunk = n_trunk
        self.layer_device = layer_device
        self.overrides = overrides
        self.row_split = row_split
        self.matched: dict[int, int] = {}  # override index → tensors matched
        self.skipped_mtp: list[TensorInfo] = []
        self.unused: list[TensorInfo] = []
        self.unknown: list[TensorInfo] = []
        self.extra: list[TensorInfo] = []  # copies llama.cpp allocates beyond the file
        self.cpu_copies: list[str] = []  # duplicates that share the CPU's mapped file pages
        self.row_split_tensors = 0
        self.row_split_padding = 0  # bytes the split slices add (512-element row padding)

    def place_all(self) -> list[TensorInfo]:
        out: list[TensorInfo] = []
        for t in self.ckpt.tensors:
            out.extend(self._place(t))
        out.extend(self._duplicates())
        return out

    def _override(self, name: str) -> str | None:
        for i, o in enumerate(self.overrides):
            if o.pattern.search(name):
                self.matched[i] = self.matched.get(i, 0) + 1
                return o.device
        return None

    def _slot(self, t: TensorInfo) -> tuple[str, int | None]:
        """("input"|"output"|"layer"|"mtp"|"unused"|"unknown", layer slot) of a tensor, by llama.cpp's tables."""
        base, _, block = template(t.name)
        if base in facts.UNUSED_TENSORS:
            return "unused", None
        if block is not None:
            if block >= self.n_layer:
                return "unknown", None
            return ("mtp" if block >= self.n_trunk else "layer"), block
        if base in facts.INPUT_TENSORS:
            return "input", None
        if base == "token_embd_norm" and self.arch in facts.OUTPUT_NORM_NAMED_TOKEN_EMBD_NORM_ARCHS:
            return "output", self.n_layer
        if base in facts.OUTPUT_TENSORS:
            return "output", self.n_layer
        if base in facts.LAYER0_TENSORS:
            return "layer", 0
        return "unknown", None

    def _place(self, t: TensorInfo, *, name: str | None = None, op_name: str | None = None) -> list[TensorInfo]:
        kind, slot = self._slot(t) if op_name is None else ("output", self.n_layer)
        if kind in ("unused", "unknown", "mtp"):
            {"unused": self.unused, "unknown": self.unknown, "mtp": self.skipped_mtp}[kind].append(t)
            return [t.with_(device=None)]
        override = self._override(t.name)
        if override is not None:
            return [t.with_(device=override, name=name or t.name)]
        device = "cpu" if kind == "input" else self.layer_device(slot)  # type: ignore[arg-type]
        placed = t.with_(device=device, name=name or t.name)
        if device != "cpu" and self.row_split is not None and self._splittable(t, op_name):
            slices = self._split(placed, int(device.split(":")[1]))
            if slices:
                self.row_split_tensors += 1
                return slices
        return [placed]

    def _splittable(self, t: TensorInfo, op_name: str | None) -> bool:
        base, suffix, _ = template(op_name or t.name)
        dims = tuple(t.shape) + (1, 1)
        return (
            base in facts.MUL_MAT_TENSORS and suffix == "weight" and dims[2] == 1 and dims[3] == 1
            and t.dtype.upper() in facts.CUDA_ROW_SPLIT_TYPES
        )

    def _split(self, t: TensorInfo, layer_gpu: int) -> list[TensorInfo]:
        """One row per GPU holding rows of `t`, or [] when the layer's GPU would get none (supports_op says no)."""
        gtype = type_by_name(t.dtype)
        assert self.row_split is not None and gtype is not None
        ne0, nrows = t.shape[0], (t.shape[1] if len(t.shape) > 1 else 1)
        ranges = self.row_split(nrows)
        if ranges[layer_gpu][0] == ranges[layer_gpu][1]:
            return []
        row_bytes = row_nbytes(gtype, ne0)
        pad = row_nbytes(gtype, MATRIX_ROW_PADDING - ne0 % MATRIX_ROW_PADDING) if ne0 % MATRIX_ROW_PADDING else 0
        slices = []
        for gpu, (low, high) in enumerate(ranges):
            if high == low:
                continue
            self.row_split_padding += pad
            slices.append(t.with_(
                name=f"{t.name} [rows {low}:{high}]", shape=(ne0, high - low), device=f"cuda:{gpu}",
                nbytes=(high - low) * row_bytes + pad, params=t.params * high // nrows - t.params * low // nrows,
            ))
        return slices

    def _duplicates(self) -> list[TensorInfo]:
        """Tensors llama.cpp creates twice (TENSOR_DUPLICATED): the tied output matrix and per-block rope factors."""
        by_base = {}
        for t in self.ckpt.tensors:
            base, suffix, block = template(t.name)
            if block is None and suffix == "weight":
                by_base[base] = t
        out: list[TensorInfo] = []
        embd = by_base.get("token_embd")
        if embd is not None and "output" not in by_base and self.arch in facts.TIED_OUTPUT_ARCHS:
            copy = embd.with_(role="output", layer=None, params=0)
            for row in self._place(copy, name=f"{embd.name} [output copy]", op_name="output.weight"):
                self._keep_copy(row, out, "the output layer's copy of token_embd.weight")
        for base in sorted(facts.PER_LAYER_DUPLICATED & set(by_base)):
            t = by_base[base]
            for il in range(1, self.n_trunk):
                device = self._override(t.name) or self.layer_device(il)
                row = t.with_(name=f"{t.name} [blk.{il} copy]", layer=il, params=0, device=device)
                self._keep_copy(row, out, f"the per-block copies of {t.name}")
        return out

    def _keep_copy(self, row: TensorInfo, out: list[TensorInfo], what: str) -> None:
        if row.device is None:
            return
        if row.device == "cpu":  # a CPU copy points into the memory-mapped file: no extra bytes
            if what not in self.cpu_copies:
                self.cpu_copies.append(what)
            return
        out.append(row)
        self.extra.append(row)


