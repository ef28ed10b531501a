"""The index of a sharded safetensors set is compared with the shards: tensors listed in another shard or not at
all, tensors the index does not list, total_size. Exact warnings, worded as before their loop was rewritten."""
from __future__ import annotations

import json
from pathlib import Path

from inspector.formats import read_checkpoint
from inspector.sources.local import resolve_local
from tests._bytes import st_entry, st_file

SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")


def write_set(folder: Path, weight_map: dict[str, str], total_size: object) -> Path:
    folder.mkdir()
    # shard 1: a, b (one F32 each, 4 bytes); shard 2: c, d (2 x F16 each, 4 bytes): 16 bytes in all
    (folder / SHARDS[0]).write_bytes(st_file({"a": st_entry("F32", [1], 0, 4), "b": st_entry("F32", [1], 4, 8)}, 8))
    (folder / SHARDS[1]).write_bytes(st_file({"c": st_entry("F16", [2], 0, 4), "d": st_entry("F16", [2], 4, 8)}, 8))
    index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def test_an_agreeing_index_gives_no_warning(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "m", {"a": SHARDS[0], "b": SHARDS[0], "c": SHARDS[1], "d": SHARDS[1]}, 16)
    assert read_checkpoint(resolve_local(str(folder))).warnings == ()


def test_misplaced_missing_and_unlisted_tensors(tmp_path: Path) -> None:
    # b is listed in the wrong shard, z in no shard at all (2 absent, b first); d is not listed (1 extra);
    # total_size 17 against the 16 bytes of a, b, c, d
    weight_map = {"a": SHARDS[0], "b": SHARDS[1], "z": SHARDS[0], "c": SHARDS[1]}
    folder = write_set(tmp_path / "m", weight_map, 17)
    assert read_checkpoint(resolve_local(str(folder))).warnings == (
        "index lists 2 tensors not found in the shard it names, e.g. 'b'",
        "shards hold 1 tensors the index does not list, e.g. 'd'",
        "index metadata.total_size is 17 bytes but the shards' tensors hold 16",
    )
