"""What a Hub repo's listing says the model is, before any header is read: the files of one model (a file, a
split set, an index and its shards) or a table of GGUF quants, and how many bytes to fetch ahead per file.
"""
from __future__ import annotations

import difflib
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SourceError, UsageError
from .local import NOT_MODEL, SPLIT_GGUF, quant_label, quant_matches
from .repo import HubExtra, HubQuant

# -- first-block sizes ----------------------------------------------------------------------------------------------
# A request costs a round trip (50-300 ms to the Hub, twice that with the CDN redirect); 100 KB more body costs
# ~1-10 ms. So each file gets one ranged GET big enough for its header in the common case:
# - safetensors shards listed in an index: the header is estimated from the tensor names the index puts in that
#   shard (a compact JSON entry is the name + 75-82 bytes of dtype, shape and offsets, ~90 with the spaces of
#   Python's json.dumps; we allow 96) plus 2 KiB of __metadata__: one request per shard,
#   bytes within ~20 % of the header. A longer header costs one more request, for the missing tail only.
# - a safetensors file without an index: 128 KiB (huggingface_hub reads 100 kB; 97 % of the top-1000 headers
#   are smaller).
# - GGUF: the parser's cursor starts with a read of the file's first block. The first file of a model holds the
#   KVs and the tokenizer (0.7 MB for a 32k SentencePiece vocabulary, 2-8 MB for 128k-262k BPE vocabularies):
#   it gets 960 KiB = 15 x 64 KiB, the end of the cursor's fourth read, so a longer header continues with the
#   cursor's own doubling reads (1 MiB, 2 MiB, 4 MiB: 2-3 more requests for the largest tokenizers).
#   Later shards of a split set hold a few KVs and tensor infos only (70-100 bytes a tensor). However a model is
#   split, its tensor infos add up to about the same: at most ~2,600 tensors x 96 bytes = 256 KiB for the largest
#   models (DeepSeek-V3 has 1,025 GGUF tensors, GLM-4.5 1,761). So a later shard gets that budget divided by the
#   number of shards, rounded up to 4 KiB, between 4 KiB and 128 KiB: 128 KiB for a 2-file set, 32 KiB for 9
#   files (gguf-split's default 128 tensors a shard), 4 KiB for 1,087 one-tensor shards (~250-byte headers).
ST_FIRST_BLOCK = 128 << 10
ST_ENTRY_BYTES = 96
ST_METADATA_BYTES = 2 << 10
ST_MAX_HEADER = 100_000_000 + 8
GGUF_FIRST_BLOCK = 960 << 10
GGUF_SET_INFO_BYTES = 256 << 10
GGUF_SHARD_BLOCK_MIN = 4 << 10
GGUF_SHARD_BLOCK_MAX = 128 << 10
MAX_CONFIG_BYTES = 16 << 20


# ==================================================================================================================
# the listing's answer: one model, or a table of GGUF quants (the row types live in repo.py)
# ==================================================================================================================
@dataclass(frozen=True)
class _Plan:
    """What to read: the model files (or the index that names them), their format and their folder."""

    format: str
    paths: tuple[str, ...]
    folder: str  # "" or "sub/folder/"
    index_path: str | None = None
    label: str | None = None  # path shown in the description
    notes: tuple[str, ...] = ()


