"""Hub header reads: requests, bytes and time of ckpt-size against huggingface_hub over the same fake Hub.

    python bench/bench_hub.py [--quick] [--latency 0.02] [--runs 3] [--json]

Repos, written header-only (sparse files: real sizes, data regions are holes) by the fixture generator:

- ``deepseek-v3-163``: DeepSeek-V3 in BF16 as 163 safetensors shards + index + config.json (~36 KB of header per
  shard, 46k tensors). Reference: ``HfApi().get_safetensors_metadata`` (huggingface_hub's header-only API), cold.
- ``deepseek-v3-59``: the same tensors in 59 shards (~100 KB of header per shard: around huggingface_hub's fixed
  100 kB first read; the shard count of issue 16's measurement).
- ``deepseek-v3-40``: 40 shards (~150 KB of header per shard, like Kimi-K2 or Qwen3-235B shards):
  huggingface_hub's 100 kB first read needs a second GET for every shard.
- ``deepseek-v3.1-q4k``: a 1,087-file split GGUF (DeepSeek-V3.1-Terminus q4_K, one tensor per shard, as the
  Thireus GGUF-Tool-Suite ships it; rebuilt from ``shared/data/real``, or a synthetic 1,087-file set when that is
  absent). huggingface_hub has no GGUF header API; the reference is its ranged-read API, ``HfFileSystem`` with a
  64 KiB block size, opening every shard from a thread pool sized like huggingface_hub's (``min(32, cpu + 4)``),
  each parsed by the same GGUF parser.

``--quick`` runs the 59-shard safetensors repo and a 300-file split GGUF once each (about 15 s).

``--whole-process`` measures what a user waits for instead, on the safetensors cases: a fresh
``ckpt-size inspect hf://REPO`` process (start-up, imports, listing, headers, roles, the summary) against a fresh
``python -c`` process running ``get_safetensors_metadata`` (start-up, importing huggingface_hub, the call), cold
cache, the two alternated run by run; the ratio is the median of the per-pair ratios.

The fake Hub (tests/hub_server.py) runs in its own process (so it does not share our GIL), redirects model
files from ``/resolve`` to a second "CDN" origin like the real Hub, and adds ``--latency`` seconds to every answer.
Requests and bytes are counted by the server: every HTTP exchange (HEAD, listing page, redirect hop, ranged GET)
and every body byte it sent. ckpt-size's own count (what ``-v`` prints) is shown beside it: they must agree.
"header bytes" is the sum of the files' header lengths (the least any reader must fetch), computed from the
local copies. Wall time is the median of ``--runs`` runs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import compileall
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import load_average, print_table  # noqa: E402

MAP = Path("Thireus__GGUF-Tool-Suite") / "DeepSeek-V3.1-Terminus" / "tensors.q4_K.map"


@dataclass(frozen=True)
class Case:
    name: str
    repo: str  # repo id on the fake Hub
    kind: str  # "safetensors" | "gguf"
    size: int  # shards or files


FULL = [Case("safetensors 163 shards", "fake-org/deepseek-v3-163", "safetensors", 163),
        Case("safetensors 59 shards", "fake-org/deepseek-v3-59", "safetensors", 59),
        Case("safetensors 40 shards", "fake-org/deepseek-v3-40", "safetensors", 40),
        Case("GGUF split set", "fake-org/deepseek-v3.1-q4k", "gguf", 1087)]
QUICK = [Case("safetensors 59 shards", "fake-org/deepseek-v3-59", "safetensors", 59),
         Case("GGUF split set 300", "fake-org/split-300", "gguf", 300)]


def real_map() -> Path | None:
    """The Thireus DeepSeek-V3.1 q4_K map in a `shared/data/real` next to this checkout or above it."""
    for base in ROOT.parents:
        candidate = base / "shared" / "data" / "real" / MAP
        if candidate.is_file():
            return candidate
    return None


def build_repo(case: Case, work: Path) -> Path:
    from fixtures.generate import rebuild_split_from_map, write_safetensors

    folder = work / case.repo.split("/")[1]
    if case.kind == "safetensors":
        write_safetensors(folder, "deepseek-v3", shards=case.size, mode="sparse")
        return folder
    found = real_map()
    if case.size == 1087 and found is not None:
        rebuild_split_from_map(found, folder / "Q4_K", mode="sparse")
    else:
        _synthetic_split(folder / "Q4_K", case.size)
    return folder


def _synthetic_split(folder: Path, shards: int) -> None:
    """`shards` files: metadata in the first, then one Q4_K [7168, 2048] tensor in each of the others."""
    from fixtures.generate import write_split_gguf

    q4k = 12  # GGML_TYPE_Q4_K
    tensors = [(f"blk.{i}.ffn_down.weight", (7168, 2048), q4k) for i in range(shards - 1)]
    write_split_gguf(folder, "model-Q4_K", tensors, shards, metadata_only_first=True)


def header_bytes(folder: Path, kind: str) -> tuple[int, int]:
    """(files, sum of header lengths) of the model files, parsed locally."""
    from inspector.formats import read_checkpoint
    from inspector.sources.local import resolve_local

    source = folder if kind == "safetensors" else next(folder.rglob("*-00001-of-*.gguf"))
    checkpoint = read_checkpoint(resolve_local(str(source)))
    return len(checkpoint.files), sum(f.header_bytes for f in checkpoint.files)


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


def ours(repo: str) -> Callable[[], tuple[int, dict[str, int]]]:
    """End to end as `ckpt-size inspect` does it: open the repo once, select, read every header."""

    def run() -> tuple[int, dict[str, int]]:
        from inspector.formats import read_checkpoint
        from inspector.sources import open_repo

        resolved = open_repo(repo).select()
        checkpoint = read_checkpoint(resolved)
        return sum(t.nbytes for t in checkpoint.tensors), resolved.fetch_stats()

    return run


def ours_fetch_only(repo: str, runs: int) -> float:
    """Median seconds until every file's first block has arrived (the Hub side alone, no parsing)."""
    from inspector.sources import open_repo

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        resolved = open_repo(repo).select()
        for f in resolved.files:
            f.read(0, 8)  # served from the prefetched first block: waits for it, sends nothing
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def hf_safetensors(repo: str, cache: Path) -> Callable[[], tuple[int, None]]:
    def run() -> tuple[int, None]:
        from huggingface_hub import HfApi

        shutil.rmtree(cache, ignore_errors=True)  # cold, like a first look at a repo
        meta = HfApi().get_safetensors_metadata(repo)
        return sum(t.data_offsets[1] - t.data_offsets[0]
                   for f in meta.files_metadata.values() for t in f.tensors.values()), None

    return run


