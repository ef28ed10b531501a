"""Optional conformance with llama.cpp's own quantizer: tiny generated models of several architectures are
quantized with the real `llama-quantize`, and every tensor's type, the tensor order and offsets, the KV names, the
data offset and the file size must be the ones `inspector.quant.predict` gives. Where llama-quantize refuses (no
fallback for a shape, requantizing without --allow-requantize, an explicit type that does not fit), the prediction
must raise QuantizeError naming the tensor where llama.cpp stopped.

Runs only when `LLAMA_QUANTIZE=/path/to/llama-quantize` is set (build it from the llama.cpp source the
`llama-cpp-python` sdist vendors: `cmake --build build --target llama-quantize`); skipped otherwise.

The models are real GGUFs written with gguf-py (random F16 matrices, F32 norms, biases and routers, a small
SentencePiece-style vocabulary), 2 to 7 MB each, with the KVs llama.cpp's hparams loader requires for the
architecture. Their shapes are chosen to exercise the rules: GQA 4 and GQA 2, tied and untied embeddings, rows
that are not a multiple of 256 (shape fallbacks) or of 32 (F16), 3-D MLA tensors, the older 2-D attn_kv_b, 4 and 8
experts, shared experts, a dense lead block, MXFP4 experts as the gpt-oss converter keeps them. File types that
need an importance matrix (IQ1/IQ2, IQ3_XXS, IQ3_XS, Q2_K_S) are run with a generated imatrix, as are two whose
choice depends on one (Q4_0, IQ4_XS); the imatrix file is named `imatrix.gguf`, has no dataset and one chunk,
which is what the prediction assumes for the `quantize.imatrix.*` KVs. Results: docs/quantization.md,
"Conformance with the real llama-quantize".
"""
from __future__ import annotations

import os
import re
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from inspector import load
from inspector.formats import parse_gguf
from inspector.quant import QuantizeError, QuantOptions, parse_tensor_type, predict
from inspector.quant.layout import parse_override_kv, parse_prune_layers
from inspector.sources.base import LocalFile

BINARY = os.environ.get("LLAMA_QUANTIZE")
pytestmark = [
    pytest.mark.skipif(not BINARY or not Path(BINARY).is_file(),
                       reason="no llama-quantize binary (set LLAMA_QUANTIZE=/path/to/llama-quantize)"),
    pytest.mark.slow,
]

Tensor = tuple[str, tuple[int, ...]]  # GGUF name, ne (ne0 first)


# --------------------------------------------------------------------------------------------------------------
# Tiny models
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tiny:
    arch: str
    kvs: tuple[tuple[str, Any], ...]  # (GGUFWriter method, value), in writing order
    tensors: tuple[Tensor, ...]
    mxfp4: frozenset[str] = frozenset()  # tensors stored as MXFP4 (gpt-oss experts, as the converter keeps them)
    file_type: int = int(gguf.LlamaFileType.MOSTLY_F16)


