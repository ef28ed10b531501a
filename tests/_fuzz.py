"""Seeded hostile cases for the fuzz tests (tests/test_fuzz_cases.py) and the long run (bench/fuzz.py).

A case is a few files (name -> bytes) and the SOURCE to open among them. Case `i` of family `f` under seed `s` is
built from `random.Random(f"{f}:{s}:{i}")`, so any case a run reports is rebuilt by number alone. `run_case` opens it
the way `inspect` does (sources, formats, roles; or the whole command line) and sorts the outcome:

    ok       the checkpoint loaded (and, from the command line, exit 0)
    error    a typed error (CkptSizeError) whose message is one line          -- both are passes
    untyped  any other exception (OSError, RecursionError, …), or an "internal error" line
    hang     still running after the time limit
    bad-line an error message that is not one line, or longer than the error table's cap

Families: `gguf` (one file: valid headers written field by field with every field's position recorded, then
mutated), `safetensors` (one file: a header built as key/value pairs, then mutated as data and as text), `sets`
(GGUF split sets and safetensors index sets with lies: missing or extra shards, split keys that disagree, a
tensor in two shards, an index naming missing shards and tensors, paths leaving the folder).
"""
from __future__ import annotations

import copy
import json
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAMILIES = ("gguf", "safetensors", "sets")

# boundary values for u64 / u32 fields: around 0, the alignment, 2^31, 2^32, 2^63, 2^64 and counts like 10^12
EXTREME_U64 = [0, 1, 2, 3, 7, 8, 31, 32, 33, 255, 256, 4095, 4096, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1,
               2**32, 10**12, 2**40, 100 * 2**30, 2**50, 2**62, 2**63 - 1, 2**63, 2**64 - 32, 2**64 - 1]
EXTREME_U32 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 30, 39, 40, 41, 42, 99, 255, 2**16, 2**31 - 1,
               2**31, 2**32 - 1]

# (ggml type id, elements per block, bytes per block) from ggml-common.h, written out independently of the code
GGML_TYPES = [(0, 1, 4), (1, 1, 2), (30, 1, 2), (8, 32, 34), (2, 32, 18), (12, 256, 144), (14, 256, 210),
              (39, 32, 17), (23, 256, 136)]
ARCHS = ["llama", "qwen3moe", "deepseek2", "gpt-oss", "gemma3", "mixtral", "", "\x1b[31m", "a" * 300]
TENSOR_NAMES = ["token_embd.weight", "output_norm.weight", "output.weight", "blk.{i}.attn_q.weight",
                "blk.{i}.attn_k.weight", "blk.{i}.ffn_gate_exps.weight", "blk.{i}.ffn_down_exps.weight",
                "blk.{i}.ffn_up_shexp.weight", "blk.{i}.attn_norm.weight", "mm.0.weight", "\u00e9t\u00e9.{i}",
                "blk.{i}.x\nnewline", "v.blk.{i}.attn_out.weight", "blk.99999999999999999999.attn_k.weight"]
# safetensors dtypes and widths in bits (the safetensors spec, `Dtype` in safetensors/src/tensor.rs)
ST_DTYPES = {"F64": 64, "F32": 32, "F16": 16, "BF16": 16, "I64": 64, "I32": 32, "I16": 16, "I8": 8, "U8": 8,
             "BOOL": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8, "F4": 4, "F6_E2M3": 6, "C64": 64, "U64": 64}
HF_NAMES = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
            "model.layers.{i}.self_attn.q_proj.weight", "model.layers.{i}.mlp.experts.{e}.down_proj.weight",
            "model.layers.{i}.mlp.gate.weight", "model.layers.{i}.input_layernorm.weight", "__metadata__",
            "model.layers.{i}.mlp.experts.gate_up_proj_blocks", "\x00", "a\u2028b"]


@dataclass
class Case:
    family: str
    index: int
    files: dict[str, bytes]
    source: str  # path of the SOURCE inside the case folder; "" = the folder itself
    ops: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.family} case {self.index}: {'; '.join(self.ops)[:300]}"


