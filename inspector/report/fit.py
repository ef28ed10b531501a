"""`fit`: the verdict, the flags to paste, the limits, the memory per device; the quants compared."""
from __future__ import annotations

import json
from typing import Any

from tabulate import tabulate

from .activity import fit_speed_lines
from .base import csv_text, human_bytes, memory_table, safe

def render_fit(report: Any, *, fmt: str = "table") -> str:
    """`fit`: the verdict, the flags to paste, the limits, the memory per device; the quants compared."""
    r = report.result
    if fmt == "json":
        doc = {"source": report.source, "quant": report.quant, "fits": bool(r and r.fits),
               "plan": r.as_dict() if r else None,
               "quants": [{"quant": q.name, "weight_bytes": q.weight_bytes, "fits": q.result.fits,
                           "all_on_gpu": q.all_on_gpu, "flags": q.result.command,
                           **({"speed_bound": [b.as_dict() for b in q.result.activity.bounds]}
                              if q.result.activity is not None else {})} for q in report.quants]}
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "csv":
        if r is None:
            return csv_text(["quant", "weight_bytes", "fits"], [[q.name, q.weight_bytes, q.result.fits]
                                                                for q in report.quants])
        verdict = {d.device: d for d in r.verdict.devices}
        table = r.memory.table
        keys = [p.key for p in table.parts] + ["total"]
        rows = [[device, *(table.row_dict(device)[k] for k in keys), verdict[device].budget if device in verdict
                 else "", verdict[device].fits if device in verdict else ""] for device in table.devices]
        return csv_text(["device", *keys, "budget", "fits"], rows)
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
        parts.append(tabulate(rows, headers=headers, tablefmt=tablefmt))
    if r is None:
        parts.append("no quant fits the budgets")
        return "\n\n".join(parts) + "\n"
    lim = r.limits
    lines = [["source", safe(report.source)], ["runtime", r.runtime],
             ["verdict", "fits" if r.fits else "does not fit"], ["placement", r.summary],
             ["flags", r.command],
             ["max context", f"{lim.max_ctx:,} tokens per sequence with these flags"],
             ["max parallel", f"{lim.max_parallel} sequences at this context with these flags"]]
    if lim.replanned_max_ctx:
        lines.append(["re-planned", f"{lim.replanned_max_ctx:,} tokens with {lim.replanned_max_ctx_command}"])
    if lim.note:
        lines.append(["limits", lim.note])
    lines += fit_speed_lines(r)
    if report.quant:
        lines.insert(1, ["quant", report.quant])
    parts.append(tabulate(lines, tablefmt="plain"))
    parts.append("\n".join(f"- {safe(step)}" for step in r.steps))
    parts.append(memory_table(r.memory.table, r.verdict, tablefmt))
    return "\n\n".join(parts) + "\n"
