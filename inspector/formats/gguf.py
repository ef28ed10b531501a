"""GGUF v2/v3 header parsing over a ByteSource (layout: ggml docs/gguf.md, src/gguf.cpp).

We parse GGUF ourselves instead of using `gguf.GGUFReader` because the reader needs a local file it can
memory-map (no Hub ranges) and builds a numpy object per tokenizer string (~15 s on a 262k vocabulary); this
parser skips large arrays by walking their lengths only and reads about as many bytes as the header has.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import FormatError, shown
from ..sources.base import ByteSource
from .cursor import HeaderCursor
from .ggml_types import GgmlType, require_type, tensor_nbytes

MAGIC = b"GGUF"
# PowerInfer's sparse GGUF and its `.generated.gpuidx` files: ordinary GGUF v3 whose first 4 bytes its converters
# overwrite with "PWRI" (PowerInfer ggml.h GGUF_POWERINFER_MAGIC; ggml.c gguf_init_from_file accepts either magic
# and marks PWRI files GGML_SPARSE_INFERENCE). The rest of the header is unchanged.
POWERINFER_MAGIC = b"PWRI"
# A PWRI file gets this metadata entry (it is not in the file) so that later layers, which see only the
# Checkpoint, know PowerInfer reads it as sparse. "ckpt_size." is the prefix of keys our own layers add
# (quant/header.py INTERNAL_PREFIX: never counted as header bytes).
MAGIC_KEY = "ckpt_size.magic"
DEFAULT_ALIGNMENT = 32  # GGUF_DEFAULT_ALIGNMENT
MAX_DIMS = 4  # GGML_MAX_DIMS
# Caps checked before anything is allocated (a hostile header must fail fast, not exhaust memory).
MAX_HEADER_BYTES = 1 << 30
MAX_KEY_LEN = 65535
MAX_STRING_LEN = 64 << 20
MAX_TENSOR_NAME_LEN = 4096
# The largest real GGUFs hold ~2,000 tensors (experts are stacked); each tensor info costs ~300 bytes of Python
# objects, so this cap keeps a minimal-record hostile header (24 bytes per tensor) under ~300 MB.
MAX_TENSORS = 1_000_000
MAX_KVS = 1_000_000
MAX_ARRAY_DEPTH = 8
INT64_MAX = (1 << 63) - 1  # ggml's ne[] are int64_t
MAX_ELEMENTS = 1 << 50  # ~1e15 elements in one tensor: far beyond any real model
# Arrays larger than these are skipped and kept as a LazyArray (tokenizer tokens, scores, merges).
EAGER_STRING_ITEMS = 1024
EAGER_SCALAR_ITEMS = 65536
# Items built as Python objects across all small arrays of one header: a 1-byte u8 becomes a ~36-byte int in a
# list, so many small arrays would turn a 1 GiB header into tens of GB. Arrays past this budget stay lazy too.
MAX_EAGER_ITEMS = 1 << 20
# Arrays inside arrays, in all: ggml's own reader (gguf.cpp, gguf_init_from_file_impl) refuses any array of arrays
# ("has invalid GGUF type"), gguf-py writes them. Each costs a Python call to walk, so 12-byte empty ones would make a
# 1 GiB header take minutes; no real file has more than a handful.
MAX_NESTED_ARRAYS = 1 << 16


class _Budget:
    """What one header may still build eagerly (items) and walk (nested arrays)."""

    __slots__ = ("eager", "nested")

    def __init__(self) -> None:
        self.eager = MAX_EAGER_ITEMS
        self.nested = MAX_NESTED_ARRAYS

# GGUF value types: id -> (name, struct format, size). 8 = string and 9 = array are handled apart.
_SCALARS: dict[int, tuple[str, str, int]] = {
    0: ("u8", "B", 1),
    1: ("i8", "b", 1),
    2: ("u16", "H", 2),
    3: ("i16", "h", 2),
    4: ("u32", "I", 4),
    5: ("i32", "i", 4),
    6: ("f32", "f", 4),
    7: ("bool", "?", 1),
    10: ("u64", "Q", 8),
    11: ("i64", "q", 8),
    12: ("f64", "d", 8),
}
_STRING, _ARRAY = 8, 9
_tuple_new = tuple.__new__


@dataclass(frozen=True)
class LazyArray:
    """A metadata array we did not materialize: its type, length and where its bytes are."""

    item_type: str
    count: int
    offset: int
    nbytes: int


class GgufTensor(NamedTuple):
    """One tensor info, sized and placed (a named tuple: a 100k-tensor header builds 100k of them)."""

    name: str
    ne: tuple[int, ...]
    gtype: GgmlType
    nbytes: int
    offset: int  # absolute in the file


@dataclass(frozen=True)
class GgufHeader:
    source: str
    version: int
    endian: str
    metadata: dict[str, Any]
    tensors: tuple[GgufTensor, ...]
    alignment: int
    header_end: int  # first byte after the tensor infos
    data_offset: int  # start of the data region (header_end padded to the alignment)
    file_size: int
    magic: bytes = MAGIC  # b"PWRI" for PowerInfer's sparse files

    @property
    def expected_size(self) -> int:
        """Smallest file size holding every tensor's bytes (writers also pad the last one; we do not need it)."""
        ends = [t.offset + t.nbytes for t in self.tensors]
        return max(ends) if ends else self.header_end


