"""The transformers runtime: accelerate's device map, max_memory parsing, bitsandbytes sizes, disk offload.

Every expected number is derived by hand below from the tensor shapes of the fixtures (Llama-3.2-3B: hidden 3,072,
24 heads / 8 KV heads of 128, intermediate 8,192, vocabulary 128,256, tied embeddings; bf16):
- embed_tokens 128,256 x 3,072 x 2 B = 788,004,864 (lm_head is tied: 0 B of its own)
- one decoder layer: q, o 3,072 x 3,072; k, v 1,024 x 3,072; gate, up, down 8,192 x 3,072; two norms of 3,072
  = 100,669,440 values x 2 B = 201,338,880
- model.norm 3,072 x 2 B = 6,144; model.rotary_emb: inv_freq and original_inv_freq, 64 float32 each = 512
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.generate import write_safetensors
from inspector import inspect, load
from inspector.cli import main
from inspector.errors import UsageError
from inspector.runtimes.transformers.options import convert_file_size_to_int, parse_max_memory
from tests._shared import REAL, needs_shared

EMBED, LAYER, NORM, ROTARY = 788_004_864, 201_338_880, 6_144, 512
DOWN = 8_192 * 3_072 * 2  # the largest module owning tensors in a layer (gate, up, down: 50,331,648 B)


@pytest.fixture(scope="module")
def llama4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Llama-3.2-3B cut to 4 decoder layers."""
    folder = tmp_path_factory.mktemp("llama4")
    write_safetensors(folder, "llama-3.2-3b", n_layers=4)
    return folder


def _inspect(folder: Path, **options: object):  # type: ignore[no-untyped-def]
    return inspect(str(folder), runtime="transformers", **options)


# --- accelerate's sizes -----------------------------------------------------------------------------------------
def test_size_strings_follow_accelerate() -> None:
    assert convert_file_size_to_int("20GiB") == 20 * 2**30 == 21_474_836_480
    assert convert_file_size_to_int("20GB") == 20_000_000_000
    assert convert_file_size_to_int("20Gb") == 2_500_000_000  # lowercase b: bits
    assert convert_file_size_to_int("10kb") == 1_250
    assert convert_file_size_to_int("1.5GB") == 1_500_000_000
    assert convert_file_size_to_int("512MiB") == 536_870_912
    for bad in ("20TB", "20G", "lots", "-1GB"):
        with pytest.raises(UsageError):
            convert_file_size_to_int(bad)


def test_max_memory_forms() -> None:
    assert parse_max_memory(("0=20GiB,1=20GiB,cpu=60GiB",)) == {0: 21_474_836_480, 1: 21_474_836_480,
                                                                "cpu": 64_424_509_440}
    assert parse_max_memory(("{0: '20GiB', 'cpu': '60GiB'}",)) == {0: 21_474_836_480, "cpu": 64_424_509_440}
    assert parse_max_memory(("cuda:1=2GB", "disk=1000")) == {1: 2_000_000_000, "disk": 1_000}
    with pytest.raises(UsageError):
        parse_max_memory(("{0: __import__('os').getcwd()}",))  # literal_eval refuses code
    with pytest.raises(UsageError):
        parse_max_memory(("{0: '20GiB', 'gpu7': '1GB'}",))
    with pytest.raises(UsageError):
        parse_max_memory(("0=20GiB,0=10GiB",))


