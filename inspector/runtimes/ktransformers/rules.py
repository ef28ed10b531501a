"""Reading a KTransformers optimize-rule YAML the way `optimize/optimize.py` does, with positions and the checks
that need no model: structure, keys, regexes, class and op names, devices.

The file is a list of rules (optimize.py::optimize_and_load_gguf loads it with yaml.FullLoader; plain data
reads the same with the safe loader)::

    - match: {name: <re.search on the module name>, class: <import path, isinstance>}
      replace: {class: <import path> | "default", kwargs: {...}}
      recursive: <bool, default true>

Every injected class takes **kwargs, so a misspelled key is silently ignored at run time; here it is an error.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ...errors import RulesError
from ...patterns import PatternProblem, UserPattern, try_compile
from ...placement.findings import Finding
from .data import KtData
from ...placement.yaml_nodes import (Document, char_position, column_of, duplicate_keys, line_of, mapping_items,
                                     too_many_rules)

RULE_KEYS = ("match", "replace", "recursive")
MATCH_KEYS = ("name", "class")
REPLACE_KEYS = ("class", "kwargs")
DEFAULT_KWARGS = frozenset({"generate_device", "prefill_device"})
DEVICE_KWARGS = ("generate_device", "prefill_device", "out_device", "device")
_TORCH_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")

# Constructor defaults (operators/linear.py KTransformersLinear, operators/experts.py KTransformersExperts).
LINEAR_DEFAULTS = {"generate_device": "cuda", "generate_op": "KLinearMarlin",
                   "prefill_device": "cuda", "prefill_op": "KLinearTorch"}
EXPERTS_DEFAULTS = {"generate_device": "cpu", "generate_op": "KExpertsCPU",
                    "prefill_device": "cuda", "prefill_op": "KExpertsTorch"}
MARLIN_BITS = (4, 8)  # marlin_utils.py GPTQ_MARLIN_SUPPORTED_NUM_BITS
MARLIN_GROUPS = (-1, 32, 64, 128)  # GPTQ_MARLIN_SUPPORTED_GROUP_SIZES


@dataclass
class KtRule:
    """One rule as the optimizer sees it. `usable` is False when the optimizer would raise on it."""

    index: int
    line: int
    column: int
    name: str | None = None
    name_re: UserPattern | None = None
    name_line: int = 0
    match_class: str | None = None
    class_line: int = 0
    class_column: int = 0
    replace_class: str = "default"
    replace_line: int = 0
    kind: str = "default"  # default | linear | experts | gate | model | module | unknown
    kwargs: dict[str, Any] = field(default_factory=dict)
    kwarg_lines: dict[str, tuple[int, int]] = field(default_factory=dict)
    recursive: bool = True
    recursive_line: int = 0
    usable: bool = True

    def where(self, key: str | None = None) -> tuple[int, int]:
        if key and key in self.kwarg_lines:
            return self.kwarg_lines[key]
        return self.line, self.column

    def describe(self) -> str:
        parts = []
        if self.name is not None:
            parts.append(f"name {self.name!r}")
        if self.match_class:
            parts.append(f"class {self.match_class.rsplit('.', 1)[-1]}")
        return f"rule at line {self.line} ({', '.join(parts) or 'no match'})"


def parse_device(value: Any) -> str | None:
    """A torch device string as KTransformers passes it on, in our spelling; None when torch would refuse it
    or it is not a device ckpt-size models (xpu, npu, mps)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"cuda:{value}" if value >= 0 else None
    if not isinstance(value, str):
        return None
    m = _TORCH_DEVICE.match(value.strip())
    if not m:
        return None
    if m.group(1) == "cpu":
        return "cpu" if m.group(2) is None else None
    return f"cuda:{int(m.group(2) or 0)}"


# what the optimizer does to a rule without the section (message) and what to write (fix)
MISSING_SECTION = {
    "match": ("rule has no 'match'; the optimizer raises KeyError on it",
              "add 'match:' with a 'name' regex and/or a 'class'"),
    "replace": ("rule has no 'replace'; the optimizer raises \"replace must be in rule\" when it matches",
                "add 'replace:' with a 'class' (or \"default\") and 'kwargs'"),
}


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(choices))}"


