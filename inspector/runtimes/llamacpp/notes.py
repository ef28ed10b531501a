"""The notes of a llama.cpp plan: what llama.cpp does that users may not expect, one sentence each."""
from __future__ import annotations

import re
from typing import Sequence

from ...devices import device_sort_key
from ...model import Checkpoint
from . import tensors as facts
from .flags import FFN_EXPS_REGEX, LlamaCppFlags
from .placer import MATRIX_ROW_PADDING, ROW_SPLIT_ROUNDING, Placer, template


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


def plan_notes(notes: list[str], placed: Checkpoint, flags: LlamaCppFlags, placer: Placer, *, n_layer: int, ngl: int,
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


def _expert_notes(notes: list[str], flags: LlamaCppFlags, placer: Placer, placed: Checkpoint) -> None:
    exps = re.compile(FFN_EXPS_REGEX)
    expert_blocks = sorted({b for t in placed.tensors if exps.search(t.name)
                            and (b := template(t.name)[2]) is not None})
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


