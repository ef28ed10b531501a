"""llama-quantize's layout options: --leave-output-tensor, --prune-layers, --override-kv, --keep-split
(facts: inspector/quant/layout.py, from llama.cpp 0c1e5709 src/llama-quant.cpp and tools/quantize/quantize.cpp).

Expected headers are written by gguf-py's own GGUFWriter (the converter's writer, independent of our header code):
the expected KVs and tensor infos go into a real file, whose size padded to 32 is where the data starts.
Byte arithmetic: Q4_K 144 / 256 values, Q6_K 210 / 256, Q8_0 34 / 32, F16 2 per value.
"""
from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from inspector.errors import UsageError
from inspector.formats import read_checkpoint
from inspector.quant import QuantOptions, predict
from inspector.quant.layout import parse_override_kv, parse_prune_layers
from inspector.sources import resolve_local

from .test_quant_rules import dense

GT = gguf.GGMLQuantizationType


def written_header(tmp: Path, kvs: dict, tensors: list[tuple[str, tuple[int, ...], str, int]],
                   split: tuple[int, int, int] | None = None) -> int:
    """Where the data starts in a GGUF that gguf-py writes with these KVs and tensor infos (name, ne, type, bytes)."""
    path = tmp / "expected.gguf"
    w = gguf.GGUFWriter(path, arch=None)  # type: ignore[arg-type]
    for key, value in kvs.items():
        if isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        elif isinstance(value, float):
            w.add_float32(key, value)
        else:
            w.add_string(key, value)
    if split is not None:
        w.add_uint16("split.no", split[0])
        w.add_uint16("split.count", split[1])
        w.add_int32("split.tensors.count", split[2])
    for name, ne, qtype, nbytes in tensors:
        block, type_size = gguf.GGML_QUANT_SIZES[GT[qtype]]
        byte_shape = (*reversed(ne[1:]), ne[0] // block * type_size)  # gguf-py takes raw tensors by bytes
        w.add_tensor_info(name, byte_shape, np.dtype(np.uint8), nbytes, raw_dtype=GT[qtype])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    size = path.stat().st_size
    return (size + 31) // 32 * 32


def out_header(tmp: Path, prediction, file_index: int = 0, *, kvs: bool = True, split=None) -> int:
    infos = [(t.name, t.shape, t.dtype, t.nbytes) for t in prediction.checkpoint.tensors if t.file_index == file_index]
    meta = prediction.checkpoint.metadata if kvs else {}
    return written_header(tmp, dict(meta), infos, split)


# --- --leave-output-tensor --------------------------------------------------------------------------------------

def test_leave_output_tensor_keeps_output_weight_in_its_input_type(tmp_path) -> None:
    m = dense(2)  # output.weight ne (256, 512), F16
    normal = predict(m, QuantOptions("Q4_K_M"))
    left = predict(m, QuantOptions("Q4_K_M", leave_output_tensor=True))
    out = {t.name: t for t in left.checkpoint.tensors}
    assert {t.name: t for t in normal.checkpoint.tensors}["output.weight"].nbytes == 512 * 210  # Q6_K: 107,520
    assert (out["output.weight"].dtype, out["output.weight"].nbytes) == ("F16", 256 * 512 * 2)  # 262,144
    assert left.file_size - normal.file_size == 262_144 - 107_520
    assert out["token_embd.weight"].dtype == "Q4_K"  # untied: the token embedding is not the output tensor
    assert left.header_bytes == out_header(tmp_path, left)
    # tied embeddings: no output.weight; token_embd still takes the output rule (Q6_K)
    tied = {t.name: t.dtype for t in predict(dense(2, tied=True),
                                             QuantOptions("Q4_K_M", leave_output_tensor=True)).checkpoint.tensors}
    assert tied["token_embd.weight"] == "Q6_K"


# --- --prune-layers ---------------------------------------------------------------------------------------------

def test_prune_layers_parsing() -> None:
    assert parse_prune_layers("3,1,3") == (1, 3)
    for bad in ("1,-2", "x", ""):
        with pytest.raises(UsageError, match="--prune-layers"):
            parse_prune_layers(bad)


def test_prune_layers_removes_blocks_renumbers_and_keeps_the_rules_counters_of_the_input(tmp_path) -> None:
    m = dense(4)  # 3 non-block tensors + 9 per block
    p = predict(m, QuantOptions("Q4_K_M", prune_layers=(1, 2)))
    names = [t.name for t in p.checkpoint.tensors]
    assert len(names) == 3 + 2 * 9
    assert not any(n.startswith(("blk.2.", "blk.3.")) for n in names)
    assert p.checkpoint.metadata["llama.block_count"] == 2
    types = {t.name: t.dtype for t in p.checkpoint.tensors}
    layers = {t.name: t.layer for t in p.checkpoint.tensors}
    assert layers["blk.1.ffn_down.weight"] == 1
    # The rules still read block_count 4 (the model was loaded before pruning) and count only kept tensors:
    # ffn_down: running counter i = 0, 1 of n = 4; use_more_bits(i, 4) = i < 0 or i >= 3 or (i - 0) % 3 == 2:
    # both false -> Q4_K. Unpruned, the old blk.3 (i = 3) got Q6_K.
    assert types["blk.0.ffn_down.weight"] == types["blk.1.ffn_down.weight"] == "Q4_K"
    assert {t.name: t.dtype for t in predict(m, QuantOptions("Q4_K_M")).checkpoint.tensors}[
        "blk.3.ffn_down.weight"] == "Q6_K"
    # attn_v: n_attention_wv = 2 kept; use_more_bits(1, 2): 1 >= 7*2//8 = 1 -> Q6_K; i = 0 -> Q4_K
    assert (types["blk.0.attn_v.weight"], types["blk.1.attn_v.weight"]) == ("Q4_K", "Q6_K")
    assert p.header_bytes == out_header(tmp_path, p) and p.header_exact
    # blocks before the first pruned one keep their numbers; pruning beyond the last block changes nothing
    p = predict(m, QuantOptions("Q4_K_M", prune_layers=(3,)))
    assert p.checkpoint.metadata["llama.block_count"] == 3 and "blk.2.attn_q.weight" in {
        t.name for t in p.checkpoint.tensors}
    assert predict(m, QuantOptions("Q4_K_M", prune_layers=(9,))).checkpoint.metadata["llama.block_count"] == 4


# --- --override-kv ----------------------------------------------------------------------------------------------

def test_override_kv_parsing() -> None:
    assert parse_override_kv("general.name=str:tiny") == ("general.name", "tiny")
    assert parse_override_kv("llama.expert_count=int:-8") == ("llama.expert_count", 8)  # u32 of |v|
    assert parse_override_kv("llama.rope.freq_base=float:1e4") == ("llama.rope.freq_base", 10000.0)
    assert parse_override_kv("tokenizer.ggml.add_bos_token=bool:false") == ("tokenizer.ggml.add_bos_token", False)
    for bad in ("k", "k=int", "k=long:1", "k=bool:yes", "k=str:" + "x" * 128, "x" * 128 + "=int:1"):
        with pytest.raises(UsageError, match="--override-kv"):
            parse_override_kv(bad)


def test_override_kv_changes_header_bytes_file_type_and_the_rules(tmp_path) -> None:
    m = dense(2)
    base = predict(m, QuantOptions("Q4_K_M"))
    named = predict(m, QuantOptions("Q4_K_M", override_kv=(("general.name", "a-tiny-model"),)))
    assert named.checkpoint.metadata["general.name"] == "a-tiny-model"
    assert named.header_bytes == out_header(tmp_path, named)
    # general.file_type set by the user wins over llama-quantize's own value (written after it)
    typed = predict(m, QuantOptions("Q4_K_M", override_kv=(("general.file_type", 7),)))
    assert typed.checkpoint.metadata["general.file_type"] == 7
    assert base.checkpoint.metadata["general.file_type"] == 15
    # the loader reads the override too: expert_count 8 sends every attn_v to Q8_0 (the 8-expert rule)
    eight = predict(m, QuantOptions("Q4_K_M", override_kv=(("llama.expert_count", 8),)))
    v = {t.name: t for t in eight.checkpoint.tensors}["blk.0.attn_v.weight"]  # ne (256, 64)
    assert (v.dtype, v.nbytes) == ("Q8_0", 64 * 8 * 34)  # 17,408
    # without it: use_more_bits(0, 2) = 0 < 0 or 0 >= 1 or 0 % 3 == 2: false -> the default Q4_K, 64 × 144 bytes
    assert {t.name: (t.dtype, t.nbytes) for t in base.checkpoint.tensors}["blk.0.attn_v.weight"] == ("Q4_K", 9_216)


# --- --keep-split -----------------------------------------------------------------------------------------------

def write_split_gguf(folder: Path) -> Path:
    """A real 3-split F16 GGUF written by gguf-py's split writer (KVs in split 1 only): 2 llama blocks."""
    folder.mkdir()
    w = gguf.GGUFWriter(folder / "tiny.gguf", "llama", split_max_tensors=10)
    w.add_block_count(2)
    w.add_head_count(8)
    w.add_head_count_kv(2)
    w.add_context_length(256)
    shapes = [("token_embd.weight", (256, 512)), ("output_norm.weight", (256,)), ("output.weight", (256, 512))]
    for i in range(2):
        p = f"blk.{i}."
        shapes += [(p + "attn_norm.weight", (256,)), (p + "attn_q.weight", (256, 256)), (p + "attn_k.weight", (256, 64)),
                   (p + "attn_v.weight", (256, 64)), (p + "attn_output.weight", (256, 256)),
                   (p + "ffn_norm.weight", (256,)), (p + "ffn_gate.weight", (256, 512)),
                   (p + "ffn_up.weight", (256, 512)), (p + "ffn_down.weight", (512, 256))]
    for name, ne in shapes:
        dtype = np.float32 if len(ne) == 1 else np.float16
        w.add_tensor(name, np.zeros(tuple(reversed(ne)), dtype=dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return folder


def test_keep_split_writes_one_file_per_input_split_each_sized(tmp_path) -> None:
    folder = write_split_gguf(tmp_path / "in")
    (tmp_path / "exp").mkdir()
    checkpoint = read_checkpoint(resolve_local(str(folder)))
    assert len(checkpoint.files) == 3  # 21 tensors, 10 per split
    joined = predict(checkpoint, QuantOptions("Q4_K_M"))
    kept = predict(checkpoint, QuantOptions("Q4_K_M", keep_split=True))
    assert len(joined.checkpoint.files) == 1 and len(kept.checkpoint.files) == 3
    assert [f.path.rsplit("/", 1)[-1] for f in kept.checkpoint.files] == [
        f"ggml-model-Q4_K_M-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    # each output split holds the tensors of its input split, in the input's order
    for i in range(3):
        want = [t.name for t in sorted(checkpoint.tensors, key=lambda t: t.offset) if t.file_index == i]
        assert [t.name for t in kept.checkpoint.tensors if t.file_index == i] == want
    # headers: split 1 every KV + split.*; the others split.* alone — as gguf-py writes them
    headers = [f.header_bytes for f in kept.checkpoint.files]
    meta = {k: v for k, v in kept.checkpoint.metadata.items()}
    assert headers[0] == out_header(tmp_path / "exp", kept, 0, split=(0, 3, 21))
    assert headers[1] == out_header(tmp_path / "exp", kept, 1, kvs=False, split=(1, 3, 21))
    assert headers[2] == out_header(tmp_path / "exp", kept, 2, kvs=False, split=(2, 3, 21))
    assert "split.count" not in meta
    for f in kept.checkpoint.files:
        data = sum((t.nbytes + 31) // 32 * 32 for t in kept.checkpoint.tensors
                   if t.file_index == kept.checkpoint.files.index(f))
        assert f.size == f.header_bytes + data
    assert kept.file_size == sum(f.size for f in kept.checkpoint.files)
    assert kept.data_bytes == joined.data_bytes  # same types here: the counters see the same order
