"""The drawing: one SVG of stacked bars, the same inline in the HTML page and standalone (`--format svg`).

Scale (docs/pictures.md; tests/test_picture.py checks it against the JSON output): every bar of a picture
shares one scale, `BAR_WIDTH / F` pixels per byte (`PANEL_BAR_WIDTH / F` when quants are compared side by
side), where F is the largest of every device's total and budget. A segment of B bytes starting O bytes into
its bar is drawn at x = round(O * scale, 2) and width = round(B * scale, 2) from the bar's origin. When some
device would be under a quarter of the width, the bars are drawn again below, each at its own scale (its total
or budget spans the width), so a 24 GiB GPU beside a 400 GiB CPU still shows what fills it.

Every text comes from files or flags and is escaped (html.escape after inspector.report.base.safe, which also
removes characters XML forbids). Nothing is fetched: no fonts, scripts or images; colours are the tables below.
"""
from __future__ import annotations

from html import escape
from typing import Iterable, Sequence

from ..model import ROLES
from .base import human_bytes, safe
from .picture import Bar, Panel, Picture, Segment

BAR_WIDTH = 800  # px spanned by the largest device (one plan)
PANEL_BAR_WIDTH = 480  # px spanned by the largest device, per panel, when quants are compared
COLUMNS = 3  # panels per row when quants are compared
MARGIN = 16
BAR_HEIGHT = 26
OWN_SCALE_BELOW = 0.25  # a bar spanning less than this share of the width is drawn again at its own scale
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
INK, MUTED = "#1a1a1a", "#555555"

# ColorBrewer Set3 for the roles (light enough for dark text inside a segment).
ROLE_COLOURS = {
    "embedding": "#8dd3c7", "output": "#80b1d3", "attention": "#fb8072", "routed_experts": "#bebada",
    "shared_experts": "#b3de69", "router": "#fdb462", "dense_ffn": "#fccde5", "norm": "#ffed6f",
    "mtp": "#bc80bd", "vision": "#ccebc5", "other": "#d9d9d9",
}
PART_COLOURS = {"weights": "#a6bddb", "kv_cache": "#d8b365", "state": "#c994c7", "buffers": "#bababa",
                "overhead": "#eeeeee", "free": "#edf8e9"}
OTHER_PART_COLOURS = ("#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#e5c494")
OVER_COLOUR = "#d62728"
PATTERNS = {"estimate": "url(#ckpt-estimate)", "margin": "url(#ckpt-margin)"}  # drawn over the fill colour
DEFS = (
    '<defs>'
    '<pattern id="ckpt-estimate" patternUnits="userSpaceOnUse" width="6" height="6" '
    'patternTransform="rotate(45)"><rect width="2" height="6" fill="#000000" fill-opacity="0.35"/></pattern>'
    '<pattern id="ckpt-margin" patternUnits="userSpaceOnUse" width="5" height="5">'
    '<circle cx="2.5" cy="2.5" r="1" fill="#000000" fill-opacity="0.45"/></pattern>'
    '<pattern id="ckpt-over" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(-45)">'
    f'<rect width="6" height="6" fill="{OVER_COLOUR}" fill-opacity="0.25"/>'
    f'<rect width="2.5" height="6" fill="{OVER_COLOUR}" fill-opacity="0.7"/></pattern>'
    '</defs>'
)


def text(value: str) -> str:
    """Untrusted text made safe for XML and HTML alike: printable, then escaped (quotes too, for attributes)."""
    return escape(safe(value), quote=True)


