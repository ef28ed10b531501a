"""The page of `--format html`: one file, nothing fetched (a Content-Security-Policy forbids every load), no
script. It holds the drawing of picture_svg.py inline, then per plan its lines in full (the drawing cuts long
ones), the exact bytes of every bar as a table, and the notes and warnings the command printed on stderr."""
from __future__ import annotations

from typing import Any

from ..version import __version__
from .base import human_bytes
from .picture import Panel, Picture, panel_rows
from .picture_svg import FONT, svg_element, text

CSP = "default-src 'none'; style-src 'unsafe-inline'"
STYLE = f"""
body {{ font-family: {FONT}; color: #1a1a1a; margin: 24px; }}
h1 {{ font-size: 20px; overflow-wrap: anywhere; }}
h2 {{ font-size: 16px; margin-top: 28px; }}
h3 {{ font-size: 14px; }}
.figure {{ overflow-x: auto; }}
.figure svg {{ display: block; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
th, td {{ padding: 2px 12px 2px 0; border-bottom: 1px solid #e0e0e0; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
ul.lines {{ list-style: none; padding: 0; color: #555555; }}
ul.lines li, code {{ overflow-wrap: anywhere; }}
footer {{ margin-top: 32px; color: #777777; font-size: 12px; }}
""".strip()


def cell(value: Any) -> str:
    if isinstance(value, int):
        return f'<td class="n" data-bytes="{value}">{value:,}</td><td class="n">{human_bytes(value)}</td>'
    return f"<td>{text(str(value))}</td>"


def bytes_table(rows: list[tuple[Any, ...]], headers: tuple[str, ...]) -> str:
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def panel_section(panel: Panel, titled: bool) -> str:
    out = [f"<h3>{text(panel.title)}{' (chosen)' if panel.chosen else ''}</h3>"] if titled else []
    out.append('<ul class="lines">' + "".join(f"<li>{text(v)}</li>" for v in panel.lines) + "</ul>")
    rows = [(device, part, kind or "", size) for device, part, kind, size in panel_rows(panel)]
    out.append(bytes_table(rows, ("device", "part", "kind", "bytes", "size")))
    out += [f"<p>{text(note)}</p>" for note in panel.notes]
    return "\n".join(out)


def listing(title: str, items: tuple[str, ...]) -> list[str]:
    if not items:
        return []
    return [f"<h2>{text(title)}</h2>", "<ul>" + "".join(f"<li>{text(i)}</li>" for i in items) + "</ul>"]


def html_page(picture: Picture) -> str:
    several = len(picture.panels) > 1
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="ckpt-size {__version__}">',
        f"<title>ckpt-size: {text(picture.title)}</title>",
        f"<style>\n{STYLE}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{text(picture.title)}</h1>",
        f'<div class="figure">{svg_element(picture)}</div>',
        "<h2>Exact bytes per device</h2>",
    ]
    parts += [panel_section(p, several) for p in picture.panels] or ["<p>no plan to draw</p>"]
    for title, rows in picture.extra_tables:
        parts += [f"<h2>{text(title)}</h2>", bytes_table(list(rows), ("part", "bytes", "size"))]
    parts += listing("Notes", picture.notes) + listing("Warnings", picture.warnings)
    parts += [f"<footer>ckpt-size {__version__}: sizes read from tensor headers; estimates are marked "
              "(est.) and hatched.</footer>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
