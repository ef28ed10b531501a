"""A small PowerInfer-layout model, header only, written the way PowerInfer's converters write one, and its split.

- Model: `convert.py` / `convert-hf-to-powerinfer-gguf.py` of SJTU-IPADS/PowerInfer (d3ebd7c5) write an ordinary
  GGUF v3 (gguf-py's writer) with `ffn_down` stored transposed as `ffn_down_t` [n_ff, n_embd] (torch order) and the
  predictor MLP as `fc1` [rank, n_embd] and `fc2` [n_ff, rank], 2-D tensors in F16 and 1-D ones in F32
  (`GGMLFileType.type_for_tensor`), `powerinfer.sparse_threshold` from the predictor config, then overwrite the
  first 4 bytes with b"PWRI". Tensor order: the HF checkpoint's (embedding, the blocks, norm, head).
- Split: `powerinfer-py/powerinfer/export_split.py` writes `generic.gpu_index` with block_count and
  `split.vram_capacity` (u64), then per layer `blk.N.gpu_idx` (I32 [n_ff]) and `blk.N.gpu_bucket` (I32 [k]), and
  overwrites the magic with b"PWRI" (and the version with 3).

`python -m tests.test_powerinfer_fixture DIR` writes both into DIR (docs/powerinfer.md uses it).
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import gguf
import numpy as np

from fixtures.generate import _write_gguf_file
from inspector.formats.gguf import parse_gguf
from inspector.sources.base import LocalFile

# ReluLLaMA-like, scaled down: 4 blocks, n_embd 512, 8 heads of 64 (no GQA), n_ff 1536 = 6 x 256 (the solver's
# group), predictor rank 128, vocabulary 1000.
TINY = dict(n_layer=4, n_embd=512, n_head=8, n_head_kv=8, n_ff=1536, rank=128, n_vocab=1000, n_ctx_train=2048)
F32, F16 = int(gguf.GGMLQuantizationType.F32), int(gguf.GGMLQuantizationType.F16)


def _tensor(name: str, shape: tuple[int, ...], ggml_type: int) -> tuple[str, tuple[int, ...], int, int]:
    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ggml_type)]
    n = 1
    for d in shape:
        n *= d
    return name, shape, ggml_type, n // block * size


def model_tensors(n_layer: int, n_embd: int, n_ff: int, rank: int, n_vocab: int, *, arch: str = "llama",
                  sparse: bool = True, wtype: int = F16, n_embd_gqa: int | None = None
                  ) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(name, torch-order shape, ggml type, bytes) in the converter's order. `arch` "falcon": fused QKV, no gate,
    no ffn_norm, norm biases (ReluFalcon); `sparse=False`: a dense GGUF (ffn_down, no predictor)."""
    gqa = n_embd if n_embd_gqa is None else n_embd_gqa
    out = [_tensor("token_embd.weight", (n_vocab, n_embd), wtype)]
    for il in range(n_layer):
        b = f"blk.{il}."
        out += [_tensor(b + "attn_norm.weight", (n_embd,), F32)]
        if arch == "falcon":
            out += [_tensor(b + "attn_norm.bias", (n_embd,), F32),
                    _tensor(b + "attn_qkv.weight", (n_embd + 2 * gqa, n_embd), wtype),
                    _tensor(b + "attn_output.weight", (n_embd, n_embd), wtype)]
        else:
            out += [_tensor(b + f"attn_{x}.weight", (rows, n_embd), wtype)
                    for x, rows in (("q", n_embd), ("k", gqa), ("v", gqa), ("output", n_embd))]
            out += [_tensor(b + "ffn_norm.weight", (n_embd,), F32), _tensor(b + "ffn_gate.weight", (n_ff, n_embd), wtype)]
        out += [_tensor(b + "ffn_up.weight", (n_ff, n_embd), wtype)]
        if sparse:
            out += [_tensor(b + "ffn_down_t.weight", (n_ff, n_embd), wtype),  # down, transposed
                    _tensor(b + "fc1.weight", (rank, n_embd), wtype),
                    _tensor(b + "fc2.weight", (n_ff, rank), wtype)]
        else:
            out += [_tensor(b + "ffn_down.weight", (n_embd, n_ff), wtype)]
    out += [_tensor("output_norm.weight", (n_embd,), F32)]
    if arch == "falcon":
        out += [_tensor("output_norm.bias", (n_embd,), F32)]
    out += [_tensor("output.weight", (n_vocab, n_embd), wtype)]
    return out


def _set_magic(path: Path) -> None:
    with open(path, "r+b") as f:  # what PowerInfer's converters and export_split.py do after writing
        f.write(b"PWRI")
        f.write(struct.pack("<I", 3))


