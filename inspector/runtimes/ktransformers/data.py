"""The KTransformers facts in `rules/ktransformers.yaml`, loaded once and checked: name translation, classes,
ops, module-tree templates. Sources are cited in that file."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from ...errors import RulesError
from ...datafiles import read_packaged

DATA_FILE = "rules/ktransformers.yaml"


@dataclass(frozen=True)
class ModuleTemplate:
    path: str  # may hold {L} and {E}
    cls: str  # full import path
    params: tuple[tuple[str, bool], ...]  # (name, optional)
    layers: str  # all | dense | moe
    optional: bool
    experts: tuple[tuple[str, str], ...] | None  # (GGUF projection, per-expert Linear attribute)


@dataclass(frozen=True)
class TreeTemplate:
    name: str
    hf_architectures: tuple[str, ...]
    gguf_architecture: str
    gguf_requires: re.Pattern[str] | None
    gguf_metadata: tuple[tuple[str, object], ...]
    package: str
    classes: dict[str, frozenset[str]]  # full class path -> every class path it is an instance of
    modules: tuple[ModuleTemplate, ...]


@dataclass(frozen=True)
class KtData:
    substitute: tuple[tuple[re.Pattern[str], str], ...]
    replace_before: tuple[tuple[str, str], ...]
    return_if_match: tuple[tuple[re.Pattern[str], str], ...]  # templates as str.format: {1} = group 1
    replace: tuple[tuple[str, str], ...]
    split_parameters: tuple[tuple[str, tuple[str, ...]], ...]
    expert_projections: tuple[str, ...]
    replace_classes: dict[str, tuple[str, frozenset[str] | None]]  # class -> (kind, known kwargs or None)
    linear_ops: dict[str, dict[str, str]]
    expert_ops: dict[str, dict[str, str]]
    legacy_ops: dict[str, str]
    expert_backends: tuple[str, ...]
    dequantizable_types: frozenset[str]
    trees: tuple[TreeTemplate, ...]
    match_classes: frozenset[str]  # every class path a `match: class:` may name that we know imports

    def translate(self, name: str) -> str:
        """`translate_name_to_gguf` (util/custom_gguf.py) on an HF parameter or module name."""
        for pattern, repl in self.substitute:
            name = pattern.sub(repl, name)
        for old, new in self.replace_before:
            name = name.replace(old, new)
        for pattern, template in self.return_if_match:
            m = pattern.match(name)
            if m:
                return template.format(m.group(0), *m.groups())
        for old, new in self.replace:
            name = name.replace(old, new)
        return name


def _pairs(raw: Any, what: str) -> list[tuple[str, str]]:
    if not isinstance(raw, list) or not all(isinstance(p, list) and len(p) == 2 for p in raw):
        raise RulesError(f"{DATA_FILE}: {what} must be a list of [from, to] pairs")
    return [(str(a), str(b)) for a, b in raw]


def _full(cls: str, package: str) -> str:
    return cls if "." in cls else f"{package}.{cls}"


def _tree(name: str, raw: dict[str, Any], aliases: dict[str, frozenset[str]]) -> TreeTemplate:
    package = raw["package"]
    bases = {_full(k, package): [_full(b, package) for b in v] for k, v in (raw.get("bases") or {}).items()}
    modules = []
    classes: dict[str, frozenset[str]] = {}
    for m in raw["modules"]:
        unknown = set(m) - {"path", "class", "params", "layers", "optional", "experts"}
        if unknown:
            raise RulesError(f"{DATA_FILE}: tree {name}: module {m.get('path')!r}: unknown keys {sorted(unknown)}")
        cls = _full(m["class"], package)
        params = tuple((p.rstrip("?"), p.endswith("?")) for p in m.get("params") or ())
        layers = m.get("layers", "all")
        if layers not in ("all", "dense", "moe"):
            raise RulesError(f"{DATA_FILE}: tree {name}: module {m['path']!r}: layers must be all, dense or moe")
        experts = m.get("experts")
        modules.append(ModuleTemplate(
            m["path"], cls, params, layers, bool(m.get("optional", False)),
            tuple(experts.items()) if experts else None,
        ))
        chain = {cls, *bases.get(cls, ()), "torch.nn.Module"}
        classes[cls] = frozenset(c for x in chain for c in ({x} | aliases.get(x, frozenset())))
    requires = raw.get("gguf_requires")
    return TreeTemplate(
        name, tuple(raw["hf_architectures"]), raw["gguf_architecture"],
        re.compile(requires) if requires else None, tuple((raw.get("gguf_metadata") or {}).items()),
        package, classes, tuple(modules),
    )


def parse_data(text: str) -> KtData:
    try:
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise RulesError(f"{DATA_FILE}: invalid YAML: {e}") from None
    names = raw["gguf_names"]
    aliases = {k: frozenset(v) for k, v in raw["torch_aliases"].items()}
    trees = tuple(_tree(k, v, aliases) for k, v in raw["trees"].items())
    replace_classes = {
        k: (v["kind"], frozenset(v["kwargs"]) if "kwargs" in v else None) for k, v in raw["replace_classes"].items()
    }
    match_classes = {c for t in trees for cs in t.classes.values() for c in cs}
    match_classes |= set(raw["other_match_classes"])
    return KtData(
        substitute=tuple((re.compile(a), b) for a, b in _pairs(names["substitute"], "substitute")),
        replace_before=tuple(_pairs(names["replace_before"], "replace_before")),
        return_if_match=tuple((re.compile(a), re.sub(r"\\(\d)", r"{\1}", b))
                              for a, b in _pairs(names["return_if_match"], "return_if_match")),
        replace=tuple(_pairs(names["replace"], "replace")),
        split_parameters=tuple((s["parameter"], tuple(s["parts"])) for s in raw["split_parameters"]),
        expert_projections=tuple(raw["expert_projections"]),
        replace_classes=replace_classes,
        linear_ops=dict(raw["linear_ops"]),
        expert_ops=dict(raw["expert_ops"]),
        legacy_ops=dict(raw["legacy_ops"]),
        expert_backends=tuple(raw["expert_backends"]),
        dequantizable_types=frozenset(raw["dequantizable_types"]),
        trees=trees,
        match_classes=frozenset(match_classes),
    )


@lru_cache(maxsize=1)
def kt_data() -> KtData:
    return parse_data(read_packaged("ktransformers.yaml"))