def group_gguf(listing: Mapping[str, int], scope: str = "") -> tuple[list[HubQuant], list[HubExtra]]:
    """GGUF models below `scope` (split sets grouped, like `local.find_gguf_models`), and the non-model files."""
    singles: list[HubQuant] = []
    sets: dict[tuple[str, str, int], dict[int, str]] = {}
    extras: list[HubExtra] = []
    for path in sorted(listing):
        if not path.startswith(scope):
            continue
        base = posixpath.basename(path)
        if NOT_MODEL.search(base):
            kind = "mmproj" if "mmproj" in base.lower() else "imatrix"
            extras.append(HubExtra(path, listing[path], kind))
            continue
        if not base.endswith(".gguf"):
            continue
        m = SPLIT_GGUF.match(base)
        if m:
            sets.setdefault((posixpath.dirname(path), m["prefix"], int(m["count"])), {})[int(m["no"])] = path
        else:
            rel = path[len(scope):]
            singles.append(HubQuant(rel, quant_label(rel), (path,), listing[path]))
    grouped = []
    for (folder, prefix, count), shards in sets.items():
        name = posixpath.join(folder, prefix)[len(scope):]
        expected = [posixpath.join(folder, f"{prefix}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
        present = tuple(p for p in expected if p in listing)
        missing = tuple(p for p in expected if p not in listing)
        grouped.append(HubQuant(name, quant_label(name), present, sum(listing[p] for p in present), missing))
    return sorted(singles + grouped, key=lambda q: q.name), extras


def plan_from_listing(
    listing: Mapping[str, int], *, path: str | None, quant: str | None, where: str, missing_hint: str | None = None
) -> _Plan | tuple[list[HubQuant], list[HubExtra], str]:
    """Decide what the model is from the file list alone.

    Returns a `_Plan`, or (quants, extras, scope) when the scope holds several GGUF models and nothing selects one.
    """
    if path:
        path = path.strip("/")
        if path in listing:
            return _plan_file(listing, path, where, missing_hint)
        folder = path + "/"
        if not any(p.startswith(folder) for p in listing):
            close = difflib.get_close_matches(path, list(listing), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "the repo's files are listed on its page"
            raise SourceError(f"{where}: no file or folder {path!r} in the repo", hint=hint)
        return _plan_folder(listing, folder, quant, where, missing_hint)
    return _plan_folder(listing, "", quant, where, missing_hint)


def _plan_file(listing: Mapping[str, int], path: str, where: str, missing_hint: str | None) -> _Plan:
    folder = posixpath.dirname(path)
    folder = folder + "/" if folder else ""
    base = posixpath.basename(path)
    if base.endswith(".gguf"):
        m = SPLIT_GGUF.match(base)
        if not m:
            return _Plan("gguf", (path,), folder, label=path)
        count = int(m["count"])
        if count < 1 or not 1 <= int(m["no"]) <= count:
            raise SourceError(f"{where}/{path}: shard number {m['no']} does not fit 'of {m['count']}'")
        shards = tuple(f"{folder}{m['prefix']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1))
        _require(listing, shards, where, "split set", missing_hint)
        return _plan_gguf_notes(_Plan("gguf", shards, folder, label=path), listing, folder)
    if base.endswith(".safetensors"):
        return _Plan("safetensors", (path,), folder, label=path)
    if base.endswith(".json") and "index" in base:
        return _Plan("safetensors", (), folder, index_path=path, label=path)
    raise SourceError(f"{where}/{path}: not a .gguf, .safetensors or safetensors index file",
                      hint="pass a model file, a *.safetensors.index.json or a folder of the repo")


def _require(listing: Mapping[str, int], paths: tuple[str, ...], where: str, what: str, hint: str | None) -> None:
    missing = [p for p in paths if p not in listing]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise SourceError(f"{where}: {what} is missing {missing[0]}{more}",
                          hint=hint or "the upload is incomplete; pick another file or revision")


def _plan_folder(
    listing: Mapping[str, int], scope: str, quant: str | None, where: str, missing_hint: str | None
) -> _Plan | tuple[list[HubQuant], list[HubExtra], str]:
    top = [p for p in listing if p.startswith(scope) and "/" not in p[len(scope):]]
    indexes = sorted(p for p in top if p.endswith(".safetensors.index.json")
                     and "consolidated" not in posixpath.basename(p))
    tensors_files = sorted(p for p in top if p.endswith(".safetensors"))
    sharded = [p for p in tensors_files if not posixpath.basename(p).startswith("consolidated")]
    # Mistral repos ship consolidated.safetensors beside the HF shards: the same weights, counted once.
    chosen = sharded or tensors_files
    quants, extras = group_gguf(listing, scope)
    label = scope.rstrip("/") or None

    if quant is not None and quants:
        return _select_quant(listing, quants, quant, scope, where, missing_hint)
    if indexes or chosen:
        notes = []
        if quants:
            names = ", ".join(q.quant or q.name for q in quants[:6]) + (" …" if len(quants) > 6 else "")
            notes.append(f"the repo also holds {len(quants)} GGUF model(s) ({names}); pick one with --quant NAME "
                         "or --file PATH")
        if indexes:
            preferred = scope + "model.safetensors.index.json"
            index_path = preferred if preferred in indexes else indexes[0]
            return _Plan("safetensors", (), scope, index_path=index_path, label=label, notes=tuple(notes))
        return _Plan("safetensors", tuple(chosen), scope, label=label, notes=tuple(notes))
    if len(quants) == 1:
        q = quants[0]
        _require(listing, q.files + q.missing, where, f"split set {q.name}", missing_hint)
        return _plan_gguf_notes(_Plan("gguf", q.files, scope, label=label), listing, scope)
    if len(quants) > 1:
        return quants, extras, scope
    deeper = sorted({p[len(scope):].split("/")[0] for p in listing if p.startswith(scope)
                     and "/" in p[len(scope):] and p.endswith((".safetensors", ".gguf"))})
    hint = (f"model files are in subfolders: {', '.join(deeper[:5])}; add the folder to the ref "
            f"({where}/{deeper[0]})") if deeper else "a ref to a file or folder of the repo picks one"
    raise SourceError(f"{where}: no .safetensors or .gguf model files" + (f" in {scope}" if scope else ""), hint=hint)


def _select_quant(
    listing: Mapping[str, int], quants: list[HubQuant], quant: str, scope: str, where: str, missing_hint: str | None
) -> _Plan:
    matches = [q for q in quants if quant_matches(q.name, quant)]
    if len(matches) > 1:  # `Q4_K_M` also matches `UD-Q4_K_M`: an exact label wins
        exact = [q for q in matches if (q.quant or "").upper() == quant.upper()]
        if len(exact) == 1:
            matches = exact
    if not matches:
        labels = ", ".join(q.quant or q.name for q in quants[:12]) + (" …" if len(quants) > 12 else "")
        raise SourceError(f"{where}: no GGUF file or split set named with quant {quant}", hint=f"available: {labels}")
    if len(matches) > 1:
        names = ", ".join(q.name for q in matches[:6])
        raise UsageError(f"{where}: {len(matches)} GGUF models match quant {quant} ({names})",
                         hint="pick one with --file PATH")
    q = matches[0]
    _require(listing, q.files + q.missing, where, f"split set {q.name}", missing_hint)
    return _plan_gguf_notes(_Plan("gguf", q.files, scope, label=scope + q.name), listing, scope)


def _plan_gguf_notes(plan: _Plan, listing: Mapping[str, int], scope: str) -> _Plan:
    _, extras = group_gguf(listing, scope)
    notes = tuple(f"not counted: {e.path} ({e.bytes:,} bytes, {'multimodal projector' if e.kind == 'mmproj' else 'imatrix data'})"
                  for e in extras)
    return _Plan(plan.format, plan.paths, plan.folder, plan.index_path, plan.label, plan.notes + notes)


def index_shards(index: Any, index_path: str, listing: Mapping[str, int], where: str,
                 missing_hint: str | None = None) -> tuple[tuple[str, ...], dict[str, int]]:
    """The shards an index names (in order of first mention) and an estimate of each shard's header bytes."""
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise SourceError(f"{where}/{index_path}: 'weight_map' must be an object of tensor name -> file name")
    folder = posixpath.dirname(index_path)
    per_shard: dict[str, int] = {}  # shard name -> estimated header bytes, in order of first mention
    for tensor, shard in weight_map.items():
        per_shard[shard] = per_shard.get(shard, ST_METADATA_BYTES + 8) + len(tensor) + ST_ENTRY_BYTES
    estimates: dict[str, int] = {}
    for shard, estimate in per_shard.items():
        if shard.startswith("/") or ".." in shard.split("/"):
            raise SourceError(f"{where}/{index_path}: weight_map names a file outside the folder: {shard!r}")
        estimates[posixpath.join(folder, shard)] = estimate
    shards = tuple(estimates)
    _require(listing, shards, where, f"{index_path} (shard listed in the index)",
             missing_hint or "the repo lacks a shard its index lists; pick another revision")
    return shards, estimates


def first_block(fmt: str, position: int, estimate: int | None, files: int = 1) -> int:
    """Bytes fetched ahead for the file at `position` of a model of `files` files (see the constants above)."""
    if fmt == "safetensors":
        if estimate is None:
            return ST_FIRST_BLOCK
        return min(ST_MAX_HEADER, estimate)
    if position == 0:
        return GGUF_FIRST_BLOCK
    return gguf_shard_block(files)


def gguf_shard_block(files: int) -> int:
    """First block of a later shard of a `files`-file GGUF split set."""
    share = -(-GGUF_SET_INFO_BYTES // max(1, files) // 4096) * 4096
    return max(GGUF_SHARD_BLOCK_MIN, min(GGUF_SHARD_BLOCK_MAX, share))


def _config_path(listing: Mapping[str, int], folder: str) -> str | None:
    for candidate in (folder + "config.json", "config.json"):
        if candidate in listing:
            return candidate
    return None
