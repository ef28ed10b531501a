"""llama.cpp's weight placement: which device each GGUF tensor lands on for a given set of offload flags.

This follows llama.cpp's model loader, read at commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f (2026-10-01):
- `src/llama-model.cpp` `load_tensors`: the input layer (token_embd …) always on the CPU; `n_layer + 1` layer
  slots, the output layer being slot `n_layer`; `i_gpu_start = max(n_layer + 1 - ngl, 0)`, so the output layer
  is offloaded first (PR #18148); GPU layer `il` goes to the first device whose cumulative, normalised `-ts`
  split exceeds `(il - i_gpu_start) / act_gpu_layers` (float arithmetic, emulated exactly here).
- `src/llama-model-loader.cpp` `create_tensor`: `-ot` patterns are tried in order with `std::regex_search` on
  the full GGUF name; the first match decides the buffer; tensors flagged `TENSOR_SKIP` (MTP layers unless MTP
  drafting is on) and ops `GGML_OP_NONE` are not loaded at all.
- `src/llama.cpp` `llama_prepare_model_devices`: `-sm none` keeps only the `-mg` GPU.
- `-sm row`: the CUDA split buffer type of ggml/src/ggml-cuda/ggml-cuda.cu (`get_row_split`, split buffer
  `init_tensor`) as it was until its removal in 2026.
docs/placement-llamacpp.md has every decision and its source.
"""
from __future__ import annotations

import bisect
import re
import struct
from dataclasses import dataclass
from typing import Callable, Sequence

from ..errors import UsageError
from ..formats.ggml_types import row_nbytes, type_by_name
from ..model import Checkpoint, TensorInfo
from . import llamacpp_tensors as facts
from .devices import device_sort_key
from .llamacpp_flags import (
    FFN_EXPS_REGEX,
    LlamaCppFlags,
    buffer_device,
    check_regex,
    flags_line,
    llama_buffer_name,
    parse_n_gpu_layers,
    parse_override_tensor,
    parse_tensor_split,
    validate,
)

__all__ = [
    "LlamaCppFlags",
    "LlamaCppPlan",
    "parse_n_gpu_layers",
    "parse_override_tensor",
    "parse_tensor_split",
    "place_llamacpp",
]

# CUDA split buffers (-sm row): rows per device are rounded down to a multiple of get_mmq_y_host(cc), 128 on
# NVIDIA Volta and newer (and AMD except RDNA1), 64 on older GPUs (ggml-cuda/mmq.cuh); we assume 128.
ROW_SPLIT_ROUNDING = 128
# MATRIX_ROW_PADDING (ggml-cuda/common.cuh): each device's slice of a split tensor is padded to whole 512-element
# rows, so a slice costs ggml_row_size(type, 512 - ne0 % 512) more when ne0 is not a multiple of 512.
MATRIX_ROW_PADDING = 512

_BLOCK = re.compile(r"^((?:enc\.|dec\.)?blk|posnet|convnext)\.(\d+)\.")
_SUFFIXES = ("weight", "bias", "scale", "input_scale", "lora_a", "lora_b")


@dataclass(frozen=True)
class LlamaCppPlan:
    """A checkpoint placed the way llama.cpp would place it.

    checkpoint: GGUF names, every tensor's `device` set (`cpu`, `cuda:N`), or None for tensors llama.cpp does not
        load (MTP layers, unused or unknown tensors; the notes say which). Rows llama.cpp allocates beyond the
        file are added with `params=0`: the tied output matrix copied to a GPU (`token_embd.weight [output
        copy]`), per-block copies of `rope_freqs` on GPUs (`… [blk.N copy]`), and with `-sm row` one row per
        GPU slice of a split tensor (`… [rows a:b]`, padding included).
    flags_line: llama.cpp options that reproduce this placement (paste after `llama-server -m …`).
    notes: what the plan assumed and what llama.cpp does that users may not expect, one sentence each.
    """

    checkpoint: Checkpoint
    flags_line: str
    notes: tuple[str, ...]
    n_gpus: int = 0
    n_layer: int = 0  # GGUF block_count (llama.cpp's n_layer_all, MTP blocks included)
    layer_devices: tuple[str, ...] = ()  # device of blocks 0..n_layer-1; a block's KV cache lives there too
    output_device: str = "cpu"
    summary: str = ""  # one line for the report: "llama.cpp: -ngl 62 --cpu-moe (1 GPU)"


