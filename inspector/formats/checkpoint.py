"""Assembling a Checkpoint from the headers of a resolved source: split sets, index sets, truncation warnings."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from ..errors import FormatError, shown
from ..model import Checkpoint, FileInfo, TensorInfo, tensor_info
from ..sources.base import ByteSource, ResolvedSource
from .gguf import GgufHeader, parse_gguf
from .packed import logical_params
from .safetensors import SafetensorsHeader, parse_safetensors

SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")
MAX_FILES_NAMED = 3  # beyond this many short files, one summary warning replaces per-file ones


# (role, layer, expert) of each tensor name, all names at once: roles.classify_names, handed down by the caller
Roles = Callable[[list[str]], list[tuple[str, int | None, int | None]]]


def read_checkpoint(resolved: ResolvedSource, roles: Roles | None = None) -> Checkpoint:
    """Parse every file's header and combine them into one Checkpoint; with `roles`, each tensor gets its role,
    layer and expert as it is built (one record per tensor, not a copy per step), else they are not assigned."""
    if resolved.format == "gguf":
        return _gguf_checkpoint(resolved, roles)
    return _safetensors_checkpoint(resolved, roles)


def _no_roles(names: list[str]) -> list[tuple[str, int | None, int | None]]:
    return [("other", None, None)] * len(names)


def _parse_all(files: Iterable[ByteSource], parse: Any) -> list[Any]:
    headers = []
    for f in files:
        try:
            headers.append(parse(f))
        finally:
            close = getattr(f, "close", None)
            if close:  # a 1,000-shard set would exhaust file descriptors otherwise
                close()
    return headers


def _gguf_checkpoint(resolved: ResolvedSource, roles: Roles | None) -> Checkpoint:
    headers: list[GgufHeader] = _parse_all(resolved.files, parse_gguf)
    warnings = _check_split(headers)
    found = iter((roles or _no_roles)([t.name for h in headers for t in h.tensors]))
    records = []
    for i, h in enumerate(headers):
        # zip asks h.tensors first: at a file's end it stops without taking the next file's first role
        for (name, ne, gtype, nbytes, offset), (role, layer, expert) in zip(h.tensors, found):
            params = 1
            for d in ne:
                params *= d
            records.append(tensor_info(name, ne, gtype.name, nbytes, offset, i, params, role, layer, expert))
    tensors = tuple(records)
    if len(headers) > 1:  # parse_gguf already refused a name twice in one file
        _check_unique_names(resolved.description, tensors)
    files = tuple(FileInfo(h.source, h.file_size, h.data_offset, h.expected_size) for h in headers)
    metadata = {k: v for k, v in headers[0].metadata.items() if k not in SPLIT_KEYS}
    architecture = metadata.get("general.architecture")
    if architecture is not None and not isinstance(architecture, str):
        # A corrupt header can store any type here; report.py escapes the name as text and crashed on an int.
        warnings.append(f"{headers[0].source}: general.architecture is {shown(architecture)}, not a string; ignored")
        architecture = None
    _check_layer_counts(headers[0].source, metadata)
    return Checkpoint(
        source=resolved.description,
        format="gguf",
        architecture=architecture,
        files=files,
        tensors=tensors,
        metadata=metadata,
        config=resolved.config,
        warnings=tuple(warnings) + _truncation_warnings(files),
    )


# Later layers loop over blocks and allocate per-layer arrays: a hostile block count must fail here, not there.
# The largest real models have ~100-200 blocks.
MAX_BLOCKS = 65536


def _check_layer_counts(source: str, metadata: Mapping[str, Any]) -> None:
    for key, value in metadata.items():
        if key.endswith(".block_count") and isinstance(value, int) and not 0 <= value <= MAX_BLOCKS:
            raise FormatError(source, f"{key} is {value:,}, beyond any real model (at most {MAX_BLOCKS:,})",
                              hint="the file is corrupt")


def _check_split(headers: list[GgufHeader]) -> list[str]:
    """Check llama.cpp's split keys (tools/gguf-split): split.no 0-based, same split.count, total tensors."""
    first = headers[0].metadata
    count = first.get("split.count")
    if len(headers) == 1:
        if isinstance(count, int) and count > 1:
            no = first.get("split.no", 0)
            # split.no comes from the file: `no + 1` raised TypeError (a traceback) when it was a string.
            shard = f"shard {no + 1}" if isinstance(no, int) else f"a shard (split.no {shown(no)})"
            return [(f"{headers[0].source}: is {shard} of a {count}-file split set, "
                     "but its name does not say so; only this file was read")]
        return []
    if count != len(headers):
        raise FormatError(headers[0].source, f"split.count is {shown(count)} but the set has {len(headers)} files")
    for i, h in enumerate(headers):
        if h.metadata.get("split.no") != i:
            raise FormatError(h.source, f"split.no is {shown(h.metadata.get('split.no'))}, expected {i} for this shard")
        if h.metadata.get("split.count") != count:
            raise FormatError(h.source, f"split.count is {shown(h.metadata.get('split.count'))}, expected {count}")
    total = sum(len(h.tensors) for h in headers)
    expected = first.get("split.tensors.count")
    if expected != total:
        raise FormatError(headers[0].source, f"split.tensors.count is {shown(expected)} but the shards hold {total} tensors")
    return []


