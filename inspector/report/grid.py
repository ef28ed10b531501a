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
    right = _alignment(rows, headers, tablefmt, disable_numparse)
    if right is None:
        from tabulate import tabulate

        return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=disable_numparse)
    cells = [[str(c).strip() for c in row] for row in rows]
    heads = list(headers)  # tabulate strips the cells, not the headers
    columns = len(cells[0])
    widths = [max(len(row[i]) for row in cells) for i in range(columns)]
    if heads:
        widths = [max(w, len(h) + MIN_PADDING) for w, h in zip(widths, heads)]

    def line(row: Sequence[str]) -> str:  # tabulate strips each line's end (its _build_simple_row)
        return SEPARATOR.join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)).rstrip()

    lines = [line(row) for row in cells]
    if heads:
        lines[:0] = [line(heads), SEPARATOR.join("-" * w for w in widths)]
    return "\n".join(lines)


def _alignment(rows: Sequence[Sequence[Any]], headers: Sequence[str], tablefmt: str,
               disable_numparse: bool) -> list[bool] | None:
    """Per column, whether tabulate aligns it right (a column of integers), for the tables `table` reproduces:
    one-line ASCII text and integers; None for any other (tabulate prints those)."""
    # "plain" without headers, "simple" with them (without, "simple" draws lines above and below)
    if not rows or (tablefmt, bool(headers)) not in (("plain", False), ("simple", True)):
        return None
    columns = len(rows[0])
    if any(len(row) != columns for row in rows) or (headers and len(headers) != columns) or not columns:
        return None
    for cell in headers:
        if not isinstance(cell, str) or not cell.isascii() or not cell.isprintable():
            return None
    right = []
    for column in zip(*rows):
        ints = [type(c) is int for c in column]
        if not all(i or (isinstance(c, str) and c.isascii() and c.isprintable()) for c, i in zip(column, ints)):
            return None
        if disable_numparse:  # all text, integers printed as str() gives them
            right.append(False)
        elif all(ints):  # tabulate's int column: right-aligned, headers too
            right.append(True)
        elif any(not i and c.strip() and not _is_number(c) for c, i in zip(column, ints)):
            right.append(False)  # a text column: integers in it printed as text
        else:
            return None  # numbers written as text, floats: tabulate's own formatting
    return right


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