def _vocab(n: int) -> tuple[tuple[str, Any], ...]:
    tokens = ["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(3, n)]
    return (("add_tokenizer_model", "llama"), ("add_token_list", tokens), ("add_token_scores", [0.0] * n),
            ("add_token_types", [2, 3, 3] + [1] * (n - 3)))


def _common(*, ctx: int, embd: int, blocks: int, ff: int, heads: int, kv_heads: int) -> tuple[tuple[str, Any], ...]:
    return (("add_context_length", ctx), ("add_embedding_length", embd), ("add_block_count", blocks),
            ("add_feed_forward_length", ff), ("add_head_count", heads), ("add_head_count_kv", kv_heads),
            ("add_layer_norm_rms_eps", 1e-6), ("add_rope_freq_base", 10000.0))


def _attention(i: int, embd: int, heads: int, kv_heads: int, head_dim: int, *, bias: bool = False,
               qk_norm: bool = False, out_bias: bool = False) -> list[Tensor]:
    q, kv, p = heads * head_dim, kv_heads * head_dim, f"blk.{i}."
    out: list[Tensor] = [(p + "attn_norm.weight", (embd,)),
                         (p + "attn_q.weight", (embd, q)), (p + "attn_k.weight", (embd, kv)),
                         (p + "attn_v.weight", (embd, kv)), (p + "attn_output.weight", (q, embd))]
    if bias:
        out += [(p + "attn_q.bias", (q,)), (p + "attn_k.bias", (kv,)), (p + "attn_v.bias", (kv,))]
    if out_bias:
        out.append((p + "attn_output.bias", (embd,)))
    if qk_norm:
        out += [(p + "attn_q_norm.weight", (head_dim,)), (p + "attn_k_norm.weight", (head_dim,))]
    return out


def _dense_ffn(i: int, embd: int, ff: int) -> list[Tensor]:
    p = f"blk.{i}."
    return [(p + "ffn_norm.weight", (embd,)), (p + "ffn_gate.weight", (embd, ff)), (p + "ffn_up.weight", (embd, ff)),
            (p + "ffn_down.weight", (ff, embd))]


def _moe_ffn(i: int, embd: int, ff: int, experts: int, *, norm: str = "ffn_norm") -> list[Tensor]:
    p = f"blk.{i}."
    return [(p + f"{norm}.weight", (embd,)), (p + "ffn_gate_inp.weight", (embd, experts)),
            (p + "ffn_gate_exps.weight", (embd, ff, experts)), (p + "ffn_up_exps.weight", (embd, ff, experts)),
            (p + "ffn_down_exps.weight", (ff, embd, experts))]


def _ends(embd: int, vocab: int, *, tied: bool) -> list[Tensor]:
    out: list[Tensor] = [("token_embd.weight", (embd, vocab)), ("output_norm.weight", (embd,))]
    return out if tied else out + [("output.weight", (embd, vocab))]


def _dense_model(arch: str, *, embd: int, ff: int, heads: int, kv: int, hd: int, n: int, vocab: int, tied: bool,
                 extra_kvs: tuple[tuple[str, Any], ...] = (), bias: bool = False) -> Tiny:
    """Embeddings, `n` blocks of attention and a dense FFN; the common KVs, `extra_kvs`, then the vocabulary."""
    tensors = _ends(embd, vocab, tied=tied)
    for i in range(n):
        tensors += _attention(i, embd, heads, kv, hd, bias=bias) + _dense_ffn(i, embd, ff)
    kvs = _common(ctx=4096, embd=embd, blocks=n, ff=ff, heads=heads, kv_heads=kv) + extra_kvs + _vocab(vocab)
    return Tiny(arch, kvs, tuple(tensors))


def _shared_expert(i: int, embd: int, ff: int) -> list[Tensor]:
    p = f"blk.{i}."
    return [(p + "ffn_gate_shexp.weight", (embd, ff)), (p + "ffn_up_shexp.weight", (embd, ff)),
            (p + "ffn_down_shexp.weight", (ff, embd))]


def llama() -> Tiny:
    """Llama 3 style: GQA 4 (the Q2_K/IQ4 attn_v bumps), untied output, 4 blocks (use_more_bits varies)."""
    hd, vocab = 64, 256
    return _dense_model("llama", embd=256, ff=512, heads=4, kv=1, hd=hd, n=4, vocab=vocab, tied=False,
                        extra_kvs=(("add_rope_dimension_count", hd), ("add_vocab_size", vocab)))


def qwen2() -> Tiny:
    """Qwen2.5 small style: GQA 2, q/k/v biases, tied embeddings, n_ff 384 (ffn_down rows not a multiple of 256)."""
    return _dense_model("qwen2", embd=256, ff=384, heads=4, kv=2, hd=64, n=3, vocab=256, tied=True, bias=True)


def qwen3moe() -> Tiny:
    """Qwen3-30B-A3B style: 4 experts (n_expert >= 4, not 8), q/k norms, untied."""
    embd, ff_exp, heads, kv, hd, n, vocab, experts = 256, 256, 4, 2, 64, 2, 256, 4
    tensors = _ends(embd, vocab, tied=False)
    for i in range(n):
        tensors += _attention(i, embd, heads, kv, hd, qk_norm=True) + _moe_ffn(i, embd, ff_exp, experts)
    kvs = _common(ctx=4096, embd=embd, blocks=n, ff=512, heads=heads, kv_heads=kv) + (
        ("add_key_length", hd), ("add_value_length", hd), ("add_expert_count", experts),
        ("add_expert_used_count", 2), ("add_expert_feed_forward_length", ff_exp)) + _vocab(vocab)
    return Tiny("qwen3moe", kvs, tuple(tensors))


def deepseek2() -> Tiny:
    """DeepSeek-V3 style: MLA with the 3-D attn_k_b/attn_v_b of today's converter (attn_k_b rows of 128 fall back),
    one dense lead block, 4 routed experts + 1 shared, exp_probs_b."""
    return _deepseek(ff=512, today=True)


def _deepseek(*, ff: int, today: bool) -> Tiny:
    """DeepSeek-V2/V3 shapes: 2 blocks (block 0 dense), 2 heads, MLA, 4 routed experts + 1 shared. `today`: as the
    converter writes it now (split kv_b, exp_probs_b, the MLA key/value lengths, sigmoid gating); else as older
    converters wrote it (one 2-D attn_kv_b, the key/value lengths of the decompressed heads)."""
    embd, ff_exp, heads, n, vocab, experts = 256, 256, 2, 2, 256, 4
    q_lora, kv_lora, nope, rope, v_head = 256, 256, 128, 64, 128
    tensors = _ends(embd, vocab, tied=False)
    for i in range(n):
        tensors += _mla_attention(i, embd, heads, q_lora, kv_lora, nope, rope, v_head, split_kv_b=today)
        tensors += _deepseek_ffn(i, embd, ff, ff_exp, experts, probs_bias=today)
    experts_kvs = (("add_expert_count", experts), ("add_expert_used_count", 2),
                   ("add_expert_feed_forward_length", ff_exp), ("add_expert_shared_count", 1))
    if today:
        kvs = _common(ctx=4096, embd=embd, blocks=n, ff=ff, heads=heads, kv_heads=1) + (
            ("add_vocab_size", vocab), ("add_leading_dense_block_count", 1), ("add_q_lora_rank", q_lora),
            ("add_kv_lora_rank", kv_lora), ("add_key_length", kv_lora + rope), ("add_value_length", kv_lora),
            ("add_key_length_mla", nope + rope), ("add_value_length_mla", v_head), ("add_rope_dimension_count", rope),
            *experts_kvs, ("add_expert_weights_scale", 2.5), ("add_expert_weights_norm", True),
            ("add_expert_gating_func", gguf.ExpertGatingFuncType.SIGMOID))
    else:
        kvs = _common(ctx=4096, embd=embd, blocks=n, ff=ff, heads=heads, kv_heads=heads) + (
            ("add_leading_dense_block_count", 1), ("add_q_lora_rank", q_lora), ("add_kv_lora_rank", kv_lora),
            ("add_key_length", nope + rope), ("add_value_length", v_head), ("add_rope_dimension_count", rope),
            *experts_kvs, ("add_expert_weights_scale", 1.0))
    return Tiny("deepseek2", kvs + _vocab(vocab), tuple(tensors))


def _mla_attention(i: int, embd: int, heads: int, q_lora: int, kv_lora: int, nope: int, rope: int, v_head: int, *,
                   split_kv_b: bool) -> list[Tensor]:
    """DeepSeek's MLA block: kv_b as today's converter splits it (3-D attn_k_b, attn_v_b) or as one 2-D attn_kv_b."""
    p = f"blk.{i}."
    kv_b: list[Tensor] = (
        [(p + "attn_k_b.weight", (nope, kv_lora, heads)), (p + "attn_v_b.weight", (kv_lora, v_head, heads))]
        if split_kv_b else [(p + "attn_kv_b.weight", (kv_lora, heads * (nope + v_head)))])
    return [(p + "attn_norm.weight", (embd,)),
            (p + "attn_q_a.weight", (embd, q_lora)), (p + "attn_q_a_norm.weight", (q_lora,)),
            (p + "attn_q_b.weight", (q_lora, heads * (nope + rope))),
            (p + "attn_kv_a_mqa.weight", (embd, kv_lora + rope)), (p + "attn_kv_a_norm.weight", (kv_lora,)),
            *kv_b, (p + "attn_output.weight", (heads * v_head, embd))]


def _deepseek_ffn(i: int, embd: int, ff: int, ff_exp: int, experts: int, *, probs_bias: bool) -> list[Tensor]:
    """Block 0 dense, the others routed experts (with exp_probs_b for V3) and one shared expert."""
    if i == 0:
        return _dense_ffn(i, embd, ff)
    p = f"blk.{i}."
    bias: list[Tensor] = [(p + "exp_probs_b.bias", (experts,))] if probs_bias else []
    return _moe_ffn(i, embd, ff_exp, experts) + bias + _shared_expert(i, embd, ff_exp)


def mixtral() -> Tiny:
    """Mixtral style: the llama arch with 8 stacked experts (the n_expert == 8 rules: attn_v/attn_k Q8_0 …)."""
    embd, ff, heads, kv, hd, n, vocab, experts = 256, 256, 4, 1, 64, 2, 256, 8
    tensors = _ends(embd, vocab, tied=False)
    for i in range(n):
        tensors += _attention(i, embd, heads, kv, hd) + _moe_ffn(i, embd, ff, experts)
    kvs = _common(ctx=4096, embd=embd, blocks=n, ff=ff, heads=heads, kv_heads=kv) + (
        ("add_rope_dimension_count", hd), ("add_expert_count", experts), ("add_expert_used_count", 2)) + _vocab(vocab)
    return Tiny("llama", kvs, tuple(tensors))


def gemma3() -> Tiny:
    """Gemma 3 style: tied embeddings, head_dim 128, sliding window, q/k norms, post norms."""
    embd, ff, heads, kv, hd, n, vocab = 256, 512, 2, 1, 128, 3, 256
    tensors = _ends(embd, vocab, tied=True)
    for i in range(n):
        p = f"blk.{i}."
        tensors += _attention(i, embd, heads, kv, hd, qk_norm=True) + _dense_ffn(i, embd, ff) + [
            (p + "post_attention_norm.weight", (embd,)), (p + "post_ffw_norm.weight", (embd,))]
    kvs = _common(ctx=4096, embd=embd, blocks=n, ff=ff, heads=heads, kv_heads=kv) + (
        ("add_key_length", hd), ("add_value_length", hd), ("add_sliding_window", 512)) + _vocab(vocab)
    return Tiny("gemma3", kvs, tuple(tensors))


def gemma3n() -> Tiny:
    """Gemma 3n style: tied embeddings plus per_layer_token_embd (a second TOKEN_EMBD tensor), and the tensors
    llama-quantize never quantizes by name: altup_* (3-D altup_proj included), laurel_*, per_layer_model_proj."""
    embd, ff, heads, kv, hd, n, vocab, altup, embd_altup, laurel = 256, 512, 2, 1, 128, 2, 256, 4, 256, 64
    tensors = _ends(embd, vocab, tied=True) + [
        ("per_layer_token_embd.weight", (embd_altup * n, vocab)),
        ("per_layer_model_proj.weight", (embd, embd_altup * n)), ("per_layer_proj_norm.weight", (embd_altup,)),
        ("altup_proj.weight", (embd, embd, altup - 1)), ("altup_unembd_proj.weight", (embd, embd, altup - 1))]
    for i in range(n):
        p = f"blk.{i}."
        tensors += _attention(i, embd, heads, kv, hd, qk_norm=True) + _dense_ffn(i, embd, ff) + [
            (p + "post_attention_norm.weight", (embd,)), (p + "post_ffw_norm.weight", (embd,)),
            (p + "per_layer_inp_gate.weight", (embd, embd_altup)), (p + "per_layer_proj.weight", (embd_altup, embd)),
            (p + "per_layer_post_norm.weight", (embd,)),
            (p + "altup_correct_coef.weight", (altup, altup)), (p + "altup_correct_scale.weight", (embd,)),
            (p + "altup_predict_coef.weight", (altup, altup * altup)), (p + "altup_router.weight", (embd, altup)),
            (p + "altup_router_norm.weight", (embd,)),
            (p + "laurel_l.weight", (embd, laurel)), (p + "laurel_r.weight", (laurel, embd)),
            (p + "laurel_post_norm.weight", (embd,))]
    kvs = _common(ctx=4096, embd=embd, blocks=n, ff=ff, heads=heads, kv_heads=kv) + (
        ("add_key_length", hd), ("add_value_length", hd), ("add_sliding_window", 512)) + _vocab(vocab)
    return Tiny("gemma3n", kvs, tuple(tensors))


def gpt_oss() -> Tiny:
    """gpt-oss style: n_embd and expert rows of 320 (like 2880, not a multiple of 256), attention sinks, biases
    on attention and experts (2-D `ffn_*_exps.bias`: not quantized), 4 experts."""
    embd, ff_exp, heads, kv, hd, n, vocab, experts = 320, 320, 4, 1, 64, 2, 256, 4
    tensors = _ends(embd, vocab, tied=False)
    for i in range(n):
        p = f"blk.{i}."
        tensors += _attention(i, embd, heads, kv, hd, bias=True, out_bias=True) + [
            (p + "attn_sinks.weight", (heads,)), (p + "post_attention_norm.weight", (embd,)),
            (p + "ffn_gate_inp.weight", (embd, experts)), (p + "ffn_gate_inp.bias", (experts,)),
            (p + "ffn_gate_exps.weight", (embd, ff_exp, experts)), (p + "ffn_gate_exps.bias", (ff_exp, experts)),
            (p + "ffn_up_exps.weight", (embd, ff_exp, experts)), (p + "ffn_up_exps.bias", (ff_exp, experts)),
            (p + "ffn_down_exps.weight", (ff_exp, embd, experts)), (p + "ffn_down_exps.bias", (embd, experts))]
    kvs = _common(ctx=4096, embd=embd, blocks=n, ff=ff_exp, heads=heads, kv_heads=kv) + (
        ("add_key_length", hd), ("add_value_length", hd), ("add_expert_count", experts),
        ("add_expert_used_count", 2), ("add_expert_feed_forward_length", ff_exp), ("add_sliding_window", 128)
    ) + _vocab(vocab)
    return Tiny("gpt-oss", kvs, tuple(tensors))


def gpt_oss_mxfp4() -> Tiny:
    """The same gpt-oss model as convert_hf_to_gguf.py writes it: experts kept MXFP4, file type MXFP4_MOE."""
    model = gpt_oss()
    experts = frozenset(n for n, ne in model.tensors if "_exps.weight" in n)
    return Tiny(model.arch, model.kvs, model.tensors, experts, int(gguf.LlamaFileType.MOSTLY_MXFP4_MOE))


def deepseek2_kv_b() -> Tiny:
    """DeepSeek-V2/V3 as older converters wrote it: one 2-D attn_kv_b per layer (counted with the attn_v-like
    tensors), one dense lead block, 4 routed experts + 1 shared."""
    return _deepseek(ff=256, today=False)


def odd_rows() -> Tiny:
    """A llama-arch probe with n_ff 272: ffn_down rows are a multiple of 16 but not of 32, so no 32-block type
    fits them (the shape fallback's last resort, F16, and the file types whose own type has no fallback)."""
    hd = 64
    return _dense_model("llama", embd=256, ff=272, heads=4, kv=4, hd=hd, n=2, vocab=256, tied=False,
                        extra_kvs=(("add_rope_dimension_count", hd),))


def glm4moe() -> Tiny:
    """GLM-4.5 style: q/k/v biases and q/k norms, one dense lead block, 4 routed + 1 shared expert, exp_probs_b,
    and the NextN block the converter keeps (blk.2: a MoE layer plus nextn.*; block_count 3, nextn 1)."""
    embd, ff, ff_exp, heads, kv, hd, n, vocab, experts = 256, 512, 256, 4, 2, 64, 2, 256, 4
    tensors = _ends(embd, vocab, tied=False)
    for i in range(n + 1):
        p = f"blk.{i}."
        tensors += _attention(i, embd, heads, kv, hd, bias=True, qk_norm=True)
        tensors.append((p + "post_attention_norm.weight", (embd,)))
        if i == 0:
            tensors += [(p + "ffn_gate.weight", (embd, ff)), (p + "ffn_up.weight", (embd, ff)),
                        (p + "ffn_down.weight", (ff, embd))]
            continue
        tensors += [(p + "ffn_gate_inp.weight", (embd, experts)), (p + "exp_probs_b.bias", (experts,)),
                    (p + "ffn_gate_exps.weight", (embd, ff_exp, experts)),
                    (p + "ffn_up_exps.weight", (embd, ff_exp, experts)),
                    (p + "ffn_down_exps.weight", (ff_exp, embd, experts))] + _shared_expert(i, embd, ff_exp)
        if i == n:
            tensors += [(p + "nextn.eh_proj.weight", (2 * embd, embd)), (p + "nextn.enorm.weight", (embd,)),
                        (p + "nextn.hnorm.weight", (embd,)), (p + "nextn.shared_head_norm.weight", (embd,)),
                        (p + "nextn.embed_tokens.weight", (embd, vocab)),
                        (p + "nextn.shared_head_head.weight", (embd, vocab))]
    kvs = _common(ctx=4096, embd=embd, blocks=n + 1, ff=ff, heads=heads, kv_heads=kv) + (
        ("add_key_length", hd), ("add_value_length", hd), ("add_rope_dimension_count", hd // 2),
        ("add_vocab_size", vocab), ("add_leading_dense_block_count", 1), ("add_expert_count", experts),
        ("add_expert_used_count", 2), ("add_expert_feed_forward_length", ff_exp), ("add_expert_shared_count", 1),
        ("add_expert_weights_scale", 2.5), ("add_expert_weights_norm", True),
        ("add_expert_gating_func", gguf.ExpertGatingFuncType.SIGMOID), ("add_nextn_predict_layers", 1)) + _vocab(vocab)
    return Tiny("glm4moe", kvs, tuple(tensors))


def qwen35moe() -> Tiny:
    """Qwen3.5-MoE style: 3 Gated-DeltaNet layers (attn_qkv in the attn_v counter, attn_gate, ssm_alpha/beta, the
    unquantized ssm_a/ssm_conv1d/ssm_dt) and a gated full-attention layer; 4 experts, a shared expert and its
    [256, 1] gate (1-D for the rules)."""
    embd, heads, kv, hd, n, vocab, experts, ff = 256, 2, 1, 128, 4, 256, 4, 256
    nk, hk, nv, hv = 2, 64, 4, 64
    conv = 2 * nk * hk + nv * hv
    tensors = _ends(embd, vocab, tied=False)
    for i in range(n):
        p = f"blk.{i}."
        tensors += [(p + "attn_norm.weight", (embd,)), (p + "post_attention_norm.weight", (embd,))]
        if (i + 1) % 4:
            tensors += [(p + "attn_qkv.weight", (embd, conv)), (p + "attn_gate.weight", (embd, nv * hv)),
                        (p + "ssm_a", (nv,)), (p + "ssm_conv1d.weight", (4, conv)), (p + "ssm_dt.bias", (nv,)),
                        (p + "ssm_alpha.weight", (embd, nv)), (p + "ssm_beta.weight", (embd, nv)),
                        (p + "ssm_norm.weight", (hv,)), (p + "ssm_out.weight", (nv * hv, embd))]
        else:
            tensors += [(p + "attn_q.weight", (embd, 2 * heads * hd)), (p + "attn_k.weight", (embd, kv * hd)),
                        (p + "attn_v.weight", (embd, kv * hd)), (p + "attn_output.weight", (heads * hd, embd)),
                        (p + "attn_q_norm.weight", (hd,)), (p + "attn_k_norm.weight", (hd,))]
        tensors += [(p + "ffn_gate_inp.weight", (embd, experts)), (p + "ffn_gate_exps.weight", (embd, ff, experts)),
                    (p + "ffn_up_exps.weight", (embd, ff, experts)), (p + "ffn_down_exps.weight", (ff, embd, experts)),
                    (p + "ffn_gate_inp_shexp.weight", (embd, 1))] + _shared_expert(i, embd, ff)
    kvs = _common(ctx=4096, embd=embd, blocks=n, ff=512, heads=heads, kv_heads=kv) + (
        ("add_key_length", hd), ("add_value_length", hd), ("add_rope_dimension_count", hd // 4),
        ("add_rope_dimension_sections", [11, 11, 10, 0]), ("add_ssm_conv_kernel", 4), ("add_ssm_inner_size", nv * hv),
        ("add_ssm_state_size", hk), ("add_ssm_time_step_rank", nv), ("add_ssm_group_count", nk),
        ("add_full_attention_interval", 4), ("add_expert_count", experts), ("add_expert_used_count", 2),
        ("add_expert_feed_forward_length", ff), ("add_expert_shared_feed_forward_length", ff)) + _vocab(vocab)
    return Tiny("qwen35moe", kvs, tuple(tensors))


def llama4() -> Tiny:
    """Llama 4 style: MoE every second layer (interleave_moe_layer_step 2) with one shared expert, a dense layer
    between; 4 experts (n_expert >= 4, not 8)."""
    embd, ff, ff_exp, heads, kv, hd, n, vocab, experts = 256, 512, 256, 4, 2, 64, 2, 256, 4
    tensors = _ends(embd, vocab, tied=False)
    for i in range(n):
        tensors += _attention(i, embd, heads, kv, hd)
        if i == 0:
            tensors += _dense_ffn(i, embd, ff)
        else:
            tensors += _moe_ffn(i, embd, ff_exp, experts) + _shared_expert(i, embd, ff_exp)
    kvs = _common(ctx=4096, embd=embd, blocks=n, ff=ff, heads=heads, kv_heads=kv) + (
        ("add_rope_dimension_count", hd), ("add_vocab_size", vocab), ("add_expert_count", experts),
        ("add_expert_used_count", 1), ("add_expert_feed_forward_length", ff_exp),
        ("add_interleave_moe_layer_step", 2)) + _vocab(vocab)
    return Tiny("llama4", kvs, tuple(tensors))


def mistral3() -> Tiny:
    """Mistral Small 3 style text model (gguf arch mistral3): GQA 4, head_dim 128 < n_embd / n_head, untied."""
    hd, vocab = 128, 256
    return _dense_model("mistral3", embd=256, ff=512, heads=4, kv=1, hd=hd, n=4, vocab=vocab, tied=False,
                        extra_kvs=(("add_key_length", hd), ("add_value_length", hd), ("add_rope_dimension_count", hd),
                                   ("add_vocab_size", vocab)))


def granitehybrid() -> Tiny:
    """Granite 4 hybrid style: layers [Mamba2, Mamba2, attention, Mamba2] (head_count_kv [0, 0, 1, 0]: layer 0's 0
    makes n_gqa 0 for the rules), MoE with a shared expert on every layer, tied embeddings."""
    embd, heads, hd, vocab, experts, ff = 256, 4, 64, 256, 4, 256
    d_inner, n_heads, d_state, groups = 512, 8, 128, 1
    kinds = ("ssm", "ssm", "attn", "ssm")
    tensors = _ends(embd, vocab, tied=True)
    for i, kind in enumerate(kinds):
        p = f"blk.{i}."
        if kind == "ssm":
            conv = d_inner + 2 * groups * d_state
            tensors += [(p + "attn_norm.weight", (embd,)),
                        (p + "ssm_in.weight", (embd, 2 * d_inner + 2 * groups * d_state + n_heads)),
                        (p + "ssm_conv1d.weight", (4, conv)), (p + "ssm_conv1d.bias", (conv,)),
                        (p + "ssm_a", (1, n_heads)), (p + "ssm_d", (1, n_heads)), (p + "ssm_dt.bias", (n_heads,)),
                        (p + "ssm_norm.weight", (d_inner // groups, groups)), (p + "ssm_out.weight", (d_inner, embd))]
        else:
            tensors += _attention(i, embd, heads, 1, hd)
        tensors += _moe_ffn(i, embd, ff, experts) + _shared_expert(i, embd, ff)
    kvs = _common(ctx=4096, embd=embd, blocks=len(kinds), ff=512, heads=heads, kv_heads=1)[:5] + (
        ("add_head_count_kv", [1 if k == "attn" else 0 for k in kinds]), ("add_layer_norm_rms_eps", 1e-6),
        ("add_rope_freq_base", 10000.0), ("add_rope_dimension_count", hd), ("add_vocab_size", vocab),
        ("add_ssm_conv_kernel", 4), ("add_ssm_inner_size", d_inner), ("add_ssm_state_size", d_state),
        ("add_ssm_time_step_rank", n_heads), ("add_ssm_group_count", groups), ("add_expert_count", experts),
        ("add_expert_used_count", 2), ("add_expert_feed_forward_length", ff),
        ("add_expert_shared_feed_forward_length", ff)) + _vocab(vocab)
    return Tiny("granitehybrid", kvs, tuple(tensors))


MODELS: dict[str, Callable[[], Tiny]] = {
    "llama": llama, "qwen2": qwen2, "qwen3moe": qwen3moe, "deepseek2": deepseek2, "mixtral": mixtral,
    "gemma3": gemma3, "gemma3n": gemma3n, "gpt-oss": gpt_oss, "deepseek2-kv_b": deepseek2_kv_b, "odd-rows": odd_rows,
    "gpt-oss-mxfp4": gpt_oss_mxfp4,  # only in the option cases (--allow-requantize)
    "glm4moe": glm4moe, "qwen35moe": qwen35moe, "llama4": llama4, "mistral3": mistral3, "granitehybrid": granitehybrid,
}
MOE = ("qwen3moe", "deepseek2", "mixtral", "gpt-oss", "deepseek2-kv_b", "glm4moe", "qwen35moe", "llama4",
       "granitehybrid")


def _is_f32(name: str, ne: tuple[int, ...]) -> bool:
    """convert_hf_to_gguf.py's F32 tensors: 1-D, norms, routers, names not ending in .weight."""
    return len(ne) < 2 or name.endswith("_norm.weight") or not name.endswith(".weight") or "ffn_gate_inp" in name


def write_tiny(model: Tiny, path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), model.arch)
    writer.add_name(f"tiny-{model.arch}")
    writer.add_file_type(model.file_type)
    for method, value in model.kvs:
        getattr(writer, method)(value)
    for name, ne in model.tensors:
        shape = tuple(reversed(ne))  # numpy order
        if name in model.mxfp4:  # 17-byte blocks of 32: an E8M0 scale near 1, then 16 bytes of E2M1 pairs
            blocks = rng.integers(0, 256, (*shape[:-1], shape[-1] // 32, 17), dtype=np.uint8)
            blocks[..., 0] = rng.integers(118, 124, blocks.shape[:-1], dtype=np.uint8)
            writer.add_tensor(name, blocks.reshape(*shape[:-1], -1), raw_dtype=gguf.GGMLQuantizationType.MXFP4)
            continue
        data = rng.standard_normal(shape, dtype=np.float32) * 0.02
        if name.endswith("_norm.weight"):
            data += 1.0
        writer.add_tensor(name, data if _is_f32(name, ne) else data.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_imatrix(model: Tiny, path: Path) -> Path:
    """A legacy-format imatrix (llama-imatrix's .dat layout) with an entry for every 2-D/3-D weight: `ne0 × ne2`
    positive values, one call, one chunk, no dataset (common_imatrix_load falls back to this format when the file
    is not a GGUF; the name `imatrix.gguf` is what the prediction assumes for quantize.imatrix.file)."""
    entries = [(name, ne) for name, ne in model.tensors if len(ne) >= 2 and name.endswith(".weight")]
    rng = np.random.default_rng(1)
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(entries)))
        for name, ne in entries:
            raw = name.encode()
            values = rng.uniform(0.5, 1.5, ne[0] * (ne[2] if len(ne) > 2 else 1)).astype(np.float32)
            f.write(struct.pack("<i", len(raw)) + raw + struct.pack("<ii", 1, values.size) + values.tobytes())
        f.write(struct.pack("<ii", 1, 0))  # chunks, dataset name length
    return path


# --------------------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------------------
PLAIN = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S",
         "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS", "IQ3_S", "IQ3_M", "TQ1_0", "TQ2_0", "Q1_0", "Q2_0", "F32", "F16", "BF16",
         "COPY")
WITH_IMATRIX = ("IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M", "IQ3_XXS", "IQ3_XS", "Q2_K_S", "Q4_0",
                "IQ4_XS")


def _cases() -> list[Any]:
    cases = []
    for arch in MODELS:
        if arch == "gpt-oss-mxfp4":
            continue
        ftypes = PLAIN + (("MXFP4_MOE",) if arch in MOE else ())
        for imatrix, names in ((False, ftypes), (True, WITH_IMATRIX)):
            for f in names:
                cases.append(pytest.param(arch, f, imatrix, id=f"{arch}-{f}{'-imatrix' if imatrix else ''}"))
    return cases


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Path]]:
    cache: dict[str, tuple[Path, Path]] = {}

    def get(arch: str) -> tuple[Path, Path]:
        if arch not in cache:
            folder = tmp_path_factory.mktemp(f"tiny-{arch}")
            model = MODELS[arch]()
            cache[arch] = (write_tiny(model, folder / "model-f16.gguf"), write_imatrix(model, folder / "imatrix.gguf"))
        return cache[arch]

    return get


def run_quantize(src: Path, out: Path, ftype: str, imatrix: bool, flags: tuple[str, ...] = ()
                 ) -> subprocess.CompletedProcess[str]:
    assert BINARY
    args = [BINARY, *flags, *(["--imatrix", "imatrix.gguf"] if imatrix else []), src.name, out.name, ftype, "2"]
    return subprocess.run(args, check=False, cwd=src.parent, capture_output=True, text=True, timeout=600)


def check(src: Path, out: Path, options: QuantOptions, flags: tuple[str, ...] = ()) -> None:
    """Run llama-quantize and compare every tensor's type, the tensor order and offsets, the KV names and file
    type, the data offset and the file size. When llama-quantize refuses, the prediction must refuse too, at the
    tensor where llama.cpp stopped."""
    run = run_quantize(src, out, options.ftype, options.imatrix, flags)
    log = run.stdout + run.stderr
    if run.returncode != 0:
        out.unlink(missing_ok=True)  # an abort can leave a partial file
        with pytest.raises(QuantizeError, match=r"tensor '([^']+)'") as refused:
            predict(load(str(src)), options)
        named = re.search(r"tensor '([^']+)'", str(refused.value))
        assert named
        name = named.group(1)
        # llama.cpp stops in the type choice (a fallback warning names the tensor, then "failed to quantize") or,
        # for an explicit type that does not fit, aborts in gguf_set_tensor_type after the tensor's progress line
        warned = re.findall(r"warning: (\S+) +- ncols .* not divisible", log)
        progress = re.findall(r"^\[ *\d+/ *\d+\] (\S+)", log, re.MULTILINE)
        assert name in warned or progress[-1:] == [name], log[-3000:]
        return
    try:
        real = parse_gguf(LocalFile(str(out)))
        prediction = predict(load(str(src)), options)
        real_types = {t.name: t.gtype.name for t in real.tensors}
        predicted = {t.name: t.dtype.upper() for t in prediction.checkpoint.tensors}
        assert predicted == real_types, {n: (p, real_types.get(n)) for n, p in predicted.items()
                                         if real_types.get(n) != p}
        assert [t.name for t in prediction.checkpoint.tensors] == [t.name for t in real.tensors]  # loader order
        assert [t.offset for t in prediction.checkpoint.tensors] == [t.offset for t in real.tensors]
        kvs = {k: v for k, v in prediction.checkpoint.metadata.items() if not k.startswith("ckpt_size.")}
        assert set(kvs) == set(real.metadata)  # the KVs llama-quantize copies, sets and adds
        assert kvs["general.file_type"] == real.metadata["general.file_type"]
        assert prediction.header_bytes == real.data_offset
        assert prediction.file_size == real.file_size
    finally:
        out.unlink()


@pytest.mark.parametrize("arch, ftype, imatrix", _cases())
def test_llama_quantize_agrees(inputs, arch: str, ftype: str, imatrix: bool) -> None:
    src, _ = inputs(arch)
    check(src, src.parent / f"out-{ftype}{'-imatrix' if imatrix else ''}.gguf", QuantOptions(ftype, imatrix=imatrix))


# llama-quantize's type options, as flags and as QuantOptions: (arch, ftype, flags)
OPTION_CASES = [
    ("llama", "Q4_K_M", ("--pure",)),
    ("gpt-oss", "Q4_K_M", ("--pure",)),  # --pure still takes the shape fallback
    ("llama", "Q4_K_M", ("--tensor-type", "attn_v=q8_0", "--tensor-type", "ffn_down=q5_k")),
    ("qwen3moe", "Q4_K_M", ("--tensor-type", "ffn_down_exps=q8_0", "--tensor-type", "ffn_down=q2_k")),  # first wins
    ("gpt-oss", "Q8_0", ("--tensor-type", "attn_q=q4_k")),  # a manual type goes through the fallback
    ("llama", "Q6_K", ("--output-tensor-type", "q8_0", "--token-embedding-type", "q4_k")),
    ("gemma3", "Q4_K_M", ("--output-tensor-type", "q5_k")),  # tied: token_embd follows the output type
    ("gemma3", "Q4_K_M", ("--token-embedding-type", "q8_0")),
    ("gpt-oss", "Q5_K_M", ("--token-embedding-type", "q4_k")),  # explicit types skip the shape fallback
    ("gemma3n", "Q4_K_M", ("--token-embedding-type", "q8_0")),  # token_embd and per_layer_token_embd
    ("gemma3n", "Q4_K_M", ("--tensor-type", "per_layer_token_embd=q5_k")),
    # 2026-10: a matching --tensor-type names per_layer_token_embd even with --token-embedding-type
    ("gemma3n", "Q4_K_M", ("--token-embedding-type", "q8_0", "--tensor-type", "per_layer_token_embd=q4_k")),
    # layout options
    ("llama", "Q4_K_M", ("--leave-output-tensor",)),
    ("gemma3", "Q4_K_M", ("--leave-output-tensor",)),  # tied: token_embd is still quantized
    ("llama", "Q4_K_M", ("--prune-layers", "1,2")),  # blocks 0 and 3 kept, 3 renumbered 1; counters of the input
    ("glm4moe", "Q4_K_M", ("--prune-layers", "0")),
    ("llama", "Q4_K_M", ("--override-kv", "general.name=str:tiny-llama", "--override-kv", "general.file_type=int:7")),
    ("llama", "Q4_K_M", ("--override-kv", "llama.context_length=int:8192", "--override-kv",
                         "llama.rope.freq_base=float:500000", "--override-kv", "tokenizer.ggml.add_bos_token=bool:true")),
    # gpt-oss as converted (MXFP4 experts): MXFP4_MOE keeps them; other file types requantize them
    ("gpt-oss-mxfp4", "MXFP4_MOE", ()),
    ("gpt-oss-mxfp4", "Q4_K_M", ()),  # refused: requantizing needs --allow-requantize
    ("gpt-oss-mxfp4", "Q4_K_M", ("--allow-requantize",)),
    ("gpt-oss-mxfp4", "Q8_0", ("--allow-requantize",)),
    ("gpt-oss-mxfp4", "COPY", ()),
]


def _options(ftype: str, flags: tuple[str, ...]) -> QuantOptions:
    tensor_types: list[tuple[str, str]] = []
    kw: dict[str, Any] = {"allow_requantize": "--allow-requantize" in flags}
    it = iter(flags)
    for flag in it:
        if flag == "--pure":
            kw["pure"] = True
        elif flag == "--tensor-type":
            tensor_types.append(parse_tensor_type(next(it)))
        elif flag == "--output-tensor-type":
            kw["output_tensor_type"] = next(it)
        elif flag == "--token-embedding-type":
            kw["token_embedding_type"] = next(it)
        elif flag == "--leave-output-tensor":
            kw["leave_output_tensor"] = True
        elif flag == "--prune-layers":
            kw["prune_layers"] = parse_prune_layers(next(it))
        elif flag == "--override-kv":
            kw["override_kv"] = kw.get("override_kv", ()) + (parse_override_kv(next(it)),)
    return QuantOptions(ftype, tensor_types=tuple(tensor_types), **kw)


@pytest.mark.parametrize("arch, ftype, flags", OPTION_CASES, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_llama_quantize_options_agree(inputs, arch: str, ftype: str, flags: tuple[str, ...]) -> None:
    src, _ = inputs(arch)
    check(src, src.parent / f"out-{ftype}-options.gguf", _options(ftype, flags), flags)


def test_llama_quantize_keep_split_agrees(tmp_path: Path) -> None:
    """--keep-split on a 3-split input (gguf-py's split writer, 10 tensors per split): one output file per input
    split, each with its tensors, types, offsets, header and size as predicted."""
    model = llama()
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(str(tmp_path / "in.gguf"), model.arch, split_max_tensors=10)
    writer.add_name("tiny-llama-split")
    writer.add_file_type(model.file_type)
    for method, value in model.kvs:
        getattr(writer, method)(value)
    for name, ne in model.tensors:
        data = rng.standard_normal(tuple(reversed(ne)), dtype=np.float32) * 0.02
        writer.add_tensor(name, data if _is_f32(name, ne) else data.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    first = sorted(tmp_path.glob("in-*.gguf"))[0]
    args = [BINARY, "--keep-split", first.name, "out.gguf", "Q4_K_M", "2"]
    run = subprocess.run(args, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    outs = sorted(tmp_path.glob("out-*.gguf"))
    prediction = predict(load(str(first)), QuantOptions("Q4_K_M", keep_split=True))
    files = prediction.checkpoint.files
    assert [Path(f.path).name for f in files] == [p.name.replace("out-", "ggml-model-Q4_K_M-") for p in outs]
    for i, (path, predicted) in enumerate(zip(outs, files)):
        real = parse_gguf(LocalFile(str(path)))
        mine = [t for t in prediction.checkpoint.tensors if t.file_index == i]
        assert [(t.name, t.dtype.upper(), t.offset) for t in mine] == [
            (t.name, t.gtype.name, t.offset) for t in real.tensors]
        assert predicted.header_bytes == real.data_offset and predicted.size == real.file_size
