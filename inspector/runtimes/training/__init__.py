"""Training memory beyond one device: full fine-tune, LoRA and QLoRA (PEFT), DeepSpeed ZeRO 0-3 or PyTorch FSDP over
GPUs x nodes, optimizer and parameter offload, mixed precision, activations; per GPU and per host, by part, with
DeepSpeed's own estimator beside it (docs/training.md)."""
from __future__ import annotations

from typing import Any

from ...memory.options import TRANSFORMERS_VERSION_OPTION
from ...options import OptionSpec
from ..base import RuntimeSpec


def _load():  # type: ignore[no-untyped-def]
    from .runtime import TrainingRuntime

    return TrainingRuntime(SPEC)


def _option(dest: str, flags: tuple[str, ...], kind: str, text: str, **kw: Any) -> OptionSpec:
    """A training option: it selects the training runtime and its memory table; not an option of `fit`."""
    return OptionSpec(dest, flags, kind, "training: " + text, memory=True, searched=True, **kw)


# --optimizer, --micro-batch and --seq-len are read by `--train` (one device, any runtime) too: with --train they
# do not select this runtime (inspector/requests.py TRAIN_KEYS).
OPTIONS = (
    _option("method", ("--method",), "choice", "full fine-tune, LoRA or QLoRA (4-bit NF4 base + LoRA).",
            choices=("full", "lora", "qlora")),
    _option("lora_rank", ("--lora-rank",), "int", "LoRA rank r (default 8, as PEFT).", metavar="R", minimum=1),
    _option("lora_targets", ("--lora-targets",), "str", "LoRA target_modules: q_proj,k_proj,... or all-linear "
            "(default: PEFT's for the model type).", metavar="NAMES"),
    _option("nodes", ("--nodes",), "int", "nodes (GPUs per node: --gpus, default 1).", metavar="M", minimum=1),
    _option("zero", ("--zero",), "choice", "DeepSpeed ZeRO stage.", choices=("0", "1", "2", "3")),
    _option("fsdp", ("--fsdp",), "choice", "PyTorch FSDP sharding strategy.",
            choices=("full_shard", "shard_grad_op", "hybrid_shard", "no_shard")),
    _option("offload_optimizer", ("--offload-optimizer",), "choice", "DeepSpeed offload_optimizer device.",
            choices=("cpu", "nvme")),
    _option("offload_params", ("--offload-params",), "choice", "ZeRO-3 offload_param / FSDP CPUOffload device.",
            choices=("cpu", "nvme")),
    _option("precision", ("--precision",), "choice", "mixed (bf16 compute, fp32 master and Adam moments; default), "
            "bf16 (pure) or fp32.", choices=("mixed", "bf16", "fp32")),
    _option("gradient_checkpointing", ("--gradient-checkpointing",), "flag", "recompute each decoder layer in "
            "backward."),
    _option("estimator", ("--estimator",), "choice", "also print DeepSpeed's own estimate (ZeRO-2/3).",
            choices=("deepspeed",)),
    _option("optimizer", ("--optimizer",), "choice", "optimizer (also with --train).",
            choices=("adamw", "adamw8bit", "sgd", "sgd_momentum"), default="adamw", show_default=True),
    _option("micro_batch", ("--micro-batch",), "int", "sequences per step per GPU (also with --train).",
            default=1, minimum=1, show_default=True),
    _option("seq_len", ("--seq-len",), "int", "tokens per sequence (also with --train).", default=4096, minimum=1,
            show_default=True),
    TRANSFORMERS_VERSION_OPTION,
)

SUMMARY = "training memory per GPU and host: full/LoRA/QLoRA, DeepSpeed ZeRO or FSDP, offload"
SPEC = RuntimeSpec.memory_only("training", "Training", SUMMARY, OPTIONS, _load, order=50)
