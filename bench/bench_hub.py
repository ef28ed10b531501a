"""Hub header reads: ckpt-size against huggingface_hub over the same fake Hub with injected latency.

    python bench/bench_hub.py [--latency 0.02] [--runs 3] [--json]

Two repos, written header-only (sparse files: real sizes, data regions are holes) by the fixture generator:

- ``bench/deepseek-v3-163``: DeepSeek-V3 in BF16 as 163 safetensors shards + index + config.json (~36 KB of
  header per shard). Reference: ``HfApi().get_safetensors_metadata`` (huggingface_hub's own header-only API),
  cold cache.
- ``bench/deepseek-v3-40``: the same tensors in 40 shards (~150 KB of header per shard, like Kimi-K2 or
  Qwen3-235B shards): huggingface_hub's fixed 100 kB first read needs a second GET per shard.
- ``bench/deepseek-v3.1-q4k``: a 1,087-file split GGUF (DeepSeek-V3.1-Terminus q4_K, one tensor per shard, as the
  Thireus GGUF-Tool-Suite ships it; rebuilt from ../shared, or a synthetic 1,000-file set when that is absent).
  huggingface_hub has no GGUF header API; the reference is its ranged-read API, ``HfFileSystem`` with a 64 KiB
  block size, opening every shard from a thread pool sized like huggingface_hub's (``min(32, cpu + 4)``), each
  parsed by the same GGUF parser.

The fake Hub (tests/hub_server.py) runs in its own process (so it does not share our GIL), redirects model
files from ``/resolve`` to a second "CDN" origin like the real Hub, and adds `--latency` seconds to every answer.
Requests and bytes are counted by the server: every HTTP exchange (HEAD, redirect hop, ranged GET) and every
body byte it sent. Wall time is the median of `--runs` runs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ST_REPO = "bench/deepseek-v3-163"
ST40_REPO = "bench/deepseek-v3-40"
GGUF_REPO = "bench/deepseek-v3.1-q4k"


def build_repos(work: Path) -> dict[str, Path]:
    from fixtures.generate import (
        DEEPSEEK_V31_Q4K_MAP,
        rebuild_split_from_map,
        write_safetensors,
    )

    st = work / "deepseek-v3-163"
    write_safetensors(st, "deepseek-v3", shards=163, mode="sparse")
    st40 = work / "deepseek-v3-40"
    write_safetensors(st40, "deepseek-v3", shards=40, mode="sparse")
    gg = work / "deepseek-v3.1-q4k"
    if DEEPSEEK_V31_Q4K_MAP.is_file():
        rebuild_split_from_map(DEEPSEEK_V31_Q4K_MAP, gg / "Q4_K", mode="sparse")
    else:
        _synthetic_split(gg / "Q4_K", 1000)
    return {ST_REPO: st, ST40_REPO: st40, GGUF_REPO: gg}


def _synthetic_split(folder: Path, shards: int) -> None:
    import gguf
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    q4k = gguf.GGMLQuantizationType.Q4_K
    for i in range(shards):
        w = gguf.GGUFWriter(folder / f"model-Q4_K-{i + 1:05d}-of-{shards:05d}.gguf", "llama")
        if i:
            del w.kv_data[0][gguf.Keys.General.ARCHITECTURE]
        w.add_key_value("split.no", i, gguf.GGUFValueType.UINT16)
        w.add_key_value("split.count", shards, gguf.GGUFValueType.UINT16)
        w.add_key_value("split.tensors.count", shards - 1, gguf.GGUFValueType.INT32)
        if i:
            w.add_tensor_info(f"blk.{i - 1}.ffn_down.weight", (7168, 2048), np.dtype(np.float32), 7168 * 2048 // 256 * 144,
                              raw_dtype=q4k)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        w.close()


def start_server(repos: dict[str, Path], latency: float) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "tests.hub_server", "--latency", str(latency)]
    for repo_id, folder in repos.items():
        cmd += ["--repo", f"{repo_id}={folder}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise SystemExit(f"fake Hub did not start: {url!r}")
    return proc, url


def server(url: str, what: str) -> dict[str, dict[str, int]]:
    with urllib.request.urlopen(f"{url}/_fake/{what}") as r:
        return json.loads(r.read())


class FsSource:
    """A ByteSource over an fsspec file (HfFileSystem), for the reference GGUF reads."""

    def __init__(self, fh: Any, name: str) -> None:
        self.fh = fh
        self.name = name

    def size(self) -> int:
        return self.fh.size

    def read(self, offset: int, n: int) -> bytes:
        self.fh.seek(offset)
        return self.fh.read(n)


def ours(repo: str) -> Callable[[], int]:
    """End to end: resolve_hub + read_checkpoint (parsing starts with the first file, while the rest arrive)."""

    def run() -> int:
        from inspector.formats import read_checkpoint
        from inspector.sources.hub import resolve_hub

        checkpoint = read_checkpoint(resolve_hub(repo))
        return sum(t.nbytes for t in checkpoint.tensors)

    return run


def ours_fetch_only(repo: str, runs: int) -> float:
    """Median seconds until every file's first block has arrived (the Hub side alone, no parsing)."""
    from inspector.sources.hub import resolve_hub

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        resolved = resolve_hub(repo)
        for f in resolved.files:
            f.read(0, 8)  # served from the prefetched first block: waits for it, sends nothing
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def local_parse(folder: Path) -> float:
    """Seconds to parse the same files from disk (the part of the work that is not the Hub's)."""
    from inspector.formats import read_checkpoint
    from inspector.sources.local import resolve_local

    times = []
    for _ in range(3):
        started = time.perf_counter()
        read_checkpoint(resolve_local(str(folder)))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def hf_safetensors(repo: str, cache: Path) -> Callable[[], int]:
    def run() -> int:
        from huggingface_hub import HfApi

        shutil.rmtree(cache, ignore_errors=True)  # cold, like a first look at a repo
        meta = HfApi().get_safetensors_metadata(repo)
        return sum(t.data_offsets[1] - t.data_offsets[0]
                   for f in meta.files_metadata.values() for t in f.tensors.values())

    return run


