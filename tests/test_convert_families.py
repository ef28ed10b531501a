"""The converter view of the families added for issue 15, each against a real GGUF map (Thireus' GGUF-Tool-Suite
bf16 maps: the converter's names, `ne`, types and bytes exactly) or a real index.

HF layouts are rebuilt from each model's published config.json values (written out below, from the model cards)
with the HF module names of its modeling file; the comparison is with real files only.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
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
    # Jamba: hyperparameters only; a tensor gguf-py's jamba map has no name for is named in the error
    cfg = {"architectures": ["JambaForCausalLM"], "model_type": "jamba", "num_hidden_layers": 2}
    specs = [("model.embed_tokens.weight", (8, 4), "BF16"), ("model.layers.0.mamba.fancy_proj.weight", (4, 4), "BF16"),
             ("model.layers.1.mamba.fancy_proj.weight", (4, 4), "BF16"),
             ("model.layers.0.input_layernorm.weight", (4,), "BF16")]
    with pytest.raises(ConversionError, match=r"JambaForCausalLM.*not its tensor steps; gguf-py's tensor map "
                                              r"for jamba cannot name 2 tensors: model\.layers\.\{N\}\.mamba"
                                              r"\.fancy_proj\.weight \(2\)"):
        to_gguf_view(checkpoint(cfg, specs))


# ------------------------------------------------------------------------------------------------
# Qwen3.5 (dense and MoE): hybrid linear attention (Gated DeltaNet) every 3 of 4 layers, MTP block kept
# ------------------------------------------------------------------------------------------------
REAP = "bryce-hoehn__Qwen3.5-18B-REAP-A3B-Coding"
QWEN35_27B = {  # Qwen/Qwen3.5-27B config.json (text part)
    "architectures": ["Qwen3_5ForConditionalGeneration"], "model_type": "qwen3_5_text", "hidden_size": 5120,
    "num_hidden_layers": 64, "num_attention_heads": 24, "num_key_value_heads": 4, "head_dim": 256,
    "intermediate_size": 17408, "linear_num_key_heads": 16, "linear_num_value_heads": 48,
    "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4,
    "full_attention_interval": 4, "vocab_size": 248320, "mtp_num_hidden_layers": 1, "tie_word_embeddings": False,
    "max_position_embeddings": 262144, "rms_norm_eps": 1e-06,
    "rope_parameters": {"mrope_interleaved": True, "mrope_section": [11, 11, 10], "partial_rotary_factor": 0.25,
                        "rope_theta": 10000000, "rope_type": "default"},
}


def qwen35_moe_config(experts: int) -> dict[str, Any]:
    """Qwen3.5-35B-A3B's text config: the REAP checkpoint's real config.json, which only cut the experts."""
    from .test_convert_view import real_config

    return {**real_config(REAP), "num_experts": experts}


def qwen35(cfg: dict[str, Any], *, mtp: bool, prefix: str = "model.language_model.") -> list[Spec]:
    """modeling_qwen3_5(_moe).py names (as in the REAP index): linear_attn.{in_proj_qkv,in_proj_z,in_proj_a,
    in_proj_b,conv1d,A_log,dt_bias,norm,out_proj} on linear layers, self_attn with the output gate folded into q_proj
    on every full_attention_interval-th layer; dense mlp or experts + shared_expert (+ its sigmoid gate); mtp.*."""
    h, v, n = cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    heads, kv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    nk, nv, hk, hv = (cfg[k] for k in ("linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim",
                                       "linear_value_head_dim"))
    conv = 2 * nk * hk + nv * hv
    types = cfg.get("layer_types") or ["full_attention" if (i + 1) % cfg["full_attention_interval"] == 0
                                       else "linear_attention" for i in range(n)]

    def layer(p: str, kind: str) -> list[Spec]:
        out: list[Spec] = [(p + "input_layernorm.weight", (h,), "BF16"),
                           (p + "post_attention_layernorm.weight", (h,), "BF16")]
        if kind == "linear_attention":
            a = p + "linear_attn."
            out += [(a + "in_proj_qkv.weight", (conv, h), "BF16"), (a + "in_proj_z.weight", (nv * hv, h), "BF16"),
                    (a + "in_proj_a.weight", (nv, h), "BF16"), (a + "in_proj_b.weight", (nv, h), "BF16"),
                    (a + "conv1d.weight", (conv, 1, cfg["linear_conv_kernel_dim"]), "BF16"),
                    (a + "A_log", (nv,), "F32"), (a + "dt_bias", (nv,), "BF16"), (a + "norm.weight", (hv,), "F32"),
                    (a + "out_proj.weight", (h, nv * hv), "BF16")]
        else:
            a = p + "self_attn."
            out += [(a + "q_proj.weight", (2 * heads * hd, h), "BF16"), (a + "k_proj.weight", (kv * hd, h), "BF16"),
                    (a + "v_proj.weight", (kv * hd, h), "BF16"), (a + "o_proj.weight", (h, heads * hd), "BF16"),
                    (a + "q_norm.weight", (hd,), "BF16"), (a + "k_norm.weight", (hd,), "BF16")]
        if "num_experts" in cfg:
            m, e, ff, sff = p + "mlp.", cfg["num_experts"], cfg["moe_intermediate_size"], cfg[
                "shared_expert_intermediate_size"]
            out += [(m + "gate.weight", (e, h), "BF16"), (m + "shared_expert_gate.weight", (1, h), "BF16"),
                    (m + "shared_expert.gate_proj.weight", (sff, h), "BF16"),
                    (m + "shared_expert.up_proj.weight", (sff, h), "BF16"),
                    (m + "shared_expert.down_proj.weight", (h, sff), "BF16")]
            for x in range(e):
                out += [(m + f"experts.{x}.gate_proj.weight", (ff, h), "BF16"),
                        (m + f"experts.{x}.up_proj.weight", (ff, h), "BF16"),
                        (m + f"experts.{x}.down_proj.weight", (h, ff), "BF16")]
        else:
            ff = cfg["intermediate_size"]
            out += [(p + "mlp.gate_proj.weight", (ff, h), "BF16"), (p + "mlp.up_proj.weight", (ff, h), "BF16"),
                    (p + "mlp.down_proj.weight", (h, ff), "BF16")]
        return out

    out: list[Spec] = [(prefix + "embed_tokens.weight", (v, h), "BF16")]
    for i in range(n):
        out += layer(f"{prefix}layers.{i}.", types[i])
    out += [(prefix + "norm.weight", (h,), "BF16"), ("lm_head.weight", (v, h), "BF16")]
    if mtp:  # one full-attention layer plus the fc and its norms
        out += layer("mtp.layers.0.", "full_attention") + [
            ("mtp.fc.weight", (h, 2 * h), "BF16"), ("mtp.pre_fc_norm_embedding.weight", (h,), "BF16"),
            ("mtp.pre_fc_norm_hidden.weight", (h,), "BF16"), ("mtp.norm.weight", (h,), "BF16")]
    return out


@needs_shared
def test_qwen35_builder_names_are_the_real_reap_index() -> None:
    from .test_convert_view import real_index_names

    cfg = qwen35_moe_config(128)
    assert {n for n, _s, _d in qwen35(cfg, mtp=False)} == real_index_names(REAP)  # 15,973 tensors


@needs_shared
@pytest.mark.parametrize("model", ["Qwen3.5-35B-A3B", "Qwen3.5-27B"])
def test_qwen35_matches_the_real_bf16_map_and_keeps_the_mtp_block(model) -> None:
    """The maps were made by a converter that dropped mtp.*; today's keeps it as block num_hidden_layers (its
    tensors are checked apart). Everything else is the map, tensor for tensor."""
    cfg = qwen35_moe_config(256) if "A3B" in model else QWEN35_27B
    view = to_gguf_view(checkpoint(cfg, qwen35(cfg, mtp=True)))
    n = cfg["num_hidden_layers"]
    mine = {t.name: (t.shape, t.dtype, t.nbytes) for t in view.checkpoint.tensors}
    mtp = {k: v for k, v in mine.items() if k.startswith(f"blk.{n}.")}
    real = read_thireus_map(model)
    assert {k: v for k, v in mine.items() if k not in mtp} == real
    h = cfg["hidden_size"]
    assert mtp[f"blk.{n}.nextn.eh_proj.weight"] == ((2 * h, h), "BF16", 2 * h * h * 2)
    assert mtp[f"blk.{n}.nextn.enorm.weight"][1] == mtp[f"blk.{n}.nextn.shared_head_norm.weight"][1] == "F32"
    assert mtp[f"blk.{n}.attn_q.weight"] == real["blk.3.attn_q.weight"]  # a full-attention layer
    md = view.checkpoint.metadata
    arch = "qwen35moe" if "A3B" in model else "qwen35"
    assert md[f"{arch}.block_count"] == n + 1 and md[f"{arch}.nextn_predict_layers"] == 1


@needs_shared
def test_qwen35_reap_checkpoint_has_half_the_experts_of_the_full_model() -> None:
    """The REAP index (no mtp.* tensors): the view is the 35B-A3B map with 128 experts instead of 256 — ffn_*_exps
    ne2 and the router's ne1 halved, bytes halved; block_count still counts the MTP block the config declares."""
    cfg = qwen35_moe_config(128)
    view = to_gguf_view(checkpoint(cfg, qwen35(cfg, mtp=False)))
    real = read_thireus_map("Qwen3.5-35B-A3B")
    expected = {}
    for name, (ne, dtype, nbytes) in real.items():
        if "_exps." in name:
            ne, nbytes = (*ne[:2], 128), nbytes // 2
        elif name.endswith("ffn_gate_inp.weight"):
            ne, nbytes = (ne[0], 128), nbytes // 2
        expected[name] = (ne, dtype, nbytes)
    assert {t.name: (t.shape, t.dtype, t.nbytes) for t in view.checkpoint.tensors} == expected
    assert len(expected) == 733
    assert view.checkpoint.metadata["qwen35moe.block_count"] == 41  # _QwenMtpMixin: 40 + mtp_num_hidden_layers