@dataclass(frozen=True)
class _Override:
    pattern: re.Pattern[str]
    device: str
    origin: str  # "-ot REGEX=BUFT", "--cpu-moe", "--n-cpu-moe"


def _f32(x: float) -> float:
    """Round to IEEE single precision: llama.cpp computes splits in `float`."""
    return struct.unpack("f", struct.pack("f", x))[0]


def place_llamacpp(checkpoint: Checkpoint, flags: LlamaCppFlags) -> LlamaCppPlan:
    """Place every tensor as llama.cpp would with these flags.

    Safetensors checkpoints are first mapped to GGUF names (`inspector.quant.convert.to_gguf_view`).

    Raises:
        UsageError: bad flag values, or a checkpoint llama.cpp cannot place (no layer count).
    """
    validate(flags)
    ckpt = _gguf_view(checkpoint)
    arch = ckpt.architecture or ""
    notes: list[str] = []
    n_layer = _block_count(ckpt, notes)
    n_nextn = _int_meta(ckpt, f"{arch}.nextn_predict_layers") or 0
    n_trunk = n_layer - n_nextn

    n_gpus = _gpu_count(flags)
    if flags.split_mode == "none":
        layer_gpus = [f"cuda:{flags.main_gpu}"] if flags.main_gpu >= 0 and n_gpus else []
    else:
        layer_gpus = [f"cuda:{i}" for i in range(n_gpus)]
    ngl = n_layer + 1 if flags.n_gpu_layers is None or flags.n_gpu_layers < 0 else flags.n_gpu_layers
    proportions = _proportions(flags, n_gpus)
    layer_device = _layer_assigner(n_layer, ngl, layer_gpus, proportions if flags.split_mode != "none" else [1.0])
    overrides = _overrides(flags)
    row_split = _row_splitter(n_gpus, proportions) if flags.split_mode == "row" and n_gpus else None

    placer = _Placer(ckpt, arch, n_layer, n_trunk, layer_device, overrides, row_split)
    tensors = placer.place_all()
    placed = ckpt.with_(tensors=tuple(tensors))

    layer_devices = tuple(layer_device(il) for il in range(n_layer))
    output_device = layer_device(n_layer)
    notes = _notes(
        notes, placed, flags, placer, n_layer=n_layer, ngl=ngl, n_gpus=n_gpus,
        layer_devices=layer_devices, output_device=output_device,
    )
    line = flags_line(
        n_gpu_layers=ngl,
        overrides=[(o.pattern.pattern, o.device) for o in overrides if o.origin.startswith("-ot")],
        cpu_moe=flags.cpu_moe,
        n_cpu_moe=flags.n_cpu_moe,
        tensor_split=proportions if n_gpus > 1 and flags.split_mode != "none" else flags.tensor_split,
        split_mode=flags.split_mode,
        main_gpu=flags.main_gpu,
        moe_after=flags.moe_after,
    )
    gpus = f"{n_gpus} GPU" + ("s" if n_gpus != 1 else "")
    return LlamaCppPlan(
        checkpoint=placed,
        flags_line=line,
        notes=tuple(notes),
        n_gpus=n_gpus,
        n_layer=n_layer,
        layer_devices=layer_devices,
        output_device=output_device,
        summary=f"llama.cpp: {line} ({gpus})",
    )


# --- inputs ---------------------------------------------------------------------------------------------------


