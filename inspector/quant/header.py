"""GGUF header sizes from metadata values: what llama-quantize's header will weigh.

Layout (ggml docs/gguf.md, src/gguf.cpp): `magic u32 | version u32 | n_tensors u64 | n_kv u64`, then per KV
`key (u64 length + bytes) | value type u32 | value`, then per tensor `name | n_dims u32 | n_dims × u64 ne |
type u32 | offset u64`, then zero padding to the alignment. Arrays are `item type u32 | count u64 | items`.

Our GGUF parser keeps values, not their GGUF types, so widths follow the writers' conventions: integers are
4 bytes (gguf-py's writer and llama.cpp write u32/i32 for every integer key it sets, i32 for integer arrays)
except `split.no`/`split.count` (u16) and values beyond 32 bits (8); floats are f32; bools 1 byte. Arrays kept
lazily (LazyArray) carry their exact byte count. `predict` checks the result against the input file's real
data offset and says so when they disagree.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from ..formats.gguf import LazyArray

PREAMBLE = 4 + 4 + 8 + 8
ALIGNMENT = 32  # GGUF_DEFAULT_ALIGNMENT; llama-quantize always writes with it
SPLIT_KEY_TYPES = {"split.no": "u16", "split.count": "u16", "split.tensors.count": "i32"}  # gguf-split.cpp
_WIDTH = {"u16": 2, "i32": 4, "u32": 4}
_INT_WIDTHS = {key: _WIDTH[t] for key, t in SPLIT_KEY_TYPES.items()}
INTERNAL_PREFIX = "ckpt_size."  # keys our own layers add to Checkpoint.metadata; not part of any file


def pad(n: int, alignment: int = ALIGNMENT) -> int:
    return (n + alignment - 1) // alignment * alignment


def string_nbytes(text: str) -> int:
    return 8 + len(text.encode("utf-8"))


def _int_width(value: int) -> int:
    return 4 if -(1 << 31) <= value < (1 << 32) else 8


def _items_nbytes(items: Sequence[Any]) -> int:
    if not items:
        return 0
    sample = items[0]
    if isinstance(sample, bool):
        return len(items)
    if isinstance(sample, int):
        return len(items) * max(_int_width(int(v)) for v in items)
    if isinstance(sample, float):
        return 4 * len(items)
    if isinstance(sample, str):
        return sum(string_nbytes(v) for v in items)
    return sum(value_nbytes("", v) for v in items)  # nested arrays


def value_nbytes(key: str, value: Any) -> int:
    """Bytes of one KV value as written (its type field not included)."""
    if isinstance(value, LazyArray):
        return 4 + 8 + value.nbytes
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return _INT_WIDTHS.get(key) or _int_width(value)
    if isinstance(value, float):
        return 4
    if isinstance(value, str):
        return string_nbytes(value)
    if isinstance(value, (list, tuple)):
        return 4 + 8 + _items_nbytes(value)
    raise TypeError(f"metadata {key!r}: cannot size a value of type {type(value).__name__}")


def kv_nbytes(key: str, value: Any) -> int:
    return string_nbytes(key) + 4 + value_nbytes(key, value)


def metadata_nbytes(metadata: Mapping[str, Any]) -> int:
    """Bytes of every file KV (our internal `ckpt_size.*` keys skipped)."""
    return sum(kv_nbytes(k, v) for k, v in metadata.items() if not k.startswith(INTERNAL_PREFIX))


def tensor_info_nbytes(name: str, n_dims: int) -> int:
    return string_nbytes(name) + 4 + 8 * n_dims + 4 + 8


def tensor_infos_nbytes(tensors: Iterable[tuple[str, int]]) -> int:
    return sum(tensor_info_nbytes(name, n_dims) for name, n_dims in tensors)


def split_keys_nbytes() -> int:
    """The three split.* KVs every shard of a split set carries (values sized by their fixed types)."""
    return sum(string_nbytes(k) + 4 + _WIDTH[t] for k, t in SPLIT_KEY_TYPES.items())
