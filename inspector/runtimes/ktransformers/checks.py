"""Findings that need the replayed walk: rules that match nothing or are shadowed, layer ranges, modules left
to the default device, weights the loader cannot find or read, device consistency across layers."""
from __future__ import annotations

from typing import Callable, Iterable, Sequence, TypeVar

from ...patterns import PatternSet
from .rules import KtRule
from .tree import Module
from .walk import DEFAULT_DEVICE, FALLBACK_DEVICE, State, device_of

T = TypeVar("T")


def _matching(rule: KtRule, items: Sequence[T], name_of: Callable[[T], str], classes_of: Callable[[T], frozenset[str]]
              ) -> list[T]:
    """The items a rule matches (walk.matches over many items): class first, then one pass of the regex."""
    if rule.match_class is None and rule.name_re is None:
        return []
    if rule.match_class is not None:
        items = [x for x in items if rule.match_class in classes_of(x)]
    if rule.name_re is None:
        return list(items)
    return [items[i] for i in rule.name_re.select([name_of(x) for x in items])]


def ranges(values: Iterable[int]) -> str:
    out: list[str] = []
    for v in sorted(set(values)):
        if out and out[-1].split("-")[-1] == str(v - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{v}"
        else:
            out.append(str(v))
    return ", ".join(out)


def template_name(path: str) -> str:
    parts = path.split(".")
    if len(parts) > 2 and parts[0] == "model" and parts[1] == "layers":
        parts[2] = "*"
        if len(parts) > 5 and parts[4] == "experts" and parts[5].isdigit():
            parts[5] = "*"
    return ".".join(parts)


def rule_findings(state: State, active: list[KtRule]) -> None:
    unvisited_hits: dict[int, list[Module]] = {}
    silent = [r for r in active if not state.hits.get(r.index)]
    if silent:
        unvisited = [node for node in state.tree.walk_all() if node.path not in state.entries]
        # most unvisited modules are the per-expert ones under a recursive: False experts rule (tens of thousands):
        # rules with a regex try only the modules one of their regexes matches (one joined search per module)
        named = PatternSet(rule.name_re for rule in silent if rule.name_re is not None)
        candidates = [unvisited[i] for i in named.select(node.path for node in unvisited)] if named.members else []
        for rule in silent:
            pool = candidates if rule.name_re is not None else unvisited
            found = _matching(rule, pool, lambda n: n.path, lambda n: n.classes)
            if found:
                unvisited_hits[rule.index] = found
    for rule in active:
        hits = state.hits.get(rule.index, [])
        wins = state.wins.get(rule.index, [])
        if not hits:
            hidden = unvisited_hits.get(rule.index, [])
            if hidden:
                blockers = sorted({_blocking_line(state, n.path) for n in hidden} - {0})
                state.add(rule.line, rule.column, "warning", "unreachable",
                          f"{rule.describe()} matches {len(hidden)} module(s) (e.g. {hidden[0].path}) that the walk "
                          f"never visits: they sit below a module matched with recursive: False "
                          f"(rule at line {', '.join(map(str, blockers)) or '?'})",
                          "move this rule before that one, or drop 'recursive: False' there")
            else:
                state.add(rule.line, rule.column, "warning", "no-match",
                          f"{rule.describe()} matches no module of this {state.tree.template.name} model "
                          f"({state.tree.n_layers} layers)",
                          "check the regex and class against KTransformers' module names "
                          "(model.layers.N.self_attn.q_a_proj, …; docs/placement.md)")
        elif not wins:
            rules = (state.entries[n.path].rule for n in hits)
            takers = sorted({r.line for r in rules if r is not None})
            state.add(rule.line, rule.column, "warning", "shadowed",
                      f"{rule.describe()} matches {len(hits)} module(s), all taken by earlier rules "
                      f"(line {', '.join(map(str, takers))}); it never applies",
                      "move it above those rules or delete it")


def _blocking_line(state: State, path: str) -> int:
    """The line of the recursive: False rule on the nearest visited ancestor of an unvisited module."""
    parts = path.split(".")
    for ancestor in [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)] + [""]:
        entry = state.entries.get(ancestor)
        if entry is not None:
            return entry.rule.line if entry.rule and not entry.rule.recursive else 0
    return 0