def _gguf_view(checkpoint: Checkpoint) -> Checkpoint:
    if checkpoint.format == "gguf":
        return checkpoint
    from ..convert import to_gguf_view  # lazy: the converter tables load only for safetensors inputs

    return to_gguf_view(checkpoint).checkpoint


def _int_meta(ckpt: Checkpoint, key: str) -> int | None:
    value = ckpt.metadata.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _block_count(ckpt: Checkpoint, notes: list[str]) -> int:
    n = _int_meta(ckpt, f"{ckpt.architecture}.block_count")
    if n is not None:
        return n
    blocks = [int(m.group(2)) for t in ckpt.tensors if (m := _BLOCK.match(t.name))]
    if not blocks:
        raise UsageError(
            f"{ckpt.source}: no '{ckpt.architecture}.block_count' and no blk.N tensors",
            hint="llama.cpp flags need a model with numbered blocks",
        )
    notes.append(f"no '{ckpt.architecture}.block_count' in the metadata; counted {max(blocks) + 1} blocks by name")
    return max(blocks) + 1


def _gpu_count(flags: LlamaCppFlags) -> int:
    """How many GPUs the flags imply: -ts entries, CUDAn in -ot, -mg; one when anything is offloaded at all."""
    counts = [len(flags.tensor_split) if flags.tensor_split else 0]
    counts += [int(d.split(":")[1]) + 1 for _, buft in flags.override_tensor
               if (d := buffer_device(buft, context="-ot")).startswith("cuda:")]
    if flags.main_gpu > 0:
        counts.append(flags.main_gpu + 1)
    if flags.n_gpu_layers is None or flags.n_gpu_layers != 0:
        counts.append(1)
    return max(counts)


def _proportions(flags: LlamaCppFlags, n_gpus: int) -> list[float]:
    """-ts per GPU (missing entries are 0, as llama.cpp fills them); no -ts: an even split (equal free memory)."""
    if not flags.tensor_split:
        return [1.0] * n_gpus
    values = list(flags.tensor_split[:n_gpus])
    return values + [0.0] * (n_gpus - len(values))


def _overrides(flags: LlamaCppFlags) -> list[_Override]:
    """-ot pairs, --cpu-moe and --n-cpu-moe's per-block patterns in command-line order (common/arg.cpp appends
    them all to one list; the first match wins)."""
    ot = []
    for pattern, buft in flags.override_tensor:
        device = buffer_device(buft, context=f"-ot {pattern}={buft}")
        origin = f"-ot {pattern}={llama_buffer_name(device)}"
        ot.append(_Override(check_regex(pattern, context=origin), device, origin))
    moe = []
    if flags.cpu_moe:
        moe.append(_Override(re.compile(FFN_EXPS_REGEX), "cpu", "--cpu-moe"))
    for i in range(flags.n_cpu_moe or 0):
        moe.append(_Override(re.compile(rf"blk\.{i}{FFN_EXPS_REGEX}"), "cpu", "--n-cpu-moe"))
    split = len(ot) if flags.moe_after is None else min(flags.moe_after, len(ot))
    return ot[:split] + moe + ot[split:]


# --- layers -----------------------------------------------------------------------------------------------------


def _layer_assigner(n_layer: int, ngl: int, gpus: Sequence[str], proportions: Sequence[float]) -> Callable[[int], str]:
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


def _row_splitter(n_gpus: int, proportions: Sequence[float]) -> Callable[[int], list[tuple[int, int]]]:
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


def _template(name: str) -> tuple[str, str, int | None]:
    """(base template, suffix, block index): `blk.7.ffn_up_exps.weight` → (`blk.#.ffn_up_exps`, `weight`, 7)."""
    m = _BLOCK.match(name)
    block = int(m.group(2)) if m else None
    templated = f"{m.group(1)}.#.{name[m.end():]}" if m else name
    head, _, tail = templated.rpartition(".")
    if head and tail in _SUFFIXES:
        return head, tail, block
    return templated, "", block


