"""Seeded fuzz cases in the normal suite (a small budget; `bench/fuzz.py --cases N` is the long run).

Every case of tests/_fuzz.py (mutated GGUF headers, mutated safetensors headers, split sets and index sets that lie)
must load or fail with a typed error on one line, within the time limit and 100 MB of Python allocations. A failing
case is printed with its number: `python bench/fuzz.py --family F --seed S --show N` rebuilds and runs it alone.
"""
from __future__ import annotations

import collections
import struct
from pathlib import Path

import pytest

from inspector.formats import parse_gguf
from inspector.sources.base import LocalFile
from tests._fuzz import FAMILIES, build_gguf, make_case, random_tensors, run_case

SEED = 20261204
CASES = {"load": 150, "cli": 40}
PEAK_LIMIT = 100 << 20


@pytest.mark.parametrize("through", list(CASES))
@pytest.mark.parametrize("family", FAMILIES)
def test_seeded_cases(tmp_path: Path, family: str, through: str) -> None:
    kinds: collections.Counter[str] = collections.Counter()
    failures = []
    for index in range(CASES[through]):
        case = make_case(family, SEED, index)
        outcome = run_case(case, tmp_path / "case", through=through, limit_seconds=20)
        kinds[outcome.kind] += 1
        if not outcome.passed or outcome.peak_bytes > PEAK_LIMIT:
            failures.append(f"{case.describe()} -> {outcome.kind}, {outcome.peak_bytes:,} bytes: {outcome.message}")
    assert not failures, "\n".join(failures[:5])
    # the cases reach past the first checks: some load, some are refused
    assert kinds["ok"] >= CASES[through] // 10 and kinds["error"] >= CASES[through] // 10, kinds


def test_case_numbers_rebuild_the_same_case() -> None:
    for family in FAMILIES:
        a, b = make_case(family, 7, 123), make_case(family, 7, 123)
        assert a.files == b.files and a.source == b.source and a.ops == b.ops
        assert make_case(family, 8, 123).files != a.files


def test_unmutated_gguf_builder_is_valid_and_sized_by_hand(tmp_path: Path) -> None:
    import random

    # one F32 tensor 8 x 2 (64 bytes) and one Q8_0 tensor 32 x 3 (3 blocks of 34 = 102 bytes), one string KV
    tensors = [("token_embd.weight", (8, 2), 0, 64), ("blk.0.attn_q.weight", (32, 3), 8, 102)]
    kvs = [("general.architecture", 8, "llama")]
    data, fields = build_gguf(random.Random(1), kvs=kvs, tensors=tensors, data="full")
    # header: 24 preamble + KV (8 + 20 + 4 + 8 + 5 = 45) + infos (8 + 17 + 4 + 16 + 12 = 57; 8 + 19 + 4 + 16 + 12 = 59)
    header_end = 24 + 45 + 57 + 59
    data_offset = -(-header_end // 32) * 32  # 192
    # offsets: 0, then 64 (64 is aligned); data region 64 + 102 padded to 32 = 64 + 128
    endian = "<" if data[4:8] == struct.pack("<I", 3) else ">"
    assert len(data) == data_offset + 64 + 128
    path = tmp_path / "b.gguf"
    path.write_bytes(data)
    header = parse_gguf(LocalFile(path))
    assert header.endian == endian and header.header_end == header_end and header.data_offset == data_offset
    assert [(t.name, t.ne, t.nbytes, t.offset) for t in header.tensors] == [
        ("token_embd.weight", (8, 2), 64, data_offset), ("blk.0.attn_q.weight", (32, 3), 102, data_offset + 64)]
    kinds = collections.Counter(kind for _, _, kind in fields)
    assert kinds["dim"] == 4 and kinds["offset"] == 2 and kinds["n_dims"] == 2 and kinds["name-len"] == 2


def test_random_tensors_fill_whole_blocks() -> None:
    import random

    blocks = {0: (1, 4), 1: (1, 2), 30: (1, 2), 8: (32, 34), 2: (32, 18), 12: (256, 144), 14: (256, 210),
              39: (32, 17), 23: (256, 136)}
    for name, ne, type_id, nbytes in random_tensors(random.Random(3), 200):
        block, size = blocks[type_id]
        elements = 1
        for n in ne:
            elements *= n
        assert ne[0] % block == 0 and nbytes == elements // block * size, name