class _Reader:
    def __init__(self, doc: Document, data: KtData, gpus: int | None) -> None:
        self.doc = doc
        self.data = data
        self.gpus = gpus
        self.findings: list[Finding] = []

    def add(self, node_or_pos: Any, severity: str, code: str, message: str, fix: str) -> None:
        if isinstance(node_or_pos, yaml.Node):
            line, column = line_of(node_or_pos), column_of(node_or_pos)
        else:
            line, column = node_or_pos
        self.findings.append(Finding(self.doc.path, line, column, severity, code, message, fix))

    # ---- the file ------------------------------------------------------------------------------------------
    def read(self) -> list[KtRule]:
        root = self.doc.root
        if root is None:
            self.add((0, 0), "error", "empty-file", "the rule file is empty", "write a YAML list of rules")
            return []
        if not isinstance(root, yaml.SequenceNode):
            self.add(root, "error", "not-a-list",
                     "a KTransformers rule file is a YAML list of rules ('- match: ...')",
                     "start every rule with '- match:'; for a ckpt-size plan file add a top-level 'rules:' key")
            return []
        limit = too_many_rules(self.doc, root)
        if limit is not None:
            self.findings.append(limit)
            return []
        return [self.rule(i, node) for i, node in enumerate(root.value)]

    # ---- one rule ------------------------------------------------------------------------------------------
    def rule(self, index: int, node: yaml.Node) -> KtRule:
        rule = KtRule(index, line_of(node), column_of(node))
        if not isinstance(node, yaml.MappingNode):
            self.add(node, "error", "bad-rule", "a rule must be a mapping with 'match' and 'replace'",
                     "write the rule as '- match: {...}' followed by 'replace: {...}'")
            rule.usable = False
            return rule
        self.findings += duplicate_keys(self.doc, node, "the rule")
        fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in mapping_items(node):
            name = str(key.value)
            if name not in RULE_KEYS:
                self.add(key, "error", "unknown-key",
                         f"unknown rule key {name!r}; the optimizer ignores it", _did_you_mean(name, RULE_KEYS))
            fields[name] = (key, value)
        for section, read in (("match", self.match), ("replace", self.replace)):
            if section in fields:
                read(rule, *fields[section])
            else:
                self.add(node, "error", f"missing-{section}", *MISSING_SECTION[section])
                rule.usable = False
        if "recursive" in fields:
            self.recursive(rule, fields["recursive"][1])
        self.check_ops(rule)
        return rule

    def section(self, rule: KtRule, node: yaml.Node, what: str, must: str, fix: str
                ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """The keys of a rule's `match` or `replace` mapping; None (and the rule unusable) when it is no mapping."""
        if not isinstance(node, yaml.MappingNode):
            self.add(node, "error", "bad-value", f"'{what}' must be a mapping with {must}",
                     f"write '{what}:' then an indented {fix}")
            rule.usable = False
            return None
        self.findings += duplicate_keys(self.doc, node, f"'{what}'")
        return {str(k.value): (k, v) for k, v in mapping_items(node)}

    def match(self, rule: KtRule, key: yaml.Node, node: yaml.Node) -> None:
        fields = self.section(rule, node, "match", "'name' and/or 'class'",
                              "'name: <regex>' and/or 'class: <import path>'")
        if fields is None:
            return
        for name, (k, _) in fields.items():
            if name not in MATCH_KEYS:
                self.add(k, "error", "unknown-key", f"unknown key {name!r} in 'match'; the optimizer ignores it",
                         _did_you_mean(name, MATCH_KEYS))
        if "name" not in fields and "class" not in fields:
            self.add(node, "error", "missing-match",
                     "'match' has neither 'name' nor 'class'; the optimizer raises "
                     "\"match must have at least one of class and name\"",
                     "add 'name: <regex>' and/or 'class: <import path>'")
            rule.usable = False
        if "name" in fields:
            self.name(rule, fields["name"][1])
        if "class" in fields:
            self.match_class(rule, fields["class"][1])

    def name(self, rule: KtRule, node: yaml.Node) -> None:
        value = self.doc.value(node)
        rule.name_line = line_of(node)
        if not isinstance(value, str):
            self.add(node, "error", "bad-value", f"'name' must be a regex string, not {type(value).__name__}",
                     "quote the regex")
            rule.usable = False
            return
        rule.name = value
        assert isinstance(node, yaml.ScalarNode)  # it held a str
        where = f"{self.doc.path}:{line_of(node)}:{column_of(node)}"
        compiled = try_compile(value, where, error=RulesError)
        if isinstance(compiled, PatternProblem):
            self.add(char_position(self.doc, node, compiled.position or 0), "error", "invalid-regex",
                     compiled.message
                     + (" (a character class matches single characters, not numbers)"
                        if "bad character range" in compiled.message else ""),
                     "write numeric ranges as alternations, e.g. ([4-9]|10) for layers 4 to 10"
                     if compiled.position is not None else compiled.hint)
            rule.usable = False
            return
        rule.name_re = compiled

    def match_class(self, rule: KtRule, node: yaml.Node) -> None:
        value = self.doc.value(node)
        rule.class_line, rule.class_column = line_of(node), column_of(node)
        if not isinstance(value, str) or not value:
            self.add(node, "error", "bad-value", "'class' must be an import path string",
                     "write e.g. torch.nn.Linear")
            rule.usable = False
            return
        rule.match_class = value
        if value in self.data.match_classes:
            return
        if value.startswith("ktransformers."):
            self.add(node, "error", "unknown-class",
                     f"match class {value!r} does not exist in KTransformers' model files; importing it fails",
                     f"use a class of ktransformers.models (e.g. {self._close_class(value, self.data.match_classes)})")
            rule.usable = False
        elif "." not in value:
            self.add(node, "error", "unknown-class",
                     f"match class {value!r} is not an import path; the optimizer's __import__ fails",
                     "write the full path, e.g. ktransformers.models.modeling_deepseek_v3.MoEGate")
            rule.usable = False
        else:
            self.add(node, "warning", "unknown-class",
                     f"match class {value!r} is outside what ckpt-size knows; it matches no module here",
                     "check that it imports and names a module class of this model")

    @staticmethod
    def _close_class(value: str, known: Any) -> str:
        tail = value.rsplit(".", 1)[-1]
        by_tail = {c.rsplit(".", 1)[-1]: c for c in known}
        close = difflib.get_close_matches(tail, list(by_tail), n=1, cutoff=0.5)
        return by_tail[close[0]] if close else "torch.nn.Linear"

    def replace(self, rule: KtRule, key: yaml.Node, node: yaml.Node) -> None:
        rule.replace_line = line_of(key)
        fields = self.section(rule, node, "replace", "'class' and 'kwargs'", "'class:' and 'kwargs:'")
        if fields is None:
            return
        for name, (k, _) in fields.items():
            if name == "device":
                self.add(k, "warning", "ignored-key",
                         "'replace: device:' is ignored by the optimizer (it only reads kwargs)",
                         "move it to kwargs as generate_device (and prefill_device)")
            elif name not in REPLACE_KEYS:
                self.add(k, "error", "unknown-key", f"unknown key {name!r} in 'replace'; the optimizer ignores it",
                         _did_you_mean(name, REPLACE_KEYS))
        if "class" in fields:
            self.replace_class(rule, fields["class"][1])
        known_kwargs = DEFAULT_KWARGS if rule.kind == "default" else None
        if rule.kind not in ("default", "unknown"):
            known_kwargs = self.data.replace_classes[rule.replace_class][1]
        if "kwargs" in fields:
            self.kwargs(rule, fields["kwargs"][1], known_kwargs)

    def replace_class(self, rule: KtRule, node: yaml.Node) -> None:
        value = self.doc.value(node)
        if not isinstance(value, str) or not value:
            self.add(node, "error", "bad-value", "'replace: class' must be an import path or \"default\"",
                     "write e.g. ktransformers.operators.linear.KTransformersLinear")
            rule.usable = False
            rule.kind = "unknown"
            return
        rule.replace_class = value
        if value == "default":
            rule.kind = "default"
        elif value in self.data.replace_classes:
            rule.kind = self.data.replace_classes[value][0]
        else:
            rule.kind = "unknown"
            severity = "error" if value.startswith("ktransformers.") or "." not in value else "warning"
            self.add(node, severity, "unknown-class",
                     f"replace class {value!r} is not a KTransformers operator"
                     + ("; importing it fails at load" if severity == "error" else "; ckpt-size cannot size it"),
                     f"use {self._close_class(value, self.data.replace_classes)} or \"default\"")
            rule.usable = severity != "error"

    def kwargs(self, rule: KtRule, node: yaml.Node, known: frozenset[str] | None) -> None:
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
            return
        if not isinstance(node, yaml.MappingNode):
            self.add(node, "error", "bad-value", "'kwargs' must be a mapping", "write one 'key: value' per line")
            rule.usable = False
            return
        self.findings += duplicate_keys(self.doc, node, "'kwargs'")
        for k, v in mapping_items(node):
            name = str(k.value)
            rule.kwargs[name] = self.doc.value(v)
            rule.kwarg_lines[name] = (line_of(v), column_of(v))
            if known is not None and name not in known:
                self.add(k, "error", "unknown-kwarg",
                         f"{rule.replace_class.rsplit('.', 1)[-1]} has no parameter {name!r}; "
                         "**kwargs swallows it and the default applies",
                         _did_you_mean(name, known))
        for name in DEVICE_KWARGS:
            if name in rule.kwargs:
                self.device(rule, name, rule.kwargs[name])
        if "transfer_map" in rule.kwargs:
            self.transfer_map(rule, rule.kwargs["transfer_map"])

    def device(self, rule: KtRule, key: str, value: Any) -> str | None:
        pos = rule.where(key)
        device = parse_device(value)
        if device is None:
            self.add(pos, "error", "bad-device",
                     f"{key}: {value!r} is not a device torch accepts as ckpt-size models it",
                     "write cpu, cuda or cuda:N")
            return None
        if self.gpus is not None and device.startswith("cuda:") and int(device[5:]) >= self.gpus:
            self.add(pos, "error", "device-beyond-gpus",
                     f"{key}: {value!r} needs GPU {device[5:]}, but --gpus {self.gpus} gives cuda:0"
                     + (f"..cuda:{self.gpus - 1}" if self.gpus > 1 else ""),
                     f"use a device below cuda:{self.gpus} or raise --gpus")
        return device

    def transfer_map(self, rule: KtRule, value: Any) -> None:
        pos = rule.where("transfer_map")
        if value is None:
            return
        if not isinstance(value, dict):
            self.add(pos, "error", "transfer-map", "transfer_map must map layer indices to devices",
                     "write e.g. transfer_map: {30: \"cuda:1\"}")
            return
        for layer, device in value.items():
            if not isinstance(layer, int) or isinstance(layer, bool):
                self.add(pos, "error", "transfer-map",
                         f"transfer_map key {layer!r} is not an integer; `i in transfer_map` never matches it",
                         "write the layer index unquoted, e.g. 30: \"cuda:1\"")
            parsed = parse_device(device)
            if parsed is None:
                self.add(pos, "error", "bad-device", f"transfer_map[{layer!r}]: {device!r} is not a device",
                         "write cpu, cuda or cuda:N")
            elif self.gpus is not None and parsed.startswith("cuda:") and int(parsed[5:]) >= self.gpus:
                self.add(pos, "error", "device-beyond-gpus",
                         f"transfer_map[{layer!r}]: {device!r} needs GPU {parsed[5:]}, but --gpus is {self.gpus}",
                         f"use a device below cuda:{self.gpus} or raise --gpus")

    def recursive(self, rule: KtRule, node: yaml.Node) -> None:
        value = self.doc.value(node)
        rule.recursive_line = line_of(node)
        if isinstance(value, bool):
            rule.recursive = value
            return
        # optimize.py: recursive = bool(rule["recursive"]); bool("False") is True
        rule.recursive = bool(value)
        self.add(node, "error", "bad-value",
                 f"recursive: {value!r} is not a boolean; the optimizer takes bool({value!r}) = {bool(value)}",
                 "write recursive: False (unquoted) or true")

    # ---- ops and the devices they may use ------------------------------------------------------------------
    def check_ops(self, rule: KtRule) -> None:
        if rule.kind == "linear":
            self._ops(rule, LINEAR_DEFAULTS, self.data.linear_ops, "LINEAR_MAP")
            self._marlin_kwargs(rule)
        elif rule.kind == "experts":
            self._ops(rule, EXPERTS_DEFAULTS, self.data.expert_ops, "EXPERTS_MAP")
            backend = rule.kwargs.get("backend", "llamafile")
            if backend not in self.data.expert_backends:
                self.add(rule.where("backend"), "error", "bad-value",
                         f"backend {backend!r} is not one KExpertsCPU knows; it would never build its MoE kernel",
                         f"use one of {', '.join(self.data.expert_backends)}")
            if rule.recursive:
                self.add(rule.where(), "warning", "recursive-experts",
                         "an experts replacement without 'recursive: False' lets later rules visit the "
                         "per-expert Linear modules inside it",
                         "add 'recursive: False' to this rule")

    def _ops(self, rule: KtRule, defaults: dict[str, str], ops: dict[str, dict[str, str]], table: str) -> None:
        for phase in ("generate", "prefill"):
            key = f"{phase}_op"
            op = rule.kwargs.get(key, defaults[key])
            device_value = rule.kwargs.get(f"{phase}_device", defaults[f"{phase}_device"])
            pos = rule.where(key) if key in rule.kwargs else rule.where()
            if op is None:
                if phase == "prefill" and rule.kind == "experts":
                    self.add(pos, "error", "bad-value",
                             "prefill_op: null; KTransformersExperts.load() calls prefill_experts.unload() and fails",
                             "keep prefill_op: KExpertsTorch")
                continue
            if op in self.data.legacy_ops:
                self.add(pos, "error", "legacy-op",
                         f"{key} {op!r} is an old name that {table} no longer has (load fails)",
                         f"use {self.data.legacy_ops[op]}")
                rule.usable = False
                continue
            if op not in ops:
                self.add(pos, "error", "unknown-op", f"{key} {op!r} is not in {table}",
                         f"use one of {', '.join(ops)}")
                rule.usable = False
                continue
            device = parse_device(device_value)
            need = ops[op].get("device")
            if device is None or need is None:
                continue
            dpos = rule.where(f"{phase}_device") if f"{phase}_device" in rule.kwargs else pos
            if need == "cpu" and device != "cpu":
                self.add(dpos, "error", "op-device",
                         f"{op} runs only on the CPU but {phase}_device is {device_value!r} "
                         f"(its constructor asserts device == \"cpu\")",
                         f"set {phase}_device: \"cpu\" (out_device says where results go)")
            elif need == "gpu" and device == "cpu":
                self.add(dpos, "error", "op-device",
                         f"{op} runs only on a GPU but {phase}_device is \"cpu\" (Marlin asserts device != \"cpu\")",
                         f"put it on a GPU, or use {'KLinearTorch' if table == 'LINEAR_MAP' else 'KExpertsCPU'}")
            elif need == "xpu":
                self.add(dpos, "error", "op-device", f"{op} runs only on Intel XPU devices",
                         "use KLinearMarlin or KLinearTorch on CUDA")

    def _marlin_kwargs(self, rule: KtRule) -> None:
        bits = rule.kwargs.get("num_bits", 4)
        group = rule.kwargs.get("group_size", 64)
        if bits not in MARLIN_BITS:
            self.add(rule.where("num_bits"), "error", "bad-value", f"num_bits {bits!r}: Marlin supports 4 or 8",
                     "use num_bits: 4")
        if group not in MARLIN_GROUPS:
            self.add(rule.where("group_size"), "error", "bad-value",
                     f"group_size {group!r}: Marlin supports -1, 32, 64, 128", "use group_size: 64")


def read_rules(doc: Document, data: KtData, gpus: int | None) -> tuple[list[KtRule], list[Finding]]:
    """The rules in file order and the findings about the file itself."""
    reader = _Reader(doc, data, gpus)
    rules = reader.read()
    return rules, reader.findings