class _Placer:
    """Places tensors one by one and keeps what the notes need."""

    def __init__(self, ckpt: Checkpoint, arch: str, n_layer: int, n_trunk: int, layer_device: Callable[[int], str],
                 overrides: list[_Override], row_split: Callable[[int], list[tuple[int, int]]] | None) -> None:
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
        base, _, block = _template(t.name)
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
        base, suffix, _ = _template(op_name or t.name)
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
            base, suffix, block = _template(t.name)
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


# --- notes ------------------------------------------------------------------------------------------------------


def _ranges(indices: Sequence[int]) -> str:
    """[0, 1, 2, 5] → "0–2, 5"."""
    parts: list[str] = []
    start = prev = None
    for i in sorted(indices):
        if start is None:
            start = prev = i
        elif i == prev + 1:  # type: ignore[operator]
            prev = i
        else:
            parts.append(f"{start}" if start == prev else f"{start}–{prev}")
            start = prev = i
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}–{prev}")
    return ", ".join(parts)


def _gib(n: int) -> str:
    return f"{n:,} bytes ({n / 2**30:.2f} GiB)"


def _notes(notes: list[str], placed: Checkpoint, flags: LlamaCppFlags, placer: _Placer, *, n_layer: int, ngl: int,
            n_gpus: int, layer_devices: tuple[str, ...], output_device: str) -> list[str]:
    slots = n_layer + 1
    by_device: dict[str, list[int]] = {}
    for il, d in enumerate(layer_devices):
        by_device.setdefault(d, []).append(il)
    where = []
    for d in sorted(set(by_device) | {output_device}, key=device_sort_key):
        blocks = by_device.get(d, [])
        text = f"blocks {_ranges(blocks)}" if blocks else ""
        if d == output_device:
            text = f"{text} and the output layer" if text else "the output layer"
        where.append(f"{d}: {text}")
    offloaded = min(ngl, slots) if n_gpus else 0
    notes.append(f"-ngl {ngl}: {offloaded} of {slots} layer slots ({n_layer} blocks + the output layer, which is "
                 f"offloaded first) on GPUs; " + "; ".join(where))
    if flags.n_gpu_layers is None:
        notes.append("-ngl not given: llama.cpp's default is 'auto' (--fit on), which keeps all layers on the GPU "
                     "when they fit and offloads fewer otherwise (with -ot/--cpu-moe/--n-cpu-moe or -ts given it "
                     "leaves the weights alone: all layers); this plan offloads all, pass -ngl to pin it")
    elif flags.n_gpu_layers < 0:
        notes.append(f"-ngl {flags.n_gpu_layers} means all layers to llama.cpp ({slots})")
    input_rows = [t for t in placed.tensors if t.device == "cpu" and placer._slot(t)[0] == "input"]
    if input_rows and n_gpus:
        names = ", ".join(t.name for t in input_rows)
        notes.append(f"llama.cpp keeps the input layer on the CPU whatever -ngl says ({names}: "
                     f"{_gib(sum(t.nbytes for t in input_rows))}); only -ot can move it")
    if n_gpus > 1 and flags.split_mode != "none":
        if flags.tensor_split is None:
            notes.append(f"{n_gpus} GPUs (from the flags) and no -ts: llama.cpp then splits by each GPU's free "
                         "memory; this plan assumes equal free memory (an even split)")
        else:
            notes.append(f"{n_gpus} GPUs, counted from the flags (-ts entries, CUDAn in -ot, -mg)")
    if flags.split_mode == "none":
        notes.append(f"-sm none: llama.cpp uses only GPU {flags.main_gpu} (-mg) for layers; -ts is ignored")
    if flags.split_mode == "row":
        notes.append(
            f"-sm row: {placer.row_split_tensors} matrix weights are split by rows across all {n_gpus} GPUs "
            f"(in -ts proportions, rows rounded down to multiples of {ROW_SPLIT_ROUNDING} as on NVIDIA Volta or "
            f"newer, each slice padded to {MATRIX_ROW_PADDING}-element rows); other tensors follow their layer. "
            "This is CUDA's split buffer, which current llama.cpp no longer has: since mid-2026 builds refuse "
            "-sm row on CUDA ('does not support split buffers'); -mg holds intermediate results and the KV cache"
            + (f"; the row padding adds {_gib(placer.row_split_padding)}" if placer.row_split_padding else "")
        )
    for i, o in enumerate(placer.overrides):
        if o.origin.startswith("-ot") and not placer.matched.get(i):
            notes.append(f"{o.origin} matched no tensor (llama.cpp does not say so either)")
    _expert_notes(notes, flags, placer, placed)
    if placer.skipped_mtp:
        size = sum(t.nbytes for t in placer.skipped_mtp)
        notes.append(f"blocks {_ranges(sorted({t.layer for t in placer.skipped_mtp if t.layer is not None}))} are "
                     f"MTP (nextn) layers, not loaded unless MTP drafting is on (--spec-type draft-mtp): "
                     f"{len(placer.skipped_mtp)} tensors, {_gib(size)}, on no device; they still count as layer "
                     f"slots for -ngl")
    if placer.unused:
        notes.append(f"{len(placer.unused)} tensors llama.cpp never loads (op NONE): "
                     + ", ".join(t.name for t in placer.unused[:3]))
    if placer.unknown:
        notes.append(f"{len(placer.unknown)} tensors belong to no llama.cpp layer of this architecture and are "
                     "placed on no device (llama.cpp would refuse a text model holding them; vision/audio towers "
                     "load from a separate mmproj file): " + ", ".join(repr(t.name) for t in placer.unknown[:3]))
    extra = sum(t.nbytes for t in placer.extra if "copy]" in t.name)
    if extra:
        kinds = sorted({t.name.split(" [", 1)[0] for t in placer.extra if "copy]" in t.name})
        notes.append(f"llama.cpp loads {', '.join(kinds)} a second time on the GPU (TENSOR_DUPLICATED): "
                     f"{_gib(extra)} more than the file holds")
    for what in placer.cpu_copies:
        notes.append(f"{what}: on the CPU, sharing the memory-mapped file's pages (a second copy with --no-mmap)")
    arch = placed.architecture or ""
    if arch and arch not in facts.KNOWN_ARCHS:
        notes.append(f"architecture {arch!r} is unknown to the llama.cpp this plan follows; standard layer rules "
                     "applied")
    return notes


