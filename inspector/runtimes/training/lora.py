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

from ...errors import UsageError
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
        return re.fullmatch(targets[0], path) is not None
    return any(path == t or path.endswith("." + t) for t in targets)


def target_modules(model: HfModel, targets: tuple[str, ...] | None) -> tuple[tuple[str, ...], list[Module]]:
    """The targets PEFT resolves and the modules they select (module docstring).

    Raises:
        UsageError: no default for the model type, nothing matched, or a matched module LoRA cannot adapt.
    """
    if targets is None:
        targets = model.spec.lora_targets
        if targets is None:
            raise UsageError(f"PEFT has no default LoRA target_modules for model_type {model.spec.model_type!r}",
                             hint="give --lora-targets (e.g. q_proj,k_proj,v_proj,o_proj or all-linear)")
    if targets == ("all-linear",):
        output = model.spec.output
        chosen = [m for m in model.modules() if m.kind == "linear" and m.path != output]
    else:
        chosen = [m for m in model.modules() if m.path and _matches(m.path, targets)]
        bad = [m for m in chosen if m.kind not in ("linear", "embedding")]
        if bad:
            raise UsageError(f"LoRA target {bad[0].path} is not an nn.Linear or nn.Embedding "
                             f"(PEFT: 'Target module ... is not supported')",
                             hint="name the projections (q_proj …) rather than their containers")
    if not chosen:
        raise UsageError(f"LoRA target_modules {list(targets)} match no module of this model",
                         hint="names are the last parts of module names: q_proj, v_proj, gate_proj …")
    return targets, chosen


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
