"""Shared helpers for the quantization tests: llama.cpp's snapshot files, the tensor lists of their 12 models,
and Checkpoints built from tensor lists.

The snapshots (`../shared/data/llama-quant-snapshots/*.schema`, copied from llama.cpp's tests/snapshots) list, per
file type, every quantizable tensor whose chosen type differs from the default. They do not list shapes, so the
tensor lists are rebuilt here: from each model's published configuration (hidden size, heads, head size, expert
sizes, layer pattern — written below from the model cards), with names from gguf-py's TENSOR_NAMES and a check
that each tensor kind belongs to the architecture in gguf-py's MODEL_TENSORS; or, where a real per-tensor map
exists (DeepSeek-V3.1, Qwen3.5-27B), from that map. The MXFP4_MOE section of each snapshot lists every 2-D
quantizable tensor (all become Q8_0 there), which `test_quant_snapshots` uses to check the rebuilt lists.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Iterable

import gguf

from inspector.model import Checkpoint, FileInfo, TensorInfo
from inspector.formats.ggml_types import tensor_nbytes, type_by_name
from inspector.quant.header import PREAMBLE, metadata_nbytes, pad, tensor_infos_nbytes

from ._shared import SHARED, THIREUS

SNAPSHOTS = SHARED / "data" / "llama-quant-snapshots"
T = gguf.MODEL_TENSOR
A = gguf.MODEL_ARCH


# --------------------------------------------------------------------------------------------------------------
# Snapshot files
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Section:
    ftype: str
    default: str  # upper case ggml type name
    overrides: dict[str, str] = field(default_factory=dict)  # tensor name -> upper-case type


@cache
def parse_snapshot(path: Path) -> tuple[dict[str, int], list[Section]]:
    """(header numbers, sections) of one .schema file (format: its README)."""
    header: dict[str, int] = {}
    sections: list[Section] = []
    for line in path.read_text().splitlines():
        if line.startswith("# n_embd="):
            header = {k: int(v) for k, v in (kv.split("=") for kv in line[2:].split(", "))}
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            m = re.fullmatch(r"\[(\w+)\] (\w+)", line)
            assert m, line
            sections.append(Section(m.group(1), m.group(2).upper()))
        else:
            name, _, qtype = line.rpartition(" ")
            sections[-1].overrides[name] = qtype.upper()
    return header, sections


def snapshot_files() -> list[Path]:
    return sorted(SNAPSHOTS.glob("*.schema")) if SNAPSHOTS.is_dir() else []


# --------------------------------------------------------------------------------------------------------------
# Checkpoints from tensor lists
# --------------------------------------------------------------------------------------------------------------
Tensor = tuple[str, tuple[int, ...]]  # (GGUF name, ne with ne0 first)


def tensor_type(name: str, ne: tuple[int, ...], two_d: str) -> str:
    """The type convert_hf_to_gguf.py gives a tensor: F32 for 1-D, norms and non-.weight names, else `two_d`."""
    if len(ne) < 2 or name.endswith("_norm.weight") or not name.endswith(".weight") or "ffn_gate_inp" in name:
        return "F32"
    return two_d


def make_checkpoint(
    arch: str,
    tensors: Iterable[Tensor],
    kvs: dict[str, Any],
    *,
    dtype: str = "F16",
    dtypes: dict[str, str] | None = None,
    source: str = "model.gguf",
) -> Checkpoint:
    """A GGUF Checkpoint whose file header is consistent with its KVs and tensor infos (computed the GGUF way:
    preamble + KVs + infos, padded to 32; the header tests check this formula against real files)."""
    metadata = {"general.architecture": arch, **kvs}
    infos: list[TensorInfo] = []
    listed = list(tensors)
    header = pad(PREAMBLE + metadata_nbytes(metadata) + tensor_infos_nbytes((n, len(ne)) for n, ne in listed))
    offset = header
    for name, ne in listed:
        t = (dtypes or {}).get(name) or tensor_type(name, ne, dtype)
        nbytes = tensor_nbytes(type_by_name(t), ne, source=source, tensor=name)
        params = 1
        for n in ne:
            params *= n
        infos.append(TensorInfo(name, ne, t, nbytes, offset, 0, params))
        offset += pad(nbytes)
    return Checkpoint(source, "gguf", arch, (FileInfo(source, offset, header, offset),), tuple(infos), metadata)


def hparams(arch: str, *, blocks: int, heads: int | list[int], kv_heads: int | list[int], experts: int = 0,
            embd: int = 0, ff: int = 0) -> dict[str, Any]:
    kvs = {f"{arch}.block_count": blocks, f"{arch}.attention.head_count": heads,
           f"{arch}.attention.head_count_kv": kv_heads}
    if experts:
        kvs[f"{arch}.expert_count"] = experts
    if embd:
        kvs[f"{arch}.embedding_length"] = embd
    if ff:
        kvs[f"{arch}.feed_forward_length"] = ff
    return kvs


# --------------------------------------------------------------------------------------------------------------
# Tensor lists from architecture facts
# --------------------------------------------------------------------------------------------------------------
class Builder:
    """Collects (name, ne) pairs, checking each tensor kind against gguf-py's MODEL_TENSORS for the arch."""

    def __init__(self, arch: gguf.MODEL_ARCH) -> None:
        self.arch = arch
        self.tensors: list[Tensor] = []

    def add(self, kind: gguf.MODEL_TENSOR, ne: tuple[int, ...], bid: int | None = None, suffix: str = "weight") -> None:
        assert kind in gguf.MODEL_TENSORS[self.arch], f"{kind.name} is not a {self.arch.name} tensor in gguf-py"
        name = gguf.TENSOR_NAMES[kind].format(bid=bid)
        self.tensors.append((f"{name}.{suffix}" if suffix else name, ne))

    def embeddings(self, n_embd: int, n_vocab: int, *, tied: bool) -> None:
        self.add(T.TOKEN_EMBD, (n_embd, n_vocab))
        self.add(T.OUTPUT_NORM, (n_embd,))
        if not tied:
            self.add(T.OUTPUT, (n_embd, n_vocab))

    def attention(self, bid: int, n_embd: int, n_head: int, n_kv: int, head_dim: int, *, qk_norm: bool = False,
                  bias: bool = False, q_gate: bool = False) -> None:
        q_rows = n_head * head_dim * (2 if q_gate else 1)
        for kind, rows in ((T.ATTN_Q, q_rows), (T.ATTN_K, n_kv * head_dim), (T.ATTN_V, n_kv * head_dim)):
            self.add(kind, (n_embd, rows), bid)
            if bias:
                self.add(kind, (rows,), bid, "bias")
        self.add(T.ATTN_OUT, (n_head * head_dim, n_embd), bid)
        if qk_norm:
            self.add(T.ATTN_Q_NORM, (head_dim,), bid)
            self.add(T.ATTN_K_NORM, (head_dim,), bid)

    def dense_ffn(self, bid: int, n_embd: int, n_ff: int) -> None:
        self.add(T.FFN_GATE, (n_embd, n_ff), bid)
        self.add(T.FFN_UP, (n_embd, n_ff), bid)
        self.add(T.FFN_DOWN, (n_ff, n_embd), bid)

    def moe(self, bid: int, n_embd: int, n_expert: int, n_ff_exp: int, n_ff_shexp: int = 0, *, gated: bool = True,
            router_bias: bool = False, shared_gate: bool = False) -> None:
        self.add(T.FFN_GATE_INP, (n_embd, n_expert), bid)
        if router_bias:
            self.add(T.FFN_EXP_PROBS_B, (n_expert,), bid, "bias")
        if gated:
            self.add(T.FFN_GATE_EXP, (n_embd, n_ff_exp, n_expert), bid)
        self.add(T.FFN_UP_EXP, (n_embd, n_ff_exp, n_expert), bid)
        self.add(T.FFN_DOWN_EXP, (n_ff_exp, n_embd, n_expert), bid)
        if n_ff_shexp:
            if shared_gate:
                self.add(T.FFN_GATE_INP_SHEXP, (n_embd,), bid)
            if gated:
                self.add(T.FFN_GATE_SHEXP, (n_embd, n_ff_shexp), bid)
            self.add(T.FFN_UP_SHEXP, (n_embd, n_ff_shexp), bid)
            self.add(T.FFN_DOWN_SHEXP, (n_ff_shexp, n_embd), bid)