def _safetensors_checkpoint(resolved: ResolvedSource, roles: Roles | None) -> Checkpoint:
    headers: list[SafetensorsHeader] = _parse_all(resolved.files, parse_safetensors)
    names = [t.name for h in headers for t in h.tensors]
    found = iter((roles or _no_roles)(names))
    records = []
    append = records.append
    for i, h in enumerate(headers):
        # zip asks h.tensors first: at a file's end it stops without taking the next file's first role
        for (name, shape, dtype, nbytes, offset, elements), (role, layer, expert) in zip(h.tensors, found):
            append(tensor_info(name, shape, dtype, nbytes, offset, i, elements, role, layer, expert))
    tensors = tuple(records)
    if len(set(names)) != len(names):  # parse_safetensors already refused a name twice in one file
        _check_unique_names(resolved.description, tensors)
    warnings = _index_warnings(resolved.index, headers) if resolved.index else []
    tensors, param_warnings = logical_params(tensors, resolved.config)
    files = tuple(FileInfo(h.source, h.file_size, h.data_offset, h.expected_size) for h in headers)
    config = resolved.config or {}
    architecture = _config_architecture(config)
    return Checkpoint(
        source=resolved.description,
        format="safetensors",
        architecture=architecture,
        files=files,
        tensors=tensors,
        metadata=dict(headers[0].metadata) if headers else {},
        config=resolved.config,
        warnings=tuple(warnings) + tuple(param_warnings) + _truncation_warnings(files),
    )


def _index_warnings(index: Mapping[str, Any], headers: list[SafetensorsHeader]) -> list[str]:
    """Compare the index with the shards: tensors in the right files, total_size equal to the tensor bytes."""
    warnings = []
    file_of: dict[str, int] = {}  # tensor name -> index of the file holding it (names are unique by now)
    for i, h in enumerate(headers):
        file_of.update(dict.fromkeys([t.name for t in h.tensors], i))
    weight_map: Mapping[str, str] = index["weight_map"]  # str -> str: the sources checked it
    in_shard: dict[tuple[int, str], bool] = {}  # (file, shard named) -> the file is that shard: 59 tests, not 46k
    absent = []
    for n, shard in weight_map.items():
        i = file_of.get(n)
        if i is None:
            absent.append(n)
            continue
        found = in_shard.get((i, shard))
        if found is None:
            found = in_shard[(i, shard)] = headers[i].source.endswith(shard)
        if not found:
            absent.append(n)
    if absent:
        warnings.append(f"index lists {len(absent)} tensors not found in the shard it names, e.g. {shown(absent[0])}")
    extra = [n for n in file_of if n not in weight_map]  # file_of is in tensor order
    if extra:
        warnings.append(f"shards hold {len(extra)} tensors the index does not list, e.g. {shown(extra[0])}")
    metadata = index.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        # `.get` on a list or string from a corrupt index raised AttributeError (a traceback).
        warnings.append(f"index metadata is a {type(metadata).__name__}, not an object; total_size not checked")
        metadata = None
    total = (metadata or {}).get("total_size")
    actual = sum(t.nbytes for h in headers for t in h.tensors)
    if isinstance(total, int) and not isinstance(total, bool) and total != actual:
        warnings.append(f"index metadata.total_size is {total:,} bytes but the shards' tensors hold {actual:,}")
    return warnings


def _config_architecture(config: Mapping[str, Any]) -> str | None:
    """`model_type`, else the first of `architectures`; only strings count.

    config.json is untrusted: `architectures: 5` made `iter()` raise TypeError and a non-string `model_type`
    crashed the report, which escapes the architecture as text.
    """
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type:
        return model_type
    archs = config.get("architectures")
    if isinstance(archs, list) and archs and isinstance(archs[0], str):
        return archs[0]
    return None


def _check_unique_names(source: str, tensors: tuple[TensorInfo, ...]) -> None:
    seen: set[str] = set()
    for t in tensors:
        if t.name in seen:
            raise FormatError(source, f"tensor {shown(t.name)} appears in more than one file of the set")
        seen.add(t.name)


def _truncation_warnings(files: tuple[FileInfo, ...]) -> tuple[str, ...]:
    short = [f for f in files if f.missing_bytes]
    if not short:
        return ()
    if len(short) > MAX_FILES_NAMED:
        missing = sum(f.missing_bytes for f in short)
        return (f"{len(short)} of {len(files)} files are shorter than their headers say: {missing:,} bytes of "
                "tensor data missing (truncated, partial or header-only files); sizes come from the headers",)
    return tuple(_short_file_warning(f) for f in short)


def _short_file_warning(f: FileInfo) -> str:
    if f.size <= f.header_bytes:
        return f"{f.path}: header-only file, tensor data absent ({f.missing_bytes:,} bytes); sizes come from the header"
    return (f"{f.path}: data region is {f.missing_bytes:,} bytes shorter than the header says "
            "(truncated or partial download); sizes come from the header")


def _product(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
