"""One view of a SOURCE per command: a local file or folder, a Hub repo, or the local Hugging Face cache.

`open_repo(source, hub)` decides what SOURCE is, exactly once: an existing local path, a Hub ref (listed once,
at open), or the cached snapshot of a Hub ref when `HF_HUB_OFFLINE=1`. Everything a command needs afterwards
comes from the returned `RepoView`, without asking the Hub again:

- `quants()`: the GGUF models the view holds (single files and split sets; projectors and imatrix files apart);
- `listing()`: the table of quants when a repo holds several GGUF models and nothing selects one;
- `choices()`: the quants a search such as `fit` may choose between when nothing selects one;
- `select(quant=…, model=…)`: the files of one model as a `ResolvedSource` (the input of `formats`).

A string that does not exist locally is a Hub ref only when it looks like ``owner/name[…]`` and not like a path
(see `paths.looks_like_path`); otherwise the error says the path does not exist and names its deepest existing
parent and close matches there.
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from .base import ResolvedSource


@dataclass(frozen=True)
class HubOptions:
    """How to reach a Hub repo: `--revision`, `--token` (else HF_TOKEN or the stored login), `--file`, progress."""

    revision: str | None = None
    token: str | None = None
    file: str | None = None
    progress: Callable[[int, int, int], None] | None = None  # (files_done, files_total, bytes), worker threads


@dataclass(frozen=True)
class HubQuant:
    """One GGUF model in a repo or folder: a single file or a split set, sized from the listing alone."""

    name: str  # like local folders: "Q4_K_M/model-Q4_K_M" for a set, "model-Q8_0.gguf" for a single file
    quant: str | None  # the quant label read from the name ("Q4_K_M", "UD-Q2_K_XL"), when there is one
    files: tuple[str, ...]  # paths in the repo (or below the folder), shard 1 first
    bytes: int  # sum of the listed file sizes (headers included)
    missing: tuple[str, ...] = ()  # shards the set's names promise but the repo does not have

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class HubExtra:
    """A file next to the models that is not part of one (multimodal projector, imatrix data)."""

    path: str
    bytes: int
    kind: str  # "mmproj" | "imatrix"


@dataclass(frozen=True)
class HubListing:
    """A repo with several GGUF models and no selection: one row per quant, from the listing alone."""

    repo: str
    revision: str
    description: str  # hf://owner/repo@rev[/folder]
    rows: tuple[HubQuant, ...]
    extras: tuple[HubExtra, ...] = ()
    notes: tuple[str, ...] = ()
    fetch: Mapping[str, int] = field(default_factory=dict)

    format = "gguf"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.description,
            "repo": self.repo,
            "revision": self.revision,
            "format": self.format,
            "quants": [{"name": r.name, "quant": r.quant, "files": list(r.files), "bytes": r.bytes,
                        "complete": r.complete, **({"missing": list(r.missing)} if r.missing else {})}
                       for r in self.rows],
            "not_counted": [{"path": e.path, "bytes": e.bytes, "kind": e.kind} for e in self.extras],
            "notes": list(self.notes),
            "fetch": dict(self.fetch),
        }


class RepoView(abc.ABC):
    """A SOURCE opened once: what it holds, and the files of the model a command selects.

    Attributes:
        kind: "local" (a path), "hub" (a Hub repo, listed once when opened) or "cache" (the cached snapshot of a
            Hub repo, HF_HUB_OFFLINE=1).
        source: the string the user gave.
        description: the path, or ``hf://owner/repo@rev[/path]``.
    """

    kind: str
    source: str
    description: str

    @abc.abstractmethod
    def quants(self) -> tuple[HubQuant, ...]:
        """Every GGUF model in the view's folder (split sets grouped; projectors and imatrix files left out)."""

    def listing(self) -> HubListing | None:
        """The table of quants when a repo holds several GGUF models and neither `--file` nor a safetensors model
        decides; None otherwise (and always for local paths, where `select` names the models in its error)."""
        return None

    def choices(self) -> tuple[HubQuant, ...]:
        """The GGUF models a search may choose between when nothing selects one (`fit` over a repo of quants)."""
        found = self.listing()
        return found.rows if found is not None else ()

    @abc.abstractmethod
    def select(self, quant: str | None = None, *, model: str | None = None) -> ResolvedSource:
        """The files of one model, ready for `formats.read_checkpoint`.

        Args:
            quant: `--quant NAME`: the GGUF files named with that quant when the view holds them (the result has
                `quant_selected=True`), else the most precise model there is, to predict NAME from.
            model: a `HubQuant.name` from `quants()` (what `fit` uses to read each candidate).
        With neither, the only model there is (`--file` and the ref's path narrow the view when it is opened).

        Raises:
            UsageError: several GGUF models and nothing selects one.
            SourceError: nothing inspectable, a missing shard, no such quant or model.
            RemoteError: the Hub failed (network, auth, rate limits) while reading side files.
        """

    def fetch_stats(self) -> dict[str, int] | None:
        """What reading this view cost so far, `{"requests": n, "bytes": n}` (listing included); None when local."""
        return None


def open_repo(source: str, hub: HubOptions | None = None) -> RepoView:
    """Open SOURCE once: a local path, a Hub ref (listed now), or its cached snapshot when offline.

    Raises:
        SourceError: a path that does not exist (naming its deepest existing parent and close matches), a special
            file (FIFO, device, socket), a symbolic link loop, a path too long or unreadable.
        UsageError: `--file`/`--revision` with a local path, a malformed Hub ref.
        RemoteError: the Hub failed; for a plain ``owner/name`` the message says the Hub was tried because no
            local path has that name.
    """
    from . import paths

    hub = hub or HubOptions()
    st = paths.local_stat(source)
    if st is not None:
        if hub.file or hub.revision:
            raise UsageError("--file and --revision are for Hub repos", hint=f"{source} is a local path")
        from .local import LocalRepoView

        return LocalRepoView(source, st)
    from .hub import is_hub_ref, open_hub

    explicit = source.startswith(("hf://", "http://", "https://"))
    if not explicit and (paths.looks_like_path(source) or not is_hub_ref(source)):
        raise paths.missing_path_error(source)
    if explicit:
        return open_hub(source, hub)
    try:
        return open_hub(source, hub)
    except Exception as e:
        raise _tried_the_hub(source, e) from e


def _tried_the_hub(source: str, error: Exception) -> Exception:
    """A plain owner/name that the Hub (or the offline cache) does not answer for: say why the Hub was asked."""
    from .hub_http import HubNetworkError, HubOfflineError, HubRepoNotFound

    if not isinstance(error, (HubNetworkError, HubOfflineError, HubRepoNotFound)):
        return error
    where = "the local Hugging Face cache" if isinstance(error, HubOfflineError) else "the Hub"
    name = source.split("@", 1)[0].split("/", 2)
    ref = "/".join(name[:2])
    message = error.args[0] if error.args else str(error)
    return type(error)(f"{message} (tried {where} because {ref!r} is not a local path)", hint=error.hint)
