"""Training memory (the optional `--train` mode): weights + gradients + optimizer states + master weights +
activations, with and without activation checkpointing. One device, no sharding (ZeRO/FSDP divide the first four
rows by the number of ranks).

Per parameter (P = the checkpoint's logical parameters, all trainable):
- weights: P × width of the training dtype (bf16/fp16 2 B, fp32 4 B)
- gradients: P × width of the gradient dtype (the weight dtype unless told)
- master weights: P × 4 B, kept by mixed-precision trainers when the weights are 16-bit (DeepSpeed, Megatron,
  Apex O2; ZeRO paper §3.1: "2Ψ + 2Ψ + 12Ψ = 16Ψ" bytes for Adam). PyTorch autocast instead keeps fp32 weights
  (train with `dtype="f32"`, no master copy): the same 16 B/param with AdamW.
- optimizer states, fp32: AdamW m and v = 8 B; SGD with momentum = 4 B; SGD = 0; 8-bit Adam (bitsandbytes
  blockwise, block 256 with one fp32 absmax per block) = 2 × (1 + 4/256) B = 2.03125 B.
  The common 2× error is to count Adam as two states in the weight dtype (4 B) and forget the fp32 master copy:
  8 B/param instead of 16.

Activations per token per layer (b × s tokens; 16-bit activations; a SwiGLU decoder block; every tensor the
backward pass needs, after Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
Models", §4, with its GELU MLP replaced by SwiGLU and no dropout):
- attention: norm input and output 2·h + 2·h, Q/K/V 2·(h_q + 2·h_kv), attention output 2·h_q, softmax
  log-sum-exp 4·n_head (flash attention); without flash attention also the scores and softmax 2·2·n_head·s
- MLP: norm input and output 2·h + 2·h, gate, up, activation and product 4 × 2·ff (MoE: × experts used, with
  the expert width, plus router logits 4·n_expert)
- logits of the output layer: V × (2 + 4) per token (bf16 logits and the fp32 copy the loss takes)
With full activation checkpointing only each layer's input (2·h per token) is kept, and one layer's activations
are rebuilt at a time: n_layer·2·h + one layer's full count.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Mapping

from ..errors import UsageError
from ..model import Checkpoint
from .hparams import HParams, hparams_of

DTYPE_BYTES = {"f32": 4, "fp32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "f16": 2, "fp16": 2, "float16": 2}
OPTIMIZERS = ("adamw", "adamw8bit", "sgd", "sgd_momentum")
# bytes of optimizer state per parameter (exact fractions: 8-bit Adam has 4 B of absmax per 256 values per state)
OPTIMIZER_BYTES = {"adamw": Fraction(8), "adamw8bit": 2 * (1 + Fraction(4, 256)), "sgd": Fraction(0),
                   "sgd_momentum": Fraction(4)}
ACT = 2  # bytes per activation value (bf16/fp16)


@dataclass(frozen=True)
class TrainOptions:
    dtype: str = "bf16"
    grad_dtype: str | None = None  # None: as the weights
    optimizer: str = "adamw"
    master_weights: bool | None = None  # None: yes when the weights are 16-bit
    micro_batch: int = 1
    seq_len: int = 4096
    flash_attn: bool = True


@dataclass(frozen=True)
class TrainMemory:
    params: int
    weights: int
    gradients: int
    master_weights: int
    optimizer: int
    activations: int  # without checkpointing
    activations_checkpointed: int  # with full activation checkpointing
    logits: int
    formulas: Mapping[str, str] = field(default_factory=dict)

    @property
    def static(self) -> int:
        return self.weights + self.gradients + self.master_weights + self.optimizer

    @property
    def total(self) -> int:
        return self.static + self.activations + self.logits

    @property
    def total_checkpointed(self) -> int:
        return self.static + self.activations_checkpointed + self.logits

    def as_dict(self) -> dict[str, object]:
        return {"params": self.params, "weights": self.weights, "gradients": self.gradients,
                "master_weights": self.master_weights, "optimizer": self.optimizer,
                "activations": self.activations, "activations_checkpointed": self.activations_checkpointed,
                "logits": self.logits, "total": self.total, "total_checkpointed": self.total_checkpointed,
                "formulas": dict(self.formulas)}


def _width(name: str, what: str) -> int:
    key = name.strip().lower()
    if key not in DTYPE_BYTES:
        raise UsageError(f"{what}: unknown dtype {name!r}", hint="use bf16, f16 or f32")
    return DTYPE_BYTES[key]


def activation_bytes_per_token_layer(hp: HParams, seq_len: int, flash_attn: bool) -> int:
    """The backward pass's saved activations of one decoder layer, per token (see the module docstring)."""
    h = hp.n_embd
    n_head = max(hp.n_head, default=0)
    h_q = n_head * hp.head_k_full
    h_kv = max(hp.n_head_kv, default=0) * hp.head_k_full
    attention = ACT * (2 * h + h_q + 2 * h_kv + h_q) + 4 * n_head
    if not flash_attn:
        attention += 2 * ACT * n_head * seq_len
    if hp.n_expert and hp.n_ff_exp:
        mlp = ACT * 2 * h + ACT * 4 * hp.n_ff_exp * max(1, hp.n_expert_used) + 4 * hp.n_expert
    else:
        mlp = ACT * 2 * h + ACT * 4 * max(hp.n_ff, default=0)
    return attention + mlp


def train_memory(checkpoint: Checkpoint, options: TrainOptions = TrainOptions(), *,
                 hparams: HParams | None = None) -> TrainMemory:
    """Training memory of a full fine-tune on one device."""
    if options.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {options.optimizer!r}", hint=f"use one of {', '.join(OPTIMIZERS)}")
    if options.micro_batch <= 0 or options.seq_len <= 0:
        raise UsageError("micro-batch size and sequence length must be positive")
    hp = hparams or hparams_of(checkpoint)
    p = checkpoint.params
    w = _width(options.dtype, "training dtype")
    g = _width(options.grad_dtype or options.dtype, "gradient dtype")
    master = options.master_weights if options.master_weights is not None else w < 4
    tokens = options.micro_batch * options.seq_len
    per_layer = activation_bytes_per_token_layer(hp, options.seq_len, options.flash_attn)
    layers = hp.n_layer
    activations = tokens * per_layer * layers
    checkpointed = tokens * (ACT * hp.n_embd * layers + per_layer)
    logits = tokens * (hp.n_vocab or 0) * (ACT + 4)
    formulas = {
        "weights": f"P x {w} B",
        "gradients": f"P x {g} B",
        "master_weights": "P x 4 B (fp32 copy for 16-bit weights)" if master else "none",
        "optimizer": f"P x {float(OPTIMIZER_BYTES[options.optimizer])} B ({options.optimizer}, fp32 states)",
        "activations": f"b x s x n_layer x {per_layer} B per token per layer",
        "activations_checkpointed": f"b x s x (n_layer x 2h + {per_layer}) B",
        "logits": "b x s x n_vocab x (2 + 4) B",
    }
    return TrainMemory(
        params=p,
        weights=p * w,
        gradients=p * g,
        master_weights=p * 4 if master else 0,
        optimizer=int(-(-p * OPTIMIZER_BYTES[options.optimizer] // 1)),
        activations=activations,
        activations_checkpointed=checkpointed,
        logits=logits,
        formulas=formulas,
    )