@dataclass(frozen=True)
class Model:
    arch: str
    tensors: tuple[Tensor, ...]
    kvs: dict[str, Any]

    def checkpoint(self, dtype: str = "F16") -> Checkpoint:
        return make_checkpoint(self.arch, self.tensors, self.kvs, dtype=dtype)


def _llama_like(arch: gguf.MODEL_ARCH, *, n_embd: int, n_ff: int, blocks: int, n_head: int, n_kv: int, head_dim: int,
                n_vocab: int, tied: bool, qk_norm: bool, gemma_norms: bool = False, rope_freqs: int = 0) -> Model:
    b = Builder(arch)
    b.embeddings(n_embd, n_vocab, tied=tied)
    if rope_freqs:
        b.add(T.ROPE_FREQS, (rope_freqs,))
    for i in range(blocks):
        b.add(T.ATTN_NORM, (n_embd,), i)
        b.attention(i, n_embd, n_head, n_kv, head_dim, qk_norm=qk_norm)
        b.add(T.FFN_PRE_NORM if gemma_norms else T.FFN_NORM, (n_embd,), i)
        if gemma_norms:
            b.add(T.ATTN_POST_NORM, (n_embd,), i)
            b.add(T.FFN_POST_NORM, (n_embd,), i)
        b.dense_ffn(i, n_embd, n_ff)
    name = gguf.MODEL_ARCH_NAMES[arch]
    kvs = hparams(name, blocks=blocks, heads=n_head, kv_heads=n_kv, embd=n_embd, ff=n_ff)
    return Model(name, tuple(b.tensors), kvs)


