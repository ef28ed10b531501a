"""`AutoModelForCausalLM.from_pretrained(..., device_map=..., max_memory=..., dtype=..., quantization_config=...)`
replayed: the model dtype, the quantization, the device map (transformers `_get_device_map`), and the device of
every tensor once accelerate has dispatched the model.

transformers `_get_device_map` (5.25 integrations/accelerate.py; 4.57 modeling_utils.py): for "auto", "balanced"
and "balanced_low_0" the limits come from `get_balanced_memory` (so "auto" is "balanced"), for "sequential" from
`get_max_memory`; a quantizer may then shrink them (bitsandbytes: x 0.90 on every device,
`adjust_max_memory`); `infer_auto_device_map` makes the map; bitsandbytes refuses a map mixing GPUs with cpu/disk
unless `llm_int8_enable_fp32_cpu_offload` (`validate_environment`).

Without max_memory, accelerate measures each GPU's free memory and the available RAM; ckpt-size takes them from
`--budget` (cuda:N=SIZE as GPU N's free memory, cpu=SIZE as the RAM; no cpu budget: unlimited RAM), and applies
the rules meant for a measured machine: transformers 5 keeps 90 % of the RAM (`get_max_memory`), a single GPU
keeps 90 % in the balanced modes (`get_balanced_memory`).

Dispatch (accelerate big_modeling.py `dispatch_model`): the main device is the first GPU of the map (else the
CPU); modules mapped to "cpu" keep their weights in RAM, "disk" ones on disk, and both run on the main device;
their buffers (offload_buffers=False, the default) live on the main device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Union

from ...errors import UsageError
from ...memory.hf_model import HfModel, build_model
from ...model import Checkpoint
from .accelerate import MapResult, compute_module_sizes, device_name, device_order, infer_auto_device_map
from .options import TransformersOptions
from .tensors import Quantization, RuntimeTensor, TensorPlan, model_dtype, quantization_of

Device = Union[int, str]
Number = Union[int, float]
UNLIMITED = math.inf


@dataclass
class LoadPlan:
    model: HfModel
    dtype: str
    quant: Quantization
    tensors: list[RuntimeTensor]
    devices: dict[str, str]  # tensor name -> ckpt-size device (cuda:N, cpu, disk)
    device_map: dict[str, Device]  # as transformers / accelerate hold it
    map_kind: str  # "auto", "balanced", "balanced_low_0", "sequential", "dict", "default"
    result: MapResult | None = None
    requested: dict[Device, Number] | None = None  # the limits before infer_auto_device_map
    main_device: str = "cpu"
    notes: list[str] = field(default_factory=list)
    resaved: int = 0  # bytes written to the offload folder (transformers 5 re-saves converted weights)


def measured_memory(budgets: Mapping[str, int] | None) -> dict[Device, Number]:
    """What accelerate's get_max_memory(None) would measure, from --budget (module docstring)."""
    out: dict[Device, Number] = {}
    for device, size in (budgets or {}).items():
        if device.startswith("cuda:"):
            out[int(device[5:])] = size
    out["cpu"] = (budgets or {}).get("cpu", UNLIMITED)
    return {k: out[k] for k in device_order(out)}


def get_max_memory(user: dict[Device, int] | None, budgets: Mapping[str, int] | None,
                   version: int) -> dict[Device, Number]:
    """transformers' get_max_memory (5.x: 90 % of the measured RAM when the user gave no max_memory)."""
    if user is not None:
        return {k: user[k] for k in device_order(user)}
    memory = measured_memory(budgets)
    if version >= 5 and "cpu" in memory:
        memory["cpu"] = memory["cpu"] * 0.90
    return memory


def get_balanced_memory(plan: TensorPlan, user: dict[Device, int] | None, budgets: Mapping[str, int] | None,
                        low_zero: bool) -> dict[Device, Number]:
    """transformers 5's / accelerate's get_balanced_memory (they differ in the buffer: module docstring of
    accelerate.py)."""
    model, version = plan.model, plan.model.spec.version
    memory = get_max_memory(user, budgets, version)
    gpus = [d for d in memory if d not in ("cpu", "disk", "mps") and memory[d] > 0]
    if not gpus:
        return memory
    if len(gpus) == 1:
        low_zero = False
        if user is None:
            first = next(k for k in memory if isinstance(k, int))
            memory[first] = memory[first] * 0.9
    tensors = plan.accelerate_tensors()
    sizes, leaves = compute_module_sizes(tensors, version, only_modules=True)
    total = sizes[""]
    per_gpu = total // (len(gpus) - 1 if low_zero else len(gpus))
    layers = [l.path for l in model.layers()]
    if version >= 5:
        biggest_layer = max((sizes[p] for p in layers), default=0)
        buffer = int(1.25 * max(biggest_layer, max(leaves.values(), default=0)))
    else:
        first = next((k for k in sizes if k in set(layers)), None)
        biggest_layer = sizes[first] if first is not None else 0
        buffer = int(1.25 * max(biggest_layer, _mean_leaves(sizes)))
    per_gpu += buffer
    ids = sorted(d for d, v in memory.items() if isinstance(d, int) and v > 0)
    for idx in ids[:-1]:
        memory[idx] = min(memory[0] if low_zero and idx == 0 else per_gpu, memory[idx])
    if low_zero:
        others = ids[1:] if version < 5 else list(range(1, len(gpus)))
        missing = [i for i in others if i not in memory]
        if missing:
            raise UsageError(f"transformers 5's balanced_low_0 reads max_memory[{missing[0]}] (GPU ids 1..N-1); "
                             "this max_memory has no such GPU (transformers raises KeyError)",
                             hint="number the GPUs 0..N-1")
        memory[0] = min(max(0, total - sum(memory[i] for i in others)), memory[0])
    return memory


