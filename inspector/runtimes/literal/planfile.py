"""ckpt-size's own placement plan: runtime-independent, ordered rules over tensors (docs/placement.md).

    version: 1
    default_device: cuda:0            # where tensors no rule matches go
    rules:                            # first rule whose criteria all hold wins
      - {role: embedding, device: cpu}
      - {name: 'ffn_(gate|up|down)_exps', layers: 3-29, device: cpu}
      - {role: [attention, shared_experts], device: cuda:0, storage: MARLIN_INT4_G64}
    budgets: {cuda:0: 24 GiB, cpu: 512 GB}

Criteria: `name` (Python regex, re.search in the tensor name), `role` (one or a list), `layers` (5, "3-29",
or a list). `storage` re-sizes the tensor: a ggml type (bytes from its block size) or MARLIN_INT<bits>_G<group>.
The file is checked against rules/plan.schema.json with the small validator in schema.py.
"""
from __future__ import annotations

import bisect
import difflib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml

from ...errors import RulesError, UsageError
from ...formats.ggml_types import type_by_name
from ...model import Checkpoint, TensorInfo
from ...patterns import PatternProblem, UserPattern, try_compile
from ...datafiles import read_packaged
from ...units import parse_size as budget_parse_size
from ...formats import storage as fmt
from ...devices import device_sort_key, normalize_device
from ...placement.findings import Finding, PlacedPlan
from ...placement.schema import Validator
from ...placement.yaml_nodes import Document, column_of, duplicate_keys, line_of, too_many_rules

DEFAULT_DEVICE = "cuda:0"
_MARLIN = re.compile(r"^MARLIN_INT(4|8)_G(32|64|128|K)$")


@lru_cache(maxsize=1)
def plan_schema() -> dict[str, Any]:
    return json.loads(read_packaged("plan.schema.json"))