def hf_filesystem_gguf(repo: str) -> Callable[[], tuple[int, None]]:
    def run() -> tuple[int, None]:
        from concurrent.futures import ThreadPoolExecutor

        from huggingface_hub import HfFileSystem

        from inspector.formats.gguf import parse_gguf

        fs = HfFileSystem(skip_instance_cache=True)
        paths = sorted(p for p in fs.glob(f"{repo}/**/*.gguf"))

        def header(path: str) -> int:
            with fs.open(path, "rb", block_size=64 << 10) as fh:
                return sum(t.nbytes for t in parse_gguf(FsSource(fh, path)).tensors)

        with ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4)) as pool:
            return sum(pool.map(header, paths)), None

    return run


REFERENCE_SCRIPT = """
import sys
from huggingface_hub import HfApi
meta = HfApi().get_safetensors_metadata(sys.argv[1])
print(sum(t.data_offsets[1] - t.data_offsets[0] for f in meta.files_metadata.values() for t in f.tensors.values()))
"""


def whole_process(url: str, repo: str, cache: Path, runs: int) -> dict[str, Any]:
    """Paired runs of `ckpt-size inspect hf://REPO` and a get_safetensors_metadata script, each a new process."""
    ckpt_size = [sys.executable, "-c", "import sys; from inspector.cli import main; sys.exit(main())",
                 "inspect", f"hf://{repo}"]
    reference = [sys.executable, "-c", REFERENCE_SCRIPT, repo]
    mine, ref, ratios, stats = [], [], [], {}
    for _ in range(runs):
        pair = []
        for cmd in (ckpt_size, reference):
            shutil.rmtree(cache, ignore_errors=True)
            server(url, "reset")
            started = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            pair.append(time.perf_counter() - started)
            stats[cmd is ckpt_size] = server(url, "stats")
        mine.append(pair[0])
        ref.append(pair[1])
        ratios.append(pair[1] / pair[0])
    return {"ckpt_size_seconds": statistics.median(mine), "reference_seconds": statistics.median(ref),
            "speedup": statistics.median(ratios), "runs": runs,
            "ckpt_size_requests": sum(v["requests"] for v in stats[True].values()),
            "reference_requests": sum(v["requests"] for v in stats[False].values())}