def write_powerinfer_model(path: str | Path, *, n_layer: int = TINY["n_layer"], n_embd: int = TINY["n_embd"],
                           n_head: int = TINY["n_head"], n_head_kv: int = TINY["n_head_kv"], n_ff: int = TINY["n_ff"],
                           rank: int = TINY["rank"], n_vocab: int = TINY["n_vocab"], arch: str = "llama",
                           wtype: int = F16, sparse: bool = True) -> Path:
    """`sparse=False` writes a dense GGUF (GGUF magic, ffn_down, no predictor) of the same model."""
    path = Path(path)
    V = gguf.GGUFValueType
    kvs = {
        "general.name": (V.STRING, f"Relu{arch} tiny (PowerInfer layout)"),
        f"{arch}.context_length": (V.UINT32, TINY["n_ctx_train"]),
        f"{arch}.embedding_length": (V.UINT32, n_embd),
        f"{arch}.block_count": (V.UINT32, n_layer),
        f"{arch}.feed_forward_length": (V.UINT32, n_ff),
        f"{arch}.attention.head_count": (V.UINT32, n_head),
        f"{arch}.attention.head_count_kv": (V.UINT32, n_head_kv),
        "general.file_type": (V.UINT32, 1),  # MOSTLY_F16
        "tokenizer.ggml.model": (V.STRING, "llama"),
        "tokenizer.ggml.tokens": (V.ARRAY, [f"t{i}" for i in range(n_vocab)]),
    }
    if arch == "llama":
        kvs[f"{arch}.rope.dimension_count"] = (V.UINT32, n_embd // n_head)
        kvs[f"{arch}.attention.layer_norm_rms_epsilon"] = (V.FLOAT32, 1e-6)
    else:
        kvs[f"{arch}.attention.layer_norm_epsilon"] = (V.FLOAT32, 1e-5)
    if sparse:
        kvs["powerinfer.sparse_threshold"] = (V.FLOAT32, 0.0)
    tensors = model_tensors(n_layer, n_embd, n_ff, rank, n_vocab, arch=arch, sparse=sparse, wtype=wtype,
                            n_embd_gqa=n_head_kv * (n_embd // n_head))
    _write_gguf_file(path, arch, kvs, tensors, "header")
    if sparse:
        _set_magic(path)
    return path


def write_gpu_index(path: str | Path, neurons: list[int], n_ff: int, vram_capacity: int) -> Path:
    """A split with `neurons[il]` GPU neurons in layer il (export_split.py's layout)."""
    path = Path(path)
    writer = gguf.GGUFWriter(path, "generic.gpu_index")
    writer.add_block_count(len(neurons))
    writer.add_uint64("split.vram_capacity", vram_capacity)
    for il, k in enumerate(neurons):
        writer.add_tensor_info(f"blk.{il}.gpu_idx", (n_ff,), np.dtype(np.int32), 4 * n_ff,
                               raw_dtype=gguf.GGMLQuantizationType.I32)
        writer.add_tensor_info(f"blk.{il}.gpu_bucket", (k,), np.dtype(np.int32), 4 * k,
                               raw_dtype=gguf.GGMLQuantizationType.I32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    _set_magic(path)
    return path


# --- the fixture is what PowerInfer writes -------------------------------------------------------------------------
def test_model_fixture_has_the_powerinfer_magic_and_names(tmp_path):
    path = write_powerinfer_model(tmp_path / "tiny.powerinfer.gguf")
    raw = path.read_bytes()
    assert raw[:4] == b"PWRI" and struct.unpack_from("<I", raw, 4)[0] == 3
    names = [t[0] for t in model_tensors(4, 512, 1536, 128, 1000)]
    assert "blk.0.ffn_down_t.weight" in names and "blk.0.ffn_down.weight" not in names
    assert len(names) == 1 + 4 * 11 + 2


def test_split_fixture_reads_back_with_gguf_py_once_the_magic_is_restored(tmp_path):
    path = write_gpu_index(tmp_path / "x.generated.gpuidx", [256, 0, 1536, 512], 1536, 123)
    raw = bytearray(path.read_bytes())
    assert raw[:4] == b"PWRI"
    raw[:4] = b"GGUF"
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(bytes(raw))
    with open(copy, "r+b") as f:  # the data region as a hole, so that gguf-py's memory map finds every tensor
        f.truncate(parse_gguf(LocalFile(copy)).expected_size)
    reader = gguf.GGUFReader(tmp_path / "copy.gguf")
    assert [t.name for t in reader.tensors][:2] == ["blk.0.gpu_idx", "blk.0.gpu_bucket"]
    assert int(reader.fields["split.vram_capacity"].parts[-1][0]) == 123


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    model = write_powerinfer_model(out / "relu-llama-tiny.powerinfer.gguf")
    (out / "activation").mkdir(exist_ok=True)
    print(model)