def parse_size(value: int | str) -> int:
    """Bytes of a budget: a byte count, or a size string read by `--budget`'s parser
    (`inspector.units.parse_size`: '24 GiB', '512GB', '1.5 TiB', '24G' …; exact decimal arithmetic).

    Raises:
        UsageError: not a size (a negative count, a float, an unknown unit).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise UsageError(f"bad size {value!r}: a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise UsageError(f"bad size {value!r}: write a byte count or a size such as 24 GiB")
    return budget_parse_size(value)


@dataclass(frozen=True)
class LayerRanges:
    """Block indices as sorted, disjoint, non-adjacent closed intervals (lo, hi): `layers: "0-10000000000"` costs
    one pair, not ten billion set entries."""

    intervals: tuple[tuple[int, int], ...]

    def __contains__(self, layer: object) -> bool:
        if not isinstance(layer, int):
            return False
        i = bisect.bisect_right(self.intervals, (layer, float("inf"))) - 1
        return i >= 0 and self.intervals[i][0] <= layer <= self.intervals[i][1]

    def beyond(self, n_layers: int) -> tuple[int, int] | None:
        """The lowest and highest listed index >= n_layers (layers the model does not have), or None."""
        over = [(max(lo, n_layers), hi) for lo, hi in self.intervals if hi >= n_layers]
        return (over[0][0], over[-1][1]) if over else None


def parse_layers(value: Any) -> LayerRanges:
    """5, "3-29", or a list of those -> the block indices as intervals."""
    items = value if isinstance(value, list) else [value]
    spans: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            a = b = item
        else:
            lo, _, hi = str(item).partition("-")
            a, b = int(lo), int(hi or lo)
        if a < 0:
            raise ValueError(f"layer {item!r} is negative")
        if b < a:
            raise ValueError(f"range {item!r} ends before it starts")
        spans.append((a, b))
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return LayerRanges(tuple(merged))


@dataclass
class PlanRule:
    index: int
    line: int
    column: int
    device: str
    name_re: UserPattern | None = None
    roles: frozenset[str] | None = None
    layers: LayerRanges | None = None
    storage: str | None = None
    hits: int = 0
    wins: int = 0
    shadowed_by: set[int] = field(default_factory=set)

    def matches(self, t: TensorInfo) -> bool:
        if self.roles is not None and t.role not in self.roles:
            return False
        if self.layers is not None and (t.layer is None or t.layer not in self.layers):
            return False
        if self.name_re is not None and not self.name_re.search(t.name):
            return False
        return True

    def select(self, tensors: tuple[TensorInfo, ...], names: list[str]) -> list[int]:
        """The positions of the tensors this rule matches (`matches` over all of them, criteria cheapest first)."""
        picked: range | list[int] = range(len(tensors))
        if self.roles is not None:
            picked = [i for i in picked if tensors[i].role in self.roles]
        if self.layers is not None:
            picked = [i for i in picked if tensors[i].layer is not None and tensors[i].layer in self.layers]
        if self.name_re is not None:
            if isinstance(picked, range):
                return self.name_re.select(names)
            picked = [picked[j] for j in self.name_re.select([names[i] for i in picked])]
        return list(picked)


def _node_at(doc: Document, path: tuple[Any, ...]) -> yaml.Node | None:
    """The YAML node of the value at a schema error path (the deepest existing one)."""
    node = doc.root
    for step in path:
        if isinstance(node, yaml.MappingNode):
            found = [v for k, v in node.value if str(k.value) == str(step)]
            if not found:
                return node
            node = found[-1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
            node = node.value[step]
        else:
            return node
    return node


def _key_node(doc: Document, path: tuple[Any, ...]) -> yaml.Node | None:
    parent = _node_at(doc, path[:-1])
    if isinstance(parent, yaml.MappingNode):
        for k, _ in parent.value:
            if str(k.value) == str(path[-1]):
                return k
    return parent


class _Planner:
    def __init__(self, doc: Document, checkpoint: Checkpoint, gpus: int | None) -> None:
        self.doc = doc
        self.checkpoint = checkpoint
        self.gpus = gpus
        self.findings: list[Finding] = []
        self.schema_paths: set[tuple[Any, ...]] = set()  # values the schema already reported

    def add(self, node: yaml.Node | None, severity: str, code: str, message: str, fix: str) -> None:
        line, column = (line_of(node), column_of(node)) if node is not None else (0, 0)
        self.findings.append(Finding(self.doc.path, line, column, severity, code, message, fix))

    # ---- schema --------------------------------------------------------------------------------------------
    def schema_findings(self, value: Any) -> set[int]:
        """Report schema violations; the indices of rules that cannot be used."""
        bad_rules: set[int] = set()
        seen: set[tuple[tuple[Any, ...], str]] = set()
        for path, keyword, message in Validator(plan_schema()).errors(value):
            if (path, message) in seen:
                continue
            seen.add((path, message))
            self.schema_paths.add(path)
            if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
                bad_rules.add(path[1])
            where = _path_text(path)
            if keyword == "additionalProperties":
                name = path[-1]
                known = self._known_keys(path[:-1])
                self.add(_key_node(self.doc, path), "error", "unknown-key", f"{where}: {message}",
                         _suggest(str(name), known))
            elif keyword == "pattern" and path and (path[-1] in ("device", "default_device") or
                                                     (len(path) == 2 and path[0] == "budgets")):
                self.add(_node_at(self.doc, path), "error", "bad-device", f"{where}: {message}",
                         "write cpu, gpu or cuda:N (llama.cpp's CPU, CUDA0 are accepted too)")
            elif keyword == "propertyNames":
                self.add(_key_node(self.doc, path), "error", "bad-device", f"budgets: {message}",
                         "name budgets by device: cpu, cuda:0, …")
            elif keyword == "format":
                self.add(_node_at(self.doc, path), "error", "invalid-regex", f"{where}: {message}",
                         "fix the regex; numeric ranges are alternations, e.g. ([4-9]|10)")
            else:
                self.add(_node_at(self.doc, path), "error", "bad-value", f"{where}: {message}",
                         _fix_for(path, keyword))
        return bad_rules

    @staticmethod
    def _known_keys(path: tuple[Any, ...]) -> list[str]:
        schema = plan_schema()
        if not path:
            return list(schema["properties"])
        if path[0] == "rules":
            return list(schema["$defs"]["rule"]["properties"])
        return []

    # ---- rules ---------------------------------------------------------------------------------------------
    def rules(self, value: dict[str, Any], bad: set[int]) -> list[PlanRule]:
        rules = []
        seq = None
        assert isinstance(self.doc.root, yaml.MappingNode)
        for k, v in self.doc.root.value:
            if k.value == "rules":
                seq = v
        if not isinstance(seq, yaml.SequenceNode):
            return []
        for i, (node, raw) in enumerate(zip(seq.value, value.get("rules") or [], strict=False)):
            if isinstance(node, yaml.MappingNode):
                self.findings += duplicate_keys(self.doc, node, "the rule")
            if i in bad or not isinstance(raw, dict):
                continue
            rule = PlanRule(i, line_of(node), column_of(node), normalize_device(raw["device"]))
            self.check_gpu(rule.device, _node_at(self.doc, ("rules", i, "device")))
            if "name" in raw:
                node = _node_at(self.doc, ("rules", i, "name"))
                where = f"{self.doc.path}:{line_of(node)}:{column_of(node)}" if node is not None else self.doc.path
                compiled = try_compile(raw["name"], where, error=RulesError)
                if isinstance(compiled, PatternProblem):  # the schema's regex check reported invalid syntax
                    continue
                rule.name_re = compiled
            if "role" in raw:
                rule.roles = frozenset([raw["role"]] if isinstance(raw["role"], str) else raw["role"])
            if "layers" in raw:
                try:
                    rule.layers = parse_layers(raw["layers"])
                except ValueError as e:
                    self.add(_node_at(self.doc, ("rules", i, "layers")), "error", "bad-value", f"layers: {e}",
                             "write the range low-high, e.g. 3-29")
                    continue
            if "storage" in raw:
                rule.storage = raw["storage"].upper()
                if type_by_name(rule.storage) is None and not _MARLIN.match(rule.storage):
                    self.add(_node_at(self.doc, ("rules", i, "storage")), "error", "unknown-storage",
                             f"storage {raw['storage']!r} is neither a ggml type nor MARLIN_INT<4|8>_G<32|64|128|K>",
                             "use e.g. Q4_K, Q8_0, BF16, F16, F32 or MARLIN_INT4_G64")
                    continue
            rules.append(rule)
        return rules

    def check_gpu(self, device: str, node: yaml.Node | None) -> None:
        if self.gpus is not None and device.startswith("cuda:") and int(device[5:]) >= self.gpus:
            self.add(node, "error", "device-beyond-gpus",
                     f"{device} needs GPU {device[5:]}, but --gpus {self.gpus} gives cuda:0"
                     + (f"..cuda:{self.gpus - 1}" if self.gpus > 1 else ""),
                     f"use a device below cuda:{self.gpus} or raise --gpus")

    # ---- placing -------------------------------------------------------------------------------------------
    def resize(self, t: TensorInfo, storage: str | None, bad: list[str]) -> TensorInfo:
        if storage is None:
            return t
        ne = t.shape if self.checkpoint.format == "gguf" else tuple(reversed(t.shape))
        m = _MARLIN.match(storage)
        if m:
            if len(ne) < 2:
                bad.append(t.name)
                return t
            bits, group = int(m.group(1)), -1 if m.group(2) == "K" else int(m.group(2))
            count = 1
            for d in ne[2:]:
                count *= d
            return t.with_(dtype=storage, nbytes=count * fmt.marlin_nbytes(ne[0], ne[1], num_bits=bits,
                                                                              group_size=group))
        gtype = type_by_name(storage)
        assert gtype is not None
        ne0 = ne[0] if ne else 1
        if ne0 % gtype.block_size:
            bad.append(t.name)
            return t
        rows = t.params // ne0 if ne0 else 0
        return t.with_(dtype=gtype.name, nbytes=gtype.row_meta_size * rows + t.params // gtype.block_size
                       * gtype.type_size)

    def place(self, rules: list[PlanRule], default: str) -> tuple[Checkpoint, dict[str, int]]:
        placed: list[TensorInfo] = []
        unmatched: list[TensorInfo] = []
        bad_storage: dict[int, list[str]] = {}
        tensors = self.checkpoint.tensors
        names = [t.name for t in tensors]
        winners: list[PlanRule | None] = [None] * len(tensors)
        for rule in rules:  # rule by rule: each criterion is one pass over the tensors, not a call per pair
            matched = rule.select(tensors, names)
            rule.hits = len(matched)
            for i in matched:
                first = winners[i]
                if first is None:
                    winners[i] = rule
                    rule.wins += 1
                else:
                    rule.shadowed_by.add(first.line)
        for t, winner in zip(tensors, winners):
            if winner is None:
                unmatched.append(t)
                placed.append(t.with_(device=default))
                continue
            placed.append(self.resize(t, winner.storage, bad_storage.setdefault(winner.index, []))
                          .with_(device=winner.device))
        for rule in rules:
            names = bad_storage.get(rule.index)
            if names:
                self.add(_node_at(self.doc, ("rules", rule.index, "storage")), "error", "storage-shape",
                         f"{len(names)} tensor(s) cannot be stored as {rule.storage} (e.g. {names[0]}: its rows "
                         "do not fill whole blocks, or it is a vector)",
                         "narrow the rule or pick a type whose block size divides the row length")
        if unmatched:
            total = sum(t.nbytes for t in unmatched)
            shown = ", ".join(t.name for t in unmatched[:3])
            self.add(None, "info", "default-device",
                     f"{len(unmatched)} tensor(s) ({total:,} bytes) match no rule and go to {default} "
                     f"(e.g. {shown})", "add a rule for them if another device is meant")
        device_bytes: dict[str, int] = {}
        for t in placed:
            device_bytes[t.device or default] = device_bytes.get(t.device or default, 0) + t.nbytes
        return self.checkpoint.with_(tensors=tuple(placed)), device_bytes

    def rule_findings(self, rules: list[PlanRule]) -> None:
        layers = [t.layer for t in self.checkpoint.tensors if t.layer is not None]
        n_layers = max(layers) + 1 if layers else 0
        for rule in rules:
            node = _node_at(self.doc, ("rules", rule.index))
            if rule.hits == 0:
                self.add(node, "warning", "no-match", f"rule at line {rule.line} matches no tensor of this model",
                         "check name, role and layers against `ckpt-size inspect --by tensor`")
            elif rule.wins == 0:
                lines = ", ".join(map(str, sorted(rule.shadowed_by)))
                self.add(node, "warning", "shadowed",
                         f"rule at line {rule.line} matches {rule.hits} tensor(s), all taken by earlier rules "
                         f"(line {lines}); it never applies", "move it above those rules or delete it")
            if rule.layers is not None:
                beyond = rule.layers.beyond(n_layers)
                if beyond:
                    self.add(_node_at(self.doc, ("rules", rule.index, "layers")), "warning", "layer-beyond",
                             f"layers {beyond[0]}-{beyond[1]} do not exist; the model has layers 0-{n_layers - 1}",
                             f"end the range at layer {n_layers - 1}")

    def budget_findings(self, value: dict[str, Any], device_bytes: dict[str, int]) -> None:
        for raw_device, raw_size in (value.get("budgets") or {}).items():
            path = ("budgets", raw_device)
            node = _node_at(self.doc, path)
            if path in self.schema_paths:
                continue  # the schema reported it (a bad device name or size)
            try:
                device = normalize_device(str(raw_device))
            except UsageError:
                continue  # reported by the schema
            try:
                budget = parse_size(raw_size)
            except UsageError as e:
                self.add(node, "error", "bad-value", f"budgets.{device}: {e.args[0]}", _fix_for(path, "pattern"))
                continue
            self.check_gpu(device, _key_node(self.doc, ("budgets", raw_device)))
            used = device_bytes.get(device, 0)
            if used > budget:
                self.add(node, "error", "over-budget",
                         f"{device} holds {used:,} bytes of weights, {used - budget:,} over its budget of "
                         f"{budget:,}", f"move tensors off {device} or raise its budget")


def _path_text(path: tuple[Any, ...]) -> str:
    """rules[6].role, budgets.cuda:0, … (indices 0-based, as in the schema)."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text or "the plan"


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"


