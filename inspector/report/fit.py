"""`fit`: the verdict, the flags to paste, the limits, the memory per device; the quants compared."""
from __future__ import annotations

import json
from typing import Any

from .grid import table as text_table

from .activity import fit_speed_lines
from .base import csv_text, human_bytes, memory_csv, memory_table, safe
from .picture import PICTURE_FORMATS, render_picture


def _sequences(n: int) -> str:
    return f"{n:,} sequence" + ("" if n == 1 else "s")


def _cap(value: int, cap: int | None, what: str) -> str:
    return f" (the search stops at {what}: {cap:,})" if cap and value >= cap else ""


def limit_lines(lim: Any) -> list[list[str]]:
    """How far the plan stretches, in words, with the caps the searches stop at."""
    lines = [["max context", f"{lim.max_ctx:,} tokens per sequence at {_sequences(lim.parallel)}, these flags kept"
              + _cap(lim.max_ctx, lim.ctx_cap, "the model's trained context")],
             ["max parallel", f"{_sequences(lim.max_parallel)} of {lim.ctx:,} tokens, these flags kept"
              + _cap(lim.max_parallel, lim.parallel_cap, "the most sequences the runtime takes")]]
    if lim.replanned_max_ctx is not None:
        lines.append(["re-planned", f"{lim.replanned_max_ctx:,} tokens per sequence: "
                      f"{lim.replanned_max_ctx_command or 'no such plan'}"])
    if lim.replanned_max_parallel is not None:
        lines.append(["re-planned", f"{_sequences(lim.replanned_max_parallel)}: "
                      f"{lim.replanned_max_parallel_command or 'no such plan'}"])
    if lim.note:
        lines.append(["limits", lim.note])
    return lines


CSV_FIELDS = ("runtime", "fits", "all_on_gpu", "placement", "flags", "command", "max_ctx", "max_parallel",
              "max_ctx_flags", "max_parallel_flags", "replanned_max_ctx", "replanned_max_ctx_flags",
              "replanned_max_parallel", "replanned_max_parallel_flags", "limits_note")


def _csv(report: Any) -> str:
    """Blocks separated by an empty line, each with its header row: the plan's fields (verdict, flags, command,
    limits), the memory per device with budgets, the bytes left and verdicts, and the quants compared."""
    r = report.result
    fields = [["source", report.source], ["quant", report.quant or ""], ["verdict", "fits" if r and r.fits else
                                                                           "does not fit"]]
    blocks = []
    if r is not None:
        plan = r.as_dict()
        fields += [[k, "" if plan[k] is None else plan[k]] for k in CSV_FIELDS]
        blocks = [csv_text(["field", "value"], fields), memory_csv(r.memory.table, r.verdict)]
    else:
        blocks = [csv_text(["field", "value"], fields)]
    if report.quants:
        blocks.append(csv_text(["quant", "weight_bytes", "fits", "all_on_gpu", "flags"],
                               [[q.name, q.weight_bytes, q.result.fits, q.all_on_gpu, q.result.command]
                                for q in report.quants]))
    return "\n".join(blocks)


def render_fit(report: Any, *, fmt: str = "table") -> str:
    """`fit`: the verdict, the flags to paste, the limits, the memory per device; the quants compared."""
    r = report.result
    if fmt in PICTURE_FORMATS:  # the chosen plan, or every quant's plan side by side
        return render_picture(report, fmt)
    if fmt == "json":
        doc = {"source": report.source, "quant": report.quant, "fits": bool(r and r.fits),
               "plan": r.as_dict() if r else None,
               "quants": [{"quant": q.name, "weight_bytes": q.weight_bytes, "fits": q.result.fits,
                           "all_on_gpu": q.all_on_gpu, "flags": q.result.command,
                           **({"speed_bound": [b.as_dict() for b in q.result.activity.bounds]}
                              if q.result.activity is not None else {})} for q in report.quants]}
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "csv":
        return _csv(report)
    tablefmt = "github" if fmt == "markdown" else "simple"
    parts = []
    if report.quants:
        rows = [[q.name, human_bytes(q.weight_bytes), "all on GPUs" if q.all_on_gpu else
                 "fits" if q.result.fits else "does not fit"] for q in report.quants]
        headers = ["quant", "weights", "verdict"]
        if any(q.result.activity is not None and q.result.activity.bounds for q in report.quants):
            headers.append("tokens/s bound")
            for row, q in zip(rows, report.quants):
                bounds = q.result.activity.bounds if q.result.activity else ()
                row.append(f"{bounds[-1].tokens_per_s:,.1f}" if bounds else "-")
        parts.append(text_table(rows, headers=headers, tablefmt=tablefmt))
    if r is None:
        parts.append("no quant fits the budgets")
        return "\n\n".join(parts) + "\n"
    lines = [["source", safe(report.source)], ["runtime", r.runtime],
             ["verdict", "fits" if r.fits else "does not fit"], ["placement", r.summary],
             ["flags", r.command],
             ["command", safe(r.ready)]] + limit_lines(r.limits)
    lines += fit_speed_lines(r)
    if report.quant:
        lines.insert(1, ["quant", report.quant])
    parts.append(text_table(lines, tablefmt="plain"))
    parts.append("\n".join(f"- {safe(step)}" for step in r.steps))
    parts.append(memory_table(r.memory.table, r.verdict, tablefmt))
    return "\n\n".join(parts) + "\n"