def test_qwen3_next_splits_in_proj_qkvz_and_drops_mtp() -> None:
    """A small Qwen3-Next (4 layers, the 4th full attention; 4 experts): shapes by hand.
    nk = 4 key heads of hk = 32, nv = 8 value heads of hv = 32 (r = 2): in_proj_qkvz has nk * (2 hk + 2 r hv)
    = 4 * (64 + 128) = 768 rows -> attn_qkv 2 nk hk + nv hv = 256 + 256 = 512 rows, attn_gate nv hv = 256 rows;
    in_proj_ba nk * 2 r = 16 rows (ssm_ba); conv1d [2 nk hk + nv hv, 1, 4] = [512, 1, 4] -> ne (4, 512)."""
    h, v = 128, 1024
    cfg = {"architectures": ["Qwen3NextForCausalLM"], "model_type": "qwen3_next", "hidden_size": h,
           "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
           "linear_num_key_heads": 4, "linear_num_value_heads": 8, "linear_key_head_dim": 32,
           "linear_value_head_dim": 32, "linear_conv_kernel_dim": 4, "full_attention_interval": 4,
           "num_experts": 4, "moe_intermediate_size": 64, "shared_expert_intermediate_size": 64, "vocab_size": v,
           "intermediate_size": 256, "tie_word_embeddings": False, "rms_norm_eps": 1e-6}
    specs: list[Spec] = [("model.embed_tokens.weight", (v, h), "BF16"), ("model.norm.weight", (h,), "BF16"),
                         ("lm_head.weight", (v, h), "BF16"), ("mtp.fc.weight", (h, 2 * h), "BF16")]
    for i in range(4):
        p = f"model.layers.{i}."
        if i < 3:
            a = p + "linear_attn."
            specs += [(a + "in_proj_qkvz.weight", (768, h), "BF16"), (a + "in_proj_ba.weight", (16, h), "BF16"),
                      (a + "conv1d.weight", (512, 1, 4), "BF16"), (a + "A_log", (8,), "F32"),
                      (a + "dt_bias", (8,), "BF16"), (a + "norm.weight", (32,), "F32"),
                      (a + "out_proj.weight", (h, 256), "BF16")]
        else:
            a = p + "self_attn."
            specs += [(a + "q_proj.weight", (512, h), "BF16"), (a + "k_proj.weight", (128, h), "BF16"),
                      (a + "v_proj.weight", (128, h), "BF16"), (a + "o_proj.weight", (h, 256), "BF16")]
        specs += [(p + "mlp.gate.weight", (4, h), "BF16"), (p + "mlp.shared_expert_gate.weight", (1, h), "BF16")]
        specs += [(p + f"mlp.experts.{x}.{w}.weight", (64, h) if w != "down_proj" else (h, 64), "BF16")
                  for x in range(4) for w in ("gate_proj", "up_proj", "down_proj")]
    t = {x.name: (x.shape, x.dtype) for x in to_gguf_view(checkpoint(cfg, specs)).checkpoint.tensors}
    assert t["blk.0.attn_qkv.weight"] == ((128, 512), "BF16") and t["blk.0.attn_gate.weight"] == ((128, 256), "BF16")
    assert t["blk.1.ssm_ba.weight"] == ((128, 16), "BF16") and t["blk.2.ssm_conv1d.weight"] == ((4, 512), "F32")
    assert t["blk.0.ssm_a"] == ((8,), "F32") and t["blk.0.ssm_dt.bias"] == ((8,), "F32")
    assert t["blk.0.ssm_out.weight"] == ((256, 128), "BF16") and t["blk.3.attn_q.weight"] == ((128, 512), "BF16")
    assert t["blk.3.ffn_down_exps.weight"] == ((64, 128, 4), "BF16")
    assert t["blk.3.ffn_gate_inp_shexp.weight"] == ((128, 1), "F32")
    assert not any("nextn" in n or "mtp" in n or "eh_proj" in n for n in t)
    # ends; 3 linear layers (qkv, gate, ba, conv1d, a, dt, norm, out + router, shexp gate + 3 stacked experts);
    # the full-attention layer (q, k, v, o + router, shexp gate + 3 stacked experts)
    assert len(t) == 3 + 3 * (8 + 2 + 3) + (4 + 2 + 3)


