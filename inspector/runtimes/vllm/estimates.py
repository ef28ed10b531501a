"""What vLLM measures by running the model and ckpt-size can only estimate (docs/vllm.md, "Estimates"):

- activation peak: `Worker.determine_available_memory` runs `profile_run`, a forward pass of
  max_num_batched_tokens tokens (and the sampler on max_num_seqs requests), and subtracts the torch peak it saw.
  Estimated as the widest moment of one layer: 4 x T x hidden (input, residual, normed, output) plus the larger of
  attention (T x (q + 2 kv + q) heads per rank x head width), the dense MLP (T x 3 x intermediate / tp) and the
  fused MoE workspaces (T x top_k x (3 x moe_intermediate / moe_tp + hidden)), all in the model dtype; the last
  stage adds the sampler's float32 logits and probabilities, 2 x min(max_num_seqs, T) x padded vocab x 4.
- non-torch memory: what `memory_profiling` counts outside torch's allocator during profiling (cuBLAS and
  attention workspaces, NCCL and custom all-reduce buffers): 256 MiB, plus 512 MiB when the engine has more than
  one rank.
- CUDA graphs: captured after the KV cache is allocated, outside --gpu-memory-utilization (so they live in the
  headroom): vLLM's capture sizes [1, 2, 4] + 8..248 step 8 + 256..max step 16 with max = min(2 x max_num_seqs,
  512), each graph about 64 KiB per decoder layer of the rank, plus the static input/output buffers of the largest
  size (4 x max x hidden in the model dtype). None with --enforce-eager.
"""
from __future__ import annotations

from ...memory.serving import DTYPE_BYTES
from ...memory.sharding import VOCAB_PADDING, cdiv
from .layout import Settings, vllm_pp_layers

MIB = 1 << 20
NON_TORCH_BASE = 256 * MIB
NON_TORCH_MULTI_RANK = 512 * MIB
GRAPH_BYTES_PER_LAYER = 64 << 10


def activation_peak(s: Settings, stage: int) -> int:
    m, b = s.model, DTYPE_BYTES[s.dtype]
    t = s.max_num_batched_tokens
    q = m.n_heads // s.tp
    kv = 1 if m.is_mla else max(1, m.n_kv_heads // s.tp)
    width = (m.head_dim_v + m.qk_rope_head_dim) if m.is_mla else m.head_dim
    attention = t * (2 * q + 2 * kv) * width * b
    mlp = t * 3 * cdiv(m.intermediate, s.tp) * b
    moe = t * m.top_k * (3 * cdiv(m.moe_intermediate, s.moe_tp) + m.hidden) * b if m.is_moe else 0
    peak = 4 * t * m.hidden * b + max(attention, mlp, moe)
    if stage == s.pp - 1:
        vocab = cdiv(m.vocab, VOCAB_PADDING) * VOCAB_PADDING
        peak += 2 * min(s.max_num_seqs, t) * vocab * 4
    return peak


def non_torch(s: Settings) -> int:
    return NON_TORCH_BASE + (NON_TORCH_MULTI_RANK if s.tp * s.pp > 1 else 0)


def capture_sizes(s: Settings) -> list[int]:
    top = min(2 * s.max_num_seqs, 512)
    sizes = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, top + 1, 16))
    return [x for x in sizes if x <= top]


def cuda_graphs(s: Settings, stage: int) -> int:
    if s.enforce_eager:
        return 0
    start, end = vllm_pp_layers(s.model.n_layers, stage, s.pp)
    sizes = capture_sizes(s)
    return len(sizes) * (end - start) * GRAPH_BYTES_PER_LAYER + 4 * max(sizes) * s.model.hidden * DTYPE_BYTES[s.dtype]
