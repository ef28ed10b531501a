"""vLLM's per-rank weights, each number derived by hand from the tensor shapes (arithmetic written out), never
from the code under test: a dense GQA model (Qwen2.5-32B), an MoE under TP and under EP (Mixtral-8x7B), an MLA
model (DeepSeek-V3, BF16) and an FP8 block-scaled checkpoint (DeepSeek-V3 as published)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.arch import load_arch
from fixtures.generate import write_safetensors
from inspector import api
from inspector.errors import UsageError

SERVING = Path(__file__).resolve().parent.parent / "fixtures" / "archs" / "serving"
BF16 = 2


def model(tmp_path: Path, arch: str, n_layers: int) -> str:
    desc = load_arch(SERVING / f"{arch}.yaml") if (SERVING / f"{arch}.yaml").exists() else load_arch(arch)
    write_safetensors(tmp_path / arch, desc, n_layers=n_layers)
    return str(tmp_path / arch)


def per_device(result) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {g.key: g.bytes for g in result.by_device}


def per_role(result, device: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    group = next(g for g in result.by_device if g.key == device)
    return {r.key: r.bytes for r in group.roles}


# -- dense GQA: Qwen2.5-32B (hidden 5120, 40 heads / 8 KV heads of 128, intermediate 27648, vocab 152064) ---------
H, I, V = 5120, 27648, 152064


def qwen_layer_per_rank(tp: int) -> int:
    q = (40 // tp) * 128  # query rows per rank
    kv = max(1, 8 // tp) * 128  # KV rows per rank (KV heads replicated below one per rank)
    return (q * H + q  # q_proj weight and bias (column-parallel: both split)
            + 2 * (kv * H + kv)  # k_proj, v_proj
            + H * q  # o_proj (row-parallel: input dim split)
            + 2 * (I // tp) * H  # gate_proj, up_proj
            + H * (I // tp)  # down_proj
            + 2 * H) * BF16  # input_layernorm, post_attention_layernorm (replicated)


def test_dense_gqa_tp2(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 2)
    result = api.inspect(src, runtime="vllm", vllm_tp=2)
    vocab_rows = 152064 // 2  # 152064 is already a multiple of 64
    embed = vocab_rows * H * BF16
    expected = embed + 2 * qwen_layer_per_rank(2) + H * BF16 + embed  # embed, 2 layers, final norm, lm_head
    assert per_device(result) == {"cuda:0": expected, "cuda:1": expected}
    # 2 x 76032 x 5120 x 2 + 2 x (13,109,760 + 5,243,904 + 13,107,200 + 212,336,640 + 10,240) x 2 + 5120 x 2
    assert expected == 1_557_135_360 + 2 * 487_615_488 + 10_240 == 2_532_376_576
    roles = per_role(result, "cuda:0")
    assert roles["attention"] == 2 * (2560 * H + 2560 + 2 * (512 * H + 512) + H * 2560) * BF16 == 125_843_456
    assert roles["dense_ffn"] == 2 * 3 * 13824 * H * BF16 == 849_346_560
    assert result.bytes == (2 * V * H * BF16 + 2 * qwen_layer_per_rank(1) + H * BF16)  # file totals stay the file's


def test_dense_gqa_tp8_keeps_one_kv_head_per_rank(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 1)
    result = api.inspect(src, runtime="vllm", vllm_tp=8)
    k_rows = 128  # 8 KV heads / 8 ranks = 1 head of 128 rows
    ks = [t for t in result.checkpoint.tensors if t.name.endswith("k_proj.weight") and t.device == "cuda:7"]
    assert [t.shape for t in ks] == [(k_rows, H)]
    assert per_device(result)["cuda:3"] == 152064 // 8 * H * BF16 * 2 + qwen_layer_per_rank(8) + H * BF16


def test_tp_must_divide_heads(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 1)
    with pytest.raises(UsageError, match=r"Total number of attention heads \(40\) must be divisible by tensor "
                                         r"parallel size \(16\)"):
        api.inspect(src, runtime="vllm", vllm_tp=16)
    with pytest.raises(UsageError, match="8 KV heads cannot be split over tensor parallel size 5"):
        api.inspect(src, runtime="vllm", vllm_tp=5)


def test_pipeline_stages_follow_get_pp_indices(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 5)
    result = api.inspect(src, runtime="vllm", vllm_pp=2)
    # get_pp_indices(5, *, 2): 5 // 2 = 2 per stage, the remainder to the second-to-last stage: [3, 2]
    layer = qwen_layer_per_rank(1)
    embed = V * H * BF16
    assert per_device(result) == {"cuda:0": embed + 3 * layer, "cuda:1": 2 * layer + H * BF16 + embed}
    stage0 = {t.layer for t in result.checkpoint.tensors if t.device == "cuda:0" and t.layer is not None}
    assert stage0 == {0, 1, 2}


def test_vocab_padded_to_64_then_split(tmp_path: Path) -> None:
    desc = load_arch(SERVING / "qwen2.5-32b.yaml")
    config = {**desc.config, "vocab_size": 151665}  # the real Qwen2.5-14B fine-tune's vocabulary
    from dataclasses import replace

    write_safetensors(tmp_path / "m", replace(desc, config=config), n_layers=1)
    result = api.inspect(str(tmp_path / "m"), runtime="vllm", vllm_tp=4)
    # pad_vocab_size(151665, 64) = 151680 (2370 x 64); 151680 / 4 = 37920 rows per rank
    embeds = [t for t in result.checkpoint.tensors if t.name == "model.embed_tokens.weight"]
    assert [t.shape for t in embeds] == [(37920, H)] * 4
    assert embeds[0].nbytes == 37920 * H * BF16


# -- MoE: Mixtral-8x7B (8 experts of intermediate 14336, hidden 4096, 32 heads / 8 KV heads) ----------------------
def test_moe_tp2_splits_every_expert(tmp_path: Path) -> None:
    src = model(tmp_path, "mixtral-8x7b", 2)
    result = api.inspect(src, runtime="vllm", vllm_tp=2)
    expert_per_rank = 3 * (14336 // 2) * 4096 * BF16  # w1, w3 rows halved; w2 columns halved
    roles = per_role(result, "cuda:1")
    assert roles["routed_experts"] == 2 * 8 * expert_per_rank == 2_818_572_288
    # vLLM's FusedMoE parameters per layer and rank: w13 [experts, gate + up rows per rank, hidden], w2
    fused = [(t.name, t.shape) for t in result.checkpoint.tensors if t.device == "cuda:1" and t.layer == 1
             and t.role == "routed_experts"]
    assert sorted(fused) == [("model.layers.1.block_sparse_moe.experts.w13_weight", (8, 2 * 7168, 4096)),
                             ("model.layers.1.block_sparse_moe.experts.w2_weight", (8, 4096, 7168))]
    assert roles["router"] == 2 * 8 * 4096 * BF16  # replicated


def test_moe_ep2_gives_each_rank_whole_experts(tmp_path: Path) -> None:
    src = model(tmp_path, "mixtral-8x7b", 2)
    result = api.inspect(src, runtime="vllm", vllm_tp=2, enable_expert_parallel=True)
    whole = 3 * 14336 * 4096 * BF16
    for device in ("cuda:0", "cuda:1"):  # linear placement: experts 0-3 and 4-7, 8 / 2 = 4 whole experts each
        fused = [(t.name, t.shape) for t in result.checkpoint.tensors if t.device == device and t.layer == 0
                 and t.role == "routed_experts"]
        assert sorted(fused) == [("model.layers.0.block_sparse_moe.experts.w13_weight", (4, 2 * 14336, 4096)),
                                 ("model.layers.0.block_sparse_moe.experts.w2_weight", (4, 4096, 14336))]
        assert per_role(result, device)["routed_experts"] == 2 * 4 * whole
    # TP and EP hold the same expert bytes per rank here; attention is split the same way either way
    tp = api.inspect(src, runtime="vllm", vllm_tp=2)
    assert per_device(tp) == per_device(result)


def test_expert_parallel_uneven_split(tmp_path: Path) -> None:
    src = model(tmp_path, "mixtral-8x7b", 1)
    result = api.inspect(src, runtime="vllm", vllm_tp=1, vllm_dp=3, enable_expert_parallel=True)
    # EP = TP x DP = 3; determine_expert_map: 8 // 3 = 2 each, the first 8 % 3 = 2 ranks one more: 3, 3, 2
    counts = [t.shape[0] for r in range(3) for t in result.checkpoint.tensors
              if t.device == f"cuda:{r}" and t.name.endswith("experts.w2_weight")]
    assert counts == [3, 3, 2]
    from inspector.memory.sharding import expert_owner

    assert [expert_owner(e, 8, 3)[0] for e in range(8)] == [0, 0, 0, 1, 1, 1, 2, 2]  # contiguous blocks


# -- MLA: DeepSeek-V3 (BF16), 4 layers: 3 dense + 1 MoE; the MTP layer (4) is not loaded ---------------------------
def test_mla_tp2(tmp_path: Path) -> None:
    src = model(tmp_path, "deepseek-v3", 4)
    result = api.inspect(src, runtime="vllm", vllm_tp=2)
    h, heads = 7168, 128
    attention = (1536 * h  # q_a_proj: replicated
                 + (heads // 2) * 192 * 1536  # q_b_proj: column, 64 heads of 128 + 64
                 + 576 * h  # kv_a_proj_with_mqa: replicated
                 + (heads // 2) * 256 * 512  # kv_b_proj: column, 64 heads of (128 + 128)
                 + h * (heads // 2) * 128) * BF16  # o_proj: row
    roles = per_role(result, "cuda:0")
    # (11,010,048 + 18,874,368 + 4,128,768 + 8,388,608 + 58,720,256) x 2 per layer; the layernorms are role norm
    assert roles["attention"] == 4 * attention == 4 * 202_244_096
    assert roles["dense_ffn"] == 3 * 3 * (18432 // 2) * h * BF16
    assert roles["routed_experts"] == 256 * 3 * (2048 // 2) * h * BF16
    assert roles["shared_experts"] == 3 * (2048 // 2) * h * BF16
    assert roles["router"] == 256 * h * BF16 + 256 * 4  # gate weight, and e_score_correction_bias kept float32
    assert "mtp" not in roles
    not_loaded = {t.name for t in result.checkpoint.tensors if t.device is None}
    assert not_loaded == {t.name for t in api.load(src).tensors if t.name.startswith("model.layers.4.")}  # MTP


# -- FP8 block-scaled: DeepSeek-V3 as published (128 x 128 blocks) ------------------------------------------------
def test_fp8_block_scales_follow_their_weights(tmp_path: Path) -> None:
    src = model(tmp_path, "deepseek-v3-fp8", 4)
    result = api.inspect(src, runtime="vllm", vllm_tp=8)
    shapes = {t.name: t.shape for t in result.checkpoint.tensors if t.device == "cuda:0"}
    # q_b_proj [24576, 1536] column: 3072 rows per rank, scales cdiv(3072, 128) = 24 x cdiv(1536, 128) = 12
    assert shapes["model.layers.0.self_attn.q_b_proj.weight"] == (3072, 1536)
    assert shapes["model.layers.0.self_attn.q_b_proj.weight_scale_inv"] == (24, 12)
    # o_proj [7168, 16384] row: 2048 columns per rank, scales 56 x 16
    assert shapes["model.layers.0.self_attn.o_proj.weight_scale_inv"] == (56, 16)
    # an expert's down_proj [7168, 2048] under TP 8: [7168, 256], scales 56 x cdiv(256, 128) = 2; vLLM's fused
    # w2_weight_scale_inv holds all 256 experts', w13 gate + up: 2 x cdiv(2048 / 8, 128) = 4 rows of 56
    assert shapes["model.layers.3.mlp.experts.w2_weight_scale_inv"] == (256, 56, 2)
    assert shapes["model.layers.3.mlp.experts.w13_weight_scale_inv"] == (256, 4, 56)
    assert shapes["model.layers.3.mlp.experts.w13_weight"] == (256, 512, 7168)
    roles = per_role(result, "cuda:0")
    expert = 2 * (256 * 7168 + 2 * 56 * 4) + (7168 * 256 + 56 * 2 * 4)  # gate, up (FP8 + scales), down
    assert roles["routed_experts"] == 256 * expert
    attention = (1536 * 7168 + 12 * 56 * 4  # q_a_proj FP8 + scales (replicated)
                 + 3072 * 1536 + 24 * 12 * 4  # q_b_proj
                 + 576 * 7168 + 5 * 56 * 4  # kv_a_proj_with_mqa (replicated; cdiv(576, 128) = 5 scale rows)
                 + 4096 * 512 + 32 * 4 * 4  # kv_b_proj [32768, 512] / 8
                 + 7168 * 2048 + 56 * 16 * 4)  # o_proj
    # + vLLM's bf16 copy of the dequantized kv_b_proj per layer (W_UK_T / W_UV): 512 x 16 heads x (128 + 128) x 2
    copy = 512 * (128 // 8) * (128 + 128) * BF16
    assert roles["attention"] == 4 * (attention + copy) == 4 * (36_643_680 + 4_194_304)


def test_fp8_blocks_refuse_a_split_inside_a_block(tmp_path: Path) -> None:
    src = model(tmp_path, "deepseek-v3-fp8", 4)
    # dense MLP under TP 32: 18432 / 32 = 576 rows per rank, not a multiple of block_n 128
    with pytest.raises(UsageError, match="Weight output_partition_size = 576 is not divisible by weight "
                                         "quantization block_n = 128"):
        api.inspect(src, runtime="vllm", vllm_tp=32)


def test_tied_embedding_is_copied_to_the_last_stage(tmp_path: Path) -> None:
    src = model(tmp_path, "llama-3.2-3b", 2)  # tie_word_embeddings: no lm_head tensor in the file
    one = api.inspect(src, runtime="vllm")
    two = api.inspect(src, runtime="vllm", vllm_pp=2)
    embed = 128256 * 3072 * BF16  # vocabulary 128,256 (a multiple of 64) x hidden 3072
    assert per_role(one, "cuda:0")["embedding"] == embed and "output" not in per_role(one, "cuda:0")
    # PP 2: the first stage embeds, the last holds its own copy as lm_head
    assert per_role(two, "cuda:0")["embedding"] == per_role(two, "cuda:1")["embedding"] == embed


def test_data_parallel_replicates_attention_and_splits_experts(tmp_path: Path) -> None:
    src = model(tmp_path, "mixtral-8x7b", 1)
    result = api.inspect(src, runtime="vllm", vllm_dp=2)
    for device in ("cuda:0", "cuda:1"):  # two engines of TP 1: attention whole on each
        roles = per_role(result, device)
        assert roles["attention"] == (4096 * 4096 * 2 + 1024 * 4096 * 2) * BF16
        # MoE layers are sharded across TP x DP = 2 ranks (flatten_tp_across_dp): every expert halved
        assert roles["routed_experts"] == 8 * 3 * 7168 * 4096 * BF16


@pytest.mark.parametrize("arch, layers, tp, ep, dp", [("mixtral-8x7b", 2, 2, True, 3), ("mixtral-8x7b", 2, 4, False, 2),
                                                      ("deepseek-v3-fp8", 4, 8, False, 1),
                                                      ("deepseek-v3-fp8", 4, 4, True, 1)])
def test_search_sums_equal_the_placed_rows(tmp_path: Path, arch: str, layers: int, tp: int, ep: bool, dp: int) -> None:
    """fit's search sizes candidates from per-rank sums without building rows: they must be the placement's."""
    from inspector.memory.serving import runtime_dtype
    from inspector.memory.shard_rows import rank_role_bytes
    from inspector.runtimes import get_runtime
    from inspector.runtimes.vllm.layout import mla_copy_bytes, resolve
    from inspector.memory.shard_rows import role_bytes

    src = model(tmp_path, arch, layers)
    checkpoint = api.load(src)
    runtime = get_runtime("vllm")
    options = runtime.options({"vllm_tp": tp, "enable_expert_parallel": ep, "vllm_dp": dp})
    s = resolve(checkpoint, options)
    sums = rank_role_bytes(checkpoint, s.dims(), s.parallel(),
                           lambda t, shape, n: runtime_dtype(t, shape, n, s.dtype, s.fp8_online))
    for device, extra in mla_copy_bytes(checkpoint, s).items():  # vLLM's bf16 copies of FP8 kv_b_proj
        sums[device]["attention"] += extra
    assert sums == role_bytes(runtime.place(checkpoint, options).checkpoint.tensors)
