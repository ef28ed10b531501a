"""What one decoded token touches: parameters and bytes per role and device, under a placement.

One token of single-stream decode reads (docs/speed.md):
- every attention, norm, router, shared-expert, dense-FFN and predictor tensor in full;
- of the routed experts, `n_expert_used` of `n_expert` (GGUF `%s.expert_used_count`, config `num_experts_per_tok`):
  the bytes of a stacked tensor x used / experts; for one tensor per expert the same share of each (the expected
  value under uniform routing, exact per layer when the experts are the same size);
- one row of each embedding (`get_rows`), and the whole output matrix (with tied embeddings and no separate head,
  the whole embedding matrix serves as the head);
- nothing of the MTP/nextn layers (used only for speculative drafting), the vision/audio towers (text decode) or
  tensors the runtime did not load.
A runtime may say that a tensor is read only in part (`Placement.detail.read_fractions`, name -> fraction):
PowerInfer's CPU FFN matrices are read for their cold rows only, the hot ones from their GPU copies.
Parameters are logical parameters (integer index tensors hold none); `counted` says what a runtime's copy counts.

Three published conventions of "active parameters" (docs/speed.md compares them with DeepSeek's and Mistral's):
`excluding_embeddings` (no embedding, no head), `read_per_token` (+ one embedding row + the head: what is read),
`with_full_embeddings` (+ the whole embedding matrix + the head: Mistral's count).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable, Mapping

from ..devices import device_sort_key
from ..model import ROLES, TensorInfo

SKIPPED_ROLES = {"mtp": "MTP/nextn layers (speculative drafting only)", "vision": "vision/audio towers (text decode)"}


@dataclass(frozen=True)
class ActivityRow:
    device: str
    role: str
    params: int  # parameters touched per token
    bytes: int  # bytes read per token
    stored_bytes: int  # bytes of these tensors on this device


@dataclass(frozen=True)
class TokenActivity:
    rows: tuple[ActivityRow, ...]
    total_params: int  # logical parameters of the loaded text model (MTP and towers excluded)
    excluding_embeddings: int
    read_per_token: int
    with_full_embeddings: int
    n_expert: int
    n_expert_used: int
    notes: tuple[str, ...] = field(default=())

    def bytes_by_device(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.device] = out.get(r.device, 0) + r.bytes
        return out

    @property
    def bytes_per_token(self) -> int:
        return sum(r.bytes for r in self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "params": {"total": self.total_params, "excluding_embeddings": self.excluding_embeddings,
                       "read_per_token": self.read_per_token, "with_full_embeddings": self.with_full_embeddings},
            "experts": {"count": self.n_expert, "used": self.n_expert_used},
            "bytes_per_token": self.bytes_per_token,
            "devices": {d: {r.role: {"params": r.params, "bytes": r.bytes, "stored_bytes": r.stored_bytes}
                            for r in self.rows if r.device == d} for d in self.bytes_by_device()},
            "notes": list(self.notes),
        }


INDEX_DTYPES = {"I8", "I16", "I32", "I64"}  # integer tensors are indices (PowerInfer's gpu_idx), not parameters


def elements(t: TensorInfo) -> int:
    n = 1
    for d in t.shape:
        n *= d
    return n


def counted(t: TensorInfo, split_parts: Mapping[str, Fraction]) -> int:
    """The parameters a tensor stands for. A runtime's copy has none in the file totals; it counts its elements
    when it is the output head (llama.cpp's GPU copy of tied embeddings) or part of a weight split across devices
    (named in the runtime's read fractions: PowerInfer's hot rows), and none when it duplicates a tensor counted
    elsewhere (llama.cpp's per-block rope_freqs). Integer index tensors hold no parameters."""
    if t.params or t.dtype.upper() in INDEX_DTYPES:
        return t.params
    return elements(t) if t.role == "output" or t.name in split_parts else 0


def _rows(t: TensorInfo, gguf: bool) -> int:
    """Rows of an embedding matrix: GGUF ne order keeps the row length first, safetensors last."""
    if len(t.shape) < 2:
        return 1
    return t.shape[-1] if gguf else t.shape[0]


def token_activity(tensors: Iterable[TensorInfo], *, n_expert: int, n_expert_used: int, gguf: bool,
                   read_fractions: Mapping[str, Fraction] | None = None) -> TokenActivity:
    """Per-token parameters and bytes of the loaded tensors (device set) of a placed checkpoint."""
    fractions = dict(read_fractions or {})
    loaded = [t for t in tensors if t.device is not None]
    notes: list[str] = []
    skipped = {role: [t for t in loaded if t.role == role] for role in SKIPPED_ROLES}
    for role, what in SKIPPED_ROLES.items():
        if skipped[role]:
            notes.append(f"{len(skipped[role])} {role} tensors not read per token: {what}")
    text = [t for t in loaded if t.role not in SKIPPED_ROLES]
    tied_head = None if any(t.role == "output" for t in text) else _token_embedding(text)
    if tied_head is not None:
        notes.append(f"tied embeddings: {tied_head.name} is read whole as the output head")
    experts = _expert_share(n_expert, n_expert_used, any(t.role == "routed_experts" for t in text), notes)
    acc: dict[tuple[str, str], list[Fraction]] = {}
    embed_full = embed_row = head_read = head_params = 0
    for t in text:
        share, role = fractions.get(t.name, Fraction(1)), t.role
        if t is tied_head:
            role = "output"
        elif role == "embedding":
            rows = _rows(t, gguf)
            share = Fraction(1, rows)
            embed_full += t.params
            embed_row += counted(t, fractions) // rows
        elif role == "routed_experts":
            share *= experts
        if role == "output":
            head_read += counted(t, fractions)
            head_params += t.params  # a runtime's copy of the tied matrix adds no parameter to the model
        slot = acc.setdefault((t.device or "", role), [Fraction(0), Fraction(0), Fraction(0)])
        slot[0] += counted(t, fractions) * share
        slot[1] += t.nbytes * share
        slot[2] += t.nbytes
    rows = tuple(ActivityRow(dev, role, round(v[0]), round(v[1]), int(v[2]))
                 for (dev, role), v in sorted(acc.items(), key=lambda kv: (device_sort_key(kv[0][0]),
                                                                             ROLES.index(kv[0][1]))))
    read = sum(r.params for r in rows)
    body = read - embed_row - head_read
    total = sum(t.params for t in text)
    return TokenActivity(rows, total, body, read, body + embed_full + head_params, n_expert, n_expert_used,
                         tuple(dict.fromkeys(notes)))


_TOKEN_EMBEDDING = re.compile(r"(?:^|\.)(?:token_embd|embed_tokens|wte|word_embeddings)(?:\.weight)?$")


def _token_embedding(tensors: list[TensorInfo]) -> TensorInfo | None:
    """The token embedding matrix (not position or per-layer embeddings): with no output matrix it is the head."""
    return next((t for t in tensors if t.role == "embedding" and _TOKEN_EMBEDDING.search(t.name)), None)


def _expert_share(n_expert: int, n_used: int, has_experts: bool, notes: list[str]) -> Fraction:
    if not has_experts:
        return Fraction(1)
    if n_expert <= 0 or n_used <= 0:
        notes.append("routed experts without an expert count or a used-expert count: all counted as read")
        return Fraction(1)
    return Fraction(min(n_used, n_expert), n_expert)
