"""Resolving a local SOURCE (file, split-set shard, index JSON, directory) into the files of one model."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from ..errors import SourceError, UsageError
from .base import LocalFile, ResolvedSource

# llama.cpp's split naming: `<prefix>-%05d-of-%05d.gguf`, 1-based (llama_split_path in src/llama.cpp).
SPLIT_GGUF = re.compile(r"^(?P<prefix>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
# Files that sit next to a model but are not part of it (multimodal projectors, imatrix data).
NOT_MODEL = re.compile(r"(^|[-_.])(mmproj|imatrix)([-_.]|$)", re.IGNORECASE)
MAX_INDEX_BYTES = 64 << 20  # a real index for 16k tensors is ~2 MB; DeepSeek-R1's is 8.9 MB


@dataclass(frozen=True)
class GgufModel:
    """One GGUF model in a folder: a single file or a complete split set."""

    name: str
    paths: tuple[Path, ...]


def resolve_local(source: str, *, quant: str | None = None) -> ResolvedSource:
    """Turn a local path into the ordered files of one model.

    Raises:
        SourceError: the path does not exist, a shard is missing, or nothing inspectable is there.
    """
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{source}: no such file or directory")
    if path.is_dir():
        return _resolve_directory(path, quant)
    return _resolve_file(path, quant)


def _resolve_file(path: Path, quant: str | None = None) -> ResolvedSource:
    name = path.name
    if name.endswith(".gguf"):
        selected = quant is not None and quant_matches(name, quant)
        return replace(_gguf_source(str(path), split_set_paths(path), path.parent), quant_selected=selected)
    if name.endswith(".safetensors"):
        return _safetensors_source(str(path), (path,), None, path.parent)
    if name.endswith(".json"):
        return _index_source(path)
    sniffed = sniff_format(path)
    if sniffed == "gguf":
        return _gguf_source(str(path), (path,), path.parent)
    if sniffed == "safetensors":
        return _safetensors_source(str(path), (path,), None, path.parent)
    raise SourceError(
        f"{path}: not a .gguf, .safetensors or safetensors index file",
        hint="pass a model file, a model.safetensors.index.json or a directory",
    )


def sniff_format(path: Path) -> str | None:
    """Recognize a model file by its first bytes when its name does not say (e.g. `model.gguf.part00`)."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as e:
        raise SourceError(f"cannot open {path}: {e.strerror}") from e
    if head[:4] in (b"GGUF", b"PWRI"):  # PWRI: PowerInfer's sparse GGUF and its .generated.gpuidx
        return "gguf"
    if len(head) == 9 and head[8:9] == b"{":  # u64 header length, then the JSON object
        return "safetensors"
    return None


def _resolve_directory(path: Path, quant: str | None) -> ResolvedSource:
    models = find_gguf_models(path)
    if quant is not None:
        named = [m for m in models if quant_matches(m.name, quant)]
        if named:  # the folder already holds that quant: read it
            model = _select_gguf_model(path, named)
            return replace(_gguf_source(str(path / model.name), model.paths, path), quant_selected=True)
    indexes = sorted(p for p in path.glob("*.safetensors.index.json") if "consolidated" not in p.name)
    if indexes:
        return _index_source(indexes[0])
    tensors_files = sorted(path.glob("*.safetensors"))
    sharded = [p for p in tensors_files if not p.name.startswith("consolidated")]
    # Mistral repos ship consolidated.safetensors beside the HF shards: the same weights, counted once.
    chosen = sharded or tensors_files
    if chosen:
        return _safetensors_source(str(path), tuple(chosen), None, path)
    if not models:
        raise SourceError(f"{path}: no .gguf or .safetensors model files in this directory")
    if quant is not None:  # predict the quant from the most precise GGUF there is
        model = max(models, key=lambda m: sum(p.stat().st_size for p in m.paths))
    else:
        model = _select_gguf_model(path, models)
    return _gguf_source(str(path / model.name), model.paths, path)


