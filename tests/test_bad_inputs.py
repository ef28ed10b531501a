"""Hostile and broken inputs: every one must end in exit 1 and exactly one `Error: …` line, never a traceback.

Files are built byte by byte (tests/_bytes.py) and written to tmp_path. Every expected number below is worked out
from the bytes in the comments, not copied from the program's output.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from inspector.cli import main
from tests._bytes import (
    ARRAY,
    BOOL,
    F32,
    I32,
    Q4_K,
    SMALL_DATA_OFFSET,
    SMALL_FILE_SIZE,
    SMALL_HEADER_END,
    SMALL_PARAMS,
    SMALL_TENSOR_BYTES,
    STRING,
    U8,
    U16,
    U32,
    gguf_file,
    gguf_header,
    gstr,
    kv,
    kv_raw,
    small_gguf,
    st_entry,
    st_file,
    tinfo,
)

REPO = Path(__file__).resolve().parent.parent


# --- helpers --------------------------------------------------------------------------------------------------

def run_cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """Run `ckpt-size inspect ARGS` in-process; main() always ends in SystemExit."""
    with pytest.raises(SystemExit) as exc:
        main(["inspect", *map(str, args)])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def expect_error(capsys: pytest.CaptureFixture[str], source: object, *words: str, args: tuple = ()) -> str:
    """Exit 1, nothing on stdout, one stderr line `Error: …` holding every word; returns that line."""
    code, out, err = run_cli(capsys, source, *args)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("Error: "), line
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    assert code == 1, (code, line)
    assert out == ""
    return line


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def expect_gguf_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, *words: str) -> str:
    return expect_error(capsys, write(tmp_path, "bad.gguf", data), *words)


def peak_mib(fn) -> float:
    """Peak traced allocation while fn runs, in MiB."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


A_F32 = tinfo("a", (8,), F32, 0)  # 8 x 4 = 32 bytes at data offset 0


# --- GGUF: preamble -------------------------------------------------------------------------------------------

def test_gguf_wrong_magic(tmp_path, capsys):
    data = b"GGUX" + small_gguf()[4:]
    expect_gguf_error(tmp_path, capsys, data, "magic", "GGUX")


def test_gguf_version_1(tmp_path, capsys):
    expect_gguf_error(tmp_path, capsys, gguf_file([], [A_F32], 32, version=1), "version 1")


@pytest.mark.parametrize("version", [0, 4, 7, 0xFFFFFFFF])
def test_gguf_unknown_version(tmp_path, capsys, version):
    # little-endian u32; none of these reads as 2 or 3 in either byte order
    expect_gguf_error(tmp_path, capsys, gguf_file([], [A_F32], 32, version=version), f"version {version}")


# --- GGUF: every prefix of a small valid file ------------------------------------------------------------------
# Layout of small_gguf() (tests/_bytes.py): preamble 0..24; KV1 24..69; KV2 key len 69..77, key 77..98, type 98..102,
# array item type 102..106, count 106..114, strings 114..144; tensor infos 144..251; padding to 256; data 256..416.

def truncation_words(length: int) -> str:
    """Which check fires first for a file cut after `length` bytes."""
    if 24 <= length < 50:  # n_kv = 2 needs 2 x 13 bytes after the 24-byte preamble
        return "header claims 2 metadata entries, more than the file can hold"
    if 50 <= length < 72:  # n_tensors = 2 needs 2 x 24 bytes
        return "header claims 2 tensors, more than the file can hold"
    if 114 <= length < 138:  # 3 strings need at least 3 x 8 bytes after the array header ending at 114
        return "header claims 3 items in array 'tokenizer.ggml.tokens', more than the file can hold"
    return "file ends inside the header"


