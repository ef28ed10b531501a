"""Hub refs as SOURCE: list the repo, decide what the model is, and hand its files to the header parsers.

Accepted refs: ``owner/repo``, ``owner/repo@REV``, ``owner/repo/path/in/repo``, ``owner/repo@REV/path``,
``hf://owner/repo[@REV][/path]`` and ``https://huggingface.co/owner/repo[/tree|blob|resolve/REV[/path]]``.
REV is a branch, tag, commit or ``refs/pr/N`` (also percent-encoded, ``refs%2Fpr%2F1``).

What one inspection costs (see docs/hub.md): one request per listing page (1,000 files; a listing of several
pages is pinned to its commit first), one for a safetensors index, at most one for ``config.json``, and one
ranged GET per model file when its header fits the first block (one more, for the missing bytes only, when it
does not), each with its redirect hop to the CDN. A repo holding several GGUF quants and no selection costs the
listing alone and yields a `HubListing`. `open_hub` lists once and returns a view (`HubRepoView`, or
`CacheRepoView` offline) that any number of selections read from.

The HTTP machinery (session, retries, errors, `HubFile`, prefetch) is in `hub_http.py`; huggingface_hub is
imported lazily, so local inspections never pay for it.
"""
from __future__ import annotations

import difflib
import os
import posixpath
import re
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..errors import SourceError, UsageError
from .base import LocalFile, ResolvedSource
from .local import NOT_MODEL, SPLIT_GGUF, quant_label, quant_matches, read_json
from .paths import looks_like_path, read_regular
from .repo import HubExtra, HubListing, HubOptions, HubQuant, RepoView

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

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"^{_NAME}/{_NAME}$")
_HUB_HOSTS = {"huggingface.co", "hf.co", "www.huggingface.co"}


# ==================================================================================================================
# refs
# ==================================================================================================================
@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None = None
    path: str | None = None


def is_hub_ref(source: str) -> bool:
    """True when `source` is not an existing path and is ``hf://…``, a Hub URL, or ``owner/repo[…]`` that does not
    look like a local path (`paths.looks_like_path`: ``./x``, ``/abs``, ``dir/file.gguf``, or ``a/b`` when a
    local ``a`` exists), so a mistyped local path says "no such file" instead of asking the Hub.
    """
    if not source or os.path.lexists(source):
        return False
    if source.startswith("hf://"):
        return True
    if source.startswith(("http://", "https://")):
        return _url_ref(source) is not None
    if looks_like_path(source):
        return False
    try:
        _plain_ref(source)
    except UsageError:
        return False
    return True


def parse_hub_ref(source: str) -> HubRef:
    """Split a Hub ref into repo id, revision and path in the repo.

    Raises:
        UsageError: the ref is not a model repo ref.
    """
    if source.startswith("hf://"):
        rest = source[len("hf://"):]
        if rest.startswith(("datasets/", "spaces/", "buckets/")):
            raise UsageError(f"{source}: only model repos can be inspected", hint="use hf://owner/repo[@rev][/path]")
        rest = rest.removeprefix("models/")
        return _plain_ref(rest, original=source)
    if source.startswith(("http://", "https://")):
        ref = _url_ref(source)
        if ref is None:
            raise UsageError(f"{source}: not a Hugging Face model URL",
                             hint="use owner/repo, hf://owner/repo@rev/path or https://huggingface.co/owner/repo")
        return ref
    return _plain_ref(source)


def _plain_ref(text: str, original: str | None = None) -> HubRef:
    original = original or text
    parts = text.strip("/").split("/")
    if len(parts) < 2:
        raise UsageError(f"{original}: not a Hub ref", hint="use owner/repo[@rev][/path]")
    owner, name = parts[0], parts[1]
    rest = parts[2:]
    revision = None
    if "@" in name:
        name, rev_head = name.split("@", 1)
        rev_parts = [rev_head, *rest]
        # refs/pr/N and refs/convert/X contain slashes; every other revision ends at the next slash
        if rev_parts[0] == "refs" and len(rev_parts) >= 3 and rev_parts[1] in ("pr", "convert"):
            revision, rest = "/".join(rev_parts[:3]), rev_parts[3:]
        else:
            revision, rest = unquote(rev_parts[0]), rev_parts[1:]
        if not revision:
            raise UsageError(f"{original}: empty revision after '@'")
    repo_id = f"{owner}/{name}"
    if not _REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise UsageError(f"{original}: {repo_id!r} is not a valid repo id (owner/name)")
    path = "/".join(rest) or None
    if path is not None and (".." in path.split("/") or path.startswith("/")):
        raise UsageError(f"{original}: path {path!r} leaves the repo")
    return HubRef(repo_id, revision, path)


