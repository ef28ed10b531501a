"""An Inspection as a table, JSON, CSV or Markdown (schema: docs/json.md)."""
from __future__ import annotations

import json
from typing import Any, Sequence

from .grid import table as text_table

from ..model import TensorInfo
from ..summary import Group, Inspection
from .activity import activity_parts
from .base import csv_text, human_bytes, human_count, memory_csv, memory_rows, memory_table, safe

from . import FORMATS, PICTURE_FORMATS, TEXT_FORMATS, VIEWS  # noqa: F401 - the command line's vocabulary, kept with the package


def render(result: Inspection, *, view: str = "role", fmt: str = "table") -> str:
    if fmt in PICTURE_FORMATS:  # a picture of the bytes per device; --by does not change it
        from .picture import render_picture  # loads the planner's result types: pictures only

        return render_picture(result, fmt)
    if fmt == "json":
        return json.dumps(to_json(result, view=view), indent=2) + "\n"
    if fmt == "csv":
        return _csv(result, view)
    return _text(result, view, markdown=fmt == "markdown")


# --- JSON ---------------------------------------------------------------------------------------------


def group_json(g: Group) -> dict[str, Any]:
    out: dict[str, Any] = {"tensors": g.tensors, "params": g.params, "bytes": g.bytes, "dtypes": dict(g.dtypes)}
    if g.roles:
        out["roles"] = {r.key: {"tensors": r.tensors, "params": r.params, "bytes": r.bytes} for r in g.roles}
    return out


def _devices_json(result: Inspection) -> dict[str, Any]:
    """Per device: the weight groups, plus weights / kv_cache / state / buffers / overhead / total with a memory plan."""
    devices = {g.key: group_json(g) for g in result.by_device}
    if result.memory is not None:
        for row in memory_rows(result.memory.table, result.budget):
            extra = {k: v for k, v in row.items() if k not in ("device", "budget", "fits", "over_by", "left")}
            devices.setdefault(row["device"], {"tensors": 0, "params": 0, "bytes": 0, "dtypes": {}}).update(extra)
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
        "runtime": result.runtime,
        "plan": result.plan,
        "flags": result.flags_line,
        "notes": list(result.notes),
        "quant": result.quant.as_dict() if result.quant else None,
        "roles": {g.key: group_json(g) for g in result.by_role},
        "devices": _devices_json(result),
        "warnings": list(ck.warnings),
    }
    if ck.fetch:
        doc["fetch"] = dict(ck.fetch)
    for key, part in (("memory", result.memory), ("budget", result.budget), ("train", result.train),
                      ("activity", result.activity)):
        if part is not None:
            doc[key] = part.as_dict()
    if result.advice:
        doc["advice"] = list(result.advice)
    if view == "layer":
        doc["layers"] = {g.key: group_json(g) for g in result.groups("layer")}
    elif view == "dtype":
        doc["dtypes"] = {g.key: group_json(g) for g in result.groups("dtype")}
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


def device_rows(groups: Sequence[Group], human: bool) -> list[list[Any]]:
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
    parts = [text_table(_summary_lines(result), tablefmt="plain" if not markdown else "github",
                      headers=() if not markdown else ["field", "value"])]
    if view == "tensor":
        headers = ["tensor", "shape", "dtype", "size", "role", "layer", "device"]
        parts.append(text_table(_tensor_rows(result, True), headers=headers, tablefmt=tablefmt))
    elif view == "device":
        parts.append(text_table(device_rows(result.by_device, True), headers=["device", "role", "tensors", "size"],
                              tablefmt=tablefmt))
        parts += _memory_tables(result, tablefmt)
        return "\n\n".join(parts) + "\n"
    else:
        headers = [view, "tensors", "params", "size", "share", "dtypes"]
        rows = _group_rows(result.groups(view), result.placed_bytes, True)
        parts.append(text_table(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True))
        if len({t.device for t in result.checkpoint.tensors}) > 1:
            parts.append(text_table(device_rows(result.by_device, True),
                                  headers=["device", "role", "tensors", "size"], tablefmt=tablefmt))
    parts += _memory_tables(result, tablefmt)
    return "\n\n".join(parts) + "\n"


def _memory_tables(result: Inspection, tablefmt: str) -> list[str]:
    """The memory plan per device (exact rows, the buffer estimate, the margin) and the budget verdict."""
    parts = []
    if result.memory is not None:
        table = result.memory.table
        parts.append(table.title + "\n" + memory_table(table, result.budget, tablefmt))
        extra = getattr(result.memory, "extra_tables", None)  # a runtime's own tables (transformers: device map)
        for title, headers, rows in (extra() if extra else ()):
            body = "\n".join(rows) if not headers else text_table(rows, headers=headers, tablefmt=tablefmt,
                                                                disable_numparse=True)  # no headers: text lines
            parts.append(title + "\n" + body)
    train = result.train
    if train is not None:
        rows = [[k, human_bytes(v)] for k, v in train.as_dict().items() if isinstance(v, int) and k != "params"]
        parts.append("training memory (docs/memory.md)\n" + text_table(rows, headers=["part", "size"], tablefmt=tablefmt))
    if result.activity is not None:
        parts += activity_parts(result.activity, tablefmt)
    return parts


def _csv(result: Inspection, view: str) -> str:
    """The view's rows first; then, each after an empty line with its own header row, the summary fields, the
    memory per device (with budgets and verdicts) and the training parts: every number the table shows."""
    if view == "tensor":
        blocks = [csv_text(["tensor", "shape", "dtype", "bytes", "role", "layer", "device"],
                           _tensor_rows(result, False))]
    elif view == "device":
        blocks = [csv_text(["device", "role", "tensors", "bytes"], device_rows(result.by_device, False))]
    else:
        rows = _group_rows(result.groups(view), result.placed_bytes, False)
        blocks = [csv_text([view, "tensors", "params", "bytes", "dtypes"], rows)]
    blocks.append(csv_text(["field", "value"], summary_fields(result)))
    if result.memory is not None:
        blocks.append(memory_csv(result.memory.table, result.budget))
    if result.train is not None:
        blocks.append(csv_text(["part", "bytes"], [[k, v] for k, v in result.train.as_dict().items()
                                                   if isinstance(v, int) and not isinstance(v, bool)]))
    return "\n".join(blocks)


def summary_fields(result: Inspection) -> list[list[Any]]:
    """The summary lines with exact numbers."""
    ck = result.checkpoint
    fields: list[list[Any]] = [["source", ck.source], ["format", ck.format], ["architecture", ck.architecture or ""],
                               ["files", len(ck.files)], ["header_bytes", sum(f.header_bytes for f in ck.files)],
                               ["tensors", result.tensor_count], ["params", result.params], ["bytes", result.bytes],
                               ["placed_bytes", result.placed_bytes], ["runtime", result.runtime],
                               ["plan", result.plan], ["flags", result.flags_line or ""]]
    if result.quant:
        fields += [[f"quant_{k}", v] for k, v in result.quant.as_dict().items() if not isinstance(v, list)]
    if result.budget is not None:
        fields.append(["fits", result.budget.fits])
    return fields