# --- the device map -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sequential", "auto"])
def test_gpu_budget_forces_cpu_and_disk_offload(llama4: Path, kind: str) -> None:
    """max_memory={0: 1.2e9, 'cpu': 5e8}, by hand (accelerate infer_auto_device_map; one GPU, so "auto"'s balanced
    limits equal the user's):
    - `model` (1,593,367,040 B) does not fit GPU 0 -> split into embed_tokens, layers, norm, rotary_emb;
    - embed_tokens: reserve = the largest remaining layer (201,338,880); 788,004,864 <= 1.2e9 - 201,338,880 -> 0,
      with the tied lm_head;
    - layers.0: 788,004,864 + 201,338,880 = 989,343,744 <= 998,661,120 -> 0; layers.1 would make 1,190,682,624 ->
      GPU 0 is full; on the cpu (reserve 201,338,880 too): 201,338,880 <= 298,661,120 -> cpu; layers.2 would make
      402,677,760 -> disk, and everything after it."""
    result = _inspect(llama4, device_map=kind, max_memory=("{0: 1200000000, 'cpu': 500000000}",))
    plan = result.memory.plan
    assert plan.device_map == {"model.embed_tokens": 0, "lm_head": 0, "model.layers.0": 0, "model.layers.1": "cpu",
                               "model.layers.2": "disk", "model.layers.3": "disk", "model.norm": "disk",
                               "model.rotary_emb": "disk"}
    rows = result.memory.table.rows
    assert rows["cuda:0"]["weights"] == EMBED + LAYER == 989_343_744
    assert rows["cuda:0"]["buffers"] == ROTARY  # buffers of offloaded modules live on the main device
    assert rows["cuda:0"]["offload_staging"] == DOWN  # one offloaded module at a time
    assert rows["cpu"]["weights"] == LAYER
    assert rows["disk"]["weights"] == 2 * LAYER + NORM == 402_683_904
    assert result.memory.check({"cuda:0": EMBED + LAYER + ROTARY + DOWN}).fits


def test_balanced_buffer_differs_between_transformers_4_and_5(llama4: Path) -> None:
    """Two GPUs of 4e9 B, "auto" (= balanced): per GPU = total // 2 + a buffer, GPU 0 capped at that.
    transformers 5: buffer = int(1.25 x max(largest layer, largest leaf module)) = int(1.25 x 788,004,864)
      = 985,006,080; total 1,593,367,040 -> 796,683,520 + 985,006,080 = 1,781,689,600: the whole model fits GPU 0.
    transformers 4 (accelerate): buffer = int(1.25 x max(first decoder layer, mean of the final modules));
      sizes with dtype=bf16 count the rotary inv_freq (its only buffer there) at min(2, 4) B: 64 x 2 = 128, total
      1,593,366,656; final modules 39 (embed, 4 x 9, norm, rotary), mean 40,855,555 -> buffer 251,673,600;
      1,593,366,656 // 2 + 251,673,600 = 1,048,356,928. embed_tokens takes GPU 0 (788,004,864 <= 1,048,356,928
      - 201,338,880) and layers.0 no longer fits there: every layer goes to GPU 1."""
    five = _inspect(llama4, device_map="auto", max_memory=("0=4000000000,1=4000000000",))
    assert five.memory.plan.requested == {0: 1_781_689_600, 1: 4_000_000_000}
    assert five.memory.plan.device_map == {"": 0}
    four = _inspect(llama4, device_map="auto", max_memory=("0=4000000000,1=4000000000",), transformers_version="4",
                    torch_dtype="bfloat16")
    assert four.memory.plan.requested == {0: 1_048_356_928, 1: 4_000_000_000}
    assert four.memory.plan.device_map == {"model.embed_tokens": 0, "lm_head": 0, "model.layers": 1,
                                           "model.norm": 1, "model.rotary_emb": 1}


def test_no_cpu_key_offloads_to_disk_after_the_gpus(llama4: Path) -> None:
    result = _inspect(llama4, device_map="sequential", max_memory=("0=1100000000",))
    plan = result.memory.plan
    # reserve 201,338,880 on GPU 0: embed + layers.0 = 989,343,744 <= 898,661,120? no -> layers.0 and on: disk
    assert plan.device_map == {"model.embed_tokens": 0, "lm_head": 0, "model.layers": "disk", "model.norm": "disk",
                               "model.rotary_emb": "disk"}
    assert any("no 'cpu' entry" in n for n in result.notes)