def _mean_leaves(sizes: Mapping[str, Number]) -> int:
    """accelerate's mean of the "final modules": leaves of the size dict once the tensors' own names are gone."""
    def leaves(keys: list[str]) -> list[str]:
        children: dict[str, int] = {}
        for k in keys:
            if k and "." in k:
                parent = k.rsplit(".", 1)[0]
                children[parent] = children.get(parent, 0) + 1
        return [k for k in keys if k and children.get(k, 0) == 0]

    keys = list(sizes)
    first = set(leaves(keys))
    rest = [k for k in keys if k not in first]
    final = leaves(rest)
    return int(sum(sizes[k] for k in final) / max(len(final), 1))


def _tied_groups(model: HfModel) -> list[list[str]]:
    if not model.tied:
        return [[]] if model.spec.version >= 5 else []
    groups: dict[str, list[str]] = {}
    for target, source in model.tied.items():
        groups.setdefault(source, []).append(target)
    return [sorted(targets + [source]) for source, targets in groups.items()]


def infer_map(plan: TensorPlan, kind: str, user: dict[Device, int] | None,
              budgets: Mapping[str, int] | None) -> tuple[MapResult, dict[Device, Number]]:
    """transformers' _get_device_map for a string device_map; also returns the limits it passed on."""
    if user is None and not budgets:
        raise UsageError(f"device_map={kind!r} needs each device's memory, which accelerate measures on the machine",
                         hint="give --max-memory 0=20GiB,cpu=60GiB (accelerate's max_memory) or --budget DEV=SIZE")
    version = plan.model.spec.version
    if kind == "sequential":
        memory = get_max_memory(user, budgets, version)
    else:
        memory = get_balanced_memory(plan, user, budgets, kind == "balanced_low_0")
    if plan.quant.bnb is not None:
        memory = {k: v * 0.90 for k, v in memory.items()}
    if user is not None:
        memory = {k: min(v, user[k]) if k in user else v for k, v in memory.items()}
    tensors = plan.accelerate_tensors()
    sizes, _ = compute_module_sizes(tensors, version, only_modules=False)
    result = infer_auto_device_map(plan.model, dict(memory), sizes, _tied_groups(plan.model), plan.buffer_sizes())
    if user is not None and "cpu" not in user and any(v == "disk" for v in result.device_map.values()):
        result.notes.append("max_memory has no 'cpu' entry: accelerate offloads to disk straight after the GPUs")
    return result, memory


def device_of(name: str, device_map: Mapping[str, Device]) -> Device | None:
    """The device of a tensor or module: its longest prefix in the map (transformers `get_device`)."""
    parts = name.split(".")
    for i in range(len(parts), -1, -1):
        key = ".".join(parts[:i])
        if key in device_map:
            return device_map[key]
    return None


def main_device(device_map: Mapping[str, Device]) -> Device:
    gpus = sorted(d for d in set(device_map.values()) if isinstance(d, int))
    return gpus[0] if gpus else "cpu"


def load_plan(checkpoint: Checkpoint, options: TransformersOptions) -> LoadPlan:
    """The whole of from_pretrained's placement (module docstring)."""
    model = build_model(checkpoint, options.version)
    quant, notes = quantization_of(checkpoint, options.bnb)
    dtype = model_dtype(checkpoint, options.dtype, options.version, quant)
    kind, device_map = _requested_map(options, quant)
    also_skip: tuple[str, ...] = ()
    if isinstance(device_map, dict) and quant.bnb is not None and not quant.prequantized:
        also_skip = _fp32_offload_keys(device_map, quant, options.version)
    plan = TensorPlan(model, dtype, quant, also_skip)
    result = requested = None
    if device_map is None:
        result, requested = infer_map(plan, kind, options.max_memory, options.budgets)
        device_map = result.device_map
        notes += result.notes
    _validate(model, plan, device_map, quant, kind)
    devices, main = _dispatch(plan, device_map, options.offload_buffers)
    resaved = _disk_checks(plan, devices, options)
    return LoadPlan(model, dtype, quant, plan.tensors, devices, device_map, kind, result, requested,
                    device_name(main), list(model.notes) + notes, resaved)