def test_small_gguf_is_valid(tmp_path, capsys):
    path = write(tmp_path, "ok.gguf", small_gguf())
    assert path.stat().st_size == SMALL_FILE_SIZE
    code, out, err = run_cli(capsys, path, "--format", "json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["tensor_count"] == 2
    assert doc["bytes"] == SMALL_TENSOR_BYTES
    assert doc["params"] == SMALL_PARAMS
    assert doc["files"][0]["header_bytes"] == SMALL_DATA_OFFSET


@pytest.mark.parametrize("length", range(SMALL_FILE_SIZE))
def test_gguf_every_prefix(tmp_path, capsys, length):
    path = write(tmp_path, "cut.gguf", small_gguf()[:length])
    if length < SMALL_HEADER_END:
        expect_error(capsys, path, truncation_words(length))
        return
    # The header is complete; the data region is not required: exit 0 and one warning with the missing bytes.
    code, out, err = run_cli(capsys, path)
    assert code == 0
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Warning: "), err
    missing = SMALL_FILE_SIZE - length
    assert f"{missing:,} bytes" in lines[0]
    assert ("header-only" if length <= SMALL_DATA_OFFSET else "shorter") in lines[0]
    assert f"{SMALL_TENSOR_BYTES} B" in out  # sizes still come from the header


# --- GGUF: absurd counts and lengths must fail fast, without allocating -------------------------------------------

def _with_counts(n_tensors: int, n_kv: int) -> bytes:
    data = bytearray(small_gguf())
    struct.pack_into("<QQ", data, 8, n_tensors, n_kv)
    return bytes(data)


@pytest.mark.parametrize(("n_tensors", "n_kv", "words"), [
    (2**63, 2, "9,223,372,036,854,775,808 tensors"),
    (2**40, 2, "1,099,511,627,776 tensors"),
    (2**64 - 1, 2, "18,446,744,073,709,551,615 tensors"),
    (2, 2**63, "9,223,372,036,854,775,808 metadata entries"),
    (2, 2**40, "1,099,511,627,776 metadata entries"),
])
def test_gguf_absurd_counts(tmp_path, capsys, n_tensors, n_kv, words):
    path = write(tmp_path, "counts.gguf", _with_counts(n_tensors, n_kv))
    start = time.perf_counter()
    peak = peak_mib(lambda: expect_error(capsys, path, words, "more than the file can hold"))
    assert time.perf_counter() - start < 5
    assert peak < 50


def _one_kv(payload: bytes, n_tensors: int = 0, tail: int = 64) -> bytes:
    """A header with one KV built from raw bytes, then `tail` zero bytes (so count checks pass)."""
    return gguf_header([payload], [], n_tensors=n_tensors) + bytes(tail)


@pytest.mark.parametrize(("data", "words"), [
    # key length 2**63 (the key cap is far smaller)
    (_one_kv(struct.pack("<Q", 2**63) + b"k" * 20), ("metadata key", "9,223,372,036,854,775,808", "cap")),
    # string value length 2**62
    (_one_kv(gstr("general.name") + struct.pack("<IQ", STRING, 2**62)),
     ("'general.name'", "4,611,686,018,427,387,904", "cap")),
    # string value of 1,000,000 bytes in a ~100-byte file: under the cap, but past the end of the file
    (_one_kv(gstr("general.name") + struct.pack("<IQ", STRING, 1_000_000)),
     ("'general.name'", "1,000,000", "file ends inside the header")),
    # tensor name length 2**64 - 1
    (gguf_header([], [struct.pack("<Q", 2**64 - 1)], n_tensors=1) + bytes(64),
     ("tensor name", "18,446,744,073,709,551,615", "cap")),
])
def test_gguf_absurd_string_length(tmp_path, capsys, data, words):
    path = write(tmp_path, "strlen.gguf", data)
    assert peak_mib(lambda: expect_error(capsys, path, *words)) < 50


@pytest.mark.parametrize(("item_type", "count"), [
    (U8, 2**62), (U32, 2**40), (U32, 100), (STRING, 2**40), (STRING, 2**63), (ARRAY, 2**50),
])
def test_gguf_absurd_array_count(tmp_path, capsys, item_type, count):
    # 100 u32 items need 400 bytes; the file has 64 after the array header, so even that cannot fit
    data = _one_kv(gstr("tokenizer.ggml.scores") + struct.pack("<IIQ", ARRAY, item_type, count))
    path = write(tmp_path, "arr.gguf", data)
    words = (f"{count:,} items in array 'tokenizer.ggml.scores'", "more than the file can hold")
    assert peak_mib(lambda: expect_error(capsys, path, *words)) < 50


def _nested(levels: int) -> bytes:
    """A KV whose value is `levels` nested arrays: levels-1 arrays of one array, the innermost an empty u32 array."""
    return kv_raw("x.nested", ARRAY, struct.pack("<IQ", ARRAY, 1) * (levels - 1) + struct.pack("<IQ", U32, 0))


def test_gguf_nested_arrays_deeper_than_cap(tmp_path, capsys):
    # the parser's cap is 8 levels: 9 must fail, naming the key
    expect_gguf_error(tmp_path, capsys, gguf_file([_nested(9)], [A_F32], 32), "'x.nested'", "nested deeper than 8")
    expect_gguf_error(tmp_path, capsys, gguf_file([_nested(10_000)], [A_F32], 32), "nested deeper")


def test_gguf_nested_arrays_at_cap_parse(tmp_path):
    from inspector.formats import parse_gguf
    from inspector.sources.base import LocalFile

    header = parse_gguf(LocalFile(write(tmp_path, "n8.gguf", gguf_file([_nested(8)], [A_F32], 32))))
    value = header.metadata["x.nested"]
    for _ in range(7):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value == []


@pytest.mark.parametrize(("data", "words"), [
    (gguf_file([kv(b"general.\xff\xfename", STRING, "x")], [A_F32], 32), ("metadata key", "UTF-8")),
    (gguf_file([kv("general.name", STRING, b"bad \xc3\x28 value")], [A_F32], 32), ("'general.name'", "UTF-8")),
    (gguf_file([], [tinfo(b"blk.0.\xe2\x82", (8,), F32, 0)], 32), ("tensor name", "UTF-8")),
])
def test_gguf_bad_utf8(tmp_path, capsys, data, words):
    expect_gguf_error(tmp_path, capsys, data, *words)


def test_gguf_unknown_value_type(tmp_path, capsys):
    data = gguf_file([kv_raw("general.name", 13, b"\0" * 8)], [A_F32], 32)
    expect_gguf_error(tmp_path, capsys, data, "'general.name'", "unknown value type 13")


# --- GGUF: tensor infos ---------------------------------------------------------------------------------------

def test_gguf_five_dims(tmp_path, capsys):
    data = gguf_file([], [tinfo("a", (1, 1, 1, 1, 1), F32, 0)], 32)
    expect_gguf_error(tmp_path, capsys, data, "'a'", "5 dimensions")


def test_gguf_dimension_beyond_int64(tmp_path, capsys):
    # ggml reads ne as int64: 2**63 is negative there, and with a 0 dim the product would hide it
    data = gguf_file([], [tinfo("a", (2**63, 0), F32, 0)], 0)
    expect_gguf_error(tmp_path, capsys, data, "'a'", "dimension 0")


def test_gguf_row_not_whole_blocks(tmp_path, capsys):
    # Q4_K packs 256 elements per block; a row of 100 cannot be stored
    data = gguf_file([], [tinfo("blk.0.ffn_up.weight", (100, 2), Q4_K, 0)], 0)
    expect_gguf_error(tmp_path, capsys, data, "'blk.0.ffn_up.weight'", "100", "256", "Q4_K")


@pytest.mark.parametrize("type_id", [100, 1000, 0xFFFFFFFF])
def test_gguf_unknown_ggml_type(tmp_path, capsys, type_id):
    # ids 43..96 and 100..132 are free in ggml and ik_llama.cpp (99 is ik_llama.cpp's Q8_2_X4, so not used here)
    data = gguf_file([], [tinfo("blk.3.attn_q.weight", (32, 2), type_id, 0)], 0)
    expect_gguf_error(tmp_path, capsys, data, "'blk.3.attn_q.weight'", f"type id {type_id}")


def test_gguf_overlapping_offsets(tmp_path, capsys):
    # a: 8x4 F32 = 128 bytes at 0; b starts at 64, inside a
    data = gguf_file([], [tinfo("a", (8, 4), F32, 0), tinfo("b", (8,), F32, 64)], 160)
    expect_gguf_error(tmp_path, capsys, data, "'b'", "overlaps 'a'")


def test_gguf_decreasing_offsets(tmp_path, capsys):
    # a at 32..64, then b at 0: out of order, which also overlaps what came before
    data = gguf_file([], [tinfo("a", (8,), F32, 32), tinfo("b", (8,), F32, 0)], 64)
    expect_gguf_error(tmp_path, capsys, data, "'b'", "offset 0", "overlaps")


def test_gguf_offset_not_aligned(tmp_path, capsys):
    # a: 32 bytes at 0; b at 48, and 48 is not a multiple of the default alignment 32
    data = gguf_file([], [A_F32, tinfo("b", (8,), F32, 48)], 96)
    expect_gguf_error(tmp_path, capsys, data, "'b'", "offset 48", "alignment 32")


def test_gguf_offset_not_aligned_to_custom_alignment(tmp_path, capsys):
    # with general.alignment = 64, b at 32 is misaligned even though 32 is the default alignment
    kvs = [kv("general.alignment", U32, 64)]
    data = gguf_file(kvs, [A_F32, tinfo("b", (8,), F32, 32)], 64, alignment=64)
    expect_gguf_error(tmp_path, capsys, data, "'b'", "offset 32", "alignment 64")


def test_gguf_duplicate_tensor_names(tmp_path, capsys):
    data = gguf_file([], [A_F32, tinfo("a", (8,), F32, 32)], 64)
    expect_gguf_error(tmp_path, capsys, data, "duplicate tensor name 'a'")


def test_gguf_duplicate_keys(tmp_path, capsys):
    kvs = [kv("general.name", STRING, "one"), kv("general.name", STRING, "two")]
    expect_gguf_error(tmp_path, capsys, gguf_file(kvs, [A_F32], 32), "duplicate metadata key 'general.name'")


@pytest.mark.parametrize(("kvbytes", "shown"), [
    (kv("general.alignment", U32, 0), "0"),
    (kv("general.alignment", U32, 3), "3"),
    (kv("general.alignment", U32, 48), "48"),
    (kv("general.alignment", STRING, "32"), "'32'"),
    (kv("general.alignment", BOOL, True), "True"),
])
def test_gguf_bad_alignment(tmp_path, capsys, kvbytes, shown):
    expect_gguf_error(tmp_path, capsys, gguf_file([kvbytes], [A_F32], 32), "general.alignment", "power of two",
                      f"found {shown}")


def test_gguf_tensor_past_end_is_a_warning(tmp_path, capsys):
    # header: 24 preamble + tensor info (8 + 1 + 4 + 8 + 4 + 8 = 33) = 57, data offset 64, file ends there.
    # a is 32 bytes at data offset 2**40, so the file lacks 2**40 + 32 bytes: a warning, not an error.
    path = write(tmp_path, "far.gguf", gguf_file([], [tinfo("a", (8,), F32, 2**40)], 0))
    assert path.stat().st_size == 64
    code, out, err = run_cli(capsys, path, "--format", "json")
    assert code == 0
    assert f"{2**40 + 32:,}" in err
    assert json.loads(out)["bytes"] == 32


# --- GGUF: split sets -----------------------------------------------------------------------------------------

def _shard(no: int, count: int, tensors_count: int, *, arch: bool = False) -> bytes:
    kvs = [kv("general.architecture", STRING, "llama")] if arch else []
    kvs += [kv("split.no", U16, no), kv("split.count", U16, count), kv("split.tensors.count", I32, tensors_count)]
    return gguf_file(kvs, [tinfo(f"blk.{no}.attn_norm.weight", (8,), F32, 0)], 32)


def _split_set(tmp_path: Path, shards: dict[int, bytes], count: int = 3) -> Path:
    for i, data in shards.items():
        write(tmp_path, f"m-{i:05d}-of-{count:05d}.gguf", data)
    return tmp_path / f"m-00001-of-{count:05d}.gguf"


def _good_shards() -> dict[int, bytes]:
    return {i: _shard(i - 1, 3, 3, arch=i == 1) for i in (1, 2, 3)}


def test_split_set_valid(tmp_path, capsys):
    first = _split_set(tmp_path, _good_shards())
    for source in (first, tmp_path / "m-00003-of-00003.gguf"):  # any shard loads the whole set
        code, out, err = run_cli(capsys, source, "--format", "json")
        assert (code, err) == (0, "")
        doc = json.loads(out)
        assert doc["tensor_count"] == 3
        assert doc["bytes"] == 3 * 32
        assert len(doc["files"]) == 3


def test_split_set_missing_shard(tmp_path, capsys):
    shards = _good_shards()
    del shards[2]
    first = _split_set(tmp_path, shards)
    expect_error(capsys, first, "m-00002-of-00003.gguf", "missing")


def test_split_set_wrong_split_no(tmp_path, capsys):
    shards = _good_shards()
    shards[2] = _shard(2, 3, 3)  # the second file claims to be split.no 2 (0-based: it must be 1)
    expect_error(capsys, _split_set(tmp_path, shards), "m-00002-of-00003.gguf", "split.no is 2, expected 1")


def test_split_set_wrong_split_count_in_a_shard(tmp_path, capsys):
    shards = _good_shards()
    shards[3] = _shard(2, 4, 3)
    expect_error(capsys, _split_set(tmp_path, shards), "m-00003-of-00003.gguf", "split.count is 4, expected 3")


def test_split_set_wrong_split_count_in_first(tmp_path, capsys):
    shards = _good_shards()
    shards[1] = _shard(0, 2, 3, arch=True)
    expect_error(capsys, _split_set(tmp_path, shards), "split.count is 2", "3 files")


def test_split_set_tensor_count_mismatch(tmp_path, capsys):
    shards = _good_shards()
    shards[1] = _shard(0, 3, 5, arch=True)
    expect_error(capsys, _split_set(tmp_path, shards), "split.tensors.count is 5", "3 tensors")


def test_split_set_same_tensor_in_two_shards(tmp_path, capsys):
    shards = _good_shards()
    kvs = [kv("split.no", U16, 1), kv("split.count", U16, 3), kv("split.tensors.count", I32, 3)]
    shards[2] = gguf_file(kvs, [tinfo("blk.0.attn_norm.weight", (8,), F32, 0)], 32)  # shard 1 holds it already
    expect_error(capsys, _split_set(tmp_path, shards), "'blk.0.attn_norm.weight'", "more than one file")


def test_single_file_with_string_split_no(tmp_path, capsys):
    # split.no of the wrong type in a file whose name does not say it is a shard: a warning, not a crash
    kvs = [kv("split.count", U16, 2), kv("split.no", STRING, "0")]
    code, out, err = run_cli(capsys, write(tmp_path, "x.gguf", gguf_file(kvs, [A_F32], 32)))
    assert code == 0 and "Traceback" not in err and out
    assert "2-file split set" in err


def test_non_string_architecture_is_a_warning(tmp_path, capsys):
    path = write(tmp_path, "arch.gguf", gguf_file([kv("general.architecture", U32, 7)], [A_F32], 32))
    code, out, err = run_cli(capsys, path)
    assert code == 0 and "Traceback" not in err and out
    assert "general.architecture is 7" in err


# --- GGUF: big-endian -----------------------------------------------------------------------------------------

def _sizes(doc: dict) -> dict:
    return {k: doc[k] for k in ("tensor_count", "params", "bytes", "roles", "architecture")}


def test_big_endian_gguf_matches_little_endian(tmp_path, capsys):
    le, be = small_gguf("<"), small_gguf(">")
    assert len(le) == len(be) and le != be and be[4:8] == b"\0\0\0\3"
    docs = []
    for name, data in (("le.gguf", le), ("be.gguf", be)):
        code, out, err = run_cli(capsys, write(tmp_path, name, data), "--format", "json", "--by", "tensor")
        assert (code, err) == (0, "")
        docs.append(json.loads(out))
    assert _sizes(docs[0]) == _sizes(docs[1])
    assert docs[1]["bytes"] == SMALL_TENSOR_BYTES
    assert [(t["name"], t["shape"], t["bytes"], t["offset"]) for t in docs[1]["tensors"]] == [
        ("token_embd.weight", [8, 4], 128, SMALL_DATA_OFFSET),
        ("output_norm.weight", [8], 32, SMALL_DATA_OFFSET + 128),
    ]


def test_big_endian_gguf_from_gguf_writer(tmp_path, capsys):
    import gguf

    def make(path: Path, endian: gguf.GGUFEndian) -> None:
        w = gguf.GGUFWriter(str(path), "llama", endianess=endian)
        w.add_block_count(1)
        w.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "hello"])
        w.add_tensor("token_embd.weight", np.zeros((3, 64), dtype=np.float16))  # 3*64*2 = 384 bytes
        w.add_tensor("blk.0.attn_q.weight", np.zeros((64, 64), dtype=np.float32))  # 64*64*4 = 16384 bytes
        w.add_tensor("output_norm.weight", np.zeros(64, dtype=np.float32))  # 256 bytes
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    docs = []
    for name, endian in (("le.gguf", gguf.GGUFEndian.LITTLE), ("be.gguf", gguf.GGUFEndian.BIG)):
        make(tmp_path / name, endian)
        code, out, err = run_cli(capsys, tmp_path / name, "--format", "json")
        assert (code, err) == (0, "")
        docs.append(json.loads(out))
    assert _sizes(docs[0]) == _sizes(docs[1])
    assert docs[1]["bytes"] == 384 + 16384 + 256
    assert docs[1]["params"] == 3 * 64 + 64 * 64 + 64