def test_budgets_stand_for_measured_memory(llama4: Path) -> None:
    """Without max_memory, --budget gives what accelerate would measure, and transformers 5 keeps 90 % of the RAM
    and (balanced modes) 90 % of a single GPU: cuda:0 = 1.5 GiB -> 1,449,551,462.4; cpu = 1 GiB -> 966,367,641.6.
    embed_tokens fits GPU 0 under 1,449,551,462.4 - 201,338,880; layers 0 and 1 too (1,190,682,624 <=
    1,248,212,582.4), layers.2 does not (1,392,021,504) -> the cpu takes layers 2 and 3, the norm and the rotary."""
    result = inspect(str(llama4), runtime="transformers", device_map="auto",
                     budgets={"cuda:0": 3 * 2**29, "cpu": 2**30})
    assert result.memory.plan.requested == {0: 3 * 2**29 * 0.9, "cpu": 2**30 * 0.90}
    assert result.memory.plan.device_map == {"model.embed_tokens": 0, "lm_head": 0, "model.layers.0": 0,
                                             "model.layers.1": 0, "model.layers.2": "cpu", "model.layers.3": "cpu",
                                             "model.norm": "cpu", "model.rotary_emb": "cpu"}
    assert result.memory.table.total("cuda:0") == EMBED + 2 * LAYER + ROTARY + DOWN
    assert result.budget is not None and result.budget.fits
    # a smaller GPU: embed_tokens fits neither GPU 0 nor the cpu under their reserves -> everything on disk
    small = inspect(str(llama4), runtime="transformers", device_map="auto", budgets={"cuda:0": 2**30, "cpu": 2**30})
    assert small.memory.plan.device_map == {"": "disk"}
    with pytest.raises(UsageError, match="measures"):
        _inspect(llama4, device_map="auto")


def test_one_device_and_pasted_maps(llama4: Path) -> None:
    assert _inspect(llama4, device_map="cuda:1").memory.table.total("cuda:1") == \
        EMBED + 4 * LAYER + NORM + ROTARY
    pasted = ("{'model.embed_tokens': 'cpu', 'lm_head': 'cpu', 'model.layers': 0, 'model.norm': 0, "
              "'model.rotary_emb': 0}")
    rows = _inspect(llama4, device_map=pasted).memory.table.rows
    assert rows["cpu"]["weights"] == EMBED and rows["cuda:0"]["weights"] == 4 * LAYER + NORM
    with pytest.raises(UsageError, match="does not place"):
        _inspect(llama4, device_map="{'model.layers': 0}")
    assert {t.device for t in _inspect(llama4).checkpoint.tensors} == {"cpu"}  # no device_map: the CPU