def _url_ref(url: str) -> HubRef | None:
    """`https://huggingface.co/owner/repo[/tree|blob|resolve/REV[/path]]` (or the HF_ENDPOINT host)."""
    parts = urlsplit(url)
    hosts = set(_HUB_HOSTS)
    endpoint = os.environ.get("HF_ENDPOINT")
    if endpoint:
        hosts.add(urlsplit(endpoint).netloc.lower())
    if parts.netloc.lower() not in hosts:
        return None
    segs = [unquote(s) for s in parts.path.strip("/").split("/") if s]
    if len(segs) < 2 or segs[0] in ("datasets", "spaces", "api"):
        return None
    try:
        base = _plain_ref("/".join(segs[:2]), original=url)
    except UsageError:
        return None
    if len(segs) == 2:
        return base
    if segs[2] not in ("tree", "blob", "resolve") or len(segs) < 4:
        return None
    rest = segs[3:]
    if rest[0] == "refs" and len(rest) >= 3 and rest[1] in ("pr", "convert"):
        revision, rest = "/".join(rest[:3]), rest[3:]
    else:
        revision, rest = rest[0], rest[1:]
    return HubRef(base.repo_id, revision, "/".join(rest) or None)


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


def _merge(what: str, from_ref: str | None, from_option: str | None, source: str) -> str | None:
    if from_ref and from_option and from_ref.strip("/") != from_option.strip("/"):
        raise UsageError(f"{source} names {what} {from_ref!r} but the option says {from_option!r}",
                         hint="give it once")
    return from_option or from_ref




# ==================================================================================================================
# views: one listing per command, then any number of selections from it
# ==================================================================================================================
class _ListedView(RepoView):
    """What the Hub view and the offline-cache view share: a listing (path -> size) and the choice of a model."""

    def __init__(self, source: str, repo_id: str, revision: str, path: str | None, listing: Mapping[str, int],
                 where: str, missing_hint: str | None = None) -> None:
        self.source = source
        self.repo_id = repo_id
        self.revision = revision
        self.path = path.strip("/") if path else None
        self.files = dict(listing)
        self.where = where
        self.description = where + (f"/{self.path}" if self.path else "")
        self.missing_hint = missing_hint
        self._plans: dict[str | None, _Plan | tuple[list[HubQuant], list[HubExtra], str]] = {}

    # -- what is there --------------------------------------------------------------------------------------------
    def _folder(self) -> str:
        """The folder the view looks at: the ref's folder, the folder of the ref's file, or the repo's root."""
        if not self.path:
            return ""
        if self.path in self.files:
            folder = posixpath.dirname(self.path)
            return folder + "/" if folder else ""
        return self.path + "/"

    def quants(self) -> tuple[HubQuant, ...]:
        return tuple(group_gguf(self.files, self._folder())[0])

    def _plan(self, quant: str | None) -> _Plan | tuple[list[HubQuant], list[HubExtra], str]:
        if quant not in self._plans:
            self._plans[quant] = plan_from_listing(self.files, path=self.path, quant=quant, where=self.where,
                                                   missing_hint=self.missing_hint)
        return self._plans[quant]

    def listing(self) -> HubListing | None:
        plan = self._plan(None)
        if not isinstance(plan, tuple):
            return None
        quants, extras, scope = plan
        return HubListing(self.repo_id, self.revision, self.where + (f"/{scope.rstrip('/')}" if scope else ""),
                          tuple(quants), tuple(extras), notes=self._listing_notes(),
                          fetch=self.fetch_stats() or {})

    def _listing_notes(self) -> tuple[str, ...]:
        return ()

    # -- one model ------------------------------------------------------------------------------------------------
    def select(self, quant: str | None = None, *, model: str | None = None) -> ResolvedSource:
        if model is not None:
            scope = self._folder()
            rows = {q.name: q for q in self.quants()}
            q = rows.get(model)
            if q is None:
                names = ", ".join(list(rows)[:6]) or "none"
                raise SourceError(f"{self.where}: no GGUF model named {model!r}", hint=f"models here: {names}")
            _require(self.files, q.files + q.missing, self.where, f"split set {q.name}", self.missing_hint)
            plan = _plan_gguf_notes(_Plan("gguf", q.files, scope, label=scope + q.name), self.files, scope)
        else:
            found = self._plan(quant)
            if isinstance(found, tuple):
                quants, _, scope = found
                names = ", ".join(q.name for q in quants[:6])
                where = self.where + (f"/{scope.rstrip('/')}" if scope else "")
                raise UsageError(f"{where} holds {len(quants)} GGUF models ({names})",
                                 hint="pick one with --quant NAME or --file PATH")
            plan = found
        return self._resolve(plan, _is_selected(plan, quant))

    def _resolve(self, plan: _Plan, selected: bool) -> ResolvedSource:
        raise NotImplementedError


