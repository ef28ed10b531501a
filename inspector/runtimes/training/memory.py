"""Training memory per GPU (cuda:0 .. cuda:N-1 of one node, every rank alike) and per host (cpu, nvme): weights,
gradients, optimizer (exact, from the shapes), activations and buffers (estimates); DeepSpeed's estimate beside
ours when asked."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...memory.budget import BudgetVerdict
from ...memory.table import MemoryTable, Part
from .plan import GATHERED, TrainPlan

PARTS = (Part("weights", "weights"), Part("gradients", "gradients"), Part("optimizer", "optimizer"),
         Part("activations", "activations", "estimate"), Part("buffers", "buffers", "estimate"))
GROUPS = {"weights": ("weights",), "gradients": ("grads16", "grads32"), "optimizer": ("master", "states")}


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


@dataclass(frozen=True)
class TrainingMemory:
    table: MemoryTable
    plan: TrainPlan
    notes: tuple[str, ...] = ()

    def check(self, budgets: Mapping[str, int]) -> BudgetVerdict:
        return self.table.check(budgets)

    @property
    def model_states_gpu(self) -> int:
        """Weights, gradients and optimizer state on one GPU (what DeepSpeed's estimators estimate)."""
        row = self.table.row_dict("cuda:0")
        return row["weights"] + row["gradients"] + row["optimizer"]

    @property
    def model_states_host(self) -> int:
        return sum(self.table.row_dict(d)["total"] for d in ("cpu", "nvme") if d in self.table.rows)

    def extra_tables(self) -> list[tuple[str, list[str], list[list[Any]]]]:
        plan = self.plan
        rows = [["parameters", f"{plan.total_params:,}"], ["trainable", f"{plan.trainable:,}"]]
        if plan.adapters:
            rows += [["LoRA targets", ", ".join(plan.targets)],
                     ["LoRA modules", f"{len({a.module for a in plan.adapters}):,} (rank {plan.options.lora_rank})"]]
        rows += [["buffers (est.)", "; ".join(f"{k} {v:,}" for k, v in plan.buffers.items()) or "none"]]
        tables = [("training setup: " + plan.options.flags(), ["", ""], rows)]
        ds = plan.deepspeed
        if ds is not None:
            llm = ds.largest_layer_memory
            ours_gpu = self.model_states_gpu + plan.buffers.get(GATHERED, 0)
            compare = [["DeepSpeed per GPU", f"{ds.gpu:,}", _gib(ds.gpu)],
                       ["ckpt-size per GPU (model states" + (" + gathered layer" if llm else "") + ")",
                        f"{ours_gpu:,}", _gib(ours_gpu)],
                       ["DeepSpeed per CPU (node, x1.5 buffer factor)", f"{ds.cpu:,}", _gib(ds.cpu)],
                       ["ckpt-size per host (cpu + nvme)", f"{self.model_states_host:,}", _gib(self.model_states_host)]]
            tables.append((f"DeepSpeed's estimate: {ds.call}", ["", "bytes", ""], compare))
            tables.append(("DeepSpeed prints (" + ("estimate_zero2_model_states_mem_needs_all_cold" if llm is None
                           else "estimate_zero3_model_states_mem_needs_all_cold") + ")", [], list(ds.table)))
        return tables

    def as_dict(self) -> dict[str, Any]:
        plan, o = self.plan, self.plan.options
        doc: dict[str, Any] = {
            "runtime": "training",
            "setup": {"method": o.method, "engine": o.engine, "zero": o.zero, "fsdp": o.fsdp, "gpus_per_node": o.gpus,
                      "nodes": o.nodes, "offload_optimizer": o.offload_optimizer, "offload_params": o.offload_params,
                      "precision": o.precision, "optimizer": o.optimizer, "micro_batch": o.micro_batch,
                      "seq_len": o.seq_len, "gradient_checkpointing": o.checkpointing, "flags": o.flags()},
            "params": {"total": plan.total_params, "trainable": plan.trainable,
                       "largest_layer": plan.largest_layer_params},
            "devices": {d: self.table.row_dict(d) for d in self.table.devices},
            "per_rank": {"gpu": dict(plan.states.gpu), "cpu": dict(plan.states.cpu), "nvme": dict(plan.states.nvme)},
            "buffers": dict(plan.buffers),
            "notes": list(self.notes),
        }
        if plan.adapters:
            doc["lora"] = {"rank": o.lora_rank, "targets": list(plan.targets),
                           "modules": len({a.module for a in plan.adapters})}
        if plan.deepspeed is not None:
            ds = plan.deepspeed
            doc["deepspeed"] = {"call": ds.call, "cpu_per_node": ds.cpu, "gpu_per_gpu": ds.gpu,
                                "largest_layer_memory": ds.largest_layer_memory, "printed": list(ds.table),
                                "ours_model_states_per_gpu": self.model_states_gpu,
                                "ours_per_host": self.model_states_host}
        return doc


def _row(states: Mapping[str, int]) -> dict[str, int]:
    return {group: sum(states.get(p, 0) for p in parts) for group, parts in GROUPS.items()}


def memory_of(plan: TrainPlan) -> TrainingMemory:
    o = plan.options
    gpu = {**_row(plan.states.gpu), "activations": plan.activations, "buffers": sum(plan.buffers.values())}
    rows: dict[str, dict[str, int]] = {f"cuda:{i}": dict(gpu) for i in range(o.gpus)}
    for host, states in (("cpu", plan.states.cpu), ("nvme", plan.states.nvme)):
        if states:
            rows[host] = {k: v * o.gpus for k, v in _row(states).items()}
    title = (f"training memory per GPU (each of {o.gpus} per node x {o.nodes} node{'s' if o.nodes > 1 else ''}) "
             f"and per host (docs/training.md)")
    notes = tuple(plan.notes)
    if o.method == "qlora":
        notes += ("QLoRA: NF4 with double quantization for every Linear but lm_head, other weights float32 "
                  "(prepare_model_for_kbit_training), gradient checkpointing on",)
    return TrainingMemory(MemoryTable(PARTS, rows, title), plan, notes)
