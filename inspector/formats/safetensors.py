"""safetensors header parsing over a ByteSource: 8-byte little-endian length, then a JSON object.

Checks follow the format's own `validate()` (huggingface/safetensors): known dtypes, data_offsets that are
ordered, contiguous from 0 and equal to shape x dtype width. Widths are in bits because F4 and F6 exist.

Stricter than the library in one respect: a key that appears twice in one JSON object is an error. The library
(serde into a HashMap) keeps the last silently; two different entries for one tensor then fail its offset check
("invalid offset"), two equal ones load. Either way the writer was broken, and which entry is meant is a guess.
"""
from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple

from ..errors import FormatError, UnknownTypeError, shown
from ..sources.base import ByteSource

# The safetensors reference caps the header at 100 MB (safetensors `MAX_HEADER_SIZE`).
MAX_HEADER_BYTES = 100_000_000
MAX_DIMS = 64
MAX_ELEMENTS = 1 << 50
U64_MAX = (1 << 64) - 1  # shapes and offsets are usize in the library: larger numbers fail its JSON decoding

# Every dtype in the safetensors spec (`Dtype` in safetensors/src/tensor.rs), width in bits.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}


class SafetensorsTensor(NamedTuple):  # a NamedTuple: built once per tensor, 3x cheaper than a frozen dataclass
    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    offset: int  # absolute in the file
    elements: int


@dataclass(frozen=True)
class SafetensorsHeader:
    source: str
    metadata: dict[str, str]
    tensors: tuple[SafetensorsTensor, ...]
    data_offset: int
    file_size: int

    @property
    def expected_size(self) -> int:
        ends = [t.offset + t.nbytes for t in self.tensors]
        return max(ends) if ends else self.data_offset


def parse_safetensors(source: ByteSource) -> SafetensorsHeader:
    """Parse a safetensors header with one read (two when the header is longer than the first read).

    Raises:
        FormatError: the length prefix, JSON, dtypes, shapes or offsets are invalid.
    """
    name, size = source.name, source.size()
    head = source.read(0, 8)
    if len(head) < 8:
        raise FormatError(name, f"file has {size} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", head)
    if n > MAX_HEADER_BYTES:
        raise FormatError(name, f"header length {n:,} exceeds the safetensors cap of {MAX_HEADER_BYTES:,} bytes")
    if 8 + n > size:
        raise FormatError(
            name, f"header length {n:,} runs past the end of the file ({size:,} bytes)", hint="the file is truncated"
        )
    raw = source.read(8, n)
    if raw.lstrip(b" \t\r\n")[:1] == b"[":  # said before json.loads builds a 100 MB array only to throw it away
        raise FormatError(name, "header must be a JSON object, found list", hint="the file is corrupt or not safetensors")
    header = _decode_json(name, raw)
    metadata = _read_metadata(name, header.pop("__metadata__", None))
    data_offset = 8 + n
    tensors = _read_tensors(name, header, data_offset)
    return SafetensorsHeader(name, metadata, tensors, data_offset, size)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: a dict, refusing a key given twice (json.loads keeps the last one silently)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


# A key token is a JSON string, optional whitespace, then a colon: this counts every one (and maybe more).
_KEY_END = re.compile(r'"[ \t\r\n]*:')


def _keys_built(header: Any) -> int:
    """Keys in the object and in the objects it holds directly: the header and its entries, where all keys are."""
    if type(header) is not dict:
        return -1
    return len(header) + sum(len(v) for v in header.values() if type(v) is dict)


def _no_duplicate_keys(raw: bytes, text: str, header: Any) -> bool:
    """True when no object in `header` (decoded by plain json.loads) lost a key given twice; False means "maybe".

    Sound by counting: every key token in the JSON holds a colon outside strings (and a UTF-8 multibyte
    character never holds the byte 0x3A), so colons >= key tokens >= keys of the decoded dicts, a key given twice
    counting once. Equal counts leave no room for a duplicate, at any depth. Colons inside string values (a
    timestamp in __metadata__) break the equality; the regex count of `"` + whitespace + `:` skips most of them.
    Plain json.loads then this check costs about half of json.loads with an object_pairs_hook on every object.
    """
    built = _keys_built(header)
    return raw.count(b":") == built or len(_KEY_END.findall(text)) == built


