"""ik_llama.cpp's ggml tensor types that mainline ggml lacks or defines differently.

Source: github.com/ikawrakow/ik_llama.cpp at commit 8337e4cd3861406fc04e0854b1409cd1b027fbc9
(2026-08-15, "Fix Qwen35+ MTP (#2322)"). Files read (facts only, no code copied):
- ggml/include/ggml.h    `enum ggml_type` (type ids)
- ggml/src/ggml.c        `type_traits[GGML_TYPE_COUNT]` (.type_name, .blck_size, .type_size, .row_meta_size),
                         `ggml_row_size`, `ggml_nbytes`, `ggml_new_tensor_impl`, `gguf_init_from_file`,
                         `gguf_add_tensor`
- ggml/src/ggml-common.h block structs and their `static_assert(sizeof(block_...) == ...)`
  (ggml/src/iqk/ has no block-size static_asserts; every block struct is in ggml-common.h)
- gguf-py/gguf/constants.py `GGML_QUANT_SIZES` (ik's Python table; used only as a cross-check, see below)
Mainline compared against: github.com/ggml-org/ggml at d99724f2b141fed9e1a9f402213506c081433465
(include/ggml.h, src/ggml.c, src/ggml-common.h).

How ik_llama.cpp computes bytes
-------------------------------
    ggml_row_size(type, ne) = row_meta_size + type_size * ne / blck_size      (ne % blck_size must be 0)
    nb[1] = ggml_row_size(type, ne0);  nb[i] = nb[i-1] * ne[i-1]  for i >= 2
    ggml_nbytes(t) = ggml_row_size(type, ne0) + sum_{i>=1} (ne[i]-1) * nb[i]
                   = nrows * (row_meta_size + ne0 // block_size * type_size)   for a contiguous tensor
so the per-row metadata (float/f16 row scales stored in front of each row's blocks) is paid once PER ROW,
nrows = ne1 * ne2 * ne3. gguf_add_tensor stores ggml_nbytes as the tensor's size in the file, and the
loader (src/llama-model-loader.cpp) reads ggml_nbytes bytes at each tensor's offset; file offsets are
additionally padded to general.alignment (GGML_PAD), which is padding, not tensor bytes.

Caveats found while reading:
- I2_S (id 36, BitNet "i2_s"): its traits say blck_size 1 / type_size 1, but ggml_nbytes has a hack for
  it: bytes = nelements // 4 + 32 for the whole tensor (2 bits per weight + 32 trailing bytes). The
  generic formula above would overstate it 4x; size i2_s tensors with the hack.
- gguf_init_from_file sizes its data blob as sum GGML_PAD(ggml_row_size(type, ne0*ne1*ne2*ne3), align),
  i.e. row_meta_size counted once per tensor, not per row. That is only an allocation estimate inside
  ik's gguf reader; tensor sizes and offsets come from ggml_nbytes / the tensor infos.
- ik's own gguf-py (constants.py GGML_QUANT_SIZES, quants.quant_shape_to_byte_shape) ignores
  row_meta_size, and gives 292 bytes for q8_K / q8_K32 / q8_KR8 where ik's C code has 296. The C code
  is what writes the files; do not use ik's gguf-py table for byte counts of row-meta types.
- _r4 / _r8 / _r16 types interleave 4 / 8 / 16 rows (ne1 must be a multiple of that), but the bytes per
  row are the same as written here; the interleaving does not change tensor size.
- type_name spelling is ik's own: a few internal types keep an upper-case K (q8_K, q8_K64, q8_K16,
  q8_K32, q8_KR8, q8_K128, q8_KV, q8_KV_r8). Compare names case-insensitively.

Cross-checks (Thireus GGUF-Tool-Suite tensor maps, shape = (ne0, ne1, ne2)):
- token_embd.weight (7168, 163840) iq5_k: 163840 * (0 + 7168 // 256 * 176) = 807403520 bytes (map: 807403520)
- blk.59.ffn_down_exps.weight (1536, 4096, 128) q4_k_r4: 4096*128 * (1536 // 256 * 144) = 452984832 (map: same)
Wider check, all 1208 tensors.*.map of github.com/Thireus/GGUF-Tool-Suite at 384c1f85b77b30f2b388328af278aea0900f6ca1
(918,290 tensors with ik and mainline types; all are explained): 71,713 tensors of row-meta types match the formula
above exactly. 115,073 match the formula WITHOUT row_meta_size. Those are maps made before that repo's
gguf_info.py fix 17eebae (2026-03-29, "Fix inaccurate tensor size ... additional row scaling factor"), which
took gguf-py's n_bytes. 2,280 tiny f32 tensors show the tensor size padded to 32 bytes (the file size minus
data_offset of a single-tensor shard). So older Thireus maps under-count row-meta types by nrows * row_meta_size.
"""
from __future__ import annotations
from typing import NamedTuple

