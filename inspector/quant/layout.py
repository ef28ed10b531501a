"""llama-quantize's options that change the file's layout or header: `--prune-layers`, `--keep-split`,
`--override-kv` (and the parsing of their values).

Facts from ggml-org/llama.cpp 0c1e5709 (same in 007dbbf3; no code copied):
- tools/quantize/quantize.cpp `parse_layer_prune`: comma-separated non-negative integers, sorted and deduplicated;
  anything else (a negative number, a word) is refused.
- src/llama-quant.cpp `remap_layer`: tensors are visited in the loader's order; the first `blk.N.` in a name (a
  regex search) is its block; a pruned block's tensors are dropped; a block before the first pruned one keeps its
  number; every later kept block gets the next free number, so the blocks are renumbered without gaps; then
  `{arch}.block_count` is set (u32) to the number of blocks kept — after `--override-kv` is applied, so it wins.
  The rules still read the input's hyperparameters (`block_count` included): the model was loaded before.
- `--keep-split`: the tensors are sorted by (input split index, offset in that split), so the rules' counters visit
  them in that order; split i of the output holds the tensors of input split i; split 0 carries every KV, the
  others only `split.no` (u16), `split.count` (u16) and `split.tensors.count` (i32), which every split gets when
  there is more than one; files are named `PREFIX-%05d-of-%05d.gguf` (`llama_split_path`), with one input file too.
- common/common.cpp `string_parse_kv_override`: `KEY=TYPE:VALUE` with TYPE `int` (atol), `float` (atof), `bool`
  (`true`/`false`), `str` (at most 127 bytes); the key is shorter than 128 bytes. llama-quant.cpp writes an int as
  u32 of its absolute value, a float as f32, after `general.file_type` is set — so it can change the file type
  written — and the loader applies the same overrides to the hyperparameters the rules read.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

from ..errors import UsageError

_BLOCK = re.compile(r"blk\.(\d+)\.")
MAX_KEY_BYTES = 127
MAX_STR_BYTES = 127


# ---------------------------------------------------------------------------------------------------------------
# --override-kv
# ---------------------------------------------------------------------------------------------------------------
def parse_override_kv(arg: str) -> tuple[str, Any]:
    """`KEY=TYPE:VALUE` -> (key, value) with the value as llama-quantize writes it (int: u32 of |v|).

    Raises:
        UsageError: no `=`, a key of 128 bytes or more, an unknown TYPE, a bad bool or a string over 127 bytes.
    """
    key, sep, rest = arg.partition("=")
    if not sep or len(key.encode("utf-8")) > MAX_KEY_BYTES or not key:
        raise UsageError(f"--override-kv: malformed KV override {arg!r}; expected KEY=TYPE:VALUE with a key of at "
                         "most 127 bytes, e.g. general.name=str:my-model")
    kind, colon, value = rest.partition(":")
    if not colon or kind not in ("int", "float", "bool", "str"):
        raise UsageError(f"--override-kv: invalid type in {arg!r}; TYPE is int, float, bool or str")
    if kind == "int":
        return key, abs(_c_atol(value)) & 0xFFFFFFFF
    if kind == "float":
        return key, _c_atof(value)
    if kind == "bool":
        if value not in ("true", "false"):
            raise UsageError(f"--override-kv: invalid boolean value in {arg!r}; use true or false")
        return key, value == "true"
    if len(value.encode("utf-8")) > MAX_STR_BYTES:
        raise UsageError(f"--override-kv: the value of {key!r} exceeds 127 bytes")
    return key, value


def _c_atol(text: str) -> int:
    """atol: leading blanks, an optional sign, then digits; 0 when none."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else 0


def _c_atof(text: str) -> float:
    m = re.match(r"\s*([+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))", text, re.I)
    return float(m.group(1)) if m else 0.0


def apply_overrides(metadata: Mapping[str, Any], overrides: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The KVs with each override set (gguf_set_val_*: replaces the key's value, or appends a new key)."""
    out = dict(metadata)
    for key, value in overrides:
        out.pop(key, None)
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------------------------------
# --prune-layers
# ---------------------------------------------------------------------------------------------------------------
def parse_prune_layers(text: str) -> tuple[int, ...]:
    """`L0,L1,…` -> sorted, deduplicated block numbers.

    Raises:
        UsageError: an item that is not a non-negative integer.
    """
    ids: set[int] = set()
    for item in text.split(","):
        m = re.match(r"\s*([+-]?\d+)", item)  # std::stoi: leading digits, the rest ignored
        if not m or int(m.group(1)) < 0:
            raise UsageError(f"--prune-layers: invalid layer id {item!r}; give comma-separated block numbers, e.g. 3,4")
        ids.add(int(m.group(1)))
    return tuple(sorted(ids))


def prune_renames(names_in_loader_order: Sequence[str], prune: Sequence[int]) -> tuple[dict[str, str | None], int]:
    """(old name -> new name, or None when pruned; the block count written) as `remap_layer` computes them."""
    if not prune:
        return {n: n for n in names_in_loader_order}, -1
    first = min(prune)
    pruned = set(prune)
    mapped: dict[int, int | None] = {}
    next_id = 0
    renames: dict[str, str | None] = {}
    for name in names_in_loader_order:
        m = _BLOCK.search(name)
        if m is None:
            renames[name] = name
            continue
        blk = int(m.group(1))
        if blk not in mapped:
            if blk in pruned:
                mapped[blk] = None
            elif blk < first:
                mapped[blk] = blk
                next_id = blk + 1
            else:
                mapped[blk] = next_id
                next_id += 1
        new = mapped[blk]
        renames[name] = None if new is None else name[:m.start(1)] + str(new) + name[m.end(1):]
    return renames, next_id


# ---------------------------------------------------------------------------------------------------------------
# --keep-split
# ---------------------------------------------------------------------------------------------------------------
def split_path(prefix: str, index: int, count: int) -> str:
    """llama_split_path's `%s-%05d-of-%05d.gguf` (index counted from 0 in the call, printed from 1)."""
    return f"{prefix}-{index + 1:05d}-of-{count:05d}.gguf"