def _expert_notes(notes: list[str], flags: LlamaCppFlags, placer: _Placer, placed: Checkpoint) -> None:
    exps = re.compile(FFN_EXPS_REGEX)
    expert_blocks = sorted({b for t in placed.tensors if exps.search(t.name)
                            and (b := _template(t.name)[2]) is not None})
    if (flags.cpu_moe or flags.n_cpu_moe) and not expert_blocks:
        notes.append("--cpu-moe/--n-cpu-moe matched nothing: the model has no routed-expert tensors (ffn_*_exps)")
        return
    if flags.n_cpu_moe:
        n = flags.n_cpu_moe
        hit = [b for b in expert_blocks if b < n]
        dense = [b for b in range(min(n, placer.n_layer)) if b not in expert_blocks]
        text = (f"--n-cpu-moe {n} counts blocks from 0, not MoE layers: routed experts of blocks "
                f"{_ranges(hit) or 'none'} go to the CPU")
        if dense:
            text += f" (blocks {_ranges(dense)} have no routed experts)"
        notes.append(text)
    origins = {o.origin.startswith("-ot") for o in placer.overrides}
    if origins == {True, False}:
        notes.append("llama.cpp tries -ot, --cpu-moe and --n-cpu-moe patterns in command-line order and the first "
                     "match wins; the flags line keeps the order used here")
