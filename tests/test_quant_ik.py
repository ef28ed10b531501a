"""ik_llama.cpp's quantizer (`--quant-rules ik_llama`, inspector/quant/rules_ik.py): where its choices differ from
llama.cpp's, each case worked out by hand from ik_llama.cpp 8337e4cd src/llama-quantize.cpp; and real ik GGUF
maps (Thireus' q4_K maps were made by ik_llama.cpp's llama-quantize with --pure).

Bytes per 256 values: Q4_K 144, Q5_K 176, Q6_K 210, IQ4_KS 136 + 4 per row, IQ5_K 176; per 32: Q8_0 34, Q6_0 26,
Q5_1 24, Q4_0 18, IQ4_NL 18.
"""
from __future__ import annotations

import pytest

from inspector.convert import to_gguf_view
from inspector.errors import UsageError
from inspector.quant import QuantizeError, QuantOptions, predict, resolve_ftype
from inspector.requests import quant_request

from ._shared import needs_shared
from .test_quant_rules import dense


def types(checkpoint, ftype: str, rules: str = "ik_llama", **options) -> dict[str, tuple[str, int]]:
    p = predict(checkpoint, QuantOptions(ftype, rules=rules, **options))
    return {t.name: (t.dtype, t.nbytes) for t in p.checkpoint.tensors}


def test_four_experts_send_attn_v_and_attn_k_to_q8_0() -> None:
    # 4 experts: ik tests n_expert >= 4 (mainline: == 8). attn_v/attn_k ne (256, 64): Q8_0 64 rows x 8 x 34
    m = dense(2, experts=4)
    ik, main = types(m, "Q4_K_M"), types(m, "Q4_K_M", rules="current")
    assert ik["blk.0.attn_v.weight"] == ("Q8_0", 64 * 8 * 34) and ik["blk.1.attn_k.weight"] == ("Q8_0", 17_408)
    assert main["blk.0.attn_v.weight"] == ("Q4_K", 64 * 144) and main["blk.1.attn_k.weight"] == ("Q4_K", 9_216)
    # attn_output with n_expert >= 4 and Q4_K_M: Q5_K (256 rows x 176); mainline keeps Q4_K
    assert ik["blk.0.attn_output.weight"] == ("Q5_K", 256 * 176) and main["blk.0.attn_output.weight"][0] == "Q4_K"


def test_ik_fallbacks_q5_k_to_q6_0_and_q3_k_to_iq4_nl() -> None:
    # ffn_down ne (384, 256): 384 % 256 != 0. Q5_K -> Q6_0 (ik) / Q5_1 (mainline): 256 rows x 12 blocks
    m = dense(2, n_ff=384)
    assert types(m, "Q5_K_S")["blk.0.ffn_down.weight"] == ("Q6_0", 256 * 12 * 26)
    assert types(m, "Q5_K_S", rules="current")["blk.0.ffn_down.weight"] == ("Q5_1", 256 * 12 * 24)
    # Q3_K -> IQ4_NL (ik) / Q4_0 (mainline 2026)
    assert types(m, "Q3_K_S")["blk.1.ffn_down.weight"] == ("IQ4_NL", 256 * 12 * 18)
    assert types(m, "Q3_K_S", rules="current")["blk.1.ffn_down.weight"] == ("Q4_0", 256 * 12 * 18)
    # no F16 last resort: rows of 48 fit neither Q4_K nor Q5_0 -> ik's quantizer fails (mainline writes F16)
    with pytest.raises(QuantizeError, match="block size"):
        predict(dense(2, n_ff=48), QuantOptions("Q4_K_M", rules="ik_llama"))


def test_ik_quantizes_what_mainline_keeps() -> None:
    # altup/laurel names are only excluded by mainline; ik quantizes them (pure Q8_0: 256 rows x 8 x 34)
    m = dense(2, arch="gemma3n", extra=(("blk.0.altup_proj.weight", (256, 256)),))
    assert types(m, "Q8_0")["blk.0.altup_proj.weight"] == ("Q8_0", 256 * 8 * 34)
    assert types(m, "Q8_0", rules="current")["blk.0.altup_proj.weight"] == ("F16", 256 * 256 * 2)


