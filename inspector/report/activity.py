"""What one token touches, the decode-speed bound and the rules-of-thumb rows, as tables (docs/speed.md)."""
from __future__ import annotations

from typing import Any

from .grid import table as text_table

from .base import human_bytes, human_count


def _rate(bytes_per_s: int) -> str:
    return f"{bytes_per_s / 1e9:,.1f} GB/s"


def activity_parts(report: Any, tablefmt: str) -> list[str]:
    """The sections of an ActivityReport: per-token table, cache read, speed bound, rules of thumb."""
    t = report.tokens
    head = (f"one token (single stream) reads {t.read_per_token:,} parameters ({human_count(t.read_per_token)}) and "
            f"{t.bytes_per_token:,} bytes ({human_bytes(t.bytes_per_token)}) of weights")
    if t.n_expert and t.n_expert_used:
        head += f"; top {t.n_expert_used} of {t.n_expert} routed experts"
    conventions = (f"active parameters: {t.excluding_embeddings:,} without embeddings and head, "
                   f"{t.read_per_token:,} with one embedding row and the head (read), {t.with_full_embeddings:,} "
                   f"with whole embeddings and head; of {t.total_params:,} in the text model")
    rows = [[r.device, r.role, f"{r.params:,}", human_bytes(r.bytes), human_bytes(r.stored_bytes)] for r in t.rows]
    for device, n in t.bytes_by_device().items():
        rows.append([device, "total", f"{sum(r.params for r in t.rows if r.device == device):,}", human_bytes(n),
                     human_bytes(sum(r.stored_bytes for r in t.rows if r.device == device))])
    parts = [head + "\n" + conventions + "\n" + text_table(
        rows, headers=["device", "role", "params/token", "read/token", "stored"], tablefmt=tablefmt,
        disable_numparse=True)]
    if report.kv_read is not None:
        reads = ", ".join(f"{d} {human_bytes(n)}" for d, n in report.kv_read.items()) or "none"
        parts.append(f"cache read per token at position {report.ctx:,}: {reads}")
    if report.bounds:
        parts.append(_bound_table(report, tablefmt))
    if report.thumbs:
        parts.append(_thumb_table(report, tablefmt))
    return parts


def _bound_table(report: Any, tablefmt: str) -> str:
    rows = []
    for b in report.bounds:
        where = "empty cache" if b.n_past == 0 else f"at {b.n_past:,} tokens"
        for d in b.devices:
            rows.append([where, d.device, human_bytes(d.bytes), f"{_rate(d.bandwidth.bytes_per_s)} ({d.bandwidth.label})",
                         f"{float(d.seconds) * 1000:.3f} ms"])
        rows.append([where, "sum", "", "", f"{float(b.seconds_per_token) * 1000:.3f} ms = at most "
                                              f"{b.tokens_per_s:,.1f} tokens/s"])
    return ("decode-speed upper bound (bytes read per token / peak memory bandwidth, summed along the layer order; "
            "not a promise: compute, transfers and real bandwidth come on top)\n"
            + text_table(rows, headers=["cache", "device", "read/token", "bandwidth", "time"], tablefmt=tablefmt,
                       disable_numparse=True))


def _thumb_table(report: Any, tablefmt: str) -> str:
    rows = []
    for r in report.thumbs:
        if r.unit == "sequences":
            shortcut, exact, diff = f"{r.shortcut:,}", f"{r.exact:,}", f"{r.difference:+,}"
        else:
            shortcut, exact = human_bytes(r.shortcut), human_bytes(r.exact)
            diff = ("+" if r.difference >= 0 else "-") + human_bytes(abs(r.difference))
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        rows.append([r.name, shortcut, exact, diff, ratio, r.formula])
    return ("rules of thumb beside the exact answer (shortcut vs exact)\n"
            + text_table(rows, headers=["rule", "shortcut", "exact", "difference", "ratio", "formula"],
                       tablefmt=tablefmt, disable_numparse=True))


def fit_speed_lines(result: Any) -> list[list[str]]:
    """`fit`'s summary lines for the chosen plan's bound."""
    report = result.activity
    if report is None or not report.bounds:
        return []
    return [["speed bound", ", ".join(
        f"{b.tokens_per_s:,.1f} tokens/s " + ("with an empty cache" if b.n_past == 0 else f"at {b.n_past:,} tokens")
        for b in report.bounds) + " (upper bound)"]]
