"""The data model of `rules/hf_architectures.yaml`: what convert_hf_to_gguf.py does, per architecture, as data.

`load_table()` returns the packaged table (parsed and validated once, by `schema.parse_table`); `ArchTable.find`
picks the entry for a config.json the way the converter picks its class (`ModelBase.register` names matched
against `architectures[0]`, then `model_type`). Nothing here knows how to apply the facts: `kv.py` makes the KV
calls, `engine.py` the tensor steps.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import gguf

from ..datafiles import read_packaged, read_user_file
from ..errors import ConversionError  # noqa: F401 - re-exported by inspector.convert (one class, in errors.py)
from .expr import Expr

TABLE_FILE = "hf_architectures.yaml"


@dataclass(frozen=True)
class KvCall:
    """One `GGUFWriter.add_*` call of a class's set_gguf_parameters."""

    call: str
    value: Expr
    when: Expr | None
    enum: str | None


@dataclass(frozen=True)
class NameRule:
    pattern: re.Pattern[str]
    to: str | None = None  # renames; `{E0}`, `{E1}` … stand for `exprs`, evaluated per match
    exprs: tuple[Expr, ...] = ()
    when: Expr | None = None
    reason: str = ""  # drops
    material: bool = False


@dataclass(frozen=True)
class Output:
    name: str
    transpose: tuple[int, int] | None = None


@dataclass(frozen=True)
class Transform:
    pattern: re.Pattern[str]
    outputs: tuple[Output, ...]
    when: Expr | None = None
    mxfp4_blocks: str | None = None
    transpose: tuple[int, int] | None = None
    view: tuple[Expr, ...] | None = None
    split_dim: int | None = None
    split_sizes: tuple[Expr, ...] | None = None
    split_parts: int | None = None
    split_interleave: int | None = None
    truncate_dim: int | None = None
    truncate_size: Expr | None = None
    pad_dim: int | None = None
    pad_size: Expr | None = None


@dataclass(frozen=True)
class ExpertRule:
    pattern: re.Pattern[str]
    count: Expr
    order: tuple[str, ...]
    merged: str


@dataclass(frozen=True)
class Extra:
    name: str
    when: Expr
    shape: tuple[Expr, ...]


@dataclass(frozen=True)
class TokenizerSpec:
    family: Expr
    pre: Expr
    tokens: Expr | None
    merges: Expr | None
    avg_token_bytes: Expr | None
    chat_template_bytes: Expr | None


@dataclass(frozen=True)
class Assumption:
    when: Expr
    warning: str


@dataclass(frozen=True)
class ArchSpec:
    """One entry of the table.

    `kv_only` entries describe only the KVs the class writes (enough for hyperparameters), not its tensor steps:
    the converter view refuses them. `when` makes an entry conditional (one HF architecture, two GGUF archs, as
    NemotronH and its MoE variant). `block_count` overrides the layer count the class uses (MTP blocks appended).
    """

    id: str
    converter_class: str
    gguf_arch: str
    model_arch: gguf.MODEL_ARCH | None
    hf_architectures: tuple[str, ...]
    model_types: tuple[str, ...]
    drops: tuple[NameRule, ...]
    renames: tuple[NameRule, ...]
    transforms: tuple[Transform, ...]
    experts: ExpertRule | None
    extras: tuple[Extra, ...]
    kv_hparams: tuple[tuple[str, Expr], ...]
    kv: tuple[KvCall, ...]
    tokenizer: TokenizerSpec | None
    assumptions: tuple[Assumption, ...]
    keep_quantized: str | None
    kv_only: bool = False
    when: Expr | None = None
    block_count: Expr | None = None


@dataclass(frozen=True)
class TokenizerFamily:
    model: str
    avg_token_bytes: float
    scores: bool
    avg_merge_bytes: float
    special_ids: tuple[str, ...]


@dataclass(frozen=True)
class Dequant:
    scales: tuple[tuple[str, str], ...]  # (suffix, weight-name template with {stem})
    drop: tuple[str, ...]
    packed: bool


@dataclass(frozen=True)
class ArchTable:
    path: str
    converter: str
    block_count_keys: tuple[str, ...]
    skip_suffixes: tuple[str, ...]
    multimodal_prefixes: tuple[str, ...]
    multimodal_contains: tuple[str, ...]
    renames: tuple[NameRule, ...]
    f32_tensors: frozenset[gguf.MODEL_TENSOR]
    quantizable_suffixes: tuple[str, ...]
    dequantize: Mapping[str, Dequant]
    tokenizer_families: Mapping[str, TokenizerFamily]
    architectures: tuple[ArchSpec, ...]
    generic_kv: tuple[KvCall, ...] = ()  # what every TextModel writes: used for architectures not in the table

    def find(self, config: Mapping[str, Any]) -> ArchSpec | None:
        """The entry for config.json's architectures[0], else its model_type (the first whose `when` holds)."""
        names = config_hparams(config)  # what a `when` sees: text_config merged, as TextModel does
        hf = config.get("architectures") or []
        first = hf[0] if isinstance(hf, list) and hf else None
        model_type = config.get("model_type")
        for claimed in (lambda s: first in s.hf_architectures, lambda s: model_type in s.model_types):
            for spec in self.architectures:
                if claimed(spec) and (spec.when is None or spec.when.holds(names)):
                    return spec
        return None

    def hf_name(self, config: Mapping[str, Any]) -> str:
        """How to name the config's architecture in a message: architectures[0], else model_type."""
        hf = config.get("architectures") or []
        first = hf[0] if isinstance(hf, list) and hf else None
        return str(first or config.get("model_type") or "unknown")


def config_hparams(config: Mapping[str, Any]) -> dict[str, Any]:
    """TextModel's hparams: config.json with text_config moved to the top level (after the renames of
    load_hparams: llm_config, lm_config and language_config are text_config)."""
    hparams = dict(config)
    for alias in ("llm_config", "lm_config", "language_config"):
        if isinstance(hparams.get(alias), dict):
            hparams["text_config"] = hparams[alias]
    if isinstance(hparams.get("text_config"), dict):
        hparams = {**hparams, **hparams["text_config"]}
    return hparams


def load_table(path: str | Path | None = None) -> ArchTable:
    """The packaged table (`rules/hf_architectures.yaml`), or another file with the same schema.

    Raises:
        RulesError: the file cannot be read or does not follow the schema (docs/quantization.md).
    """
    from .schema import parse_table

    if path is None:
        return _packaged_table()
    return parse_table(read_user_file(path, "the architecture table"), str(path))


@lru_cache(maxsize=1)
def _packaged_table() -> ArchTable:
    from .schema import parse_table

    return parse_table(read_packaged(TABLE_FILE), f"rules/{TABLE_FILE}")


def supported_architectures(table: ArchTable | None = None, *, kv_only: bool = False) -> dict[str, str]:
    """HF architecture name -> gguf architecture, for every entry the converter view covers (with `kv_only`,
    also the entries that describe only hyperparameter KVs)."""
    table = table or load_table()
    return {hf: spec.gguf_arch for spec in table.architectures if kv_only or not spec.kv_only
            for hf in spec.hf_architectures}
