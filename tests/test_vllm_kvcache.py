"""vLLM's paged KV cache and SGLang's token pool, each number derived by hand from the model's shapes and the
formulas read in their sources (vllm/v1/kv_cache_interface.py, vllm/v1/core/kv_cache_utils.py,
vllm/v1/worker/gpu_worker.py; sglang model_runner.py profile_max_num_token), and the refusals they raise."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector import api
from inspector.errors import CheckFailed, UsageError
from inspector.report import render
from tests.test_vllm_sharding import model

GIB = 1 << 30
MIB = 1 << 20


def kv_facts(result):  # type: ignore[no-untyped-def]
    return result.memory.as_dict()["kv_cache"]


def test_gqa_pages_and_blocks_from_kv_cache_memory(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 2)
    result = api.inspect(src, runtime="vllm", vllm_tp=2, kv_cache_memory="1GiB")
    page = 16 * (8 // 2) * (128 + 128) * 2  # block x KV heads per rank x (K + V head size) x bf16 = 32,768
    blocks = GIB // page // 2  # get_num_blocks: available // page // layers = 16,384
    facts = kv_facts(result)
    assert (facts["page_bytes"], facts["num_gpu_blocks"]) == ([32_768], 16_384) and blocks == 16_384
    assert facts["tokens"] == 16_384 * 16 == 262_144
    assert facts["max_concurrency"] == 16_384 / (32_768 // 16) == 8.0  # blocks / cdiv(max_model_len, 16)
    assert result.memory.table.rows["cuda:1"]["kv_cache"] == 2 * page * blocks == GIB


def test_fp8_kv_cache_halves_the_page(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 2)
    result = api.inspect(src, runtime="vllm", vllm_tp=2, kv_cache_memory="1GiB", kv_cache_dtype="fp8")
    assert kv_facts(result)["page_bytes"] == [16 * 4 * 256 * 1]
    assert kv_facts(result)["max_concurrency"] == 16.0


def test_mla_latent_is_not_split_by_tp(tmp_path: Path) -> None:
    src = model(tmp_path, "deepseek-v3", 4)
    one = api.inspect(src, runtime="vllm", vllm_tp=1, kv_cache_memory="1GiB")
    eight = api.inspect(src, runtime="vllm", vllm_tp=8, kv_cache_memory="1GiB")
    page = 64 * (512 + 64) * 2  # FlashMLA blocks of 64 tokens x (kv_lora_rank + qk_rope_head_dim) x bf16 = 73,728
    blocks = GIB // page // 4  # 4 MLA layers: 14,563 // 4 = 3,640
    for result in (one, eight):
        assert kv_facts(result)["page_bytes"] == [73_728] and kv_facts(result)["num_gpu_blocks"] == blocks == 3_640
    # max_model_len: yarn, original_max_position_embeddings 4096 x factor 40 = 163,840 = 2,560 blocks of 64
    assert kv_facts(one)["max_concurrency"] == round(3_640 / 2_560, 2) == 1.42


def test_sliding_window_and_full_layers_in_separate_groups(tmp_path: Path) -> None:
    src = model(tmp_path, "gpt-oss-20b", 4)  # layer types: sliding, full, sliding, full (window 128)
    result = api.inspect(src, runtime="vllm", kv_cache_memory="1GiB")
    page = 16 * 8 * (64 + 64) * 2  # 8 KV heads of 64: 32,768 for both kinds
    facts = kv_facts(result)
    assert facts["groups"] == 2 and facts["tensors_per_rank"] == [2]  # (sliding 0, 2), (full 1, 3)
    blocks = GIB // page // 2
    assert facts["num_gpu_blocks"] == blocks == 16_384
    assert facts["tokens"] == blocks // 2 * 16 == 131_072  # num_blocks // groups x block size
    # one request of 131,072 tokens: full cdiv(131072, 16) = 8,192 pages; sliding: min(128 - 1 + 2048, 131072) =
    # 2,175 tokens, cdiv(2175, 16) + 1 = 137 pages (max_num_batched_tokens 2048 below 70 GiB)
    assert facts["request_bytes"] == [2 * page * (8_192 + 137)]
    assert facts["max_concurrency"] == round(16_384 / 8_329, 2) == 1.97


def test_blocks_from_a_budget_under_gpu_memory_utilization(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 2)
    budgets = {"cuda:0": 24 * GIB, "cuda:1": 24 * GIB}
    result = api.inspect(src, runtime="vllm", vllm_tp=2, budgets=budgets)
    weights = 2_532_376_576  # test_dense_gqa_tp2
    t, h = 2048, 5120  # max_num_batched_tokens below 70 GiB; hidden
    activation = (4 * t * h * 2  # hidden states: 83,886,080
                  + max(t * (2 * 20 + 2 * 4) * 128 * 2, t * 3 * 13824 * 2)  # attention vs MLP: the MLP, 169,869,312
                  + 2 * 256 * 152064 * 4)  # last stage: logits and probabilities of max_num_seqs 256 rows
    non_torch = 256 * MIB + 512 * MIB  # two ranks
    available = 25_769_803_776 * 9 // 10 - weights - activation - non_torch  # floor(24 GiB x 0.9) - ...
    assert (activation, available) == (565_182_464, 19_289_957_990)
    blocks = available // 32_768 // 2
    assert kv_facts(result)["num_gpu_blocks"] == blocks == 294_341
    row = result.memory.table.rows["cuda:0"]
    assert row["kv_cache"] == 2 * 32_768 * blocks
    assert row["activation"] == activation and row["non_torch"] == non_torch
    assert row["headroom"] + row["cuda_graphs"] == 24 * GIB - 25_769_803_776 * 9 // 10  # 1 - utilization
    assert result.memory.table.total("cuda:0") + row["free"] == 24 * GIB
    doc = json.loads(render(result, fmt="json"))
    assert doc["memory"]["devices"]["cuda:0"]["kv_cache"] == row["kv_cache"]
    assert doc["devices"]["cuda:1"]["kv_cache"] == row["kv_cache"]


# one 32,768-token request: 2 layers x 65,536-byte pages x 2,048 blocks = 256 MiB > 64 MiB; with 64 MiB the longest
# is 512 blocks x 16 = 8,192 tokens (_estimate_max_model_len_from_groups)
ONE_SEQUENCE = (r"vLLM would refuse to start: one 32,768-token sequence needs 256 MiB of KV per rank, 64 MiB left on "
                r"cuda:0; use --max-model-len 8192 or less")
REFUSALS = [
    pytest.param("qwen2.5-32b", 2, {"kv_cache_memory": "64MiB"}, CheckFailed, ONE_SEQUENCE,
                 id="one-sequence-does-not-fit"),
    pytest.param("qwen2.5-32b", 2, {"budgets": {"cuda:0": 4 * GIB}}, CheckFailed,
                 "vLLM would refuse to start: no memory left for the KV cache on cuda:0", id="weights-leave-nothing"),
    pytest.param("qwen2.5-32b", 1, {"max_model_len": "64K"}, UsageError,
                 r"User-specified max_model_len \(65536\) is greater than the derived max_model_len "
                 r"\(max_position_embeddings=32768", id="max-model-len-above-the-model-limit"),
    pytest.param("deepseek-v3-fp8", 4, {"quantization": "awq"}, UsageError,
                 r"Quantization method specified in the model config \(fp8\) does not match the quantization "
                 r"method specified in the `quantization` argument \(awq\)",
                 id="quantization-contradicts-the-checkpoint"),
]


@pytest.mark.parametrize("arch, layers, options, error, message", REFUSALS)
def test_vllm_refuses_as_vllm_does(tmp_path: Path, arch: str, layers: int, options: dict, error: type,
                                   message: str) -> None:
    src = model(tmp_path, arch, layers)
    with pytest.raises(error, match=message):
        api.inspect(src, runtime="vllm", **options)


# -- SGLang ------------------------------------------------------------------------------------------------------
def test_sglang_token_pool(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 2)
    budgets = {"cuda:0": 24 * GIB, "cuda:1": 24 * GIB}
    result = api.inspect(src, runtime="sglang", sglang_tp=2, mem_fraction_static=0.8, budgets=budgets)
    pre = 24 * GIB - 1 * GIB  # free memory before loading: CUDA context + NCCL estimate (512 + 512 MiB)
    reserved = int(pre * (1 - 0.8))  # 4,939,212,390
    rest = pre - 2_532_376_576 - reserved  # weights per rank as test_dense_gqa_tp2
    cell = 4 * (128 + 128) * 2 * 2  # KV heads per rank x (head_dim + v_head_dim) x layers x bf16 = 4,096
    tokens = rest // cell
    facts = result.memory.as_dict()["kv_cache"]
    assert (facts["cell_size"], facts["max_total_num_tokens"]) == ([4_096], tokens) and tokens == 4_205_193
    assert result.memory.table.rows["cuda:0"]["kv_cache"] == (tokens + 1) * cell  # + the padded page
    assert facts["full_length_requests"] == tokens // 32_768 == 128


def test_sglang_default_mem_fraction(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 1)
    # 24 GiB = 24,576 MiB < 35 GiB: chunked_prefill_size 2048, cuda_graph_max_bs 24 (tp < 4);
    # reserved = 512 + 2048 x 1.5 + 24 x 2 + 2 x 1 / 8 x 1024 = 3,888 MiB; round((24576 - 3888) / 24576, 3)
    result = api.inspect(src, runtime="sglang", sglang_tp=2, budgets={"cuda:0": 24 * GIB, "cuda:1": 24 * GIB})
    assert result.memory.as_dict()["runtime_settings"]["mem_fraction_static"] == round(20688 / 24576, 3) == 0.842
    # 80 GiB H100, TP 8: 8192 x 1.5 + 512 x 2 + 8 / 8 x 1024 + 512 = 14,848 MiB, (81920 - 14848) / 81920 = 0.819
    eight = {f"cuda:{i}": 80 * GIB for i in range(8)}
    result = api.inspect(src, runtime="sglang", sglang_tp=8, budgets=eight)
    assert result.memory.as_dict()["runtime_settings"]["mem_fraction_static"] == 0.819


def test_recurrent_layers_are_refused() -> None:
    from inspector.errors import FormatError
    from inspector.memory.serving import serving_model
    from inspector.model import Checkpoint

    from fixtures.generate import REAL_DATA

    real = REAL_DATA / "bryce-hoehn__Qwen3.5-18B-REAP-A3B-Coding" / "config.json"
    if not real.is_file():
        pytest.skip("../shared is absent")
    config = json.loads(real.read_text())  # Qwen3.5 MoE: linear-attention (Gated DeltaNet) and full layers
    with pytest.raises(FormatError, match="linear_attention layers: their recurrent state is not modelled"):
        serving_model(Checkpoint("qwen3.5", "safetensors", None, (), (), config=config))


def test_max_model_len_minus_one_fits_the_length_to_memory(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 64)
    result = api.inspect(src, runtime="vllm", max_model_len="-1", kv_cache_memory="1GiB")
    # one request needs 64 layers x 65,536-byte pages x cdiv(L, 16) blocks <= 1 GiB: at most 256 blocks, L = 4,096
    assert 64 * 65_536 * 256 == GIB
    settings, facts = result.memory.as_dict()["runtime_settings"], kv_facts(result)
    assert settings["max_model_len"] == 4_096 and facts["num_gpu_blocks"] == 256 and facts["max_concurrency"] == 1.0
    assert result.notes[-1] == ("Auto-fit max_model_len: reduced from 32768 to 4096 to fit in available GPU memory "
                                "(--max-model-len -1)")
    assert result.flags_line.endswith("--max-model-len -1 --kv-cache-memory-bytes 1073741824")


def test_pipeline_stages_keep_the_smallest_block_count(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 5)
    result = api.inspect(src, runtime="vllm", vllm_pp=2, kv_cache_memory="1GiB")
    page = 16 * 8 * 256 * 2  # TP 1: 8 KV heads
    # stages of 3 and 2 layers: 1 GiB // page // 3 = 5,461 blocks and // 2 = 8,192; every worker keeps 5,461
    assert kv_facts(result)["num_gpu_blocks"] == GIB // page // 3 == 5_461
    rows = result.memory.table.rows
    assert (rows["cuda:0"]["kv_cache"], rows["cuda:1"]["kv_cache"]) == (3 * page * 5_461, 2 * page * 5_461)


def test_cpu_offload_moves_whole_tensors_in_layer_order(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 2)
    result = api.inspect(src, runtime="vllm", cpu_offload_gb=0.5)
    h, i = 5120, 27648
    # layer 0 in order while under 0.5 GiB: norm, q (+ bias), k (+ bias), v (+ bias), o, norm, gate = 408,979,456
    # bytes, then up_proj brings it to 692,094,976 >= 536,870,912: down_proj and layer 1 stay on the GPU
    offloaded = (h + (h * h + h) + 2 * (1024 * h + 1024) + h * h + h + i * h + i * h) * 2
    assert offloaded == 692_094_976
    cpu = next(g for g in result.by_device if g.key == "cpu")
    assert cpu.bytes == offloaded