def layer_findings(state: State, active: list[KtRule]) -> None:
    tree = state.tree
    limit = max(100, 2 * tree.n_layers)
    named: dict[int, set[int]] = {}
    present: dict[int, set[int]] = {}
    # every (layer, name, classes, exists) a rule could name, as if the model had `limit` layers
    names = [(layer, *entry) for layer in range(limit) for entry in tree.layer_names(layer)]
    for rule in active:
        if rule.name_re is None:
            continue
        s, h = set(), set()
        for layer, _, _, exists in _matching(rule, names, lambda x: x[1], lambda x: x[2]):
            s.add(layer)
            if exists:
                h.add(layer)
        if s and len(s) < limit:
            named[rule.index] = s
            present[rule.index] = h
    real = set(range(tree.n_layers))
    for rule in active:
        if rule.index not in named:
            continue
        s = named[rule.index]
        h = present[rule.index]
        missing = (s & real) - h
        beyond = s - real
        if missing:
            shared = any(other != rule.index and named[other] == s and present[other] >= (s & real)
                         for other in named)
            dense = missing <= real - tree.moe_layers
            why = " (dense layers: no MoE modules)" if dense and tree.moe_layers else ""
            state.add(rule.line, rule.column, "info" if shared else "warning", "layer-missing",
                      f"{rule.describe()} names layers {ranges(s & real)} but only layers "
                      f"{ranges(h) or 'none'} have a module it matches; layers {ranges(missing)} lack it{why}",
                      "name only the layers that have the module" if not shared
                      else "nothing to do if the range is the same device split as the other rules")
        if beyond:
            reaches_end = (tree.n_layers - 1) in s
            state.add(rule.line, rule.column, "info" if reaches_end else "warning", "layer-beyond",
                      f"{rule.describe()} names layers {ranges(beyond)}, but the model has layers "
                      f"0-{tree.n_layers - 1}",
                      f"end the range at layer {tree.n_layers - 1}")


def default_findings(state: State) -> None:
    groups: dict[str, list[tuple[Module, str]]] = {}
    for node, device in state.unmatched_loaded:
        if any(p.parts for p in node.params):  # a module whose weights are missing is reported as such
            groups.setdefault(template_name(node.path), []).append((node, device))
    for name, members in groups.items():
        nbytes = sum(state.placements[p.key].nbytes for node, _ in members for prm in node.params
                     for p in prm.parts if p.key in state.placements)
        odd = [node.path for node, device in members if _placed_ancestor_device(state, node.path) not in
               (None, DEFAULT_DEVICE)]
        severity = "warning" if odd else "info"
        where = f"; e.g. {odd[0]} sits under a module placed on {_placed_ancestor_device(state, odd[0])}" if odd else ""
        state.add(0, 0, severity, "default-device",
                  f"{len(members)} module(s) {name} match no rule and load on {DEFAULT_DEVICE} as {state.dtype} "
                  f"({nbytes:,} bytes){where}",
                  f"add a rule for {name} with kwargs generate_device/prefill_device" if odd
                  else "nothing to do if cuda:0 is intended; otherwise add a rule for them")
    blocked: dict[int, list[str]] = {}
    for path in state.fallback_loaded:
        blocked.setdefault(_blocking_line(state, path), []).append(path)
    for line, paths in blocked.items():
        state.add(line, state.col(line), "warning", "unconfigured",
                  f"{len(paths)} module(s) with weights (e.g. {paths[0]}) sit below a rule with recursive: False "
                  f"that keeps them as plain modules; they get no device entry and load on cuda:0 as {state.dtype}",
                  "drop 'recursive: False' from this rule or replace the module with an operator that loads them")


def _placed_ancestor_device(state: State, path: str) -> str | None:
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        entry = state.entries.get(".".join(parts[:i]))
        if entry is not None and entry.rule is not None and "generate_device" in entry.kwargs:
            return device_of(state, entry.kwargs["generate_device"])
    return None


