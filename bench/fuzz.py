"""The long fuzz run: hostile GGUF headers, safetensors headers and split/index sets, N cases per family.

    python bench/fuzz.py --cases 100000 [--family gguf|safetensors|sets ...] [--seed 0] [--through load|cli]
                         [--limit 10] [--json] [--show N]

Cases come from tests/_fuzz.py (the normal suite runs the same generators with a small budget). Each case is written
to a scratch folder (/dev/shm when there is one) and opened the way `inspect` does: `--through load` is
`inspector.api.load` (sources, formats, roles), `--through cli` the whole command with JSON output. Reported per
family: the cases, how they ended (ok, typed error, untyped exception, hang past --limit seconds, an error that is
not one line), the largest Python allocation peak of one case (tracemalloc) overall and among refused cases, the
process's peak resident memory (resource.getrusage; it includes the interpreter and every module), and the slowest
case. `--show N` rebuilds case N, prints what was done to it and its outcome (with the traceback of an untyped one).
The exit code is 1 when any case failed.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._fuzz import FAMILIES, make_case, run_case  # noqa: E402


def scratch() -> Path:
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="ckpt-size-fuzz-", dir=base))


def run_family(family: str, cases: int, seed: int, through: str, limit: float, folder: Path,
               progress: bool) -> dict[str, object]:
    kinds: dict[str, int] = {}
    failures: list[dict[str, object]] = []
    peak = (0, -1)
    peak_refused = (0, -1)
    slowest = (0.0, -1)
    start = time.perf_counter()
    for index in range(cases):
        case = make_case(family, seed, index)
        outcome = run_case(case, folder / "case", through=through, limit_seconds=limit)
        kinds[outcome.kind] = kinds.get(outcome.kind, 0) + 1
        peak = max(peak, (outcome.peak_bytes, index))
        if outcome.kind == "error":
            peak_refused = max(peak_refused, (outcome.peak_bytes, index))
        slowest = max(slowest, (outcome.seconds, index))
        if not outcome.passed and len(failures) < 20:
            failures.append({"case": index, "kind": outcome.kind, "what": case.describe(),
                             "message": outcome.message[-800:]})
        if progress and (index + 1) % 5000 == 0:
            print(f"  {family}: {index + 1:,} cases, {kinds}", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start
    return {
        "family": family, "cases": cases, "seed": seed, "through": through, "outcomes": kinds,
        "failures": sum(n for k, n in kinds.items() if k not in ("ok", "error")),
        "first_failures": failures,
        "peak_case_bytes": peak[0], "peak_case": peak[1],
        "peak_refused_case_bytes": peak_refused[0], "peak_refused_case": peak_refused[1],
        "slowest_case_seconds": round(slowest[0], 3), "slowest_case": slowest[1],
        "seconds": round(elapsed, 1), "cases_per_second": round(cases / elapsed, 1) if elapsed else None,
    }


def show(family: str, seed: int, index: int, through: str, limit: float, folder: Path) -> int:
    case = make_case(family, seed, index)
    print(case.describe())
    for name, data in case.files.items():
        print(f"  {name}: {len(data):,} bytes")
    outcome = run_case(case, folder / "case", through=through, limit_seconds=limit)
    print(f"{outcome.kind} in {outcome.seconds:.3f} s, peak {outcome.peak_bytes:,} bytes")
    print(outcome.message)
    return 0 if outcome.passed else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases per family")
    parser.add_argument("--family", action="append", choices=FAMILIES, help="default: all three")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--through", choices=("load", "cli"), default="load")
    parser.add_argument("--limit", type=float, default=10.0, help="seconds before a case counts as a hang")
    parser.add_argument("--show", type=int, metavar="N", help="rebuild and run case N of the (first) family")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    families = args.family or list(FAMILIES)
    folder = scratch()
    for family in FAMILIES:  # imports and packaged rules load once, before anything is measured
        run_case(make_case(family, args.seed, 0), folder / "case", through=args.through, trace_memory=False)
    tracemalloc.start()  # once: each case's peak is measured above what was allocated before it
    if args.show is not None:
        return show(families[0], args.seed, args.show, args.through, args.limit, folder)
    results = [run_family(f, args.cases, args.seed, args.through, args.limit, folder, not args.json)
               for f in families]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    if args.json:
        print(json.dumps({"results": results, "process_peak_rss_bytes": rss}, indent=2))
    else:
        for r in results:
            print(f"{r['family']:12} {r['cases']:>9,} cases ({r['through']}, seed {r['seed']}): {r['outcomes']}; "
                  f"failures {r['failures']}; peak case {r['peak_case_bytes'] / 2**20:.1f} MiB (case "
                  f"{r['peak_case']}), refused {r['peak_refused_case_bytes'] / 2**20:.1f} MiB; slowest "
                  f"{r['slowest_case_seconds']} s (case {r['slowest_case']}); {r['cases_per_second']} cases/s")
            for f in r["first_failures"][:5]:  # type: ignore[index]
                print(f"    case {f['case']} {f['kind']}: {f['what']}\n      {f['message'][-300:]}")
        print(f"process peak RSS {rss / 2**20:.0f} MiB")
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
