"""Hub refs as SOURCE: list the repo, decide what the model is, and hand its files to the header parsers.

What one inspection costs (see docs/hub.md): one request per listing page (1,000 files; a listing of several
pages is pinned to its commit first), one for a safetensors index, at most one for ``config.json``, and one
ranged GET per model file when its header fits the first block (one more, for the missing bytes only, when it
does not), each with its redirect hop to the CDN. A repo holding several GGUF quants and no selection costs the
listing alone and yields a `HubListing`. `open_hub` lists once and returns a view (`HubRepoView`, or
`CacheRepoView` offline) that any number of selections read from.

The parts: `hub_refs.py` (which strings are Hub refs), `hub_plan.py` (what the listing says the model is, and
first-block sizes), this module (the views), `hub_http.py` (session, retries, errors), `hub_files.py` (ranged file
reads and prefetch). huggingface_hub is imported lazily, so local inspections never pay for it.
"""
from __future__ import annotations

import abc
import os
import posixpath
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import SourceError, UsageError
from .base import LocalFile, ResolvedSource
from .hub_plan import (  # noqa: F401 - GGUF_FIRST_BLOCK, ST_FIRST_BLOCK, quant_label: re-exported
    GGUF_FIRST_BLOCK,
    MAX_CONFIG_BYTES,
    ST_FIRST_BLOCK,
    _config_path,
    _Plan,
    _plan_gguf_notes,
    _require,
    first_block,
    gguf_shard_block,
    group_gguf,
    index_shards,
    plan_from_listing,
    quant_label,
)
from .hub_refs import HubRef, is_hub_ref, parse_hub_ref  # noqa: F401 - HubRef re-exported
from .local import quant_matches, read_json
from .paths import read_regular
from .repo import HubExtra, HubListing, HubOptions, HubQuant, RepoView

__all__ = ["CacheRepoView", "GGUF_FIRST_BLOCK", "HubListing", "HubRef", "HubRepoView", "ST_FIRST_BLOCK",
           "gguf_shard_block", "is_hub_ref", "open_hub", "parse_hub_ref", "plan_from_listing", "quant_label",
           "resolve_hub"]


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

    @abc.abstractmethod
    def _resolve(self, plan: _Plan, selected: bool) -> ResolvedSource:
        """The chosen model's files as a source: read over HTTP (Hub) or from the cached snapshot (offline)."""


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
        self._prefetchers: weakref.WeakSet[Any] = weakref.WeakSet()  # the workers keep a busy one alive

    def fetch_stats(self) -> dict[str, int]:
        """The counts so far, after the first blocks the prefetch has started or may start now have arrived: a
        model selected and not read (yet) is being prefetched, and the server would otherwise count it first."""
        for prefetcher in list(self._prefetchers):
            prefetcher.settle()
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
        from .hub_files import HubFile, Prefetcher, _Deferred

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
        self._prefetchers.add(prefetcher)
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
