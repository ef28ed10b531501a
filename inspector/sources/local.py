"""Resolving a local SOURCE (file, split-set shard, index JSON, directory) into the files of one model."""
from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from ..errors import SourceError, UsageError
from .base import LocalFile, ResolvedSource
from .paths import is_regular_file, local_stat, missing_path_error, read_regular
from .repo import HubQuant, RepoView

# llama.cpp's split naming: `<prefix>-%05d-of-%05d.gguf`, 1-based (llama_split_path in src/llama.cpp).
SPLIT_GGUF = re.compile(r"^(?P<prefix>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
# Files that sit next to a model but are not part of it (multimodal projectors, imatrix data).
NOT_MODEL = re.compile(r"(^|[-_.])(mmproj|imatrix)([-_.]|$)", re.IGNORECASE)
MAX_INDEX_BYTES = 64 << 20  # a real index for 16k tensors is ~2 MB; DeepSeek-R1's is 8.9 MB
# Quant labels in GGUF file and folder names (llama.cpp ftype names, unsloth's UD- prefix, float types).
_QUANT_LABEL = re.compile(
    r"(?<![A-Za-z0-9])((?:UD-)?(?:I?Q[1-8](?:_[0-9A-Za-z]+)*|TQ[12]_0|BF16|F16|F32|MXFP4(?:_MOE)?))(?![A-Za-z0-9])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class GgufModel:
    """One GGUF model in a folder: a single file or a complete split set."""

    name: str
    paths: tuple[Path, ...]


def resolve_local(source: str, *, quant: str | None = None) -> ResolvedSource:
    """Turn a local path into the ordered files of one model.

    Raises:
        SourceError: the path does not exist (or is a FIFO, device, link loop …), a shard is missing, or nothing
            inspectable is there.
    """
    st = local_stat(source)
    if st is None:
        raise missing_path_error(source)
    path = Path(source)
    if stat.S_ISDIR(st.st_mode):
        return _resolve_directory(path, quant)
    return _resolve_file(path, quant)


class LocalRepoView(RepoView):
    """A local file or folder (see `RepoView`). Nothing is listed ahead: folders are read when a model is selected."""

    kind = "local"

    def __init__(self, source: str, st: os.stat_result | None = None) -> None:
        self.source = source
        self.description = source
        self.path = Path(source)
        st = st if st is not None else local_stat(source)
        if st is None:
            raise missing_path_error(source)
        self.is_dir = stat.S_ISDIR(st.st_mode)
        self._found: list[GgufModel] | None = None

    def _models(self) -> list[GgufModel]:
        """The GGUF models here, found once per view (a folder is walked once however often it is asked)."""
        if self._found is None:
            if self.is_dir:
                self._found = find_gguf_models(self.path)
            elif self.path.name.endswith(".gguf") and not NOT_MODEL.search(self.path.name):
                self._found = [GgufModel(self.path.name, split_set_paths(self.path))]
            else:
                self._found = []
        return self._found

    def quants(self) -> tuple[HubQuant, ...]:
        rows = []
        for m in self._models():
            sizes = [p.stat().st_size for p in m.paths]
            rows.append(HubQuant(m.name, quant_label(m.name), tuple(str(p) for p in m.paths), sum(sizes)))
        return tuple(rows)

    def choices(self) -> tuple[HubQuant, ...]:
        """Every GGUF model of a folder (a folder of quants is a choice even beside safetensors files)."""
        return self.quants() if self.is_dir else ()

    def select(self, quant: str | None = None, *, model: str | None = None) -> ResolvedSource:
        if model is None:
            return resolve_local(self.source, quant=quant)
        for m in self._models():
            if m.name == model:
                return _resolve_file(m.paths[0])
        names = ", ".join(m.name for m in self._models()[:6]) or "none"
        raise SourceError(f"{self.source}: no GGUF model named {model!r}", hint=f"models here: {names}")


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
    f = LocalFile(path)
    try:
        head = f.read(0, 9)
    finally:
        f.close()
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
    indexes = sorted(p for p in path.glob("*.safetensors.index.json")
                     if "consolidated" not in p.name and is_regular_file(p))
    if indexes:
        return _index_source(indexes[0])
    tensors_files = sorted(p for p in path.glob("*.safetensors") if is_regular_file(p))
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
        if NOT_MODEL.search(p.name) or not is_regular_file(p):  # a folder named x.gguf, a FIFO: not models
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


def quant_label(name: str) -> str | None:
    """The quant named in a GGUF file or folder name (last match in the file name, else in its folders)."""
    for part in reversed(name.split("/")):
        stem = re.sub(r"(-\d{5}-of-\d{5})?\.gguf$", "", part)
        found = _QUANT_LABEL.findall(stem)
        if found:
            return found[-1].upper()
    return None


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
    odd = [s for s in shards if not is_regular_file(s) and os.path.lexists(s)]
    if odd:
        local_stat(str(odd[0]))  # names a link loop, a dangling link, a FIFO or a device
        raise SourceError(f"{odd[0]}: shard of a split set is not a regular file")
    missing = [s.name for s in shards if not is_regular_file(s)]
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
        if not is_regular_file(shard_path):
            what = "is not a regular file" if shard_path.exists() else "is missing"
            raise SourceError(f"{index_path}: shard {shard} listed in the index {what}",
                              hint="download every shard the index lists")
        paths.append(shard_path)
    return _safetensors_source(str(index_path), tuple(paths), index, index_path.parent)


def read_json(path: Path, *, max_bytes: int = MAX_INDEX_BYTES) -> dict[str, Any]:
    """A JSON object from a small side file (index, config), with a size cap and one-line errors."""
    raw = read_regular(path, max_bytes)  # never blocks on a FIFO, never reads a device
    try:
        data = json.loads(raw)
    except RecursionError:
        raise SourceError(f"{path}: JSON nested too deeply to be a model side file") from None
    except ValueError as e:  # JSONDecodeError, bad UTF-8, integers over 4,300 digits
        raise SourceError(f"{path}: cannot read JSON: {e}") from None
    if not isinstance(data, dict):
        raise SourceError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def read_config(folder: Path) -> dict[str, Any] | None:
    """`config.json` next to the model, when there is one and it is readable."""
    path = folder / "config.json"
    if not is_regular_file(path):
        return None
    try:
        return read_json(path)
    except SourceError:
        return None
