"""Optional conformance with llama.cpp's own quantizer: tiny generated models of several architectures are
quantized with the real `llama-quantize`, and every tensor's type, the tensor order, the data offset and the file
size must be the ones `inspector.quant.predict` gives.

Runs only when `LLAMA_QUANTIZE=/path/to/llama-quantize` is set (build it from the llama.cpp source the
`llama-cpp-python` sdist vendors: `cmake --build build --target llama-quantize`); skipped otherwise.

The models are real GGUFs written with gguf-py (random F16 matrices, F32 norms, biases and routers, a small
SentencePiece-style vocabulary), a few MB each, with the KVs llama.cpp's hparams loader requires for the
architecture. Their shapes are chosen to exercise the rules: GQA 4 and GQA 2, tied and untied embeddings, rows
that are not a multiple of 256 (shape fallbacks), 3-D MLA tensors, 4 and 8 experts, shared experts, a dense lead
block. File types that need an importance matrix (IQ1/IQ2, IQ3_XXS, IQ3_XS, Q2_K_S) are run with a generated
imatrix, as are a few others whose choice depends on one (Q4_0, IQ4_XS); the imatrix file is named
`imatrix.gguf`, has no dataset and one chunk, which is what the prediction assumes for the `quantize.imatrix.*` KVs.
"""
from __future__ import annotations

import os
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gguf
import numpy as np
import pytest

from inspector import load
from inspector.formats import parse_gguf
from inspector.quant import QuantOptions, predict
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


def llama() -> Tiny:
    """Llama 3 style: GQA 4 (the Q2_K/IQ4 attn_v bumps), untied output, 4 blocks (use_more_bits varies)."""
    embd, ff, heads, kv, hd, n, vocab = 256, 512, 4, 1, 64, 4, 512
    tensors = _ends(embd, vocab, tied=False)
    for i in range(n):
        tensors += _attention(i, embd, heads, kv, hd) + _dense_ffn(i, embd, ff)
    kvs = _common(ctx=4096, embd=embd, blocks=n, ff=ff, heads=heads, kv_heads=kv) + (
        ("add_rope_dimension_count", hd), ("add_vocab_size", vocab)) + _vocab(vocab)
    return Tiny("llama", kvs, tuple(tensors))


def qwen2() -> Tiny:
    """Qwen2.5 small style: GQA 2, q/k/v biases, tied embeddings, n_ff 384 (ffn_down rows not a multiple of 256)."""
    embd, ff, heads, kv, hd, n, vocab = 256, 384, 4, 2, 64, 3, 512
    tensors = _ends(embd, vocab, tied=True)
    for i in range(n):
        tensors += _attention(i, embd, heads, kv, hd, bias=True) + _dense_ffn(i, embd, ff)
    kvs = _common(ctx=4096, embd=embd, blocks=n, ff=ff, heads=heads, kv_heads=kv) + _vocab(vocab)
    return Tiny("qwen2", kvs, tuple(tensors))


def qwen3moe() -> Tiny:
    """Qwen3-30B-A3B style: 4 experts (n_expert >= 4, not 8), q/k norms, untied."""
    embd, ff_exp, heads, kv, hd, n, vocab, experts = 256, 256, 4, 2, 64, 2, 512, 4
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
    embd, ff, ff_exp, heads, n, vocab, experts = 256, 512, 256, 4, 2, 512, 4
    q_lora, kv_lora, nope, rope, v_head = 256, 256, 128, 64, 128
    tensors = _ends(embd, vocab, tied=False)
    for i in range(n):
        p = f"blk.{i}."
        tensors += [
            (p + "attn_norm.weight", (embd,)),
            (p + "attn_q_a.weight", (embd, q_lora)), (p + "attn_q_a_norm.weight", (q_lora,)),
            (p + "attn_q_b.weight", (q_lora, heads * (nope + rope))),
            (p + "attn_kv_a_mqa.weight", (embd, kv_lora + rope)), (p + "attn_kv_a_norm.weight", (kv_lora,)),
            (p + "attn_k_b.weight", (nope, kv_lora, heads)), (p + "attn_v_b.weight", (kv_lora, v_head, heads)),
            (p + "attn_output.weight", (heads * v_head, embd)),
        ]
        if i == 0:
            tensors += _dense_ffn(i, embd, ff)
        else:
            tensors += _moe_ffn(i, embd, ff_exp, experts) + [
                (p + "exp_probs_b.bias", (experts,)),
                (p + "ffn_gate_shexp.weight", (embd, ff_exp)), (p + "ffn_up_shexp.weight", (embd, ff_exp)),
                (p + "ffn_down_shexp.weight", (ff_exp, embd))]
    kvs = _common(ctx=4096, embd=embd, blocks=n, ff=ff, heads=heads, kv_heads=1) + (
        ("add_vocab_size", vocab), ("add_leading_dense_block_count", 1), ("add_q_lora_rank", q_lora),
        ("add_kv_lora_rank", kv_lora), ("add_key_length", kv_lora + rope), ("add_value_length", kv_lora),
        ("add_key_length_mla", nope + rope), ("add_value_length_mla", v_head), ("add_rope_dimension_count", rope),
        ("add_expert_count", experts), ("add_expert_used_count", 2), ("add_expert_feed_forward_length", ff_exp),
        ("add_expert_shared_count", 1), ("add_expert_weights_scale", 2.5), ("add_expert_weights_norm", True),
        ("add_expert_gating_func", gguf.ExpertGatingFuncType.SIGMOID)) + _vocab(vocab)
    return Tiny("deepseek2", kvs, tuple(tensors))


