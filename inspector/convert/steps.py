"""The kinds of step convert_hf_to_gguf.py takes on tensors, without knowing any architecture.

Renames (regex substitutions), `--outtype auto`, reshapes (transpose, view, truncate, split: `torch.split`,
`chunk`, every-n-th-row interleave), and expert stacking (`torch.stack` of per-expert tensors, new dim 0, as each
MoE class's `modify_tensors` does once a layer's set is complete). `engine.py` applies them in the converter's
order with the facts of `rules/hf_architectures.yaml`.
"""
from __future__ import annotations

import math
import re
from collections import ChainMap
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import gguf

from ..model import TensorInfo
from .expr import Unavailable
from .table import ConversionError, NameRule, Transform

if TYPE_CHECKING:
    from .engine import Converter


@dataclass
class Pending:
    """A tensor on its way through the converter: torch-order shape, source dtype, where it came from."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    sources: tuple[TensorInfo, ...]
    raw_type: str | None = None  # a ggml type written as is (MXFP4), bypassing the outtype
    synthesized: bool = False  # split, stacked, reshaped or generated: no single source location


@dataclass
class Log:
    """What the conversion dropped, assumed or could not do."""

    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dropped: dict[str, list[TensorInfo]] = field(default_factory=dict)
    material: set[str] = field(default_factory=set)

    def drop(self, reason: str, tensor: TensorInfo, material: bool = False) -> None:
        self.dropped.setdefault(reason, []).append(tensor)
        if material:
            self.material.add(reason)

    def finish(self) -> None:
        for reason, tensors in self.dropped.items():
            nbytes = sum(t.nbytes for t in tensors)
            line = (f"converter view: dropped {len(tensors)} tensor{'s' if len(tensors) != 1 else ''} "
                    f"({nbytes:,} bytes in the checkpoint): {reason}")
            self.notes.append(line)
            if reason in self.material:
                self.warnings.append(line)


class ExpertBuffer:
    """Per-expert tensors held until a layer's set is complete, then stacked as the class does."""

    def __init__(self, conv: "Converter") -> None:
        self.conv = conv
        self.rule = conv.spec.experts
        self.count = self.rule.count.get(conv.names) if self.rule else None
        self.layers: dict[str, dict[tuple[str, int], Pending]] = {}

    def add(self, item: Pending) -> list[Pending] | None:
        """None when the tensor is not a per-expert one; else the stacked tensors once the layer is complete."""
        if self.rule is None:
            return None
        m = self.rule.pattern.fullmatch(item.name)
        if m is None or m.group("w") not in self.rule.order:
            return None
        if not isinstance(self.count, int) or self.count <= 0:
            self.conv.log.warnings.append(f"converter view: expert count {self.rule.count.text!r} is not in "
                                          "config.json; per-expert tensors kept unstacked")
            self.rule = None
            return None
        bid = m.group("bid")
        layer = self.layers.setdefault(bid, {})
        layer[(m.group("w"), int(m.group("xid")))] = item
        if len(layer) < self.count * len(self.rule.order):
            return []
        del self.layers[bid]
        return self._stack(bid, layer)

    def _stack(self, bid: str, layer: dict[tuple[str, int], Pending]) -> list[Pending]:
        assert self.rule is not None
        out = []
        for w in self.rule.order:
            parts = [layer.get((w, x)) for x in range(self.count)]
            present = [p for p in parts if p is not None]
            if len(present) != self.count or len({p.shape for p in present}) != 1:
                self.conv.log.warnings.append(
                    f"converter view: layer {bid} {w}: experts 0..{self.count - 1} are not all present with one "
                    "shape; kept unstacked")
                out.extend(present)
                continue
            first = present[0]
            out.append(Pending(self.rule.merged.format(bid=bid, w=w), (self.count,) + first.shape, first.dtype,
                               tuple(s for p in present for s in p.sources), synthesized=True))
        return out

    def leftovers(self) -> list[Pending]:
        out = []
        for bid, layer in self.layers.items():
            self.conv.log.warnings.append(
                f"converter view: layer {bid} has {len(layer)} per-expert tensors, not the {self.count} x "
                f"{len(self.rule.order) if self.rule else 0} the converter stacks (it would stop with "
                "'Unprocessed experts'); kept unstacked")
            out.extend(layer.values())
        return out


def rename(rules: Sequence[NameRule], name: str, names: Mapping[str, Any] | None = None) -> str:
    """Apply regex renames in order; a rename with expressions evaluates them over `names` and the match's groups."""
    for rule in rules:
        if not rule.exprs:
            name = rule.pattern.sub(rule.to or "", name)
            continue

        def expand(m: re.Match[str], rule: NameRule = rule) -> str:
            scope = ChainMap({k: v for k, v in m.groupdict().items() if v is not None}, dict(names or {}))
            out = m.expand(rule.to or "")
            for i, expr in enumerate(rule.exprs):
                out = out.replace(f"{{E{i}}}", str(expr.get(scope)))
            return out

        name = rule.pattern.sub(expand, name)
    return name


def guess_outtype(tensors: Sequence[TensorInfo]) -> str:
    """--outtype auto: the first tensor of >= 2 dims that is BF16 or F16 decides; F16 when there is none."""
    for t in tensors:
        if len(t.shape) >= 2 and t.dtype in ("BF16", "F16"):
            return t.dtype
    return "F16"


