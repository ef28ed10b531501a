"""llama.cpp file types (`llama_ftype`) by their llama-quantize names, and the ggml type names they use.

Facts, not code, from ggml-org/llama.cpp:
- ids: `include/llama.h` `enum llama_ftype` (gguf-py's `LlamaFileType` mirrors it; 0.19.0 lacks Q2_0 = 41);
- names, aliases and COPY: `tools/quantize/quantize.cpp` `QUANT_OPTIONS` (commit 03161a4e);
- default tensor type per file type: `src/llama-quant.cpp` `llama_ftype_get_default_type` (current,
  007dbbf3) and the switch at the top of `llama_model_quantize_impl` (legacy, 8784689f).
See ../shared/reference/quant-spec.md §1.1 and §3.3.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Mapping

from ..errors import UsageError
from ..formats.ggml_types import GgmlType, type_by_name
from .rulesets import FAMILY_2025, FAMILY_2026, RULE_SETS, RuleSet, resolve_rules  # noqa: F401 - RULE_SETS re-exported


@dataclass(frozen=True)
class FtypeInfo:
    """One llama-quantize file type."""

    name: str  # llama-quantize's name, upper case (`Q4_K_M`)
    ftype: int | None  # the llama_ftype id written as general.file_type; None for COPY (keeps the input's)
    default_type: str | None  # ggml type most tensors get (`Q4_K`); None for COPY
    aliases: tuple[str, ...] = ()  # other names llama-quantize accepts for it (`Q4_K` for Q4_K_M)
    rules: tuple[str, ...] = (FAMILY_2026, FAMILY_2025)  # rule-set families that know this file type

    @property
    def quantized(self) -> bool:
        """Whether the default type is a block-quantized one (F32/F16/BF16 run no mixture rules)."""
        return self.default_type is not None and is_quantized_type(self.default_type)


_BOTH = (FAMILY_2026, FAMILY_2025)
_CURRENT_ONLY = (FAMILY_2026,)

# (name, llama_ftype id, default ggml type, aliases, rule sets). The ids are data, not read from gguf-py at run time
# (importing gguf imports numpy: ~0.1 s of every run); tests/test_fast_start.py checks each equals gguf-py's
# `LlamaFileType` member (ALL_F32, else MOSTLY_<name>), but Q2_0 = 41, which gguf 0.19.0 lacks (llama.h 2026-07).
# Order: the file types of llama.cpp's tests/test-quant-type-selection.cpp table, then the 2026 additions, then COPY.
_TABLE: tuple[tuple[str, int | None, str | None, tuple[str, ...], tuple[str, ...]], ...] = (
    ("F32", 0, "F32", (), _BOTH),
    ("F16", 1, "F16", (), _BOTH),
    ("BF16", 32, "BF16", (), _BOTH),
    ("Q4_0", 2, "Q4_0", (), _BOTH),
    ("Q4_1", 3, "Q4_1", (), _BOTH),
    ("Q5_0", 8, "Q5_0", (), _BOTH),
    ("Q5_1", 9, "Q5_1", (), _BOTH),
    ("Q8_0", 7, "Q8_0", (), _BOTH),
    ("Q2_K", 10, "Q2_K", (), _BOTH),
    ("Q2_K_S", 21, "Q2_K", (), _BOTH),
    ("Q3_K_S", 11, "Q3_K", (), _BOTH),
    ("Q3_K_M", 12, "Q3_K", ("Q3_K",), _BOTH),
    ("Q3_K_L", 13, "Q3_K", (), _BOTH),
    ("Q4_K_S", 14, "Q4_K", (), _BOTH),
    ("Q4_K_M", 15, "Q4_K", ("Q4_K",), _BOTH),
    ("Q5_K_S", 16, "Q5_K", (), _BOTH),
    ("Q5_K_M", 17, "Q5_K", ("Q5_K",), _BOTH),
    ("Q6_K", 18, "Q6_K", (), _BOTH),
    ("IQ1_S", 24, "IQ1_S", (), _BOTH),
    ("IQ1_M", 31, "IQ1_M", (), _BOTH),
    ("IQ2_XXS", 19, "IQ2_XXS", (), _BOTH),
    ("IQ2_XS", 20, "IQ2_XS", (), _BOTH),
    ("IQ2_S", 28, "IQ2_XS", (), _BOTH),  # IQ2_S files use IQ2_XS blocks
    ("IQ2_M", 29, "IQ2_S", (), _BOTH),  # IQ2_M files use IQ2_S blocks
    ("IQ3_XXS", 23, "IQ3_XXS", (), _BOTH),
    ("IQ3_XS", 22, "IQ3_S", (), _BOTH),  # IQ3_XS files use IQ3_S blocks
    ("IQ3_S", 26, "IQ3_S", (), _BOTH),
    ("IQ3_M", 27, "IQ3_S", (), _BOTH),
    ("IQ4_NL", 25, "IQ4_NL", (), _BOTH),
    ("IQ4_XS", 30, "IQ4_XS", (), _BOTH),
    ("TQ1_0", 36, "TQ1_0", (), _BOTH),
    ("TQ2_0", 37, "TQ2_0", (), _BOTH),
    ("MXFP4_MOE", 38, "MXFP4", (), _BOTH),
    # 2026 additions (the 2026 family only; 2026-10 dropped NVFP4's default type). NVFP4 had a default type in
    # llama-quant.cpp 007dbbf3, but quantize.cpp's
    # QUANT_OPTIONS (03161a4e) does not list it: convert_hf_to_gguf.py writes it for ModelOpt NVFP4 checkpoints.
    ("NVFP4", 39, "NVFP4", (), _CURRENT_ONLY),
    ("Q1_0", 40, "Q1_0", (), _CURRENT_ONLY),
    ("Q2_0", 41, "Q2_0", (), _CURRENT_ONLY),
    # COPY: quantize.cpp sets only_copy; every tensor keeps its type and general.file_type keeps the input's.
    ("COPY", None, None, (), _BOTH),
)


def _build() -> dict[str, FtypeInfo]:
    table: dict[str, FtypeInfo] = {}
    for name, ftype, default, aliases, rules in _TABLE:
        table[name] = FtypeInfo(name, ftype, default, aliases, rules)
    return table


FTYPES: Mapping[str, FtypeInfo] = MappingProxyType(_build())

# The file types --quant-list shows, smallest first: the ones people publish and download.
COMMON_FTYPES: tuple[str, ...] = (
    "IQ2_XXS", "IQ2_M", "Q2_K", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ4_XS",
    "Q4_0", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "BF16",
)

_ALIASES: Mapping[str, str] = MappingProxyType({a: info.name for info in FTYPES.values() for a in info.aliases})


def known_to(info: FtypeInfo, rules: str | RuleSet) -> bool:
    """Whether a rule set has this file type (its family's table, less the types it removed)."""
    rule_set = resolve_rules(rules)
    return rule_set.family in info.rules and info.name not in rule_set.removed_ftypes


def ftype_names(rules: str | RuleSet = "current") -> list[str]:
    """Every name (aliases included) the rule set accepts, in table order."""
    if resolve_rules(rules).ik:
        from .rules_ik import IK_FTYPES

        return [n for info in IK_FTYPES.values() for n in (info.name, *info.aliases)]
    names: list[str] = []
    for info in FTYPES.values():
        if known_to(info, rules):
            names.append(info.name)
            names.extend(info.aliases)
    return names


def resolve_ftype(name: str, rules: str | RuleSet = "current") -> FtypeInfo:
    """The file type for a llama-quantize name or alias (any case) or numeric id, as llama-quantize parses it.

    Raises:
        UsageError: unknown name or rule set, or a file type the chosen rule set does not have; lists the valid
            names.
    """
    rule_set = resolve_rules(rules)
    if rule_set.ik:  # ik_llama.cpp's own file type table
        from .rules_ik import resolve_ik_ftype

        return resolve_ik_ftype(name)
    key = name.strip().upper()
    key = _ALIASES.get(key, key)
    info = FTYPES.get(key)
    if info is None and key.isdigit():  # quantize.cpp also accepts the numeric llama_ftype id
        info = next((i for i in FTYPES.values() if i.ftype == int(key) and i.name != "COPY"), None)
    if info is None or not known_to(info, rule_set):
        why = "unknown file type" if info is None else f"file type not known to the {rule_set.title} rules"
        raise UsageError(f"{why} {name!r}; valid names: {', '.join(ftype_names(rule_set))}")
    return info


def check_rules(rules: str | RuleSet) -> RuleSet:
    """The rule set for a name (UsageError for an unknown one)."""
    return resolve_rules(rules)


# ggml's non-block types: ggml_is_quantized() is false for them (ggml.c type_traits .is_quantized).
_PLAIN_TYPES = frozenset({"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"})


def is_quantized_type(name: str) -> bool:
    return name.upper() not in _PLAIN_TYPES


@lru_cache(maxsize=None)
def ggml_type(name: str) -> GgmlType:
    """A mainline ggml type by name (any case); raises KeyError for unknown names."""
    gtype = type_by_name(name)
    if gtype is None or gtype.origin != "ggml":
        raise KeyError(name)
    return gtype


def valid_type_names() -> list[str]:
    """Names llama-quantize's `parse_ggml_type` accepts (mainline ggml types), upper case."""
    from ..formats.ggml_types import all_types

    return [t.name for t in all_types() if t.origin == "ggml"]


def resolve_type(name: str, what: str) -> str:
    """Canonical upper-case ggml type name for a user-given one (any case, as llama-quantize's striequals).

    Raises:
        UsageError: not a ggml type; lists the valid names.
    """
    try:
        return ggml_type(name.strip()).name
    except KeyError:
        raise UsageError(f"{what}: unknown ggml type {name!r}; valid types: {', '.join(valid_type_names())}") from None


# llama_model_loader's guess of the file type from the most common tensor type, used when a GGUF has no
# general.file_type (src/llama-model-loader.cpp, the llama_model_loader constructor: n_type[] counts, the type with
# the most tensors wins (the first to reach the count on ties), then a switch to LLAMA_FTYPE_*; unknown -> ALL_F32).
_GUESSED_FTYPE = {"F32": "F32", "F16": "F16", "BF16": "BF16", "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0",
                  "Q5_1": "Q5_1", "Q8_0": "Q8_0", "Q2_K": "Q2_K", "Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M",
                  "Q5_K": "Q5_K_M", "Q6_K": "Q6_K", "TQ1_0": "TQ1_0", "TQ2_0": "TQ2_0", "IQ2_XXS": "IQ2_XXS",
                  "IQ2_XS": "IQ2_XS", "IQ2_S": "IQ2_S", "IQ3_XXS": "IQ3_XXS", "IQ1_S": "IQ1_S", "IQ1_M": "IQ1_M",
                  "IQ4_NL": "IQ4_NL", "IQ4_XS": "IQ4_XS", "IQ3_S": "IQ3_S", "MXFP4": "MXFP4_MOE"}


def most_common_type(tensor_types: list[str]) -> str:
    """The tensor type with the most tensors; the first to reach the count wins ties (as llama.cpp's loader)."""
    counts: dict[str, int] = {}
    best, best_count = "F32", 0
    for name in tensor_types:
        counts[name] = counts.get(name, 0) + 1
        if counts[name] > best_count:
            best, best_count = name, counts[name]
    return best


def guess_file_type(tensor_types: list[str]) -> FtypeInfo:
    """The file type llama.cpp's loader assumes for a GGUF without general.file_type, from its tensor types."""
    return FTYPES.get(_GUESSED_FTYPE.get(most_common_type(tensor_types), "F32")) or FTYPES["F32"]