# ---- GGUF, field by field ------------------------------------------------------------------------------------
class GgufWriter:
    """Bytes of a GGUF with the position and kind of every length, count, type, dimension and offset field."""

    def __init__(self, endian: str = "<") -> None:
        self.e = endian
        self.buf = bytearray()
        self.fields: list[tuple[int, int, str]] = []  # (offset, size, kind)

    def num(self, fmt: str, value: Any, kind: str) -> None:
        data = struct.pack(self.e + fmt, value)
        self.fields.append((len(self.buf), len(data), kind))
        self.buf += data

    def string(self, text: str | bytes, kind: str) -> None:
        raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        self.num("Q", len(raw), kind)
        self.buf += raw

    def value(self, vtype: int, v: Any) -> None:
        if vtype == 8:
            self.string(v, "string-len")
        elif vtype == 9:
            item_type, items = v
            self.num("I", item_type, "array-type")
            self.num("Q", len(items), "array-count")
            for item in items:
                self.value(item_type, item)
        else:
            self.num(_SCALAR[vtype], v, "scalar")


_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_INT_RANGE = {0: (0, 255), 1: (-128, 127), 2: (0, 65535), 3: (-32768, 32767), 4: (0, 2**32 - 1),
              5: (-2**31, 2**31 - 1), 10: (0, 2**64 - 1), 11: (-2**63, 2**63 - 1)}
META_KEYS = ["general.name", "general.file_type", "general.alignment", "llama.block_count", "llama.context_length",
             "llama.embedding_length", "llama.attention.head_count", "llama.expert_count", "tokenizer.ggml.tokens",
             "tokenizer.ggml.scores", "split.no", "split.count", "split.tensors.count", "x", "\x1b]0;title\x07"]


def random_value(rng: random.Random, depth: int = 0) -> tuple[int, Any]:
    vtype = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12] + ([9, 9] if depth < 2 else []))
    if vtype != 9:
        return vtype, random_scalar(rng, vtype)
    item = rng.choice([0, 4, 5, 6, 8, 10] + ([9] if depth < 1 else []))
    if item == 9:
        return vtype, (item, [random_value_of_array(rng, depth + 1) for _ in range(rng.choice([0, 1, 3]))])
    n = rng.choice([0, 1, 3, 8, 1025 if item == 8 else 70_000 if item == 0 else 5])
    if n > 100:  # a large array (lazy in the parser): the same item repeated, cheap to build
        return vtype, (item, [random_scalar(rng, item)] * n)
    return vtype, (item, [random_scalar(rng, item) for _ in range(n)])


def random_value_of_array(rng: random.Random, depth: int) -> Any:
    item = rng.choice([0, 5, 8])
    return (item, [random_scalar(rng, item) for _ in range(rng.choice([0, 1, 2]))])


def random_scalar(rng: random.Random, vtype: int) -> Any:
    if vtype in _INT_RANGE:
        lo, hi = _INT_RANGE[vtype]
        return rng.choice([lo, hi, 0, 1, rng.randint(lo, hi)])
    if vtype == 7:
        return rng.random() < 0.5
    if vtype in (6, 12):
        return rng.choice([0.0, -1.5, float("inf"), float("nan"), 1e30 if vtype == 12 else 3.0])
    return rng.choice(["", "llama", "a\nb", "\u00e9", "x" * rng.randint(0, 70)])