def test_iq4_ks_file_type() -> None:
    """IQ4_KS (ik id 145): default IQ4_KS; attn_v with GQA 4 (8 heads, 2 KV) -> IQ5_K; output Q6_K."""
    info = resolve_ftype("IQ4_KS", "ik_llama")
    assert (info.ftype, info.default_type) == (145, "IQ4_KS")
    p = predict(dense(2), QuantOptions("IQ4_KS", rules="ik_llama"))
    t = {x.name: (x.dtype, x.nbytes) for x in p.checkpoint.tensors}
    assert t["blk.0.attn_q.weight"] == ("IQ4_KS", 256 * (136 + 4))  # 256 rows of one 256-block + a 4-byte row scale
    assert t["blk.0.attn_v.weight"] == ("IQ5_K", 64 * 176)
    assert t["output.weight"] == ("Q6_K", 512 * 210)
    assert p.checkpoint.metadata["general.file_type"] == 145
    # tied embeddings (no output.weight): token_embd takes the output rule, IQ5_K for IQ4_KS files
    tied = types(dense(2, tied=True), "IQ4_KS")
    assert tied["token_embd.weight"] == ("IQ5_K", 512 * 176)


def test_70b_attn_v_is_the_default_type_bumped_only() -> None:
    # llama, 80 blocks, GQA: ik's MODEL_70B attn_v is Q4_K -> Q5_K on every layer; mainline gives use_more_bits
    # layers Q6_K. Layer 0: use_more_bits(0, 80) (0 < 10) is true -> mainline Q6_K, ik Q5_K
    m = dense(80, n_ff=256)
    assert types(m, "Q4_K_M")["blk.0.attn_v.weight"][0] == "Q5_K"
    assert types(m, "Q4_K_M", rules="current")["blk.0.attn_v.weight"][0] == "Q6_K"
    assert {types(m, "Q4_K_M")[f"blk.{i}.attn_v.weight"][0] for i in range(80)} == {"Q5_K"}


def test_custom_types_and_names() -> None:
    # --tensor-type acts as ik's --custom-q (after the mixture, then the fallback) and takes ik types
    options, _given, _recipe = quant_request({"quant": "Q4_K_M", "quant_rules": "ik_llama",
                                              "tensor_type": ("attn_v=iq4_ks",)})
    assert options.tensor_types == (("attn_v", "IQ4_KS"),)
    t = {x.name: x.dtype for x in predict(dense(2), options).checkpoint.tensors}
    assert t["blk.1.attn_v.weight"] == "IQ4_KS"
    with pytest.raises(UsageError, match="row-interleaved"):
        resolve_ftype("Q4_K_R4", "ik_llama")
    with pytest.raises(UsageError, match="no --prune-layers"):
        predict(dense(2), QuantOptions("Q4_K_M", rules="ik_llama", prune_layers=(1,)))


@needs_shared
@pytest.mark.parametrize("model", ["GLM-4.5-Air", "Qwen3.5-35B-A3B"])
def test_real_ik_q4_k_maps_are_pure_q4_k_with_ik_fallbacks(model) -> None:
    """Thireus' q4_K maps: ik_llama.cpp llama-quantize --pure Q4_K of the bf16 GGUF — every quantizable tensor Q4_K,
    rows not a multiple of 256 (GLM's ffn_down of 10,944 and 1,408) Q5_0, the rest kept."""
    from .test_convert_families import GLM_4_5_AIR, glm4moe, qwen35, qwen35_moe_config
    from .test_convert_view import checkpoint, read_thireus_map

    if model == "GLM-4.5-Air":
        view = to_gguf_view(checkpoint(GLM_4_5_AIR, glm4moe(GLM_4_5_AIR)))
    else:
        cfg = qwen35_moe_config(256)
        view = to_gguf_view(checkpoint(cfg, qwen35(cfg, mtp=False)))
    p = predict(view.checkpoint, QuantOptions("Q4_K_M", rules="ik_llama", pure=True),
                header_estimate=view.header_estimate)
    real = read_thireus_map(model, "q4_K")
    mine = {t.name: (t.shape, t.dtype, t.nbytes) for t in p.checkpoint.tensors}
    assert mine == real
