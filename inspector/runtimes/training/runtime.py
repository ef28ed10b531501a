"""The training runtime behind the protocol: a training setup in, per-GPU and per-host memory out. Ranks are the
GPUs cuda:0 .. cuda:N-1 of one node (all alike); the placed checkpoint is what rank 0 holds of the weights."""
from __future__ import annotations

from typing import Any, Mapping

from ...errors import UsageError
from ...model import Checkpoint, TensorInfo
from ...roles import classify_names
from ..base import Placement, RuntimeBase, SearchOutcome
from .memory import TrainingMemory, memory_of
from .options import TrainingOptions, options_from
from .plan import TrainPlan, build_plan

DEVICES = {"gpu": "cuda:0", "cpu": "cpu", "nvme": "nvme"}


def _summary(o: TrainingOptions) -> str:
    what = {"full": "full fine-tune", "lora": f"LoRA r={o.lora_rank}", "qlora": f"QLoRA r={o.lora_rank}"}[o.method]
    where = f"{o.gpus} GPU{'s' if o.gpus > 1 else ''}" + (f" x {o.nodes} nodes" if o.nodes > 1 else "")
    engine = {"deepspeed": f"DeepSpeed ZeRO-{o.zero}", "fsdp": f"FSDP {o.fsdp}", "ddp": "DDP"}[o.engine]
    if o.engine == "ddp" and o.world == 1:
        engine, where = "no sharding", "one GPU"
    extra = [f"offload optimizer {o.offload_optimizer}"] if o.offload_optimizer else []
    extra += [f"offload params {o.offload_params}"] if o.offload_params else []
    return f"training: {what}, {engine} on {where}" + (f", {', '.join(extra)}" if extra else "") + \
        "; tensors: what rank 0 holds"


def placed_checkpoint(plan: TrainPlan, checkpoint: Checkpoint) -> Checkpoint:
    by_name = {t.name: t for t in checkpoint.tensors}
    synthetic = [w.name for w in plan.weights if w.name not in by_name]
    roles = dict(zip(synthetic, classify_names(synthetic))) if synthetic else {}
    out = []
    for w in plan.weights:
        device = DEVICES[w.where]
        src = by_name.get(w.name)
        if src is not None:
            out.append(src.with_(shape=w.shape, dtype=w.dtype, nbytes=w.nbytes, params=w.params, device=device))
            continue
        base = by_name.get(w.source or "") or next((by_name[a.base_weight] for a in plan.adapters
                                                     if a.name == w.name and a.base_weight in by_name), None)
        role, layer, expert = roles.get(w.name, ("other", None, None))
        if base is not None and role == "other":
            role, layer, expert = base.role, base.layer, base.expert
        if role == "other" and ".rotary_emb" in w.name:
            role = "attention"
        out.append(TensorInfo(w.name, w.shape, w.dtype, w.nbytes, base.offset if base else 0,
                              base.file_index if base else 0, w.params, role, layer, expert, device))
    placed = {w.name for w in plan.weights}
    out += [t.with_(device=None) for t in checkpoint.tensors if t.name not in placed and
            not any(w.source == t.name for w in plan.weights)]
    return checkpoint.with_(tensors=tuple(out))


class TrainingRuntime(RuntimeBase):
    def options(self, values: Mapping[str, Any]) -> TrainingOptions:
        return options_from(values)

    def place(self, checkpoint: Checkpoint, options: TrainingOptions) -> Placement:
        plan = build_plan(checkpoint, options)
        return Placement("training", placed_checkpoint(plan, checkpoint), checkpoint, _summary(options),
                         command=options.flags(), notes=tuple(plan.notes), detail=plan)

    def memory(self, placement: Placement, options: TrainingOptions) -> TrainingMemory:
        return memory_of(placement.detail)

    def search(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: TrainingOptions) -> SearchOutcome:
        raise UsageError("the training runtime has no fit search", hint="use inspect with --budget for a verdict")

    def command(self, placement: Placement, options: TrainingOptions) -> str:
        return options.flags()

    def context(self, options: TrainingOptions) -> tuple[int, int]:
        return options.seq_len, options.micro_batch

    def with_context(self, options: TrainingOptions, *, ctx: int | None = None, parallel: int | None = None
                     ) -> TrainingOptions:
        from dataclasses import replace

        return replace(options, seq_len=ctx or options.seq_len, micro_batch=parallel or options.micro_batch)

    def trained_context(self, checkpoint: Checkpoint) -> int | None:
        return None