def hf_filesystem_gguf(repo: str) -> Callable[[], int]:
    def run() -> int:
        from concurrent.futures import ThreadPoolExecutor

        from huggingface_hub import HfFileSystem

        from inspector.formats.gguf import parse_gguf

        fs = HfFileSystem(skip_instance_cache=True)
        paths = sorted(p for p in fs.glob(f"{repo}/**/*.gguf"))

        def header(path: str) -> int:
            with fs.open(path, "rb", block_size=64 << 10) as fh:
                return sum(t.nbytes for t in parse_gguf(FsSource(fh, path)).tensors)

        with ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4)) as pool:
            return sum(pool.map(header, paths))

    return run


def measure(url: str, fn: Callable[[], int], runs: int) -> dict[str, Any]:
    times, cpu, totals, stats = [], [], set(), {}
    for _ in range(runs):
        server(url, "reset")
        started, cpu_started = time.perf_counter(), time.process_time()
        totals.add(fn())
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        stats = server(url, "stats")
    return {
        "seconds": statistics.median(times),
        "cpu_seconds": statistics.median(cpu),
        "requests": sum(v["requests"] for v in stats.values()),
        "bytes": sum(v["bytes"] for v in stats.values()),
        "by_kind": stats,
        "tensor_bytes": totals.pop() if len(totals) == 1 else sorted(totals),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added to every answer (default 0.02)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="ckpt-size-bench-hub-"))
    proc = None
    try:
        repos = build_repos(work / "repos")
        proc, url = start_server(repos, args.latency)
        # huggingface_hub reads these at import time: set them before anything imports it
        os.environ.update(HF_ENDPOINT=url, HF_HOME=str(work / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
                          HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_IMPLICIT_TOKEN="1")
        os.environ.pop("HF_HUB_OFFLINE", None)
        cache = work / "hf-home" / "hub"
        ours(ST_REPO)()  # warm-up: imports and the HTTP session, for both sides
        hf_safetensors(ST_REPO, cache)()
        plan = [("safetensors 163 shards", ST_REPO, hf_safetensors(ST_REPO, cache), "get_safetensors_metadata"),
                ("safetensors 40 shards", ST40_REPO, hf_safetensors(ST40_REPO, cache), "get_safetensors_metadata"),
                ("GGUF split set", GGUF_REPO, hf_filesystem_gguf(GGUF_REPO), "HfFileSystem 64 KiB blocks")]
        cases = {}
        for name, repo, reference, ref_name in plan:
            mine = measure(url, ours(repo), args.runs)
            mine["fetch_seconds"] = ours_fetch_only(repo, args.runs)
            folder = repos[repo]
            if repo == GGUF_REPO:
                folder = next(folder.rglob("*-00001-of-*.gguf"))
            mine["local_parse_seconds"] = local_parse(folder)
            cases[name] = (mine, measure(url, reference, args.runs), ref_name)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)

    results = {}
    for name, (mine, ref, ref_name) in cases.items():
        results[name] = {"ckpt_size": mine, "reference": {"name": ref_name, **ref},
                         "speedup": ref["seconds"] / mine["seconds"],
                         "fetch_speedup": ref["seconds"] / mine["fetch_seconds"],
                         "request_ratio": ref["requests"] / mine["requests"],
                         "same_tensor_bytes": mine["tensor_bytes"] == ref["tensor_bytes"]}
    if args.json:
        print(json.dumps({"latency": args.latency, "runs": args.runs, "cases": results}, indent=2))
        return 0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"fake Hub latency {args.latency * 1000:.0f} ms per answer, median of {args.runs} runs, "
          f"{os.cpu_count()} CPUs, load {load:.1f}; requests and bytes as the server counted them "
          "(HEADs and CDN redirect hops included); cpu s = this process (client) CPU time")
    print("seconds = end to end (ckpt-size: resolve_hub + read_checkpoint); fetched = resolve_hub until every "
          "file's first block arrived (separate runs); local parse = read_checkpoint of the same files from disk")
    header = (f"{'case':24} {'tool':28} {'requests':>9} {'bytes':>13} {'seconds':>8} {'cpu s':>7} "
              f"{'fetched':>8} {'local parse':>11}")
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        for tool, m in (("ckpt-size", r["ckpt_size"]), (r["reference"]["name"], r["reference"])):
            extra = (f" {m['fetch_seconds']:>8.3f} {m['local_parse_seconds']:>11.3f}" if "fetch_seconds" in m else "")
            print(f"{name:24} {tool:28} {m['requests']:>9,} {m['bytes']:>13,} {m['seconds']:>8.3f} "
                  f"{m['cpu_seconds']:>7.2f}{extra}")
        print(f"{'':24} {'ratio (reference / ours)':28} {r['request_ratio']:>9.2f} "
              f"{r['reference']['bytes'] / r['ckpt_size']['bytes']:>13.2f} {r['speedup']:>8.2f} {'':>7} "
              f"{r['fetch_speedup']:>8.2f}   same tensor bytes: {r['same_tensor_bytes']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
