"""accelerate's device-map inference, replayed on the module tree rebuilt from the checkpoint.

Reproduced (facts only, no code) from:
- transformers 5.25 `integrations/accelerate.py`: `compute_module_sizes`, `get_max_memory`, `get_balanced_memory`,
  `_init_infer_auto_device_map`, `get_module_size_with_ties`, `infer_auto_device_map` (its own copy since 5.0);
- accelerate 1.16 `utils/modeling.py` (what transformers 4.57 calls): `compute_module_sizes`, `get_max_layer_size`,
  `get_max_memory`, `clean_device_map`, `get_module_leaves`, `get_balanced_memory`, `get_module_size_with_ties`,
  `infer_auto_device_map`. transformers 5 also uses accelerate's `get_max_layer_size` and `clean_device_map`.

Sizes are numbers as accelerate computes them: element counts times element sizes that may be 0.5 (4-bit) or a
min() of two dtypes (transformers 4), and memory limits that may have been multiplied by 0.9 (floats, as in
Python). Comparisons are made on the same numbers the same way, so the same map comes out.
Devices: GPU indices (int), "cpu", "disk" — accelerate's own keys.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Union

from ...errors import UsageError
from ...memory.hf_model import HfModel, Module, Tensor

Device = Union[int, str]
Number = Union[int, float]
Item = tuple[str, Union[Module, Tensor]]


@dataclass
class MapResult:
    """What infer_auto_device_map decided, and the numbers it decided with."""

    device_map: dict[str, Device]
    max_memory: dict[Device, Number]  # the limits infer_auto_device_map worked with
    module_sizes: dict[str, Number]  # every module (and tensor) size as accelerate counted it
    used: dict[Device, Number]  # memory accelerate counted as used per device (reserves included)
    notes: list[str] = field(default_factory=list)


def device_order(keys: Iterable[Device]) -> list[Device]:
    """accelerate `get_max_memory`: GPU indices sorted, then "mps", "cpu", "disk"."""
    keys = list(keys)
    for k in keys:
        if not isinstance(k, int) and k not in ("mps", "cpu", "disk"):
            raise UsageError(f"max_memory key {k!r} is not a device accelerate knows",
                             hint="use GPU indices (0, 1 …), 'cpu' or 'disk'")
    return sorted(k for k in keys if isinstance(k, int)) + [k for k in ("mps", "cpu", "disk") if k in keys]


def compute_module_sizes(tensors: list[tuple[str, Number]], version: int, *, only_modules: bool
                         ) -> tuple[dict[str, Number], dict[str, Number]]:
    """Sizes of every module prefix (and of every tensor unless `only_modules`), and (transformers 5) of the
    modules that own tensors directly. `tensors`: (name, size) in named_parameters() + named_buffers() order."""
    sizes: dict[str, Number] = defaultdict(int)
    leaves: dict[str, Number] = defaultdict(int)
    for name, size in tensors:
        parts = name.split(".")
        stop = len(parts) if version >= 5 else len(parts) + 1
        for idx in range(stop):
            sizes[".".join(parts[:idx])] += size
        if version >= 5:
            if "." in name:
                leaves[name.rsplit(".", 1)[0]] += size
            if not only_modules:
                sizes[name] += size
    return sizes, leaves


def _children(node: Module | Tensor) -> list[Item]:
    return [(c.path, c) for c in node.children] if isinstance(node, Module) else []


def _no_split(node: Module | Tensor) -> bool:
    return isinstance(node, Module) and node.kind == "layer"


def get_max_layer_size(items: list[Item], sizes: dict[str, Number]) -> tuple[Number, list[str]]:
    """accelerate `get_max_layer_size`: the biggest leaf or no-split module among `items`, and every name of
    that size."""
    max_size: Number = 0
    names: list[str] = []
    todo = list(items)
    while todo:
        name, node = todo.pop(0)
        children = _children(node)
        if not children or _no_split(node):
            size = sizes.get(name, 0)
            if size > max_size:
                max_size, names = size, [name]
            elif size == max_size:
                names.append(name)
        else:
            todo = children + todo
    return max_size, names


def clean_device_map(device_map: dict[str, Device], module_name: str = "", order: list[str] | None = None
                     ) -> dict[str, Device]:
    """accelerate `clean_device_map`: a prefix whose entries share one device becomes one entry (moved to the end).
    accelerate walks the children of a prefix as a Python set, so its key order varies between runs; we walk
    them in definition order (`order`: every module path, pre-order)."""
    prefix = "" if module_name == "" else f"{module_name}."
    values = [v for k, v in device_map.items() if k.startswith(prefix)]
    if len(set(values)) == 1 and len(values) > 1:
        for k in [k for k in device_map if k.startswith(prefix)]:
            del device_map[k]
        device_map[module_name] = values[0]
    children = [k for k in device_map if k.startswith(prefix) and len(k) > len(module_name)]
    idx = len(module_name.split(".")) + 1 if module_name else 1
    found = {".".join(k.split(".")[:idx]) for k in children}
    rank = {p: i for i, p in enumerate(order or [])}
    for child in sorted(found, key=lambda c: (rank.get(c, len(rank)), c)):
        clean_device_map(device_map, child, order)
    return device_map


def _module_size_with_ties(tied_params: list[str], module_size: Number, sizes: dict[str, Number],
                           todo: list[Item], version: int) -> tuple[Number, list[str], list[Module | Tensor]]:
    """`get_module_size_with_ties`: transformers 5 adds each distinct tied module's full size; accelerate (4.x)
    adds the tied module's size minus the tied parameter's."""
    names: list[str] = []
    nodes: list[Module | Tensor] = []
    total = module_size
    for param in tied_params:
        hits = [(n, m) for n, m in todo if (version < 5 and param == n) or param.startswith(n + ".")]
        if not hits:
            continue
        name, node = hits[0]
        if version >= 5:
            if name not in names:
                names.append(name)
                nodes.append(node)
                total += sizes.get(name, 0)
        else:
            names.append(name)
            nodes.append(node)
            total += sizes.get(name, 0) - sizes.get(param, 0)
    return total, names, nodes


def _direct(node: Module) -> list[Item]:
    """named_parameters(recurse=False) + named_children(), as the split branches build them."""
    return [(p.name, p) for p in node.params] + [(c.path, c) for c in node.children]


def infer_auto_device_map(model: HfModel, max_memory: dict[Device, Number], sizes: dict[str, Number],
                          tied_groups: list[list[str]], buffer_sizes: dict[str, Number]) -> MapResult:
    """`infer_auto_device_map` of the model's transformers version (module docstring). `sizes` from
    compute_module_sizes(only_modules=False); `buffer_sizes` the buffer bytes of every module subtree."""
    version = model.spec.version
    max_memory = {k: max_memory[k] for k in device_order(max_memory)}
    devices: list[Device] = list(max_memory) + ([] if "disk" in max_memory else ["disk"])
    gpus = [d for d in devices if d not in ("cpu", "disk")]
    main_devices = ["mps"] if "mps" in gpus else [gpus[0], "cpu"] if gpus else ["cpu"]
    root = model.root
    todo: list[Item] = [(p.name, p) for p in root.params if p.tied_to is None] + \
        [(c.path, c) for c in root.children] + [(b.name, b) for b in root.buffers]
    device_map: dict[str, Device] = {}
    current = 0
    used: dict[Device, Number] = dict.fromkeys(devices, 0)
    buffers_on: dict[Device, Number] = {}
    minimum: dict[Device, Number] = {}
    max_layer, max_names = get_max_layer_size(todo, sizes)
    while todo:
        name, node = todo.pop(0)
        max_names = [n for n in max_names if n != name and not n.startswith(name + ".")]
        if not max_names:
            max_layer, max_names = get_max_layer_size([(n, m) for n, m in todo if isinstance(m, Module)], sizes)
        size = sizes.get(name, 0)
        groups = [g for g in tied_groups
                  if any(name + "." in k + "." for k in g) and not all(name + "." in k + "." for k in g)]
        tied_params = [p for g in groups for p in g if name + "." not in p + "."]
        device = devices[current]
        limit: Number | None = max_memory[device] if device != "disk" else None
        reserved: Number = 0
        if device in main_devices and limit is not None:
            limit -= max_layer
            reserved = max_layer
        with_ties, tied_names, tied_nodes = _module_size_with_ties(tied_params, size, sizes, todo, version)
        if limit is None or used[device] + with_ties <= limit:
            used[device] += with_ties
            device_map[name] = device
            for tied_name in tied_names:
                todo = [(n, m) for n, m in todo if n != tied_name]
                device_map[tied_name] = device
            if isinstance(node, Module):
                buffers_on[device] = buffers_on.get(device, 0) + buffer_sizes.get(name, 0)
            continue
        if tied_params and used[device] + size <= limit:
            split = _split_tied(name, node, tied_names, tied_nodes, todo)
            if split is not None:
                todo = split
                max_layer, max_names = get_max_layer_size([(n, m) for n, m in todo if isinstance(m, Module)], sizes)
                continue
        if version >= 5 or used[device] + size >= limit:
            children = _children(node)
            if children and not _no_split(node):
                assert isinstance(node, Module)
                todo = [(n, m) for n, m in _direct(node)] + todo
                max_layer, max_names = get_max_layer_size([(n, m) for n, m in todo if isinstance(m, Module)], sizes)
                continue
        if used[device] == 0:
            minimum[device] = with_ties + reserved
        used[device] += reserved
        current += 1
        todo = [(name, node)] + todo
    order = [m.path for m in model.modules()]
    device_map = clean_device_map(device_map, order=order)
    notes = _notes(buffers_on, max_memory, used, gpus, minimum)
    return MapResult(device_map, max_memory, dict(sizes), {d: u for d, u in used.items() if u > 0}, notes)


def _split_tied(name: str, node: Module | Tensor, tied_names: list[str], tied_nodes: list[Module | Tensor],
                todo: list[Item]) -> list[Item] | None:
    """Replace the first splittable tied module by its parameters and children (the current module first)."""
    for tied_name, tied in zip(tied_names, tied_nodes):
        if not isinstance(tied, Module) or not tied.children or _no_split(tied):
            continue
        index = next(i for i, (n, _) in enumerate(todo) if n == tied_name)
        return [(name, node)] + todo[:index] + _direct(tied) + todo[index + 1:]
    return None


def _notes(buffers_on: dict[Device, Number], max_memory: dict[Device, Number], used: dict[Device, Number],
           gpus: list[Device], minimum: dict[Device, Number]) -> list[str]:
    notes = []
    off = buffers_on.get("cpu", 0) + buffers_on.get("disk", 0)
    if off > 0 and gpus and not any(max_memory[g] >= off + used.get(g, 0) for g in gpus):
        notes.append(f"accelerate warns: the model needs {int(off)} bytes of buffers for offloaded layers, which do "
                     "not fit any GPU's remaining memory (offload_buffers=True avoids it)")
    for device, need in minimum.items():
        notes.append(f"accelerate: no module could be assigned to {device_name(device)} ({int(need)} bytes required "
                     "for the first module there, its reserve included)")
    return notes


def device_name(device: Device) -> str:
    """ckpt-size's name of an accelerate device: 0 -> cuda:0."""
    return f"cuda:{device}" if isinstance(device, int) else str(device)
