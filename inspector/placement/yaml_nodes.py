"""YAML with positions: parse to a node tree (`yaml.compose`) so every finding can name file:line:column.

Both placement dialects (KTransformers rules, our plan files) are read through here. Values are built from
nodes with PyYAML's safe constructor, so `False`, `0`, `30: "cuda:1"` mean what they mean to `yaml.load`.

Before composing, one pass over the parser's events (constant memory) enforces the limits of docs/placement.md:
nesting depth, nodes as written, and nodes once aliases are expanded. Composing itself is recursive and costs a
few hundred bytes per node, and building a value expands aliases (`a: &x [*y, *y]` nine levels deep is a
billion items: the "billion laughs"), so both must be bounded before they start.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from .findings import Finding

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Real placement files nest 4-5 levels and hold a few hundred nodes (KTransformers' DeepSeek-V3-Chat-multi-gpu-marlin
# .yaml: 338 nodes, depth 5); the limits leave two orders of magnitude and refuse what would cost seconds or GBs.
MAX_DEPTH = 64
MAX_NODES = 50_000
MAX_EXPANDED_NODES = 500_000
# Checking a placement tries every rule on every module or tensor (the runtimes do the same at load): the rules
# times the tensors bound the time. KTransformers' own files hold 8-19 rules; fit writes 20 for two GPUs, 36 for four.
MAX_RULES = 1_000


@dataclass(frozen=True)
class Document:
    path: str
    root: yaml.Node | None
    loader: Any  # yaml.CSafeLoader when libyaml is there, else yaml.SafeLoader
    text: str = ""

    def value(self, node: yaml.Node) -> Any:
        """The Python value of a node, as `yaml.safe_load` would build it."""
        return self.loader.construct_object(node, deep=True)


def line_of(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def column_of(node: yaml.Node) -> int:
    return node.start_mark.column + 1


def parse(text: str, path: str) -> Document | Finding:
    """The composed document, or a `yaml-syntax` (or `yaml-limit`) finding at the line and column of the problem."""
    try:
        beyond = _beyond_limits(text, path)
        if beyond is not None:
            return beyond
        loader = _LOADER(text)
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = " ".join(str(x) for x in (e.context, e.problem) if x) or str(e)
        return Finding(
            path, line, column, "error", "yaml-syntax", f"invalid YAML: {problem}",
            "fix the YAML at this position (indentation, quoting, a missing ':' or '-')",
        )
    except yaml.YAMLError as e:
        return Finding(path, 0, 0, "error", "yaml-syntax", f"invalid YAML: {e}", "fix the YAML syntax")
    return Document(path, root, loader, text)


def _beyond_limits(text: str, path: str) -> Finding | None:
    """A `yaml-limit` finding where the document first passes MAX_DEPTH, MAX_NODES or MAX_EXPANDED_NODES.

    Counted on the event stream: a collection's expanded size is the number of nodes between its start and end
    events, aliases counting the expanded size of their anchor.
    """
    depth = nodes = expanded = 0
    open_anchors: list[tuple[str | None, int]] = []  # per open collection: its anchor, `expanded` at its start
    sizes: dict[str, int] = {}  # anchor -> expanded size of its node
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            expanded += sizes.get(event.anchor, 0)
        elif isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            nodes += 1
            expanded += 1
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                open_anchors.append((event.anchor, expanded - 1))
            elif event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, start = open_anchors.pop()
            if anchor is not None:
                sizes[anchor] = expanded - start
        problem = (f"nests deeper than {MAX_DEPTH} levels" if depth > MAX_DEPTH else
                   f"has more than {MAX_NODES:,} nodes" if nodes > MAX_NODES else
                   f"expands to more than {MAX_EXPANDED_NODES:,} nodes through its aliases (*name)"
                   if expanded > MAX_EXPANDED_NODES else None)
        if problem:
            mark = event.start_mark
            return Finding(path, mark.line + 1, mark.column + 1, "error", "yaml-limit",
                           f"the YAML {problem}, beyond the limits of a placement file (docs/placement.md)",
                           "check that this is the file you meant; real placement files are far smaller")
    return None


_ESCAPE_WIDTH = {"x": 4, "u": 6, "U": 10}


def char_position(doc: Document, node: yaml.ScalarNode, index: int) -> tuple[int, int]:
    """(line, column) in the file of character `index` of a one-line scalar's value, quotes and escapes
    (\\ in double quotes, '' in single quotes) taken into account."""
    line, column = line_of(node), column_of(node)
    raw = doc.text.splitlines()[line - 1][column - 1:] if doc.text else ""
    offset = 0
    if node.style == '"':
        offset, i = 1, 0
        while i < index and offset < len(raw):
            if raw[offset] == "\\":
                offset += _ESCAPE_WIDTH.get(raw[offset + 1: offset + 2], 2)
            else:
                offset += 1
            i += 1
    elif node.style == "'":
        offset, i = 1, 0
        while i < index and offset < len(raw):
            offset += 2 if raw[offset: offset + 2] == "''" else 1
            i += 1
    else:
        offset = index
    return line, column + offset


def too_many_rules(doc: Document, rules: yaml.Node) -> Finding | None:
    """A `too-many-rules` finding when a rule list is longer than MAX_RULES."""
    if isinstance(rules, yaml.SequenceNode) and len(rules.value) > MAX_RULES:
        extra = rules.value[MAX_RULES]
        return Finding(doc.path, line_of(extra), column_of(extra), "error", "too-many-rules",
                       f"{len(rules.value):,} rules, more than the {MAX_RULES:,} a placement file may have "
                       f"(docs/placement.md); rule {MAX_RULES + 1:,} starts here",
                       "merge rules with alternations, e.g. ^model\\.layers\\.([0-9]|1[0-9])\\. for layers 0-19")
    return None


def mapping_items(node: yaml.MappingNode) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
    """(key node, value node) pairs in file order, merge keys left as they are."""
    return [(k, v) for k, v in node.value]


def duplicate_keys(doc: Document, node: yaml.MappingNode, what: str) -> list[Finding]:
    """PyYAML keeps the last of two equal keys silently; say so."""
    seen: dict[str, yaml.Node] = {}
    findings = []
    for key, _ in node.value:
        name = str(key.value)
        if name in seen:
            findings.append(Finding(
                doc.path, line_of(key), column_of(key), "error", "duplicate-key",
                f"{what} has {name!r} twice (first at line {line_of(seen[name])}); YAML keeps only the last one",
                f"remove one of the two {name!r} keys",
            ))
        seen[name] = key
    return findings