def load_findings(state: State) -> None:
    for line, names in state.missing.items():
        state.add(line, state.col(line), "error", "missing-tensor",
                  f"{len(names)} weight(s) the loader looks for are not in the checkpoint "
                  f"(e.g. {names[0]}); loading raises \"can't find … in GGUF file\"",
                  "use the GGUF this rule file was written for, or a rule file for this GGUF")
    for line, names in state.per_expert.items():
        example = state.data.translate(names[0]) if names[0].startswith("model.") else names[0]
        state.add(line, state.col(line), "error", "per-expert-load",
                  f"{len(names)} per-expert weights are loaded one expert at a time (e.g. {example}), but the "
                  "GGUF stores experts stacked (ffn_*_exps); loading fails",
                  "replace the experts ModuleList with KTransformersExperts and recursive: False")
    for dtype, names in state.undequantizable.items():
        state.add(0, 0, "error", "unsupported-type",
                  f"{len(names)} tensor(s) of ggml type {dtype} must be dequantized (e.g. {names[0]}), which "
                  "KTransformers' loader cannot do (NotImplementedError)",
                  "keep those tensors in KExpertsCPU/KLinearCPUInfer, or use a GGUF with supported types")


def model_findings(state: State) -> None:
    tree = state.tree
    model = state.entries.get("model")
    embed_devices = {p.device for p in state.placements.values() if p.module == "model.embed_tokens"}
    if model is not None and model.kind == "model" and embed_devices - {"cpu"}:
        line = state.entries["model.embed_tokens"].rule.line if state.entries.get("model.embed_tokens") and \
            state.entries["model.embed_tokens"].rule else 0
        state.add(line, state.col(line), "error", "embedding-device",
                  f"model.embed_tokens loads on {', '.join(sorted(embed_devices))}, but "
                  f"{model.cls.rsplit('.', 1)[-1]} looks tokens up with input_ids on the CPU (device mismatch)",
                  "put model.embed_tokens on \"cpu\" (class: default)")
    # layer devices: where each layer's attention runs
    layer_device: dict[int, str] = {}
    for i in range(tree.n_layers):
        entry = state.entries.get(f"model.layers.{i}.self_attn")
        value = entry.kwargs.get("generate_device", "cuda") if entry else FALLBACK_DEVICE
        layer_device[i] = device_of(state, value)
    transfer = (model.kwargs.get("transfer_map") if model is not None and model.kind == "model" else None) or {}
    if not isinstance(transfer, dict):
        return
    line = model.rule.line if model is not None and model.rule else 0
    pos = model.rule.where("transfer_map") if model is not None and model.rule and transfer else (line, state.col(line))
    current = DEFAULT_DEVICE
    wrong: list[int] = []
    for i in range(tree.n_layers):
        if i in transfer:
            current = device_of(state, transfer[i])
        if layer_device[i] != current:
            wrong.append(i)
    for key in transfer:
        if isinstance(key, int) and not 0 <= key < tree.n_layers:
            state.add(*pos, "warning", "transfer-map",
                      f"transfer_map names layer {key}, but the model has layers 0-{tree.n_layers - 1}",
                      "remove it")
    if wrong:
        first = wrong[0]
        if transfer or len(set(layer_device.values())) > 1:
            state.add(*pos, "warning", "transfer-map",
                      f"layers {ranges(wrong)} run on {layer_device[first]}"
                      f"{'' if len({layer_device[i] for i in wrong}) == 1 else ' (and others)'} but the hidden "
                      f"state is moved there only by transfer_map, which leaves it on another device; every op "
                      "copies its input across",
                      f"add {first}: \"{layer_device[first]}\" to transfer_map" if model is not None and
                      model.kind == "model" else "add a ^model$ rule with KDeepseekV2Model and a transfer_map")


def model_mismatch(state: State) -> None:
    """A `match: class:` from another model's modeling file: the file was written for another model."""
    packages = {t.package: t for t in state.data.trees}
    mine = state.tree.template
    for rule in state.rules:
        if rule.match_class is None:
            continue
        other = packages.get(rule.match_class.rsplit(".", 1)[0])
        if other is not None and other.package != mine.package:
            state.add(rule.class_line, rule.class_column, "warning", "wrong-model",
                      f"{rule.match_class.rsplit('.', 1)[-1]} is a class of {other.hf_architectures[0]}, but this "
                      f"checkpoint is {mine.hf_architectures[0]}; the file was written for another model",
                      f"use a rule file for {mine.hf_architectures[0]}")
            return
