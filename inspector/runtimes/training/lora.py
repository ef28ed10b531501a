"""PEFT's LoRA adapters on the module tree: which modules `target_modules` selects and the exact parameters added.

peft 0.21 (tuners/tuners_utils.py `check_target_module_exists`, `_maybe_include_all_linear_layers`;
tuners/lora/layer.py `Linear.update_layer`, `Embedding.update_layer`; utils/constants.py
TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING):
- no target_modules: the model type's entry of that mapping (q_proj, v_proj for Llama, Mistral, Qwen2/3, Gemma);
  a model type without one (Qwen-MoE, DeepSeek) makes PEFT ask for target_modules;
- a list: a module whose name equals an entry or ends with "." + the entry;
- one string: a regex matched against the whole module name (re.fullmatch); "all-linear": every nn.Linear (and
  bitsandbytes' Linear4bit/8bitLt, GPT-2 Conv1D) except the output embedding;
- a Linear of in x out gains lora_A [r, in] and lora_B [out, r]: r x (in + out) parameters; an Embedding of
  vocab x dim gains lora_embedding_A [r, vocab] and lora_embedding_B [dim, r]; anything else matched is an error.
Adapters are float32 (get_peft_model's autocast_adapter_dtype=True upcasts 16-bit adapters).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ...errors import UsageError
from ...patterns import UserPattern, compile_pattern
from ...memory.hf_model import HfModel, Module

REGEX_CHARS = set(".*+?()[]|^$\\")


@dataclass(frozen=True)
class Adapter:
    """One LoRA parameter: its name, shape, and the module (and base weight) it adapts."""

    name: str
    shape: tuple[int, int]
    module: str
    base_weight: str

    @property
    def params(self) -> int:
        return self.shape[0] * self.shape[1]


def _matches(path: str, targets: tuple[str, ...]) -> bool:
    if len(targets) == 1 and (REGEX_CHARS & set(targets[0])) and targets[0] != "all-linear":
        # PEFT's `re.fullmatch(target_modules, key)` (peft tuners_utils `check_target_module_exists`), bounded
        return _full_pattern(targets[0]).search(path)
    return any(path == t or path.endswith("." + t) for t in targets)


@lru_cache(maxsize=8)
def _full_pattern(target: str) -> UserPattern:
    where = f"--lora-targets {target}"
    compile_pattern(target, where)  # errors point into the regex as written
    return compile_pattern(rf"^(?:{target})\Z", where)


def _moe_conversion(model: HfModel, targets: tuple[str, ...], rank: int
                    ) -> tuple[tuple[str, ...], list[Adapter]]:
    """transformers 5 + peft 0.21 (`_convert_peft_config_moe`): targets naming the 4.x expert and router Linears
    become target_parameters of the fused experts and the router; the rest stay module targets. "all-linear" first
    resolves to the leaf names of the Linears plus every 4.x name of the mapping."""
    mapping = dict(model.spec.peft_moe_map)
    if not mapping or (len(targets) == 1 and targets[0] != "all-linear" and REGEX_CHARS & set(targets[0])):
        return targets, []
    if targets == ("all-linear",):
        leaves = {m.name for m in model.modules() if m.kind == "linear" and m.path != model.spec.output}
        targets = tuple(sorted(leaves | set(mapping)))
    fused = {new: old for new, old in model.spec.peft_moe_fused}
    for new, members in fused.items():
        present = [m for m in members if m in targets]
        if 0 < len(present) < len(members):
            missing = sorted(set(members) - set(present))
            raise UsageError(f"PEFT cannot target {', '.join(present)} without {', '.join(missing)}: transformers 5 "
                             f"fuses them into {new}", hint=f"add {', '.join(missing)} to --lora-targets")
    wanted = {mapping[t] for t in targets if t in mapping}
    remaining = tuple(t for t in targets if t not in mapping)
    return remaining, _parameter_adapters(model, wanted, fused, mapping, rank)


_EXPERT = re.compile(r"\.(\d+)\.(\w+)\.weight$")


def _parameter_adapters(model: HfModel, wanted: set[str], fused: dict[str, tuple[str, ...]],
                        mapping: dict[str, str], rank: int) -> list[Adapter]:
    """peft ParamWrapper on a [E, out, in] parameter: lora_A [r x E, in], lora_B [out, r x E] (r times the number
    of fused names); on a 2-D router weight [out, in]: lora_A [r, in], lora_B [out, r]."""
    out: list[Adapter] = []
    for m in model.modules():
        if m.kind == "experts":
            shapes: dict[str, tuple[int, ...]] = {}
            experts: set[str] = set()
            for p in m.params:
                hit = _EXPERT.search(p.name[len(m.path):])
                if hit:
                    experts.add(hit.group(1))
                    shapes.setdefault(hit.group(2), p.shape)
            for new in sorted(wanted - {"gate.weight"}):
                members = [old for old, target in mapping.items() if target == new and old in shapes]
                if not members:
                    continue
                r = rank * (len(members) if new in fused else 1) * len(experts)
                out_f = sum(shapes[old][0] for old in members)
                in_f = shapes[members[0]][1]
                out += [Adapter(f"{m.path}.{new}.lora_A.default", (r, in_f), m.path, m.path),
                        Adapter(f"{m.path}.{new}.lora_B.default", (out_f, r), m.path, m.path)]
        elif "gate.weight" in wanted and m.path.endswith(".gate") and m.kind != "linear" and m.weight is not None \
                and len(m.weight.shape) == 2:
            out_f, in_f = m.weight.shape
            out += [Adapter(f"{m.path}.weight.lora_A.default", (rank, in_f), m.path, m.weight.name),
                    Adapter(f"{m.path}.weight.lora_B.default", (out_f, rank), m.path, m.weight.name)]
    return out


def resolve_targets(model: HfModel, targets: tuple[str, ...] | None) -> tuple[str, ...]:
    """target_modules as given, or PEFT's default for the model type.

    Raises:
        UsageError: no default for the model type (or PEFT drops it: Mixtral under transformers 5).
    """
    if targets is not None:
        return targets
    targets = model.spec.lora_targets
    if targets is not None and model.spec.fused_module and model.spec.version >= 5:
        # peft 0.21 utils/transformers_weight_conversion.py `_convert_peft_config_moe` runs before the defaults
        # are filled in and leaves target_modules empty: get_peft_model raises NoMatchingPeftModuleError
        raise UsageError(f"PEFT with transformers 5 drops its default LoRA targets for {model.spec.model_type!r} "
                         "(its MoE config conversion runs first)", hint="give --lora-targets, e.g. q_proj,v_proj")
    if targets is None:
        raise UsageError(f"PEFT has no default LoRA target_modules for model_type {model.spec.model_type!r}",
                         hint="give --lora-targets (e.g. q_proj,k_proj,v_proj,o_proj or all-linear)")
    return targets


def match_modules(model: HfModel, targets: tuple[str, ...]) -> list[Module]:
    """The modules `targets` select (module docstring).

    Raises:
        UsageError: a matched module LoRA cannot adapt.
    """
    if targets == ("all-linear",):
        return [m for m in model.modules() if m.kind == "linear" and m.path != model.spec.output]
    if not targets:
        return []
    chosen = [m for m in model.modules() if m.path and _matches(m.path, targets)]
    bad = [m for m in chosen if m.kind not in ("linear", "embedding")]
    if bad:
        raise UsageError(f"LoRA target {bad[0].path} is not an nn.Linear or nn.Embedding "
                         f"(PEFT: 'Target module ... is not supported')",
                         hint="name the projections (q_proj …) rather than their containers")
    return chosen


def lora_adapters(model: HfModel, targets: tuple[str, ...] | None, rank: int
                  ) -> tuple[tuple[str, ...], list[Adapter]]:
    """The resolved targets and every LoRA parameter PEFT adds.

    Raises:
        UsageError: as resolve_targets and match_modules; nothing matched at all.
    """
    targets = resolve_targets(model, targets)
    module_targets, parameters = _moe_conversion(model, targets, rank)
    out = adapters(model, match_modules(model, module_targets), rank) + parameters
    if not out:
        raise UsageError(f"LoRA target_modules {list(targets)} match no module of this model",
                         hint="names are the last parts of module names: q_proj, v_proj, gate_proj …")
    return targets, out


def adapters(model: HfModel, modules: list[Module], rank: int) -> list[Adapter]:
    """lora_A and lora_B of every targeted module (adapter name "default", as PEFT names them)."""
    out = []
    for m in modules:
        w = m.weight
        assert w is not None and len(w.shape) == 2
        if m.kind == "embedding":
            vocab, dim = w.shape
            out += [Adapter(f"{m.path}.lora_embedding_A.default", (rank, vocab), m.path, w.name),
                    Adapter(f"{m.path}.lora_embedding_B.default", (dim, rank), m.path, w.name)]
            continue
        out_f, in_f = (w.shape[1], w.shape[0]) if model.spec.conv1d else (w.shape[0], w.shape[1])
        out += [Adapter(f"{m.path}.lora_A.default.weight", (rank, in_f), m.path, w.name),
                Adapter(f"{m.path}.lora_B.default.weight", (out_f, rank), m.path, w.name)]
    return out
