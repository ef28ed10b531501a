"""Rewrite the key tables of docs/json.md from docs/schema/ckpt-size.schema.json: `python tools/update_json_docs.py`.

Each table sits between `<!-- keys:NAME -->` and `<!-- /keys -->`, NAME a $defs entry of the schema.
tests/test_json_schema.py fails when a table is stale, so docs/json.md documents every key the schema allows, and
the schema refuses keys it does not list.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "json.md"
SCHEMA = json.loads((ROOT / "docs" / "schema" / "ckpt-size.schema.json").read_text())
BLOCK = re.compile(r"(<!-- keys:(\w+) -->\n)(.*?)(<!-- /keys -->)", re.S)


def type_of(prop: dict) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[1]
    if "enum" in prop:
        return " \\| ".join(f'`"{v}"`' for v in prop["enum"])
    if "anyOf" in prop:
        return " \\| ".join(type_of(p) for p in prop["anyOf"])
    kinds = prop.get("type", "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    names = {"integer": "int", "string": "string", "boolean": "bool", "null": "null", "object": "object",
             "array": "list", "number": "number"}
    return " \\| ".join(names.get(k, k) for k in kinds)


def table(name: str) -> str:
    schema = SCHEMA["$defs"][name]
    required = set(schema.get("required", ()))
    rows = ["| key | type | always | meaning |", "|---|---|---|---|"]
    for key, prop in schema.get("properties", {}).items():
        meaning = prop.get("description", "").replace("|", "\\|")
        rows.append(f"| `{key}` | {type_of(prop)} | {'yes' if key in required else ''} | {meaning} |")
    return "\n".join(rows) + "\n"


def updated(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + table(m.group(2)) + m.group(4), text)


if __name__ == "__main__":
    DOC.write_text(updated(DOC.read_text()))