# ------------------------------------------------------------------------------------------------
# DeepSeek-V2-style GLMs (GLM-4.7-Flash, GLM-5.1) and Kimi K2: MLA, NextN block kept by the GLM classes
# ------------------------------------------------------------------------------------------------
CONFIGS = Path(__file__).parent / "configs"  # published config.json files (configs/README.md)


def published_config(repo: str) -> dict[str, Any]:
    return json.loads((CONFIGS / f"{repo.replace('/', '__')}.json").read_text())


GLM_4_7_FLASH = published_config("zai-org/GLM-4.7-Flash")
GLM_5_1 = published_config("zai-org/GLM-5.1")
KIMI_K2 = published_config("moonshotai/Kimi-K2-Instruct")  # DeepseekV3ForCausalLM; FP8 blocks of 128


def with_indexer(cfg: dict[str, Any], specs: list[Spec], *, mtp_heads: bool) -> list[Spec]:
    """GLM-5's DSA indexer per layer (modeling_glm_moe_dsa.py: self_attn.indexer.{wq_b, wk, k_norm, weights_proj});
    GLM-5.x ships its NextN layer without its own embed_tokens / shared_head.head."""
    h, ql, ih, idim = cfg["hidden_size"], cfg["q_lora_rank"], cfg["index_n_heads"], cfg["index_head_dim"]
    n_all = cfg["num_hidden_layers"] + cfg["num_nextn_predict_layers"]
    out = [s for s in specs if mtp_heads or not s[0].endswith(
        (f"layers.{n_all - 1}.embed_tokens.weight", f"layers.{n_all - 1}.shared_head.head.weight"))]
    for i in range(n_all):
        p = f"model.layers.{i}.self_attn.indexer."
        out += [(p + "wq_b.weight", (ih * idim, ql), "BF16"), (p + "wk.weight", (idim, h), "BF16"),
                (p + "k_norm.weight", (idim,), "BF16"), (p + "k_norm.bias", (idim,), "BF16"),
                (p + "weights_proj.weight", (ih, h), "BF16")]
    return out