# --- safetensors ----------------------------------------------------------------------------------------------

def expect_st_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, *words: str) -> str:
    return expect_error(capsys, write(tmp_path, "bad.safetensors", data), *words)


@pytest.mark.parametrize("n", [0, 1, 5, 7])
def test_st_shorter_than_8_bytes(tmp_path, capsys, n):
    expect_st_error(tmp_path, capsys, b"\x02" * n, f"{n} bytes", "too short")


def test_st_header_beyond_file(tmp_path, capsys):
    # the prefix says 1,000 header bytes; the file has 8 + 10 = 18
    data = struct.pack("<Q", 1000) + b'{"a": 1}  '
    expect_st_error(tmp_path, capsys, data, "1,000", "18 bytes", "end of the file")


@pytest.mark.parametrize("n", [100_000_001, 2**40, 2**64 - 1])
def test_st_header_over_cap(tmp_path, capsys, n):
    path = write(tmp_path, "big.safetensors", struct.pack("<Q", n) + b"{}")
    assert peak_mib(lambda: expect_error(capsys, path, f"{n:,}", "cap")) < 50


def test_st_invalid_json(tmp_path, capsys):
    expect_st_error(tmp_path, capsys, st_file('{"a": {"dtype": "F32",'), "not valid JSON")


@pytest.mark.parametrize(("header", "kind"), [("[1, 2]", "list"), ("5", "int"), ('"x"', "str"), ("null", "NoneType")])
def test_st_json_not_an_object(tmp_path, capsys, header, kind):
    expect_st_error(tmp_path, capsys, st_file(header), "JSON object", kind)