def random_tensors(rng: random.Random, count: int, layer_base: int = 0) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(name, ne, ggml type, nbytes) with ne0 a multiple of the type's block and names unique."""
    out, names = [], set()
    for k in range(count):
        name = rng.choice(TENSOR_NAMES).replace("{i}", str(layer_base + k))
        if name in names:
            name = f"{name}.{k}"
        names.add(name)
        type_id, block, size = rng.choice(GGML_TYPES)
        ne = [block * rng.choice([1, 2, 8])] + [rng.choice([1, 2, 3, 16]) for _ in range(rng.randint(0, 3))]
        elements = 1
        for n in ne:
            elements *= n
        out.append((name, tuple(ne), type_id, elements // block * size))
    return out


def build_gguf(rng: random.Random, *, kvs: list[tuple[str, int, Any]] | None = None,
               tensors: list[tuple[str, tuple[int, ...], int, int]] | None = None,
               data: str = "full") -> tuple[bytes, list[tuple[int, int, str]]]:
    """A GGUF (v3, little- or big-endian) with recorded fields; data 'full', 'none' or 'short'."""
    w = GgufWriter(rng.choice("<<<<>"))
    if kvs is None:
        kvs = [("general.architecture", 8, rng.choice(ARCHS[:6]))]
        for key in rng.sample(META_KEYS, rng.randint(0, 5)):
            kvs.append((key, *random_value(rng)))
    alignment = 32
    for key, vtype, v in kvs:
        if key == "general.alignment" and vtype in _INT_RANGE and isinstance(v, int) and v > 0 and v & (v - 1) == 0:
            alignment = v if v <= 4096 else 32
            if v > 4096:
                kvs = [x for x in kvs if x[0] != "general.alignment"]
    if tensors is None:
        tensors = random_tensors(rng, rng.randint(0, 6))
    w.buf += b"GGUF"
    w.num("I", 3, "version")
    w.num("Q", len(tensors), "n_tensors")
    w.num("Q", len(kvs), "n_kv")
    for key, vtype, v in kvs:
        w.string(key, "key-len")
        w.num("I", vtype, "value-type")
        w.value(vtype, v)
    offset = 0
    for name, ne, type_id, nbytes in tensors:
        w.string(name, "name-len")
        w.num("I", len(ne), "n_dims")
        for n in ne:
            w.num("Q", n, "dim")
        w.num("I", type_id, "ggml-type")
        w.num("Q", offset, "offset")
        offset += -(-nbytes // alignment) * alignment
    w.buf += bytes(-len(w.buf) % alignment)
    if data == "full":
        w.buf += bytes(offset)
    elif data == "short":
        w.buf += bytes(rng.randint(0, offset))
    return bytes(w.buf), w.fields


# ---- mutations on bytes ----------------------------------------------------------------------------------------
def mutate_bytes(rng: random.Random, data: bytes, fields: list[tuple[int, int, str]], ops: list[str],
                 header_end: int | None = None, rounds: int | None = None) -> bytes:
    buf = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.choice([1, 1, 1, 2, 3])):
        if not buf:
            break
        kind = rng.choice(["field", "field", "field", "flip", "truncate", "delete", "insert", "splice", "word"])
        if kind == "field" and fields:
            pos, size, what = rng.choice(fields)
            if pos + size > len(buf):
                continue
            value = rng.choice(EXTREME_U64 if size == 8 else EXTREME_U32) if rng.random() < 0.8 else \
                rng.getrandbits(8 * size)
            buf[pos:pos + size] = (value % (1 << (8 * size))).to_bytes(size, "little")
            ops.append(f"{what}@{pos}={value}")
        elif kind == "flip":
            i = rng.randrange(min(len(buf), header_end or len(buf)))
            bit = 1 << rng.randrange(8)
            buf[i] ^= bit
            ops.append(f"flip@{i}^{bit}")
        elif kind == "truncate":
            i = rng.randrange(len(buf))
            del buf[i:]
            ops.append(f"truncate@{i}")
        elif kind == "delete":
            i, n = rng.randrange(len(buf)), rng.randint(1, 16)
            del buf[i:i + n]
            ops.append(f"delete@{i}+{n}")
        elif kind == "insert":
            i, blob = rng.randrange(len(buf) + 1), rng.randbytes(rng.randint(1, 16))
            buf[i:i] = blob
            ops.append(f"insert@{i}+{len(blob)}")
        elif kind == "splice":
            src, dst, n = rng.randrange(len(buf)), rng.randrange(len(buf)), rng.randint(1, 64)
            buf[dst:dst] = buf[src:src + n]
            ops.append(f"splice {src}->{dst}+{n}")
        else:
            i = rng.randrange(len(buf))
            size = rng.choice([4, 8])
            value = rng.choice(EXTREME_U64 if size == 8 else EXTREME_U32)
            buf[i:i + size] = (value % (1 << (8 * size))).to_bytes(size, rng.choice(["little", "big"]))
            ops.append(f"word@{i}={value}")
    return bytes(buf)


def gguf_case(rng: random.Random, index: int) -> Case:
    ops: list[str] = []
    data_mode = rng.choice(["full", "full", "none", "short"])
    data, fields = build_gguf(rng, data=data_mode)
    ops.append(f"{len(data)} bytes, data {data_mode}")
    if rng.random() < 0.95:
        data = mutate_bytes(rng, data, fields, ops)
    return Case("gguf", index, {"m.gguf": data}, "m.gguf", ops)


# ---- safetensors: a header as key/value pairs (so keys can repeat), mutated as data and as text ---------------
def random_st_entries(rng: random.Random, count: int, layer: int = 0, names: set[str] | None = None
                      ) -> list[tuple[str, dict[str, Any], int]]:
    """(name, entry, nbytes) with contiguous data_offsets from 0, shapes that fill whole bytes; names unique (also
    against `names`, which collects them across the shards of a set)."""
    out, begin = [], 0
    names = set() if names is None else names
    for k in range(count):
        name = rng.choice(HF_NAMES).replace("{i}", str(layer + k)).replace("{e}", str(rng.randrange(256)))
        if name in names or name == "__metadata__":
            name = f"model.extra.{layer}.{k}.weight"
        names.add(name)
        dtype = rng.choice(list(ST_DTYPES))
        shape = [rng.choice([0, 1, 2, 4, 8, 16]) for _ in range(rng.randint(0, 3))]
        elements = 1
        for n in shape:
            elements *= n
        if elements * ST_DTYPES[dtype] % 8:
            shape, elements = [8] + shape, 8 * elements
        nbytes = elements * ST_DTYPES[dtype] // 8
        out.append((name, {"dtype": dtype, "shape": shape, "data_offsets": [begin, begin + nbytes]}, nbytes))
        begin += nbytes
    return out


class Raw:
    """JSON text written as is: numbers Python will not print (over 4,300 digits), nesting deeper than json.dumps
    recurses."""

    def __init__(self, text: str) -> None:
        self.text = text


def dump(v: Any) -> str:
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, list):
        return "[" + ",".join(dump(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(x)}" for k, x in v.items()) + "}"
    return json.dumps(v)


def st_text(pairs: list[tuple[str, Any]]) -> bytes:
    """A JSON object written pair by pair (json.dumps would merge repeated keys), padded with spaces to 8."""
    raw = ("{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in pairs) + "}").encode("utf-8", "surrogatepass")
    return raw + b" " * (-len(raw) % 8)


BAD_NUMBERS = [-1, -2**63, 2**63, 2**64 - 1, 2**64, 2**70, 10**30, 1.5, True, None, "4", [1], {"a": 1}]


def mutate_st_pairs(rng: random.Random, pairs: list[tuple[str, Any]], ops: list[str]) -> list[tuple[str, Any]]:
    pairs = [(k, copy.deepcopy(v)) for k, v in pairs]
    tensors = [i for i, (k, v) in enumerate(pairs) if k != "__metadata__" and isinstance(v, dict)
               and isinstance(v.get("data_offsets"), list) and len(v["data_offsets"]) == 2
               and all(type(x) is int for x in v["data_offsets"])]
    kind = rng.choice(["offset", "overlap", "gap", "dtype", "shape", "duplicate", "nested", "metadata", "entry",
                       "big-shape", "many-dims"])
    i = rng.choice(tensors) if tensors else None
    entry = pairs[i][1] if i is not None else None
    if kind == "offset" and entry:
        entry["data_offsets"][rng.randrange(2)] = rng.choice(BAD_NUMBERS + [0, 7, 2**32])
    elif kind == "overlap" and entry:
        entry["data_offsets"][0] = max(0, entry["data_offsets"][0] - rng.randint(1, 8))
    elif kind == "gap" and entry:
        entry["data_offsets"] = [x + rng.randint(1, 8) for x in entry["data_offsets"]]
    elif kind == "dtype" and entry:
        entry["dtype"] = rng.choice(["Q4_K", "f32", "", "F8", "FP8", "I4", "F6_E3M2X", 5, None, ["F32"]])
    elif kind == "shape" and entry:
        entry["shape"] = rng.choice([[-1], [2**64], [2**63, 0], [True], [1.0], "4", [[2]], None, {}])
    elif kind == "big-shape" and entry:
        entry["shape"] = [rng.choice([2**64 - 1, 2**63, Raw("9" * 4400)]) for _ in range(rng.randint(2, 70))]
    elif kind == "many-dims" and entry:
        entry["shape"] = [1] * rng.choice([64, 65, 1000])
    elif kind == "duplicate" and pairs:
        j = rng.randrange(len(pairs))
        twin = copy.deepcopy(pairs[j][1]) if rng.random() < 0.5 else {"dtype": "F32", "shape": [1],
                                                                      "data_offsets": [0, 4]}
        pairs.insert(rng.randrange(len(pairs) + 1), (pairs[j][0], twin))
    elif kind == "nested":
        depth = rng.choice([10, 100, 1000, 5000, 100_000])
        opener, closer = ("[", "]") if rng.random() < 0.5 else ('{"a":', "}")
        value: Any = Raw(opener * depth + "1" + closer * depth)
        target = rng.choice(["key", "shape", "metadata"])
        if target == "shape" and entry:
            entry["shape"] = value
        elif target == "metadata":
            pairs.append(("__metadata__", {"x": value}))
        else:
            pairs.append(("n", value))
        kind += f"{depth}-{target}"
    elif kind == "metadata":
        pairs.append(("__metadata__", rng.choice([{"format": 5}, "pt", [1], None, {"a": {"b": "c"}}, {}])))
    elif kind == "entry" and pairs:
        j = rng.randrange(len(pairs))
        pairs[j] = (pairs[j][0], rng.choice([None, 1, "x", [], {"dtype": "F32"}, {"shape": [1]}]))
    ops.append(kind)
    return pairs


def safetensors_case(rng: random.Random, index: int) -> Case:
    ops: list[str] = []
    entries = random_st_entries(rng, rng.randint(0, 6))
    pairs: list[tuple[str, Any]] = [(n, e) for n, e, _ in entries]
    if rng.random() < 0.4:
        pairs.insert(0, ("__metadata__", {"format": "pt"}))
    data_len = sum(b for _, _, b in entries)
    for _ in range(rng.choice([0, 1, 1, 2])):
        pairs = mutate_st_pairs(rng, pairs, ops)
    header = st_text(pairs)
    if rng.random() < 0.15:  # non-UTF-8 bytes inside the JSON text
        i = rng.randrange(len(header) + 1)
        header = header[:i] + rng.choice([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\x00"]) + header[i:]
        ops.append(f"bytes@{i}")
    declared = len(header)
    if rng.random() < 0.15:  # the length prefix lies
        declared = rng.choice([0, 1, 7, declared - 1, declared + 1, 100_000_001, 2**63, 2**64 - 1, 10**12])
        ops.append(f"length={declared}")
    data = struct.pack("<Q", declared % 2**64) + header + bytes(data_len if rng.random() < 0.8 else 0)
    fields = [(0, 8, "header-length")]
    if rng.random() < 0.5:
        data = mutate_bytes(rng, data, fields, ops, header_end=8 + len(header))
    return Case("safetensors", index, {"m.safetensors": data}, "m.safetensors", ops)



# ---- sets: GGUF split sets and safetensors index sets, with lies ------------------------------------------------
def split_set_case(rng: random.Random, index: int, ops: list[str]) -> Case:
    """llama.cpp's split layout (tools/gguf-split): `<prefix>-%05d-of-%05d.gguf`, split.no (u16, 0-based), split.count
    (u16) and split.tensors.count (i32) in every shard, the model KVs in the first one only."""
    count = rng.randint(2, 4)
    shards = [random_tensors(rng, rng.randint(1, 3), layer_base=10 * k) for k in range(count)]
    total = sum(len(s) for s in shards)
    lie = rng.choice(["none", "missing", "count", "no", "total", "duplicate", "extra-shard", "bytes", "rename"])
    ops.append(f"{count} shards, {lie}")
    files: dict[str, bytes] = {}
    for k, tensors in enumerate(shards):
        no, cnt, tot = k, count, total
        if lie == "count" and k == rng.randrange(count):
            cnt = rng.choice([count + 1, count - 1, 0, 65535])
        if lie == "no" and k == rng.randrange(count):
            no = rng.choice([k + 1, 0 if k else 1, 65535])
        if lie == "total":
            tot = rng.choice([total + 1, total - 1, 0, -1, 2**31 - 1])
        if lie == "duplicate" and k == count - 1:
            tensors = tensors + [shards[0][0]]
            tot += 1
        kvs = ([("general.architecture", 8, "llama")] if k == 0 else []) + \
            [("split.no", 2, no % 65536), ("split.count", 2, cnt % 65536), ("split.tensors.count", 5, tot)]
        data, fields = build_gguf(rng, kvs=kvs, tensors=tensors, data=rng.choice(["full", "none"]))
        if lie == "bytes" and k == rng.randrange(count):
            data = mutate_bytes(rng, data, fields, ops)
        files[f"m-{k + 1:05d}-of-{count:05d}.gguf"] = data
    names = list(files)
    if lie == "missing":
        del files[rng.choice(names)]
    elif lie == "extra-shard":
        files[f"m-{count + 1:05d}-of-{count:05d}.gguf"] = files[names[0]]
    elif lie == "rename":
        victim = rng.choice(names)
        files[victim.replace("-of-", "-of-0")] = files.pop(victim)
    source = rng.choice(["", *sorted(files)]) if files else ""
    return Case("sets", index, files, source, ops)


def index_set_case(rng: random.Random, index: int, ops: list[str]) -> Case:
    """transformers' sharded layout: model-0000k-of-0000n.safetensors and model.safetensors.index.json with
    `weight_map` (tensor -> shard file) and `metadata.total_size`."""
    count = rng.randint(1, 3)
    files: dict[str, bytes] = {}
    weight_map: dict[str, Any] = {}
    total = 0
    taken: set[str] = set()
    for k in range(count):
        shard = f"model-{k + 1:05d}-of-{count:05d}.safetensors"
        entries = random_st_entries(rng, rng.randint(1, 3), layer=10 * k, names=taken)
        files[shard] = struct.pack("<Q", len(st_text([(n, e) for n, e, _ in entries]))) + \
            st_text([(n, e) for n, e, _ in entries]) + bytes(sum(b for _, _, b in entries))
        for n, _, b in entries:
            weight_map[n] = shard
            total += b
    index_doc: dict[str, Any] = {"metadata": {"total_size": total}, "weight_map": weight_map}
    lie = rng.choice(["none", "missing-shard", "missing-tensor", "unlisted", "traversal", "absolute", "not-string",
                      "total", "delete-shard", "weight-map", "metadata", "nested", "duplicate-key", "same-tensor"])
    ops.append(f"{count} shards, {lie}")
    names = list(weight_map)
    if lie == "missing-shard":
        weight_map[rng.choice(names)] = "model-00009-of-00009.safetensors"
    elif lie == "missing-tensor":
        weight_map["model.layers.99.ghost.weight"] = rng.choice(list(files))
    elif lie == "unlisted":
        del weight_map[rng.choice(names)]
    elif lie == "traversal":
        weight_map[rng.choice(names)] = rng.choice(["../outside.safetensors", "../../etc/passwd", "a/../../x"])
    elif lie == "absolute":
        weight_map[rng.choice(names)] = rng.choice(["/etc/passwd", "/dev/zero", "C:\\x.safetensors"])
    elif lie == "not-string":
        weight_map[rng.choice(names)] = rng.choice([None, 5, ["a"], {"a": 1}, ""])
    elif lie == "total":
        index_doc["metadata"]["total_size"] = rng.choice([-1, 0, total + 1, 2**64, "big", None, 1.5])
    elif lie == "delete-shard":
        del files[rng.choice(list(files))]
    elif lie == "weight-map":
        index_doc["weight_map"] = rng.choice([[], None, "x", 5, {}])
    elif lie == "metadata":
        index_doc["metadata"] = rng.choice([[], None, "x", 5])
    elif lie == "same-tensor" and count > 1:
        first, last = list(files)[0], list(files)[-1]
        entries = random_st_entries(rng, 1)
        name = next(n for n, s in weight_map.items() if s == first)
        pairs = [(name, entries[0][1])]
        files[last] = struct.pack("<Q", len(st_text(pairs))) + st_text(pairs) + bytes(entries[0][2])
    text = dump(index_doc)
    if lie == "nested":
        depth = rng.choice([100, 1000, 100_000])
        text = text[:-1] + ',"x":' + "[" * depth + "]" * depth + "}"
    elif lie == "duplicate-key" and names:
        text = text[:-1] + ',"weight_map":' + dump({names[0]: list(files)[0] if files else "x"}) + "}"
    files["model.safetensors.index.json"] = text.encode()
    if rng.random() < 0.5:
        files["config.json"] = dump(rng.choice([{"architectures": ["LlamaForCausalLM"], "model_type": "llama"},
                                                {"model_type": 5}, [], {"quantization_config": "x"},
                                                {"architectures": 5, "num_hidden_layers": -1}])).encode()
    source = rng.choice(["", "model.safetensors.index.json", *[n for n in files if n.endswith(".safetensors")]])
    return Case("sets", index, files, source, ops)


def sets_case(rng: random.Random, index: int) -> Case:
    ops: list[str] = []
    return split_set_case(rng, index, ops) if rng.random() < 0.5 else index_set_case(rng, index, ops)


BUILDERS = {"gguf": gguf_case, "safetensors": safetensors_case, "sets": sets_case}


def make_case(family: str, seed: int, index: int) -> Case:
    return BUILDERS[family](random.Random(f"{family}:{seed}:{index}"), index)


# ---- running a case --------------------------------------------------------------------------------------------
PASSES = ("ok", "error")


class CaseTimeout(BaseException):
    """Raised by the alarm inside a case that runs too long (a BaseException: no `except Exception` swallows it)."""


@dataclass
class Outcome:
    kind: str  # ok | error | untyped | hang | bad-line
    seconds: float
    peak_bytes: int
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.kind in PASSES


def write_case(case: Case, folder: Path) -> Path:
    import shutil

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    return folder / case.source if case.source else folder


def run_case(case: Case, folder: Path, *, through: str = "load", limit_seconds: float = 10.0,
             trace_memory: bool = True) -> Outcome:
    """Open the case as `inspect` would (`through` "load": api.load; "cli": the whole command, JSON output)."""
    import signal
    import time
    import tracemalloc

    source = str(write_case(case, folder))

    def alarm(signum: int, frame: object) -> None:
        raise CaseTimeout()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_seconds)
    # A caller that traces already (the long run starts once: starting and stopping per case grows the process by
    # a few KB a case) gets the peak above what was allocated before the case.
    started_here = trace_memory and not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    if trace_memory:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    try:
        kind, message = (_through_cli if through == "cli" else _through_load)(source)
    except CaseTimeout:
        kind, message = "hang", f"still running after {limit_seconds:g} s"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] - base if trace_memory else 0
        if started_here:
            tracemalloc.stop()
    return Outcome(kind, seconds, peak, message)


def _one_line(message: str) -> tuple[str, str]:
    from inspector.errors import MAX_MESSAGE_CHARS
    from inspector.report import safe

    shown = safe(message)
    if "\n" in shown or "\r" in shown or len(shown) > MAX_MESSAGE_CHARS + 100:
        return "bad-line", shown[:300]
    return "error", shown


def _through_load(source: str) -> tuple[str, str]:
    import traceback

    from inspector import api
    from inspector.errors import CkptSizeError, exit_code_of

    try:
        api.load(source)
    except CkptSizeError as e:
        return _one_line(exit_code_of(e)[1])
    except Exception as e:  # noqa: BLE001 - what the fuzz looks for
        return "untyped", "".join(traceback.format_exception(e))[-2000:]
    return "ok", ""


def _through_cli(source: str) -> tuple[str, str]:
    import contextlib
    import io

    from inspector.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["inspect", source, "--format", "json", "--by", "tensor"])
        except SystemExit as e:
            code = e.code
    lines = err.getvalue().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    if code == 0:
        return ("ok", "") if not errors else ("bad-line", err.getvalue()[-500:])
    if code not in (1, 2) or len(errors) != 1 or out.getvalue():  # 2: a usage question (a folder of 2 models)
        return "untyped", f"exit {code}: {err.getvalue()[-1500:]}"
    line = errors[0]
    if "internal error (" in line or any(line.startswith(f"Error: {t}:") for t in
                                         ("OSError", "MemoryError", "RecursionError", "PermissionError",
                                          "FileNotFoundError", "IsADirectoryError", "ValueError")):
        return "untyped", line[:1500]
    return _one_line(line[len("Error: "):])
