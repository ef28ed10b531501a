"""tabulate's "plain" and "simple" tables for the cells the common commands print, without importing tabulate.

tabulate costs ~15 ms of every start (it imports importlib.metadata for its version); `inspect`'s default output is
two small tables of text. `table()` renders the cases it can reproduce exactly (one-line ASCII text cells, no column
tabulate would align as numbers) and hands every other call to tabulate itself; tests/test_fast_start.py checks
both give the same text.
"""
from __future__ import annotations

from typing import Any, Sequence

MIN_PADDING = 2  # tabulate.MIN_PADDING: a header's width gets 2 more columns
SEPARATOR = "  "  # the "plain" and "simple" formats' column separator


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str] = (), tablefmt: str = "simple",
          disable_numparse: bool = False) -> str:
    """`tabulate.tabulate(rows, headers, tablefmt, disable_numparse)`, the same text."""
    if not _plain_cells(rows, headers, tablefmt, disable_numparse):
        from tabulate import tabulate

        return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=disable_numparse)
    cells = [[str(c).strip() for c in row] for row in rows]
    heads = list(headers)  # tabulate strips the cells, not the headers
    columns = len(cells[0])
    widths = [max(len(row[i]) for row in cells) for i in range(columns)]
    if heads:
        widths = [max(w, len(h) + MIN_PADDING) for w, h in zip(widths, heads)]
    # tabulate strips each line's end (its _build_simple_row)
    lines = [SEPARATOR.join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    if heads:
        lines[:0] = [SEPARATOR.join(h.ljust(w) for h, w in zip(heads, widths)).rstrip(),
                     SEPARATOR.join("-" * w for w in widths)]
    return "\n".join(lines)


def _plain_cells(rows: Sequence[Sequence[Any]], headers: Sequence[str], tablefmt: str,
                 disable_numparse: bool) -> bool:
    """Whether tabulate would print these as left-aligned text: what `table` reproduces."""
    # "plain" without headers, "simple" with them (without, "simple" draws lines above and below)
    if not rows or (tablefmt, bool(headers)) not in (("plain", False), ("simple", True)):
        return False
    columns = len(rows[0])
    if any(len(row) != columns for row in rows) or (headers and len(headers) != columns) or not columns:
        return False
    for cell in headers:
        if not isinstance(cell, str) or not cell.isascii() or not cell.isprintable():
            return False
    for row in rows:
        for cell in row:
            if type(cell) is int and disable_numparse:  # printed as text, like str(cell)
                continue
            if not isinstance(cell, str) or not cell.isascii() or not cell.isprintable():
                return False
    if disable_numparse:
        return True
    # tabulate aligns a column as numbers when every cell of it parses as one
    return all(any(c.strip() and not _is_number(c) for c in column) for column in zip(*rows))


def _is_number(text: str) -> bool:
    """Whether tabulate might read the cell as a number (decimal, float, 0x/0o/0b integer, or a bool)."""
    if text.strip() in ("True", "False"):
        return True
    for parse in (float, lambda t: int(t, 0)):
        try:
            parse(text)
            return True
        except ValueError:
            pass
    return False