def _requested_map(options: TransformersOptions, quant: Quantization) -> tuple[str, dict[str, Device] | None]:
    dm = options.device_map
    if isinstance(dm, str):
        return dm, None
    if isinstance(dm, dict):
        return ("dict" if set(dm) != {""} else "device"), dm
    # no device_map: the CPU; bitsandbytes' update_device_map picks the current CUDA device (assumed present)
    if quant.bnb is not None:
        return "default", {"": 0}
    return "default", {"": "cpu"}


def _fp32_offload_keys(device_map: dict[str, Device], quant: Quantization, version: int) -> tuple[str, ...]:
    """A dict device_map sending modules to cpu/disk: not converted with llm_int8_enable_fp32_cpu_offload;
    transformers 4 refuses the map without it."""
    keys = tuple(k for k, v in device_map.items() if v in ("cpu", "disk"))
    assert quant.bnb is not None
    if keys and len(device_map) > 1 and not quant.bnb.fp32_cpu_offload and version < 5:
        raise UsageError("transformers 4 refuses cpu/disk entries in a device_map with bitsandbytes unless "
                         "llm_int8_enable_fp32_cpu_offload=True", hint="add --llm-int8-enable-fp32-cpu-offload")
    return keys if quant.bnb.fp32_cpu_offload else ()


def _validate(model: HfModel, plan: TensorPlan, device_map: Mapping[str, Device], quant: Quantization,
              kind: str) -> None:
    missing = [t.name for t in plan.tensors if t.kind != "state" and device_of(t.name, device_map) is None]
    if missing:
        raise UsageError(f"the device_map does not place {missing[0]} ({len(missing)} tensor(s) unplaced)",
                         hint="name every top module, or use --device-map auto")
    values = set(device_map.values())
    if quant.bnb is not None and not quant.bnb.fp32_cpu_offload and values != {"cpu"} and \
            values & {"cpu", "disk"}:
        raise UsageError(f"bitsandbytes: the {kind} device map puts modules on the CPU or disk, and transformers "
                         "refuses that unless llm_int8_enable_fp32_cpu_offload=True (validate_environment)",
                         hint="give the GPUs more memory, or add --llm-int8-enable-fp32-cpu-offload")


def _dispatch(plan: TensorPlan, device_map: Mapping[str, Device], offload_buffers: bool
              ) -> tuple[dict[str, str], Device]:
    main = main_device(device_map)
    devices: dict[str, str] = {}
    for t in plan.tensors:
        device = device_of(t.module if t.kind == "state" else t.name, device_map)
        if t.kind == "buffer" and device in ("cpu", "disk") and not offload_buffers:
            device = main
        devices[t.name] = device_name(device if device is not None else "cpu")
    return devices, main


def _disk_checks(plan: TensorPlan, devices: Mapping[str, str], options: TransformersOptions) -> int:
    """Bytes re-saved into the offload folder; transformers 5 re-saves weights it converts while loading (fused MoE
    experts, quantized weights) and needs --offload-folder for them."""
    on_disk = [t for t in plan.tensors if devices[t.name] == "disk"]
    if not on_disk or plan.model.spec.version < 5:
        return 0
    resave = [t for t in on_disk
              if t.part != "buffers" and (t.module in plan.converted or _fused(plan.model, t.module))]
    if resave and not options.offload_folder:
        raise UsageError(f"transformers 5 re-saves {len(resave)} disk-offloaded weight(s) it converts while loading "
                         f"(e.g. {resave[0].name}) and needs an offload_folder for them",
                         hint="add --offload-folder DIR")
    return sum(t.nbytes for t in resave)


def _fused(model: HfModel, module: str) -> bool:
    return model.spec.fused_module is not None and module.endswith("." + model.spec.fused_module)


def largest_offloaded_module(plan: LoadPlan) -> int:
    """Bytes of the largest offloaded module accelerate copies onto the main device while it runs: its hooks
    (`attach_align_device_hook`) sit on every module owning tensors, so one such module at a time."""
    if plan.main_device == "cpu":
        return 0
    per_module: dict[str, int] = {}
    for t in plan.tensors:
        if plan.devices[t.name] in ("cpu", "disk"):
            per_module[t.module] = per_module.get(t.module, 0) + t.nbytes
    return max(per_module.values(), default=0)
