"""Hand-derived cases, one per rule of llama-quantize's type choice (numbers worked out in each test's comment).

Rules: ../shared/reference/quant-spec.md §2.3, §3 (from llama.cpp src/llama-quant.cpp, current 007dbbf3 and
legacy 8784689f). Block sizes (ggml-common.h): Q4_0/Q5_0/Q5_1/Q8_0/IQ4_NL/MXFP4 32, K- and IQ-quants 256.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import gguf
import pytest

from fixtures.generate import _write_gguf_file
from inspector.errors import UsageError
from inspector.formats import read_checkpoint
from inspector.quant import (
    COMMON_FTYPES,
    FTYPES,
    QuantizeError,
    QuantOptions,
    parse_tensor_type,
    parse_tensor_type_file,
    predict,
    predict_many,
    resolve_ftype,
)
from inspector.quant.tables import use_more_bits
from inspector.sources import resolve_local

from ._quant_models import make_checkpoint


def dense(blocks: int = 8, *, n_embd: int = 256, n_ff: int = 512, heads: int = 8, kv_heads: int = 2,
          head_dim: int = 32, vocab: int = 512, tied: bool = False, arch: str = "llama", experts: int = 0,
          extra: tuple = (), dtype: str = "F16", **kvs):
    """A llama-style model (attn q/k/v/output, gated FFN or MoE FFN when experts > 0), shapes as GGUF ne."""
    t = [("token_embd.weight", (n_embd, vocab)), ("output_norm.weight", (n_embd,))]
    if not tied:
        t.append(("output.weight", (n_embd, vocab)))
    for i in range(blocks):
        p = f"blk.{i}."
        t += [(p + "attn_norm.weight", (n_embd,)), (p + "attn_q.weight", (n_embd, heads * head_dim)),
              (p + "attn_k.weight", (n_embd, kv_heads * head_dim)),
              (p + "attn_v.weight", (n_embd, kv_heads * head_dim)),
              (p + "attn_output.weight", (heads * head_dim, n_embd)), (p + "ffn_norm.weight", (n_embd,))]
        if experts:
            t += [(p + "ffn_gate_inp.weight", (n_embd, experts)),
                  (p + "ffn_gate_exps.weight", (n_embd, n_ff, experts)),
                  (p + "ffn_up_exps.weight", (n_embd, n_ff, experts)),
                  (p + "ffn_down_exps.weight", (n_ff, n_embd, experts))]
        else:
            t += [(p + "ffn_gate.weight", (n_embd, n_ff)), (p + "ffn_up.weight", (n_embd, n_ff)),
                  (p + "ffn_down.weight", (n_ff, n_embd))]
    t += list(extra)
    meta = {f"{arch}.block_count": blocks, f"{arch}.attention.head_count": heads,
            f"{arch}.attention.head_count_kv": kv_heads, **kvs}
    if experts:
        meta[f"{arch}.expert_count"] = experts
    return make_checkpoint(arch, t, meta, dtype=dtype)


def types(checkpoint, ftype: str, **options) -> dict[str, str]:
    return {t.name: t.dtype for t in predict(checkpoint, QuantOptions(ftype, **options)).checkpoint.tensors}


def layers_with(result: dict[str, str], suffix: str, qtype: str) -> list[int]:
    return sorted(int(n.split(".")[1]) for n, t in result.items() if n.endswith(suffix) and t == qtype)


# --- file types, names, aliases -------------------------------------------------------------------------------------

def test_aliases_numbers_and_unknown_names() -> None:
    assert resolve_ftype("Q4_K").name == "Q4_K_M" and resolve_ftype("q5_k").name == "Q5_K_M"
    assert resolve_ftype("Q3_K").name == "Q3_K_M"
    assert resolve_ftype("15").name == "Q4_K_M"  # llama-quantize also takes the llama_ftype id
    assert FTYPES["IQ2_M"].default_type == "IQ2_S" and FTYPES["IQ3_XS"].default_type == "IQ3_S"
    assert FTYPES["Q2_0"].ftype == 41 and FTYPES["COPY"].ftype is None
    with pytest.raises(UsageError, match="Q4_K_M.*IQ4_XS|IQ4_XS.*Q4_K_M") as e:
        resolve_ftype("Q4_K_X")
    assert e.value.exit_code == 2
    with pytest.raises(UsageError, match="legacy"):
        resolve_ftype("Q2_0", "legacy")  # Q1_0/Q2_0/NVFP4 came after the Aug 2025 rules
    assert set(COMMON_FTYPES) <= set(FTYPES)


def test_use_more_bits_examples_from_the_spec() -> None:
    # n=18: n/8 = 2, 7n/8 = 15 -> 0, 1, 15, 16, 17 and (i-2) % 3 == 2 -> 4, 7, 10, 13
    assert [i for i in range(18) if use_more_bits(i, 18)] == [0, 1, 4, 7, 10, 13, 15, 16, 17]
    # n=61: n/8 = 7, 7n/8 = 53 -> 0..6, 53..60 and 9, 12, ..., 51
    assert [i for i in range(61) if use_more_bits(i, 61)] == [*range(7), *range(9, 52, 3), *range(53, 61)]


# --- order ----------------------------------------------------------------------------------------------------------

def test_loader_order_non_block_first_then_numeric_layers_then_names() -> None:
    # weight_name_comparer: (layer or -1, name). blk.10 comes after blk.2 (numbers, not text), and inside a
    # block names sort bytewise: attn_k < attn_norm < attn_output < attn_q < attn_v < ffn_down < ffn_gate < ...
    names = [t.name for t in predict(dense(11), QuantOptions("Q8_0")).checkpoint.tensors]
    assert names[:3] == ["output.weight", "output_norm.weight", "token_embd.weight"]
    assert names[3:13] == [f"blk.0.{n}.weight" for n in (
        "attn_k", "attn_norm", "attn_output", "attn_q", "attn_v", "ffn_down", "ffn_gate", "ffn_norm", "ffn_up")] + [
        "blk.1.attn_k.weight"]
    blocks = [int(n.split(".")[1]) for n in names if n.startswith("blk.")]
    assert blocks == sorted(blocks) and blocks[-1] == 10


# --- counters -------------------------------------------------------------------------------------------------------

def test_attn_v_counts_attn_v_tensors_not_blocks() -> None:
    # 16 blocks, attn_v only in blocks 8..15 (8 tensors, as in a hybrid model): n_attention_wv = 8 and the index
    # is the position among attn_v tensors: use_more_bits(i, 8) picks i = 0 (i < 1), 3, 6 ((i-1) % 3 == 2) and
    # 7 (i >= 7) -> blocks 8, 11, 14, 15. (By block number, use_more_bits(b, 16) would pick 10, 13, 14, 15.)
    checkpoint = dense(16)
    keep = [t for t in checkpoint.tensors
            if not (t.name.endswith("attn_v.weight") and int(t.name.split(".")[1]) < 8)]
    result = types(checkpoint.with_(tensors=tuple(keep)), "Q4_K_M")
    assert layers_with(result, "attn_v.weight", "Q6_K") == [8, 11, 14, 15]
    assert layers_with(result, "attn_v.weight", "Q4_K") == [9, 10, 12, 13]


def test_dense_ffn_down_uses_a_running_counter_over_block_count() -> None:
    # 16 dense blocks: use_more_bits(i, 16) = 0, 1, 4, 7, 10, 13, 14, 15 get Q6_K in Q4_K_M, the rest Q4_K.
    result = types(dense(16), "Q4_K_M")
    assert layers_with(result, "ffn_down.weight", "Q6_K") == [0, 1, 4, 7, 10, 13, 14, 15]
    # Q4_K_S: i < 16/8 = 2 -> Q5_K; Q3_K_M: i < 16/16 = 1 -> Q5_K, others Q4_K (not Falcon)
    assert layers_with(types(dense(16), "Q4_K_S"), "ffn_down.weight", "Q5_K") == [0, 1]
    q3 = types(dense(16), "Q3_K_M")
    assert layers_with(q3, "ffn_down.weight", "Q5_K") == [0] and len(layers_with(q3, "ffn_down.weight", "Q4_K")) == 15


def test_dense_ffn_down_counter_is_not_the_block_number() -> None:
    # 16 dense blocks, ffn_down only in blocks 4..15 (12 tensors): the counter runs 0..11 against n = 16 (the
    # block count), so use_more_bits(i, 16) = 0, 1, 4, 7, 10 -> blocks 4, 5, 8, 11, 14. (By block number it
    # would be 4, 7, 10, 13, 14, 15.)
    checkpoint = dense(16)
    keep = [t for t in checkpoint.tensors
            if not (t.name.endswith("ffn_down.weight") and int(t.name.split(".")[1]) < 4)]
    result = types(checkpoint.with_(tensors=tuple(keep)), "Q4_K_M")
    assert layers_with(result, "ffn_down.weight", "Q6_K") == [4, 5, 8, 11, 14]


def test_moe_ffn_down_parses_the_layer_so_exps_and_shexp_both_bump() -> None:
    # 16 MoE blocks (4 experts) with shared experts: the layer comes from "blk.N." (a counter would have run
    # twice as fast). use_more_bits(i, 16) layers -> ffn_down_exps AND ffn_down_shexp Q6_K in Q4_K_M.
    shexp = [(f"blk.{i}.ffn_down_shexp.weight", (512, 256)) for i in range(16)]
    result = types(dense(16, experts=4, extra=tuple(shexp)), "Q4_K_M")
    bumped = [0, 1, 4, 7, 10, 13, 14, 15]
    assert layers_with(result, "ffn_down_exps.weight", "Q6_K") == bumped
    assert layers_with(result, "ffn_down_shexp.weight", "Q6_K") == bumped


def test_iq2_family_ffn_down_is_a_plain_counter_over_every_ffn_down_tensor() -> None:
    # IQ2_XS, 16 MoE blocks with exps + shexp: the first n/8 = 2 ffn_down* tensors *visited* get Q2_K:
    # blk.0.ffn_down_exps and blk.0.ffn_down_shexp (both in block 0), none in block 1.
    shexp = [(f"blk.{i}.ffn_down_shexp.weight", (512, 256)) for i in range(16)]
    result = types(dense(16, experts=4, extra=tuple(shexp)), "IQ2_XS", imatrix=True)
    assert sorted(n for n, t in result.items() if "ffn_down" in n and t == "Q2_K") == [
        "blk.0.ffn_down_exps.weight", "blk.0.ffn_down_shexp.weight"]
    # attn_v: n_expert >= 4 -> Q4_K whatever the GQA; attn_output keeps IQ2_XS
    assert {result[f"blk.{i}.attn_v.weight"] for i in range(16)} == {"Q4_K"}
    assert result["blk.3.attn_output.weight"] == "IQ2_XS"


def test_q3_k_m_attn_v_first_two_get_q5_k() -> None:
    result = types(dense(8), "Q3_K_M")
    assert layers_with(result, "attn_v.weight", "Q5_K") == [0, 1]
    assert layers_with(result, "attn_v.weight", "Q4_K") == [2, 3, 4, 5, 6, 7]


# --- embeddings and output ------------------------------------------------------------------------------------------

def test_tied_embeddings_take_the_output_rule() -> None:
    # no output.weight -> token_embd gets the OUTPUT branch: ne0 256 % 256 == 0 -> Q6_K (Q4_K_M)
    assert types(dense(4, tied=True), "Q4_K_M")["token_embd.weight"] == "Q6_K"
    # untied: token_embd gets the default, output.weight Q6_K
    untied = types(dense(4), "Q4_K_M")
    assert (untied["token_embd.weight"], untied["output.weight"]) == ("Q4_K", "Q6_K")
    # ne0 = 640 (Gemma-3-270M): 640 % 256 != 0 -> Q8_0, not a Q5_0-style fallback
    assert types(dense(2, n_embd=640, tied=True), "Q4_K_M")["token_embd.weight"] == "Q8_0"


@pytest.mark.parametrize(("ftype", "expected"), [
    ("Q4_K_M", "Q6_K"), ("Q4_0", "Q6_K"), ("IQ4_XS", "Q6_K"), ("Q5_1", "Q6_K"),  # any D but Q8_0 -> Q6_K
    ("Q8_0", "Q8_0"), ("MXFP4_MOE", "Q8_0"),
    ("IQ2_XXS", "Q5_K"), ("IQ3_XXS", "Q5_K"), ("IQ1_M", "Q5_K"), ("IQ2_M", "Q5_K"),
    ("F16", "F16"), ("BF16", "BF16"),  # unquantized file types: no mixture at all
])
def test_output_weight_per_file_type(ftype: str, expected: str) -> None:
    assert types(dense(2), ftype, imatrix=True)["output.weight"] == expected


def test_output_rule_then_fallback_and_untied_embedding_table() -> None:
    # Q4_0 with ne0 640: 640 % 32 == 0 so the OUTPUT branch says Q6_K, and the shape fallback then makes it Q8_0
    assert types(dense(2, n_embd=640), "Q4_0")["output.weight"] == "Q8_0"
    # untied token_embd: IQ2_XXS/IQ2_XS/IQ1_S/IQ1_M -> Q2_K; IQ2_S/IQ2_M/IQ3_XXS -> IQ3_S; TQ1_0/TQ2_0 -> Q4_K
    for ftype, expected in (("IQ1_S", "Q2_K"), ("IQ2_M", "IQ3_S"), ("IQ3_XXS", "IQ3_S"), ("TQ2_0", "Q4_K"),
                            ("Q4_0", "Q4_0")):
        assert types(dense(2), ftype, imatrix=True)["token_embd.weight"] == expected, ftype


def test_falcon_output_and_attn_output() -> None:
    # Falcon: output -> Q8_0 always; attn_output Q3_K_L -> Q4_K (not Q5_K); ffn_down Q3_K_L -> Q4_K
    result = types(dense(4, arch="falcon"), "Q3_K_L")
    assert result["output.weight"] == "Q8_0"
    assert result["blk.0.attn_output.weight"] == "Q4_K" and result["blk.0.ffn_down.weight"] == "Q4_K"
    assert types(dense(4), "Q3_K_L")["blk.0.attn_output.weight"] == "Q5_K"


# --- shape fallbacks ------------------------------------------------------------------------------------------------

def test_row_length_fallbacks_current_and_legacy() -> None:
    # attn_q/k/v, ffn_gate/up have ne0 = n_embd = 640 (not a multiple of 256, a multiple of 32);
    # ffn_down has ne0 = n_ff = 1024.
    m = dense(2, n_embd=640, n_ff=1024, heads=4, kv_heads=1, head_dim=256)
    assert types(m, "Q4_K_M")["blk.0.attn_q.weight"] == "Q5_0"  # Q4_K -> Q5_0
    assert types(m, "Q5_K_S")["blk.0.attn_q.weight"] == "Q5_1"  # Q5_K -> Q5_1
    assert types(m, "Q6_K")["blk.0.attn_q.weight"] == "Q8_0"  # Q6_K -> Q8_0
    # attn_v: n = 2 tensors, use_more_bits(1, 2) (i >= 7*2/8 = 1) -> Q6_K -> Q8_0; blk.0 Q4_K -> Q5_0
    assert types(m, "Q4_K_M")["blk.1.attn_v.weight"] == "Q8_0"
    assert types(m, "Q4_K_M")["blk.0.attn_v.weight"] == "Q5_0"
    assert types(m, "Q3_K_S")["blk.0.attn_q.weight"] == "Q4_0"  # Q3_K -> Q4_0 (current)
    assert types(m, "Q3_K_S", rules="legacy")["blk.0.attn_q.weight"] == "IQ4_NL"  # legacy: Q3_K -> IQ4_NL
    assert types(m, "IQ4_XS")["blk.0.attn_q.weight"] == "IQ4_NL"
    assert types(m, "TQ1_0")["blk.0.attn_q.weight"] == "Q4_0"
    assert types(m, "Q4_K_M")["blk.1.ffn_down.weight"] == "Q6_K"  # ne0 1024 fits: no fallback


def test_fallback_to_f16_and_no_fallback_errors() -> None:
    # ffn_down ne0 = n_ff = 48: not a multiple of 256 (Q4_K) nor of 32 (Q5_0, its fallback) -> F16
    m = dense(2, n_ff=48)
    assert types(m, "Q4_K_M")["blk.0.ffn_down.weight"] == "F16"
    # Q4_0 has no fallback: llama-quantize 007dbbf3 stops at the first such tensor (2026-10 writes F16 instead:
    # tests/test_quant_rulesets.py)
    with pytest.raises(QuantizeError, match="no fallback for Q4_0"):
        predict(m, QuantOptions("Q4_0", rules="2026-07"))


# --- never quantized ------------------------------------------------------------------------------------------------

def test_never_quantized_tensors_keep_their_input_type() -> None:
    extra = (
        ("blk.0.ffn_gate_inp.weight", (256, 8)),  # MoE router
        ("blk.0.attn_q.bias", (256,)),  # bias: not "...weight"
        ("blk.0.ssm_conv1d.weight", (4, 512)),
        ("blk.0.ssm_a", (1, 16)),  # no .weight
        ("blk.0.altup_proj.weight", (256, 256)),  # Gemma-3n
        ("blk.0.per_layer_model_proj.weight", (256, 256)),
        ("position_embd.weight", (256, 1024)),
        ("blk.0.scale_col.weight", (256, 1)),  # [N, 1] counts as 1-D (ggml_n_dims)
        ("blk.0.indexer.k_proj.weight", (256, 128)),
    )
    checkpoint = dense(2, extra=extra)
    prediction = predict(checkpoint, QuantOptions("Q4_K_M"))
    result = {t.name: t.dtype for t in prediction.checkpoint.tensors}
    source = prediction.source_types
    for name, _ in extra:
        assert result[name] == source[name], name
        assert not prediction.choices[name].quantizable
    assert result["blk.0.attn_norm.weight"] == "F32"
    # legacy (Aug 2025) still quantized the MiniMax indexer projections
    assert types(checkpoint, "Q4_K_M", rules="legacy")["blk.0.indexer.k_proj.weight"] == "Q4_K"


# --- model switches -------------------------------------------------------------------------------------------------

def test_eight_experts_mixtral_switches() -> None:
    # n_expert == 8: attn_v and attn_k -> Q8_0, attn_output -> Q5_K (Q4_K_M)
    result = types(dense(4, experts=8), "Q4_K_M")
    assert {result[f"blk.{i}.attn_v.weight"] for i in range(4)} == {"Q8_0"}
    assert {result[f"blk.{i}.attn_k.weight"] for i in range(4)} == {"Q8_0"}
    assert {result[f"blk.{i}.attn_output.weight"] for i in range(4)} == {"Q5_K"}
    # 4 experts: none of that
    assert types(dense(4, experts=4), "Q4_K_M")["blk.2.attn_k.weight"] == "Q4_K"


def test_70b_attn_v_bump() -> None:
    # llama with 80 blocks and GQA is LLM_TYPE_70B: Q4_K_M attn_v off the use_more_bits layers Q4_K -> Q5_K.
    # use_more_bits(i, 80): 0-9, 12, 15, ..., 69, 70-79 -> 40 layers Q6_K, the other 40 Q5_K.
    small = dict(n_embd=256, n_ff=256, heads=8, head_dim=32, vocab=256)
    result = types(dense(80, kv_heads=1, **small), "Q4_K_M")
    assert len(layers_with(result, "attn_v.weight", "Q6_K")) == 40
    assert len(layers_with(result, "attn_v.weight", "Q5_K")) == 40
    # no GQA (n_head == n_head_kv): LLM_TYPE_65B, no bump
    assert len(layers_with(types(dense(80, kv_heads=8, **small), "Q4_K_M"), "attn_v.weight", "Q4_K")) == 40
    # Qwen2 with 80 blocks (Qwen2.5-72B) is 70B too
    assert len(layers_with(types(dense(80, kv_heads=1, arch="qwen2", **small), "Q4_K_M"), "attn_v.weight",
                           "Q5_K")) == 40


def test_mxfp4_moe() -> None:
    # MXFP4_MOE: any 3-D tensor -> MXFP4; other quantizable tensors (output, token_embd included) -> Q8_0
    k_b = tuple((f"blk.{i}.attn_k_b.weight", (128, 512, 8)) for i in range(2))
    result = types(dense(2, experts=4, extra=k_b), "MXFP4_MOE")
    assert result["blk.0.ffn_down_exps.weight"] == "MXFP4" and result["blk.1.attn_k_b.weight"] == "MXFP4"
    assert result["blk.0.attn_q.weight"] == "Q8_0" and result["output.weight"] == "Q8_0"
    assert result["token_embd.weight"] == "Q8_0"
    # BailingMoE3 keeps non-expert 3-D tensors at Q8_0
    assert types(dense(2, experts=4, extra=k_b, arch="bailingmoe3"), "MXFP4_MOE")["blk.1.attn_k_b.weight"] == "Q8_0"


def test_qkv_current_versus_legacy() -> None:
    # Fused attn_qkv (Phi-3 style), 8 blocks, Q4_K_M. Current: attn_v branch with use_more_bits(i, 8) =
    # 0, 3, 6, 7 -> Q6_K, the rest Q4_K. Legacy: its own branch, Q5_K on every layer.
    qkv = tuple((f"blk.{i}.attn_qkv.weight", (256, 768)) for i in range(8))
    checkpoint = dense(8, extra=qkv)
    checkpoint = checkpoint.with_(tensors=tuple(t for t in checkpoint.tensors if not t.name.endswith(
        ("attn_q.weight", "attn_k.weight", "attn_v.weight"))))
    assert layers_with(types(checkpoint, "Q4_K_M"), "attn_qkv.weight", "Q6_K") == [0, 3, 6, 7]
    assert layers_with(types(checkpoint, "Q4_K_M", rules="legacy"), "attn_qkv.weight", "Q5_K") == list(range(8))


# --- imatrix --------------------------------------------------------------------------------------------------------

def test_imatrix_changes_choices() -> None:
    m = dense(16)
    # IQ4_XS ffn_down in the first 16/8 = 2 layers: Q5_K without an imatrix, IQ4_XS with one
    assert layers_with(types(m, "IQ4_XS"), "ffn_down.weight", "Q5_K") == [0, 1]
    assert layers_with(types(m, "IQ4_XS", imatrix=True), "ffn_down.weight", "Q5_K") == []
    # Q4_0 with an imatrix guards the first 2 ffn_down layers with Q4_1
    assert layers_with(types(m, "Q4_0", imatrix=True), "ffn_down.weight", "Q4_1") == [0, 1]
    assert layers_with(types(m, "Q4_0"), "ffn_down.weight", "Q4_1") == []
    # IQ3_XXS attn_v with gqa = 8/8 = 1 < 4: IQ3_S without an imatrix, IQ3_XXS with one
    no_gqa = dense(4, kv_heads=8)
    assert types(no_gqa, "IQ3_XXS")["blk.0.attn_v.weight"] == "IQ3_S"
    assert types(no_gqa, "IQ3_XXS", imatrix=True)["blk.0.attn_v.weight"] == "IQ3_XXS"


def test_missing_imatrix_is_a_note_not_an_error() -> None:
    notes = predict(dense(4), QuantOptions("IQ2_XXS")).notes
    assert any("only with an imatrix" in n for n in notes)
    assert not any("only with an imatrix" in n for n in predict(dense(4), QuantOptions("IQ2_XXS", imatrix=True)).notes)


# --- overrides ------------------------------------------------------------------------------------------------------

def test_tensor_type_first_match_wins_now_last_match_wins_in_legacy() -> None:
    overrides = (("ffn_down", "q8_0"), ("blk\\.1\\.ffn_down", "q5_0"))
    assert types(dense(4), "Q4_K_M", tensor_types=overrides)["blk.1.ffn_down.weight"] == "Q8_0"
    assert types(dense(4), "Q4_K_M", tensor_types=overrides, rules="legacy")["blk.1.ffn_down.weight"] == "Q5_0"


def test_tensor_type_gets_the_fallback_now_but_not_in_legacy() -> None:
    # ne0 640, Q8_0 file, --tensor-type attn_q=q4_K. Current: the manual Q4_K goes through the shape fallback
    # -> Q5_0. Legacy: the heuristic (Q8_0) needed no fallback, so the override applies as given, unchecked,
    # and Q4_K cannot hold rows of 640: llama-quantize stops.
    m = dense(2, n_embd=640, heads=4, kv_heads=1, head_dim=256)
    assert types(m, "Q8_0", tensor_types=(("attn_q", "q4_K"),))["blk.0.attn_q.weight"] == "Q5_0"
    with pytest.raises(QuantizeError, match="block size 256"):
        predict(m, QuantOptions("Q8_0", tensor_types=(("attn_q", "q4_K"),), rules="legacy"))


def test_manual_tensors_do_not_advance_counters() -> None:
    # 8 blocks, Q4_K_M, --tensor-type blk\.0\.attn_v=q8_0: blk.0 takes Q8_0 without running the heuristic, so
    # blk.1 is counted as i = 0: use_more_bits(i, 8) for i = 0..6 -> 0, 3, 6 -> blocks 1, 4, 7.
    result = types(dense(8), "Q4_K_M", tensor_types=(("blk\\.0\\.attn_v", "q8_0"),))
    assert result["blk.0.attn_v.weight"] == "Q8_0"
    assert layers_with(result, "attn_v.weight", "Q6_K") == [1, 4, 7]


def test_output_and_token_embedding_types() -> None:
    result = types(dense(2), "Q4_K_M", output_tensor_type="q8_0", token_embedding_type="Q5_K")
    assert (result["output.weight"], result["token_embd.weight"]) == ("Q8_0", "Q5_K")
    # tied model: a bare --output-tensor-type also sets token_embd (it takes the OUTPUT branch)
    assert types(dense(2, tied=True), "Q4_K_M", output_tensor_type="q8_0")["token_embd.weight"] == "Q8_0"
    # unquantized file types still honour them
    assert types(dense(2), "BF16", output_tensor_type="q8_0")["output.weight"] == "Q8_0"


def test_pure() -> None:
    # --pure: every quantizable tensor the default type (fallbacks still apply in current rules)
    result = types(dense(4), "Q4_K_M", pure=True)
    quantizable = [n for n in result if not n.endswith("_norm.weight")]
    assert {result[n] for n in quantizable} == {"Q4_K"}
    # current: --tensor-type still applies with --pure; legacy ignored it
    assert types(dense(4), "Q4_K_M", pure=True, tensor_types=(("output", "q8_0"),))["output.weight"] == "Q8_0"
    assert types(dense(4), "Q4_K_M", pure=True, rules="legacy",
                 tensor_types=(("output", "q8_0"),))["output.weight"] == "Q4_K"


@pytest.fixture()
def tmp_dir():
    # our own temporary directory: pytest's shared basetemp is pruned by concurrent sessions
    with tempfile.TemporaryDirectory(prefix="ckpt-size-quant-") as tmp:
        yield Path(tmp)


def test_bad_override_values_are_usage_errors(tmp_dir) -> None:
    with pytest.raises(UsageError, match="q9_9"):
        predict(dense(2), QuantOptions("Q4_K_M", tensor_types=(("attn", "q9_9"),)))
    with pytest.raises(UsageError, match=r"invalid regex '\(attn'"):
        predict(dense(2), QuantOptions("Q4_K_M", tensor_types=(("(attn", "q8_0"),)))
    with pytest.raises(UsageError, match="--output-tensor-type"):
        predict(dense(2), QuantOptions("Q4_K_M", output_tensor_type="q3"))
    assert parse_tensor_type("Blk\\.0\\.ATTN_V=Q8_0") == ("blk\\.0\\.attn_v", "Q8_0")  # the CLI lower-cases
    with pytest.raises(UsageError, match="malformed"):
        parse_tensor_type("attn_v")
    f = tmp_dir / "types.txt"
    f.write_text("attn_v=q8_0 ffn_down=q6_k\n\nblk\\.0\\..*=f16\nbroken\n")
    with pytest.raises(UsageError, match=r"types.txt:4"):
        parse_tensor_type_file(f)
    f.write_text("attn_v=q8_0 ffn_down=q6_k\n\nblk\\.0\\..*=f16\n")
    assert parse_tensor_type_file(f) == (("attn_v", "Q8_0"), ("ffn_down", "Q6_K"), ("blk\\.0\\..*", "F16"))


# --- inputs ---------------------------------------------------------------------------------------------------------

def test_requantize_and_copy() -> None:
    q8 = dense(4, dtype="Q8_0")
    prediction = predict(q8, QuantOptions("Q4_K_M"))
    assert prediction.checkpoint.tensors[0].dtype == "Q6_K"  # output.weight
    assert any("requantized" in n for n in prediction.notes)
    with pytest.raises(QuantizeError, match="allow-requantize"):
        predict(q8, QuantOptions("Q4_K_M", allow_requantize=False))
    # a target equal to the input type is no requantization: Q8_0 -> Q8_0 passes without the flag
    same = predict(q8, QuantOptions("Q8_0", allow_requantize=False))
    assert same.data_bytes == sum(-(-t.nbytes // 32) * 32 for t in q8.tensors)
    # COPY keeps every type and the input's general.file_type
    copied = predict(q8.with_(metadata={**q8.metadata, "general.file_type": 7}), QuantOptions("COPY"))
    assert [t.dtype for t in copied.checkpoint.tensors] == [t.dtype for t in sorted(q8.tensors, key=lambda t: (
        -1 if not t.name.startswith("blk.") else int(t.name.split(".")[1]), t.name))]
    assert copied.checkpoint.metadata["general.file_type"] == 7


def test_moe_layer_outside_block_count_stops() -> None:
    m = dense(2, experts=4, extra=(("blk.5.ffn_up_exps.weight", (256, 512, 4)),))
    with pytest.raises(QuantizeError, match="outside"):
        predict(m, QuantOptions("Q4_K_M"))


def test_raw_safetensors_is_refused() -> None:
    checkpoint = dense(2).with_(format="safetensors")
    with pytest.raises(UsageError, match="GGUF tensor names"):
        predict(checkpoint, QuantOptions("Q4_K_M"))


# --- sizes and header -----------------------------------------------------------------------------------------------

def test_data_bytes_by_hand() -> None:
    # 1 block, n_embd 256, n_ff 512, 8 heads x 32, 2 kv heads, vocab 512, Q8_0 (34 bytes per 32):
    #   token_embd, output: 256x512 -> 8 blocks/row * 34 * 512 rows = 139,264 each
    #   attn_q 256x256: 8*34*256 = 69,632; attn_k, attn_v 256x64: 8*34*64 = 17,408 each;
    #   attn_output 256x256: 69,632; ffn_gate, ffn_up 256x512: 139,264 each; ffn_down 512x256: 16*34*256 = 139,264
    #   norms F32: 3 x 1,024
    # all multiples of 32 -> no padding; total 2*139,264 + 69,632*2 + 17,408*2 + 3*139,264 + 3*1,024
    expected = 2 * 139_264 + 2 * 69_632 + 2 * 17_408 + 3 * 139_264 + 3 * 1_024
    prediction = predict(dense(1), QuantOptions("Q8_0"))
    assert prediction.data_bytes == expected == 873_472
    assert prediction.file_size == prediction.header_bytes + expected


def test_header_from_a_real_gguf_by_hand(tmp_dir) -> None:
    # GGUF written by gguf-py: KVs general.architecture="llama" (8+20 key, 4 type, 8+5 value = 45),
    # llama.block_count u32 (8+17+4+4 = 33), general.file_type u32 (8+17+4+4 = 33).
    # Tensors: "blk.0.attn_q.weight" (19 chars) 2-D [256, 256]: 8+19 + 4 + 16 + 4 + 8 = 59;
    #          "blk.0.norm_x.weight" (19 chars) stored by Python with ne [256, 1], 2 dims: 59 as well;
    #          llama-quantize rewrites it with ggml_n_dims = 1 dim: 51.
    # Input meta = 24 + 45 + 33 + 33 + 59 + 59 = 253 -> data offset 256.
    # Output: + general.quantization_version u32 (8+28+4+4 = 44), file_type rewritten (same size), n_dims
    # shrink -8: 253 + 44 - 8 = 289 -> padded 320.
    kvs = {"llama.block_count": (gguf.GGUFValueType.UINT32, 1), "general.file_type": (gguf.GGUFValueType.UINT32, 1)}
    f16 = gguf.GGMLQuantizationType.F16
    tensors = [("blk.0.attn_q.weight", (256, 256), f16, 2 * 256 * 256), ("blk.0.norm_x.weight", (1, 256), f16, 2 * 256)]
    path = _write_gguf_file(tmp_dir / "m.gguf", "llama", kvs, tensors, "header")  # header-only F16, as gguf-py writes
    checkpoint = read_checkpoint(resolve_local(str(path)))
    assert checkpoint.files[0].header_bytes == 256
    prediction = predict(checkpoint, QuantOptions("Q8_0"))
    assert prediction.header_exact
    assert prediction.header_bytes == 320
    assert prediction.checkpoint.tensors[1].shape == (256,)  # written with ggml_n_dims
    assert list(prediction.checkpoint.metadata)[-2:] == ["general.quantization_version", "general.file_type"]
    # --imatrix adds quantize.imatrix.file "imatrix.gguf" (8+21+4+8+12 = 53), entries_count and chunks_count
    # (8+30+4+4 = 46 and 8+29+4+4 = 45): 289 + 144 = 433 -> 448, marked as an estimate
    with_imatrix = predict(checkpoint, QuantOptions("Q8_0", imatrix=True))
    assert (with_imatrix.header_bytes, with_imatrix.header_exact) == (448, False)


def test_header_of_a_split_input_drops_the_split_keys(tmp_dir) -> None:
    # gguf-py split set, one tensor per shard. Shard 1 header: 24 + general.architecture 45 + llama.block_count 33
    # + general.file_type 33 + split.no u16 (8+8+4+2 = 22) + split.count u16 (8+11+4+2 = 25) +
    # split.tensors.count i32 (8+19+4+4 = 35) + blk.0.attn_q.weight info 59 = 276 -> 288.
    # llama-quantize writes one file: split keys gone, general.quantization_version added (44), both infos
    # (59 + "token_embd.weight" 8+17+4+16+4+8 = 57): 24 + 45 + 33 + 33 + 44 + 59 + 57 = 295 -> 320.
    writer = gguf.GGUFWriter(str(tmp_dir / "m.gguf"), "llama", split_max_tensors=1)
    writer.add_key_value("llama.block_count", 1, gguf.GGUFValueType.UINT32)
    writer.add_key_value("general.file_type", 1, gguf.GGUFValueType.UINT32)
    for name, ne in (("blk.0.attn_q.weight", (256, 256)), ("token_embd.weight", (256, 512))):
        writer.add_tensor_info(name, list(reversed(ne)), gguf.np.dtype("float16"), 2 * ne[0] * ne[1],
                               raw_dtype=gguf.GGMLQuantizationType.F16)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    checkpoint = read_checkpoint(resolve_local(str(tmp_dir / "m-00001-of-00002.gguf")))
    assert [f.header_bytes for f in checkpoint.files] == [288, 192]
    prediction = predict(checkpoint, QuantOptions("Q8_0"))
    assert (prediction.header_bytes, prediction.header_exact) == (320, True)
    assert not any(k.startswith("split.") for k in prediction.checkpoint.metadata)
    assert len(prediction.checkpoint.files) == 1


def test_header_of_a_converter_view_is_an_estimate() -> None:
    checkpoint = dense(1)
    view = checkpoint.with_(format="safetensors", metadata={**checkpoint.metadata, "general.file_type": 1,
                                                            "general.quantization_version": 2})
    prediction = predict(view, QuantOptions("Q4_K_M"), header_estimate=5000)
    # no KV changes, no trailing-1 dims: 5000 -> padded 5024
    assert (prediction.header_bytes, prediction.header_exact) == (5024, False)
    assert any("estimated" in n for n in prediction.notes)


def test_predict_many_for_the_quant_list() -> None:
    results = predict_many(dense(2), QuantOptions("Q4_K_M"), COMMON_FTYPES)
    sizes = [results[f].data_bytes for f in ("Q2_K", "Q4_K_M", "Q8_0", "BF16")]
    assert sizes == sorted(sizes)


# --- published file sizes -------------------------------------------------------------------------------------------

# TheBloke's GGUFs (made with llama.cpp of late 2023; sizes from the repos' Git-LFS pointers, see
# ../shared/data/real/GourmetBytes__Mistral-7B-Instruct-v0.2-GGUF and quant-spec.md §5.2). A header does not depend
# on the file type, so predicted data + ONE header size must give every published size. The 2023 rules differ from
# today's for Q2_K (not listed) and, on 80-block models, Q4_K_S (4 bumped ffn_down blocks instead of n/8).
MISTRAL_7B_V02 = {  # header back-solved: 735,520 bytes
    "Q3_K_S": 3_164_567_840, "Q3_K_M": 3_518_986_528, "Q3_K_L": 3_822_024_992, "Q4_0": 4_108_917_024,
    "Q4_K_S": 4_140_374_304, "Q4_K_M": 4_368_439_584, "Q5_0": 4_997_716_256, "Q5_K_S": 4_997_716_256,
    "Q5_K_M": 5_131_409_696, "Q6_K": 5_942_065_440, "Q8_0": 7_695_857_952,
}
LLAMA_2_70B = {"Q3_K_L": 36_147_835_808, "Q4_K_M": 41_422_910_368, "Q5_K_M": 48_753_767_328}  # header 766,880


@pytest.mark.parametrize("rules", ["current", "legacy"])
def test_published_sizes_need_a_single_header(rules: str) -> None:
    # Mistral-7B-v0.2: 32 blocks, 4096 wide, FFN 14336, 32 heads / 8 KV heads of 128, vocab 32000, untied
    mistral = dense(32, n_embd=4096, n_ff=14336, heads=32, kv_heads=8, head_dim=128, vocab=32000)
    headers = {size - predict(mistral, QuantOptions(f, rules=rules)).data_bytes for f, size in MISTRAL_7B_V02.items()}
    assert headers == {735_520}
    # Llama-2-70B: 80 blocks, 8192 wide, FFN 28672, 64 heads / 8 KV heads (LLM_TYPE_70B), vocab 32000
    llama70 = dense(80, n_embd=8192, n_ff=28672, heads=64, kv_heads=8, head_dim=128, vocab=32000)
    headers = {size - predict(llama70, QuantOptions(f, rules=rules)).data_bytes for f, size in LLAMA_2_70B.items()}
    assert headers == {766_880}