@pytest.mark.parametrize("entry", [[1, 2], "F32", 3, None])
def test_st_entry_not_an_object(tmp_path, capsys, entry):
    expect_st_error(tmp_path, capsys, st_file({"w": entry}), "entry 'w'", "object")


@pytest.mark.parametrize("dtype", ["F7", "f32", "FLOAT32", "Q4_K"])
def test_st_unknown_dtype(tmp_path, capsys, dtype):
    expect_st_error(tmp_path, capsys, st_file({"w": st_entry(dtype, [2], 0, 8)}, 8), "'w'", f"dtype '{dtype}'")


@pytest.mark.parametrize("shape", [[-1, 4], [2.0, 4], [True, 4], [4, False], "4", None, [[2], 4]])
def test_st_bad_shape(tmp_path, capsys, shape):
    expect_st_error(tmp_path, capsys, st_file({"w": st_entry("F32", shape, 0, 8)}, 8), "'w'", "shape")


@pytest.mark.parametrize(("header", "words"), [
    # a: F32 [2] = 8 bytes at 0..8; b starts at 4
    ({"a": st_entry("F32", [2], 0, 8), "b": st_entry("F32", [2], 4, 12)}, ("'b'", "overlaps")),
    # b starts at 12: bytes 8..12 belong to nobody
    ({"a": st_entry("F32", [2], 0, 8), "b": st_entry("F32", [2], 12, 20)}, ("'b'", "gap after byte 8")),
    # the first tensor must start at 0
    ({"a": st_entry("F32", [2], 4, 12)}, ("'a'", "gap after byte 0")),
    # reversed
    ({"a": st_entry("F32", [2], 8, 0)}, ("'a'", "begin <= end")),
    # F32 [3] needs 12 bytes, the offsets give 8
    ({"a": st_entry("F32", [3], 0, 8)}, ("'a'", "8 bytes", "needs 12")),
    # BF16 [2, 3] needs 12 bytes, the offsets give 16
    ({"a": st_entry("BF16", [2, 3], 0, 16)}, ("'a'", "16 bytes", "needs 12")),
    # F4 [3] is 12 bits: not whole bytes
    ({"a": st_entry("F4", [3], 0, 2)}, ("'a'", "3 elements of F4", "whole bytes")),
    # F6 [3] is 18 bits
    ({"a": st_entry("F6_E2M3", [3], 0, 3)}, ("'a'", "F6_E2M3", "whole bytes")),
    # offsets that are not two non-negative integers
    ({"a": st_entry("F32", [2], -8, 0)}, ("'a'", "data_offsets")),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 16]}}, ("'a'", "data_offsets")),
    ({"a": {"dtype": "F32", "shape": [2]}}, ("'a'", "data_offsets")),
])
def test_st_bad_offsets(tmp_path, capsys, header, words):
    expect_st_error(tmp_path, capsys, st_file(header, 32), *words)