def find_gguf_models(directory: Path) -> list[GgufModel]:
    """Every GGUF model below `directory`: split sets grouped, multimodal projectors left out."""
    singles: list[GgufModel] = []
    sets: dict[Path, list[Path]] = {}
    for p in sorted(directory.rglob("*.gguf")):
        if NOT_MODEL.search(p.name):
            continue
        m = SPLIT_GGUF.match(p.name)
        if m:
            sets.setdefault(p.parent / m["prefix"], []).append(p)
        else:
            singles.append(GgufModel(str(p.relative_to(directory)), (p,)))
    grouped = [GgufModel(str(prefix.relative_to(directory)), tuple(paths)) for prefix, paths in sets.items()]
    return sorted(singles + grouped, key=lambda m: m.name)


def quant_matches(name: str, quant: str) -> bool:
    """True when a file or folder name carries the quant name as a whole token (`Q4_K_M` in `x-Q4_K_M-0001…`)."""
    token = re.escape(quant.lower())
    return re.search(rf"(^|[^a-z0-9]){token}($|[^a-z0-9_])", name.lower()) is not None


def _select_gguf_model(directory: Path, models: list[GgufModel]) -> GgufModel:
    if len(models) > 1:
        names = ", ".join(m.name for m in models[:6]) + (" …" if len(models) > 6 else "")
        raise UsageError(
            f"{directory} holds {len(models)} GGUF models ({names})",
            hint="pick one with --quant NAME or pass the file itself",
        )
    return models[0]


def split_set_paths(path: Path) -> tuple[Path, ...]:
    """All shards of the split set `path` belongs to (just `path` when it is not a shard)."""
    m = SPLIT_GGUF.match(path.name)
    if not m:
        return (path,)
    count = int(m["count"])
    if count < 1 or int(m["no"]) < 1 or int(m["no"]) > count:
        raise SourceError(f"{path}: shard number {m['no']} does not fit 'of {m['count']}'")
    shards = tuple(path.with_name(f"{m['prefix']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1))
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise SourceError(
            f"{path.parent}: split set is missing shard {missing[0]}{more}",
            hint="download every shard of the set",
        )
    return shards


def _gguf_source(description: str, paths: tuple[Path, ...], folder: Path) -> ResolvedSource:
    return ResolvedSource(
        description=description,
        format="gguf",
        files=tuple(LocalFile(p) for p in paths),
        config=read_config(folder),
    )


def _safetensors_source(
    description: str, paths: tuple[Path, ...], index: Mapping[str, Any] | None, folder: Path
) -> ResolvedSource:
    return ResolvedSource(
        description=description,
        format="safetensors",
        files=tuple(LocalFile(p) for p in paths),
        index=index,
        config=read_config(folder),
    )


def _index_source(index_path: Path) -> ResolvedSource:
    index = read_json(index_path)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise SourceError(f"{index_path}: 'weight_map' must be an object of tensor name -> file name")
    shard_names = list(dict.fromkeys(weight_map.values()))
    paths = []
    for shard in shard_names:
        shard_path = index_path.parent / shard
        if Path(shard).is_absolute() or ".." in Path(shard).parts:
            raise SourceError(f"{index_path}: weight_map names a file outside the folder: {shard!r}")
        if not shard_path.is_file():
            raise SourceError(f"{index_path}: shard {shard} listed in the index is missing",
                              hint="download every shard the index lists")
        paths.append(shard_path)
    return _safetensors_source(str(index_path), tuple(paths), index, index_path.parent)


def read_json(path: Path, *, max_bytes: int = MAX_INDEX_BYTES) -> dict[str, Any]:
    """A JSON object from a small side file (index, config), with a size cap and one-line errors."""
    try:
        if os.path.getsize(path) > max_bytes:
            raise SourceError(f"{path}: larger than {max_bytes} bytes; not a model side file")
        data = json.loads(path.read_bytes())
    except RecursionError:
        raise SourceError(f"{path}: JSON nested too deeply to be a model side file") from None
    except (OSError, ValueError) as e:  # ValueError: JSONDecodeError, bad UTF-8, integers over 4,300 digits
        raise SourceError(f"{path}: cannot read JSON: {e}") from None
    if not isinstance(data, dict):
        raise SourceError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def read_config(folder: Path) -> dict[str, Any] | None:
    """`config.json` next to the model, when there is one and it is readable."""
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except SourceError:
        return None
