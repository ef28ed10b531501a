"""What transformers builds for a config.json `model_type`, as data (rules/transformers.yaml): the decoder-layer
class accelerate never splits, the definition order of the base model's children, tied embeddings, non-persistent
buffers, MoE experts fused into one module (transformers 5), routers that are not nn.Linear, keep-in-fp32 modules
and PEFT's default LoRA targets. Shared by the transformers (loading) and training runtimes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import yaml

from ..datafiles import read_packaged
from ..errors import RulesError, UsageError

ARCH_FILE = "transformers.yaml"
VERSIONS = (4, 5)  # transformers major versions whose behaviour is modelled

# One option for the runtimes built on this data (transformers loading, training): shared, so it selects neither.
from .options import TRANSFORMERS_VERSION_OPTION  # noqa: E402,F401 - declared with the other shared specs
_KEYS = {"no_split", "base", "base_children", "root_children", "layers", "embeddings", "output", "tie_default",
         "rotary", "extra_buffers", "fused_experts", "not_linear", "keep_fp32", "lora_targets", "conv1d",
         "checkpoint_buffers", "peft_moe"}


@dataclass(frozen=True)
class ExtraBuffer:
    path: str  # full name; "{L}" stands for every decoder layer's path
    numel: int | str  # a count, or "rotary_half" (head_dim / 2 of the rotary embedding)
    dtype: str


@dataclass(frozen=True)
class ArchSpec:
    """One model type under one transformers major version (see rules/transformers.yaml for every key)."""

    model_type: str
    version: int
    no_split: str
    base: str
    base_children: tuple[str, ...]
    root_children: tuple[str, ...]
    layers: str
    embeddings: tuple[str, ...]
    output: str
    tie_default: bool
    rotary_module: str | None
    rotary_dim: str
    rotary_factor: str | None
    rotary_buffers: tuple[str, ...]
    extra_buffers: tuple[ExtraBuffer, ...]
    fused_module: str | None  # relative to a decoder layer
    fused_match: str | None
    not_linear: tuple[str, ...]  # relative to a decoder layer
    keep_fp32_fp16: tuple[str, ...]
    keep_fp32_strict: tuple[str, ...]
    lora_targets: tuple[str, ...] | None
    conv1d: bool
    checkpoint_buffers: tuple[str, ...]  # regexes (relative to a decoder layer) of checkpoint tensors that are buffers
    peft_moe_map: tuple[tuple[str, str], ...] = ()  # LoRA target (4.x name) -> fused parameter (5.x)
    peft_moe_fused: tuple[tuple[str, tuple[str, ...]], ...] = ()  # fused parameter -> the 4.x names it fuses

    @property
    def layers_path(self) -> str:
        return f"{self.base}.{self.layers}"


def _versioned(value: Any, version: int, where: str) -> Any:
    """A value written once, or per major version as {4: ..., 5: ...}."""
    if isinstance(value, dict) and value and set(value) <= set(VERSIONS):
        return value.get(version)
    if isinstance(value, dict) and any(isinstance(k, int) for k in value):
        raise RulesError(f"rules/{ARCH_FILE}: {where}: version keys must be among {VERSIONS}")
    return value


@lru_cache(maxsize=1)
def _data() -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(read_packaged(ARCH_FILE))
    except yaml.YAMLError as e:
        raise RulesError(f"rules/{ARCH_FILE}: {e}") from None
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("architectures"), dict):
        raise RulesError(f"rules/{ARCH_FILE}: expected version: 1, defaults and architectures")
    for name, entry in {"defaults": data.get("defaults") or {}, **data["architectures"]}.items():
        unknown = set(entry or {}) - _KEYS
        if unknown:
            raise RulesError(f"rules/{ARCH_FILE}: {name}: unknown key(s) {', '.join(sorted(unknown))}")
    return data


def supported_model_types() -> tuple[str, ...]:
    return tuple(sorted(_data()["architectures"]))


def arch_spec(model_type: str, version: int = 5) -> ArchSpec:
    """The architecture data of a model type under transformers `version` (4 or 5).

    Raises:
        UsageError: a model type the data does not describe, or an unknown version.
    """
    if version not in VERSIONS:
        raise UsageError(f"transformers version {version} is not modelled", hint="use 4 or 5")
    data = _data()
    if model_type not in data["architectures"]:
        raise UsageError(f"model_type {model_type!r} is not in ckpt-size's transformers data",
                         hint=f"supported: {', '.join(supported_model_types())} (rules/{ARCH_FILE})")
    entry = {**(data.get("defaults") or {}), **(data["architectures"][model_type] or {})}

    def get(key: str, default: Any = None) -> Any:
        value = _versioned(entry.get(key, default), version, f"{model_type}.{key}")
        return default if value is None else value

    rotary = get("rotary") or {}
    fused = get("fused_experts") or {}
    keep = entry.get("keep_fp32") or {}
    extra = tuple(ExtraBuffer(str(b["path"]), b["numel"], str(b["dtype"])) for b in get("extra_buffers", []))
    targets = entry.get("lora_targets")
    return ArchSpec(
        model_type=model_type, version=version, no_split=str(get("no_split", "")), base=str(get("base")),
        base_children=tuple(get("base_children", [])), root_children=tuple(get("root_children", [])),
        layers=str(get("layers")), embeddings=tuple(get("embeddings", [])), output=str(get("output")),
        tie_default=bool(get("tie_default", False)),
        rotary_module=rotary.get("module"), rotary_dim=str(rotary.get("dim", "head_dim")),
        rotary_factor=rotary.get("factor"),
        rotary_buffers=tuple(_versioned(rotary.get("buffers", []), version, f"{model_type}.rotary") or ()),
        extra_buffers=extra, fused_module=fused.get("module"), fused_match=fused.get("match"),
        not_linear=tuple(get("not_linear", [])),
        keep_fp32_fp16=tuple(_versioned(keep.get("fp16", []), version, model_type) or ()),
        keep_fp32_strict=tuple(_versioned(keep.get("strict", []), version, model_type) or ()),
        lora_targets=tuple(targets) if targets else None, conv1d=bool(get("conv1d", False)),
        checkpoint_buffers=tuple(get("checkpoint_buffers", [])),
        peft_moe_map=tuple((get("peft_moe") or {}).get("map", {}).items()),
        peft_moe_fused=tuple((k, tuple(v)) for k, v in (get("peft_moe") or {}).get("fused", {}).items()),
    )


def model_type_of(config: Mapping[str, Any] | None, source: str) -> str:
    """config.json's model_type (the text model's, for a config that nests one).

    Raises:
        UsageError: no config.json (a GGUF, or a bare safetensors file without one).
    """
    if not config:
        raise UsageError(f"{source}: transformers builds the model from config.json, and none was found",
                         hint="point at the folder or Hub repo holding config.json and the safetensors")
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        raise UsageError(f"{source}: config.json has no model_type")
    return model_type