def mixtral() -> Tiny:
    """Mixtral style: the llama arch with 8 stacked experts (the n_expert == 8 rules: attn_v/attn_k Q8_0 …)."""
    embd, ff, heads, kv, hd, n, vocab, experts = 256, 256, 4, 1, 64, 2, 512, 8
    tensors = _ends(embd, vocab, tied=False)
    for i in range(n):
        tensors += _attention(i, embd, heads, kv, hd) + _moe_ffn(i, embd, ff, experts)
    kvs = _common(ctx=4096, embd=embd, blocks=n, ff=ff, heads=heads, kv_heads=kv) + (
        ("add_rope_dimension_count", hd), ("add_expert_count", experts), ("add_expert_used_count", 2)) + _vocab(vocab)
    return Tiny("llama", kvs, tuple(tensors))


def gemma3() -> Tiny:
    """Gemma 3 style: tied embeddings, head_dim 128, sliding window, q/k norms, post norms."""
    embd, ff, heads, kv, hd, n, vocab = 256, 512, 2, 1, 128, 3, 512
    tensors = _ends(embd, vocab, tied=True)
    for i in range(n):
        p = f"blk.{i}."
        tensors += _attention(i, embd, heads, kv, hd, qk_norm=True) + _dense_ffn(i, embd, ff) + [
            (p + "post_attention_norm.weight", (embd,)), (p + "post_ffw_norm.weight", (embd,))]
    kvs = _common(ctx=4096, embd=embd, blocks=n, ff=ff, heads=heads, kv_heads=kv) + (
        ("add_key_length", hd), ("add_value_length", hd), ("add_sliding_window", 512)) + _vocab(vocab)
    return Tiny("gemma3", kvs, tuple(tensors))


def gpt_oss() -> Tiny:
    """gpt-oss style: n_embd and expert rows of 320 (like 2880, not a multiple of 256), attention sinks, biases
    on attention and experts (2-D `ffn_*_exps.bias`: not quantized), 4 experts."""
    embd, ff_exp, heads, kv, hd, n, vocab, experts = 320, 320, 4, 1, 64, 2, 512, 4
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


MODELS: dict[str, Callable[[], Tiny]] = {
    "llama": llama, "qwen2": qwen2, "qwen3moe": qwen3moe, "deepseek2": deepseek2, "mixtral": mixtral,
    "gemma3": gemma3, "gpt-oss": gpt_oss,
}
MOE = ("qwen3moe", "deepseek2", "mixtral", "gpt-oss")


def _is_f32(name: str, ne: tuple[int, ...]) -> bool:
    """convert_hf_to_gguf.py's F32 tensors: 1-D, norms, routers, names not ending in .weight."""
    return len(ne) < 2 or name.endswith("_norm.weight") or not name.endswith(".weight") or "ffn_gate_inp" in name


def write_tiny(model: Tiny, path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), model.arch)
    writer.add_name(f"tiny-{model.arch}")
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    for method, value in model.kvs:
        getattr(writer, method)(value)
    for name, ne in model.tensors:
        shape = tuple(reversed(ne))  # numpy order
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
         "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS", "IQ3_S", "IQ3_M", "TQ1_0", "TQ2_0", "Q1_0", "Q2_0", "BF16")
WITH_IMATRIX = ("IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M", "IQ3_XXS", "IQ3_XS", "Q2_K_S", "Q4_0",
                "IQ4_XS")


def _cases() -> list[Any]:
    cases = []
    for arch in MODELS:
        ftypes = PLAIN + (("MXFP4_MOE",) if arch in MOE else ())
        cases += [pytest.param(arch, f, False, id=f"{arch}-{f}") for f in ftypes]
        cases += [pytest.param(arch, f, True, id=f"{arch}-{f}-imatrix") for f in WITH_IMATRIX]
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


def run_quantize(src: Path, out: Path, ftype: str, imatrix: bool) -> subprocess.CompletedProcess[str]:
    assert BINARY
    args = [BINARY, *(["--imatrix", "imatrix.gguf"] if imatrix else []), src.name, out.name, ftype, "2"]
    return subprocess.run(args, cwd=src.parent, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("arch, ftype, imatrix", _cases())
def test_llama_quantize_agrees(inputs, arch: str, ftype: str, imatrix: bool) -> None:
    src, _ = inputs(arch)
    out = src.parent / f"out-{ftype}{'-imatrix' if imatrix else ''}.gguf"
    run = run_quantize(src, out, ftype, imatrix)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    real = parse_gguf(LocalFile(str(out)))
    try:
        prediction = predict(load(str(src)), QuantOptions(ftype, imatrix=imatrix))
        real_types = [(t.name, t.gtype.name) for t in real.tensors]
        predicted_types = [(t.name, t.dtype.upper()) for t in prediction.checkpoint.tensors]
        assert dict(predicted_types) == dict(real_types), {
            n: (p, dict(real_types).get(n)) for n, p in predicted_types if dict(real_types).get(n) != p}
        assert [n for n, _ in predicted_types] == [n for n, _ in real_types]  # the loader's tensor order
        assert [t.offset for t in prediction.checkpoint.tensors] == [t.offset for t in real.tensors]
        assert prediction.header_bytes == real.data_offset
        assert prediction.file_size == real.file_size
    finally:
        out.unlink()
