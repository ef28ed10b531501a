"""What every renderer shares: binary units, escaping of untrusted names, CSV text, the memory table."""
from __future__ import annotations

import csv
import io
from typing import Any, Sequence

from tabulate import tabulate

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




def memory_table(table: MemoryTable, verdict: Any, tablefmt: str) -> str:
    """Per device: the runtime's parts (exact rows, estimates marked, the margin); with budgets, the verdict."""
    per_device = {d.device: d for d in verdict.devices} if verdict else {}
    rows = []
    for device in table.devices:
        values = table.row_dict(device)
        row = [device, *(human_bytes(values[p.key]) for p in table.parts), human_bytes(values["total"])]
        if verdict:
            v = per_device.get(device)
            row += [human_bytes(v.budget), "fits" if v.fits else f"over by {human_bytes(v.over_by)}"] if v \
                else ["-", "-"]
        rows.append(row)
    headers = ["device", *(p.header for p in table.parts), "total"]
    headers += ["budget", "verdict"] if verdict else []
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)