def num(value: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros."""
    out = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if out in ("", "-0") else out


def text_width(value: str, size: float) -> float:
    """A layout estimate of a line's width (no font metrics offline): generous, so text is rarely clipped."""
    return len(value) * size * 0.6


def fit_text(value: str, width: float, size: float) -> str:
    """The text, cut with an ellipsis where it would overflow `width` (the full text goes in a tooltip)."""
    room = int(width / (size * 0.6))
    return value if len(value) <= room else value[: max(room - 1, 1)] + "…"


def line(x: float, y: float, value: str, width: float, *, size: float = 12, weight: str = "normal",
         colour: str = INK, cls: str = "") -> str:
    shown = fit_text(value, width, size)
    tip = f"<title>{text(value)}</title>" if shown != value else ""
    attrs = f' class="{cls}"' if cls else ""
    return (f'<text x="{num(x)}" y="{num(y)}" font-size="{size}" font-weight="{weight}" fill="{colour}"{attrs}>'
            f"{tip}{text(shown)}</text>")


def colour_of(key: str, kind: str, extra: dict[str, str]) -> str:
    if kind == "weights" and key in ROLE_COLOURS:
        return ROLE_COLOURS[key]
    if key in PART_COLOURS:
        return PART_COLOURS[key]
    return extra.setdefault(key, OTHER_PART_COLOURS[len(extra) % len(OTHER_PART_COLOURS)])


# --- one bar ------------------------------------------------------------------------------------------


def bar_caption(bar: Bar) -> tuple[str, str]:
    """Two lines: binary units with the verdict, then the exact byte counts."""
    total = f"{human_bytes(bar.total)}"
    if bar.budget is None:
        return f"{total} (no budget)", f"{bar.total:,} bytes"
    exact = f"{bar.total:,} of {bar.budget:,} bytes"
    if bar.over_by:
        return (f"{total} of {human_bytes(bar.budget)} budget: over by {human_bytes(bar.over_by)}",
                f"{exact}, over by {bar.over_by:,}")
    free = bar.budget - bar.total
    return f"{total} of {human_bytes(bar.budget)} budget: fits, {human_bytes(free)} free", f"{exact}, {free:,} free"


def segment_title(device: str, s: Segment) -> str:
    return f"{device} · {s.label}: {s.bytes:,} bytes ({human_bytes(s.bytes)})"


def draw_segment(device: str, s: Segment, scale: float, colours: dict[str, str]) -> tuple[list[str], list[str]]:
    """The segment's shapes, and its label when it fits inside (drawn last, above any over-budget marking)."""
    x, width = round(s.offset * scale, 2), round(s.bytes * scale, 2)
    fill = colour_of(s.key, s.kind, colours)
    out = [f'<rect class="seg" data-device="{text(device)}" data-part="{text(s.key)}" data-kind="{s.kind}" '
           f'data-bytes="{s.bytes}" data-offset="{s.offset}" x="{num(x)}" y="0" width="{num(width)}" '
           f'height="{BAR_HEIGHT}" fill="{fill}"><title>{text(segment_title(device, s))}</title></rect>']
    if s.kind in PATTERNS:
        out.append(f'<rect class="pattern" x="{num(x)}" y="0" width="{num(width)}" height="{BAR_HEIGHT}" '
                   f'fill="{PATTERNS[s.kind]}" pointer-events="none"/>')
    for candidate in (f"{s.label} {human_bytes(s.bytes)}", s.label):
        if text_width(candidate, 11) + 8 <= width:
            return out, [f'<text x="{num(x + 4)}" y="{BAR_HEIGHT / 2 + 4:g}" font-size="11" fill="{INK}" '
                         f'pointer-events="none">{text(candidate)}</text>']
    return out, []


def draw_bar(bar: Bar, scale: float, width: int, colours: dict[str, str]) -> list[str]:
    """The track (the full scale width), the segments, what is over the budget, and the budget line."""
    out = [f'<rect class="track" x="0" y="0" width="{width}" height="{BAR_HEIGHT}" fill="#f7f7f7"/>']
    labels: list[str] = []
    for s in bar.segments:
        shapes, label = draw_segment(bar.device, s, scale, colours)
        out += shapes
        labels += label
    if bar.budget is not None:
        at = num(round(bar.budget * scale, 2))
        if bar.over_by:
            out.append(f'<rect class="over" data-device="{text(bar.device)}" data-part="over" '
                       f'data-bytes="{bar.over_by}" data-offset="{bar.budget}" x="{at}" y="0" '
                       f'width="{num(round(bar.over_by * scale, 2))}" height="{BAR_HEIGHT}" fill="url(#ckpt-over)">'
                       f"<title>{text(bar.device)} · over the budget by {bar.over_by:,} bytes "
                       f"({human_bytes(bar.over_by)})</title></rect>")
        out.append(f'<line class="budget" data-bytes="{bar.budget}" x1="{at}" x2="{at}" y1="-5" '
                   f'y2="{BAR_HEIGHT + 5}" stroke="{INK}" stroke-width="2"><title>{text(bar.device)} · budget '
                   f"{bar.budget:,} bytes ({human_bytes(bar.budget)})</title></line>")
    return out + labels


# --- panels -------------------------------------------------------------------------------------------


class Cursor:
    """Elements of one panel, placed top to bottom from its origin."""

    def __init__(self, x: float, y: float, width: int) -> None:
        self.x, self.y, self.width, self.parts = x, y, width, []  # type: ignore[var-annotated]

    def text(self, value: str, *, size: float = 12, gap: float = 4, **kw: str) -> None:
        self.y += size + gap
        self.parts.append(line(self.x, self.y, value, self.width, size=size, **kw))

    def bar(self, bar: Bar, scale: float, scale_name: str, colours: dict[str, str]) -> None:
        self.y += 8
        self.parts.append(f'<g class="bar" data-device="{text(bar.device)}" data-scale="{scale_name}" '
                          f'transform="translate({num(self.x)},{num(self.y)})">')
        self.parts += draw_bar(bar, scale, self.width, colours)
        self.parts.append("</g>")
        self.y += BAR_HEIGHT + 6


def full_scale(panels: Sequence[Panel]) -> int:
    """F: the largest total or budget of any device of any panel (at least 1 byte)."""
    return max([b.extent for p in panels for b in p.bars] + [1])


def needs_own_scale(panels: Sequence[Panel], full: int) -> bool:
    extents = [b.extent for p in panels for b in p.bars]
    return len(extents) > 1 and any(0 < e < full * OWN_SCALE_BELOW for e in extents)


def draw_panel(panel: Panel, cursor: Cursor, full: int, own: bool, colours: dict[str, str], titled: bool) -> None:
    if titled:
        cursor.text(panel.title + ("  (chosen)" if panel.chosen else ""), size=14, weight="bold")
    for value in panel.lines:
        cursor.text(value, size=12, colour=MUTED)
    cursor.y += 6
    scale = cursor.width / full
    for bar in panel.bars:
        first, second = bar_caption(bar)
        cursor.text(f"{bar.device}  {first}", size=13, weight="bold", gap=8)
        cursor.text(second, size=11, colour=MUTED, gap=3)
        cursor.bar(bar, scale, "shared", colours)
    for note in panel.notes:
        cursor.text(note, size=11, colour=MUTED)
    if own:
        cursor.y += 8
        cursor.text("each device at its own scale (its total or budget spans the width)", size=12,
                    weight="bold", colour=MUTED)
        for bar in (b for b in panel.bars if 0 < b.extent < full):  # the largest would be drawn twice alike
            cursor.text(f"{bar.device}  full width = {human_bytes(bar.extent)} ({bar.extent:,} bytes)", size=11,
                        colour=MUTED, gap=6)
            cursor.bar(bar, cursor.width / bar.extent, "own", colours)


# --- legend and document ------------------------------------------------------------------------------


def legend_items(panels: Sequence[Panel], colours: dict[str, str]) -> list[tuple[str, str, str]]:
    """(label, fill, pattern) of every kind of segment drawn: roles in their fixed order, then parts."""
    seen: dict[str, Segment] = {}
    for s in (s for p in panels for b in p.bars for s in b.segments):
        seen.setdefault(s.key if s.kind != "weights" or s.key not in ROLE_COLOURS else "role:" + s.key, s)
    roles = [(r, ROLE_COLOURS[r], "") for r in ROLES if "role:" + r in seen]
    parts = [(s.label, colour_of(s.key, s.kind, colours), PATTERNS.get(s.kind, ""))
             for k, s in seen.items() if not k.startswith("role:") and k != "free"]
    items = roles + parts
    if "free" in seen:
        items.append(("free under the budget", PART_COLOURS["free"], ""))
    if any(b.over_by for p in panels for b in p.bars):
        items.append(("over the budget", "none", "url(#ckpt-over)"))
    return items


def draw_legend(items: Iterable[tuple[str, str, str]], x0: float, y0: float, width: float) -> tuple[list[str], float]:
    out, x, y = ['<g class="legend">'], x0, y0
    for label, fill, pattern in items:
        step = 14 + 6 + len(label) * 12 * 0.55 + 18
        if x > x0 and x + step > x0 + width:
            x, y = x0, y + 20
        out.append(f'<rect x="{num(x)}" y="{num(y)}" width="14" height="14" fill="{fill}" stroke="#999999"/>')
        if pattern:
            out.append(f'<rect x="{num(x)}" y="{num(y)}" width="14" height="14" fill="{pattern}"/>')
        out.append(f'<text x="{num(x + 20)}" y="{num(y + 11.5)}" font-size="12" fill="{INK}">{text(label)}</text>')
        x += step
    out.append("</g>")
    return out, y + 20


def svg_element(picture: Picture) -> str:
    """The <svg> element: title, scale, the panels (side by side when quants are compared), the legend."""
    panels = picture.panels
    several = len(panels) > 1
    bar_width = PANEL_BAR_WIDTH if several else BAR_WIDTH
    columns = min(COLUMNS, len(panels)) if several else 1
    total_width = MARGIN + columns * (bar_width + 2 * MARGIN)
    full = full_scale(panels)
    own = needs_own_scale(panels, full)
    colours: dict[str, str] = {}
    head = Cursor(MARGIN, 0, total_width - 2 * MARGIN)
    head.text(picture.title, size=16, weight="bold", gap=12)
    head.text(f"one scale for every bar: {bar_width} px = {human_bytes(full)} ({full:,} bytes)", size=11,
              colour=MUTED)
    body, y = head.parts, head.y + 10
    for row in range(0, len(panels), columns):
        bottoms = []
        for i, panel in enumerate(panels[row: row + columns]):
            x = MARGIN + i * (bar_width + 2 * MARGIN) + (MARGIN if several else 0)
            cursor = Cursor(x, y + (6 if several else 0), bar_width)
            draw_panel(panel, cursor, full, own, colours, titled=several)
            if several:
                stroke = "#333333" if panel.chosen else "#cccccc"
                body.append(f'<rect class="panel" x="{num(x - MARGIN + 4)}" y="{num(y)}" '
                            f'width="{bar_width + 2 * MARGIN - 8}" height="{num(cursor.y - y + 8)}" fill="none" '
                            f'stroke="{stroke}" stroke-width="{2 if panel.chosen else 1}" rx="6"/>')
            body += cursor.parts
            bottoms.append(cursor.y + (14 if several else 0))
        y = max(bottoms) + 10
    legend, height = draw_legend(legend_items(panels, colours), MARGIN, y, total_width - 2 * MARGIN)
    height += MARGIN
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_width}" height="{num(height)}" '
            f'viewBox="0 0 {total_width} {num(height)}" role="img" aria-labelledby="ckpt-title" '
            f'font-family="{escape(FONT)}">'
            f'<title id="ckpt-title">{text("bytes per device: " + picture.title)}</title>{DEFS}'
            f'<rect width="100%" height="100%" fill="#ffffff"/>' + "".join(body) + "".join(legend) + "</svg>")


def svg_document(picture: Picture) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg_element(picture) + "\n"
