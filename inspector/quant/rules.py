"""llama-quantize's per-tensor type choice, for the current llama.cpp rules and the mid-2025 ("legacy") ones.

What llama.cpp does (facts read in ggml-org/llama.cpp `src/llama-quant.cpp`; no code copied):
- current = commit 007dbbf3fd17eefe9b47fee45f48f7ba5e62b714: `tensor_allows_quantization`, `tensor_get_category`,
  `llama_tensor_get_type_impl` (the mixture heuristics), `llama_tensor_get_type` (the wrapper: --token-embedding-type,
  --output-tensor-type, --tensor-type first match, --pure), `tensor_type_fallback`, `tensor_requires_imatrix`,
  `init_quantize_state_counters`;
- legacy = commit 8784689fee07c6daabf3487d24e1535534ef6e6b (Aug 2025): `llama_tensor_get_type` with the
  fallback inside, the never-quantize checks inline in `llama_model_quantize_impl`, --tensor-type applied only
  when no fallback happened (last match wins), --token-embedding-type/--output-tensor-type applied last;
- the 70B switch: `llm_type` set in each architecture's hparams loader (src/llama-model.cpp, models/*.cpp).
Reference with worked examples: ../shared/reference/quant-spec.md §3.

The rules are kept as tables where llama.cpp's logic is a lookup (categories, never-quantized names, fallbacks,
per-file-type bumps) and as small functions where it is a condition on layer indices.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..errors import QuantizeError
from .tables import (
    ATTN_K, ATTN_K_TYPES, ATTN_OUT, ATTN_OUT_EXPERT8_Q5_K, ATTN_OUT_FALCON_TYPES, ATTN_OUT_TYPES, ATTN_Q,
    ATTN_Q_TYPES, ATTN_V_BRANCH, BAILINGMOE3, FALCON, FALLBACKS, FFN_DOWN, FFN_GATE, FFN_UP, GLM5_NEXT,
    GLM5_NEXT_Q8_FLOOR, IMATRIX_TYPES, IQ2_FAMILY, LAST_RESORT, LEGACY_IMATRIX_TYPES, LEGACY_QKV_TYPES, OUTPUT,
    OUTPUT_Q5_K_FTYPES, Q8_FLOOR_KEEPS, QKV, SEVENTY_B, TOKEN_EMBD, TOKEN_EMBD_TYPES, allows_quantization,
    block_index, block_size, category, use_more_bits,
)
from .ftypes import FtypeInfo, is_quantized_type
from .rulesets import FAMILY_2026, RuleSet


# ---------------------------------------------------------------------------------------------------------------
# Model facts the rules read (from GGUF metadata, as llama.cpp's load_hparams does).
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFacts:
    arch: str
    n_layer_all: int  # {arch}.block_count: MTP/nextn blocks included; the ffn counters use it
    n_head: int  # layer 0 (per-layer arrays: the first element)
    n_head_kv: int
    n_expert: int  # {arch}.expert_count, 0 when absent
    n_nextn: int = 0

    @property
    def gqa(self) -> int:
        """hparams.n_gqa() for layer 0: integer division, 0 when n_head_kv is 0 (recurrent layers)."""
        return self.n_head // self.n_head_kv if self.n_head_kv else 0

    def is_70b(self, family: str) -> bool:
        spec = SEVENTY_B.get(self.arch)
        if spec is None:
            return False
        blocks, needs_gqa, needs_not_8 = spec
        # current llama.cpp switches on n_layer() = block_count - nextn; the 2025 code on block_count
        n_layer = self.n_layer_all - self.n_nextn if family == FAMILY_2026 else self.n_layer_all
        if n_layer != blocks or (needs_not_8 and self.n_expert == 8):
            return False
        return not needs_gqa or self.n_head != self.n_head_kv

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], arch: str | None, fallback_layers: int) -> "ModelFacts":
        arch = str(metadata.get("general.architecture") or arch or "")

        def first(key: str, default: int) -> int:
            value = metadata.get(f"{arch}.{key}")
            if isinstance(value, (list, tuple)):  # per-layer arrays: llama.cpp's n_head() etc. read layer 0
                value = value[0] if value else None
            if isinstance(value, bool) or not isinstance(value, int):
                return default
            return value

        n_layer_all = first("block_count", fallback_layers)
        n_head = first("attention.head_count", 0)
        return cls(
            arch=arch,
            n_layer_all=n_layer_all,
            n_head=n_head,
            n_head_kv=first("attention.head_count_kv", n_head),  # llama.cpp: optional, defaults to n_head
            n_expert=first("expert_count", 0),
            n_nextn=first("nextn_predict_layers", 0),
        )


# ---------------------------------------------------------------------------------------------------------------
# The chooser: one instance per prediction, visiting tensors in the loader's order (counters are state).
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Choice:
    target: str
    category: str
    quantizable: bool
    fallback_from: str | None = None  # the type the rules wanted before the shape fallback
    manual: bool = False  # set by --tensor-type / --token-embedding-type / --output-tensor-type
    needs_imatrix: bool = False


@dataclass(kw_only=True)
class ChooserState:
    """What both quantizers' choosers carry (llama-quant.cpp's and ik_llama.cpp's `quantize_state_impl` and
    `llama_model_quantize_params`): the user's overrides and the running counters of the tensors seen so far."""

    patterns: Sequence[tuple[Any, str]] = ()  # --tensor-type, in order
    output_tensor_type: str | None = None
    token_embedding_type: str | None = None
    pure: bool = False
    imatrix: bool = False
    leave_output: bool = False  # --leave-output-tensor
    i_attention_wv: int = 0
    i_ffn_down: int = 0
    i_ffn_gate: int = 0
    i_ffn_up: int = 0
    n_fallback: int = 0