def test_st_f4_even_count_is_fine(tmp_path, capsys):
    # F4 [2, 4] = 8 elements x 4 bits = 4 bytes
    path = write(tmp_path, "f4.safetensors", st_file({"a": st_entry("F4", [2, 4], 0, 4)}, 4))
    code, out, _ = run_cli(capsys, path, "--format", "json")
    assert code == 0
    assert json.loads(out)["bytes"] == 4


@pytest.mark.parametrize("metadata", [{"format": 1}, {"format": None}, {"x": ["pt"]}, ["pt"], "pt"])
def test_st_metadata_not_strings(tmp_path, capsys, metadata):
    header = {"__metadata__": metadata, "a": st_entry("F32", [2], 0, 8)}
    expect_st_error(tmp_path, capsys, st_file(header, 8), "__metadata__")


def test_st_invalid_utf8(tmp_path, capsys):
    expect_st_error(tmp_path, capsys, st_file(b'{"w\xff\xfe": {}}'), "UTF-8")


@pytest.mark.parametrize(("header", "word"), [
    # an array is refused before parsing (json.loads of a 100 MB array would build it first)
    ("[" * 100_000 + "]" * 100_000, "found list"),
    ('{"a": {"dtype": "F32", "shape": ' + "[" * 100_000 + "]" * 100_000 + ', "data_offsets": [0, 0]}}', "nested"),
], ids=["top-level", "in-shape"])
def test_st_deep_nesting(tmp_path, capsys, header, word):
    expect_st_error(tmp_path, capsys, st_file(header), word)