def _fix_for(path: tuple[Any, ...], keyword: str) -> str:
    last = str(path[-1]) if path else ""
    if keyword == "required":
        return "add the missing key"
    return {
        "role": "use a role name: embedding, output, attention, routed_experts, shared_experts, router, "
                "dense_ffn, norm, mtp, vision, other",
        "layers": "write 5, \"3-29\" or a list of those",
        "version": "write version: 1",
        "storage": "use e.g. Q4_K, BF16 or MARLIN_INT4_G64",
    }.get(last, "see docs/placement.md for the plan format" if not path or path[0] != "budgets"
          else "write a size such as 24 GiB, 512GB or a byte count")


def place_plan(doc: Document, checkpoint: Checkpoint, *, gpus: int | None = None
               ) -> tuple[PlacedPlan | None, list[Finding]]:
    """Apply a plan file to `checkpoint`: the placed checkpoint and every finding."""
    planner = _Planner(doc, checkpoint, gpus)
    if doc.root is None:
        planner.add(None, "error", "empty-file", "the plan file is empty", "write a mapping with 'rules:'")
        return None, planner.findings
    if isinstance(doc.root, yaml.MappingNode):
        rules_node = next((v for k, v in doc.root.value if k.value == "rules"), None)
        limit = too_many_rules(doc, rules_node) if rules_node is not None else None
        if limit is not None:
            return None, [limit]
    value = doc.value(doc.root)
    if isinstance(doc.root, yaml.MappingNode):
        planner.findings += duplicate_keys(doc, doc.root, "the plan")
    if isinstance(value, dict) and ("match" in value or "replace" in value) and "rules" not in value:
        planner.add(doc.root, "error", "not-a-list",
                    "this looks like a KTransformers rule without its leading '-': a rule file is a YAML list",
                    "start every rule with '- match:' (or write a ckpt-size plan with a top-level 'rules:')")
        return None, planner.findings
    bad = planner.schema_findings(value)
    if not isinstance(value, dict) or not isinstance(value.get("rules"), list):
        return None, planner.findings
    default_raw = value.get("default_device", DEFAULT_DEVICE)
    try:
        default = normalize_device(str(default_raw))
    except UsageError:
        return None, planner.findings
    planner.check_gpu(default, _node_at(doc, ("default_device",)) if "default_device" in value else None)
    rules = planner.rules(value, bad)
    placed, device_bytes = planner.place(rules, default)
    planner.rule_findings(rules)
    planner.budget_findings(value, device_bytes)
    notes = [f"ckpt-size plan: {len(rules)} rule(s), default device {default}; sizes are weights as stored "
             "unless a rule sets storage"]
    for device in sorted(device_bytes, key=device_sort_key):
        notes.append(f"{device}: {device_bytes[device]:,} bytes")
    return PlacedPlan(placed, "plan", tuple(notes)), planner.findings