@dataclass
class TypeChooser(ChooserState):
    """llama-quantize's per-tensor choice. Call `choose` for every tensor in the loader's order."""

    rules: RuleSet
    ftype: FtypeInfo
    facts: ModelFacts
    n_attention_wv: int
    tied_embeddings: bool
    _is_70b: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._is_70b = self.facts.is_70b(self.rules.family)
        self._glm5_next = self.rules.glm5_next and self.facts.arch == GLM5_NEXT

    @property
    def legacy(self) -> bool:
        return self.rules.legacy

    @property
    def family(self) -> str:
        return self.rules.family

    @property
    def default(self) -> str:
        assert self.ftype.default_type is not None
        return self.ftype.default_type

    # -- the wrapper ------------------------------------------------------------------------------------------
    def choose(self, name: str, ne: Sequence[int], current: str) -> Choice:
        cat = category(name, self.family)
        never = not allows_quantization(name, ne, self.family, glm5_next=self._glm5_next,
                                        leave_output=self.leave_output)
        if self.ftype.ftype is None or never:  # COPY, or never quantized
            return Choice(current, cat, False)
        choice = self._choose_legacy(name, ne, cat) if self.legacy else self._choose_current(name, ne, cat)
        choice.needs_imatrix = self._needs_imatrix(name, choice.target, current)
        return choice

    def _choose_current(self, name: str, ne: Sequence[int], cat: str) -> Choice:
        # Explicit embedding/output types win outright, without the shape fallback. From 2026-10 a --tensor-type
        # pattern that names per_layer_token_embd.weight takes that tensor instead.
        if self.token_embedding_type and cat == TOKEN_EMBD and not self._pattern_names_per_layer_embd(name):
            return Choice(self.token_embedding_type, cat, True, manual=True)
        if self.output_tensor_type and cat == OUTPUT:
            return Choice(self.output_tensor_type, cat, True, manual=True)
        if not is_quantized_type(self.default):  # F32/F16/BF16 files: no mixture, no --tensor-type
            return Choice(self.default, cat, True)
        wanted, manual = self.default, False
        for pattern, qtype in self.patterns:  # the first matching --tensor-type wins
            if pattern.search(name):
                wanted, manual = qtype, True
                break
        if not manual and not self.pure:
            wanted = self._impl(name, ne, cat, wanted)
        target, fell_back = self._fallback(name, ne, wanted)  # also for --pure and manual types
        return Choice(target, cat, True, wanted if fell_back else None, manual)

    def _choose_legacy(self, name: str, ne: Sequence[int], cat: str) -> Choice:
        target, manual, fell_back_from = self.default, False, None
        if not self.pure and is_quantized_type(self.default):
            wanted = self._impl(name, ne, cat, target)
            target, fell_back = self._fallback(name, ne, wanted)
            fell_back_from = wanted if fell_back else None
            if fell_back_from is None:  # --tensor-type applied only when the heuristic needed no fallback
                for pattern, qtype in self.patterns:  # every match applies: the last one wins
                    if pattern.search(name):
                        target, manual = qtype, True
        if self.token_embedding_type and name == "token_embd.weight":
            target, manual = self.token_embedding_type, True
        if self.output_tensor_type and name == "output.weight":
            target, manual = self.output_tensor_type, True
        return Choice(target, cat, True, fell_back_from, manual)

    # -- fallback ----------------------------------------------------------------------------------------------
    def _fallback(self, name: str, ne: Sequence[int], target: str) -> tuple[str, bool]:
        """(type, fell back?): the target, or its fallback when ne0 is not a multiple of its block size."""
        ncols = ne[0] if ne else 1
        if ncols % block_size(target) == 0:
            return target, False
        self.n_fallback += 1
        fallback = FALLBACKS[self.family].get(target)
        if fallback is None and self.rules.small_block_keeps_target and block_size(target) <= 32:
            fallback = target  # 2026-10: no smaller block to demote to; the ne0 % 32 check below writes F16
        if fallback is None:
            raise QuantizeError(
                f"llama-quantize has no fallback for {target} and would stop at tensor {name!r}: its row length "
                f"{ncols} is not a multiple of {target}'s block size {block_size(target)}",
                hint="choose another file type, or give that tensor a type with --tensor-type")
        return (fallback if ncols % block_size(fallback) == 0 else LAST_RESORT), True

    # -- the mixture heuristics --------------------------------------------------------------------------------
    def _impl(self, name: str, ne: Sequence[int], cat: str, new: str) -> str:
        ft = self.ftype.name
        facts = self.facts
        if self._glm5_next and any(s in name for s in GLM5_NEXT_Q8_FLOOR):
            return new if new in Q8_FLOOR_KEEPS else "Q8_0"  # returns before the counters move
        tied_here = self.tied_embeddings and (name == "token_embd.weight" if self.legacy else cat == TOKEN_EMBD)
        if cat == OUTPUT or tied_here:
            return self._output_type(ne, new)
        if ft == "MXFP4_MOE":  # 3-D (expert) tensors MXFP4, everything else Q8_0
            expert_only = not self.legacy and facts.arch == BAILINGMOE3
            is_3d = len(ne) > 2 and ne[2] > 1
            if is_3d and (not expert_only or cat in (FFN_UP, FFN_GATE, FFN_DOWN)):
                return "MXFP4"
            return "Q8_0"
        if cat == TOKEN_EMBD:
            if self.token_embedding_type:  # current: unreachable (the wrapper returned); legacy sets it here too
                return self.token_embedding_type
            return TOKEN_EMBD_TYPES[self.family].get(ft, new)
        attn_v_like = cat in ATTN_V_BRANCH[self.family]
        if ft in IQ2_FAMILY:
            return self._iq2_family(ft, cat, attn_v_like, new)
        if attn_v_like:
            return self._attn_v(ft, new)
        if cat == ATTN_K:
            return "Q8_0" if facts.n_expert == 8 else ATTN_K_TYPES.get(ft, new)
        if cat == ATTN_Q:
            return ATTN_Q_TYPES.get(ft, new)
        if cat == FFN_DOWN:
            i, n = self._layer_info(self.i_ffn_down, name)
            self.i_ffn_down += 1
            return self._ffn_down(ft, i, n, new)
        if cat == ATTN_OUT:
            if facts.arch == FALCON:
                return ATTN_OUT_FALCON_TYPES.get(ft, new)
            if facts.n_expert == 8:
                return "Q5_K" if ft in ATTN_OUT_EXPERT8_Q5_K else new
            return ATTN_OUT_TYPES.get(ft, new)
        if cat == QKV:  # legacy only (current sends attn_qkv through the attn_v branch)
            return LEGACY_QKV_TYPES.get(ft, new)
        if cat in (FFN_GATE, FFN_UP):
            counter = "i_ffn_gate" if cat == FFN_GATE else "i_ffn_up"
            i, n = self._layer_info(getattr(self, counter), name)
            setattr(self, counter, getattr(self, counter) + 1)
            if ft == "IQ3_XS" and n // 8 <= i < 7 * n // 8:
                return "IQ3_XXS"
            return new
        return new

    def _pattern_names_per_layer_embd(self, name: str) -> bool:
        return (self.rules.per_layer_embd_by_pattern and name == "per_layer_token_embd.weight"
                and any(pattern.search(name) for pattern, _ in self.patterns))

    def _output_type(self, ne: Sequence[int], new: str) -> str:
        if self.output_tensor_type:
            return self.output_tensor_type
        ft = self.ftype.name
        if ft == "MXFP4_MOE":
            return "Q8_0"
        if self.facts.arch == FALCON or (ne[0] if ne else 1) % block_size(new):
            return "Q8_0"  # not a Q5_0-style fallback: output goes to Q8_0 when the default block does not fit
        if ft in OUTPUT_Q5_K_FTYPES:
            return "Q5_K"
        return "Q6_K" if new != "Q8_0" else new

    def _iq2_family(self, ft: str, cat: str, attn_v_like: bool, new: str) -> str:
        facts = self.facts
        iq3_s_variant = ft in ("IQ2_S", "IQ2_M")
        if attn_v_like:
            self.i_attention_wv += 1
            if facts.gqa >= 4 or facts.n_expert >= 4:
                return "Q4_K"
            return "IQ3_S" if iq3_s_variant else "Q2_K"
        if facts.n_expert == 8 and cat == ATTN_K:
            return "Q4_K"
        if cat == FFN_DOWN:  # a plain counter over every ffn_down* tensor, never the parsed layer
            bump = self.i_ffn_down < self.facts.n_layer_all // 8
            self.i_ffn_down += 1
            if bump:
                return "IQ3_S" if iq3_s_variant else "Q2_K"
            return new
        if cat == ATTN_OUT:
            if facts.n_expert == 8:
                return "Q5_K"
            if ft in ("IQ1_S", "IQ1_M"):
                return "IQ2_XXS"
            return "IQ3_S" if iq3_s_variant else new
        return new

    def _attn_v(self, ft: str, new: str) -> str:
        i, n, gqa4 = self.i_attention_wv, self.n_attention_wv, self.facts.gqa >= 4
        self.i_attention_wv += 1
        choice: dict[str, Callable[[], str]] = {
            "Q2_K": lambda: "Q4_K" if gqa4 else "Q3_K",
            "Q2_K_S": lambda: "Q4_K" if gqa4 else new,
            "IQ3_XXS": lambda: "Q4_K" if gqa4 else ("IQ3_XXS" if self.imatrix else "IQ3_S"),
            "IQ3_XS": lambda: "Q4_K" if gqa4 else new,
            "IQ3_S": lambda: "Q4_K" if gqa4 else new,
            "IQ3_M": lambda: "Q4_K",
            "Q3_K_M": lambda: "Q5_K" if i < 2 else "Q4_K",
            "Q3_K_L": lambda: "Q5_K",
            "IQ4_NL": lambda: "Q5_K" if gqa4 else new,
            "IQ4_XS": lambda: "Q5_K" if gqa4 else new,
            "Q4_K_M": lambda: "Q6_K" if use_more_bits(i, n) else new,
            "Q5_K_M": lambda: "Q6_K" if use_more_bits(i, n) else new,
            "Q4_K_S": lambda: "Q5_K" if i < 4 else new,
        }
        result = choice[ft]() if ft in choice else new
        if self._is_70b and result in ("Q3_K", "Q4_K"):  # 8 heads share attn_v: cheap to give it more bits
            result = "Q5_K"
        if self.facts.n_expert == 8:
            result = "Q8_0"
        return result

    def _ffn_down(self, ft: str, i: int, n: int, new: str) -> str:
        falcon, e8, umb = self.facts.arch == FALCON, self.facts.n_expert == 8, use_more_bits(i, n)
        first_8th, first_16th = i < n // 8, i < n // 16
        rules: dict[str, Callable[[], str]] = {
            "Q2_K": lambda: "Q3_K",
            "Q2_K_S": lambda: "Q4_K" if first_8th else new,
            "IQ3_XXS": lambda: new if self.imatrix else ("Q4_K" if first_8th else "Q3_K"),
            "Q3_K_M": lambda: "Q5_K" if first_16th else ("Q4_K" if not falcon or umb else "Q3_K"),
            "IQ3_M": lambda: "Q4_K" if first_8th or (e8 and umb) else new,
            "Q3_K_L": lambda: "Q4_K" if falcon else "Q5_K",
            "Q4_K_M": lambda: (("Q6_K" if first_16th else "Q5_K" if umb else "Q4_K") if falcon
                               else ("Q6_K" if umb else new)),
            "IQ4_NL": lambda: "Q5_K" if first_8th and not self.imatrix else new,
            "IQ4_XS": lambda: "Q5_K" if first_8th and not self.imatrix else new,
            "Q5_K_M": lambda: "Q6_K" if umb else new,
            "Q4_K_S": lambda: "Q5_K" if not falcon and first_8th else new,
            # with an imatrix, Q4_0/Q5_0 guard the first ffn_down layers with the _1 variants
            "Q4_0": lambda: "Q4_1" if self.imatrix and first_8th else new,
            "Q5_0": lambda: "Q5_1" if self.imatrix and first_8th else new,
        }
        return rules[ft]() if ft in rules else new

    def _layer_info(self, counter: int, name: str) -> tuple[int, int]:
        return layer_info(self.facts, counter, name, "llama-quantize")

    def _needs_imatrix(self, name: str, target: str, current: str) -> bool:
        embd_or_out = name in ("token_embd.weight", "per_layer_token_embd.weight", "output.weight")
        ft = self.ftype.name
        if not self.legacy:
            if embd_or_out:
                return False
            return target in IMATRIX_TYPES or (target == "Q2_K" and ft == "Q2_K_S")
        if target == current:  # legacy checked only while actually quantizing
            return False
        if target in LEGACY_IMATRIX_TYPES:
            return True
        if target == "IQ1_M":
            return name not in ("token_embd.weight", "output.weight")
        return target == "Q2_K" and ft == "Q2_K_S" and name != "token_embd.weight"


def layer_info(facts: ModelFacts, counter: int, name: str, quantizer: str) -> tuple[int, int]:
    """(layer, n_layer) of a tensor the layer rules look at: the running counter for dense models, the parsed blk.N
    for MoE (n_expert > 1), as llama-quant.cpp's `layer_info` (and ik_llama.cpp's) decides."""
    n = facts.n_layer_all
    if max(1, facts.n_expert) <= 1:
        return counter, n
    layer = block_index(name)
    if layer is None:
        raise QuantizeError(f"{quantizer} cannot determine the layer of tensor {name!r} (MoE models need blk.N)")
    if not 0 <= layer < n:
        raise QuantizeError(f"{quantizer} rejects tensor {name!r}: layer {layer} is outside [0, {n}) "
                            f"({facts.arch}.block_count is {n})")
    return layer, n
