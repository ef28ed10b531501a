"""Byte builders for hostile-input tests: GGUF and safetensors files written field by field with struct.pack.

Layouts (ggml docs/gguf.md; safetensors README):
  GGUF        magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv | n_kv x KV | n_tensors x tensor info |
              zero padding to the alignment | data
  KV          string key | u32 value type | value
  string      u64 length | bytes (no terminator)
  array       u32 item type | u64 count | items
  tensor info string name | u32 n_dims | n_dims x u64 ne (ne0 first) | u32 ggml type | u64 offset (relative to data)
  safetensors u64 (little-endian) JSON length | JSON object | data
Every multi-byte field of a big-endian GGUF is big-endian, the magic included as bytes "GGUF".
"""
from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from typing import Any

# GGUF metadata value types (gguf.md `gguf_metadata_value_type`).
U8, I8, U16, I16, U32, I32, F32V, BOOL, STRING, ARRAY, U64, I64, F64 = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
_SCALAR_FMT = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32V: "f", BOOL: "?", U64: "Q",
               I64: "q", F64: "d"}

# ggml tensor types (ggml.h `enum ggml_type`): id, elements per block, bytes per block.
F32, F16, Q8_0, Q4_K = 0, 1, 8, 12
Q4_K_BLOCK, Q4_K_BYTES = 256, 144  # block_q4_K: 2 x f16 + 12 scale bytes + 128 nibble bytes = 144 per 256


def _b(s: str | bytes) -> bytes:
    return s.encode("utf-8") if isinstance(s, str) else s


def gstr(s: str | bytes, e: str = "<") -> bytes:
    raw = _b(s)
    return struct.pack(e + "Q", len(raw)) + raw


def value(vtype: int, v: Any, e: str = "<") -> bytes:
    """Encode a value of GGUF type `vtype`; an ARRAY value is `(item_type, [items])`."""
    if vtype == STRING:
        return gstr(v, e)
    if vtype == ARRAY:
        item_type, items = v
        body = b"".join(value(item_type, i, e) for i in items)
        return struct.pack(e + "IQ", item_type, len(items)) + body
    return struct.pack(e + _SCALAR_FMT[vtype], v)


def kv(key: str | bytes, vtype: int, v: Any, e: str = "<") -> bytes:
    return gstr(key, e) + struct.pack(e + "I", vtype) + value(vtype, v, e)


def kv_raw(key: str | bytes, vtype: int, payload: bytes, e: str = "<") -> bytes:
    """A KV whose value bytes are given as is (for hostile lengths and counts)."""
    return gstr(key, e) + struct.pack(e + "I", vtype) + payload


def tinfo(name: str | bytes, ne: Iterable[int], gtype: int, offset: int, e: str = "<",
          n_dims: int | None = None) -> bytes:
    ne = tuple(ne)
    dims = len(ne) if n_dims is None else n_dims
    return gstr(name, e) + struct.pack(e + "I", dims) + struct.pack(f"{e}{len(ne)}Q", *ne) + \
        struct.pack(e + "IQ", gtype, offset)


def pad(n: int, alignment: int = 32) -> int:
    return (n + alignment - 1) // alignment * alignment


def gguf_header(kvs: list[bytes], infos: list[bytes], *, e: str = "<", version: int = 3, magic: bytes = b"GGUF",
                n_kv: int | None = None, n_tensors: int | None = None) -> bytes:
    """Preamble + KVs + tensor infos, without padding or data."""
    return (magic + struct.pack(e + "I", version)
            + struct.pack(e + "QQ", len(infos) if n_tensors is None else n_tensors,
                          len(kvs) if n_kv is None else n_kv)
            + b"".join(kvs) + b"".join(infos))


def gguf_file(kvs: list[bytes], infos: list[bytes], data_len: int = 0, *, alignment: int = 32, **kw: Any) -> bytes:
    """A whole GGUF: header, zero padding to `alignment`, then `data_len` zero bytes of tensor data."""
    head = gguf_header(kvs, infos, **kw)
    return head + bytes(pad(len(head), alignment) - len(head)) + bytes(data_len)


# --- the small valid GGUF used by the truncation loop and the big-endian test ---------------------------------
# Sizes by hand:
#   preamble                                             4 + 4 + 8 + 8                  =  24
#   KV "general.architecture" (20 chars) = "llama"        8 + 20 + 4 + 8 + 5             =  45
#   KV "tokenizer.ggml.tokens" (21 chars) = ["a","bc","<s>"]
#                                                         8 + 21 + 4 + 4 + 8 + 9+10+11   =  75
#   tensor "token_embd.weight" (17 chars), ne (8, 4) F32  8 + 17 + 4 + 16 + 4 + 8        =  57
#   tensor "output_norm.weight" (18 chars), ne (8,) F32   8 + 18 + 4 +  8 + 4 + 8        =  50
#   header end                                            24 + 45 + 75 + 57 + 50         = 251
#   data offset (251 padded to 32)                                                       = 256
#   token_embd: 8*4*4 = 128 bytes at data+0; output_norm: 8*4 = 32 bytes at data+128   -> file = 256+160 = 416
SMALL_HEADER_END = 251
SMALL_DATA_OFFSET = 256
SMALL_FILE_SIZE = 416
SMALL_TENSOR_BYTES = 160
SMALL_PARAMS = 8 * 4 + 8
# where each field of the small file ends (absolute), for the truncation loop
SMALL_KV_END = 24 + 45 + 75  # 144
SMALL_NAME1_LEN_END = SMALL_KV_END + 8


def small_gguf(e: str = "<", *, name1: str | bytes = "token_embd.weight") -> bytes:
    kvs = [
        kv("general.architecture", STRING, "llama", e),
        kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["a", "bc", "<s>"]), e),
    ]
    infos = [tinfo(name1, (8, 4), F32, 0, e), tinfo("output_norm.weight", (8,), F32, 128, e)]
    return gguf_file(kvs, infos, 160, e=e)


# --- safetensors --------------------------------------------------------------------------------------------

def st_file(header: dict | list | str | bytes | Any, data_len: int = 0) -> bytes:
    """u64 little-endian header length + header (dict/list/number serialized as JSON, str/bytes as is) + data."""
    if isinstance(header, bytes):
        raw = header
    elif isinstance(header, str):
        raw = header.encode("utf-8")
    else:
        raw = json.dumps(header).encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw + bytes(data_len)


def st_entry(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
