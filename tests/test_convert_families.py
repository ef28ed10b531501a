"""The converter view of the families added for issue 15, each against a real GGUF map (Thireus' GGUF-Tool-Suite
bf16 maps: the converter's names, `ne`, types and bytes exactly) or a real index.

HF layouts are rebuilt from each model's published config.json values (written out below, from the model cards)
with the HF module names of its modeling file; the comparison is with real files only.
"""
from __future__ import annotations

from typing import Any

import pytest

from inspector.convert import ConversionError, to_gguf_view
from inspector.quant import QuantOptions, predict

from ._shared import needs_shared
from .test_convert_view import Spec, by_name, checkpoint, read_thireus_map


# ------------------------------------------------------------------------------------------------
# GLM-4.5 / 4.5-Air / 4.6: Glm4MoeForCausalLM (modeling_glm4_moe.py), NextN block kept
# ------------------------------------------------------------------------------------------------
GLM_4_5 = {  # zai-org/GLM-4.5 config.json
    "architectures": ["Glm4MoeForCausalLM"], "model_type": "glm4_moe", "hidden_size": 5120,
    "num_hidden_layers": 92, "num_attention_heads": 96, "num_key_value_heads": 8, "head_dim": 128,
    "intermediate_size": 12288, "moe_intermediate_size": 1536, "n_routed_experts": 160, "n_shared_experts": 1,
    "first_k_dense_replace": 3, "num_nextn_predict_layers": 1, "num_experts_per_tok": 8, "vocab_size": 151552,
    "use_qk_norm": True, "attention_bias": True, "partial_rotary_factor": 0.5, "max_position_embeddings": 131072,
    "rope_theta": 1000000, "rms_norm_eps": 1e-05, "norm_topk_prob": True, "routed_scaling_factor": 2.5,
    "n_group": 1, "topk_group": 1, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}
GLM_4_5_AIR = {**GLM_4_5, "hidden_size": 4096, "num_hidden_layers": 46, "intermediate_size": 10944,
               "moe_intermediate_size": 1408, "n_routed_experts": 128, "first_k_dense_replace": 1,
               "use_qk_norm": False}  # zai-org/GLM-4.5-Air config.json
GLM_4_6 = {**GLM_4_5, "max_position_embeddings": 202752}  # zai-org/GLM-4.6 config.json


def glm4moe(cfg: dict[str, Any], *, mtp_heads: bool = True) -> list[Spec]:
    """modeling_glm4_moe.py names; the NextN layer (index num_hidden_layers) is a full decoder layer plus eh_proj,
    enorm, hnorm and, in GLM-4.5/4.5-Air, its own embed_tokens and shared_head (GLM-4.6 ships without them)."""
    h, v, heads, kv, hd = (cfg[k] for k in ("hidden_size", "vocab_size", "num_attention_heads",
                                            "num_key_value_heads", "head_dim"))
    ff, mff, n_exp = cfg["intermediate_size"], cfg["moe_intermediate_size"], cfg["n_routed_experts"]
    out: list[Spec] = [("model.embed_tokens.weight", (v, h), "BF16")]
    n = cfg["num_hidden_layers"]
    for i in range(n + cfg["num_nextn_predict_layers"]):
        p = f"model.layers.{i}."
        if i >= n:
            out += [(p + "eh_proj.weight", (h, 2 * h), "BF16"), (p + "enorm.weight", (h,), "BF16"),
                    (p + "hnorm.weight", (h,), "BF16"), (p + "shared_head.norm.weight", (h,), "BF16")]
            if mtp_heads:
                out += [(p + "embed_tokens.weight", (v, h), "BF16"), (p + "shared_head.head.weight", (v, h), "BF16")]
        out.append((p + "input_layernorm.weight", (h,), "BF16"))
        for proj, rows in (("q_proj", heads * hd), ("k_proj", kv * hd), ("v_proj", kv * hd)):
            out += [(p + f"self_attn.{proj}.weight", (rows, h), "BF16"), (p + f"self_attn.{proj}.bias", (rows,), "BF16")]
        out.append((p + "self_attn.o_proj.weight", (h, heads * hd), "BF16"))
        if cfg["use_qk_norm"]:
            out += [(p + "self_attn.q_norm.weight", (hd,), "BF16"), (p + "self_attn.k_norm.weight", (hd,), "BF16")]
        out.append((p + "post_attention_layernorm.weight", (h,), "BF16"))
        if i < cfg["first_k_dense_replace"]:
            out += [(p + "mlp.gate_proj.weight", (ff, h), "BF16"), (p + "mlp.up_proj.weight", (ff, h), "BF16"),
                    (p + "mlp.down_proj.weight", (h, ff), "BF16")]
            continue
        out += [(p + "mlp.gate.weight", (n_exp, h), "BF16"), (p + "mlp.gate.e_score_correction_bias", (n_exp,), "F32")]
        for x in range(n_exp):
            out += [(p + f"mlp.experts.{x}.gate_proj.weight", (mff, h), "BF16"),
                    (p + f"mlp.experts.{x}.up_proj.weight", (mff, h), "BF16"),
                    (p + f"mlp.experts.{x}.down_proj.weight", (h, mff), "BF16")]
        sff = mff * cfg["n_shared_experts"]
        out += [(p + "mlp.shared_experts.gate_proj.weight", (sff, h), "BF16"),
                (p + "mlp.shared_experts.up_proj.weight", (sff, h), "BF16"),
                (p + "mlp.shared_experts.down_proj.weight", (h, sff), "BF16")]
    out += [("model.norm.weight", (h,), "BF16"), ("lm_head.weight", (v, h), "BF16")]
    return out


