"""Tensor roles from name rules kept as data (`rules/roles.yaml`, schema in docs/rules.md).

Classification is by name only. Names are cached by their digit-free template, so a 16k-tensor MoE checkpoint
costs one regex scan per distinct tensor kind, not per tensor.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    import yaml

from .datafiles import read_packaged, read_user_file
from .errors import RulesError
from .model import ROLES, Checkpoint, TensorInfo

RULE_KEYS = {"id", "role", "match", "note"}
TOP_KEYS = {"version", "strip_suffixes", "macros", "rules"}
_MACRO = re.compile(r"\{(\w+)\}")
_DIGITS = re.compile(r"\d+")
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")
# a literal digit (classes like [1-3] too, counted repeats like {2}), or a backreference (which can compare two
# digit runs). Not `\d`, with or without a count: it takes any of the ten digits alike, and names of one layout
# have their digits at the same places, so it matches all of them or none (`ln_\d` in hf-block-norm had made the
# expert names of a 46k-tensor model pay a backtracking guard each, 1.5 µs a name).
_DIGIT_SENSITIVE = re.compile(r"(?<!\\)\d|" + _BACKREFERENCE.pattern)
MAX_UNMATCHED_NAMED = 3
_NAMED_GROUP = re.compile(r"\(\?P<\w+>")
_ALWAYS = re.compile(r"(?s:.*)")


@dataclass(frozen=True)
class Rule:
    id: str
    role: str
    pattern: re.Pattern[str]
    line: int

    @property
    def digit_sensitive(self) -> bool:
        """Whether two names of one layout (digits at the same places, values aside) can match differently (a
        literal digit, a backreference): such rules defeat the per-layout cache and are re-checked."""
        return bool(_DIGIT_SENSITIVE.search(self.pattern.pattern))


@dataclass(frozen=True)
class RoleRules:
    """A validated, compiled rule set."""

    path: str
    strip: re.Pattern[str]
    rules: tuple[Rule, ...]

    def match(self, name: str) -> tuple[Rule | None, re.Match[str] | None]:
        """The first rule matching the whole (suffix-stripped) name, and its match."""
        stem = self.strip.sub("", name, count=1)
        for rule in self.rules:
            m = rule.pattern.fullmatch(stem)
            if m:
                return rule, m
        return None, None


def _line_of(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _node_dict(node: yaml.Node, path: str, what: str) -> dict[str, yaml.Node]:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise RulesError(f"{path}:{_line_of(node)}: {what} must be a mapping")
    return {k.value: v for k, v in node.value}


def _compile(regex: str, path: str, line: int, what: str) -> re.Pattern[str]:
    try:
        return re.compile(regex)
    except re.error as e:
        raise RulesError(f"{path}:{line}: {what}: invalid regex {regex!r}: {e}") from None


def parse_rules(text: str, path: str) -> RoleRules:
    """Validate and compile a rules document.

    Raises:
        RulesError: YAML errors, unknown keys or roles, bad regexes, duplicate ids or patterns (file:line).
    """
    import yaml  # users' rules files only: the packaged rules are read from their compiled form

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise RulesError(f"{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if root is None:
        raise RulesError(f"{path}: empty rules file")
    top = _node_dict(root, path, "the rules file")
    unknown = set(top) - TOP_KEYS
    if unknown:
        raise RulesError(f"{path}:{_line_of(root)}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    macros = _read_macros(top.get("macros"), path)
    strip = _read_strip(top.get("strip_suffixes"), path)
    if "rules" not in top or not isinstance(top["rules"], yaml.SequenceNode):
        raise RulesError(f"{path}: 'rules' must be a list")
    rules = tuple(_read_rule(node, path, macros) for node in top["rules"].value)
    _check_duplicates(rules, path)
    return RoleRules(path, strip, rules)


def _read_macros(node: yaml.Node | None, path: str) -> dict[str, str]:
    if node is None:
        return {}
    macros = {k: v.value for k, v in _node_dict(node, path, "macros").items()}
    for name, regex in macros.items():
        _compile(regex, path, _line_of(node), f"macro {name!r}")
    return macros


def _read_strip(node: yaml.Node | None, path: str) -> re.Pattern[str]:
    import yaml

    if node is None:
        return re.compile(r"(?!)")
    if not isinstance(node, yaml.SequenceNode):
        raise RulesError(f"{path}:{_line_of(node)}: strip_suffixes must be a list of regexes")
    parts = [_compile(n.value, path, _line_of(n), "strip_suffixes").pattern for n in node.value]
    return re.compile("(?:" + "|".join(parts) + ")$")


def _expand(regex: str, macros: dict[str, str], path: str, line: int) -> str:
    def substitute(m: re.Match[str]) -> str:
        if m.group(1) not in macros:
            raise RulesError(f"{path}:{line}: unknown macro {{{m.group(1)}}}")
        return macros[m.group(1)]

    return _MACRO.sub(substitute, regex)


def _read_rule(node: yaml.Node, path: str, macros: dict[str, str]) -> Rule:
    import yaml

    line = _line_of(node)
    fields = _node_dict(node, path, "a rule")
    unknown = set(fields) - RULE_KEYS
    if unknown:
        raise RulesError(f"{path}:{line}: unknown key(s) in rule: {', '.join(sorted(unknown))}")
    for key in ("id", "role", "match"):
        if key not in fields or not isinstance(fields[key], yaml.ScalarNode) or not fields[key].value:
            raise RulesError(f"{path}:{line}: rule needs a non-empty {key!r}")
    role = fields["role"].value
    if role not in ROLES:
        raise RulesError(f"{path}:{line}: unknown role {role!r}; roles are {', '.join(ROLES)}")
    regex = _expand(fields["match"].value, macros, path, line)
    return Rule(fields["id"].value, role, _compile(regex, path, line, f"rule {fields['id'].value!r}"), line)


def _check_duplicates(rules: tuple[Rule, ...], path: str) -> None:
    ids: dict[str, int] = {}
    patterns: dict[str, Rule] = {}
    for rule in rules:
        if rule.id in ids:
            raise RulesError(f"{path}:{rule.line}: duplicate rule id {rule.id!r} (first at line {ids[rule.id]})")
        ids[rule.id] = rule.line
        first = patterns.get(rule.pattern.pattern)
        if first:
            kind = "conflicts with" if first.role != rule.role else "duplicates"
            raise RulesError(f"{path}:{rule.line}: rule {rule.id!r} {kind} rule {first.id!r} at line {first.line}")
        patterns[rule.pattern.pattern] = rule


def load_rules(path: str | Path | None = None) -> RoleRules:
    """The packaged rules (`inspector.rules/roles.yaml`), or a user's rules file."""
    if path is None:
        return _packaged_rules()
    return parse_rules(read_user_file(path, "rules file"), str(path))


