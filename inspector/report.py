"""Rendering an Inspection as a table, JSON, CSV or Markdown. Computes no sizes; sums come from `summary`."""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Sequence

from tabulate import tabulate

from .memory.table import MemoryTable
from .model import Checkpoint, TensorInfo
from .devices import device_sort_key
from .summary import Group, Inspection

VIEWS = ("role", "layer", "dtype", "device", "tensor")
FORMATS = ("table", "json", "csv", "markdown")
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


def render(result: Inspection, *, view: str = "role", fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(to_json(result, view=view), indent=2) + "\n"
    if fmt == "csv":
        return _csv(result, view)
    return _text(result, view, markdown=fmt == "markdown")


# --- JSON ---------------------------------------------------------------------------------------------


def _group_json(g: Group) -> dict[str, Any]:
    out: dict[str, Any] = {"tensors": g.tensors, "params": g.params, "bytes": g.bytes, "dtypes": dict(g.dtypes)}
    if g.roles:
        out["roles"] = {r.key: {"tensors": r.tensors, "params": r.params, "bytes": r.bytes} for r in g.roles}
    return out


def _devices_json(result: Inspection) -> dict[str, Any]:
    """Per device: the weight groups, plus weights / kv_cache / state / buffers / overhead / total with a memory plan."""
    devices = {g.key: _group_json(g) for g in result.by_device}
    if result.memory is not None:
        table = result.memory.table
        for device in table.devices:
            devices.setdefault(device, {"tensors": 0, "params": 0, "bytes": 0, "dtypes": {}}).update(
                table.row_dict(device))
    return devices


def _tensor_json(t: TensorInfo, files: Sequence[str]) -> dict[str, Any]:
    return {
        "name": t.name,
        "shape": list(t.shape),
        "dtype": t.dtype,
        "bytes": t.nbytes,
        "params": t.params,
        "role": t.role,
        "layer": t.layer,
        "expert": t.expert,
        "device": t.device,
        "file": files[t.file_index],
        "offset": t.offset,
    }


def to_json(result: Inspection, *, view: str = "role") -> dict[str, Any]:
    """The stable JSON document (schema: docs/json.md). Every size is an exact integer."""
    ck = result.checkpoint
    doc: dict[str, Any] = {
        "source": ck.source,
        "format": ck.format,
        "architecture": ck.architecture,
        "files": [
            {"path": f.path, "size": f.size, "header_bytes": f.header_bytes, "expected_size": f.expected_size,
             "missing_bytes": f.missing_bytes}
            for f in ck.files
        ],
        "tensor_count": result.tensor_count,
        "params": result.params,
        "bytes": result.bytes,
        "placed_bytes": result.placed_bytes,
        "plan": result.plan,
        "flags": result.flags_line,
        "notes": list(result.notes),
        "quant": result.quant.as_dict() if result.quant else None,
        "roles": {g.key: _group_json(g) for g in result.by_role},
        "devices": _devices_json(result),
        "warnings": list(ck.warnings),
    }
    if ck.fetch:
        doc["fetch"] = dict(ck.fetch)
    for key, part in (("memory", result.memory), ("budget", result.budget), ("train", result.train)):
        if part is not None:
            doc[key] = part.as_dict()
    if view == "layer":
        doc["layers"] = {g.key: _group_json(g) for g in result.groups("layer")}
    elif view == "dtype":
        doc["dtypes"] = {g.key: _group_json(g) for g in result.groups("dtype")}
    elif view == "tensor":
        files = [f.path for f in ck.files]
        doc["tensors"] = [_tensor_json(t, files) for t in ck.tensors]
    return doc


# --- rows shared by table, Markdown and CSV -------------------------------------------------------------


def _group_rows(groups: Sequence[Group], total: int, human: bool) -> list[list[Any]]:
    rows = []
    for g in groups:
        share = f"{100 * g.bytes / total:.1f}%" if total else "-"
        dtypes = ", ".join(d for d, _ in g.dtypes)
        if human:
            rows.append([g.key, g.tensors, human_count(g.params), human_bytes(g.bytes), share, dtypes])
        else:
            rows.append([g.key, g.tensors, g.params, g.bytes, dtypes])
    return rows


def _device_rows(groups: Sequence[Group], human: bool) -> list[list[Any]]:
    rows = []
    for d in groups:
        for r in d.roles:
            size = human_bytes(r.bytes) if human else r.bytes
            rows.append([d.key, r.key, r.tensors, size])
        rows.append([d.key, "total", d.tensors, human_bytes(d.bytes) if human else d.bytes])
    return rows


def _tensor_rows(result: Inspection, human: bool) -> list[list[Any]]:
    rows = []
    for t in result.checkpoint.tensors:
        layer = "" if t.layer is None else t.layer
        size = human_bytes(t.nbytes) if human else t.nbytes
        rows.append([safe(t.name), "x".join(map(str, t.shape)), t.dtype, size, t.role, layer, t.device or ""])
    return rows


def _quant_lines(result: Inspection) -> list[list[str]]:
    q = result.quant
    if not q:
        return []
    if q.mode == "selected":
        return [["quant", f"{q.ftype}: read from the files of that quant"]]
    header = "exact" if q.header_exact else "estimate"
    return [["quant", f"{q.ftype} predicted ({q.rules} llama.cpp rules)"],
            ["file", f"{q.file_size:,} ({human_bytes(q.file_size)}) = header {q.header_bytes:,} ({header})"
                     f" + data {q.data_bytes:,} (exact)"]]


def render_listing(found: Any, *, fmt: str = "table") -> str:
    """A Hub repo of several GGUF quants: one row per quant from the listing (sizes include headers)."""
    if fmt == "json":
        return json.dumps(found.to_dict(), indent=2) + "\n"
    rows = [[safe(r.name), r.quant or "-", len(r.files), r.bytes if fmt == "csv" else human_bytes(r.bytes),
             "" if r.complete else f"missing {len(r.missing)} shard(s)"] for r in found.rows]
    headers = ["model", "quant", "files", "bytes" if fmt == "csv" else "size", "note"]
    if fmt == "csv":
        return _csv_text(headers, rows)
    table = tabulate(rows, headers=headers, tablefmt="github" if fmt == "markdown" else "simple",
                     disable_numparse=True)
    extras = [f"not counted: {safe(e.path)} ({human_bytes(e.bytes)}, {e.kind})" for e in found.extras]
    title = f"{safe(found.description)}: {len(found.rows)} GGUF models (pick one with --quant NAME or --file PATH)"
    return "\n".join([title, "", table] + ([""] + extras if extras else [])) + "\n"


def render_quant_list(checkpoint: Checkpoint, rows: Sequence[Any], *, fmt: str = "table") -> str:
    """`--quant-list`: one row per file type, file size and bytes per device."""
    devices = sorted({d for r in rows for d in r.devices}, key=device_sort_key)
    if fmt == "json":
        doc = {"source": checkpoint.source, "quants": [
            {"ftype": r.ftype, "file_size": r.file_size, "header_exact": r.header_exact, "devices": r.devices}
            for r in rows]}
        return json.dumps(doc, indent=2) + "\n"
    human = fmt in ("table", "markdown")
    table = [[r.ftype, human_bytes(r.file_size) if human else r.file_size]
             + [(human_bytes(r.devices.get(d, 0)) if human else r.devices.get(d, 0)) for d in devices]
             for r in rows]
    headers = ["quant", "file"] + devices
    if fmt == "csv":
        return _csv_text(headers, table)
    title = f"{safe(checkpoint.source)}: predicted llama-quantize outputs (tensor data exact; header as noted)"
    return title + "\n\n" + tabulate(table, headers=headers, tablefmt="github" if fmt == "markdown" else "simple",
                                     disable_numparse=True) + "\n"


def render_validation(result: Any, *, fmt: str = "table") -> str:
    """`validate`: one line per finding, then the per-device bytes of the plan when it could be applied."""
    if fmt == "json":
        doc = {"findings": [f.as_dict() for f in result.findings], "has_errors": result.has_errors}
        if result.placed is not None:
            doc["devices"] = {g.key: _group_json(g) for g in result.devices}
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "csv":
        keys = ["path", "line", "column", "severity", "code", "message", "fix"]
        return _csv_text(keys, [[f.as_dict()[k] for k in keys] for f in result.findings])
    lines = [safe(f.render()) for f in result.findings] or ["no findings"]
    if result.placed is not None:
        groups = result.devices
        human = fmt != "csv"
        tablefmt = "github" if fmt == "markdown" else "simple"
        lines += ["", tabulate(_device_rows(groups, human), headers=["device", "role", "tensors", "size"],
                               tablefmt=tablefmt)]
    return "\n".join(lines) + "\n"


def render_fit(report: Any, *, fmt: str = "table") -> str:
    """`fit`: the verdict, the flags to paste, the limits, the memory per device; the quants compared."""
    r = report.result
    if fmt == "json":
        doc = {"source": report.source, "quant": report.quant, "fits": bool(r and r.fits),
               "plan": r.as_dict() if r else None,
               "quants": [{"quant": q.name, "weight_bytes": q.weight_bytes, "fits": q.result.fits,
                           "all_on_gpu": q.all_on_gpu, "flags": q.result.command} for q in report.quants]}
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "csv":
        if r is None:
            return _csv_text(["quant", "weight_bytes", "fits"], [[q.name, q.weight_bytes, q.result.fits]
                                                                for q in report.quants])
        verdict = {d.device: d for d in r.verdict.devices}
        table = r.memory.table
        keys = [p.key for p in table.parts] + ["total"]
        rows = [[device, *(table.row_dict(device)[k] for k in keys), verdict[device].budget if device in verdict
                 else "", verdict[device].fits if device in verdict else ""] for device in table.devices]
        return _csv_text(["device", *keys, "budget", "fits"], rows)
    tablefmt = "github" if fmt == "markdown" else "simple"
    parts = []
    if report.quants:
        rows = [[q.name, human_bytes(q.weight_bytes), "all on GPUs" if q.all_on_gpu else
                 "fits" if q.result.fits else "does not fit"] for q in report.quants]
        parts.append(tabulate(rows, headers=["quant", "weights", "verdict"], tablefmt=tablefmt))
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
    if report.quant:
        lines.insert(1, ["quant", report.quant])
    parts.append(tabulate(lines, tablefmt="plain"))
    parts.append("\n".join(f"- {safe(step)}" for step in r.steps))
    parts.append(_memory_table(r.memory.table, r.verdict, tablefmt))
    return "\n\n".join(parts) + "\n"


# --- table and Markdown ------------------------------------------------------------------------------------


def _summary_lines(result: Inspection) -> list[list[str]]:
    ck = result.checkpoint
    files = len(ck.files)
    header = sum(f.header_bytes for f in ck.files)
    return [
        ["source", safe(ck.source)],
        ["format", f"{ck.format} ({files} file{'s' if files != 1 else ''}, headers {human_bytes(header)})"],
        ["architecture", safe(ck.architecture or "unknown")],
        ["tensors", f"{result.tensor_count:,}"],
        ["params", f"{result.params:,} ({human_count(result.params)})"],
        ["bytes", f"{result.bytes:,} ({human_bytes(result.bytes)})"],
    ] + ([["on devices", f"{result.placed_bytes:,} ({human_bytes(result.placed_bytes)}) under the plan: "
                         "runtime copies, skipped tensors and formats"]]
         if result.placed_bytes != result.bytes else []) + [
        ["plan", result.plan],
    ] + ([["flags", result.flags_line]] if result.flags_line else []) + _quant_lines(result)


def _text(result: Inspection, view: str, *, markdown: bool) -> str:
    tablefmt = "github" if markdown else "simple"
    parts = [tabulate(_summary_lines(result), tablefmt="plain" if not markdown else "github",
                      headers=() if not markdown else ["", ""])]
    if view == "tensor":
        headers = ["tensor", "shape", "dtype", "size", "role", "layer", "device"]
        parts.append(tabulate(_tensor_rows(result, True), headers=headers, tablefmt=tablefmt))
    elif view == "device":
        parts.append(tabulate(_device_rows(result.by_device, True), headers=["device", "role", "tensors", "size"],
                              tablefmt=tablefmt))
        parts += _memory_tables(result, tablefmt)
        return "\n\n".join(parts) + "\n"
    else:
        headers = [view, "tensors", "params", "size", "share", "dtypes"]
        rows = _group_rows(result.groups(view), result.placed_bytes, True)
        parts.append(tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True))
        if len({t.device for t in result.checkpoint.tensors}) > 1:
            parts.append(tabulate(_device_rows(result.by_device, True),
                                  headers=["device", "role", "tensors", "size"], tablefmt=tablefmt))
    parts += _memory_tables(result, tablefmt)
    return "\n\n".join(parts) + "\n"


def _memory_tables(result: Inspection, tablefmt: str) -> list[str]:
    """The memory plan per device (exact rows, the buffer estimate, the margin) and the budget verdict."""
    parts = []
    if result.memory is not None:
        table = result.memory.table
        parts.append(table.title + "\n" + _memory_table(table, result.budget, tablefmt))
    train = result.train
    if train is not None:
        rows = [[k, human_bytes(v)] for k, v in train.as_dict().items() if isinstance(v, int) and k != "params"]
        parts.append("training memory (docs/memory.md)\n" + tabulate(rows, headers=["part", "size"], tablefmt=tablefmt))
    return parts


def _memory_table(table: MemoryTable, verdict: Any, tablefmt: str) -> str:
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


# --- CSV ---


def _csv_text(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------------


def _csv(result: Inspection, view: str) -> str:
    if view == "tensor":
        return _csv_text(["tensor", "shape", "dtype", "bytes", "role", "layer", "device"], _tensor_rows(result, False))
    if view == "device":
        return _csv_text(["device", "role", "tensors", "bytes"], _device_rows(result.by_device, False))
    rows = _group_rows(result.groups(view), result.placed_bytes, False)
    return _csv_text([view, "tensors", "params", "bytes", "dtypes"], rows)
