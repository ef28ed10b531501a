"""Pictures of where the bytes go: `--format svg` (one drawing) and `--format html` (one self-contained page
holding the same drawing, the exact numbers as a table, and the notes). Layout and drawing: picture_svg.py;
the page: picture_html.py. This module turns an Inspection or a FitReport into bars; it computes no sizes.

Per device (GPUs first, then the CPU): one stacked bar of the weights by role, then the memory table's other
parts (any runtime's parts: estimates hatched, margins dotted), then what is free up to the budget; bytes past
a budget are marked over it. The bar widths and their scale are defined in picture_svg.py (docs/pictures.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..devices import device_sort_key
from ..errors import UsageError
from ..planner.result import FitReport, FitResult
from ..memory.budget import BudgetVerdict
from ..memory.table import MemoryTable
from ..summary import NOT_LOADED, Group, Inspection, by_device
from .base import human_bytes

PICTURE_FORMATS = ("html", "svg")
WEIGHTS_PART = "weights"  # the memory table's part that the role segments break down


@dataclass(frozen=True)
class Segment:
    """One stretch of a bar: `key` is a role, a memory part's key, or "free"; `kind` says how to draw it."""

    key: str
    label: str
    bytes: int
    offset: int  # bytes before it in the bar
    kind: str  # "weights" | "exact" | "estimate" | "margin" | "free"


@dataclass(frozen=True)
class Bar:
    """One device: its segments (used memory, then what is free under the budget) and its budget, if any."""

    device: str
    segments: tuple[Segment, ...]
    total: int  # bytes used: every segment but "free"
    budget: int | None

    @property
    def extent(self) -> int:
        """The bytes the bar spans: its total, or its budget when that is larger."""
        return max(self.total, self.budget or 0)

    @property
    def over_by(self) -> int:
        return max(0, self.total - self.budget) if self.budget is not None else 0


@dataclass(frozen=True)
class Panel:
    """One plan: a title, a few lines saying what it is, a bar per device, and what no bar shows."""

    title: str
    lines: tuple[str, ...]
    bars: tuple[Bar, ...]
    notes: tuple[str, ...] = ()
    chosen: bool = False


@dataclass(frozen=True)
class Picture:
    """What is drawn: one panel (`inspect`, `fit`) or one per quant compared (`fit` on a folder of quants)."""

    title: str
    panels: tuple[Panel, ...]
    notes: tuple[str, ...] = ()  # the page lists them; the drawing does not
    warnings: tuple[str, ...] = ()
    extra_tables: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()  # (title, (label, bytes)...)


# --- the public functions ------------------------------------------------------------------------------


def render_svg(what: Inspection | FitReport) -> str:
    """The drawing alone, a standalone SVG document (`--format svg`)."""
    from .picture_svg import svg_document

    return svg_document(picture_of(what))


def render_html(what: Inspection | FitReport) -> str:
    """One self-contained HTML page: the same drawing inline, the exact numbers, the notes (`--format html`)."""
    from .picture_html import html_page

    return html_page(picture_of(what))


def render_picture(what: Inspection | FitReport, fmt: str) -> str:
    return render_svg(what) if fmt == "svg" else render_html(what)


def refuse_picture(fmt: str, what: str) -> None:
    """Answers that are lists, not plans, have no picture: say so instead of printing a table as `html`."""
    if fmt in PICTURE_FORMATS:
        raise UsageError(f"--format {fmt} draws a plan's bytes per device; {what} has no picture",
                         hint="use --format table, json, csv or markdown")


def picture_of(what: Inspection | FitReport) -> Picture:
    if isinstance(what, FitReport):
        return fit_picture(what)
    return inspection_picture(what)


# --- bars ---------------------------------------------------------------------------------------------


def bars(weights: Sequence[Group], table: MemoryTable | None, verdict: BudgetVerdict | None) -> tuple[Bar, ...]:
    """A bar for every device that holds weights, appears in the memory table, or has a budget."""
    groups = {g.key: g for g in weights if g.key != NOT_LOADED}
    budgets = {d.device: d.budget for d in verdict.devices} if verdict else {}
    devices = set(groups) | set(table.devices if table else ()) | set(budgets)
    return tuple(device_bar(d, groups.get(d), table, budgets.get(d))
                 for d in sorted(devices, key=device_sort_key))


def device_bar(device: str, weights: Group | None, table: MemoryTable | None, budget: int | None) -> Bar:
    pieces = weight_pieces(device, weights, table) + part_pieces(device, table)
    segments, offset = [], 0
    for key, label, size, kind in pieces:
        if size > 0:
            segments.append(Segment(key, label, size, offset, kind))
            offset += size
    if budget is not None and budget > offset:
        segments.append(Segment("free", "free", budget - offset, offset, "free"))
    return Bar(device, tuple(segments), offset, budget)