class IkType(NamedTuple):
    type_id: int
    name: str          # lower-case, as ik_llama.cpp's type_name
    block_size: int    # elements per block
    type_size: int     # bytes per block
    row_meta_size: int # extra bytes per row before the blocks (0 for most types)

# Bytes:  row_bytes    = row_meta_size + ne0 // block_size * type_size   (ne0 % block_size == 0)
#         tensor_bytes = row_bytes * ne1 * ne2 * ne3
#         (ik writes type_size * ne0 / block_size; equal whenever ne0 is a multiple of block_size)
#         Exception: i2_s (36) is nelements // 4 + 32 for the whole tensor (ggml_nbytes hack).
#
# Omitted because ik's definition is IDENTICAL to mainline ggml (same id, type_name, blck_size,
# type_size, and row_meta_size 0): 0 f32, 1 f16, 2 q4_0, 3 q4_1, 6 q5_0, 7 q5_1, 8 q8_0, 9 q8_1,
# 10 q2_K, 11 q3_K, 12 q4_K, 13 q5_K, 14 q6_K, 16 iq2_xxs, 17 iq2_xs, 18 iq3_xxs, 19 iq1_s, 20 iq4_nl,
# 21 iq3_s, 22 iq2_s, 23 iq4_xs, 24 i8, 25 i16, 26 i32, 27 i64, 28 f64, 29 iq1_m, 30 bf16, 39 mxfp4
# (4 and 5 are "DEPRECATED" placeholders in both).
# Mainline ids ik_llama.cpp does NOT define (its type_traits slot is empty, it cannot load them):
# 34 tq1_0, 35 tq2_0, 40 nvfp4, 42 q2_0.
# Shared ids included below because they differ: 15 (q8_K is 296 bytes in ik, 292 in mainline),
# 31-33 (removed in mainline, still defined in ik), 36 (ik's i2_s; mainline's removed iq4_nl_4_4),
# 41 (ik names it q1_0_g128, mainline q1_0; same 128-element / 18-byte block).
IK_LLAMA_TYPES: tuple[IkType, ...] = (
    IkType(15, "q8_K", 256, 296, 0),        # block_q8_K {float d, sum; int8 qs[256]; int16 bsums[16]}; mainline 292 (one float)
    IkType(31, "q4_0_4x4", 32, 18, 0),      # block_q4_0; mainline: removed (blck_size 0)
    IkType(32, "q4_0_4x8", 32, 18, 0),      # block_q4_0; mainline: removed
    IkType(33, "q4_0_8x8", 32, 18, 0),      # block_q4_0; mainline: removed
    IkType(36, "i2_s", 1, 1, 0),            # BitNet I2_S; ggml_nbytes: nelements // 4 + 32 per tensor (see above)
    IkType(41, "q1_0_g128", 128, 18, 0),    # block_q1_0_g128; mainline id 41 is "q1_0" with the same block
    IkType(97, "q8_0_x4", 32, 34, 0),       # block_q8_0 (internal activation type)
    IkType(98, "q8_1_x4", 32, 36, 0),       # block_q8_1 (internal)
    IkType(99, "q8_2_x4", 32, 36, 0),       # block_q8_2 (internal)
    IkType(133, "q6_0", 32, 26, 0),         # block_q6_0
    IkType(134, "iq1_bn", 64, 13, 2),       # block_iq1_bn
    IkType(135, "iq2_bn", 64, 16, 4),       # block_iq2_bn
    IkType(136, "q8_K64", 64, 68, 0),       # block_q8_K64 (internal)
    IkType(137, "iq2_k", 256, 76, 0),       # block_iq2_k
    IkType(138, "iq3_k", 256, 110, 0),      # block_iq3_k
    IkType(139, "iq4_k", 256, 144, 0),      # block_iq4_k
    IkType(140, "iq5_k", 256, 176, 0),      # block_iq5_k
    IkType(141, "iq6_k", 256, 212, 0),      # block_iq6_k
    # 142 iq2_tn and 143 iq1_tn are deprecated: commented out of ik's enum, no type_traits entry.
    IkType(144, "iq4_ks", 256, 136, 4),     # block_iq4_ks
    IkType(145, "iq2_ks", 256, 70, 2),      # block_iq2_ks
    IkType(146, "iq4_kss", 256, 128, 4),    # block_iq4_kss
    IkType(147, "q8_K16", 64, 64, 20),      # (internal) type_size literal 64
    IkType(148, "q8_K32", 256, 296, 0),     # block_q8_K (internal)
    IkType(149, "q8_KR8", 256, 296, 0),     # block_q8_K (internal)
    IkType(150, "q8_K128", 128, 140, 0),    # block_q8_K128 (internal)
    IkType(151, "q8_KV", 32, 32, 8),        # type_size literal 32
    IkType(152, "iq5_ks", 256, 168, 4),     # block_iq5_ks
    IkType(153, "iq2_kt", 256, 68, 4),      # block_iq2_kt (trellis)
    IkType(154, "iq3_kt", 256, 100, 4),     # block_iq3_kt (trellis)
    IkType(155, "iq4_kt", 256, 128, 4),     # block_iq4_kt (trellis)
    IkType(156, "iq3_ks", 256, 102, 2),     # block_iq3_ks
    IkType(157, "iq2_kl", 256, 86, 2),      # block_iq2_kl
    IkType(158, "iq1_kt", 256, 56, 4),      # block_iq1_kt (trellis)
    IkType(202, "q4_0_r8", 32, 18, 0),      # sizeof(block_iq4_nl)
    IkType(206, "q5_0_r4", 32, 22, 0),      # block_q5_0
    IkType(208, "q8_0_r8", 32, 34, 0),      # block_q8_0
    IkType(210, "q2_k_r4", 256, 84, 0),     # block_q2_K
    IkType(211, "q3_k_r4", 256, 110, 0),    # block_q3_K
    IkType(212, "q4_k_r4", 256, 144, 0),    # block_q4_K
    IkType(213, "q5_k_r4", 256, 176, 0),    # block_q5_K
    IkType(214, "q6_k_r4", 256, 210, 0),    # block_q6_K
    IkType(216, "iq2_xxs_r4", 256, 66, 0),  # block_iq2_xxs
    IkType(217, "iq2_xs_r4", 256, 74, 0),   # block_iq2_xs
    IkType(218, "iq3_xxs_r4", 256, 98, 0),  # block_iq3_xxs
    IkType(219, "iq1_s_r4", 32, 6, 2),      # sizeof(block_iq1_s_r4)/4 = 24/4
    IkType(220, "iq4_nl_r4", 32, 18, 0),    # block_iq4_nl
    IkType(221, "iq3_s_r4", 256, 110, 0),   # block_iq3_s
    IkType(222, "iq2_s_r4", 256, 82, 0),    # block_iq2_s
    IkType(223, "iq4_xs_r8", 256, 136, 0),  # block_iq4_xs
    IkType(229, "iq1_m_r4", 32, 7, 2),      # sizeof(block_iq1_m_r4)/4 = 28/4
    IkType(230, "bf16_r16", 1, 2, 0),       # ggml_bf16_t
    IkType(233, "q6_0_r4", 32, 26, 0),      # block_q6_0
    IkType(335, "iq2_bn_r4", 64, 16, 4),    # block_iq2_bn
    IkType(337, "iq2_k_r4", 256, 76, 0),    # block_iq2_k
    IkType(338, "iq3_k_r4", 256, 110, 0),   # block_iq3_k
    IkType(339, "iq4_k_r4", 256, 144, 0),   # block_iq4_k
    IkType(340, "iq5_k_r4", 256, 176, 0),   # block_iq5_k
    IkType(344, "iq4_ks_r4", 256, 136, 4),  # block_iq4_ks
    IkType(352, "iq5_ks_r4", 256, 168, 4),  # block_iq5_ks
    IkType(353, "mxfp4_r8", 32, 17, 0),     # block_mxfp4
    IkType(397, "q8_k_r16", 256, 258, 0),   # sizeof(block_q8_k_r16)/16 = 4128/16
    IkType(398, "q8_KV_r8", 32, 32, 4),     # type_size literal 32
    IkType(399, "q8_k_r8", 256, 258, 0),    # sizeof(block_q8_k_r8)/8 = 2064/8
)
