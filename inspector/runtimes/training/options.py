"""The training setup as options: method (full, LoRA, QLoRA), data parallelism (DeepSpeed ZeRO or PyTorch FSDP over
GPUs x nodes), offloading, precision, optimizer, micro-batch, sequence length, checkpointing; checked together the
way DeepSpeed and FSDP would refuse them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...errors import UsageError
from ...memory.train import OPTIMIZERS

METHODS = ("full", "lora", "qlora")
FSDP = ("full_shard", "shard_grad_op", "hybrid_shard", "no_shard")
PRECISIONS = ("mixed", "bf16", "fp32")
OFFLOAD = ("cpu", "nvme")
ESTIMATORS = ("deepspeed",)


@dataclass(frozen=True)
class TrainingOptions:
    method: str = "full"
    lora_rank: int = 8  # PEFT LoraConfig's default r
    lora_targets: tuple[str, ...] | None = None  # None: PEFT's default for the model type
    gpus: int = 1  # per node
    nodes: int = 1
    zero: int | None = None
    fsdp: str | None = None
    offload_optimizer: str | None = None
    offload_params: str | None = None
    precision: str = "mixed"
    optimizer: str = "adamw"
    micro_batch: int = 1
    seq_len: int = 4096
    gradient_checkpointing: bool = False
    flash_attn: bool = True
    estimator: str | None = None
    transformers_version: int = 5  # the module layout trained: transformers 5 (fused MoE experts)

    @property
    def world(self) -> int:
        return self.gpus * self.nodes

    @property
    def engine(self) -> str:
        """"deepspeed", "fsdp" or "ddp" (plain data parallel, or one GPU)."""
        return "deepspeed" if self.zero is not None else "fsdp" if self.fsdp else "ddp"

    @property
    def checkpointing(self) -> bool:
        """PEFT's prepare_model_for_kbit_training turns gradient checkpointing on for QLoRA."""
        return self.gradient_checkpointing or self.method == "qlora"

    def flags(self) -> str:
        """ckpt-size's own flags for this setup (pasted back, they give the same numbers)."""
        out = ["--runtime training", f"--method {self.method}"]
        if self.method != "full":
            out.append(f"--lora-rank {self.lora_rank}")
            if self.lora_targets is not None:
                out.append(f"--lora-targets {','.join(self.lora_targets)}")
        out.append(f"--gpus {self.gpus}")
        if self.nodes != 1:
            out.append(f"--nodes {self.nodes}")
        if self.zero is not None:
            out.append(f"--zero {self.zero}")
        if self.fsdp:
            out.append(f"--fsdp {self.fsdp}")
        for flag, value in (("--offload-optimizer", self.offload_optimizer), ("--offload-params", self.offload_params)):
            if value:
                out.append(f"{flag} {value}")
        out += [f"--precision {self.precision}", f"--optimizer {self.optimizer}", f"--micro-batch {self.micro_batch}",
                f"--seq-len {self.seq_len}"]
        if self.gradient_checkpointing:
            out.append("--gradient-checkpointing")
        if self.estimator:
            out.append(f"--estimator {self.estimator}")
        return " ".join(out)


def _targets(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    targets = tuple(t.strip() for t in text.split(",") if t.strip())
    if not targets:
        raise UsageError("--lora-targets is empty", hint="e.g. q_proj,k_proj,v_proj,o_proj or all-linear")
    return targets


def options_from(values: Mapping[str, Any]) -> TrainingOptions:
    """TrainingOptions from option values (by dest), checked (see `check`)."""
    zero = values.get("zero")
    options = TrainingOptions(
        method=values.get("method") or "full",
        lora_rank=int(values.get("lora_rank") or 8),
        lora_targets=_targets(values.get("lora_targets")),
        gpus=int(values.get("gpus") or 1),
        nodes=int(values.get("nodes") or 1),
        zero=int(zero) if zero is not None else None,
        fsdp=values.get("fsdp"),
        offload_optimizer=values.get("offload_optimizer"),
        offload_params=values.get("offload_params"),
        precision=values.get("precision") or "mixed",
        optimizer=values.get("optimizer") or "adamw",
        micro_batch=int(values.get("micro_batch") or 1),
        seq_len=int(values.get("seq_len") or 4096),
        gradient_checkpointing=bool(values.get("gradient_checkpointing")),
        estimator=values.get("estimator"),
        transformers_version=int(values.get("transformers_version") or 5),
    )
    check(options, values)
    return options


def check(o: TrainingOptions, values: Mapping[str, Any]) -> None:
    """Refuse what DeepSpeed, FSDP or PEFT would refuse, each with one line."""
    if o.method not in METHODS:
        raise UsageError(f"--method {o.method!r}", hint=f"use one of {', '.join(METHODS)}")
    if o.optimizer not in OPTIMIZERS:
        raise UsageError(f"--optimizer {o.optimizer!r}", hint=f"use one of {', '.join(OPTIMIZERS)}")
    if o.method == "full" and (values.get("lora_rank") is not None or values.get("lora_targets") is not None):
        raise UsageError("--lora-rank and --lora-targets go with --method lora or qlora")
    if o.lora_rank < 1 or o.gpus < 1 or o.nodes < 1 or o.micro_batch < 1 or o.seq_len < 1:
        raise UsageError("--lora-rank, --gpus, --nodes, --micro-batch and --seq-len must be at least 1")
    if o.zero is not None and o.fsdp:
        raise UsageError("--zero (DeepSpeed) and --fsdp (PyTorch FSDP) are two ways of sharding; give one")
    if o.zero is not None and o.zero not in (0, 1, 2, 3):
        raise UsageError(f"--zero {o.zero}: DeepSpeed's stages are 0, 1, 2 and 3")
    if o.offload_params and not (o.zero == 3 or o.fsdp in ("full_shard", "shard_grad_op", "hybrid_shard")):
        raise UsageError("--offload-params needs ZeRO-3 (offload_param) or FSDP (CPUOffload)",
                         hint="add --zero 3 or --fsdp full_shard")
    if o.offload_optimizer and o.fsdp:
        raise UsageError("FSDP offloads the optimizer with the parameters (CPUOffload(offload_params=True))",
                         hint="use --offload-params cpu with --fsdp")
    if o.offload_optimizer and not o.zero:
        raise UsageError("--offload-optimizer is DeepSpeed's offload_optimizer: it needs ZeRO stage 1, 2 or 3",
                         hint="add --zero 2 or --zero 3")
    if o.fsdp and o.offload_params == "nvme":
        raise UsageError("FSDP offloads parameters to the CPU only", hint="use --offload-params cpu")
    nvme = [f for f, v in (("--offload-optimizer", o.offload_optimizer), ("--offload-params", o.offload_params))
            if v == "nvme"]
    if nvme and o.zero != 3:
        raise UsageError(f"{nvme[0]} nvme is ZeRO-Infinity: it needs --zero 3")
    if o.precision == "bf16" and o.zero is not None:
        raise UsageError("DeepSpeed keeps fp32 master weights whenever bf16 is on", hint="use --precision mixed")
    if o.estimator == "deepspeed" and o.zero not in (2, 3):
        raise UsageError("DeepSpeed has estimators for ZeRO-2 and ZeRO-3 only "
                         "(estimate_zero2_model_states_mem_needs, estimate_zero3_model_states_mem_needs)",
                         hint="add --zero 2 or --zero 3")