@needs_shared
@pytest.mark.parametrize("model", ["GLM-4.7-Flash", "GLM-5.1", "Kimi-K2-Thinking"])
def test_mla_families_match_the_real_bf16_maps(model) -> None:
    from .test_convert_view import deepseek_v3

    if model == "GLM-5.1":
        cfg = GLM_5_1
        specs = with_indexer(cfg, deepseek_v3(cfg), mtp_heads=False)
    elif model == "GLM-4.7-Flash":
        cfg = GLM_4_7_FLASH
        specs = deepseek_v3(cfg)
    else:  # the FP8 release, dequantized to BF16 by the converter (scales folded in)
        cfg = KIMI_K2
        specs = deepseek_v3(cfg, fp8=True)
    view = to_gguf_view(checkpoint(cfg, specs))
    mine = {t.name: (t.shape, t.dtype, t.nbytes) for t in view.checkpoint.tensors}
    real = read_thireus_map(model)
    n = cfg["num_hidden_layers"]
    if model == "GLM-4.7-Flash":
        # the map's converter dropped the NextN block (like DeepseekV2Model); Glm4MoeLiteModel keeps it now
        mtp = {k: v for k, v in mine.items() if k.startswith(f"blk.{n}.")}
        mine = {k: v for k, v in mine.items() if k not in mtp}
        h = cfg["hidden_size"]
        assert mtp[f"blk.{n}.nextn.eh_proj.weight"] == ((2 * h, h), "BF16", 2 * h * h * 2)
        assert mtp[f"blk.{n}.nextn.embed_tokens.weight"][0] == (h, cfg["vocab_size"])
        assert mtp[f"blk.{n}.attn_k_b.weight"] == real["blk.1.attn_k_b.weight"]
        assert view.checkpoint.metadata["deepseek2.nextn_predict_layers"] == 1
    assert mine == real
    arch = view.checkpoint.metadata["general.architecture"]
    assert view.checkpoint.metadata[f"{arch}.block_count"] == n + cfg["num_nextn_predict_layers"]