@needs_shared
@pytest.mark.parametrize("model, cfg, mtp_heads, count, total", [
    ("GLM-4.5", GLM_4_5, True, 1761, 716_827_727_104),
    ("GLM-4.5-Air", GLM_4_5_AIR, True, 803, 220_988_046_336),
    ("GLM-4.6", GLM_4_6, False, 1759, 713_723_942_144),
])
def test_glm4moe_matches_the_real_bf16_map(model, cfg, mtp_heads, count, total) -> None:
    view = to_gguf_view(checkpoint(cfg, glm4moe(cfg, mtp_heads=mtp_heads)))
    real = read_thireus_map(model)
    mine = {t.name: (t.shape, t.dtype, t.nbytes) for t in view.checkpoint.tensors}
    assert len(real) == count and set(mine) == set(real)
    assert mine == real
    assert view.checkpoint.nbytes == total
    md = view.checkpoint.metadata
    n = cfg["num_hidden_layers"]
    assert md["glm4moe.block_count"] == n + 1 and md["glm4moe.nextn_predict_layers"] == 1
    assert md["glm4moe.expert_count"] == cfg["n_routed_experts"] and md["glm4moe.leading_dense_block_count"] == \
        cfg["first_k_dense_replace"]
    t = by_name(view.checkpoint)
    # the NextN block: eh_proj [h, 2h] -> ne (2h, h); its experts are stacked like any layer's
    assert t[f"blk.{n}.nextn.eh_proj.weight"].shape == (2 * cfg["hidden_size"], cfg["hidden_size"])
    assert t[f"blk.{n}.ffn_down_exps.weight"].shape == (cfg["moe_intermediate_size"], cfg["hidden_size"],
                                                          cfg["n_routed_experts"])


@needs_shared
def test_glm4moe_view_quantizes_like_the_real_q8_0_map() -> None:
    """GLM-4.5-Air, llama-quantize Q8_0 of the converter view: every 2-D+ weight Q8_0, norms/biases/routers F32 —
    the real q8_0 map's types and bytes tensor for tensor (its maker, ik_llama.cpp, makes the same choices at Q8_0)."""
    view = to_gguf_view(checkpoint(GLM_4_5_AIR, glm4moe(GLM_4_5_AIR)))
    p = predict(view.checkpoint, QuantOptions("Q8_0"), header_estimate=view.header_estimate)
    real = read_thireus_map("GLM-4.5-Air", "q8_0")
    mine = {t.name: (t.shape, t.dtype, t.nbytes) for t in p.checkpoint.tensors}
    assert mine == real
    assert p.data_bytes == sum((b + 31) // 32 * 32 for _s, _d, b in real.values())


def test_an_uncovered_architecture_names_what_is_missing() -> None:
    cfg = {"architectures": ["FancyNewForCausalLM"], "model_type": "fancy_new", "num_hidden_layers": 2}
    with pytest.raises(ConversionError, match="FancyNewForCausalLM"):
        to_gguf_view(checkpoint(cfg, [("model.embed_tokens.weight", (8, 4), "BF16")]))


def test_a_kv_only_architecture_names_the_tensors_it_cannot_map() -> None:
    # Qwen3-Next: hyperparameters only; its linear-attention tensors have no name in gguf-py's generic map
    cfg = {"architectures": ["Qwen3NextForCausalLM"], "model_type": "qwen3_next", "num_hidden_layers": 2}
    specs = [("model.embed_tokens.weight", (8, 4), "BF16"), ("model.layers.0.linear_attn.dt_bias", (4,), "F32"),
             ("model.layers.1.linear_attn.dt_bias", (4,), "F32"), ("model.layers.0.input_layernorm.weight", (4,), "BF16")]
    with pytest.raises(ConversionError, match=r"Qwen3NextForCausalLM.*not its tensor steps; gguf-py's tensor map "
                                              r"for qwen3next cannot name 2 tensors: model\.layers\.\{N\}\.linear_attn"
                                              r"\.dt_bias \(2\)"):
        to_gguf_view(checkpoint(cfg, specs))