class HubRepoView(_ListedView):
    """A Hub repo at a revision, listed once when opened; each `select` reads only the chosen model's headers."""

    kind = "hub"

    def __init__(self, source: str, repo_id: str, revision: str, path: str | None, token: str | None,
                 progress: Callable[[int, int, int], None] | None) -> None:
        from .hub_http import FetchStats, HubClient

        self.stats = FetchStats(progress=progress)
        self.client = HubClient(repo_id, revision, token, self.stats)
        listing = self.client.list_tree()
        super().__init__(source, repo_id, revision, path, listing, self.client.display())
        self._json_cache: dict[str, Any] = {}
        self._json_lock = threading.Lock()

    def fetch_stats(self) -> dict[str, int]:
        return self.stats.snapshot()

    def _side_json(self, path: str, cap: int | None = None) -> Any:
        """A side file (index, config.json) read once per view, however many models are selected."""
        with self._json_lock:
            if path in self._json_cache:
                return self._json_cache[path]
        value = (self.client.get_json(path, self.files[path]) if cap is None
                 else self.client.get_json(path, self.files[path], cap))
        with self._json_lock:
            self._json_cache[path] = value
        return value

    def _resolve(self, plan: _Plan, selected: bool) -> ResolvedSource:
        from .hub_http import HubFile, Prefetcher, _Deferred

        client, listing = self.client, self.files
        index = None
        paths: tuple[str, ...] = plan.paths
        estimates: dict[str, int] = {}
        if plan.index_path is not None:
            index = self._side_json(plan.index_path)
            paths, estimates = index_shards(index, plan.index_path, listing, self.where)
        files = [HubFile(client, p, listing[p], first_block(plan.format, i, estimates.get(p), len(paths)), i)
                 for i, p in enumerate(paths)]
        self.stats.add_total(len(files))
        config_path = _config_path(listing, plan.folder)
        config_job = (_Deferred(lambda: self._side_json(config_path, MAX_CONFIG_BYTES)) if config_path else None)
        prefetcher = Prefetcher(files)
        notes = list(plan.notes)
        config = None
        if config_job is not None:
            try:
                config = config_job.result()
            except SourceError as e:  # unreadable config.json: inspect without it, as for local folders
                notes.append(f"config.json ignored: {e}")
            except BaseException:
                prefetcher.cancel()
                raise
            if config is not None and not isinstance(config, dict):
                notes.append("config.json ignored: not a JSON object")
                config = None
        resolved = ResolvedSource(
            description=client.display(plan.label),
            format=plan.format,
            files=tuple(files),
            index=index,
            config=config,
            notes=tuple(notes),
            fetch_stats=self.stats.snapshot,
            quant_selected=selected,
        )
        weakref.finalize(resolved, prefetcher.cancel)
        return resolved