def qwen3_0_6b() -> Model:  # Qwen/Qwen3-0.6B config.json; ggml-org's GGUF keeps output.weight
    return _llama_like(A.QWEN3, n_embd=1024, n_ff=3072, blocks=28, n_head=16, n_kv=8, head_dim=128,
                       n_vocab=151936, tied=False, qk_norm=True)


def qwen3_14b() -> Model:
    return _llama_like(A.QWEN3, n_embd=5120, n_ff=17408, blocks=40, n_head=40, n_kv=8, head_dim=128,
                       n_vocab=151936, tied=False, qk_norm=True)


def llama_3_1_70b() -> Model:  # rope_freqs: Llama-3.1 rope scaling, head_dim/2 factors
    return _llama_like(A.LLAMA, n_embd=8192, n_ff=28672, blocks=80, n_head=64, n_kv=8, head_dim=128,
                       n_vocab=128256, tied=False, qk_norm=False, rope_freqs=64)


def gemma_3_4b() -> Model:  # tied embeddings: no output.weight
    return _llama_like(A.GEMMA3, n_embd=2560, n_ff=10240, blocks=34, n_head=8, n_kv=4, head_dim=256,
                       n_vocab=262144, tied=True, qk_norm=True, gemma_norms=True)


def gpt_oss_120b() -> Model:
    n_embd, blocks, n_head, n_kv, head_dim, n_expert, n_ff = 2880, 36, 64, 8, 64, 128, 2880
    b = Builder(A.GPT_OSS)
    b.embeddings(n_embd, 201088, tied=False)
    for i in range(blocks):
        b.add(T.ATTN_NORM, (n_embd,), i)
        b.attention(i, n_embd, n_head, n_kv, head_dim, bias=True)
        b.add(T.ATTN_OUT, (n_embd,), i, "bias")
        b.add(T.ATTN_SINKS, (n_head,), i, "")
        b.add(T.ATTN_POST_NORM, (n_embd,), i)
        b.moe(i, n_embd, n_expert, n_ff)
        b.add(T.FFN_GATE_INP, (n_expert,), i, "bias")
        for kind in (T.FFN_GATE_EXP, T.FFN_UP_EXP, T.FFN_DOWN_EXP):
            b.add(kind, (n_ff, n_expert), i, "bias")
    return Model("gpt-oss", tuple(b.tensors),
                 hparams("gpt-oss", blocks=blocks, heads=n_head, kv_heads=n_kv, experts=n_expert, embd=n_embd, ff=n_ff))


# Nemotron-3-Nano-30B-A3B's hybrid_override_pattern: M = Mamba-2, E = MoE FFN, * = attention (52 blocks).
NEMOTRON_NANO_PATTERN = "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME"


