"""llama.cpp's output and compute buffers: one exact formula (the host output buffer) and one documented estimate
(the compute buffers ggml's graph allocator reserves per backend).

Sources (llama.cpp commit 0c1e5709):
- Output buffer, src/llama-context.cpp `output_reserve`: logits of n_vocab × max(n_outputs, n_seq_max) f32, reserved
  at context creation with n_outputs = n_seq_max; it lives in host memory (the CPU buffer type or the output
  device's pinned host buffer), so we charge it to `cpu`. Measured: 1.00 MiB for Gemma-3-270M (262,144 × 4 B).
- Compute buffers, src/llama-context.cpp `sched_reserve`: the worst-case prompt graph of n_tokens =
  min(n_ctx, n_ubatch) tokens and n_outputs = n_tokens, with the memory module at full size (`init_full`, so
  n_kv = all cells), allocated by ggml-alloc per backend (tensors reuse memory once dead, so a buffer is about the
  largest set of tensors alive together, not their sum).

The estimate per device, in bytes (f32 activations, t = n_ubatch tokens):
- layer peak (a device that runs at least one layer) = residual 3·n_embd·t·4 + max(attention, feed-forward)
  - attention, flash attention off: KQ scores n_kv·t·n_head·4 (softmax reuses them), plus Q and KQV
    n_head·(head_k + head_v)·t·4; flash attention on: Q and output only, n_head·(head_k + head_v)·t·4
  - feed-forward: dense 2·n_ff·t·4 (gate and up); MoE 2·n_expert·t·4 (router logits, probabilities) +
    2·n_used·n_ff_exp·t·4 (gate and up of the chosen experts) + 3·n_used·n_embd·t·4 (expert outputs, weighted)
- output peak (the device holding the output layer) = logits n_vocab·t·4 + 2·n_embd·t·4
- graph inputs: the KQ mask n_kv·t·(2 with flash attention, else 4) on each device that runs layers, and the token
  embeddings n_embd·t·4 on the CPU (get_rows on token_embd, which llama.cpp keeps on the CPU)
- staging on the first GPU when layer weights stay on the CPU: the largest such weight tensor (ggml's scheduler
  copies a CPU weight into the GPU's compute buffer to run a large-batch op there; gguf-parser-go#45 measured
  compute buffers 1.2–2.7× larger at partial offload)
A device's compute buffer = max(layer peak + inputs, output peak) (+ staging on the first GPU): the inputs and layer
temporaries are dead by the time the logits are computed, and ggml-alloc reuses their memory. With --no-kv-offload
the attention (scores, mask) runs on the CPU, next to the cache.
Checked against llama.cpp's CPU backend (docs/memory.md); GPU backends pad and fuse differently, so this is an
estimate, labelled as such everywhere it is shown.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..devices import device_sort_key
from .hparams import HParams
from .kv import ContextShape

F32 = 4


@dataclass(frozen=True)
class DeviceBuffers:
    device: str
    output: int = 0  # host output (logits) buffer: exact formula
    compute: int = 0  # compute buffer: estimate
    parts: Mapping[str, int] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return self.output + self.compute


def output_buffer_bytes(hp: HParams, n_seq: int) -> int:
    """The logits buffer llama.cpp reserves at context creation (n_vocab × n_seq_max f32)."""
    return (hp.n_vocab or 0) * max(1, n_seq) * F32


def _layer_peak(hp: HParams, shape: ContextShape, flash_attn: bool, n_kv: int) -> dict[str, int]:
    t = shape.n_ubatch
    n_head = max(hp.n_head, default=0)
    head_k = max(hp.head_k_full, hp.head_k_swa)
    head_v = max(hp.head_v_full, hp.head_v_swa)
    qkv = n_head * (head_k + head_v) * t * F32
    attention = qkv if flash_attn else n_kv * t * n_head * F32 + qkv
    if hp.n_expert and hp.n_ff_exp:
        ffn = (2 * hp.n_expert * t + 2 * hp.n_expert_used * hp.n_ff_exp * t + 3 * hp.n_expert_used * hp.n_embd * t) * F32
    else:
        ffn = 2 * max(hp.n_ff, default=0) * t * F32
    return {"residual": 3 * hp.n_embd * t * F32, "attention": attention, "ffn": ffn}


def estimate_buffers(
    hp: HParams,
    shape: ContextShape,
    *,
    flash_attn: bool,
    layer_devices: Mapping[int, str],
    output_device: str | None,
    cpu_staging: int = 0,
    n_kv: int | None = None,
    kv_on_cpu: bool = False,
) -> dict[str, DeviceBuffers]:
    """Buffers per device. `cpu_staging` is the largest layer weight left on the CPU while layers run on GPUs;
    `kv_on_cpu` (--no-kv-offload) runs attention, and so its scores and mask, on the CPU."""
    t = shape.n_ubatch
    n_kv = shape.n_ctx_seq if n_kv is None else n_kv  # the widest attention: a full-context layer
    peak = _layer_peak(hp, shape, flash_attn, n_kv)
    layer_peak = peak["residual"] + max(peak["attention"], peak["ffn"])
    output_peak = ((hp.n_vocab or 0) + 2 * hp.n_embd) * t * F32
    devices = set(layer_devices.values()) | ({output_device} if output_device else set()) | {"cpu"}
    gpus = sorted((d for d in devices if d != "cpu"), key=device_sort_key)
    out: dict[str, DeviceBuffers] = {}
    mask = n_kv * t * (2 if flash_attn else F32)
    gpu_layers = any(d != "cpu" for d in layer_devices.values())
    for dev in sorted(devices, key=device_sort_key):
        parts: dict[str, int] = {}
        layers = 0
        if dev in layer_devices.values() and kv_on_cpu and dev != "cpu":
            parts["layers"] = peak["residual"] + peak["ffn"]  # attention runs where the cache is: the CPU
            layers = parts["layers"]
        elif dev in layer_devices.values() or (dev == "cpu" and kv_on_cpu and gpu_layers):
            parts["layers"] = layer_peak
            parts["mask"] = mask
            layers = layer_peak + mask
        if dev == "cpu":
            parts["inputs"] = hp.n_embd * t * F32  # token embeddings: get_rows on the CPU's token_embd
            layers += parts["inputs"]
        if dev == output_device:
            parts["logits"] = output_peak
        compute = max(layers, parts.get("logits", 0))  # the mask and layer temporaries are dead by the logits
        if gpus and dev == gpus[0] and cpu_staging:
            parts["staging"] = cpu_staging
            compute += cpu_staging
        output = output_buffer_bytes(hp, shape.n_seq) if dev == "cpu" else 0
        if compute or output:
            out[dev] = DeviceBuffers(dev, output, compute, parts)
    return out
