"""ik_llama.cpp's llama-quantize: its file types and its per-tensor type choice (`--quant-rules ik_llama`).

Facts from ikawrakow/ik_llama.cpp at 8337e4cd3861406fc04e0854b1409cd1b027fbc9 (2026-08-15), read, not copied:
src/llama-quantize.cpp `llama_tensor_get_type`, `change_type_if_necessary`, `llama_model_quantize_internal` (the
default type per file type, the never-quantized checks, the order of the overrides), include/llama.h (file type
ids), examples/quantize/quantize.cpp (names), src/llama-hparams.cpp (the model types the rules test),
src/llama-model-loader.h (tensors are visited in file order: `weights` is a vector filled file by file).

Where it differs from mainline llama.cpp (rules.py):
- tensors are visited and written in the input's file order (no loader sort);
- never quantized: a name not ending in "weight", fewer than 2 dims, `_norm.weight`, `ffn_gate_inp.weight`,
  position/token-type embeddings, `ssm_conv1d`, `ssm_x.weight`, `ssm_dt.weight`, `attn_rel_b.weight`, integer
  tensors — nothing else (altup, laurel, the DSA indexer … are quantized);
- categories are substring tests in this order: `attn_v.weight`, `attn_k` (so `attn_k_b`, `attn_kv_a_mqa` and
  `attn_kv_b` too), `attn_q` (`attn_q_a`, `attn_q_b` too), `ffn_down`, `attn_output.weight`, `attn_qkv.weight`,
  `ffn_gate`, `ffn_up`; only `attn_v` and `attn_qkv` count as attention-V tensors;
- 4 or more experts (not 8) send attn_v and attn_k to Q8_0 and attn_output to Q5_K; GQA ≥ 2 already bumps several
  IQ choices, GQA ≥ 4 bumps attn_v of every other file type one step; a 70B model's attn_v is the default type
  bumped (Q3_K/Q4_K → Q5_K, IQ3_K → IQ5_K) and nothing else; Q5_K_S/IQ5_K(S) use the vocabulary size and the 8B/70B
  model types;
- the shape fallback only checks 256-block types: IQ* and Q2_K/Q3_K → IQ4_NL, Q4_K/IQ4_K/IQ5_KS → Q5_0,
  Q5_K/IQ5_K → Q6_0, Q6_K/IQ6_K → Q8_0, anything else stops; there is no F16 last resort;
- `--tensor-type` patterns act as ik's `--custom-q` (the first match wins, after the mixture, then the fallback);
  `--token-embedding-type` / `--output-tensor-type` apply last to the exact names, without the fallback.
Row-interleaved (`_R4`, `_R8`, `_R16`) file types and ik's per-tensor options (`--attn-v-type` …) are not modelled.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from ..errors import QuantizeError, UsageError
from ..formats.ggml_types import type_by_name
from .ftypes import FtypeInfo
from .rules import ChooserState, Choice, ModelFacts, layer_info
from .tables import ggml_n_dims, use_more_bits

IK_COMMIT = "8337e4cd3861406fc04e0854b1409cd1b027fbc9"

# (name, llama_ftype id in ik's include/llama.h, default ggml type); aliases as quantize.cpp lists them.
_IK_FTYPES: tuple[tuple[str, int, str | None], ...] = (
    ("F32", 0, "F32"), ("F16", 1, "F16"), ("BF16", 32, "BF16"),
    ("Q4_0", 2, "Q4_0"), ("Q4_1", 3, "Q4_1"), ("Q5_0", 8, "Q5_0"), ("Q5_1", 9, "Q5_1"), ("Q6_0", 135, "Q6_0"),
    ("Q8_0", 7, "Q8_0"), ("Q8_KV", 149, "Q8_KV"), ("MXFP4", 38, "MXFP4"),
    ("Q2_K", 10, "Q2_K"), ("Q2_K_S", 21, "Q2_K"), ("Q3_K_S", 11, "Q3_K"), ("Q3_K_M", 12, "Q3_K"),
    ("Q3_K_L", 13, "Q3_K"), ("Q4_K_S", 14, "Q4_K"), ("Q4_K_M", 15, "Q4_K"), ("Q5_K_S", 16, "Q5_K"),
    ("Q5_K_M", 17, "Q5_K"), ("Q6_K", 18, "Q6_K"),
    ("IQ1_S", 24, "IQ1_S"), ("IQ1_M", 31, "IQ1_M"), ("IQ2_XXS", 19, "IQ2_XXS"), ("IQ2_XS", 20, "IQ2_XS"),
    ("IQ2_S", 28, "IQ2_XS"), ("IQ2_M", 29, "IQ2_S"), ("IQ3_XXS", 23, "IQ3_XXS"), ("IQ3_XS", 22, "IQ3_S"),
    ("IQ3_S", 26, "IQ3_S"), ("IQ3_M", 27, "IQ3_S"), ("IQ4_NL", 25, "IQ4_NL"), ("IQ4_XS", 30, "IQ4_XS"),
    ("IQ1_BN", 136, "IQ1_BN"), ("IQ2_BN", 137, "IQ2_BN"),
    ("IQ2_K", 138, "IQ2_K"), ("IQ3_K", 139, "IQ3_K"), ("IQ4_K", 140, "IQ4_K"), ("IQ5_K", 141, "IQ5_K"),
    ("IQ6_K", 142, "IQ6_K"), ("IQ4_KS", 145, "IQ4_KS"), ("IQ3_KL", 146, "IQ3_K"), ("IQ2_KS", 147, "IQ2_KS"),
    ("IQ4_KSS", 148, "IQ4_KSS"), ("IQ5_KS", 150, "IQ5_KS"), ("IQ2_KT", 151, "IQ2_KT"), ("IQ3_KT", 152, "IQ3_KT"),
    ("IQ4_KT", 153, "IQ4_KT"), ("IQ3_KS", 154, "IQ3_KS"), ("IQ2_KL", 155, "IQ2_KL"), ("IQ1_KT", 156, "IQ1_KT"),
    ("COPY", -1, None),
)
_IK_ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}
IK_FTYPES: Mapping[str, FtypeInfo] = MappingProxyType({
    name: FtypeInfo(name, None if ftype < 0 else ftype, default, tuple(a for a, n in _IK_ALIASES.items() if n == name),
                    ("ik",))
    for name, ftype, default in _IK_FTYPES})


def resolve_ik_ftype(name: str) -> FtypeInfo:
    """An ik_llama.cpp file type by name, alias or id. Raises UsageError (row-interleaved types are named)."""
    key = name.strip().upper()
    key = _IK_ALIASES.get(key, key)
    info = IK_FTYPES.get(key)
    if info is None and key.isdigit():
        info = next((i for i in IK_FTYPES.values() if i.ftype == int(key)), None)
    if info is None:
        why = ("ik_llama.cpp's row-interleaved (repacked) file types are not modelled"
               if key.endswith(("_R4", "_R8", "_R16")) else "unknown ik_llama.cpp file type")
        raise UsageError(f"{why} {name!r}; valid names: {', '.join(IK_FTYPES)}")
    return info


# ---------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------
_QK_K_TYPES = frozenset({"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS", "IQ2_XS", "IQ2_XXS", "IQ2_S", "IQ3_XXS",
                         "IQ1_S", "IQ3_S", "IQ1_M", "IQ4_K", "IQ2_K", "IQ5_K", "IQ3_K", "IQ6_K", "IQ4_KS", "IQ2_KS",
                         "IQ4_KSS", "IQ3_KS", "IQ2_KT", "IQ3_KT", "IQ4_KT", "IQ5_KS", "IQ2_KL", "IQ1_KT"})
_FALLBACK = {
    **{t: "IQ4_NL" for t in ("IQ2_XXS", "IQ2_XS", "IQ2_KS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M", "Q2_K",
                             "Q3_K", "IQ2_K", "IQ2_KL", "IQ3_KS", "IQ3_K", "IQ4_KSS", "IQ4_KS", "IQ1_KT", "IQ2_KT",
                             "IQ3_KT", "IQ4_KT", "IQ4_XS")},
    **{t: "Q5_0" for t in ("IQ4_K", "IQ5_KS", "Q4_K")},
    **{t: "Q6_0" for t in ("IQ5_K", "Q5_K")},
    **{t: "Q8_0" for t in ("IQ6_K", "Q6_K")},
}
_NEVER_SUBSTRINGS = ("_norm.weight", "ffn_gate_inp.weight", "ssm_conv1d", "ssm_x.weight", "ssm_dt.weight",
                     "attn_rel_b.weight")
_INT_TYPES = frozenset({"I8", "I16", "I32", "I64"})

_OUT_Q5K = frozenset({"IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M", "IQ2_K", "IQ3_K", "IQ2_KS",
                      "IQ3_KS", "IQ2_KL", "IQ2_KT", "IQ3_KT", "IQ1_KT"})  # output: IQ4_K when tied, else Q5_K
_OUT_IQ5K_TIED = frozenset({"IQ3_S", "IQ3_M", "IQ3_KL", "IQ4_XS", "IQ4_KS", "IQ4_KSS"})
_OUT_KEEP = frozenset({"Q8_0", "IQ6_K", "Q8_KV"})
_IQ2_FAMILY = frozenset({"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M", "IQ2_KS"})
_ATTN_OUT_MOE_Q5K = frozenset({"Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M",
                               "IQ3_S", "IQ3_M", "IQ4_XS", "IQ4_K", "IQ4_KSS", "IQ4_KS", "IQ5_KS", "IQ2_K", "IQ3_K",
                               "IQ3_KL", "IQ3_KT", "IQ3_KS"})
_GQA4_BUMP = {"Q2_K": "IQ3_S", "IQ3_XXS": "IQ3_S", "Q3_K": "Q4_K", "IQ3_S": "Q4_K", "IQ3_K": "IQ4_K",
              "IQ3_KS": "IQ4_KS", "IQ2_KL": "IQ4_KS", "Q4_K": "Q5_K", "IQ4_XS": "Q5_K", "IQ4_NL": "Q5_K",
              "IQ4_K": "IQ5_K", "IQ4_KS": "IQ5_K", "Q5_K": "Q6_K", "IQ5_K": "IQ6_K", "IQ5_KS": "IQ6_K"}
_IMATRIX_TYPES = frozenset({"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M", "IQ1_KT", "IQ2_KT"})


def ik_model_type(arch: str, metadata: Mapping[str, Any], facts: ModelFacts) -> str | None:
    """The model types ik's rules test ("8B", "70B"), as src/llama-hparams.cpp sets them for these archs."""
    n, vocab = facts.n_layer_all, ik_vocab_size(arch, metadata)
    embd = metadata.get(f"{arch}.embedding_length")
    if arch == "llama" and facts.n_expert != 8:
        if n == 32 and vocab != 49152 and vocab >= 40000 or n == 36:
            return "8B"
        if n == 80 and facts.n_head != facts.n_head_kv:
            return "70B"
    if arch in ("deci", "qwen2", "olmo") and n == 80:
        return "70B"
    if arch in ("qwen3", "qwen3vl") and n == 36 and embd != 2560:
        return "8B"
    if arch == "cohere2" and n == 32:
        return "8B"
    return None