PACKAGED = "roles.yaml"
COMPILED = "roles.json"  # PACKAGED with its macros expanded: `python tools/compile_rules.py` writes it


@lru_cache(maxsize=1)
def _packaged_rules() -> RoleRules:
    """The packaged rules from their compiled form: reading the YAML costs ~30 ms (PyYAML's import and its pure-Python
    composer) on every start; tests/test_fast_start.py checks that the compiled form is the YAML's."""
    return rules_from_json(read_packaged(COMPILED))


def rules_to_json(rules: RoleRules) -> str:
    """A validated rule set as JSON: the suffix regex and each rule's id, role, expanded regex and YAML line."""
    rows = ",\n  ".join(json.dumps([r.id, r.role, r.pattern.pattern, r.line]) for r in rules.rules)
    return (f'{{"path": {json.dumps(rules.path)},\n "strip_suffixes": {json.dumps(rules.strip.pattern)},\n'
            f' "rules": [\n  {rows}\n ]}}\n')


def rules_from_json(text: str) -> RoleRules:
    doc = json.loads(text)
    return RoleRules(doc["path"], re.compile(doc["strip_suffixes"]),
                     tuple(Rule(id_, role, re.compile(regex), line) for id_, role, regex, line in doc["rules"]))


def _group_int(m: re.Match[str], group: str) -> int | None:
    value = m.groupdict().get(group)
    return int(value) if value is not None else None