# ------------------------------------------------------------------------------------------------
# Mistral Small 3 / Devstral
# ------------------------------------------------------------------------------------------------
DEVSTRAL = "fetchwiki__mistralai-Devstral-Small-2507"


@needs_shared
def test_devstral_small_from_its_real_index_and_config() -> None:
    """Devstral-Small-2507 (MistralForCausalLM, LlamaModel): the real index's 363 names with shapes from the real
    config (head_dim 128 < hidden / heads = 160). Its BF16 bytes are the index's total_size, 47,144,806,400; the
    view has the same tensors with the 81 norms (2 per layer + the final one, 5,120 values each) in F32: 2 bytes more
    per value."""
    from .test_convert_view import dense_llama, real_config, real_index_names

    cfg = real_config(DEVSTRAL)
    specs = dense_llama(cfg)
    assert {n for n, _s, _d in specs} == real_index_names(DEVSTRAL)
    assert sum(math.prod(s) * 2 for _n, s, _d in specs) == 47_144_806_400
    view = to_gguf_view(checkpoint(cfg, specs)).checkpoint
    assert len(view.tensors) == 363 and view.metadata["general.architecture"] == "llama"
    assert view.nbytes == 47_144_806_400 + 81 * 5120 * 2
    t = by_name(view)
    assert t["blk.0.attn_q.weight"].shape == (5120, 32 * 128) and t["blk.0.attn_k.weight"].shape == (5120, 8 * 128)
    assert view.metadata["llama.attention.key_length"] == 128 and view.metadata["llama.rope.dimension_count"] == 128


@needs_shared
def test_mistral_small_3_1_text_part_is_devstrals_layout_under_mistral3() -> None:
    """Mistral-Small-3.1-24B (Mistral3ForConditionalGeneration): the same 24B text model under language_model.*,
    plus a Pixtral vision tower and projector that go to the mmproj file."""
    from .test_convert_view import dense_llama, real_config

    text = real_config(DEVSTRAL)
    cfg = {"architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3",
           "text_config": {**text, "model_type": "mistral"}, "vision_config": {"hidden_size": 1024}}
    specs = [(("language_model." + n) if not n.startswith("lm_head") else "language_model." + n, s, d)
             for n, s, d in dense_llama(text)]
    vision = [("vision_tower.transformer.layers.0.attention.q_proj.weight", (1024, 1024), "BF16"),
              ("multi_modal_projector.linear_1.weight", (5120, 1024), "BF16")]
    view = to_gguf_view(checkpoint(cfg, specs + vision)).checkpoint
    devstral = to_gguf_view(checkpoint(text, dense_llama(text))).checkpoint
    assert {t.name: (t.shape, t.dtype) for t in view.tensors} == {t.name: (t.shape, t.dtype) for t in devstral.tensors}
    assert view.metadata["general.architecture"] == "mistral3" and view.metadata["mistral3.block_count"] == 40
    assert any("mmproj" in w and "2 tensors" in w for w in view.warnings)