def ik_vocab_size(arch: str, metadata: Mapping[str, Any]) -> int:
    value = metadata.get(f"{arch}.vocab_size")
    if isinstance(value, int):
        return value
    tokens = metadata.get("tokenizer.ggml.tokens")
    count = getattr(tokens, "count", None)
    if isinstance(count, int):
        return count
    return len(tokens) if isinstance(tokens, (list, tuple)) else 0


# ---------------------------------------------------------------------------------------------------------------
# The chooser
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class IkTypeChooser(ChooserState):
    """ik_llama.cpp's per-tensor choice. Call `choose` for every tensor in the input's file order."""

    ftype: FtypeInfo
    facts: ModelFacts
    model_type: str | None
    n_vocab: int
    n_attention_wv: int
    has_output: bool
    _falcon: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._falcon = self.facts.arch == "falcon"

    @property
    def default(self) -> str:
        assert self.ftype.default_type is not None
        return self.ftype.default_type

    def allows(self, name: str, ne: Sequence[int], current: str) -> bool:
        if current in _INT_TYPES or not name.endswith("weight") or ggml_n_dims(ne) < 2:
            return False
        if self.leave_output and name == "output.weight":
            return False
        if name in ("position_embd.weight", "token_types.weight"):
            return False
        return not any(s in name for s in _NEVER_SUBSTRINGS)

    def choose(self, name: str, ne: Sequence[int], current: str) -> Choice:
        if self.ftype.ftype is None or not self.allows(name, ne, current):
            return Choice(current, "ik", False)
        target, manual, fell_back = self.default, False, None
        if self.pure:
            target, fell_back = self._fallback(name, ne, target)
        elif _is_quantized(self.default):
            target, manual, fell_back = self._get_type(name, ne)
        if self.token_embedding_type and name == "token_embd.weight":
            target, manual = self.token_embedding_type, True
        if self.output_tensor_type and name == "output.weight":
            target, manual = self.output_tensor_type, True
        choice = Choice(target, "ik", True, fell_back, manual)
        choice.needs_imatrix = (name not in ("token_embd.weight", "output.weight") and target != current
                                and (target in _IMATRIX_TYPES or (target == "Q2_K" and self.ftype.name == "Q2_K_S")))
        return choice

    # -- llama_tensor_get_type --------------------------------------------------------------------------------
    def _get_type(self, name: str, ne: Sequence[int]) -> tuple[str, bool, str | None]:
        new = self._mixture(name, ne, self.default)
        manual = False
        for pattern, qtype in self.patterns:  # --custom-q: the first matching rule, after the mixture
            if pattern.search(name):
                new, manual = qtype, True
                break
        target, fell_back = self._fallback(name, ne, new)
        return target, manual, fell_back

    def _fallback(self, name: str, ne: Sequence[int], target: str) -> tuple[str, str | None]:
        """change_type_if_necessary: 256-block types whose row does not fit; other types are not checked here."""
        ncols = ne[0] if ne else 1
        block = 64 if target in ("IQ1_BN", "IQ2_BN") else 256 if target in _QK_K_TYPES else 0
        if block and ncols % block:
            fallback = _FALLBACK.get(target)
            if fallback is None:
                raise QuantizeError(f"ik_llama.cpp's llama-quantize stops at tensor {name!r}: 'Unsupported tensor "
                                    f"size' (row length {ncols} does not fit {target})")
            self.n_fallback += 1
            return fallback, target
        return target, None

    def _mixture(self, name: str, ne: Sequence[int], new: str) -> str:  # ik's own branch order
        ft, f = self.ftype.name, self.facts
        gqa, experts = f.gqa, f.n_expert
        if name == "output.weight" or (not self.has_output and name == "token_embd.weight"):
            return self._output(ne, new)
        if name in ("token_embd.weight", "per_layer_token_embd.weight"):
            if ft in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
                return "Q2_K"
            if ft in ("IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_KT"):
                return "IQ3_S"
            return "IQ4_NL" if ft in ("IQ1_BN", "IQ2_BN") else new
        if ft == "IQ2_KT":
            return self._iq2_kt(name, new)
        if ft in _IQ2_FAMILY:
            return self._iq2_family(ft, name, new)
        if "attn_v.weight" in name:
            result = self._attn_v(ft, new)
            self.i_attention_wv += 1
            return result
        if "attn_k" in name:
            if experts >= 4:
                return "Q8_0"
            return {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}.get(ft, new)
        if "attn_q" in name:
            if ft in ("IQ3_XS", "IQ3_XXS"):
                return "IQ3_XXS" if ft == "IQ3_XS" else "IQ2_S"
            if self._big_vocab_8b_70b() and ft in ("Q5_K_S", "IQ5_K", "IQ5_KS"):
                return {"Q5_K_S": "Q4_K", "IQ5_K": "IQ4_K", "IQ5_KS": "IQ4_KS"}[ft]
            return new
        if "ffn_down" in name:
            i, n = self._layer_info(self.i_ffn_down, name)
            self.i_ffn_down += 1
            return self._ffn_down(ft, i, n, new)
        if "attn_output.weight" in name:
            if self._falcon:
                return "Q4_K" if ft == "Q3_K_L" else new
            if experts >= 4:
                return "Q5_K" if ft in _ATTN_OUT_MOE_Q5K else "IQ4_KS" if ft == "IQ2_KL" else new
            if ft == "IQ3_KT":
                return "IQ3_K" if gqa >= 4 else new
            return {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K", "IQ3_M": "IQ4_K",
                    "IQ2_K": "IQ3_K", "IQ3_KL": "IQ4_KS"}.get(ft, new)
        if "attn_qkv.weight" in name:
            return {"Q3_K_M": "Q4_K", "Q3_K_L": "Q4_K", "IQ3_M": "IQ4_K", "Q4_K_M": "Q5_K",
                    "Q5_K_M": "Q6_K"}.get(ft, new)
        for part, counter in (("ffn_gate", "i_ffn_gate"), ("ffn_up", "i_ffn_up")):
            if part in name:
                i, n = self._layer_info(getattr(self, counter), name)
                setattr(self, counter, getattr(self, counter) + 1)
                if ft == "IQ3_XS" and n // 8 <= i < 7 * n // 8:
                    return "IQ3_XXS"
                if ft == "IQ3_KL" and use_more_bits(i, n):
                    return "IQ4_KS"
                return new
        return new

    def _output(self, ne: Sequence[int], new: str) -> str:
        if self.output_tensor_type:
            return self.output_tensor_type
        ft = self.ftype.name
        if self._falcon or (ne[0] if ne else 1) % 256:
            return "Q8_0"
        if ft in _OUT_Q5K:
            return "IQ4_K" if not self.has_output else "Q5_K"
        if ft in _OUT_IQ5K_TIED and not self.has_output:
            return "IQ5_K"
        return new if new in _OUT_KEEP else "Q6_K"

    def _iq2_kt(self, name: str, new: str) -> str:
        f = self.facts
        if "attn_v.weight" in name:
            self.i_attention_wv += 1
            return "IQ4_K" if f.n_expert >= 4 or f.gqa >= 4 else "IQ3_K" if f.gqa >= 2 else "Q2_K"
        if f.n_expert >= 8 and "attn_k" in name:
            return "Q4_K"
        if f.n_expert >= 8 and any(p in name for p in ("blk.0.ffn_down", "blk.0.ffn_gate", "blk.0.ffn_up")):
            return "IQ3_K"
        if f.n_expert >= 8 and "attn_q" in name:
            return "Q4_K"
        if "attn_qkv.weight" in name:
            return "IQ3_K"
        if "_shexp.weight" in name:
            return "IQ4_K"
        if "ffn_down" in name:
            i, n = self._layer_info(self.i_ffn_down, name)
            self.i_ffn_down += 1
            return "IQ3_K" if i < n // 8 else new
        if "attn_output.weight" in name:
            return "Q5_K" if f.n_expert >= 4 else "IQ3_K"
        return new

    def _iq2_family(self, ft: str, name: str, new: str) -> str:
        f = self.facts
        iq2_sm = ft in ("IQ2_S", "IQ2_M")
        if "attn_v.weight" in name:
            self.i_attention_wv += 1
            if f.gqa >= 4 or f.n_expert >= 4:
                return "IQ4_K"
            if f.gqa >= 2 or f.n_expert >= 2:
                return "IQ3_K"
            return "IQ3_S" if iq2_sm else "Q2_K"
        if f.n_expert >= 8 and ("attn_k" in name or "attn_q" in name):
            return "Q4_K"
        if "attn_qkv.weight" in name:
            return "IQ3_XXS" if iq2_sm else "IQ2_K"
        if "ffn_down" in name:  # a plain counter, never the parsed layer
            bump = self.i_ffn_down < self.facts.n_layer_all // 8
            self.i_ffn_down += 1
            return ("IQ3_S" if iq2_sm else "Q2_K") if bump else new
        if "attn_output.weight" in name:
            if f.n_expert >= 4:
                return "Q5_K"
            if ft in ("IQ1_S", "IQ1_M"):
                return "IQ2_K"
            return "IQ3_S" if iq2_sm else new
        return new

    def _attn_v(self, ft: str, new: str) -> str:  # one branch per file type, in ik's order
        f, i, n = self.facts, self.i_attention_wv, self.n_attention_wv
        gqa = f.gqa
        if f.n_expert >= 4:
            return "Q8_0"
        if self.model_type == "70B":  # the default type bumped, and no other rule
            return "Q5_K" if new in ("Q3_K", "Q4_K") else "IQ5_K" if new == "IQ3_K" else new
        rules = (
            (ft == "Q2_K", lambda: "Q4_K" if gqa >= 4 else "Q3_K"),
            (ft == "IQ2_K", lambda: "IQ4_K" if gqa >= 2 else "IQ3_K"),
            (ft == "Q2_K_S" and gqa >= 4, lambda: "Q4_K"),
            (ft == "IQ3_XXS", lambda: "Q4_K" if gqa >= 4 else "IQ3_K" if gqa >= 2
             else "IQ3_XXS" if self.imatrix else "IQ3_S"),
            (ft == "IQ3_KT", lambda: "IQ4_K" if gqa >= 4 else "IQ3_K"),
            (ft == "IQ4_KT", lambda: "IQ5_K" if gqa >= 4 else "IQ4_K"),
            (ft in ("IQ3_XS", "IQ3_S") and gqa >= 2, lambda: "IQ4_K"),
            (ft == "IQ3_K" and gqa >= 2, lambda: "IQ4_K"),
            (ft in ("IQ3_KS", "IQ2_KL") and gqa >= 2, lambda: "IQ4_KS"),
            (ft in ("IQ3_KL", "IQ3_M"), lambda: "IQ5_K" if gqa >= 2 else "IQ4_K"),
            (ft == "Q3_K_M", lambda: "Q5_K" if i < 2 else "Q4_K"),
            (ft == "Q3_K_L", lambda: "Q5_K"),
            (ft in ("IQ4_NL", "IQ4_XS", "IQ4_KS", "IQ4_KSS", "IQ4_K") and gqa >= 2, lambda: "IQ5_K"),
            (ft in ("Q4_K_M", "Q5_K_M") and use_more_bits(i, n), lambda: "Q6_K"),
            (ft == "Q4_K_S" and i < 4, lambda: "Q5_K"),
            (ft == "Q5_K_S", lambda: "Q6_K" if self._big_vocab_8b_70b() else new),
            (ft in ("IQ5_K", "IQ5_KS"), lambda: "IQ6_K" if self._big_vocab_8b_70b() else new),
            (gqa >= 4 and f.arch != "dflash-draft", lambda: _GQA4_BUMP.get(new, new)),
        )
        return next((pick() for cond, pick in rules if cond), new)

    def _ffn_down(self, ft: str, i: int, n: int, new: str) -> str:  # ik's own branch order
        falcon, umb, imx = self._falcon, use_more_bits(i, n), self.imatrix
        rules = (
            (ft == "Q2_K", lambda: "Q3_K"),
            (ft == "Q2_K_S", lambda: "Q4_K" if i < n // 8 else new),
            (ft == "IQ3_XXS" and not imx, lambda: "Q4_K" if i < n // 8 else "Q3_K"),
            (ft == "IQ3_KT" and not imx, lambda: "IQ4_K" if i < n // 8 else "IQ3_K"),
            (ft == "Q3_K_M", lambda: "Q5_K" if i < n // 16 else "Q4_K" if not falcon or umb else "Q3_K"),
            (ft == "IQ3_M" and (i < n // 8 or (self.facts.n_expert >= 4 and umb)), lambda: "IQ4_K"),
            (ft == "Q3_K_L", lambda: "Q4_K" if falcon else "Q5_K"),
            (ft == "IQ3_KL", lambda: "IQ4_KS" if umb else "IQ3_K"),
            (ft == "Q4_K_M", lambda: ("Q6_K" if i < n // 16 else "Q5_K" if umb else "Q4_K") if falcon
             else ("Q6_K" if umb else new)),
            (i < n // 8 and not imx and ft in ("IQ4_NL", "IQ4_XS", "IQ4_KS", "IQ4_KSS"), lambda: "Q5_K"),
            (ft == "Q5_K_M" and umb, lambda: "Q6_K"),
            (ft == "Q4_K_S" and not falcon and i < n // 8, lambda: "Q5_K"),
            (ft in ("Q4_0", "Q5_0") and imx and i < n // 8, lambda: "Q4_1" if ft == "Q4_0" else "Q5_1"),
        )
        return next((pick() for cond, pick in rules if cond), new)

    def _big_vocab_8b_70b(self) -> bool:
        return self.n_vocab >= 127999 and self.model_type in ("8B", "70B")

    def _layer_info(self, counter: int, name: str) -> tuple[int, int]:
        return layer_info(self.facts, counter, name, "ik_llama.cpp's llama-quantize")


def _is_quantized(type_name: str) -> bool:
    return type_name.upper() not in ("F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64")


def resolve_ik_type(name: str, what: str) -> str:
    """A type name (any case) ik_llama.cpp's llama-quantize accepts: mainline's and its own (UsageError else)."""
    gtype = type_by_name(name.strip())
    if gtype is None:
        raise UsageError(f"{what}: unknown ggml type {name!r} (mainline or ik_llama.cpp)")
    return str(gtype.name).upper()


def ik_type(name: str) -> Any:
    """A ggml type ik_llama.cpp knows (mainline ones included), by name."""
    gtype = type_by_name(name)
    if gtype is None:
        raise KeyError(name)
    return gtype
