"""Bytes of KTransformers' runtime formats, from shapes only.

Sources (kvcache-ai/ktransformers @ 95009ea6, archive/ktransformers/...):
- Marlin (operators/linear.py KLinearMarlin.__init__/load, ktransformers_ext/.../marlin_utils.py marlin_quantize,
  quant_utils.py quantize_weights): if in_features % 128 or out_features % 128 (GPTQ_MARLIN_MIN_THREAD_K = 128,
  the same constant is tested for both), in_features is padded up to a multiple of 128 and out_features to a
  multiple of 64 (GPTQ_MARLIN_MIN_THREAD_N). The padded K x N weight is quantized symmetrically per group of
  `group_size` rows (-1: one group) to `num_bits`; q_w is packed 32 // num_bits values per int32
  (K*N*num_bits/8 bytes) and one scale per group and column is kept in the weight's float dtype (2 bytes: the
  model's bf16/fp16). act_order=False (the default) keeps g_idx and sort_indices empty. Each Marlin linear
  also allocates a workspace of (N/64)*16 int32 (MarlinWorkspace) = N bytes; that is a buffer, not a weight,
  and is reported apart.
- Dequantized weights ("default" modules, KLinearTorch, KMoEGate, KExpertsTorch): torch.get_default_dtype(),
  set from config.torch_dtype (bf16 for the models the shipped rules target) -> 2 bytes per element.
- KExpertsCPU, backend "llamafile": the GGUF blocks, memory-mapped (get_mmap_tensor): the stored bytes.
- KExpertsCPU, backends "AMXInt8"/"AMXBF16" (csrc/ktransformers_ext/operators/amx/la/amx.hpp BufferB,
  moe.hpp): per expert and projection an n x k buffer: int8 n*k + n float scales, or bf16 2*n*k.
- KLinearQ8 (operators/linear.py _quantize_weight): int8 weight plus one float32 scale per input column.
"""
from __future__ import annotations

MARLIN_MIN_THREAD_K = 128
MARLIN_MIN_THREAD_N = 64
SCALE_BYTES = 2  # scales keep the dequantized weight's dtype: the model's 16-bit default dtype

DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4}
TORCH_DTYPES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}


def _round_up(x: int, multiple: int) -> int:
    return (x + multiple - 1) // multiple * multiple


def marlin_dims(in_features: int, out_features: int) -> tuple[int, int]:
    """(K, N) after KLinearMarlin's padding rule."""
    if in_features % MARLIN_MIN_THREAD_K or out_features % MARLIN_MIN_THREAD_K:
        return _round_up(in_features, MARLIN_MIN_THREAD_K), _round_up(out_features, MARLIN_MIN_THREAD_N)
    return in_features, out_features


def marlin_nbytes(in_features: int, out_features: int, *, num_bits: int = 4, group_size: int = 64,
                  act_order: bool = False) -> int:
    """Resident bytes of one Marlin linear (packed weight + scales; + g_idx/sort_indices with act_order)."""
    k, n = marlin_dims(in_features, out_features)
    group = k if group_size == -1 else group_size
    packed = k * n * num_bits // 8
    scales = (k // group) * n * SCALE_BYTES
    order = 2 * 4 * k if act_order else 0
    return packed + scales + order


def marlin_workspace_nbytes(in_features: int, out_features: int) -> int:
    """MarlinWorkspace(out_features, 64, 16): (N // 64) * 16 int32."""
    _, n = marlin_dims(in_features, out_features)
    return n // MARLIN_MIN_THREAD_N * 16 * 4


def marlin_dtype(num_bits: int = 4, group_size: int = 64) -> str:
    return f"MARLIN_INT{num_bits}_G{'K' if group_size == -1 else group_size}"


def amx_int8_nbytes(n: int, k: int) -> int:
    """One AMX int8 BufferB of an n x k projection: int8 values plus one float scale per row."""
    return n * k + n * 4


def q8_nbytes(in_features: int, out_features: int) -> int:
    return in_features * out_features + in_features * 4


def default_dtype(config: dict | None) -> str:
    """The dtype dequantized weights take: config.torch_dtype (local_chat.py set_default_dtype), else bf16."""
    raw = (config or {}).get("torch_dtype") or (config or {}).get("dtype")
    return TORCH_DTYPES.get(str(raw), "BF16")