# ------------------------------------------------------------------------------------------------
# Llama 4 (MoE every interleave_moe_layer_step-th layer, stacked experts, vision tower to mmproj)
# ------------------------------------------------------------------------------------------------
def test_llama4_transposes_and_splits_stacked_experts() -> None:
    """Maverick-style text config, shrunk: 2 layers, interleave_moe_layer_step 2 (layer 0 dense with
    intermediate_size_mlp 512, layer 1 MoE with 4 experts of intermediate_size 128 plus a shared expert).
    experts.gate_up_proj [E, h, 2 ff] = [4, 256, 256] -> transposed [4, 256, 256] -> split into gate and up
    [4, 128, 256] each -> ne (256, 128, 4); down_proj [E, ff, h] = [4, 128, 256] -> [4, 256, 128] -> ne (128, 256, 4)."""
    h, v, ff, ff_mlp, e = 256, 1024, 128, 512, 4
    text = {"model_type": "llama4_text", "hidden_size": h, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 64, "intermediate_size": ff, "intermediate_size_mlp": ff_mlp,
            "num_local_experts": e, "num_experts_per_tok": 1, "interleave_moe_layer_step": 2, "vocab_size": v,
            "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "max_position_embeddings": 1048576}
    cfg = {"architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4", "text_config": text,
           "vision_config": {"hidden_size": 64}}
    p = "language_model.model."
    specs: list[Spec] = [(p + "embed_tokens.weight", (v, h), "BF16"), (p + "norm.weight", (h,), "BF16"),
                         ("language_model.lm_head.weight", (v, h), "BF16"),
                         ("vision_model.patch_embedding.linear.weight", (64, 588), "BF16"),
                         ("multi_modal_projector.linear_1.weight", (h, 64), "BF16")]
    for i in range(2):
        q = f"{p}layers.{i}."
        specs += [(q + "input_layernorm.weight", (h,), "BF16"), (q + "post_attention_layernorm.weight", (h,), "BF16"),
                  (q + "self_attn.q_proj.weight", (256, h), "BF16"), (q + "self_attn.k_proj.weight", (128, h), "BF16"),
                  (q + "self_attn.v_proj.weight", (128, h), "BF16"), (q + "self_attn.o_proj.weight", (h, 256), "BF16")]
        if i == 0:
            specs += [(q + "feed_forward.gate_proj.weight", (ff_mlp, h), "BF16"),
                      (q + "feed_forward.up_proj.weight", (ff_mlp, h), "BF16"),
                      (q + "feed_forward.down_proj.weight", (h, ff_mlp), "BF16")]
        else:
            specs += [(q + "feed_forward.router.weight", (e, h), "BF16"),
                      (q + "feed_forward.experts.gate_up_proj", (e, h, 2 * ff), "BF16"),
                      (q + "feed_forward.experts.down_proj", (e, ff, h), "BF16"),
                      (q + "feed_forward.shared_expert.gate_proj.weight", (ff, h), "BF16"),
                      (q + "feed_forward.shared_expert.up_proj.weight", (ff, h), "BF16"),
                      (q + "feed_forward.shared_expert.down_proj.weight", (h, ff), "BF16")]
    view = to_gguf_view(checkpoint(cfg, specs)).checkpoint
    t = {x.name: (x.shape, x.dtype, x.nbytes) for x in view.tensors}
    assert t["blk.1.ffn_gate_exps.weight"] == ((256, 128, 4), "BF16", 256 * 128 * 4 * 2)
    assert t["blk.1.ffn_up_exps.weight"] == ((256, 128, 4), "BF16", 262_144)
    assert t["blk.1.ffn_down_exps.weight"] == ((128, 256, 4), "BF16", 262_144)
    assert t["blk.1.ffn_gate_inp.weight"] == ((256, 4), "F32", 256 * 4 * 4)
    assert t["blk.0.ffn_gate.weight"][0] == (256, 512) and t["blk.1.ffn_down_shexp.weight"][0] == (128, 256)
    assert len(t) == 3 + 2 * 6 + 3 + (1 + 3 + 3)  # ends; attention + norms per layer; dense FFN; router, exps, shexp
    md = view.metadata
    assert md["llama4.feed_forward_length"] == 512 and md["llama4.expert_feed_forward_length"] == 128
    assert md["llama4.interleave_moe_layer_step"] == 2 and md["llama4.expert_count"] == 4


# ------------------------------------------------------------------------------------------------
# Granite 4 hybrid (GraniteMoeHybridForCausalLM): Mamba2 layers + attention layers, MoE with a shared expert
# ------------------------------------------------------------------------------------------------
def test_granite_hybrid_reshapes_the_mamba2_tensors() -> None:
    """Granite-4.0-H-style, shrunk: hidden 256, layers [mamba, mamba, attention, mamba], mamba_n_heads 8 of
    mamba_d_head 64 (d_inner = 2 × 256 = 512), 1 group, d_state 128, conv 4; 4 experts of 128, shared 256.
    in_proj rows 2 d_inner + 2 n_group d_state + n_heads = 1024 + 256 + 8 = 1288; conv1d [d_inner + 2 n_group
    d_state, 1, 4] = [768, 1, 4] -> ne (4, 768); A_log, D [8] -> [8, 1] -> ne (1, 8); norm [512] -> [1, 512] ->
    ne (512, 1); input_linear [4, 256, 256] -> gate and up [4, 128, 256] each -> ne (256, 128, 4)."""
    h, v = 256, 1024
    cfg = {"architectures": ["GraniteMoeHybridForCausalLM"], "model_type": "granitemoehybrid", "hidden_size": h,
           "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 1,
           "layer_types": ["mamba", "mamba", "attention", "mamba"], "mamba_n_heads": 8, "mamba_d_head": 64,
           "mamba_expand": 2, "mamba_n_groups": 1, "mamba_d_state": 128, "mamba_d_conv": 4,
           "num_local_experts": 4, "num_experts_per_tok": 2, "intermediate_size": 128,
           "shared_intermediate_size": 256, "vocab_size": v, "tie_word_embeddings": True,
           "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "position_embedding_type": "nope"}
    specs: list[Spec] = [("model.embed_tokens.weight", (v, h), "BF16"), ("model.norm.weight", (h,), "BF16")]
    for i, kind in enumerate(cfg["layer_types"]):
        p = f"model.layers.{i}."
        specs += [(p + "input_layernorm.weight", (h,), "BF16"), (p + "post_attention_layernorm.weight", (h,), "BF16"),
                  (p + "block_sparse_moe.router.layer.weight", (4, h), "BF16"),
                  (p + "block_sparse_moe.input_linear.weight", (4, 256, h), "BF16"),
                  (p + "block_sparse_moe.output_linear.weight", (4, h, 128), "BF16"),
                  (p + "shared_mlp.input_linear.weight", (512, h), "BF16"),
                  (p + "shared_mlp.output_linear.weight", (h, 256), "BF16")]
        if kind == "mamba":
            m = p + "mamba."
            specs += [(m + "in_proj.weight", (1288, h), "BF16"), (m + "conv1d.weight", (768, 1, 4), "BF16"),
                      (m + "conv1d.bias", (768,), "BF16"), (m + "A_log", (8,), "F32"), (m + "D", (8,), "F32"),
                      (m + "dt_bias", (8,), "F32"), (m + "norm.weight", (512,), "BF16"),
                      (m + "out_proj.weight", (h, 512), "BF16")]
        else:
            a = p + "self_attn."
            specs += [(a + "q_proj.weight", (h, h), "BF16"), (a + "k_proj.weight", (64, h), "BF16"),
                      (a + "v_proj.weight", (64, h), "BF16"), (a + "o_proj.weight", (h, h), "BF16")]
    view = to_gguf_view(checkpoint(cfg, specs)).checkpoint
    t = {x.name: (x.shape, x.dtype) for x in view.tensors}
    assert t["blk.0.ssm_in.weight"] == ((256, 1288), "BF16") and t["blk.0.ssm_conv1d.weight"] == ((4, 768), "F32")
    assert t["blk.0.ssm_a"] == ((1, 8), "F32") and t["blk.0.ssm_d"] == ((1, 8), "F32")
    assert t["blk.3.ssm_dt.bias"] == ((8,), "F32") and t["blk.1.ssm_norm.weight"] == ((512, 1), "F32")
    assert t["blk.1.ssm_conv1d.bias"] == ((768,), "F32") and t["blk.0.ssm_out.weight"] == ((512, 256), "BF16")
    assert t["blk.2.attn_k.weight"] == ((256, 64), "BF16") and "blk.2.ssm_in.weight" not in t
    assert t["blk.2.ffn_gate_exps.weight"] == ((256, 128, 4), "BF16") and t["blk.2.ffn_up_shexp.weight"] == (
        (256, 256), "BF16")
    assert t["blk.3.ffn_down_exps.weight"] == ((128, 256, 4), "BF16") and t["blk.3.ffn_down_shexp.weight"] == (
        (256, 256), "BF16")
    assert "output.weight" not in t  # tied
    md = view.metadata
    assert md["granitehybrid.attention.head_count_kv"] == [0, 0, 1, 0] and md["granitehybrid.ssm.inner_size"] == 512


# ------------------------------------------------------------------------------------------------
# Gemma 3n (Gemma3nForConditionalGeneration): altup / laurel / per-layer embeddings
# ------------------------------------------------------------------------------------------------
def test_gemma3n_pads_embeddings_and_stacks_altup() -> None:
    """Gemma-3n-E2B-style text config, shrunk to 2 layers: hidden 256, per-layer input 32, vocab 1,040 of which the
    checkpoint's embed_tokens_per_layer holds 1,024 rows (vocab_size_per_layer_input): padded to 1,040 -> ne
    (2 × 32, 1040); altup_projections.{0,1,2} [256, 256] stacked -> ne (256, 256, 3); the *_scale vector gets
    ".weight"; the audio and vision towers go to the mmproj file."""
    h, v, vp, pl = 256, 1040, 1024, 32
    text = {"model_type": "gemma3n_text", "hidden_size": h, "num_hidden_layers": 2, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 128, "intermediate_size": [512, 512], "vocab_size": v,
            "vocab_size_per_layer_input": vp, "hidden_size_per_layer_input": pl, "altup_num_inputs": 4,
            "altup_active_idx": 0, "num_kv_shared_layers": 0, "laurel_rank": 64, "sliding_window": 512,
            "activation_sparsity_pattern": [0.95, 0.0], "layer_types": ["sliding_attention", "full_attention"],
            "rms_norm_eps": 1e-6, "max_position_embeddings": 32768, "rope_theta": 1000000.0}
    cfg = {"architectures": ["Gemma3nForConditionalGeneration"], "model_type": "gemma3n", "text_config": text,
           "vision_config": {"hidden_size": 64}, "audio_config": {"hidden_size": 64}}
    p = "model.language_model."
    specs: list[Spec] = [(p + "embed_tokens.weight", (v, h), "BF16"),
                         (p + "embed_tokens_per_layer.weight", (vp, 2 * pl), "BF16"),
                         (p + "per_layer_model_projection.weight", (2 * pl, h), "BF16"),
                         (p + "per_layer_projection_norm.weight", (pl,), "BF16"), (p + "norm.weight", (h,), "BF16"),
                         ("model.vision_tower.timm_model.stem.conv.weight", (64, 3, 4, 4), "BF16"),
                         ("model.audio_tower.conformer.0.attention.attn.q_proj.weight", (64, 64), "BF16"),
                         ("model.embed_vision.embedding_projection.weight", (h, 64), "BF16")]
    specs += [(p + f"{w}.{i}.weight", (h, h), "BF16") for w in ("altup_projections", "altup_unembed_projections")
              for i in range(3)]
    for i in range(2):
        q = f"{p}layers.{i}."
        specs += [(q + "self_attn.q_proj.weight", (256, h), "BF16"), (q + "self_attn.k_proj.weight", (128, h), "BF16"),
                  (q + "self_attn.v_proj.weight", (128, h), "BF16"), (q + "self_attn.o_proj.weight", (h, 256), "BF16"),
                  (q + "mlp.gate_proj.weight", (512, h), "BF16"), (q + "mlp.up_proj.weight", (512, h), "BF16"),
                  (q + "mlp.down_proj.weight", (h, 512), "BF16"), (q + "input_layernorm.weight", (h,), "BF16"),
                  (q + "altup.correct_output_scale", (h,), "BF16"), (q + "altup.correction_coefs.weight", (4, 4), "BF16"),
                  (q + "altup.prediction_coefs.weight", (16, 4), "BF16"), (q + "altup.modality_router.weight", (4, h), "BF16"),
                  (q + "laurel.linear_left.weight", (64, h), "BF16"), (q + "laurel.linear_right.weight", (h, 64), "BF16"),
                  (q + "per_layer_input_gate.weight", (pl, h), "BF16"), (q + "per_layer_projection.weight", (h, pl), "BF16")]
    view = to_gguf_view(checkpoint(cfg, specs)).checkpoint
    t = {x.name: (x.shape, x.dtype, x.nbytes) for x in view.tensors}
    assert t["per_layer_token_embd.weight"] == ((64, 1040), "BF16", 64 * 1040 * 2)  # padded from 1,024 rows
    assert t["token_embd.weight"] == ((256, 1040), "BF16", 256 * 1040 * 2)  # already vocab_size rows
    assert t["altup_proj.weight"] == ((256, 256, 3), "BF16", 256 * 256 * 3 * 2)
    assert t["altup_unembd_proj.weight"][0] == (256, 256, 3)
    assert t["blk.1.altup_correct_scale.weight"] == ((256,), "F32", 1024)
    assert t["blk.0.laurel_l.weight"][0] == (256, 64) and t["blk.0.inp_gate.weight"][0] == (256, 32)
    assert not any(n.startswith(("v.", "a.")) or "tower" in n or "embed_vision" in n for n in t)
    md = view.metadata
    assert md["gemma3n.embedding_length_per_layer_input"] == 32 and md["gemma3n.altup.num_inputs"] == 4
    assert md["gemma3n.activation_sparsity_scale"][1] == float("-inf")
    assert abs(md["gemma3n.activation_sparsity_scale"][0] - 1.6448536) < 1e-6  # Φ⁻¹(0.95)