@dataclass(frozen=True)
class _Template:
    """What every name of one layout (its characters, digits aside) gets: the role, and where in the name the
    layer and expert indices are. `exact` is False when every name of the layout must be matched on its own (the
    winning rule is digit-sensitive, or a group is not a whole digit run); `guard`, when set, matches (at least)
    the names for which a digit-sensitive rule before the winner could decide instead: those are matched on
    their own."""

    role: str
    layer_span: tuple[int, int] | None
    expert_span: tuple[int, int] | None
    exact: bool
    guard: re.Pattern[str] | None = None


# Every ASCII digit -> "#": names with equal keys differ only in the values of digits at the same places.
_DIGIT_KEY = bytes.maketrans(b"0123456789", b"##########")


class _Classifier:
    """Classifies names by their layout: one C-level translation and one dict lookup per name.

    Names of one layout differ only in their digits, so a rule without digit-sensitive syntax matches all of them
    or none, and its `layer` / `expert` groups are the same digit runs in each: the first name of a layout is
    matched against the rules (first match wins) and teaches the role and where the indices are; the others reuse
    it. A digit-sensitive rule before the winner is checked on each name (one guard regex); where the winner itself
    is digit-sensitive, names are matched one by one. Either way "first matching rule wins" stays exact.
    """

    def __init__(self, rules: RoleRules) -> None:
        self.rules = rules
        self._templates: dict[bytes, _Template] = {}
        self._sensitive = [i for i, r in enumerate(rules.rules) if r.digit_sensitive]
        self._guards: dict[tuple[int, ...], re.Pattern[str]] = {}
        # a suffix rule that looks at digits can cut names of one layout differently: match each name then
        self._strip_sensitive = bool(_DIGIT_SENSITIVE.search(rules.strip.pattern))

    def classify(self, name: str) -> tuple[str, int | None, int | None]:
        # UTF-8 bytes (lone surrogates kept): equal keys mean equal characters at equal places, digits aside
        key = name.encode("utf-8", "surrogatepass").translate(_DIGIT_KEY)
        learned = self._templates.get(key)
        if learned is None:
            learned = self._templates[key] = self._learn(name)
        if not learned.exact:
            return self._match(name)
        if learned.guard is not None and learned.guard.fullmatch(name):
            return self._match(name)
        span = learned.layer_span
        layer = int(name[span[0]:span[1]]) if span is not None else None
        span = learned.expert_span
        expert = int(name[span[0]:span[1]]) if span is not None else None
        return learned.role, layer, expert

    def _match(self, name: str) -> tuple[str, int | None, int | None]:
        """The first matching rule for this very name (the slow, always-exact path)."""
        stem = self.rules.strip.sub("", name, count=1)
        index = self._first_match(stem, range(len(self.rules.rules)))
        if index is None:
            return "other", None, None
        m = self.rules.rules[index].pattern.fullmatch(stem)
        assert m is not None
        return self.rules.rules[index].role, _group_int(m, "layer"), _group_int(m, "expert")

    def _learn(self, name: str) -> _Template:
        stem = self.rules.strip.sub("", name, count=1)
        index = self._first_match(stem, range(len(self.rules.rules)))
        end = len(self.rules.rules) if index is None else index
        # Rules without digit-sensitive syntax match every name of the layout or none, so only the
        # digit-sensitive ones before the winner (all of them when none won) can give another name another rule.
        guard = self._guard(tuple(i for i in self._sensitive if i < end))
        # the winner itself may not match the other names when it is digit-sensitive
        exact = not self._strip_sensitive and (index is None or index not in self._sensitive)
        if index is None:
            return _Template("other", None, None, exact, guard)
        m = self.rules.rules[index].pattern.fullmatch(stem)
        assert m is not None
        runs = [r.span() for r in _DIGITS.finditer(stem)]
        spans: dict[str, tuple[int, int] | None] = {}
        for group in ("layer", "expert"):
            if m.groupdict().get(group) is None:
                spans[group] = None
            elif m.span(group) in runs:
                spans[group] = m.span(group)
            else:  # the group is not one whole digit run: match every name of this layout
                exact = False
                spans[group] = None
        return _Template(self.rules.rules[index].role, spans["layer"], spans["expert"], exact, guard)

    def _guard(self, indices: tuple[int, ...]) -> re.Pattern[str] | None:
        """One regex matching every whole name whose stem one of these rules matches (cached per set of rules;
        groups made plain). It takes the name, suffix and all: `(?:rules)(?:suffixes)?` matches a name whenever
        a rule matches its stem (and maybe a few more, which are then matched exactly), without stripping the
        suffix of every name first."""
        if not indices:
            return None
        if indices not in self._guards:
            sources = [self.rules.rules[i].pattern.pattern for i in indices] + [self.rules.strip.pattern]
            parts = [_NAMED_GROUP.sub("(?:", p) for p in sources]
            try:
                if any(_BACKREFERENCE.search(p) for p in sources):  # group numbers change once combined
                    raise re.error("backreference")
                alternatives = "|".join(f"(?:{p})" for p in parts[:-1])
                self._guards[indices] = re.compile(f"(?:{alternatives})(?:{parts[-1].removesuffix('$')})?")
            except re.error:  # a rule refers to its own groups, or sets flags: no combined guard, match each name
                self._guards[indices] = _ALWAYS
        return self._guards[indices]

    def _first_match(self, stem: str, indices: Iterable[int]) -> int | None:
        return next((i for i in indices if self.rules.rules[i].pattern.fullmatch(stem)), None)


