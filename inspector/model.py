"""Frozen dataclasses shared by every layer: tensors, files, checkpoints. No I/O here."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Iterable, Mapping

# Role names are part of the command-line contract (DESIGN.md).
ROLES = (
    "embedding",
    "output",
    "attention",
    "routed_experts",
    "shared_experts",
    "router",
    "dense_ffn",
    "predictor",
    "norm",
    "mtp",
    "vision",
    "other",
)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as its header describes it.

    `shape` is in the file's own order: GGUF `ne` order (ne0, the row length, first) for GGUF files,
    row-major (torch) order for safetensors. `offset` is absolute within its file. `params` is the number
    of logical parameters (packed quantized formats hold several per stored element; scales hold none).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    offset: int
    file_index: int
    params: int
    role: str = "other"
    layer: int | None = None
    expert: int | None = None
    device: str | None = None

    def with_(self, **changes: Any) -> "TensorInfo":
        """A copy with some fields changed. Placement copies every tensor (100k in the largest files): filling the
        copy's __dict__ directly costs a tenth of `dataclasses.replace`."""
        fields = self.__dict__.copy()
        fields.update(changes)
        if len(fields) != len(_TENSOR_FIELDS):  # a name that is not a field was added
            unknown = changes.keys() - _TENSOR_FIELDS
            raise TypeError(f"TensorInfo has no field(s) {', '.join(sorted(unknown))}")
        copy = _new(TensorInfo)
        _set(copy, "__dict__", fields)
        return copy


_new = object.__new__
_set = object.__setattr__
_TENSOR_FIELDS = frozenset(TensorInfo.__dataclass_fields__)


def with_devices(tensors: Iterable[TensorInfo], devices: Iterable[str | None]) -> tuple[TensorInfo, ...]:
    """Copies of `tensors`, each with its device from `devices`: what a placement does to every tensor, at half the
    cost of `t.with_(device=d)` one by one (no method call, no keyword check per tensor)."""
    placed = []
    append = placed.append
    for t, device in zip(tensors, devices):
        fields = t.__dict__.copy()
        fields["device"] = device
        copy = _new(TensorInfo)
        _set(copy, "__dict__", fields)
        append(copy)
    return tuple(placed)


def tensor_info(name: str, shape: tuple[int, ...], dtype: str, nbytes: int, offset: int, file_index: int,
                params: int, role: str = "other", layer: int | None = None, expert: int | None = None,
                device: str | None = None) -> TensorInfo:
    """`TensorInfo(...)` at less than half the cost (a frozen dataclass's __init__ sets each field through
    object.__setattr__): header readers build one per tensor, 100k of them in the largest files."""
    t = _new(TensorInfo)
    _set(t, "__dict__", {"name": name, "shape": shape, "dtype": dtype, "nbytes": nbytes, "offset": offset,
                         "file_index": file_index, "params": params, "role": role, "layer": layer,
                         "expert": expert, "device": device})
    return t


@dataclass(frozen=True)
class FileInfo:
    """One file of a checkpoint: its real size, where its data region starts, and what the header expects."""

    path: str
    size: int
    header_bytes: int
    expected_size: int

    @property
    def missing_bytes(self) -> int:
        return max(0, self.expected_size - self.size)


@dataclass(frozen=True)
class Checkpoint:
    """A whole model: all its files and tensors, read from headers only."""

    source: str
    format: str  # "gguf" or "safetensors"
    architecture: str | None
    files: tuple[FileInfo, ...]
    tensors: tuple[TensorInfo, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    fetch: Mapping[str, int] | None = None  # remote sources: {"requests": n, "bytes": n} spent reading headers

    # Cached: fields are frozen and a report asks for each total several times (46k tensors each time); the value
    # lives in the instance's __dict__, which equality, repr and `replace` (fields only) do not look at.
    @cached_property
    def params(self) -> int:
        return sum(t.params for t in self.tensors)

    @cached_property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def with_(self, **changes: Any) -> "Checkpoint":
        return replace(self, **changes)
