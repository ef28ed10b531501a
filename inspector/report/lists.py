"""The other answers of `inspect` and `validate`: a Hub repo's quants, `--quant-list`, validation findings."""
from __future__ import annotations

import json
from typing import Any, Sequence

from .grid import table as text_table

from ..devices import device_sort_key
from ..model import Checkpoint
from .base import csv_text, human_bytes, safe
from .inspection import device_rows, group_json
from .picture import refuse_picture

def render_listing(found: Any, *, fmt: str = "table") -> str:
    """A Hub repo of several GGUF quants: one row per quant from the listing (sizes include headers)."""
    refuse_picture(fmt, "a listing of quants (pick one with --quant NAME)")
    if fmt == "json":
        return json.dumps(found.to_dict(), indent=2) + "\n"
    rows = [[safe(r.name), r.quant or "-", len(r.files), r.bytes if fmt == "csv" else human_bytes(r.bytes),
             "" if r.complete else f"missing {len(r.missing)} shard(s)"] for r in found.rows]
    headers = ["model", "quant", "files", "bytes" if fmt == "csv" else "size", "note"]
    if fmt == "csv":
        return csv_text(headers, rows)
    table = text_table(rows, headers=headers, tablefmt="github" if fmt == "markdown" else "simple",
                     disable_numparse=True)
    extras = [f"not counted: {safe(e.path)} ({human_bytes(e.bytes)}, {e.kind})" for e in found.extras]
    title = f"{safe(found.description)}: {len(found.rows)} GGUF models (pick one with --quant NAME or --file PATH)"
    return "\n".join([title, "", table] + ([""] + extras if extras else [])) + "\n"


def render_quant_list(checkpoint: Checkpoint, rows: Sequence[Any], *, fmt: str = "table") -> str:
    """`--quant-list`: one row per file type, file size and bytes per device."""
    refuse_picture(fmt, "--quant-list")
    devices = sorted({d for r in rows for d in r.devices}, key=device_sort_key)
    if fmt == "json":
        doc = {"source": checkpoint.source, "quants": [
            {"ftype": r.ftype, "file_size": r.file_size, "header_exact": r.header_exact, "devices": r.devices,
             "notes": list(r.notes)} for r in rows]}
        return json.dumps(doc, indent=2) + "\n"
    human = fmt in ("table", "markdown")
    table = [[r.ftype, human_bytes(r.file_size) if human else r.file_size, "exact" if r.header_exact else "estimate"]
             + [(human_bytes(r.devices.get(d, 0)) if human else r.devices.get(d, 0)) for d in devices]
             for r in rows]
    headers = ["quant", "file", "header"] + devices
    if fmt == "csv":
        return csv_text(headers, table)
    title = (f"{safe(checkpoint.source)}: predicted llama-quantize outputs (tensor bytes exact; the header column "
             "says whether the file's header size is exact or estimated)")
    return title + "\n\n" + text_table(table, headers=headers, tablefmt="github" if fmt == "markdown" else "simple",
                                     disable_numparse=True) + "\n"


def render_validation(result: Any, *, fmt: str = "table") -> str:
    """`validate`: one line per finding, then the per-device bytes of the plan when it could be applied."""
    if fmt == "json":
        doc = {"findings": [f.as_dict() for f in result.findings], "has_errors": result.has_errors}
        if result.placed is not None:
            doc["devices"] = {g.key: group_json(g) for g in result.devices}
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "csv":
        keys = ["path", "line", "column", "severity", "code", "message", "fix"]
        return csv_text(keys, [[f.as_dict()[k] for k in keys] for f in result.findings])
    lines = [safe(f.render()) for f in result.findings] or ["no findings"]
    if result.placed is not None:
        groups = result.devices
        human = fmt != "csv"
        tablefmt = "github" if fmt == "markdown" else "simple"
        lines += ["", text_table(device_rows(groups, human), headers=["device", "role", "tensors", "size"],
                               tablefmt=tablefmt)]
    return "\n".join(lines) + "\n"