def measure(url: str, fn: Callable[[], tuple[int, dict[str, int] | None]], runs: int) -> dict[str, Any]:
    times, cpu, totals, stats, counted = [], [], set(), {}, None
    for _ in range(runs):
        server(url, "reset")
        started, cpu_started = time.perf_counter(), time.process_time()
        total, counted = fn()
        totals.add(total)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        stats = server(url, "stats")
    return {
        "seconds": statistics.median(times),
        "cpu_seconds": statistics.median(cpu),
        "requests": sum(v["requests"] for v in stats.values()),
        "bytes": sum(v["bytes"] for v in stats.values()),
        # model files are LFS files: the fake Hub serves them from its CDN origin (side files from /resolve)
        "file_bytes": sum(v["bytes"] for k, v in stats.items() if k.endswith(" cdn")),
        "counted": counted,  # the tool's own count of its last run (ckpt-size: what -v prints)
        "by_kind": stats,
        "tensor_bytes": totals.pop() if len(totals) == 1 else sorted(totals),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small cases, one run each (~15 s)")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added to every answer (default 0.02)")
    parser.add_argument("--runs", type=int, default=None, help="runs per tool and case (default 3, 1 with --quick)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--whole-process", action="store_true",
                        help="time `ckpt-size inspect` and a get_safetensors_metadata script as fresh processes, "
                             "paired (safetensors cases; default 5 runs, 3 with --quick)")
    args = parser.parse_args(argv)
    runs = args.runs or ((3 if args.quick else 5) if args.whole_process else (1 if args.quick else 3))
    plan = QUICK if args.quick else FULL
    if args.whole_process:
        plan = [c for c in plan if c.kind == "safetensors"]
        # bytecode as `pip install` leaves it (the reference's huggingface_hub has its own): with
        # PYTHONDONTWRITEBYTECODE=1 a checkout would otherwise compile every module at every start
        compileall.compile_dir(str(ROOT / "inspector"), quiet=1)
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

    work = Path(tempfile.mkdtemp(prefix="ckpt-size-bench-hub-"))
    proc = None
    cases: dict[str, Any] = {}
    try:
        folders = {case.repo: build_repo(case, work / "repos") for case in plan}
        proc, url = start_server(folders, args.latency)
        # huggingface_hub reads these at import time: set them before anything imports it
        os.environ.update(HF_ENDPOINT=url, HF_HOME=str(work / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
                          HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_IMPLICIT_TOKEN="1")
        os.environ.pop("HF_HUB_OFFLINE", None)
        cache = work / "hf-home" / "hub"
        if args.whole_process:
            return _report_whole_process(url, plan, cache, runs, args)
        first_st = next(c for c in plan if c.kind == "safetensors")
        ours(first_st.repo)()  # warm-up: imports and the HTTP session, for both sides
        hf_safetensors(first_st.repo, cache)()
        for case in plan:
            files, headers = header_bytes(folders[case.repo], case.kind)
            reference = (hf_safetensors(case.repo, cache) if case.kind == "safetensors"
                         else hf_filesystem_gguf(case.repo))
            ref_name = "get_safetensors_metadata" if case.kind == "safetensors" else "HfFileSystem 64 KiB blocks"
            mine = measure(url, ours(case.repo), runs)
            mine["fetch_seconds"] = ours_fetch_only(case.repo, runs)
            ref = measure(url, reference, runs)
            cases[case.name] = {"files": files, "header_bytes": headers, "ckpt_size": mine,
                                "reference": {"name": ref_name, **ref}}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)

    for r in cases.values():
        mine, ref = r["ckpt_size"], r["reference"]
        r.update(request_ratio=ref["requests"] / mine["requests"], byte_ratio=ref["bytes"] / mine["bytes"],
                 speedup=ref["seconds"] / mine["seconds"], fetch_speedup=ref["seconds"] / mine["fetch_seconds"],
                 same_tensor_bytes=mine["tensor_bytes"] == ref["tensor_bytes"],
                 counted_equals_server=mine["counted"] == {"requests": mine["requests"], "bytes": mine["bytes"]})
    if args.json:
        print(json.dumps({"latency": args.latency, "runs": runs, "quick": args.quick, "cases": cases}, indent=2))
        return 0
    load = load_average()
    print(f"fake Hub latency {args.latency * 1000:.0f} ms per answer, median of {runs} run(s), {os.cpu_count()} CPUs, "
          f"load {load:.1f}. Requests and bytes as the server counted them (listing pages, HEADs, redirect hops, "
          "ranged GETs, side files); req/file = requests per model file; file/hdr = body bytes of the model files "
          "/ the sum of their header lengths; fetched = ckpt-size until every first block arrived")
    header = (f"{'case':24} {'tool':27} {'requests':>9} {'req/file':>8} {'bytes':>13} {'file/hdr':>8} "
              f"{'seconds':>8} {'fetched':>8}")
    print(header)
    print("-" * len(header))
    for name, r in cases.items():
        for tool, m in (("ckpt-size", r["ckpt_size"]), (r["reference"]["name"], r["reference"])):
            fetched = f"{m['fetch_seconds']:>8.3f}" if "fetch_seconds" in m else f"{'':>8}"
            print(f"{name:24} {tool:27} {m['requests']:>9,} {m['requests'] / r['files']:>8.2f} {m['bytes']:>13,} "
                  f"{m['file_bytes'] / r['header_bytes']:>8.2f} {m['seconds']:>8.3f} {fetched}")
        print(f"{'':24} {'ratio reference / ckpt-size':27} {r['request_ratio']:>9.2f} {'':>8} {r['byte_ratio']:>13.2f} "
              f"{'':>8} {r['speedup']:>8.2f} {r['fetch_speedup']:>8.2f}")
        print(f"{'':24} {r['files']:,} files, {r['header_bytes']:,} header bytes; same tensor bytes: "
              f"{r['same_tensor_bytes']}; -v count equals the server's: {r['counted_equals_server']}")
    return 0


def _report_whole_process(url: str, plan: list[Case], cache: Path, runs: int, args: argparse.Namespace) -> int:
    results = {case.name: whole_process(url, case.repo, cache, runs) for case in plan}
    if args.json:
        print(json.dumps({"latency": args.latency, "runs": runs, "whole_process": results}, indent=2))
        return 0
    title = (f"whole process, fake Hub latency {args.latency * 1000:.0f} ms per answer, {runs} paired run(s), "
             f"{os.cpu_count()} CPUs, load {load_average():.1f}; seconds are medians, the ratio is the median of the "
             "pairs' ratios")
    header = f"{'case':24} {'ckpt-size inspect':>18} {'get_safetensors_metadata':>25} {'ratio':>6} {'requests':>15}"
    print_table(title, header, [f"{name:24} {r['ckpt_size_seconds']:>18.3f} {r['reference_seconds']:>25.3f} "
                                f"{r['speedup']:>6.2f} {r['ckpt_size_requests']:>7,} / {r['reference_requests']:<7,}"
                                for name, r in results.items()])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
