"""The fixture generator (fixtures/), checked with the reference readers (gguf.GGUFReader,
safetensors.safe_open) and with numbers worked out by hand from the models' published shapes.

GGUFReader and safe_open memory-map the data region, so files they open are written with
mode="sparse" (full length, no disk). Nothing here uses the project's own readers.
"""
from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import gguf
import pytest
from safetensors import safe_open

from fixtures.arch import ARCHS_DIR, ArchError, available_archs, load_arch
from fixtures.generate import (
    MODELS_DIR,
    deepseek_v31_single,
    regenerate_committed,
    rebuild_split_from_map,
    write_gguf,
    write_safetensors,
)

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
THIREUS = REAL / "Thireus__GGUF-Tool-Suite"
DSV31_Q4K = THIREUS / "DeepSeek-V3.1-Terminus" / "tensors.q4_K.map"
DSV31_BF16 = THIREUS / "DeepSeek-V3.1-Terminus" / "tensors.bf16.map"
_skip_without_real = pytest.mark.skipif(not THIREUS.is_dir(), reason="../shared/data/real is not beside the checkout")


def needs_real(test):
    """Marks a test that reads ../shared/data/real ("real" marker) and skips it when that is absent."""
    return pytest.mark.real(_skip_without_real(test))

F32 = gguf.GGMLQuantizationType.F32
F16 = gguf.GGMLQuantizationType.F16
Q8_0 = gguf.GGMLQuantizationType.Q8_0


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sparse_ok(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip when the temp filesystem cannot hold holes (sparse files would really be written)."""
    probe = tmp_path_factory.mktemp("sparse") / "probe"
    with open(probe, "wb") as f:
        f.truncate(1 << 30)
    if os.stat(probe).st_blocks * 512 > 1 << 20:
        pytest.skip("temp filesystem does not support sparse files")


def kv(reader: gguf.GGUFReader, key: str):
    return reader.fields[key].contents()


def kv_type(reader: gguf.GGUFReader, key: str) -> gguf.GGUFValueType:
    return reader.fields[key].types[0]


def tensors_by_name(reader: gguf.GGUFReader) -> dict[str, gguf.ReaderTensor]:
    return {t.name: t for t in reader.tensors}


def ne(tensor: gguf.ReaderTensor) -> list[int]:
    return [int(d) for d in tensor.shape]


def read_prefix(path: Path, n: int) -> bytes:
    """The first n bytes (never read a sparse file whole: it is gigabytes of zeros)."""
    with open(path, "rb") as f:
        return f.read(n)


def read_safetensors_header(path: Path) -> tuple[int, dict]:
    (n,) = struct.unpack("<Q", read_prefix(path, 8))
    return n, json.loads(read_prefix(path, 8 + n)[8:])


def map_lines(path: Path) -> list[list[str]]:
    return [line.split(":") for line in path.read_text().splitlines() if line]


def single_tensor_type_id(path: Path) -> int:
    """The ggml type id of the only tensor in a split shard with split.* KVs only, parsed by hand
    (GGUFReader refuses type ids gguf-py has no enum member for)."""
    raw = read_prefix(path, 4096)
    magic, version, n_tensors, n_kv = struct.unpack_from("<IIQQ", raw, 0)
    assert (magic, version, n_tensors) == (gguf.GGUF_MAGIC, 3, 1)
    pos = 24
    for _ in range(n_kv):  # key string, value type, scalar value (u16 or i32 here)
        (key_len,) = struct.unpack_from("<Q", raw, pos)
        pos += 8 + key_len
        (vtype,) = struct.unpack_from("<I", raw, pos)
        pos += 4 + {gguf.GGUFValueType.UINT16: 2, gguf.GGUFValueType.INT32: 4}[vtype]
    (name_len,) = struct.unpack_from("<Q", raw, pos)
    pos += 8 + name_len
    (n_dims,) = struct.unpack_from("<I", raw, pos)
    pos += 4 + 8 * n_dims
    return struct.unpack_from("<I", raw, pos)[0]


# -- descriptions ----------------------------------------------------------------------------------
def test_descriptions_have_the_real_tensor_counts() -> None:
    counts = {name: (len(load_arch(name).gguf_tensors()), len(load_arch(name).hf_tensors()))
              for name in available_archs()}
    assert counts == {
        # 32 blocks x (4 attn + 2 norms + router + 3 stacked / 8x3 per-expert) + embd, norm, output
        "mixtral-8x7b": (32 * 10 + 3, 32 * (7 + 8 * 3) + 3),
        # 28 x (4 attn + 2 norms + 3 ffn) + embd + norm (tied: no output); GGUF adds rope_freqs
        "llama-3.2-3b": (28 * 9 + 3, 28 * 9 + 2),
        # 48 x (4 attn + q/k norm + 2 norms + router + 3 experts) + 3; HF: 128 experts x 3
        "qwen3-moe": (48 * 12 + 3, 48 * (9 + 128 * 3) + 3),
        # GGUF: 3 dense x (10 attn/norm + 3 ffn) + 58 MoE x (10 + router + bias + 3 exps + 3 shexp) + 3.
        # HF: kv_b instead of k_b+v_b (9 per block), 256x3 experts, plus MTP block 61 with 6 extras.
        "deepseek-v3": (3 * 13 + 58 * 18 + 3, 3 * 12 + 58 * (9 + 2 + 768 + 3) + (9 + 2 + 768 + 3 + 6) + 3),
        # 24 x (2 norms + 4 attn weights + 4 biases + sinks + router w/b + 6 expert tensors) + 3
        "gpt-oss-20b": (24 * 19 + 3, 24 * 19 + 3),
        # 48 x (4 attn weights + 3 biases + 2 norms + 3 ffn) + embd, norm, output
        "qwen2.5-14b": (48 * 12 + 3, 48 * 12 + 3),
        # safetensors only: 32 x (7 linears x (int8 weight, SCB, weight_format) + 2 norms) + embd, norm, lm_head
        "llama-3.1-8b-bnb-int8": (0, 32 * 23 + 3),
    }


def test_deepseek_mtp_layer_is_hf_only() -> None:
    arch = load_arch("deepseek-v3")
    hf = {t.name: t.shape for t in arch.hf_tensors()}
    gg = {t.name for t in arch.gguf_tensors()}
    assert hf["model.layers.61.eh_proj.weight"] == (7168, 2 * 7168)
    assert hf["model.layers.61.mlp.experts.255.down_proj.weight"] == (7168, 2048)
    assert hf["model.layers.61.self_attn.kv_b_proj.weight"] == (128 * (128 + 128), 512)
    assert "model.layers.2.mlp.gate_proj.weight" in hf and "model.layers.3.mlp.gate_proj.weight" not in hf
    assert not any(name.startswith("blk.61.") for name in gg)


def test_invalid_description_is_rejected(tmp_path: Path) -> None:
    text = (ARCHS_DIR / "llama-3.2-3b.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("blk.{bid}.attn_q.weight", "blk.{bid}.attn_qq.weight"))
    with pytest.raises(ArchError, match="attn_qq"):
        load_arch(bad)


# -- GGUF from descriptions ------------------------------------------------------------------------
def test_llama_f16_gguf(tmp_path: Path, sparse_ok: None) -> None:
    path = write_gguf(tmp_path / "llama.gguf", "llama-3.2-3b", tensor_type="F16", mode="sparse")
    reader = gguf.GGUFReader(path)
    tensors = tensors_by_name(reader)
    assert len(tensors) == 255 and "output.weight" not in tensors  # tied embeddings
    embd = tensors["token_embd.weight"]
    assert (ne(embd), embd.tensor_type, int(embd.n_bytes)) == ([3072, 128256], F16, 128256 * 3072 * 2)
    k = tensors["blk.27.attn_k.weight"]
    assert (ne(k), int(k.n_bytes)) == ([3072, 8 * 128], 8 * 128 * 3072 * 2)
    assert tensors["rope_freqs.weight"].tensor_type == F32 and ne(tensors["rope_freqs.weight"]) == [64]
    assert tensors["blk.0.ffn_norm.weight"].tensor_type == F32
    matrices = 128256 * 3072 + 28 * (2 * 3072 * 3072 + 2 * 1024 * 3072 + 3 * 8192 * 3072)
    f32_elements = 64 + 3072 + 28 * 2 * 3072
    assert sum(int(t.n_bytes) for t in reader.tensors) == 2 * matrices + 4 * f32_elements
    assert kv(reader, "general.architecture") == "llama"
    assert kv(reader, "llama.block_count") == 28
    assert kv(reader, "llama.attention.head_count_kv") == 8
    assert kv(reader, "general.file_type") == 1  # MOSTLY_F16
    assert kv_type(reader, "llama.block_count") == gguf.GGUFValueType.UINT32
    assert "general.alignment" not in reader.fields


def test_gguf_offsets_padding_and_header_mode(tmp_path: Path, sparse_ok: None) -> None:
    sparse = write_gguf(tmp_path / "s.gguf", "mixtral-8x7b", mode="sparse", n_layers=2, alignment=64)
    header = write_gguf(tmp_path / "h.gguf", "mixtral-8x7b", mode="header", n_layers=2, alignment=64)
    reader = gguf.GGUFReader(sparse)
    assert int(reader.data_offset) % 64 == 0
    assert header.stat().st_size == int(reader.data_offset)  # header mode stops where the data would start
    assert read_prefix(sparse, int(reader.data_offset)) == header.read_bytes()
    assert os.stat(sparse).st_blocks * 512 < 1 << 20  # the data region is a hole
    expected_offset = 0
    for tensor in reader.tensors:
        assert int(tensor.data_offset) - int(reader.data_offset) == expected_offset
        expected_offset += -(-int(tensor.n_bytes) // 64) * 64
    assert sparse.stat().st_size == int(reader.data_offset) + expected_offset
    assert kv(reader, "general.alignment") == 64 and kv(reader, "llama.block_count") == 2
    tensors = tensors_by_name(reader)
    assert len(tensors) == 2 * 10 + 3
    gate = tensors["blk.1.ffn_gate_exps.weight"]
    assert (ne(gate), gate.tensor_type, int(gate.n_bytes)) == ([4096, 14336, 8], F16, 8 * 14336 * 4096 * 2)
    assert tensors["blk.0.ffn_gate_inp.weight"].tensor_type == F32  # routers stay F32 in llama.cpp


def test_extra_kv(tmp_path: Path, sparse_ok: None) -> None:
    path = write_gguf(tmp_path / "x.gguf", "llama-3.2-3b", n_layers=1, mode="sparse",
                      extra_kv={"general.name": "renamed", "test.flag": True,
                                "test.i32": (gguf.GGUFValueType.INT32, -5)})
    reader = gguf.GGUFReader(path)
    assert kv(reader, "general.name") == "renamed"
    assert kv(reader, "test.flag") is True
    assert (kv(reader, "test.i32"), kv_type(reader, "test.i32")) == (-5, gguf.GGUFValueType.INT32)


def test_qwen3_moe_q8_0_gguf(tmp_path: Path, sparse_ok: None) -> None:
    reader = gguf.GGUFReader(write_gguf(tmp_path / "q.gguf", "qwen3-moe", tensor_type="Q8_0", mode="sparse"))
    tensors = tensors_by_name(reader)
    down = tensors["blk.47.ffn_down_exps.weight"]
    # Q8_0: blocks of 32 values in 34 bytes (2-byte scale + 32 int8)
    assert (ne(down), down.tensor_type, int(down.n_bytes)) == ([768, 2048, 128], Q8_0, 128 * 2048 * 768 // 32 * 34)
    router = tensors["blk.0.ffn_gate_inp.weight"]
    assert (ne(router), router.tensor_type, int(router.n_bytes)) == ([2048, 128], F32, 128 * 2048 * 4)
    assert int(tensors["blk.0.attn_k_norm.weight"].n_bytes) == 128 * 4
    assert int(tensors["blk.0.attn_q.weight"].n_bytes) == 32 * 128 * 2048 // 32 * 34
    assert kv(reader, "general.file_type") == 7  # MOSTLY_Q8_0
    assert kv(reader, "general.quantization_version") == 2
    assert kv(reader, "qwen3moe.expert_count") == 128
    assert kv(reader, "qwen3moe.expert_feed_forward_length") == 768


def test_row_that_does_not_fill_blocks_is_an_error(tmp_path: Path) -> None:
    # attn_k_b rows have qk_nope_head_dim = 128 values, Q4_K blocks 256
    with pytest.raises(ValueError, match="attn_k_b"):
        write_gguf(tmp_path / "d.gguf", "deepseek-v3", tensor_type="Q4_K", n_layers=1)


@needs_real
def test_deepseek_gguf_matches_real_bf16_map(tmp_path: Path, sparse_ok: None) -> None:
    reader = gguf.GGUFReader(write_gguf(tmp_path / "d.gguf", "deepseek-v3", tensor_type="BF16", mode="sparse"))
    mine = {t.name: (ne(t), t.tensor_type.name.lower(), int(t.n_bytes)) for t in reader.tensors}
    real = {}
    for fields in map_lines(DSV31_BF16):
        shape = [int(d) for d in re.findall(r"\d+", fields[3])]
        real[fields[2]] = (shape, fields[4].removeprefix("dtype="), int(fields[6].removeprefix("bytes=")))
    assert mine == real
    assert sum(b for _s, _t, b in mine.values()) == 1_342_267_742_208  # the map's total (INDEX.md)


# -- safetensors -----------------------------------------------------------------------------------
def test_mixtral_sharded_safetensors(tmp_path: Path, sparse_ok: None) -> None:
    index_path = write_safetensors(tmp_path / "mx", "mixtral-8x7b", shards=4, mode="sparse")
    index = json.loads(index_path.read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert shards == [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
    assert len(index["weight_map"]) == 995
    embd, layer = 32000 * 4096, 2 * 4096 * 4096 + 2 * 1024 * 4096 + 2 * 4096 + 8 * 4096 + 8 * 3 * 14336 * 4096
    assert index["metadata"]["total_size"] == 2 * (2 * embd + 32 * layer + 4096) == 93_405_585_408
    seen = 0
    for shard in shards:
        path = tmp_path / "mx" / shard
        n, header = read_safetensors_header(path)
        assert n % 8 == 0
        ends = [v["data_offsets"] for k, v in header.items() if k != "__metadata__"]
        assert [a for a, _b in ends] == [0] + [b for _a, b in ends[:-1]]  # contiguous in file order
        assert path.stat().st_size == 8 + n + ends[-1][1]
        with safe_open(path, "np") as f:
            for name in f.keys():
                seen += 1
                assert index["weight_map"][name] == shard
                if name.endswith("experts.3.w1.weight"):
                    tensor = f.get_slice(name)
                    assert (tensor.get_shape(), tensor.get_dtype()) == ([14336, 4096], "BF16")
                    start, end = header[name]["data_offsets"]
                    assert end - start == 14336 * 4096 * 2
    assert seen == 995
    config = json.loads((tmp_path / "mx" / "config.json").read_text())
    assert config["num_local_experts"] == 8 and config["model_type"] == "mixtral"


def test_gpt_oss_mxfp4_safetensors(tmp_path: Path, sparse_ok: None) -> None:
    index_path = write_safetensors(tmp_path / "go", "gpt-oss-20b", shards=3, mode="sparse")
    index = json.loads(index_path.read_text())
    shard_of = index["weight_map"]
    expect = {
        "model.layers.5.mlp.experts.gate_up_proj_blocks": ([32, 5760, 90, 16], "U8"),
        "model.layers.5.mlp.experts.gate_up_proj_scales": ([32, 5760, 90], "U8"),
        "model.layers.5.mlp.experts.down_proj_blocks": ([32, 2880, 90, 16], "U8"),
        "model.layers.5.mlp.experts.down_proj_bias": ([32, 2880], "BF16"),
        "model.layers.5.self_attn.sinks": ([64], "BF16"),
        "model.layers.5.self_attn.q_proj.bias": ([4096], "BF16"),
        "model.layers.5.mlp.router.weight": ([32, 2880], "BF16"),
        "model.layers.5.mlp.router.bias": ([32], "BF16"),
    }
    for name, (shape, dtype) in expect.items():
        with safe_open(tmp_path / "go" / shard_of[name], "np") as f:
            tensor = f.get_slice(name)
            assert (tensor.get_shape(), tensor.get_dtype()) == (shape, dtype), name
    bf16_per_layer = (4096 * 2880 + 4096 + 2 * (512 * 2880 + 512) + 2880 * 4096 + 2880 + 64 + 32 * 2880 + 32
                      + 32 * 5760 + 32 * 2880 + 2 * 2880)
    u8_per_layer = 32 * 5760 * 90 * 17 + 32 * 2880 * 90 * 17  # 16 bytes of values + 1 scale per block
    total = 2 * (2 * 201088 * 2880 + 2880) + 24 * (2 * bf16_per_layer + u8_per_layer)
    assert index["metadata"]["total_size"] == total == 13_761_264_768
    config = json.loads((tmp_path / "go" / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "mxfp4"


def test_single_file_safetensors_with_fewer_layers(tmp_path: Path, sparse_ok: None) -> None:
    path = write_safetensors(tmp_path / "ds" / "model.safetensors", "deepseek-v3", n_layers=4, mode="sparse")
    with safe_open(path, "np") as f:
        names = set(f.keys())
        assert f.get_slice("model.layers.4.embed_tokens.weight").get_shape() == [129280, 7168]  # MTP after 4
    assert "model.layers.3.mlp.experts.255.up_proj.weight" in names
    assert "model.layers.5.input_layernorm.weight" not in names
    config = json.loads((tmp_path / "ds" / "config.json").read_text())
    assert config["num_hidden_layers"] == 4


@needs_real
@pytest.mark.parametrize("folder, arch", [
    ("Ming-999__Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"),
    ("Gusiion__meta-llama-Llama-3.2-3B-Instruct", "llama-3.2-3b"),
    ("EchoCog__gpt-oss-20b", "gpt-oss-20b"),
])
def test_hf_side_matches_real_index_and_config(tmp_path: Path, folder: str, arch: str) -> None:
    real_index = json.loads((REAL / folder / "model.safetensors.index.json").read_text())
    index = json.loads(write_safetensors(tmp_path, arch, shards=2).read_text())
    assert set(index["weight_map"]) == set(real_index["weight_map"])
    assert index["metadata"]["total_size"] == real_index["metadata"]["total_size"]
    assert json.loads((tmp_path / "config.json").read_text()) == json.loads((REAL / folder / "config.json").read_text())


# -- GGUF from Thireus maps ------------------------------------------------------------------------
@needs_real
@pytest.mark.slow
def test_rebuild_split_deepseek_v31(tmp_path: Path, sparse_ok: None) -> None:
    paths = rebuild_split_from_map(DSV31_Q4K, tmp_path, mode="sparse")
    lines = map_lines(DSV31_Q4K)
    assert len(paths) == 1087
    assert [p.name for p in paths[1:]] == [fields[0] for fields in lines]
    assert paths[0].name == "DeepSeek-V3.1-Terminus-THIREUS-Q4_K-SPECIAL_TENSOR-00001-of-01087.gguf"
    first = gguf.GGUFReader(paths[0])
    assert len(first.tensors) == 0
    assert kv(first, "general.architecture") == "deepseek2"
    assert kv(first, "deepseek2.block_count") == 61
    for split_no, path in ((0, paths[0]), (500, paths[500])):
        reader = first if split_no == 0 else gguf.GGUFReader(path)
        assert (kv(reader, "split.no"), kv_type(reader, "split.no")) == (split_no, gguf.GGUFValueType.UINT16)
        assert (kv(reader, "split.count"), kv_type(reader, "split.count")) == (1087, gguf.GGUFValueType.UINT16)
        assert (kv(reader, "split.tensors.count"), kv_type(reader, "split.tensors.count")) == \
            (1086, gguf.GGUFValueType.INT32)
    total = 0
    for path in paths[1:]:
        reader = gguf.GGUFReader(path)
        assert len(reader.tensors) == 1 and "general.architecture" not in reader.fields
        total += int(reader.tensors[0].n_bytes)
    assert total == sum(int(fields[6].removeprefix("bytes=")) for fields in lines) == 377_885_689_856


@needs_real
@pytest.mark.parametrize("model, map_name, dtype, type_id, arch", [
    # ik_llama.cpp ggml.h: GGML_TYPE_IQ5_K = 140, GGML_TYPE_Q4_K_R4 = 212
    ("Kimi-K2.5", "tensors.iq4_xs.map", "iq5_k", 140, "deepseek2"),
    ("Qwen3-VL-235B-A22B-Instruct", "tensors.q4_K.map", "q4_k_r4", 212, "qwen3vlmoe"),
])
def test_rebuild_split_with_ik_llama_types(tmp_path: Path, model: str, map_name: str, dtype: str,
                                           type_id: int, arch: str) -> None:
    # a two-tensor excerpt of the real map, renumbered as shards 2 and 3 of 3
    picked = [line for line in (THIREUS / model / map_name).read_text().splitlines()
              if f":dtype={dtype}:" in line][:1]
    picked += [line for line in (THIREUS / model / map_name).read_text().splitlines()
               if ":dtype=f32:" in line][:1]
    excerpt = [re.sub(r"-\d{5}-of-\d{5}\.gguf", f"-{no:05d}-of-00003.gguf", line, count=1)
               for no, line in enumerate(picked, start=2)]
    (tmp_path / model).mkdir()
    map_path = tmp_path / model / map_name
    map_path.write_text("\n".join(excerpt) + "\n")
    paths = rebuild_split_from_map(map_path, tmp_path / "out")
    assert [p.name[-20:] for p in paths] == [f"-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert single_tensor_type_id(paths[1]) == type_id
    assert single_tensor_type_id(paths[2]) == 0  # f32
    assert kv(gguf.GGUFReader(paths[0]), "general.architecture") == arch


@needs_real
def test_deepseek_v31_single_file(tmp_path: Path, sparse_ok: None) -> None:
    header_only = deepseek_v31_single(tmp_path / "h.gguf")
    assert header_only.stat().st_size < 300_000
    reader = gguf.GGUFReader(deepseek_v31_single(tmp_path / "s.gguf", mode="sparse"))
    lines = map_lines(DSV31_Q4K)
    assert [t.name for t in reader.tensors] == [fields[2] for fields in lines]
    assert [t.tensor_type.name.lower() for t in reader.tensors] == [f[4].removeprefix("dtype=") for f in lines]
    offset = 0
    for tensor, fields in zip(reader.tensors, lines):
        nbytes = int(fields[6].removeprefix("bytes="))
        assert int(tensor.n_bytes) == nbytes
        assert int(tensor.data_offset) - int(reader.data_offset) == offset
        offset += -(-nbytes // 32) * 32
    assert sum(int(t.n_bytes) for t in reader.tensors) == 377_885_689_856
    expected = {
        "deepseek2.block_count": 61, "deepseek2.context_length": 163840, "deepseek2.embedding_length": 7168,
        "deepseek2.feed_forward_length": 18432, "deepseek2.attention.head_count": 128,
        "deepseek2.attention.head_count_kv": 1, "deepseek2.expert_count": 256,
        "deepseek2.expert_used_count": 8, "deepseek2.expert_shared_count": 1,
        "deepseek2.leading_dense_block_count": 3, "deepseek2.expert_feed_forward_length": 2048,
        "deepseek2.attention.q_lora_rank": 1536, "deepseek2.attention.kv_lora_rank": 512,
        "deepseek2.attention.key_length": 576, "deepseek2.attention.value_length": 512,
        "deepseek2.attention.key_length_mla": 192, "deepseek2.attention.value_length_mla": 128,
        "deepseek2.rope.dimension_count": 64, "deepseek2.vocab_size": 129280,
        "deepseek2.expert_weights_scale": 2.5, "deepseek2.expert_weights_norm": True,
        "deepseek2.expert_gating_func": 2, "general.file_type": 15, "general.architecture": "deepseek2",
    }
    assert {key: kv(reader, key) for key in expected} == expected
    assert not any(key.startswith("tokenizer.") for key in reader.fields)


# -- committed files -------------------------------------------------------------------------------
def test_committed_fixtures_are_small_and_current(tmp_path: Path) -> None:
    written = regenerate_committed(tmp_path)
    assert written
    for path in written:
        committed = MODELS_DIR / path.relative_to(tmp_path)
        assert path.stat().st_size < 1_000_000
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: run python -m fixtures.generate"