def parse_gguf(source: ByteSource, *, load_arrays: bool = False) -> GgufHeader:
    """Parse a GGUF header: metadata, tensor infos, alignment and data offset; reads no tensor data.

    Raises:
        FormatError: bad magic or version, truncated or hostile header, bad offsets, unknown tensor types.
    """
    size = source.size()
    cur = HeaderCursor(source, limit=min(size, MAX_HEADER_BYTES))
    magic, version, endian = _read_preamble(cur)
    cur.endian = endian
    n_tensors, n_kv = cur.unpack("QQ", 16, "tensor and metadata counts")
    _check_count(cur, n_kv, MAX_KVS, 13, "metadata entries")
    _check_count(cur, n_tensors, MAX_TENSORS, 24, "tensors")
    metadata = _read_metadata(cur, n_kv, load_arrays, _Budget())
    if magic == POWERINFER_MAGIC:
        metadata[MAGIC_KEY] = POWERINFER_MAGIC.decode("ascii")
    alignment = _alignment(cur, metadata)
    infos = _read_tensor_infos(cur, n_tensors)
    header_end = cur.offset
    data_offset = _pad(header_end, alignment)
    tensors = _place_tensors(source.name, infos, data_offset, alignment)
    return GgufHeader(source.name, version, endian, metadata, tensors, alignment, header_end, data_offset, size,
                      magic)


def _read_preamble(cur: HeaderCursor) -> tuple[bytes, int, str]:
    magic = cur.take(4, "magic")
    if magic not in (MAGIC, POWERINFER_MAGIC):
        raise cur.fail(f"not a GGUF file (magic {magic!r}, expected b'GGUF' or PowerInfer's b'PWRI')")
    raw = cur.take(4, "version")
    little, big = struct.unpack("<I", raw)[0], struct.unpack(">I", raw)[0]
    for version, endian in ((little, "<"), (big, ">")):
        if version in (2, 3):
            return magic, version, endian
    if little == 1:
        raise cur.fail("GGUF version 1 is not supported (llama.cpp rejects it too)", hint="re-convert the model")
    raise cur.fail(f"unknown GGUF version {little}")


def _check_count(cur: HeaderCursor, count: int, cap: int, min_item_bytes: int, what: str) -> None:
    """Reject counts that cannot fit in the rest of the file or exceed a sane cap, before looping on them."""
    if count > cap or count * min_item_bytes > cur.remaining():
        # Both causes share this check: a header cut short (a partial download) trips it as often as a corrupt
        # count does, so the hint must not claim corruption alone.
        raise cur.fail(f"header claims {count:,} {what}, more than the file can hold ({cur.remaining():,} bytes "
                       "left)", hint="the file is truncated or corrupt")


