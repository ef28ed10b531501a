"""Exact aggregates of a placed checkpoint: by role, layer, dtype and device. Integers only; rendering is elsewhere."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .devices import device_sort_key
from .model import ROLES, Checkpoint, TensorInfo

if TYPE_CHECKING:
    from .activity import ActivityReport
    from .memory.budget import BudgetVerdict
    from .memory.train import TrainMemory
    from .runtimes.base import MemoryReport


@dataclass(frozen=True)
class Group:
    """Totals of the tensors that share one key (a role, a layer, a dtype, a device)."""

    key: str
    tensors: int
    params: int
    bytes: int
    dtypes: tuple[tuple[str, int], ...]  # (dtype, bytes), largest first
    roles: tuple["Group", ...] = field(default=())


@dataclass(frozen=True)
class QuantInfo:
    """What `--quant` did: read the files of that quant (`selected`), or predicted llama-quantize's output."""

    mode: str  # "selected" | "predicted"
    ftype: str | None
    rules: str = "current"
    file_size: int = 0
    header_bytes: int = 0
    header_exact: bool = True
    data_bytes: int = 0
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        if self.mode == "selected":
            return {"mode": self.mode, "ftype": self.ftype}
        return {"mode": self.mode, "ftype": self.ftype, "rules": self.rules, "file_size": self.file_size,
                "header_bytes": self.header_bytes, "header_exact": self.header_exact, "data_bytes": self.data_bytes,
                "notes": list(self.notes)}


@dataclass(frozen=True)
class Inspection:
    """Everything `inspect` reports: the placed checkpoint, its aggregates, and what else was asked for."""

    checkpoint: Checkpoint
    plan: str  # one line saying how devices were chosen
    by_role: tuple[Group, ...]
    by_device: tuple[Group, ...]
    flags_line: str | None = None  # runtime flags that reproduce the plan (llama.cpp)
    # The file's own totals (tensors, params, bytes) before placement: a runtime may load copies (llama.cpp's
    # tied output on a GPU), skip tensors (MTP layers) or re-format them (Marlin), which changes the placed sums.
    file_totals: tuple[int, int, int] | None = None
    notes: tuple[str, ...] = ()  # what the plan assumed, one sentence each
    runtime: str = "literal"
    quant: QuantInfo | None = None
    recipe_lines: int | None = None  # a recipe (regex=type lines) applied literally
    memory: "MemoryReport | None" = None
    budget: "BudgetVerdict | None" = None
    train: "TrainMemory | None" = None
    advice: tuple[str, ...] = ()  # what to try, with numbers, when the plan is over a budget
    activity: "ActivityReport | None" = None  # --activity, --bandwidth, --rules-of-thumb (docs/speed.md)

    @property
    def tensor_count(self) -> int:
        return self.file_totals[0] if self.file_totals else len(self.checkpoint.tensors)

    @property
    def params(self) -> int:
        return self.file_totals[1] if self.file_totals else self.checkpoint.params

    @property
    def bytes(self) -> int:
        """Tensor data bytes of the file (or of the predicted file)."""
        return self.file_totals[2] if self.file_totals else self.checkpoint.nbytes

    def groups(self, view: str) -> tuple["Group", ...]:
        """The rows of a view: by role (computed once), layer or dtype."""
        if view == "layer":
            return by_layer(self.checkpoint.tensors)
        if view == "dtype":
            return by_dtype(self.checkpoint.tensors)
        return self.by_role

    @property
    def placed_bytes(self) -> int:
        """Bytes on all devices under the plan: copies, skipped tensors and runtime formats included."""
        return self.checkpoint.nbytes


def group(tensors: Iterable[TensorInfo], key: Callable[[TensorInfo], str], order: Callable[[str], object] = str,
          with_roles: bool = False) -> tuple[Group, ...]:
    """Sum tensors by `key`, sorted by `order`: one pass over the tensors (100k-tensor files, docs/performance.md)."""
    # key -> [tensors, params, bytes, {dtype: bytes}, {role: [tensors, params, bytes, {dtype: bytes}]}]
    buckets: dict[str, list[Any]] = {}
    for t in tensors:
        k = key(t)
        sums = buckets.get(k)
        if sums is None:
            sums = buckets[k] = [0, 0, 0, {}, {}]
        _add(sums, t)
        if with_roles:
            role = sums[4].get(t.role)
            if role is None:
                role = sums[4][t.role] = [0, 0, 0, {}, None]
            _add(role, t)
    return tuple(_group(k, buckets[k]) for k in sorted(buckets, key=order))