def test_st_huge_integer_literal(tmp_path, capsys):
    # Python refuses to convert integer literals of more than 4,300 digits (a ValueError, not a JSONDecodeError)
    header = '{"a": {"dtype": "F32", "shape": [' + "1" * 5000 + '], "data_offsets": [0, 4]}}'
    expect_st_error(tmp_path, capsys, st_file(header), "number")


def test_st_huge_shape(tmp_path, capsys):
    # 2**40 x 2**40 elements: far beyond any tensor; must not be sized as if real
    expect_st_error(tmp_path, capsys, st_file({"a": st_entry("F32", [2**40, 2**40], 0, 8)}, 8), "'a'", "elements")


# --- index JSON -----------------------------------------------------------------------------------------------

def _index_dir(tmp_path: Path) -> Path:
    """Two valid shards: embed F16 [4, 8] = 64 bytes, lm_head F16 [4, 8] = 64 bytes."""
    folder = tmp_path / "model"
    folder.mkdir()
    write(folder, "model-00001-of-00002.safetensors",
          st_file({"model.embed_tokens.weight": st_entry("F16", [4, 8], 0, 64)}, 64))
    write(folder, "model-00002-of-00002.safetensors",
          st_file({"lm_head.weight": st_entry("F16", [4, 8], 0, 64)}, 64))
    return folder


