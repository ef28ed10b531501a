"""What every renderer shares: binary units, escaping of untrusted names, CSV text, the memory table."""
from __future__ import annotations

import csv
import io
from typing import Any, Sequence

from .grid import table as text_table

from ..devices import device_sort_key
from ..memory.table import MemoryTable

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: int) -> str:
    """Binary units with two decimals (`351.93 GiB`); exact counts are in JSON and CSV."""
    value, unit = float(n), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{n} B" if unit == 0 else f"{value:.2f} {_UNITS[unit]}"


def human_count(n: int) -> str:
    for scale, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= scale:
            return f"{n / scale:.2f} {suffix}"
    return str(n)


def safe(text: str) -> str:
    """Escape control and non-printable characters: names come from untrusted files (terminal injection)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def csv_text(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue()




def memory_rows(table: MemoryTable, verdict: Any) -> list[dict[str, Any]]:
    """One dict per device: the table's parts and total, and with budgets its budget, what is left (bytes under the
    budget) and verdict.
    A budgeted device the plan leaves empty is a row of zeros: its whole budget is free."""
    per_device = {d.device: d for d in verdict.devices} if verdict else {}
    devices = sorted(set(table.devices) | set(per_device), key=device_sort_key)
    rows = []
    for device in devices:
        values = table.row_dict(device) if device in table.rows else {**{p.key: 0 for p in table.parts}, "total": 0}
        row: dict[str, Any] = {"device": device, **values}
        if verdict:
            v = per_device.get(device)
            row.update(budget=v.budget if v else None, left=v.headroom if v else None,
                       fits=v.fits if v else None, over_by=v.over_by if v else None)
        rows.append(row)
    return rows


def memory_table(table: MemoryTable, verdict: Any, tablefmt: str) -> str:
    """Per device: the runtime's parts (exact rows, estimates marked, the margin); with budgets, the budget, what is
    left free and the verdict."""
    rows = []
    for row in memory_rows(table, verdict):
        cells = [row["device"], *(human_bytes(row[p.key]) for p in table.parts), human_bytes(row["total"])]
        if verdict:
            known = row["budget"] is not None
            cells += [human_bytes(row["budget"]) if known else "-", human_bytes(row["left"]) if known else "-",
                      ("fits" if row["fits"] else f"over by {human_bytes(row['over_by'])}") if known else "-"]
        rows.append(cells)
    headers = ["device", *(p.header for p in table.parts), "total"]
    headers += ["budget", "left", "verdict"] if verdict else []
    return text_table(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def memory_csv(table: MemoryTable, verdict: Any) -> str:
    """The memory rows with exact integers (and the budget, the bytes left under it and the verdict when budgets were given)."""
    rows = memory_rows(table, verdict)
    keys = ["device", *(p.key for p in table.parts), "total"] + (["budget", "left", "fits", "over_by"] if verdict
                                                                  else [])
    return csv_text(keys, [["" if row.get(k) is None else row.get(k) for k in keys] for row in rows])
