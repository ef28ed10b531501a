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

import re
from dataclasses import dataclass

from ...errors import UsageError
from ...model import Checkpoint
from ..base import Placement
from .flags import (
    FFN_EXPS_REGEX,
    LlamaCppFlags,
    buffer_device,
    check_regex,
    flags_line,
    llama_buffer_name,
    validate,
)
from .notes import plan_notes
from .placer import BLOCK, Override, Placer, layer_assigner, row_splitter

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
    flags: LlamaCppFlags = LlamaCppFlags()  # the flags this plan was made with


def place_llamacpp(checkpoint: Checkpoint, flags: LlamaCppFlags) -> LlamaCppPlan:
    """Place every tensor as llama.cpp would with these flags.

    Safetensors checkpoints are first mapped to GGUF names (`inspector.convert.to_gguf_view`).

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
    layer_device = layer_assigner(n_layer, ngl, layer_gpus, proportions if flags.split_mode != "none" else [1.0])
    overrides = _overrides(flags, ckpt)
    row_split = row_splitter(n_gpus, proportions) if flags.split_mode == "row" and n_gpus else None

    placer = Placer(ckpt, arch, n_layer, n_trunk, layer_device, overrides, row_split)
    tensors = placer.place_all()
    placed = ckpt.with_(tensors=tuple(tensors))

    layer_devices = tuple(layer_device(il) for il in range(n_layer))
    output_device = layer_device(n_layer)
    notes = plan_notes(
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
        flags=flags,
    )


# --- inputs ---------------------------------------------------------------------------------------------------


def _gguf_view(checkpoint: Checkpoint) -> Checkpoint:
    if checkpoint.format == "gguf":
        return checkpoint
    from ...convert import to_gguf_view  # lazy: the converter tables load only for safetensors inputs

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
    blocks = [int(m.group(2)) for t in ckpt.tensors if (m := BLOCK.match(t.name))]
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


_BLOCK_INDEX = re.compile(r"blk\.(0|[1-9][0-9]*)\.")


def _overrides(flags: LlamaCppFlags, ckpt: Checkpoint) -> list[Override]:
    """-ot pairs, --cpu-moe and --n-cpu-moe's per-block patterns in command-line order (common/arg.cpp appends
    them all to one list; the first match wins).

    llama.cpp pushes one `blk.<i>` pattern per i below N; only indices some tensor name carries as `blk.<i>.` can
    match, so only those are built (`--n-cpu-moe 1000000000` built a billion patterns)."""
    ot = []
    for pattern, buft in flags.override_tensor:
        device = buffer_device(buft, context=f"-ot {pattern}={buft}")
        origin = f"-ot {pattern}={llama_buffer_name(device)}"
        ot.append(Override(check_regex(pattern, context=origin), device, origin))
    moe = []
    if flags.cpu_moe:
        moe.append(Override(re.compile(FFN_EXPS_REGEX), "cpu", "--cpu-moe"))
    if flags.n_cpu_moe:
        present = {int(i) for t in ckpt.tensors for i in _BLOCK_INDEX.findall(t.name)}
        for i in sorted(i for i in present if i < flags.n_cpu_moe):
            moe.append(Override(re.compile(rf"blk\.{i}{FFN_EXPS_REGEX}"), "cpu", "--n-cpu-moe"))
    split = len(ot) if flags.moe_after is None else min(flags.moe_after, len(ot))
    return ot[:split] + moe + ot[split:]


def to_placement(plan: LlamaCppPlan, source: Checkpoint) -> Placement:
    """The protocol's view of a llama.cpp plan; `detail` keeps the plan (its layer and output devices)."""
    return Placement("llamacpp", plan.checkpoint, source, plan.summary, command=plan.flags_line, notes=plan.notes,
                     detail=plan)