WEIGHT_MAP = {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
              "lm_head.weight": "model-00002-of-00002.safetensors"}


def _index(tmp_path: Path, content: object) -> Path:
    folder = _index_dir(tmp_path)
    path = folder / "model.safetensors.index.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_index_valid(tmp_path, capsys):
    path = _index(tmp_path, {"metadata": {"total_size": 128}, "weight_map": WEIGHT_MAP})
    code, out, err = run_cli(capsys, path, "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out)["bytes"] == 128


def test_index_not_json(tmp_path, capsys):
    expect_error(capsys, _index(tmp_path, '{"weight_map": {'), "model.safetensors.index.json", "JSON")


@pytest.mark.parametrize(("content", "kind"), [([WEIGHT_MAP], "list"), ('"x"', "str"), ("42", "int")])
def test_index_not_an_object(tmp_path, capsys, content, kind):
    expect_error(capsys, _index(tmp_path, content), "JSON object", kind)


@pytest.mark.parametrize("content", [
    {"metadata": {"total_size": 128}},
    {"weight_map": ["model-00001-of-00002.safetensors"]},
    {"weight_map": "model-00001-of-00002.safetensors"},
    {"weight_map": {"lm_head.weight": 2}},
])
def test_index_bad_weight_map(tmp_path, capsys, content):
    expect_error(capsys, _index(tmp_path, content), "weight_map")


def test_index_shard_missing(tmp_path, capsys):
    weight_map = dict(WEIGHT_MAP, **{"model.norm.weight": "model-00003-of-00002.safetensors"})
    expect_error(capsys, _index(tmp_path, {"weight_map": weight_map}), "model-00003-of-00002.safetensors", "missing")


@pytest.mark.parametrize("shard", ["../outside.safetensors", "sub/../../outside.safetensors"])
def test_index_path_traversal(tmp_path, capsys, shard):
    # the file the index points at does exist, outside the model folder: it must not be read
    write(tmp_path, "outside.safetensors", st_file({"lm_head.weight": st_entry("F16", [4, 8], 0, 64)}, 64))
    weight_map = dict(WEIGHT_MAP, **{"lm_head.weight": shard})
    expect_error(capsys, _index(tmp_path, {"weight_map": weight_map}), "outside the folder", "outside.safetensors")


def test_index_absolute_path(tmp_path, capsys):
    outside = write(tmp_path, "outside.safetensors", st_file({"lm_head.weight": st_entry("F16", [4, 8], 0, 64)}, 64))
    weight_map = dict(WEIGHT_MAP, **{"lm_head.weight": str(outside)})
    expect_error(capsys, _index(tmp_path, {"weight_map": weight_map}), "outside the folder")


def test_index_total_size_mismatch_is_a_warning(tmp_path, capsys):
    # the shards hold 64 + 64 = 128 bytes of tensors; the index claims 999
    path = _index(tmp_path, {"metadata": {"total_size": 999}, "weight_map": WEIGHT_MAP})
    code, out, err = run_cli(capsys, path, "--format", "json")
    assert code == 0
    assert "Traceback" not in err
    warnings = [line for line in err.splitlines() if "total_size" in line]
    assert len(warnings) == 1 and warnings[0].startswith("Warning: ")
    assert "999" in warnings[0] and "128" in warnings[0]
    assert json.loads(out)["bytes"] == 128


@pytest.mark.parametrize("metadata", [[1], "x", 5])
def test_index_metadata_not_an_object(tmp_path, capsys, metadata):
    path = _index(tmp_path, {"metadata": metadata, "weight_map": WEIGHT_MAP})
    code, out, err = run_cli(capsys, path, "--format", "json")
    assert code == 0 and "Traceback" not in err
    assert "metadata" in err
    assert json.loads(out)["bytes"] == 128


def test_index_deep_nesting(tmp_path, capsys):
    line = expect_error(capsys, _index(tmp_path, '{"weight_map": ' + "[" * 100_000 + "]" * 100_000 + "}"))
    assert "nested too deeply" in line


def test_index_deep_nesting_names_the_file(tmp_path, capsys):
    expect_error(capsys, _index(tmp_path, '{"weight_map": ' + "[" * 100_000 + "]" * 100_000 + "}"),
                 "model.safetensors.index.json")


def test_index_huge_integer_literal(tmp_path, capsys):
    content = '{"metadata": {"total_size": ' + "9" * 5000 + '}, "weight_map": {}}'
    expect_error(capsys, _index(tmp_path, content), "JSON")


# --- directories and paths ------------------------------------------------------------------------------------

def test_directory_with_nothing_inspectable(tmp_path, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "README.md").write_text("no weights here\n")
    (folder / "model.bin").write_bytes(b"\0" * 64)
    expect_error(capsys, folder, str(folder), "no .gguf or .safetensors")


def test_path_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "model.gguf"
    expect_error(capsys, missing, str(missing), "no such file")


def test_file_of_unknown_kind(tmp_path, capsys):
    expect_error(capsys, write(tmp_path, "weights.bin", b"PK\3\4" + bytes(60)), "weights.bin", "not a .gguf")


# --- names from files are escaped before printing ---------------------------------------------------------------

EVIL = "\x1b[31mevil"


@pytest.mark.parametrize("fmt", ["table", "csv", "markdown"])
def test_control_characters_escaped_in_output(tmp_path, capsys, fmt):
    path = write(tmp_path, "evil.gguf", small_gguf(name1=EVIL))
    code, out, err = run_cli(capsys, path, "--by", "tensor", "--format", fmt)
    assert code == 0
    assert "\x1b" not in out and "\x1b" not in err
    assert "\\x1b[31mevil" in out


def test_control_characters_in_json_round_trip(tmp_path, capsys):
    path = write(tmp_path, "evil.gguf", small_gguf(name1=EVIL))
    code, out, err = run_cli(capsys, path, "--by", "tensor", "--format", "json")
    assert code == 0
    assert "\x1b" not in out and "\x1b" not in err
    assert EVIL in [t["name"] for t in json.loads(out)["tensors"]]


def test_control_characters_escaped_in_error_line(tmp_path, capsys):
    # a newline, an ESC and a right-to-left override in a name must not split or color the single Error line
    name = "evil\nError: fake\x1b[0m\u202e"
    data = gguf_file([], [tinfo(name, (8,), F32, 0), tinfo(name, (8,), F32, 32)], 64)
    line = expect_gguf_error(tmp_path, capsys, data, "duplicate tensor name")
    assert "\x1b" not in line and "\u202e" not in line


# --- the real entry point, in a subprocess ---------------------------------------------------------------------

def _subprocess(*args: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("CKPT_SIZE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "inspector", "inspect", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=60, check=False)


def test_subprocess_truncated_gguf(tmp_path):
    path = write(tmp_path, "cut.gguf", small_gguf()[:200])  # ends inside the tensor infos (144..251)
    proc = _subprocess(path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: ")
    assert "file ends inside the header" in proc.stderr and "Traceback" not in proc.stderr


def test_subprocess_bad_safetensors_and_debug(tmp_path):
    path = write(tmp_path, "bad.safetensors", st_file({"w": st_entry("F9", [2], 0, 8)}, 8))
    proc = _subprocess(path)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and "'F9'" in proc.stderr
    assert "Traceback" not in proc.stderr
    debug = _subprocess(path, "--debug")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and debug.stderr.splitlines()[-1].startswith("Error: ")


def test_subprocess_usage_error_exit_2(tmp_path):
    proc = _subprocess(write(tmp_path, "ok.gguf", small_gguf()), "--format", "yaml")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