# --- bitsandbytes -------------------------------------------------------------------------------------------------
def test_nf4_double_quant_bytes_from_shapes(llama_3b: Path) -> None:
    """NF4 + double quantization (bitsandbytes quantize_4bit), per weight of n values: packed n / 2 B, absmax
    ceil(n / 64) uint8, nested absmax ceil(n / 64 / 256) float32, code books 16 + 256 float32, offset 4 B:
    q, o (n = 9,437,184): 4,718,592 + 147,456 + 576 x 4 + 64 + 1,024 + 4 = 4,869,444
    k, v (n = 3,145,728): 1,572,864 + 49,152 + 192 x 4 + 1,092 = 1,623,876
    gate, up, down (n = 25,165,824): 12,582,912 + 393,216 + 1,536 x 4 + 1,092 = 12,983,364
    a layer: 2 x 4,869,444 + 2 x 1,623,876 + 3 x 12,983,364 + norms 12,288 = 51,949,020
    the tied embedding stays bf16 (tied weights are never converted); 28 layers."""
    result = _inspect(llama_3b, load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True)
    layer = 2 * 4_869_444 + 2 * 1_623_876 + 3 * 12_983_364 + 12_288
    assert layer == 51_949_020
    assert result.memory.table.total("cuda:0") == 28 * layer + EMBED + NORM + ROTARY == 2_242_584_080
    q = {t.name: t for t in result.checkpoint.tensors if t.name.startswith("model.layers.0.self_attn.q_proj.")}
    assert {n: (t.dtype, t.shape, t.nbytes) for n, t in q.items()} == {
        "model.layers.0.self_attn.q_proj.weight": ("U8", (4_718_592, 1), 4_718_592),
        "model.layers.0.self_attn.q_proj.weight.absmax": ("U8", (147_456,), 147_456),
        "model.layers.0.self_attn.q_proj.weight.quant_map": ("F32", (16,), 64),
        "model.layers.0.self_attn.q_proj.weight.nested_absmax": ("F32", (576,), 2_304),
        "model.layers.0.self_attn.q_proj.weight.nested_quant_map": ("F32", (256,), 1_024),
        "model.layers.0.self_attn.q_proj.weight.nested_offset": ("F32", (), 4)}
    # without double quantization: absmax float32 (147,456 x 4) and one code book: 5,308,480 for q
    plain = _inspect(llama_3b, load_in_4bit=True, bnb_4bit_quant_type="nf4")
    q_plain = sum(t.nbytes for t in plain.checkpoint.tensors
                  if t.name.startswith("model.layers.0.self_attn.q_proj."))
    assert q_plain == 4_718_592 + 589_824 + 64 == 5_308_480


def test_int8_and_skip_modules(llama_3b: Path) -> None:
    """8-bit: int8 weights (n B) + float32 row scales (4 B per output row) per converted Linear.
    Per layer: 100,663,296 int8 + 4 x (3,072 + 1,024 + 1,024 + 3,072 + 8,192 + 8,192 + 3,072 rows) + norms."""
    result = _inspect(llama_3b, load_in_8bit=True)
    layer = (2 * 9_437_184 + 2 * 3_145_728 + 3 * 25_165_824) + 4 * 27_648 + 12_288
    assert result.memory.table.total("cuda:0") == 28 * layer + EMBED + NORM + ROTARY
    mlp_bf16 = 3 * 25_165_824 * 2
    mlp_int8 = 3 * 25_165_824 + 4 * (2 * 8_192 + 3_072)
    # transformers 5 matches a skip pattern from the start of the name or as a suffix: "mlp" skips no Linear ...
    same = _inspect(llama_3b, load_in_8bit=True, llm_int8_skip_modules="mlp")
    assert same.memory.table.total("cuda:0") == result.memory.table.total("cuda:0")
    named = _inspect(llama_3b, load_in_8bit=True, llm_int8_skip_modules="gate_proj,up_proj,down_proj")
    assert named.memory.table.total("cuda:0") - result.memory.table.total("cuda:0") == 28 * (mlp_bf16 - mlp_int8)
    # ... transformers 4 skips a module whose full name contains "mlp." (and its dtype defaults to float16)
    four = _inspect(llama_3b, load_in_8bit=True, transformers_version="4")
    four_skip = _inspect(llama_3b, load_in_8bit=True, transformers_version="4", llm_int8_skip_modules="mlp")
    assert four_skip.memory.table.total("cuda:0") - four.memory.table.total("cuda:0") == 28 * (mlp_bf16 - mlp_int8)
    assert {t.dtype for t in four.checkpoint.tensors if t.name == "model.embed_tokens.weight"} == {"F16"}


def test_bitsandbytes_refuses_cpu_offload_without_the_flag(llama_3b: Path) -> None:
    with pytest.raises(UsageError, match="llm_int8_enable_fp32_cpu_offload"):
        _inspect(llama_3b, load_in_4bit=True, device_map="auto", max_memory=("0=1GiB,cpu=10GiB",))
    ok = _inspect(llama_3b, load_in_4bit=True, device_map="auto", max_memory=("0=1GiB,cpu=10GiB",),
                  llm_int8_enable_fp32_cpu_offload=True)
    assert "cpu" in ok.memory.table.rows