def reshape(tr: Transform, shape: list[int], names: Mapping[str, Any]) -> list[list[int]]:
    """The shapes a transform produces from one tensor (elements are checked to be preserved)."""
    elements = math.prod(shape)
    if tr.transpose is not None:
        a, b = tr.transpose
        shape[a], shape[b] = shape[b], shape[a]
    if tr.view is not None:
        dims = [d.value(names) for d in tr.view]
        if any(not isinstance(d, int) for d in dims) or dims.count(-1) > 1:
            raise Unavailable("view dimensions are not integers")
        known = math.prod(d for d in dims if d != -1)
        if -1 in dims:
            if known <= 0 or elements % known:
                raise Unavailable(f"{shape} cannot be viewed as {dims}")
            dims[dims.index(-1)] = elements // known
        if math.prod(dims) != elements:
            raise Unavailable(f"{shape} cannot be viewed as {dims}")
        shape = dims
    if tr.truncate_dim is not None:
        size = tr.truncate_size.value(names) if tr.truncate_size else None
        if not isinstance(size, int) or size <= 0:
            raise Unavailable("truncate size is not a positive integer")
        shape[tr.truncate_dim] = min(shape[tr.truncate_dim], size)
    if tr.pad_dim is not None:
        size = tr.pad_size.value(names) if tr.pad_size else None
        if not isinstance(size, int) or size <= 0:
            raise Unavailable("pad size is not a positive integer")
        shape[tr.pad_dim] = max(shape[tr.pad_dim], size)
    if tr.split_dim is None:
        pieces = [shape]
    else:
        pieces = _split(tr, shape, names)
    for o, piece in zip(tr.outputs, pieces):
        if o.transpose is not None:
            a, b = o.transpose
            piece[a], piece[b] = piece[b], piece[a]
    return pieces


def _split(tr: Transform, shape: list[int], names: Mapping[str, Any]) -> list[list[int]]:
    dim = tr.split_dim if tr.split_dim >= 0 else len(shape) + tr.split_dim  # type: ignore[operator]
    if not 0 <= dim < len(shape):
        raise Unavailable(f"no dimension {tr.split_dim} in {shape}")
    total = shape[dim]
    if tr.split_sizes is not None:
        sizes = [s.value(names) for s in tr.split_sizes]
    else:
        n = tr.split_parts or tr.split_interleave or 1
        sizes = [total // n] * n if total % n == 0 else []
    if not sizes or any(not isinstance(s, int) or s <= 0 for s in sizes) or sum(sizes) != total:
        raise Unavailable(f"dimension {dim} of {shape} does not split into {sizes or 'equal parts'}")
    return [shape[:dim] + [s] + shape[dim + 1:] for s in sizes]


# Tensors the converter's own (newer) gguf-py lists for an architecture that gguf 0.19.0 does not yet: the NextN
# block of Qwen3.5 (conversion/qwen.py _QwenMtpMixin names it through MODEL_TENSOR.NEXTN_*).
_LATER_TENSORS: dict[str, tuple[str, ...]] = {
    # Glm4MoeLiteModel keeps the NextN block of a DEEPSEEK2-arch file
    "DEEPSEEK2": ("NEXTN_EH_PROJ", "NEXTN_ENORM", "NEXTN_HNORM", "NEXTN_SHARED_HEAD_NORM", "NEXTN_EMBED_TOKENS",
                  "NEXTN_SHARED_HEAD_HEAD"),
    "QWEN35": ("NEXTN_EH_PROJ", "NEXTN_ENORM", "NEXTN_HNORM", "NEXTN_SHARED_HEAD_NORM", "NEXTN_EMBED_TOKENS",
               "NEXTN_SHARED_HEAD_HEAD"),
    "QWEN35MOE": ("NEXTN_EH_PROJ", "NEXTN_ENORM", "NEXTN_HNORM", "NEXTN_SHARED_HEAD_NORM", "NEXTN_EMBED_TOKENS",
                  "NEXTN_SHARED_HEAD_HEAD"),
}


@lru_cache(maxsize=64)
def gguf_names(model_arch: gguf.MODEL_ARCH, block_count: int) -> frozenset[str]:
    """Every tensor name gguf-py defines for the architecture (with .weight and .bias), for names already GGUF."""
    names = set()
    later = [gguf.MODEL_TENSOR[k] for k in _LATER_TENSORS.get(model_arch.name, ()) if hasattr(gguf.MODEL_TENSOR, k)]
    for key in [*gguf.MODEL_TENSORS[model_arch], *later]:
        template = gguf.TENSOR_NAMES[key]
        stems = [template.format(bid=b) for b in range(block_count)] if "{bid}" in template else [template]
        for stem in stems:
            names.update((stem + ".weight", stem + ".bias", stem))
    return frozenset(names)


def check_unique(source: str, tensors: Sequence[TensorInfo]) -> None:
    seen: set[str] = set()
    for t in tensors:
        if t.name in seen:
            raise ConversionError(f"{source}: the converter view writes {t.name!r} twice; the architecture table "
                                  "maps two tensors to one name")
        seen.add(t.name)
