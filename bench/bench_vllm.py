"""`inspect --runtime vllm` against plain `inspect` on the same 163-shard Hub repo, in the same run.

    python bench/bench_vllm.py [--quick] [--runs 3] [--latency 0.02] [--json]

The repo is DeepSeek-V3 as published (FP8 with 128x128 block scales: 91,930 tensors in 163 safetensors shards +
index + config.json, header-only sparse files), written by the fixture generator from
fixtures/archs/serving/deepseek-v3-fp8.yaml and served by the fake Hub (tests/hub_server.py, its own process,
`--latency` seconds added to every answer). Each case is the whole command in-process, as a user runs it (the CLI's
`main`, output discarded): Hub reads, parsing, roles, the runtime's placement and memory, the report.

Cases: plain `inspect`; `inspect --runtime vllm` (TP 1: one shard per tensor); `-tp 8` with eight H200 budgets
(every tensor cut into eight shards: 725k rows, the seed's DeepSeek-V3-on-8xH200 case); the same with
`--enable-expert-parallel`. Ratios are against plain `inspect` measured in the same run. `--quick`: one run,
DeepSeek-V3 BF16 (46k tensors) in 40 shards on eight 192 GB budgets (utilization 0.95) at 8,192 tokens, for
CI-sized machines.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import load_average, print_table  # noqa: E402
from bench_hub import server, start_server  # noqa: E402

REPO = "bench/deepseek-v3-fp8-163"
H200 = [arg for i in range(8) for arg in ("--budget", f"cuda:{i}=141GB")]
B200 = [arg for i in range(8) for arg in ("--budget", f"cuda:{i}=192GB")]  # --quick: BF16 needs 1.34 TB


def build(work: Path, quick: bool) -> Path:
    from fixtures.arch import load_arch
    from fixtures.generate import write_safetensors

    folder = work / "repo"
    if quick:
        write_safetensors(folder, "deepseek-v3", shards=40, mode="sparse")
    else:
        write_safetensors(folder, load_arch(ROOT / "fixtures/archs/serving/deepseek-v3-fp8.yaml"), shards=163,
                          mode="sparse")
    return folder


def run_cli(argv: list[str]) -> int:
    from inspector.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as e:
            return int(e.code or 0)
    return 0


def measure(url: str, argv: list[str], runs: int) -> dict[str, Any]:
    wall, cpu, codes = [], [], set()
    for _ in range(runs):
        server(url, "reset")
        started, cpu_started = time.perf_counter(), time.process_time()
        codes.add(run_cli(argv))
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    stats = server(url, "stats")
    return {"argv": argv, "seconds": statistics.median(wall), "cpu_seconds": statistics.median(cpu),
            "exit_codes": sorted(codes), "requests": sum(v["requests"] for v in stats.values()),
            "bytes": sum(v["bytes"] for v in stats.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run, BF16 DeepSeek-V3 in 40 shards")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    work = Path(tempfile.mkdtemp(prefix="ckpt-size-bench-vllm-"))
    proc = None
    try:
        folder = build(work, args.quick)
        proc, url = start_server({REPO: folder}, args.latency)
        os.environ.update(HF_ENDPOINT=url, HF_HOME=str(work / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
                          HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_IMPLICIT_TOKEN="1")
        os.environ.pop("HF_HUB_OFFLINE", None)
        base = ["inspect", f"hf://{REPO}", "--format", "json"]  # hf://: a local bench/ folder exists here
        gpus, size, length = (B200, "192", "8192") if args.quick else (H200, "141", "32768")
        tp8 = base + ["--runtime", "vllm", "-tp", "8", "--max-model-len", length] + gpus
        if args.quick:
            tp8 += ["--gpu-memory-utilization", "0.95"]
        plan = {"inspect": base,
                "inspect --runtime vllm": base + ["--runtime", "vllm"],
                f"-tp 8, 8 x {size} GB": tp8,
                "-tp 8 --enable-expert-parallel": tp8 + ["--enable-expert-parallel"]}
        run_cli(base)  # warm-up: imports and the HTTP session
        results = {name: measure(url, cmd, runs) for name, cmd in plan.items()}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    plain = results["inspect"]
    for r in results.values():
        r["ratio"] = r["seconds"] / plain["seconds"]
        r["cpu_ratio"] = r["cpu_seconds"] / plain["cpu_seconds"]
    failed = sorted(name for name, r in results.items() if r["exit_codes"] != [0])  # a timing of an error is no timing
    if args.json:
        print(json.dumps({"quick": args.quick, "runs": runs, "latency": args.latency, "cases": results}, indent=2))
        return 1 if failed else 0
    what = "DeepSeek-V3 BF16, 40 shards" if args.quick else "DeepSeek-V3 FP8, 163 shards, 91,930 tensors"
    title = (f"{what}; fake Hub latency {args.latency * 1000:.0f} ms, median of {runs} run(s), {os.cpu_count()} CPUs, "
             f"load {load_average():.1f}; ratio = seconds / plain inspect's, same run")
    header = f"{'case':34} {'requests':>9} {'bytes':>12} {'seconds':>8} {'cpu s':>7} {'ratio':>6} {'cpu ratio':>9} exit"
    print_table(title, header, [f"{name:34} {r['requests']:>9,} {r['bytes']:>12,} {r['seconds']:>8.2f} "
                                f"{r['cpu_seconds']:>7.2f} {r['ratio']:>6.2f} {r['cpu_ratio']:>9.2f} "
                                f"{','.join(map(str, r['exit_codes']))}" for name, r in results.items()])
    if failed:
        print(f"failed (exit code not 0): {', '.join(failed)}; rerun one case by hand to see its error")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