@needs_shared
def test_real_bnb_int8_checkpoint(tmp_path: Path) -> None:
    """The bitsandbytes 8-bit Llama-3.1-8B of ../shared: our fixture has its index's names and total_size; loaded,
    everything but the 224 one-byte `weight_format` tensors (7 per layer, read by the loader only) is in memory."""
    real = REAL / "jeevanchaps__Meta-Llama3.1-8B-Instruct-assessment"
    index = json.loads((real / "model.safetensors.index.json").read_text())
    write_safetensors(tmp_path, "llama-3.1-8b-bnb-int8", dtype="F16", shards=2)
    result = inspect(str(tmp_path), runtime="transformers", transformers_version="5")
    assert {t.name for t in load(str(tmp_path)).tensors} == set(index["weight_map"])
    assert result.bytes == index["metadata"]["total_size"] == 9_086_705_888
    # no device_map: bitsandbytes puts the model on the current CUDA device; + rotary 2 x 64 float32
    assert result.memory.table.total("cuda:0") == 9_086_705_888 - 224 + 512
    assert result.memory.table.rows["cuda:0"]["quant_state"] == 32 * 43_008 * 4


# --- disk offload and MoE -------------------------------------------------------------------------------------------
def test_moe_weights_on_disk_need_an_offload_folder_in_transformers_5(tmp_path: Path) -> None:
    write_safetensors(tmp_path, "mixtral-8x7b", n_layers=2)
    memory = ("0=4GiB,cpu=2GiB",)
    with pytest.raises(UsageError, match="offload_folder"):
        _inspect(tmp_path, device_map="sequential", max_memory=memory)
    ok = _inspect(tmp_path, device_map="sequential", max_memory=memory, offload_folder="off")
    assert ok.memory.plan.resaved == ok.memory.table.rows["disk"]["weights"] - \
        sum(t.nbytes for t in ok.checkpoint.tensors if t.device == "disk" and "experts" not in t.name)
    assert _inspect(tmp_path, device_map="sequential", max_memory=memory, transformers_version="4").memory


# --- command line -------------------------------------------------------------------------------------------------
def test_cli_table_and_json(llama4: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["inspect", str(llama4), "--device-map", "sequential", "--max-memory", "{0: 1200000000, 'cpu': 5e8}",
              "--format", "json"])
    assert e.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["memory"]["device_map"]["model.layers.1"] == "cpu"
    assert doc["memory"]["device_map"]["model.layers.0"] == 0
    assert doc["devices"]["disk"]["total"] == 2 * LAYER + NORM
    with pytest.raises(SystemExit):
        main(["inspect", str(llama4), "--device-map", "sequential", "--max-memory", "0=1200000000,cpu=500000000"])
    out = capsys.readouterr().out
    assert "device map (sequential" in out and "model.layers.2      disk" in out
    assert "AutoModelForCausalLM.from_pretrained(" in out


def test_printed_call_round_trips(llama4: Path) -> None:
    """The max_memory dict of the printed from_pretrained call, and the device map it prints, paste back into
    --max-memory and --device-map and give the same bytes per device."""
    first = _inspect(llama4, device_map="auto", max_memory=("0=1GiB,1=700MB,cpu=300MB",), offload_folder="off")
    call = first.flags_line
    assert call.startswith(f"AutoModelForCausalLM.from_pretrained({str(llama4)!r}, device_map='auto', max_memory={{")
    memory = call[call.index("max_memory=") + len("max_memory="):].split("}")[0] + "}"
    again = _inspect(llama4, device_map="auto", max_memory=(memory,), offload_folder="off")
    assert again.memory.table.rows == first.memory.table.rows
    pasted = _inspect(llama4, device_map=repr(dict(first.memory.plan.device_map)), offload_folder="off")
    assert {d: r["weights"] for d, r in pasted.memory.table.rows.items()} == \
        {d: r["weights"] for d, r in first.memory.table.rows.items()}
