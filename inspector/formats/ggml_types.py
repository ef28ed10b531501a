"""ggml tensor types: ids, names, block sizes and bytes per block, and exact tensor byte counts.

The mainline table is `gguf`'s `GGML_QUANT_SIZES` (gguf-py, the reference), kept as data in ggml_table.py (tested
equal to the installed gguf's, so runs need not import gguf and numpy), with two corrections checked against
ggml's `ggml-common.h` static_asserts (see ../shared/reference/quant-spec.md §1):
- Q8_1 is 36 bytes per block (two f16 + 32 int8); gguf-py still says 40 from an old float layout.
- Q2_0 (id 42, added July 2026) is missing from gguf 0.19.0: block 64, 18 bytes (f16 d + 16 bytes).
ik_llama.cpp's extra types live apart in `ik_llama_types.py`: they are looked up only for ids mainline lacks.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from ..errors import FormatError, UnknownTypeError
from .ggml_table import GGML_TYPES


class GgmlType(NamedTuple):
    type_id: int
    name: str  # upper-case, as gguf-py's GGMLQuantizationType (ggml's own type_name is lower-case)
    block_size: int  # elements per block
    type_size: int  # bytes per block
    row_meta_size: int = 0  # bytes per row stored before the blocks (some ik_llama.cpp types)
    origin: str = "ggml"


# Corrections to gguf-py's table, with where the right numbers come from.
_MAINLINE_CORRECTIONS = {
    9: ("Q8_1", 32, 36),  # ggml-common.h: block_q8_1 = {ggml_half d, s; int8_t qs[32]}
    42: ("Q2_0", 64, 18),  # ggml-common.h (2026-07): block_q2_0 = {ggml_half d; uint8_t qs[16]}
}


@lru_cache(maxsize=1)
def _mainline_by_id() -> dict[int, GgmlType]:
    table = {type_id: GgmlType(type_id, name, block, size) for type_id, name, block, size in GGML_TYPES}
    for type_id, (name, block, size) in _MAINLINE_CORRECTIONS.items():
        table[type_id] = GgmlType(type_id, name, block, size)
    return table


@lru_cache(maxsize=1)
def _ik_by_id() -> dict[int, GgmlType]:
    from .ik_llama_types import IK_LLAMA_TYPES

    return {
        t.type_id: GgmlType(t.type_id, t.name.upper(), t.block_size, t.type_size, t.row_meta_size, "ik_llama")
        for t in IK_LLAMA_TYPES
    }


def type_by_id(type_id: int) -> GgmlType | None:
    """The type with this id: mainline ggml first, then ik_llama.cpp's extra ids; None when neither knows it."""
    return _mainline_by_id().get(type_id) or _ik_by_id().get(type_id)


@lru_cache(maxsize=1)
def _by_name() -> dict[str, GgmlType]:
    names = {t.name.upper(): t for t in _ik_by_id().values()}
    names.update({t.name.upper(): t for t in _mainline_by_id().values()})
    return names


def type_by_name(name: str) -> GgmlType | None:
    """Look a type up by its name in any case (`q4_K`, `Q4_K`, `iq4_ks`)."""
    return _by_name().get(name.upper())


def all_types() -> list[GgmlType]:
    return sorted(_by_name().values(), key=lambda t: t.type_id)


def row_nbytes(gtype: GgmlType, ne0: int) -> int:
    """Bytes of one row of `ne0` elements; the row must hold whole blocks (ggml rejects other tensors)."""
    return gtype.row_meta_size + ne0 // gtype.block_size * gtype.type_size


def tensor_nbytes(gtype: GgmlType, ne: tuple[int, ...], *, source: str, tensor: str) -> int:
    """Exact bytes of a tensor with GGUF dims `ne` (ne0 first).

    Raises:
        FormatError: the row length is not a multiple of the type's block size.
    """
    ne0 = ne[0] if ne else 1
    if gtype.origin == "ik_llama" and gtype.name == "I2_S":
        # ik_llama.cpp's ggml_nbytes special-cases BitNet I2_S: 2 bits per weight plus 32 trailing bytes.
        return _product(ne) // 4 + 32
    if ne0 % gtype.block_size:
        raise FormatError(
            source,
            f"tensor {tensor!r}: row length {ne0} is not a multiple of {gtype.name}'s block size {gtype.block_size}",
        )
    return row_nbytes(gtype, ne0) * _product(ne[1:])


def _product(dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def require_type(type_id: int, *, source: str, tensor: str) -> GgmlType:
    gtype = type_by_id(type_id)
    if gtype is None:
        raise UnknownTypeError(
            source,
            f"tensor {tensor!r} has ggml type id {type_id}, which neither ggml nor ik_llama.cpp defines",
            hint="the file may be corrupt or from a newer llama.cpp; update ckpt-size",
        )
    return gtype