def _decode_json(name: str, raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        try:
            header = json.loads(text)
            checked = _no_duplicate_keys(raw, text, header)
        except (ValueError, RecursionError):  # the hooked decoding below says it as before: a duplicate key first
            checked = False
        if not checked:  # decode again, refusing a key given twice by its name
            header = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as e:
        raise FormatError(name, f"header JSON has the key {shown(e.key)} twice in one object",
                          hint="the file was written by a broken tool; re-save or re-download it") from None
    except UnicodeDecodeError as e:
        raise FormatError(name, f"header is not valid UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise FormatError(name, f"header is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise FormatError(name, "header JSON is nested too deeply") from None
    except ValueError as e:
        # Not a JSONDecodeError: Python refuses integer literals over 4,300 digits (int_max_str_digits) with a
        # plain ValueError, which escaped as a traceback. Such a number is never a real shape or offset.
        raise FormatError(name, f"header JSON holds an unreadable number: {str(e).split(':')[0]}") from None
    if not isinstance(header, dict):
        raise FormatError(name, f"header must be a JSON object, found {type(header).__name__}")
    return header


def _read_metadata(name: str, metadata: Any) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FormatError(name, "__metadata__ must be an object of string values")
    return metadata


def _read_tensors(name: str, header: dict[str, Any], data_offset: int) -> tuple[SafetensorsTensor, ...]:
    entries = [_well_formed_entry(key, value) or _read_entry(name, key, value) for key, value in header.items()]
    entries.sort(key=_OFFSETS)
    tensors = []
    end = 0
    for key, shape, dtype, (begin, stop), elements in entries:
        if begin != end:
            what = "overlaps the previous tensor" if begin < end else f"leaves a gap after byte {end:,}"
            raise FormatError(name, f"tensor {shown(key)} data_offsets [{shown(begin)}, {shown(stop)}] {what}")
        bits = elements * DTYPE_BITS[dtype]
        nbytes = bits >> 3 if not bits & 7 else _nbytes(name, key, dtype, elements)  # _nbytes says what is wrong
        if stop - begin != nbytes:
            raise FormatError(name, f"tensor {shown(key)}: data_offsets span {shown(stop - begin)} bytes but "
                                    f"{dtype} {shown(list(shape))} needs {nbytes:,}")
        end = stop
        tensors.append(_new_tuple(SafetensorsTensor, (key, shape, dtype, nbytes, data_offset + begin, elements)))
    return tuple(tensors)


_OFFSETS = itemgetter(3)  # (begin, end): entries in file order
# SafetensorsTensor(...) without the Python-level __new__ that namedtuple adds (one frame less per tensor); the
# fields are in declaration order
_new_tuple = tuple.__new__


def _well_formed_entry(key: str, value: Any) -> tuple[str, tuple[int, ...], str, tuple[int, int], int] | None:
    """What `_read_entry` returns, for an entry that passes all its checks at a glance; None sends any other entry
    to `_read_entry`, which finds and words the problem. Half its cost on 46k entries: one pass over the shape,
    no calls."""
    if type(value) is not dict:
        return None
    dtype, shape, offsets = value.get("dtype"), value.get("shape"), value.get("data_offsets")
    if (type(dtype) is not str or dtype not in DTYPE_BITS or type(shape) is not list or len(shape) > MAX_DIMS
            or type(offsets) is not list or len(offsets) != 2):
        return None
    begin, stop = offsets
    if type(begin) is not int or type(stop) is not int or not 0 <= begin <= stop <= U64_MAX:
        return None
    elements = 1
    for n in shape:
        if type(n) is not int or not 0 <= n <= U64_MAX:  # `type is int` also refuses bool, a subclass of int
            return None
        elements *= n  # at most 64 factors below 2^64: no runaway product
    if elements > MAX_ELEMENTS:
        return None
    return key, tuple(shape), dtype, (begin, stop), elements


def _read_entry(name: str, key: str, value: Any) -> tuple[str, tuple[int, ...], str, tuple[int, int], int]:
    if not isinstance(value, dict):
        raise FormatError(name, f"entry {shown(key)} must be an object with dtype, shape and data_offsets")
    dtype, shape, offsets = value.get("dtype"), value.get("shape"), value.get("data_offsets")
    if not isinstance(dtype, str):
        raise FormatError(name, f"tensor {shown(key)}: missing or invalid dtype")
    if dtype not in DTYPE_BITS:
        raise UnknownTypeError(name, f"tensor {shown(key)} has unknown dtype {shown(dtype)}", hint="update ckpt-size")
    if not _is_int_list(shape) or len(shape) > MAX_DIMS:
        raise FormatError(name, f"tensor {shown(key)}: shape must be a list of at most {MAX_DIMS} integers from 0 "
                                "to 2^64-1")
    if not _is_int_list(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise FormatError(name, f"tensor {shown(key)}: data_offsets must be [begin, end], integers from 0 to "
                                "2^64-1 with begin <= end")
    elements = 1
    for n in shape:
        elements *= n
        if elements > MAX_ELEMENTS and 0 not in shape:  # stop before the product grows to thousands of digits
            raise FormatError(name, f"tensor {shown(key)} claims more than {MAX_ELEMENTS:,} elements (shape "
                                    f"{shown(shape)}); the header is corrupt")
    return key, tuple(shape), dtype, (offsets[0], offsets[1]), elements


def _is_int_list(value: Any) -> bool:
    if type(value) is not list:
        return False
    for n in value:
        if type(n) is not int or not 0 <= n <= U64_MAX:  # `type is int` also refuses bool, a subclass of int
            return False
    return True


def _nbytes(name: str, key: str, dtype: str, elements: int) -> int:
    bits = elements * DTYPE_BITS[dtype]
    if bits % 8:
        raise FormatError(name, f"tensor {shown(key)}: {elements:,} elements of {dtype} do not fill whole bytes")
    return bits // 8