def nemotron_3_nano() -> Model:
    n_embd, n_head, n_kv, head_dim = 2688, 32, 2, 128
    d_inner, n_groups, d_state, n_ssm_heads = 64 * 64, 8, 128, 64
    b = Builder(A.NEMOTRON_H_MOE)
    b.embeddings(n_embd, 131072, tied=False)
    for i, kind in enumerate(NEMOTRON_NANO_PATTERN):
        b.add(T.ATTN_NORM, (n_embd,), i)
        if kind == "M":
            conv = d_inner + 2 * n_groups * d_state
            b.add(T.SSM_IN, (n_embd, 2 * d_inner + 2 * n_groups * d_state + n_ssm_heads), i)
            b.add(T.SSM_CONV1D, (4, conv), i)
            b.add(T.SSM_CONV1D, (conv,), i, "bias")
            b.add(T.SSM_DT, (n_ssm_heads,), i, "bias")
            b.add(T.SSM_A, (1, n_ssm_heads), i, "")
            b.add(T.SSM_D, (1, n_ssm_heads), i, "")
            b.add(T.SSM_NORM, (d_inner // n_groups, n_groups), i)
            b.add(T.SSM_OUT, (d_inner, n_embd), i)
        elif kind == "*":
            b.attention(i, n_embd, n_head, n_kv, head_dim)
        else:
            b.moe(i, n_embd, 128, 1856, 3712, gated=False, router_bias=True)
    heads_kv = [n_kv if k == "*" else 0 for k in NEMOTRON_NANO_PATTERN]
    arch = "nemotron_h_moe"
    return Model(arch, tuple(b.tensors), hparams(arch, blocks=52, heads=n_head, kv_heads=heads_kv, experts=128,
                                                 embd=n_embd))


def _qwen_hybrid(arch: gguf.MODEL_ARCH, *, n_embd: int, blocks: int, n_head: int, n_kv: int, n_k_heads: int,
                 n_v_heads: int, n_vocab: int, n_expert: int = 0, n_ff_exp: int = 0, n_ff: int = 0,
                 split_ab: bool) -> Model:
    """Qwen3-Next / Qwen3.5: every 4th block full attention (gated q), the others gated delta-net."""
    head_dim, lin_dim = 256, 128
    b = Builder(arch)
    b.embeddings(n_embd, n_vocab, tied=False)
    for i in range(blocks):
        b.add(T.ATTN_NORM, (n_embd,), i)
        b.add(T.ATTN_POST_NORM, (n_embd,), i)
        if i % 4 == 3:
            b.attention(i, n_embd, n_head, n_kv, head_dim, qk_norm=True, q_gate=True)
        else:
            qkv = 2 * n_k_heads * lin_dim + n_v_heads * lin_dim
            b.add(T.ATTN_QKV, (n_embd, qkv), i)
            b.add(T.ATTN_GATE, (n_embd, n_v_heads * lin_dim), i)
            if split_ab:
                b.add(T.SSM_ALPHA, (n_embd, n_v_heads), i)
                b.add(T.SSM_BETA, (n_embd, n_v_heads), i)
            else:
                b.add(T.SSM_BETA_ALPHA, (n_embd, 2 * n_v_heads), i)
            b.add(T.SSM_CONV1D, (4, qkv), i)
            b.add(T.SSM_DT, (n_v_heads,), i, "bias")
            b.add(T.SSM_A, (n_v_heads,), i, "")
            b.add(T.SSM_NORM, (lin_dim,), i)
            b.add(T.SSM_OUT, (n_v_heads * lin_dim, n_embd), i)
        if n_expert:
            b.moe(i, n_embd, n_expert, n_ff_exp, n_ff_exp, shared_gate=True)
        else:
            b.dense_ffn(i, n_embd, n_ff)
    name = gguf.MODEL_ARCH_NAMES[arch]
    return Model(name, tuple(b.tensors), hparams(name, blocks=blocks, heads=n_head, kv_heads=n_kv, experts=n_expert,
                                                 embd=n_embd, ff=n_ff))


def qwen3_coder_next() -> Model:
    return _qwen_hybrid(A.QWEN3NEXT, n_embd=2048, blocks=48, n_head=16, n_kv=2, n_k_heads=16, n_v_heads=32,
                        n_vocab=151936, n_expert=512, n_ff_exp=512, split_ab=False)


def qwen3_5_397b() -> Model:
    return _qwen_hybrid(A.QWEN35MOE, n_embd=4096, blocks=60, n_head=32, n_kv=2, n_k_heads=16, n_v_heads=64,
                        n_vocab=248320, n_expert=512, n_ff_exp=1024, split_ab=True)


def _dense_lead_then_moe(arch: gguf.MODEL_ARCH, name: str, *, n_embd: int, blocks: int, n_head: int, n_kv: int,
                         head_dim: int, n_vocab: int, dense_blocks: int, n_ff: int, n_expert: int, n_ff_exp: int,
                         attention: dict[str, bool],
                         after_attention: tuple[tuple[gguf.MODEL_TENSOR, tuple[int, ...]], ...]) -> Model:
    """Untied embeddings; each block: norm, attention, the `after_attention` tensors, then a dense FFN in the first
    `dense_blocks` blocks and routed experts (with a router bias, shared expert as wide as one expert) after."""
    b = Builder(arch)
    b.embeddings(n_embd, n_vocab, tied=False)
    for i in range(blocks):
        b.add(T.ATTN_NORM, (n_embd,), i)
        b.attention(i, n_embd, n_head, n_kv, head_dim, **attention)
        for kind, ne in after_attention:
            b.add(kind, ne, i)
        if i < dense_blocks:
            b.dense_ffn(i, n_embd, n_ff)
        else:
            b.moe(i, n_embd, n_expert, n_ff_exp, n_ff_exp, router_bias=True)
    return Model(name, tuple(b.tensors), hparams(name, blocks=blocks, heads=n_head, kv_heads=n_kv, experts=n_expert,
                                                 embd=n_embd, ff=n_ff))


def step_3_5_flash() -> Model:  # blocks 0-2 dense, 3..44 MoE; a per-head attention gate
    n_embd, n_head = 4096, 64
    return _dense_lead_then_moe(A.STEP35, "step35", n_embd=n_embd, blocks=45, n_head=n_head, n_kv=8, head_dim=128,
                                n_vocab=128896, dense_blocks=3, n_ff=11264, n_expert=288, n_ff_exp=1280,
                                attention={"qk_norm": True},
                                after_attention=((T.ATTN_GATE, (n_embd, n_head)), (T.FFN_NORM, (n_embd,))))


def glm_4_6v() -> Model:  # GLM-4.5-Air-sized text model: block 0 dense, 1..45 MoE, biased q/k/v
    return _dense_lead_then_moe(A.GLM4_MOE, "glm4moe", n_embd=4096, blocks=46, n_head=96, n_kv=8, head_dim=128,
                                n_vocab=151552, dense_blocks=1, n_ff=10944, n_expert=128, n_ff_exp=1408,
                                attention={"bias": True}, after_attention=((T.ATTN_POST_NORM, (4096,)),))


# --------------------------------------------------------------------------------------------------------------
# Tensor lists from real per-tensor maps
# --------------------------------------------------------------------------------------------------------------
def read_thireus_map(path: Path) -> list[Tensor]:
    tensors = []
    for line in path.read_text().splitlines():
        fields = line.split(":")
        name, shape = fields[2], fields[3]
        ne = tuple(int(x) for x in shape.removeprefix("shape=(").rstrip(")").split(",") if x.strip())
        tensors.append((name, ne))
    return tensors


def deepseek_v3_1() -> Model:
    tensors = read_thireus_map(THIREUS / "DeepSeek-V3.1-Terminus" / "tensors.bf16.map")
    return Model("deepseek2", tuple(tensors), hparams("deepseek2", blocks=61, heads=128, kv_heads=1, experts=256,
                                                      embd=7168, ff=18432))


def qwen3_5_27b() -> Model:
    tensors = read_thireus_map(THIREUS / "Qwen3.5-27B" / "tensors.bf16.map")
    return Model("qwen35", tuple(tensors), hparams("qwen35", blocks=64, heads=24, kv_heads=4, embd=5120, ff=17408))


# snapshot file stem -> its model
SNAPSHOT_MODELS = {
    "qwen3-0.6b": qwen3_0_6b,
    "qwen3-14b": qwen3_14b,
    "meta-llama-3.1-70b-instruct": llama_3_1_70b,
    "gemma-3-4b-it": gemma_3_4b,
    "gpt-oss-120b": gpt_oss_120b,
    "nvidia-nemotron-3-nano-30b-a3b": nemotron_3_nano,
    "qwen3-coder-next": qwen3_coder_next,
    "qwen3.5-397b-a17b": qwen3_5_397b,
    "qwen3.6-27b": qwen3_5_27b,  # the file's header says "Model: Qwen3.5-27B"
    "step-3.5-flash": step_3_5_flash,
    "glm-4.6v": glm_4_6v,
    "deepseek-v3.1": deepseek_v3_1,
}


@cache
def snapshot_model(stem: str) -> Model:
    return SNAPSHOT_MODELS[stem]()


@cache
def snapshot_checkpoint(stem: str) -> Checkpoint:
    return snapshot_model(stem).checkpoint()
