"""A LoadPlan as ckpt-size's Placement: every tensor of the loaded model with its runtime dtype, bytes and device
(`cuda:N`, `cpu`, `disk`), tensors transformers does not load kept with no device, and the from_pretrained call
that reproduces the plan."""
from __future__ import annotations

from typing import Mapping, Union

from ...model import Checkpoint, TensorInfo
from ...roles import classify_names
from ..base import Placement
from .accelerate import device_name
from .load import LoadPlan
from .options import TORCH_NAMES, TransformersOptions

Device = Union[int, str]


def to_checkpoint(plan: LoadPlan, checkpoint: Checkpoint) -> Checkpoint:
    by_name = {t.name: t for t in checkpoint.tensors}
    synthetic = [t.name for t in plan.tensors if t.name not in by_name]
    roles = dict(zip(synthetic, classify_names(synthetic))) if synthetic else {}
    module_info: dict[str, TensorInfo] = {}
    for t in plan.tensors:
        if t.name in by_name:
            module_info.setdefault(t.module, by_name[t.name])
    out = []
    for t in plan.tensors:
        src = by_name.get(t.name)
        device = plan.devices[t.name]
        if src is not None:
            out.append(src.with_(shape=t.shape, dtype=t.dtype, nbytes=t.nbytes, device=device))
            continue
        near = module_info.get(t.module) or (by_name.get(t.source.source.name) if t.source and t.source.source
                                             else None)
        role, layer, expert = roles.get(t.name, ("other", None, None))
        if role == "other" and near is not None:
            role, layer, expert = near.role, near.layer, near.expert
        if role == "other" and ".rotary_emb" in t.name:
            role = "attention"  # RoPE frequencies, as llama.cpp's rope_freqs
        out.append(TensorInfo(t.name, t.shape, t.dtype, t.nbytes, near.offset if near else 0,
                              near.file_index if near else 0, t.params, role, layer, expert, device))
    loaded = {t.name for t in plan.tensors}
    out += [t.with_(device=None) for t in plan.model.not_loaded if t.name not in loaded]
    return checkpoint.with_(tensors=tuple(out))


def map_repr(device_map: Mapping[str, Device]) -> str:
    """The device map as Python prints `model.hf_device_map`."""
    return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in device_map.items()) + "}"


def model_path(source: str) -> str:
    """What from_pretrained is given: the folder of a local index or safetensors file, else the source (a repo)."""
    for suffix in ("/model.safetensors.index.json", ".safetensors.index.json", ".safetensors"):
        if source.endswith(suffix):
            head = source.rsplit("/", 1)[0] if "/" in source else "."
            return head
    return source


def python_call(plan: LoadPlan, options: TransformersOptions, source: str) -> str:
    """The from_pretrained call that loads the model this way."""
    args = [repr(model_path(source))]
    if plan.map_kind in ("auto", "balanced", "balanced_low_0", "sequential"):
        args.append(f"device_map={plan.map_kind!r}")
        if options.max_memory is not None:
            args.append(f"max_memory={max_memory_repr(options.max_memory)}")
    elif plan.map_kind in ("dict", "device"):
        args.append(f"device_map={map_repr(plan.device_map)}")
    keyword = "dtype" if plan.model.spec.version >= 5 else "torch_dtype"
    if options.dtype == "auto":
        args.append(f'{keyword}="auto"')
    elif options.dtype is not None:
        args.append(f"{keyword}=torch.{TORCH_NAMES[options.dtype]}")
    if options.offload_folder:
        args.append(f"offload_folder={options.offload_folder!r}")
    if options.offload_buffers:
        args.append("offload_buffers=True")
    if options.bnb is not None:
        args.append(f"quantization_config={options.bnb.python()}")
    return f"AutoModelForCausalLM.from_pretrained({', '.join(args)})"


def max_memory_repr(memory: Mapping[Device, int]) -> str:
    """max_memory as a Python dict of byte counts (accepted back by --max-memory)."""
    return "{" + ", ".join(f"{k!r}: {int(v)}" for k, v in memory.items()) + "}"


def summary_line(plan: LoadPlan) -> str:
    used = sorted({d for d in plan.devices.values()}, key=lambda d: (d.startswith("cuda:") is False, d))
    what = {"default": "no device_map", "dict": "a device_map dict", "device": "device_map "
            + repr(device_of_all(plan.device_map))}.get(plan.map_kind, f"device_map={plan.map_kind!r}")
    dtype = TORCH_NAMES.get(plan.dtype, plan.dtype)
    quant = f", {plan.quant.label}" if plan.quant.label != "none" else ""
    return f"transformers {plan.model.spec.version}: {what}, {dtype}{quant} -> {', '.join(used)}"


def device_of_all(device_map: Mapping[str, Device]) -> Device:
    return device_map.get("", "?")


def to_placement(plan: LoadPlan, checkpoint: Checkpoint, options: TransformersOptions) -> Placement:
    placed = to_checkpoint(plan, checkpoint)
    notes = list(plan.notes)
    return Placement("transformers", placed, checkpoint, summary_line(plan),
                     command=python_call(plan, options, checkpoint.source), notes=tuple(notes), detail=plan)


__all__ = ["device_name", "map_repr", "python_call", "to_placement"]