def classify_names(names: Iterable[str], rules: RoleRules | None = None) -> list[tuple[str, int | None, int | None]]:
    """(role, layer, expert) for each name; handy for index files whose shards are not at hand."""
    names = list(names)
    classifier = _Classifier(rules or load_rules())
    results = [classifier.classify(n) for n in names]
    return _promote_mtp_layers(results)


def _promote_mtp_layers(
    results: list[tuple[str, int | None, int | None]],
) -> list[tuple[str, int | None, int | None]]:
    """A block holding any MTP marker (nextn.*, eh_proj, enorm …) is an MTP layer as a whole."""
    mtp_layers = {layer for role, layer, _ in results if role == "mtp" and layer is not None}
    if not mtp_layers:
        return results
    return [("mtp", layer, expert) if layer in mtp_layers else (role, layer, expert) for role, layer, expert in results]


def assign_roles(checkpoint: Checkpoint, rules: RoleRules | None = None) -> Checkpoint:
    """A copy of the checkpoint with role, layer and expert set on every tensor, warning about unmatched names."""
    results = classify_names((t.name for t in checkpoint.tensors), rules)
    tensors = tuple(t.with_(role=r, layer=layer, expert=x) for t, (r, layer, x) in zip(checkpoint.tensors, results))
    return checkpoint.with_(tensors=tensors, warnings=checkpoint.warnings + unmatched_warning(tensors))


def unmatched_warning(tensors: tuple[TensorInfo, ...]) -> tuple[str, ...]:
    unmatched = [t.name for t in tensors if t.role == "other"]
    if not unmatched:
        return ()
    shown = ", ".join(repr(n) for n in unmatched[:MAX_UNMATCHED_NAMED])
    more = f" and {len(unmatched) - MAX_UNMATCHED_NAMED} more" if len(unmatched) > MAX_UNMATCHED_NAMED else ""
    return (f"{len(unmatched)} tensors match no role rule and count as 'other': {shown}{more}",)


def describe(rules: RoleRules) -> list[dict[str, Any]]:
    return [{"id": r.id, "role": r.role, "line": r.line} for r in rules.rules]