def _read_string(cur: HeaderCursor, cap: int, what: str) -> str:
    n = cur.u64(f"{what} length")
    # Two messages, not one "exceeds the cap or the file": a string cut by the end of a truncated file is the
    # common case and must say so; a length beyond the cap is a hostile or corrupt header.
    if n > cap:
        raise cur.fail(f"{what}: length {n:,} exceeds the {cap:,}-byte cap", hint="the file is corrupt")
    if n > cur.remaining():
        raise cur.fail(f"file ends inside the header while reading {what}: length {n:,} but only "
                       f"{cur.remaining():,} bytes are left", hint="the file is truncated or not a model file")
    raw = cur.take(n, what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise cur.fail(f"{what} is not valid UTF-8: {raw[:40]!r}") from None


def _read_metadata(cur: HeaderCursor, n_kv: int, load_arrays: bool, budget: _Budget) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = _read_string(cur, MAX_KEY_LEN, "metadata key")
        if key in metadata:
            raise cur.fail(f"duplicate metadata key {shown(key)}")
        value_type = cur.u32(f"type of {shown(key)}")
        metadata[key] = _read_value(cur, value_type, key, load_arrays, budget)
    return metadata


def _read_value(cur: HeaderCursor, value_type: int, key: str, load_arrays: bool, budget: _Budget) -> Any:
    if value_type in _SCALARS:
        _, fmt, size = _SCALARS[value_type]
        return cur.unpack(fmt, size, shown(key))[0]
    if value_type == _STRING:
        return _read_string(cur, MAX_STRING_LEN, f"value of {shown(key)}")
    if value_type == _ARRAY:
        return _read_array(cur, key, load_arrays, 0, budget, True)
    raise cur.fail(f"metadata {shown(key)} has unknown value type {value_type}")


def _eager(count: int, limit: int, load_arrays: bool, budget: _Budget, build: bool) -> bool:
    """Whether to build an array's items as Python objects (taking them from the header's budget)."""
    if load_arrays:
        return True
    if not build or count > limit or count > budget.eager:
        return False
    budget.eager -= count
    return True


def _read_array(cur: HeaderCursor, key: str, load_arrays: bool, depth: int, budget: _Budget, build: bool) -> Any:
    """An array value: its items, or a LazyArray when large or when `build` is False (walked by lengths only)."""
    if depth >= MAX_ARRAY_DEPTH:
        raise cur.fail(f"metadata {shown(key)}: arrays nested deeper than {MAX_ARRAY_DEPTH}")
    item_type, count = cur.unpack("IQ", 12, f"array header of {shown(key)}")
    start = cur.offset
    if item_type in _SCALARS:
        name, fmt, size = _SCALARS[item_type]
        _check_count(cur, count, 1 << 40, size, f"items in array {shown(key)}")
        if _eager(count, EAGER_SCALAR_ITEMS, load_arrays, budget, build):
            return list(cur.unpack(f"{count}{fmt}", count * size, shown(key)))
        cur.skip(count * size, shown(key))
        return LazyArray(name, count, start, count * size)
    if item_type == _STRING:
        _check_count(cur, count, 1 << 40, 8, f"items in array {shown(key)}")
        if _eager(count, EAGER_STRING_ITEMS, load_arrays, budget, build):
            return [_read_string(cur, MAX_STRING_LEN, f"item of {shown(key)}") for _ in range(count)]
        cur.skip_strings(count, MAX_STRING_LEN, f"items of {shown(key)}")
        return LazyArray("string", count, start, cur.offset - start)
    if item_type == _ARRAY:
        _check_count(cur, count, 1 << 40, 12, f"items in array {shown(key)}")
        if count > budget.nested:
            raise cur.fail(f"metadata {shown(key)}: more than {MAX_NESTED_ARRAYS:,} arrays inside arrays in this header "
                           "(ggml's reader accepts none)", hint="the file is corrupt or hostile")
        budget.nested -= count
        if _eager(count, EAGER_STRING_ITEMS, load_arrays, budget, build):
            return [_read_array(cur, key, load_arrays, depth + 1, budget, True) for _ in range(count)]
        for _ in range(count):  # walked, not built
            _read_array(cur, key, False, depth + 1, budget, False)
        return LazyArray("array", count, start, cur.offset - start)
    raise cur.fail(f"metadata {shown(key)}: array of unknown value type {item_type}")


def _alignment(cur: HeaderCursor, metadata: dict[str, Any]) -> int:
    value = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value & (value - 1):
        raise cur.fail(f"general.alignment must be a power of two, found {value!r}")
    return value


# One tensor info is at most 8 + name + 4 + 8 * MAX_DIMS + 12 bytes.
_INFO_OVERHEAD = 8 + 4 + 8 * MAX_DIMS + 12
_SHAPES = {e: tuple(struct.Struct(f"{e}{n}Q") for n in range(MAX_DIMS + 1)) for e in "<>"}
_LENGTH = {e: struct.Struct(f"{e}Q") for e in "<>"}
_COUNT = {e: struct.Struct(f"{e}I") for e in "<>"}
_TYPE_OFFSET = {e: struct.Struct(f"{e}IQ") for e in "<>"}


def _read_tensor_infos(cur: HeaderCursor, count: int) -> list[tuple[str, tuple[int, ...], int, int]]:
    """Every tensor info. A 100k-tensor header spends most of its parse here: records wholly in the buffer are
    read by this loop; any other (at the buffer's end, or one the loop would have to reject) goes through
    `_read_tensor_info`, which reads more or raises the precise error."""
    infos: list[tuple[str, tuple[int, ...], int, int]] = []
    append = infos.append
    length, n_dims, type_offset = (_LENGTH[cur.endian].unpack_from, _COUNT[cur.endian].unpack_from,
                                   _TYPE_OFFSET[cur.endian].unpack_from)
    shapes = [shape.unpack_from for shape in _SHAPES[cur.endian]]
    while len(infos) < count:
        buf, pos = cur._buf, cur._pos
        end = len(buf) - _INFO_OVERHEAD
        for _ in range(count - len(infos)):
            if pos + 8 > end:
                break
            (n,) = length(buf, pos)
            if n > MAX_TENSOR_NAME_LEN or pos + n > end:
                break
            start = pos + 8
            pos = start + n
            (dims,) = n_dims(buf, pos)
            if dims > MAX_DIMS:
                pos = start - 8
                break
            ne = shapes[dims](buf, pos + 4)
            elements = 1
            for d in ne:
                elements *= d
            if elements > MAX_ELEMENTS or (dims and max(ne) > INT64_MAX):
                pos = start - 8
                break
            pos += 4 + 8 * dims
            type_id, rel = type_offset(buf, pos)
            try:
                name = buf[start : start + n].decode("utf-8")
            except UnicodeDecodeError:
                pos = start - 8
                break
            pos += 12
            append((name, ne, type_id, rel))
        cur._pos = pos
        if len(infos) < count:
            append(_read_tensor_info(cur))
    return infos


def _read_tensor_info(cur: HeaderCursor) -> tuple[str, tuple[int, ...], int, int]:
    name = _read_string(cur, MAX_TENSOR_NAME_LEN, "tensor name")
    n_dims = cur.u32(f"dimension count of {name!r}")
    if n_dims > MAX_DIMS:
        raise cur.fail(f"tensor {name!r} has {n_dims} dimensions; GGUF allows at most {MAX_DIMS}")
    ne = cur.unpack(f"{n_dims}Q", 8 * n_dims, f"shape of {name!r}") if n_dims else ()
    # ggml reads ne as int64 and rejects negative ones (gguf.cpp: "has invalid number of elements"); without this
    # a shape like (2**63, 0) has 0 elements, slips past MAX_ELEMENTS and is shown as a 0-byte tensor.
    for j, n in enumerate(ne):
        if n > INT64_MAX:
            raise cur.fail(f"tensor {name!r} dimension {j} is {n:,}, negative as ggml's int64; the file is corrupt")
    type_id, rel_offset = cur.unpack("IQ", 12, f"type and offset of {name!r}")
    elements = 1
    for n in ne:
        elements *= n
    if elements > MAX_ELEMENTS:
        raise cur.fail(f"tensor {name!r} claims {elements:,} elements (shape {list(ne)}); the file is corrupt")
    return name, tuple(ne), type_id, rel_offset


def _place_tensors(
    source: str, infos: list[tuple[str, tuple[int, ...], int, int]], data_offset: int, alignment: int
) -> tuple[GgufTensor, ...]:
    """Size every tensor and check offsets: aligned, increasing in info order, not overlapping, names unique.
    Errors are raised in info order: the first bad tensor is the one named."""
    names = [info[0] for info in infos]
    duplicate = _first_duplicate(names) if len(set(names)) != len(names) else len(infos)
    tensors: list[GgufTensor] = []
    append = tensors.append
    end = 0
    previous = ""
    # type id -> (type, block size, row bytes per block, row metadata bytes); None: tensor_nbytes sizes it
    types: dict[int, tuple[GgmlType, int, int, int] | None] = {}
    gtypes: dict[int, GgmlType] = {}
    for i in range(duplicate):
        name, ne, type_id, rel = infos[i]
        if type_id not in gtypes:
            gtype = gtypes[type_id] = require_type(type_id, source=source, tensor=name)
            plain = not (gtype.origin == "ik_llama" and gtype.name == "I2_S")  # tensor_nbytes' one special case
            types[type_id] = (gtype, gtype.block_size, gtype.type_size, gtype.row_meta_size) if plain else None
        sizes = types[type_id]
        if sizes is not None and len(ne) == 2 and not ne[0] % sizes[1]:  # matrices: tensor_nbytes inlined
            gtype = sizes[0]
            nbytes = (sizes[3] + ne[0] // sizes[1] * sizes[2]) * ne[1]
        else:
            gtype = gtypes[type_id]
            nbytes = tensor_nbytes(gtype, ne, source=source, tensor=name)
        if rel % alignment:
            raise FormatError(source, f"tensor {name!r} offset {rel} is not a multiple of the alignment {alignment}")
        if rel < end:
            raise FormatError(source, f"tensor {name!r} at data offset {rel} overlaps {previous!r} (ends at {end})")
        end, previous = rel + nbytes, name
        # GgufTensor(...) without its Python-level __new__
        append(_tuple_new(GgufTensor, (name, ne, gtype, nbytes, data_offset + rel)))
    if duplicate < len(infos):
        raise FormatError(source, f"duplicate tensor name {names[duplicate]!r}")
    return tuple(tensors)


def _first_duplicate(names: list[str]) -> int:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            return i
        seen.add(name)
    return len(names)


def _pad(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment
