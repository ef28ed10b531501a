"""Dated rule sets: which version of llama-quantize's type selection a prediction follows (`--quant-rules`).

Each set is one commit of ggml-org/llama.cpp `src/llama-quant.cpp` (or of ikawrakow/ik_llama.cpp), named by the
month of the newest change it contains that can be dated. The code is organised in *families*: the 2025 code
(type choice, fallback and overrides in one function) and the 2026 code after the refactor of PR #19770
(`tensor_allows_quantization`, `llama_tensor_get_type_impl`, the `llama_tensor_get_type` wrapper,
`tensor_type_fallback`). Within a family, later commits differ by a few switches, listed per rule set below and
reproduced where rules.py / tables.py read them. Facts only; no code copied.

Changes between the modelled commits (each has a test in tests/test_quant_rulesets.py with a tensor it alters):

2026-07 (007dbbf3) -> 2026-10 (0c1e5709, 2026-10-01):
1. `tensor_type_fallback`: a target with no fallback entry whose block is at most 32 (Q4_0, Q4_1, Q5_0, Q5_1,
   Q8_0, IQ4_NL, MXFP4 …) is kept instead of stopping llama-quantize; the `ne0 % 32` check after it then writes
   F16. Larger blocks without an entry (Q1_0) still stop.
2. `llama_tensor_get_type`: with `--token-embedding-type`, a `--tensor-type` pattern that matches
   `per_layer_token_embd.weight` takes that tensor (mixture path: first match, shape fallback); `token_embd.weight`
   still takes the embedding type.
3. GLM-5-Next (`glm5-next`): `tensor_allows_quantization` leaves `hc_*`, the indexer's `attn_q_b`/`attn_k`/`proj`,
   `indexer_compressor_gate/ape`, `ssm_f_a/f_b/g_a/g_b/beta`, `attn_kv_a_mqa`, `attn_k_b` and `attn_v_b`
   unquantized; `llama_tensor_get_type_impl` keeps `attn_q_a`, `attn_q_b` and `nextn.eh_proj` at Q8_0 or above
   (F32/BF16/F16 targets stay, any other becomes Q8_0) before the mixture runs.
4. `llama_ftype_get_default_type` no longer maps LLAMA_FTYPE_MOSTLY_NVFP4: llama-quantize stops with "invalid
   output file type 39" (quantize.cpp never listed NVFP4 by name).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from ..errors import UsageError

FAMILY_2025, FAMILY_2026, FAMILY_IK = "2025", "2026", "ik"


@dataclass(frozen=True)
class RuleSet:
    """One modelled version of llama-quantize's type selection."""

    name: str  # "2026-10"
    repo: str  # "ggml-org/llama.cpp"
    commit: str
    dated: str  # how the name's month is known
    family: str  # FAMILY_2025 or FAMILY_2026: which code the rules follow
    aliases: tuple[str, ...] = ()
    # 2026-10 switches (see the module docstring)
    small_block_keeps_target: bool = False
    per_layer_embd_by_pattern: bool = False
    glm5_next: bool = False
    removed_ftypes: frozenset[str] = frozenset()
    # ik_llama.cpp (rules_ik.py): its own type table and choices
    ik: bool = False

    @property
    def legacy(self) -> bool:
        return self.family == FAMILY_2025

    @property
    def title(self) -> str:
        """`2025-08 (legacy)`: the name with its aliases."""
        return f"{self.name} ({', '.join(self.aliases)})" if self.aliases else self.name

    def describe(self) -> str:
        short = self.commit[:8]
        what = "ik_llama.cpp src/llama-quantize.cpp" if self.ik else "llama.cpp src/llama-quant.cpp"
        return f"{what} at {short}, {self.dated}"


_SETS = (
    RuleSet("2026-10", "ggml-org/llama.cpp", "0c1e57098bba43ac29e6e3b677cdceebdd22334f",
            "2026-10-01", FAMILY_2026, ("current",),
            small_block_keeps_target=True, per_layer_embd_by_pattern=True, glm5_next=True,
            removed_ftypes=frozenset({"NVFP4"})),
    RuleSet("2026-07", "ggml-org/llama.cpp", "007dbbf3fd17eefe9b47fee45f48f7ba5e62b714",
            "after 2026-07-15 (has PR #25716), before GLM-5-Next",
            FAMILY_2026),
    RuleSet("2025-08", "ggml-org/llama.cpp", "8784689fee07c6daabf3487d24e1535534ef6e6b",
            "Aug 2025, after gpt-oss / MXFP4", FAMILY_2025, ("legacy",)),
    # ik_llama.cpp's own quantizer (rules_ik.py), its file types included
    RuleSet("ik_llama", "ikawrakow/ik_llama.cpp", "8337e4cd3861406fc04e0854b1409cd1b027fbc9", "2026-08-15",
            FAMILY_IK, ik=True),
)

RULE_SETS: Mapping[str, RuleSet] = MappingProxyType({s.name: s for s in _SETS})
_BY_NAME: Mapping[str, RuleSet] = MappingProxyType({n: s for s in _SETS for n in (s.name, *s.aliases)})
DEFAULT_RULES = "current"


def rule_set_names() -> list[str]:
    """Every name `--quant-rules` accepts: dated names first, then aliases."""
    return [s.name for s in _SETS] + [a for s in _SETS for a in s.aliases]


def resolve_rules(name: str | RuleSet) -> RuleSet:
    """The rule set for a `--quant-rules` name or alias.

    Raises:
        UsageError: an unknown name; lists the valid ones with their commits.
    """
    if isinstance(name, RuleSet):
        return name
    found = _BY_NAME.get(str(name).strip().lower())
    if found is None:
        valid = "; ".join(f"{s.name}{' (' + ', '.join(s.aliases) + ')' if s.aliases else ''} = {s.commit[:8]}"
                          for s in _SETS)
        raise UsageError(f"unknown quantization rule set {name!r}; choose one of: {valid}")
    return found
