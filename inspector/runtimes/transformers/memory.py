"""The loaded model's memory per device, and the device map as accelerate made it.

Parts (docs/transformers.md):
- weights: every parameter and checkpoint buffer in its runtime dtype; a bitsandbytes weight packed (int8, or
  two 4-bit values per byte); on the device of its module in the device map ("disk": read from disk when used);
- quant state: bitsandbytes' absmax, code books (and with double quantization the nested ones and the offset) or
  int8 row scales, on the weight's device;
- buffers: tensors the model makes itself (float32 rotary frequencies); those of cpu/disk modules live on the
  main device (accelerate dispatch, offload_buffers=False);
- offload staging (estimate): with a GPU and modules on cpu/disk, accelerate copies one offloaded module at a
  time to the main device while it runs: the largest such module.
Activations and the KV cache of generation are not modelled here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ...memory.budget import BudgetVerdict, check_totals
from ...memory.table import MemoryTable, Part
from .accelerate import device_name
from .load import LoadPlan, largest_offloaded_module

PARTS = (Part("weights", "weights"), Part("quant_state", "quant state"), Part("buffers", "buffers"),
         Part("offload_staging", "offload staging", "estimate"))


def _json_key(key: Any) -> str:
    return str(key)


@dataclass(frozen=True)
class TransformersMemory:
    table: MemoryTable
    plan: LoadPlan
    notes: tuple[str, ...] = ()
    counted: Mapping[str, float] = field(default_factory=dict)  # accelerate's count per device

    def check(self, budgets: Mapping[str, int]) -> BudgetVerdict:
        return check_totals({d: t for d, t in self.table.totals.items() if d != "disk"}, budgets)

    def map_rows(self) -> list[tuple[str, str, float, int]]:
        """(device_map entry, device, accelerate's count, bytes loaded) in the map's order."""
        plan = self.plan
        sizes = plan.result.module_sizes if plan.result else {}
        loaded: dict[str, int] = {}
        for t in plan.tensors:
            key = _entry(t.name if t.kind != "state" else t.module, plan.device_map)
            loaded[key] = loaded.get(key, 0) + t.nbytes
        return [(k, device_name(v), sizes.get(k, 0), loaded.get(k, 0)) for k, v in plan.device_map.items()]

    def extra_tables(self) -> list[tuple[str, list[str], list[list[Any]]]]:
        """The device map as a table: entry, device, accelerate's count, bytes loaded (report hook)."""
        rows = [[k or "(whole model)", d, f"{int(c):,}" if c == int(c) else f"{c:,}", f"{b:,}"]
                for k, d, c, b in self.map_rows()]
        title = f"device map ({self.plan.map_kind}; accelerate's count vs bytes in memory)"
        return [(title, ["module", "device", "counted", "bytes"], rows)]

    def as_dict(self) -> dict[str, Any]:
        plan = self.plan
        doc: dict[str, Any] = {
            "runtime": "transformers",
            "transformers_version": plan.model.spec.version,
            "dtype": plan.dtype,
            "quantization": plan.quant.label,
            "device_map_kind": plan.map_kind,
            "device_map": {k: v for k, v in plan.device_map.items()},
            "main_device": plan.main_device,
            "devices": {d: self.table.row_dict(d) for d in self.table.devices},
            "accelerate_counted": {d: _number(v) for d, v in self.counted.items()},
            "offload_folder_bytes": plan.resaved,
            "notes": list(self.notes),
        }
        if plan.requested is not None:
            doc["max_memory"] = {_json_key(k): _number(v) for k, v in plan.requested.items()}
        if plan.result is not None:
            doc["accelerate_used"] = {_json_key(k): _number(v) for k, v in plan.result.used.items()}
        return doc


def _number(value: float) -> Any:
    if value == float("inf"):
        return "unlimited"
    return int(value) if value == int(value) else value


def _entry(name: str, device_map: Mapping[str, Any]) -> str:
    parts = name.split(".")
    for i in range(len(parts), -1, -1):
        key = ".".join(parts[:i])
        if key in device_map:
            return key
    return ""


def memory_of(plan: LoadPlan) -> TransformersMemory:
    rows: dict[str, dict[str, int]] = {}
    counted: dict[str, float] = {}
    for t in plan.tensors:
        device = plan.devices[t.name]
        row = rows.setdefault(device, {})
        row[t.part] = row.get(t.part, 0) + t.nbytes
        counted[device] = counted.get(device, 0) + t.counted
    staging = largest_offloaded_module(plan)
    if staging:
        rows.setdefault(plan.main_device, {})["offload_staging"] = staging
    title = f"transformers {plan.model.spec.version} memory per device (docs/transformers.md)"
    notes = ()
    if plan.resaved:
        notes = (f"{plan.resaved:,} bytes of converted weights are written to the offload folder",)
    return TransformersMemory(MemoryTable(PARTS, rows, title), plan, notes, counted)
