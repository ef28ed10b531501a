"""Dated rule sets (`--quant-rules`): one test per change between the modelled llama.cpp commits, each with a tensor
whose type (and bytes) it alters. Facts: llama.cpp src/llama-quant.cpp at 007dbbf3 (2026-07) and 0c1e5709
(2026-10); the changes are listed in inspector/quant/rulesets.py.

Byte arithmetic (ggml-common.h): Q4_0 18 bytes / 32, Q8_0 34 / 32, Q4_K 144 / 256, Q6_K 210 / 256, F16 2 / value.
"""
from __future__ import annotations

import pytest

from inspector.errors import UsageError
from inspector.quant import QuantizeError, QuantOptions, predict, resolve_ftype
from inspector.quant.rulesets import RULE_SETS, resolve_rules

from .test_quant_rules import dense


def tensors(checkpoint, ftype: str, **options) -> dict[str, tuple[str, int]]:
    p = predict(checkpoint, QuantOptions(ftype, **options))
    return {t.name: (t.dtype, t.nbytes) for t in p.checkpoint.tensors}


def test_names_aliases_and_commits() -> None:
    assert resolve_rules("current").name == "2026-10" and resolve_rules("legacy").name == "2025-08"
    assert resolve_rules("2026-07").commit.startswith("007dbbf3")
    assert RULE_SETS["2026-10"].commit.startswith("0c1e5709") and RULE_SETS["2025-08"].commit.startswith("8784689f")
    with pytest.raises(UsageError, match="2026-10 \\(current\\) = 0c1e5709.*2025-08 \\(legacy\\) = 8784689f"):
        resolve_rules("2024-01")
    # the default is the newest set: the notes say which commit
    p = predict(dense(2), QuantOptions("Q4_K_M"))
    assert "current = 2026-10 rules (llama.cpp src/llama-quant.cpp at 0c1e5709" in p.notes[0]


def test_2026_10_writes_f16_where_a_32_block_type_does_not_fit() -> None:
    # ffn_down ne = (48, 256): 48 % 32 != 0 and Q4_0 has no fallback entry
    m = dense(2, n_ff=48)
    with pytest.raises(QuantizeError, match="no fallback for Q4_0"):
        predict(m, QuantOptions("Q4_0", rules="2026-07"))  # 007dbbf3 throws in tensor_type_fallback
    got = tensors(m, "Q4_0", rules="2026-10")
    assert got["blk.0.ffn_down.weight"] == ("F16", 48 * 256 * 2)  # 24,576 bytes
    assert got["blk.0.ffn_gate.weight"] == ("Q4_0", 48 * (256 // 32) * 18)  # ne (256, 48): 6,912 bytes, fits
    # a larger block without a fallback still stops (Q1_0: blocks of 128)
    with pytest.raises(QuantizeError, match="Q1_0"):
        predict(m, QuantOptions("Q1_0", rules="2026-10"))
    # an explicit --tensor-type of a 32-block type goes through the same fallback
    got = tensors(m, "Q4_K_M", rules="2026-10", tensor_types=(("ffn_down", "Q8_0"),))
    assert got["blk.1.ffn_down.weight"] == ("F16", 24_576)


def gemma3n_like():
    # per_layer_token_embd ne = (256, 512): a second TOKEN_EMBD tensor
    return dense(2, arch="gemma3n", extra=(("per_layer_token_embd.weight", (256, 512)),))


def test_2026_10_lets_a_tensor_type_pattern_name_per_layer_token_embd() -> None:
    opts = dict(token_embedding_type="Q8_0", tensor_types=(("per_layer_token_embd", "Q4_K"),))
    old = tensors(gemma3n_like(), "Q4_K_M", rules="2026-07", **opts)
    new = tensors(gemma3n_like(), "Q4_K_M", rules="2026-10", **opts)
    assert old["per_layer_token_embd.weight"] == ("Q8_0", 512 * 8 * 34)  # 139,264: the embedding type
    assert new["per_layer_token_embd.weight"] == ("Q4_K", 512 * 144)  # 73,728: the pattern's
    # token_embd.weight still takes --token-embedding-type under both
    assert old["token_embd.weight"] == new["token_embd.weight"] == ("Q8_0", 512 * 8 * 34)
    # without a matching pattern, per_layer_token_embd follows --token-embedding-type in 2026-10 too
    plain = tensors(gemma3n_like(), "Q4_K_M", rules="2026-10", token_embedding_type="Q8_0")
    assert plain["per_layer_token_embd.weight"] == ("Q8_0", 139_264)


def glm5_next_like(arch: str = "glm5-next"):
    extra = []
    for i in range(2):
        p = f"blk.{i}."
        extra += [(p + "attn_q_a.weight", (256, 64)), (p + "attn_kv_a_mqa.weight", (256, 96)),
                  (p + "hc_attn_fn.weight", (256, 32)), (p + "indexer.proj.weight", (256, 32))]
    extra.append(("blk.1.nextn.eh_proj.weight", (512, 256)))
    return dense(2, arch=arch, extra=tuple(extra))


def test_2026_10_glm5_next_keeps_some_tensors_and_floors_others_at_q8_0() -> None:
    old = tensors(glm5_next_like(), "Q4_K_M", rules="2026-07")
    new = tensors(glm5_next_like(), "Q4_K_M", rules="2026-10")
    # never quantized from 2026-10: attn_kv_a_mqa, hc_*, indexer.proj keep F16
    assert old["blk.0.attn_kv_a_mqa.weight"] == ("Q4_K", 96 * 144)  # 13,824
    assert new["blk.0.attn_kv_a_mqa.weight"] == ("F16", 256 * 96 * 2)  # 49,152
    assert old["blk.1.hc_attn_fn.weight"] == ("Q4_K", 32 * 144) and new["blk.1.hc_attn_fn.weight"] == ("F16", 16_384)
    assert new["blk.0.indexer.proj.weight"] == ("F16", 16_384)
    # at least Q8_0: attn_q_a and nextn.eh_proj
    assert old["blk.0.attn_q_a.weight"] == ("Q4_K", 64 * 144)  # 9,216
    assert new["blk.0.attn_q_a.weight"] == ("Q8_0", 64 * 8 * 34)  # 17,408
    assert new["blk.1.nextn.eh_proj.weight"] == ("Q8_0", 256 * 16 * 34)  # 139,264
    # the switch belongs to the architecture: the same tensors under another arch follow the mixture
    other = tensors(glm5_next_like("glm4moe"), "Q4_K_M", rules="2026-10")
    assert other["blk.0.attn_kv_a_mqa.weight"] == ("Q4_K", 13_824) and other["blk.0.attn_q_a.weight"][0] == "Q4_K"
    # an explicit --tensor-type is not floored (the floor is part of the mixture)
    manual = tensors(glm5_next_like(), "Q4_K_M", rules="2026-10", tensor_types=(("attn_q_a", "Q4_K"),))
    assert manual["blk.0.attn_q_a.weight"] == ("Q4_K", 9_216)


def test_2026_10_has_no_nvfp4_file_type() -> None:
    assert resolve_ftype("NVFP4", "2026-07").ftype == 39
    with pytest.raises(UsageError, match="not known to the 2026-10 \\(current\\) rules"):
        resolve_ftype("NVFP4", "2026-10")
    with pytest.raises(UsageError, match="2025-08"):
        resolve_ftype("NVFP4", "legacy")


def test_the_cli_offers_every_rule_set_name() -> None:
    from inspector.cli import QUANT_RULE_NAMES
    from inspector.quant.rulesets import rule_set_names

    assert sorted(QUANT_RULE_NAMES) == sorted(rule_set_names())