class CacheRepoView(_ListedView):
    """HF_HUB_OFFLINE=1: the same decisions over the files of the cached snapshot, read as local files."""

    kind = "cache"
    OFFLINE_NOTE = "offline (HF_HUB_OFFLINE=1): read from the local Hugging Face cache"

    def __init__(self, source: str, repo_id: str, rev: str, path: str | None) -> None:
        from huggingface_hub import _CACHED_NO_EXIST, constants, try_to_load_from_cache
        from huggingface_hub.file_download import repo_folder_name

        from .hub_http import HubOfflineError

        cache = Path(constants.HF_HUB_CACHE)
        display_rev = quote(rev, safe="") if "/" in rev else rev
        where = f"hf://{repo_id}@{display_rev}"
        repo_dir = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
        hint = f"unset HF_HUB_OFFLINE to read it from the Hub, or download it first (hf download {repo_id})"
        if not repo_dir.is_dir():
            raise HubOfflineError(f"{repo_id} is not in the local Hugging Face cache ({cache}) and HF_HUB_OFFLINE=1 "
                                  "forbids the network", hint=hint)
        commit = rev
        ref_file = repo_dir / "refs" / rev
        if ref_file.is_file():
            commit = read_regular(ref_file, 4096).decode("utf-8", "replace").strip()
        snapshot = repo_dir / "snapshots" / commit
        if not snapshot.is_dir():
            raise HubOfflineError(f"{repo_id}: revision {rev!r} is not in the local Hugging Face cache ({cache}) "
                                  "and HF_HUB_OFFLINE=1 forbids the network", hint=hint)
        listing: dict[str, int] = {}
        for root, _dirs, names in os.walk(snapshot):
            for name in names:
                p = Path(root) / name
                try:
                    listing[p.relative_to(snapshot).as_posix()] = p.stat().st_size  # follows the blob symlink
                except OSError:
                    continue  # a dangling link (blob removed)
        stripped = path.strip("/") if path else None
        if stripped and stripped not in listing and not any(p.startswith(stripped + "/") for p in listing):
            cached = try_to_load_from_cache(repo_id, stripped, revision=rev)
            if cached is _CACHED_NO_EXIST:
                raise SourceError(f"{where}: no file {path!r} in the repo (known from the cache)")
            raise HubOfflineError(f"{where}/{path} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 "
                                  "forbids the network", hint=hint)
        missing_hint = "offline mode reads only the local cache: download the missing files or unset HF_HUB_OFFLINE"
        super().__init__(source, repo_id, rev, path, listing, where, missing_hint)
        self.snapshot = snapshot

    def fetch_stats(self) -> dict[str, int]:
        return {"requests": 0, "bytes": 0}

    def _listing_notes(self) -> tuple[str, ...]:
        return (self.OFFLINE_NOTE + "; only cached files are listed",)

    def _resolve(self, plan: _Plan, selected: bool) -> ResolvedSource:
        index = None
        paths = plan.paths
        if plan.index_path is not None:
            index = read_json(self.snapshot / plan.index_path)
            paths, _ = index_shards(index, plan.index_path, self.files, self.where, self.missing_hint)
        files = []
        for rel in paths:
            f = LocalFile(self.snapshot / rel)
            f.name = f"{self.where}/{rel}"  # the same names as online, so reports do not depend on the cache's place
            files.append(f)
        config = None
        config_path = _config_path(self.files, plan.folder)
        if config_path is not None:
            try:
                config = read_json(self.snapshot / config_path)
            except SourceError:
                config = None
        return ResolvedSource(
            description=self.where + (f"/{plan.label}" if plan.label else ""),
            format=plan.format,
            files=tuple(files),
            index=index,
            config=config,
            notes=plan.notes + (self.OFFLINE_NOTE,),
            quant_selected=selected,
            fetch_stats=self.fetch_stats,
        )


def _is_selected(plan: _Plan, quant: str | None) -> bool:
    """True when --quant picked GGUF files named with that quant (they are read, not predicted)."""
    return quant is not None and plan.format == "gguf" and any(quant_matches(p, quant) for p in plan.paths)


def open_hub(source: str, hub: HubOptions | None = None) -> _ListedView:
    """Open a Hub ref: list the repo once (or, with HF_HUB_OFFLINE=1, its cached snapshot).

    Raises:
        UsageError: a bad ref, or options that contradict it.
        SourceError: the path is not in the repo.
        RemoteError: repo/revision not found, gated, unauthorized, network, offline without a cached copy.
    """
    from huggingface_hub import constants

    hub = hub or HubOptions()
    ref = parse_hub_ref(source)
    rev = _merge("revision", ref.revision, hub.revision, source) or "main"
    path = _merge("path", ref.path, hub.file, source)
    if constants.is_offline_mode():
        return CacheRepoView(source, ref.repo_id, rev, path)
    return HubRepoView(source, ref.repo_id, rev, path, hub.token, hub.progress)


def resolve_hub(
    source: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    file: str | None = None,
    quant: str | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> ResolvedSource | HubListing:
    """Resolve a Hub ref into the files of one model (headers prefetched concurrently), or a quant listing.

    The one-call form of `open_hub(...)` then `listing()` / `select(quant)`; see `RepoView`.

    Args:
        source: the ref (see the module docstring).
        revision: branch, tag, commit or refs/pr/N (`--revision`); conflicts with a different `@REV` in the ref.
        token: Hub token (`--token`); None lets huggingface_hub find one (HF_TOKEN, the stored login).
        file: a path in the repo (`--file`): a model file (any shard of a split set), an index, or a folder.
        quant: pick the GGUF model named with this quant (`--quant`); ignored for a repo without GGUF files.
        progress: called as progress(files_done, files_total, bytes_read) from worker threads.
    """
    view = open_hub(source, HubOptions(revision, token, file, progress))
    if quant is None:
        found = view.listing()
        if found is not None:
            return found
    return view.select(quant)