def weight_pieces(device: str, weights: Group | None, table: MemoryTable | None) -> list[tuple[str, str, int, str]]:
    """The weights by role; the table's own weights figure instead when it differs from their sum (a runtime
    whose memory model counts weights otherwise), so that the bar always adds up to the table's total."""
    roles = [(r.key, r.key, r.bytes, "weights") for r in (weights.roles if weights else ())]
    part = next((p for p in table.parts if p.key == WEIGHTS_PART), None) if table else None
    if part is None or device not in table.rows:
        return roles
    listed = table.row_dict(device)[WEIGHTS_PART]
    return roles if listed == sum(r[2] for r in roles) else [(WEIGHTS_PART, part.header, listed, part.kind)]


def part_pieces(device: str, table: MemoryTable | None) -> list[tuple[str, str, int, str]]:
    """The memory table's parts past the weights, in the table's order (only parts counted in the total)."""
    if table is None or device not in table.rows:
        return []
    row = table.row_dict(device)
    return [(p.key, f"{p.label} (margin)" if p.kind == "margin" else p.header, row[p.key], p.kind)
            for p in table.parts if p.in_total and p.key != WEIGHTS_PART]


def not_loaded_note(weights: Sequence[Group]) -> tuple[str, ...]:
    skipped = next((g for g in weights if g.key == NOT_LOADED), None)
    if skipped is None:
        return ()
    roles = ", ".join(r.key for r in skipped.roles)
    return (f"not loaded by the runtime: {skipped.tensors} tensors ({roles}), {skipped.bytes:,} bytes "
            f"({human_bytes(skipped.bytes)}), on no bar",)


def verdict_line(verdict: BudgetVerdict | None) -> str:
    if verdict is None or not verdict.devices:
        return "no budget given (--budget DEV=SIZE draws each device's budget)"
    if verdict.fits:
        return "fits the budgets"
    over = ", ".join(f"{d.device} over by {d.over_by:,} bytes ({human_bytes(d.over_by)})"
                     for d in verdict.devices if not d.fits)
    return f"does not fit: {over}"


# --- inspect ------------------------------------------------------------------------------------------


def inspection_picture(result: Inspection) -> Picture:
    ck = result.checkpoint
    table = result.memory.table if result.memory is not None else None
    lines = [f"plan: {result.plan}"] + ([f"flags: {result.flags_line}"] if result.flags_line else [])
    lines += [table.title] if table is not None and table.title else []
    lines.append(verdict_line(result.budget))
    panel = Panel(ck.source, tuple(lines), bars(result.by_device, table, result.budget),
                  not_loaded_note(result.by_device))
    notes = tuple(result.notes)  # the placement's, the quant's and the memory model's, as stderr printed them
    extra = ()
    if result.train is not None:
        rows = tuple((k, v) for k, v in result.train.as_dict().items() if isinstance(v, int) and k != "params")
        extra = (("training memory (docs/memory.md)", rows),)
    return Picture(ck.source, (panel,), notes, tuple(ck.warnings), extra)


# --- fit ----------------------------------------------------------------------------------------------


def fit_panel(title: str, result: FitResult, *, chosen: bool = False, head: Sequence[str] = ()) -> Panel:
    weights = by_device(result.placement.checkpoint.tensors)
    lines = [*head, f"runtime {result.runtime}: {'fits' if result.fits else 'does not fit'}",
             f"flags: {result.command}",
             f"max context {result.limits.max_ctx:,} tokens per sequence, max parallel "
             f"{result.limits.max_parallel} with these flags", verdict_line(result.verdict)]
    return Panel(title, tuple(lines), bars(weights, result.memory.table, result.verdict),
                 not_loaded_note(weights), chosen)


def fit_picture(report: FitReport) -> Picture:
    r = report.result
    if report.quants:
        panels = tuple(fit_panel(q.name, q.result, chosen=q.name == report.quant,
                                 head=[f"weights {q.weight_bytes:,} bytes ({human_bytes(q.weight_bytes)})"
                                       + ("; all on GPUs" if q.all_on_gpu else "")
                                       + ("; chosen" if q.name == report.quant else "")])
                       for q in report.quants)
        notes = tuple(r.notes) if r else ("no quant fits the budgets",)
        return Picture(report.source, panels, notes)
    if r is None:
        return Picture(report.source, (), ("no plan fits the budgets",))
    head = [f"quant {report.quant}"] if report.quant else []
    return Picture(report.source, (fit_panel(report.source, r, chosen=True, head=head),), tuple(r.notes),
                   tuple(r.placement.warnings))


def panel_rows(panel: Panel) -> list[tuple[str, str, str, Any]]:
    """The page's table of exact numbers: (device, part, kind, bytes), the over-budget bytes included."""
    rows: list[tuple[str, str, str, Any]] = []
    for bar in panel.bars:
        rows += [(bar.device, s.label, s.kind, s.bytes) for s in bar.segments if s.kind != "free"]
        rows.append((bar.device, "total", "", bar.total))
        if bar.budget is not None:
            rows.append((bar.device, "budget", "", bar.budget))
            free = next((s.bytes for s in bar.segments if s.kind == "free"), 0)
            rows.append((bar.device, "over budget" if bar.over_by else "free", "", bar.over_by or free))
    return rows