def _add(sums: list[Any], t: TensorInfo) -> None:
    sums[0] += 1
    sums[1] += t.params
    sums[2] += t.nbytes
    dtypes = sums[3]
    dtypes[t.dtype] = dtypes.get(t.dtype, 0) + t.nbytes


def _group(key: str, sums: list[Any]) -> Group:
    roles = sums[4]
    return Group(
        key=key,
        tensors=sums[0],
        params=sums[1],
        bytes=sums[2],
        dtypes=tuple(sorted(sums[3].items(), key=lambda kv: (-kv[1], kv[0]))),
        roles=tuple(_group(r, roles[r]) for r in sorted(roles, key=ROLES.index)) if roles else (),
    )


def by_role(tensors: Iterable[TensorInfo]) -> tuple[Group, ...]:
    return group(tensors, lambda t: t.role, ROLES.index)


NOT_LOADED = "not loaded"  # tensors the runtime skips (llama.cpp's MTP layers without MTP drafting)


def by_device(tensors: Iterable[TensorInfo]) -> tuple[Group, ...]:
    return group(tensors, lambda t: t.device or NOT_LOADED, device_sort_key, with_roles=True)


def by_dtype(tensors: Iterable[TensorInfo]) -> tuple[Group, ...]:
    return group(tensors, lambda t: t.dtype)


def layer_key(t: TensorInfo) -> str:
    return "-" if t.layer is None else str(t.layer)


def _layer_order(key: str) -> tuple[int, int]:
    return (1, 0) if key == "-" else (0, int(key))


def by_layer(tensors: Iterable[TensorInfo]) -> tuple[Group, ...]:
    """Per block index; tensors outside blocks (embeddings, output, vision) under `-`."""
    return group(tensors, layer_key, _layer_order, with_roles=True)


def summarize(checkpoint: Checkpoint, plan: str, *, flags_line: str | None = None,
              notes: tuple[str, ...] = (), source: Checkpoint | None = None, **typed: Any) -> Inspection:
    """Aggregate a placed checkpoint; `source` is the checkpoint before placement, whose totals are the file's;
    `typed` are the Inspection fields beyond the aggregates (runtime, quant, memory, budget, train …)."""
    totals = (len(source.tensors), source.params, source.nbytes) if source is not None else None
    roles, devices = _by_role_and_device(checkpoint.tensors)
    return Inspection(checkpoint, plan, roles, devices, flags_line=flags_line, notes=notes, file_totals=totals,
                      **typed)


def _by_role_and_device(tensors: Iterable[TensorInfo]) -> tuple[tuple[Group, ...], tuple[Group, ...]]:
    """`by_role` and `by_device` from one pass over the tensors: sums per (device, role), then merged."""
    cells: dict[tuple[str, str], list[Any]] = {}
    for t in tensors:
        key = (t.device or NOT_LOADED, t.role)
        sums = cells.get(key)
        if sums is None:
            sums = cells[key] = [0, 0, 0, {}, None]
        sums[0] += 1
        sums[1] += t.params
        nbytes = t.nbytes
        sums[2] += nbytes
        dtypes = sums[3]
        dtypes[t.dtype] = dtypes.get(t.dtype, 0) + nbytes
    roles: dict[str, list[Any]] = {}
    devices: dict[str, list[Any]] = {}
    for (device, role), sums in cells.items():
        _merge(roles.setdefault(role, [0, 0, 0, {}, None]), sums)
        into = devices.setdefault(device, [0, 0, 0, {}, {}])
        _merge(into, sums)
        into[4][role] = sums
    return (tuple(_group(r, roles[r]) for r in sorted(roles, key=ROLES.index)),
            tuple(_group(d, devices[d]) for d in sorted(devices, key=device_sort_key)))


def _merge(total: list[Any], sums: list[Any]) -> None:
    total[0] += sums[0]
    total[1] += sums[1]
    total[2] += sums[2]
    for dtype, nbytes in sums[3].items():
        total[3][dtype] = total[3].get(dtype, 0) + nbytes
