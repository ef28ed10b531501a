"""A small JSON-Schema validator for the subset our schemas use (rules/plan.schema.json).

Supported keywords: type, properties, required, additionalProperties (bool or schema), propertyNames, items,
minItems, enum, const, pattern, minimum, anyOf, oneOf, $ref (local "#/$defs/…"), format "regex"; description
and title are ignored. An unsupported keyword in a schema is a programming error (KeyError-free: we raise).
Errors come back as (path, keyword, message), path being the list of keys/indices to the offending value, so
callers can point at the YAML line.
"""
from __future__ import annotations

import re
from typing import Any, Iterator

from ..patterns import PatternProblem, try_compile

Path = tuple[Any, ...]
SchemaError = tuple[Path, str, str]

_KNOWN = {
    "$schema", "$id", "$defs", "title", "description", "type", "properties", "required", "additionalProperties",
    "propertyNames", "items", "minItems", "enum", "const", "pattern", "minimum", "anyOf", "oneOf", "$ref", "format",
}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class Validator:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.root = schema
        self._check_keywords(schema)

    def _check_keywords(self, schema: Any) -> None:
        if isinstance(schema, dict):
            unknown = set(schema) - _KNOWN
            if unknown:
                raise ValueError(f"schema uses unsupported keyword(s) {sorted(unknown)}")
            for key, value in schema.items():
                if key in ("properties", "$defs"):
                    for sub in value.values():
                        self._check_keywords(sub)
                elif key in ("items", "additionalProperties", "propertyNames"):
                    self._check_keywords(value)
                elif key in ("anyOf", "oneOf"):
                    for sub in value:
                        self._check_keywords(sub)

    def _resolve(self, ref: str) -> dict[str, Any]:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref are supported, not {ref!r}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def errors(self, value: Any, schema: dict[str, Any] | None = None, path: Path = ()) -> Iterator[SchemaError]:
        """Every violation, most specific first where alternatives (anyOf/oneOf) all fail."""
        schema = self.root if schema is None else schema
        if "$ref" in schema:
            yield from self.errors(value, self._resolve(schema["$ref"]), path)
        if "type" in schema:
            kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(_TYPES[k](value) for k in kinds):
                yield path, "type", f"must be {' or '.join(kinds)}, not {_type_name(value)}"
                return
        if "const" in schema and value != schema["const"]:
            yield path, "const", f"must be {schema['const']!r}"
        if "enum" in schema and value not in schema["enum"]:
            yield path, "enum", f"{value!r} is not one of {', '.join(map(str, schema['enum']))}"
        if isinstance(value, str):
            if "pattern" in schema and not re.search(schema["pattern"], value):
                yield path, "pattern", f"{value!r} does not have the expected form"
            if schema.get("format") == "regex":
                problem = try_compile(value, "")
                if isinstance(problem, PatternProblem):
                    yield path, "format", problem.message
        if "minimum" in schema and _TYPES["number"](value) and value < schema["minimum"]:
            yield path, "minimum", f"must be at least {schema['minimum']}"
        if isinstance(value, dict):
            yield from self._object(value, schema, path)
        if isinstance(value, list):
            if "minItems" in schema and len(value) < schema["minItems"]:
                yield path, "minItems", f"needs at least {schema['minItems']} item(s)"
            if "items" in schema:
                for i, item in enumerate(value):
                    yield from self.errors(item, schema["items"], path + (i,))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                results = [list(self.errors(value, sub, path)) for sub in schema[key]]
                passing = sum(1 for r in results if not r)
                if key == "anyOf" and passing == 0 or key == "oneOf" and passing != 1:
                    if key == "oneOf" and passing > 1:
                        yield path, "oneOf", "matches more than one alternative"
                    else:
                        yield from _closest(results, path)

    def _object(self, value: dict[str, Any], schema: dict[str, Any], path: Path) -> Iterator[SchemaError]:
        props = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                yield path, "required", f"needs {name!r}"
        for name, item in value.items():
            if "propertyNames" in schema:
                for _, _, msg in self.errors(name, schema["propertyNames"], path + (name,)):
                    yield path + (name,), "propertyNames", f"key {name!r}: {msg}"
            if name in props:
                yield from self.errors(item, props[name], path + (name,))
            elif "additionalProperties" in schema:
                extra = schema["additionalProperties"]
                if extra is False:
                    yield path + (name,), "additionalProperties", f"unknown key {name!r}"
                elif isinstance(extra, dict):
                    yield from self.errors(item, extra, path + (name,))


def _closest(results: list[list[SchemaError]], path: Path) -> Iterator[SchemaError]:
    """For failed alternatives, the errors of the one that got deepest (fewest errors on ties); a bare
    'required' split (anyOf of required lists) is reported as one message."""
    if all(r and all(kw == "required" and p == path for p, kw, _ in r) for r in results):
        names = [msg.split("'")[1] for r in results for _, _, msg in r]
        yield path, "required", f"needs one of {', '.join(repr(n) for n in names)}"
        return
    best = max(results, key=lambda r: (max(len(p) for p, _, _ in r), -len(r)))
    yield from best


def _type_name(value: Any) -> str:
    for name, check in _TYPES.items():
        if name != "number" and check(value):
            return {"object": "a mapping", "array": "a list"}.get(name, name)
    return type(value).__name__
