"""Model states per GPU and per host: weights, gradients and optimizer state of every parameter, sharded and
offloaded the way DeepSpeed ZeRO or PyTorch FSDP does it (docs/training.md has every rule and its source).

Bytes per parameter by engine and precision (trainable parameters):

| engine, precision   | weights | 16-bit grads | fp32 grads | fp32 master | optimizer states |
|---------------------|---------|--------------|------------|-------------|------------------|
| DDP / 1 GPU, mixed  | 2       | 2            | -          | 4           | fp32 (AdamW 8)   |
| DeepSpeed, mixed    | 2       | 2            | 4          | 4           | fp32 (AdamW 8)   |
| FSDP, mixed         | 4       | 4 (fp32)     | -          | -           | fp32 (AdamW 8)   |
| any, bf16 (pure)    | 2       | 2            | -          | -           | bf16 (AdamW 4)   |
| any, fp32           | 4       | 4 (fp32)     | -          | -           | fp32 (AdamW 8)   |

DeepSpeed's fp32 gradient partition is its estimator's "4_grads_32bit" (stage_1_and_2.py); FSDP's mixed precision
keeps the sharded parameters in fp32 and computes on bf16 copies (torch MixedPrecision). LoRA adapters are fp32
under PEFT (4 + 4 + AdamW 8) unless DeepSpeed casts the model to bf16. Frozen parameters have weights only.

Sharding over N ranks (N = GPUs x nodes; FSDP hybrid_shard: the GPUs of one node): ZeRO-1 the fp32 grads, master
and states; ZeRO-2 also the 16-bit grads; ZeRO-3 also the weights (every parameter split into ceil(numel / N)
values per rank, as stage3.py partitions); ZeRO-1/2 partition one flat group: ceil(total / N) per rank. ZeRO-3 keeps
a 16-bit gradient partition for every parameter (stage3.py `grad_partitions_flat_buffer`) and makes the fp32
gradients of one optimizer sub-group at a time (sub_group_size 1e9 values). FSDP shards all of them.
Offloading moves the optimizer side (fp32 grads, master, states; 16-bit grads leave the GPU too) or the weights
(`offload_param`; FSDP's CPUOffload moves weights, grads and states) to the host: a host holds what its GPUs
offload.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from .options import TrainingOptions

OPT_STATE_FP32 = {"adamw": Fraction(8), "adamw8bit": 2 * (1 + Fraction(4, 256)), "sgd": Fraction(0),
                  "sgd_momentum": Fraction(4)}
OPT_STATE_BF16 = {"adamw": Fraction(4), "adamw8bit": 2 * (1 + Fraction(4, 256)), "sgd": Fraction(0),
                  "sgd_momentum": Fraction(2)}
PARTS = ("weights", "grads16", "grads32", "master", "states")


@dataclass(frozen=True)
class PerParam:
    """Bytes per parameter of each state (a Fraction for 8-bit Adam's absmax)."""

    weights: Fraction
    grads16: Fraction
    grads32: Fraction
    master: Fraction
    states: Fraction

    def get(self, part: str) -> Fraction:
        return getattr(self, part)


def per_param(o: TrainingOptions, adapter: bool = False) -> PerParam:
    """The table of the module docstring for one engine and precision."""
    fp32_states, bf16_states = OPT_STATE_FP32[o.optimizer], OPT_STATE_BF16[o.optimizer]
    z = Fraction(0)
    if adapter and o.engine != "deepspeed":
        return PerParam(Fraction(4), Fraction(4), z, z, fp32_states)
    if o.precision == "fp32":
        return PerParam(Fraction(4), Fraction(4), z, z, fp32_states)
    if o.precision == "bf16":
        return PerParam(Fraction(2), Fraction(2), z, z, bf16_states)
    if o.engine == "deepspeed":
        return PerParam(Fraction(2), Fraction(2), Fraction(4), Fraction(4), fp32_states)
    if o.engine == "fsdp":
        return PerParam(Fraction(4), Fraction(4), z, z, fp32_states)
    return PerParam(Fraction(2), Fraction(2), z, Fraction(4), fp32_states)


def shard_degree(o: TrainingOptions) -> int:
    if o.engine == "fsdp":
        return 1 if o.fsdp == "no_shard" else o.gpus if o.fsdp == "hybrid_shard" else o.world
    return o.world if o.engine == "deepspeed" else 1


def sharded(o: TrainingOptions, part: str) -> bool:
    if o.engine == "fsdp":
        return o.fsdp != "no_shard"
    if o.engine != "deepspeed" or o.zero == 0:
        return False
    stage = o.zero or 0
    return stage >= {"weights": 3, "grads16": 2, "grads32": 1, "master": 1, "states": 1}[part]


def placement_of(o: TrainingOptions, part: str) -> str:
    """"gpu", "cpu" or "nvme": where a rank keeps this state."""
    if o.engine == "fsdp":
        return "cpu" if o.offload_params else "gpu"
    if part == "weights":
        return o.offload_params or "gpu"
    if o.offload_optimizer:
        if part in ("master", "states"):
            return o.offload_optimizer
        if part == "grads32" or o.zero == 3:
            return "cpu"  # ZeRO-3 keeps its 16-bit gradient partition (grad_partitions_flat_buffer) on the host
        return "offloaded"  # ZeRO-1/2 reduce 16-bit grads into the host partition: only buckets stay on the GPU
    return "gpu"


SUB_GROUP_SIZE = 1_000_000_000  # DeepSpeed zero config sub_group_size default


def largest_sub_group(partitions: list[int], size: int = SUB_GROUP_SIZE) -> int:
    """stage3.py `_create_fp16_sub_groups`: parameters (their partitions, in order) join a sub-group until it
    reaches `size`; the optimizer step makes the fp32 gradients of one sub-group at a time."""
    if size >= sum(partitions):
        return sum(partitions)
    largest = current = 0
    for k in partitions:
        current += k
        if current >= size:
            largest, current = max(largest, current), 0
    return max(largest, current)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _round(x: Fraction) -> int:
    return int(-(-x.numerator // x.denominator))


@dataclass
class States:
    """Bytes one rank holds, by state, on the GPU, and what it sends to its host's CPU and NVMe."""

    gpu: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, int] = field(default_factory=dict)
    nvme: dict[str, int] = field(default_factory=dict)

    def add(self, where: str, part: str, nbytes: int) -> None:
        if where == "offloaded" or nbytes == 0:
            return
        row = {"gpu": self.gpu, "cpu": self.cpu, "nvme": self.nvme}[where]
        row[part] = row.get(part, 0) + nbytes


def trainable_states(o: TrainingOptions, numels: list[int], adapter: bool, states: States) -> None:
    """Add a rank's share of trainable parameters of these sizes."""
    n = shard_degree(o)
    table = per_param(o, adapter)
    total = sum(numels)
    for part in PARTS:
        bytes_per = table.get(part)
        if not bytes_per:
            continue
        if not sharded(o, part):
            count = total
        elif o.engine == "deepspeed" and (o.zero or 0) < 3:
            count = _ceil_div(total, n)  # one flat partition of the group (stage_1_and_2.py)
        elif o.engine == "deepspeed" and part == "grads32":
            count = largest_sub_group([_ceil_div(k, n) for k in numels])  # converted one sub-group at a time
        else:
            count = sum(_ceil_div(k, n) for k in numels)  # each parameter partitioned (stage3.py, FSDP)
        states.add(placement_of(o, part), part, _round(bytes_per * count))
