"""llama-quantize's type-selection facts as tables (src/llama-quant.cpp; sources and commits: rules.py): tensor
categories, never-quantized names, shape fallbacks, the per-file-type bumps, and the small index helpers."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Mapping, Sequence

from .ftypes import ggml_type
from .rulesets import FAMILY_2025, FAMILY_2026


# ---------------------------------------------------------------------------------------------------------------
# Tensor categories (tensor_get_category). Each rule set tests the names in its own order; first match wins.
# ---------------------------------------------------------------------------------------------------------------
OUTPUT, TOKEN_EMBD, QKV, KV_B, ATTN_V, ATTN_K, ATTN_Q, ATTN_OUT = (
    "output", "token_embd", "attn_qkv", "attn_kv_b", "attn_v", "attn_k", "attn_q", "attn_output")
FFN_UP, FFN_GATE, FFN_DOWN, OTHER = "ffn_up", "ffn_gate", "ffn_down", "other"

_EXACT, _SUBSTRING = "equals", "contains"
CATEGORY_RULES: Mapping[str, tuple[tuple[str, str, str], ...]] = {
    FAMILY_2026: (
        (_EXACT, "output.weight", OUTPUT),
        (_EXACT, "token_embd.weight", TOKEN_EMBD),
        (_EXACT, "per_layer_token_embd.weight", TOKEN_EMBD),
        (_SUBSTRING, "attn_qkv.weight", QKV),
        (_SUBSTRING, "attn_kv_b.weight", KV_B),
        (_SUBSTRING, "attn_v.weight", ATTN_V),
        (_SUBSTRING, "attn_k.weight", ATTN_K),
        (_SUBSTRING, "attn_q.weight", ATTN_Q),
        (_SUBSTRING, "attn_output.weight", ATTN_OUT),
        (_SUBSTRING, "ffn_up", FFN_UP),
        (_SUBSTRING, "ffn_gate", FFN_GATE),
        (_SUBSTRING, "ffn_down", FFN_DOWN),
    ),
    # Legacy had no KV_B branch (attn_kv_b got the default type) and its own attn_qkv branch.
    FAMILY_2025: (
        (_EXACT, "output.weight", OUTPUT),
        (_EXACT, "token_embd.weight", TOKEN_EMBD),
        (_EXACT, "per_layer_token_embd.weight", TOKEN_EMBD),
        (_SUBSTRING, "attn_v.weight", ATTN_V),
        (_SUBSTRING, "attn_k.weight", ATTN_K),
        (_SUBSTRING, "attn_q.weight", ATTN_Q),
        (_SUBSTRING, "ffn_down", FFN_DOWN),
        (_SUBSTRING, "attn_output.weight", ATTN_OUT),
        (_SUBSTRING, "attn_qkv.weight", QKV),
        (_SUBSTRING, "ffn_gate", FFN_GATE),
        (_SUBSTRING, "ffn_up", FFN_UP),
    ),
}
# Names counted in n_attention_wv (both rule sets): the attn_v-like tensors.
ATTN_V_COUNTED = ("attn_v.weight", "attn_qkv.weight", "attn_kv_b.weight")
# Categories that take the attn_v branch (with the i_attention_wv counter).
ATTN_V_BRANCH: Mapping[str, frozenset[str]] = {
    FAMILY_2026: frozenset({ATTN_V, QKV, KV_B}),
    FAMILY_2025: frozenset({ATTN_V}),
}


@lru_cache(maxsize=1 << 16)  # names repeat across file types (--quant-list) and across layers' templates
def category(name: str, family: str) -> str:
    for how, text, cat in CATEGORY_RULES[family]:
        if (name == text) if how == _EXACT else (text in name):
            return cat
    return OTHER


# ---------------------------------------------------------------------------------------------------------------
# Never quantized: the tensor keeps its input type (tensor_allows_quantization / the legacy inline checks).
# Besides these lists: fewer than 2 dims (ggml_n_dims), a name not ending in "weight", and COPY.
# ---------------------------------------------------------------------------------------------------------------
_TIME_MIX = tuple(f"time_mix_{p}.weight" for p in (
    "first", "w0", "w1", "w2", "v0", "v1", "v2", "a0", "a1", "a2", "g1", "g2", "decay_w1", "decay_w2", "lerp_fused"))
NEVER_QUANTIZED: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    FAMILY_2026: {
        _SUBSTRING: (
            "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
            "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
            "indexer.q_proj.weight", *_TIME_MIX, "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.",
            "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
        ),
        # LLM_TN(arch)(POS_EMBD / TOKEN_TYPES, "weight"): only archs that have these tensors name them so.
        _EXACT: ("position_embd.weight", "token_types.weight"),
    },
    FAMILY_2025: {
        _SUBSTRING: (
            "_norm.weight", "ffn_gate_inp.weight", "altup", "laurel", "per_layer_model_proj", "ssm_conv1d.weight",
            "shortconv.conv.weight", *_TIME_MIX, "conv.dw.weight", "conv.pw1.weight", "conv.pw2.weight", "conv1d",
            "conv_dw.weight", "attn_rel_b.weight", ".position_embd.",
        ),
        _EXACT: ("position_embd.weight", "token_types.weight"),
    },
}


def ggml_n_dims(ne: Sequence[int]) -> int:
    """ggml_n_dims: the number of dims once trailing 1s are dropped, at least 1."""
    n = len(ne)
    while n > 1 and ne[n - 1] == 1:
        n -= 1
    return max(n, 1)


# GLM-5-Next (llama-arch.cpp "glm5-next"), 2026-10 on: names tensor_allows_quantization keeps unquantized, and
# names llama_tensor_get_type_impl keeps at Q8_0 or above (the mixture's choice below Q8_0 becomes Q8_0; F32,
# BF16 and F16 stay) — llama.cpp 0c1e5709 src/llama-quant.cpp.
GLM5_NEXT = "glm5-next"
GLM5_NEXT_NEVER_QUANTIZED = (
    "hc_", "indexer.attn_q_b", "indexer.attn_k", "indexer.proj", "indexer_compressor_gate", "indexer_compressor_ape",
    "ssm_f_a.weight", "ssm_f_b.weight", "ssm_g_a.weight", "ssm_g_b.weight", "ssm_beta.weight",
    "attn_kv_a_mqa.weight", "attn_k_b.weight", "attn_v_b.weight",
)
GLM5_NEXT_Q8_FLOOR = ("attn_q_a", "attn_q_b", "nextn.eh_proj")
Q8_FLOOR_KEEPS = frozenset({"F32", "BF16", "F16"})


def _never_pattern(family: str) -> re.Pattern[str]:
    lists = NEVER_QUANTIZED[family]
    exact = "|".join(f"^{re.escape(s)}$" for s in lists[_EXACT])
    return re.compile(exact + "|" + "|".join(re.escape(s) for s in lists[_SUBSTRING]))


_NEVER_PATTERNS = {family: _never_pattern(family) for family in NEVER_QUANTIZED}
_GLM5_NEXT_NEVER = re.compile("|".join(re.escape(s) for s in GLM5_NEXT_NEVER_QUANTIZED))


def allows_quantization(name: str, ne: Sequence[int], family: str, *, glm5_next: bool = False,
                        leave_output: bool = False) -> bool:
    """tensor_allows_quantization: 2+ dims, a name ending in "weight", none of the never-quantized names; with
    --leave-output-tensor (quantize_output_tensor = false) not output.weight; GLM-5-Next's own list when the rule
    set has it and the model is glm5-next."""
    if ggml_n_dims(ne) < 2 or not name.endswith("weight"):
        return False
    if leave_output and name == "output.weight":
        return False
    if glm5_next and _GLM5_NEXT_NEVER.search(name):
        return False
    return _allowed_name(name, family)


@lru_cache(maxsize=1 << 16)
def _allowed_name(name: str, family: str) -> bool:
    return _NEVER_PATTERNS[family].search(name) is None


# ---------------------------------------------------------------------------------------------------------------
# Shape fallback (tensor_type_fallback): only ne0, the row length, must be a multiple of the block size.
# ---------------------------------------------------------------------------------------------------------------
_IQ_256 = ("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_XS")
FALLBACKS: Mapping[str, Mapping[str, str]] = {
    FAMILY_2026: {
        **{t: "IQ4_NL" for t in _IQ_256},
        **{t: "Q4_0" for t in ("Q2_0", "Q2_K", "Q3_K", "TQ1_0", "TQ2_0")},
        "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
    },
    FAMILY_2025: {
        **{t: "IQ4_NL" for t in (*_IQ_256, "Q2_K", "Q3_K")},
        "TQ1_0": "Q4_0", "TQ2_0": "Q4_0",
        "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
    },
}
# When even the fallback's block does not divide ne0 (ne0 % 32 != 0), llama.cpp writes F16.
LAST_RESORT = "F16"


@lru_cache(maxsize=None)
def block_size(type_name: str) -> int:
    return ggml_type(type_name).block_size


# ---------------------------------------------------------------------------------------------------------------
# The mixture tables (llama_tensor_get_type_impl); D is the file type's default ggml type.
# ---------------------------------------------------------------------------------------------------------------
IQ2_FAMILY = frozenset({"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"})
# output.weight (and a tied token_embd) when ne0 fits the default block and the arch is not Falcon.
OUTPUT_Q5_K_FTYPES = frozenset({"IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"})
# An untied token_embd.weight / per_layer_token_embd.weight.
TOKEN_EMBD_TYPES: Mapping[str, Mapping[str, str]] = {
    FAMILY_2026: {"IQ2_XXS": "Q2_K", "IQ2_XS": "Q2_K", "IQ1_S": "Q2_K", "IQ1_M": "Q2_K", "IQ2_S": "IQ3_S",
                "IQ2_M": "IQ3_S", "IQ3_XXS": "IQ3_S", "TQ1_0": "Q4_K", "TQ2_0": "Q4_K", "Q2_0": "Q4_K"},
    FAMILY_2025: {"IQ2_XXS": "Q2_K", "IQ2_XS": "Q2_K", "IQ1_S": "Q2_K", "IQ1_M": "Q2_K", "IQ2_S": "IQ3_S",
               "IQ2_M": "IQ3_S", "IQ3_XXS": "IQ3_S", "TQ1_0": "Q4_K", "TQ2_0": "Q4_K"},
}
ATTN_K_TYPES = {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}  # after the n_expert == 8 -> Q8_0 rule
ATTN_Q_TYPES = {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}
# attn_output, not Falcon: with n_expert == 8 these file types get Q5_K; otherwise the table below.
ATTN_OUT_EXPERT8_Q5_K = frozenset({"Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M",
                                   "IQ3_S", "IQ3_M", "IQ4_XS"})
ATTN_OUT_TYPES = {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K", "IQ3_M": "Q4_K"}
ATTN_OUT_FALCON_TYPES = {"Q3_K_L": "Q4_K"}
# The legacy attn_qkv branch (current code reaches it never: attn_qkv takes the attn_v branch).
LEGACY_QKV_TYPES = {"Q3_K_M": "Q4_K", "Q3_K_L": "Q4_K", "IQ3_M": "Q4_K", "Q4_K_M": "Q5_K", "Q5_K_M": "Q6_K"}

# Archs whose hparams loader sets LLM_TYPE_70B (the attn_v Q3_K/Q4_K -> Q5_K bump), from src/llama-model.cpp:
# arch -> (block count, needs n_head != n_head_kv, needs n_expert != 8). llama: 80 blocks are 65B without GQA
# and the 80-block switch sits in the non-8-expert branch; qwen2 (Qwen2/2.5-72B), deci and olmo: 80 blocks.
SEVENTY_B: Mapping[str, tuple[int, bool, bool]] = {
    "llama": (80, True, True),
    "qwen2": (80, False, False),
    "deci": (80, False, False),
    "olmo": (80, False, False),
}
FALCON = "falcon"
BAILINGMOE3 = "bailingmoe3"  # llama-arch.cpp name; gguf 0.19.0 does not know this arch yet

# Targets for which llama-quantize demands an imatrix outside token_embd/output (tensor_requires_imatrix); the
# legacy inline check lacked IQ3_XXS and exempted the embeddings only for IQ1_M (and Q2_K in Q2_K_S files).
IMATRIX_TYPES = frozenset({"IQ3_XXS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_M", "IQ1_S"})
LEGACY_IMATRIX_TYPES = frozenset({"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S"})


def use_more_bits(i: int, n: int) -> bool:
    """The layers Q4_K_M/Q5_K_M give Q6_K: the first and last eighth, and every third in between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


_BLK = re.compile(r"blk\.\s*([+-]?\d+)\.?")


@lru_cache(maxsize=1 << 16)
def block_index(name: str) -> int | None:
    """The layer as `sscanf(name, "blk.%d.")` reads it (None when the name does not start with blk.N)."""
    m = _BLK.match(name)
    return int(m.group(1)) if m else None


def loader_sort_key(name: str) -> tuple[int, bytes]:
    """llama_model_loader's weight_name_comparer: non-block tensors first, then by layer number, then by name."""
    layer = block_index(name)
    return (-1 if layer is None else layer, name.encode("utf-8"))


