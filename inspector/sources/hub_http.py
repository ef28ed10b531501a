"""HTTP side of Hub sources: `HubClient`, one repo at one revision (requests with retries and redirects,
listings, JSON side files, errors mapped to one line). Ranged file reads and prefetch are in `hub_files.py`,
request counting and the throttle in `hub_pacing.py`, the error classes in `hub_errors.py`, the settings and
headers in `hub_env.py`, the HTTP client in `hub_conn.py`; the tuning below is read by all of them.

Requests go through `hub_conn`'s keep-alive pool, or through `huggingface_hub.utils.get_session()` when proxies
or a custom client factory are configured (see `hub_conn.use_pool`). Settings follow huggingface_hub
(`hub_env.py`: `HF_ENDPOINT`, `HF_TOKEN`, the stored login, `HF_HUB_OFFLINE`), and error answers are classified
by `hf_raise_for_status()` (the Hub's `X-Error-Code` headers become typed errors, which we turn into one-line
`RemoteError`s here): huggingface_hub's HTTP stack is imported only for an error, a proxy, or a token only it
can find.

Costs are counted in `FetchStats`: one *request* per HTTP exchange we send (a retry is a new request, and so is
each redirect hop: `/resolve` and the CDN it redirects to are two), so the count is what the server sees; and
the *bytes* of every response body we received. Redirects are followed here, not by the HTTP client, so each hop
is counted, a loop is caught at once, and the token never leaves the Hub's origin.

Concurrency is bounded by a `Throttle` per repo: `WORKERS` requests in flight at most; a 429 (or a 503 with
`Retry-After`) halves that limit once per round and pauses every sender until the time the server asked for;
successes add the slots back one at a time.
"""
from __future__ import annotations

import functools
import json
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from ..errors import SourceError
from .hub_errors import (  # noqa: F401 - the error classes are re-exported: callers import them from here
    HubError,
    HubGatedRepo,
    HubNetworkError,
    HubOfflineError,
    HubRepoNotFound,
    HubRevisionNotFound,
    HubUnauthorized,
    _ListingChanged,
    _Retry,
    _retry_after,
)
from . import hub_conn
from .hub_conn import shared_pool, use_pool
from .hub_env import download_timeout, endpoint, huggingface_hub_finds_the_token, offline, resolve_url, simple_headers
from .hub_pacing import _COUNTING, FetchStats, Throttle, _env_int, _install_count_hooks  # noqa: F401


# -- tuning (module constants so tests and benchmarks can change them) --------------------------------------------
# Concurrent header reads. The work is latency-bound (a round trip to /resolve and one to the CDN per file, each
# holding at most ~1 MiB), so the pool is wider than huggingface_hub's CPU-sized one (min(32, cpu + 4) threads).
WORKERS = _env_int("CKPT_SIZE_HUB_WORKERS", 32, 1, 128)
WINDOW = 256  # prefetch at most this many files beyond the one being parsed (bounds memory on 1,000-shard sets)
MAX_TRIES = 5  # attempts per request on 408/429/5xx and timeouts
MAX_CONNECT_TRIES = 3  # attempts when the host cannot be reached at all (fail fast when offline)
RETRY_BASE_WAIT = 0.5  # seconds; doubles per attempt, with jitter
RETRY_MAX_WAIT = 8.0
RETRY_AFTER_CAP = 60.0  # longest `Retry-After` we honour before giving up waiting
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5  # the Hub needs 1 (/resolve -> CDN), 2 for a renamed repo; more is a loop or a broken proxy
MAX_JSON_BYTES = 64 << 20  # index / config side files (DeepSeek-R1's index is 8.9 MB)
MAX_LISTING_PAGES = 10_000


def _hf() -> Any:
    """huggingface_hub, imported on first use (the CLI stays fast for local files)."""
    import huggingface_hub

    return huggingface_hub


def _http_module() -> Any:
    """The HTTP library behind huggingface_hub's session: httpx2 (hf_hub 2.x) or httpx (1.x)."""
    from huggingface_hub.utils import get_session

    session = get_session()
    root = type(session).__module__.split(".")[0]
    module = sys.modules.get(root)
    if module is None or not hasattr(module, "TransportError"):
        raise HubError(f"huggingface_hub {_hf().__version__} uses an HTTP client ckpt-size cannot drive",
                       hint="install huggingface_hub>=1.0")
    return module


def _session() -> Any:
    from huggingface_hub.utils import get_session

    return get_session()


def _as_httpx(response: Any) -> Any:
    """An error answer of the lean pool as an httpx response (its body already read by `_drain`), so
    `hf_raise_for_status` classifies it exactly as it does the session's answers."""
    h = _http_module()
    return h.Response(response.status_code, headers=list(response.headers.items()), content=response.content,
                      request=h.Request("GET", response.url))


@functools.lru_cache(maxsize=1024)
def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _short_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def is_commit(revision: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{40}", revision) is not None


class HubClient:
    """One repo at one revision: builds URLs and headers, sends GETs with retries, maps errors to one line."""

    def __init__(self, repo_id: str, revision: str, token: str | None, stats: FetchStats) -> None:
        self.repo_id = repo_id
        self.revision = revision
        self.token = token
        self.stats = stats
        self.endpoint = endpoint()
        self.timeout = download_timeout()
        # the lean keep-alive pool when it does what huggingface_hub's session would (hub_conn.use_pool)
        self._pool = shared_pool() if use_pool() else None
        self.headers = self._build_headers(token)
        self.has_token = any(k.lower() == "authorization" for k in self.headers)
        # Redirect targets are not Hub origins: the token never goes there (we follow redirects ourselves and
        # send it to the endpoint's origin only, also when we go to a cached CDN URL directly).
        self.public_headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        self._http = hub_conn if self._pool is not None else _http_module()
        self.throttle = Throttle(WORKERS)
        # The revision files are read at: the user's, or the commit it pointed to when a listing of several pages
        # was pinned (so every page and every file is of one commit).
        self.read_revision = revision
        self.commit: str | None = None  # X-Repo-Commit of the first /resolve answer; later ones must agree
        self._commit_lock = threading.Lock()

    def _build_headers(self, token: str | None) -> dict[str, str]:
        """Token and user agent (hub_env.py); huggingface_hub builds them when only it can find the token, and
        the requests it sends meanwhile (an OAuth refresh, its agent registry) are counted."""
        from ..version import __version__

        if not huggingface_hub_finds_the_token(token):
            return simple_headers(token, __version__)
        from huggingface_hub.utils import build_hf_headers

        _install_count_hooks(_session())
        counting = _COUNTING.set(self.stats)
        try:
            return build_hf_headers(token=token, library_name="ckpt-size", library_version=__version__)
        except Exception as e:  # e.g. an unreadable token file
            raise HubUnauthorized(f"cannot build Hub request headers: {e}") from e
        finally:
            _COUNTING.reset(counting)

    # -- URLs ----------------------------------------------------------------------------------------------------
    def resolve_url(self, path: str) -> str:
        return resolve_url(self.endpoint, self.repo_id, self.read_revision, path)

    def tree_url(self, revision: str | None = None) -> str:
        rev = quote(revision or self.revision, safe="")
        return f"{self.endpoint}/api/models/{self.repo_id}/tree/{rev}?recursive=true&expand=false"

    def display(self, path: str | None = None) -> str:
        rev = quote(self.revision, safe="") if "/" in self.revision else self.revision
        return f"hf://{self.repo_id}@{rev}" + (f"/{path}" if path else "")

    def headers_for(self, url: str) -> dict[str, str]:
        return dict(self.headers) if _origin(url) == _origin(self.endpoint) else dict(self.public_headers)

    # -- the one request loop ------------------------------------------------------------------------------------
    def call(
        self,
        url: str,
        consume: Callable[[Any], Any],
        *,
        what: str,
        path: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """GET `url` (redirects followed, each hop counted) and return `consume(response)` for a 2xx answer.

        `consume` reads the streamed body (counting bytes with `count_body`) and may raise `_Retry`. Failures are
        retried on 408/429/5xx, timeouts, dropped connections and broken answers with exponential backoff; a rate
        limit (429, or 503 naming a wait) also narrows the throttle and pauses every sender. The last failure
        becomes a one-line HubError.
        """
        h = self._http
        transport_errors = (h.TimeoutException, h.NetworkError, h.RemoteProtocolError, h.ProxyError)
        attempt = 0
        while True:
            attempt += 1
            ticket = self.throttle.acquire()
            try:
                result = self._exchange(url, consume, what=what, path=path, headers=headers)
            except _Retry as r:
                failure = r
            except transport_errors as e:
                failure = _Retry(f"{type(e).__name__}: {e}".rstrip(": "), connect=isinstance(e, h.ConnectError))
            except BaseException as e:
                self.throttle.release(ticket)
                if self._pool is None and isinstance(e, _hf().errors.OfflineModeIsEnabled):
                    raise HubOfflineError(f"{what}: HF_HUB_OFFLINE=1 forbids network access",
                                          hint="unset HF_HUB_OFFLINE, or download the files first") from e
                if isinstance(e, h.RequestError):  # not worth retrying: bad URL scheme, invalid URL, …
                    raise HubNetworkError(f"{what}: request to {urlsplit(url).netloc} failed "
                                          f"({type(e).__name__}: {e})".replace(": )", ")"),
                                          hint="check HF_ENDPOINT and the proxy settings") from None
                raise
            else:
                self.throttle.release(ticket)
                return result
            # the server's wait when it named one, else exponential backoff with jitter
            wait = failure.wait
            if wait is None:
                wait = min(RETRY_MAX_WAIT, RETRY_BASE_WAIT * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            # a rate limit pauses every sender (a wait beyond the cap ends the inspection below, and must not
            # hold the others meanwhile); other failures wait on this thread alone
            self.throttle.release(ticket, throttled=failure.throttled,
                                  wait=wait if failure.throttled and wait <= RETRY_AFTER_CAP else None)
            if wait > RETRY_AFTER_CAP:
                raise HubNetworkError(f"{what}: the Hub asks to wait {wait:.0f} s before retrying ({failure})",
                                      hint="rate limited; try again later (a token raises the limits)")
            limit = MAX_CONNECT_TRIES if failure.connect else MAX_TRIES
            if attempt >= limit:
                raise self._give_up(failure, what, attempt, url) from None
            if not failure.throttled:
                time.sleep(wait)

    def _exchange(self, url: str, consume: Callable[[Any], Any], *, what: str, path: str | None,
                  headers: dict[str, str] | None) -> Any:
        """One attempt: GET `url`, following up to MAX_REDIRECTS redirects by hand (each hop is one request)."""
        session = self._pool or _session()
        if self._pool is not None and offline():  # what huggingface_hub's request hook enforces on its session
            raise HubOfflineError(f"{what}: HF_HUB_OFFLINE=1 forbids network access",
                                  hint="unset HF_HUB_OFFLINE, or download the files first")
        seen = {url}
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            send_headers = {**self.headers_for(current), **(headers or {}), "Accept-Encoding": "identity"}
            self.stats.add(requests=1)
            with session.stream("GET", current, headers=send_headers, timeout=self.timeout,
                                follow_redirects=False) as response:
                status = response.status_code
                self._check_commit(response, what)
                location = response.headers.get("location")
                if status in REDIRECT_STATUS and location:
                    self._drain(response, 64 << 10)
                    target = urljoin(current, location)
                    if target in seen:
                        raise HubNetworkError(f"{what}: redirect loop at {_short_url(target)} "
                                              f"({len(seen)} hops)", hint="the Hub, mirror or proxy is misconfigured; "
                                              "check HF_ENDPOINT and the proxy settings")
                    seen.add(target)
                    current = target
                    continue
                if status in RETRY_STATUS:
                    self._drain(response, 4096)
                    raise _Retry(f"HTTP {status}", _retry_after(response.headers), status=status)
                if status >= 400:
                    self._drain(response, 1 << 20)
                    self.raise_for(response, what=what, path=path)
                if not 200 <= status < 300:
                    self._drain(response, 4096)
                    raise HubNetworkError(f"{what}: unexpected HTTP {status} from {urlsplit(current).netloc}")
                return consume(response)
        raise HubNetworkError(f"{what}: more than {MAX_REDIRECTS} redirects (last to {_short_url(current)})",
                              hint="the Hub, mirror or proxy is misconfigured; check HF_ENDPOINT and the proxy")

    def _check_commit(self, response: Any, what: str) -> None:
        """Every Hub answer naming a commit (X-Repo-Commit) must name the same one: files of one revision."""
        commit = response.headers.get("x-repo-commit")
        if not commit:
            return
        with self._commit_lock:
            if self.commit is None:
                self.commit = commit
                return
            first = self.commit
        if commit != first:
            response.close()
            raise HubError(f"{what}: revision {self.revision!r} moved while it was read (commit {first[:12]} "
                           f"then {commit[:12]})", hint=f"pin the commit: --revision {first}")

    def _give_up(self, failure: _Retry, what: str, attempts: int, url: str) -> HubError:
        reason = str(failure)
        host = urlsplit(url).netloc
        if reason.startswith("HTTP 429"):
            return HubNetworkError(f"{what}: rate limited by {host} (HTTP 429) after {attempts} tries",
                                   hint="wait a few minutes and retry; a token (--token or HF_TOKEN) raises the limits")
        if reason.startswith("HTTP "):
            return HubNetworkError(f"{what}: {host} kept failing ({reason}) after {attempts} tries",
                                   hint="the Hub or mirror is having trouble; retry later")
        if failure.protocol:
            return HubNetworkError(f"{what}: {host} kept sending broken answers ({reason}) after {attempts} tries",
                                   hint="the Hub, mirror or proxy in between is misbehaving; retry later or check "
                                        "HF_ENDPOINT and the proxy")
        if failure.connect:
            return HubNetworkError(f"cannot reach {host} ({reason}) after {attempts} tries",
                                   hint="check the network, proxy or HF_ENDPOINT; with the files in the local "
                                        "Hugging Face cache, HF_HUB_OFFLINE=1 reads them from there")
        return HubNetworkError(f"{what}: network error talking to {host} ({reason}) after {attempts} tries",
                               hint="check the connection; HF_HUB_DOWNLOAD_TIMEOUT raises the timeout")

    def _drain(self, response: Any, cap: int) -> None:
        """Read a small error body so hf_raise_for_status can quote it, without ever reading a large one."""
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) <= cap:
            try:
                response.read()
                self.stats.add(nbytes=len(response.content))
            except Exception:
                pass

    def raise_for(self, response: Any, *, what: str, path: str | None) -> None:
        """Turn a Hub error answer into one clear line (uses hf_raise_for_status's classification)."""
        from huggingface_hub import errors
        from huggingface_hub.utils import hf_raise_for_status

        repo, rev = self.repo_id, self.revision
        page = f"{self.endpoint}/{repo}"
        if not hasattr(response, "request"):  # an answer of the lean pool: as httpx's, for hf_raise_for_status
            response = _as_httpx(response)
        if response.status_code == 416:
            raise HubError(f"{what}: the server says the file is shorter than the listing does (HTTP 416)",
                           hint="the revision changed while reading; pin a commit with --revision")
        try:
            hf_raise_for_status(response)
        except errors.GatedRepoError as e:
            if response.status_code == 403 or self.has_token:
                raise HubGatedRepo(f"{repo} is a gated model and this token has no access to it yet",
                                   hint=f"request access at {page} (approval may take a while), "
                                        "then pass a token of that account with --token or HF_TOKEN") from e
            raise HubGatedRepo(f"{repo} is a gated model: access must be requested and a token given",
                               hint=f"request access at {page}, then pass a token with --token or HF_TOKEN "
                                    "(or run `hf auth login`)") from e
        except errors.RevisionNotFoundError as e:
            raise HubRevisionNotFound(f"{repo}: revision {rev!r} not found",
                                      hint="give a branch, tag, commit hash or refs/pr/N that exists") from e
        except errors.EntryNotFoundError as e:
            raise SourceError(f"{self.display()}: no file {path or _short_url(str(response.url))!r} in the repo",
                              hint="check the path; the repo's files are listed on its page") from e
        except errors.RepositoryNotFoundError as e:
            if self.has_token:
                raise HubRepoNotFound(f"{repo}: repository not found on {self.endpoint}, or this token cannot "
                                      "see it", hint="check the name (owner/repo) and the token's access") from e
            raise HubRepoNotFound(f"{repo}: repository not found on {self.endpoint}",
                                  hint="check the name (owner/repo); a private repo needs a token "
                                       "(--token or HF_TOKEN)") from e
        except errors.DisabledRepoError as e:
            raise HubError(f"{repo}: access to this repository is disabled") from e
        except errors.HfHubHTTPError as e:
            status = response.status_code
            if status == 401:
                raise HubUnauthorized(f"{self.endpoint} rejected the token (401 Unauthorized)",
                                      hint="check --token, HF_TOKEN or the stored login (`hf auth login`)") from e
            if status == 403:
                raise HubUnauthorized(f"{what}: 403 Forbidden", hint="the token lacks permission for "
                                      f"{repo}; use a token with read access") from e
            raise HubError(f"{what}: HTTP {status} from {urlsplit(str(response.url)).netloc}") from e
        raise HubError(f"{what}: unexpected HTTP {response.status_code}")

    # -- body helpers --------------------------------------------------------------------------------------------
    def count_body(self, response: Any, limit: int) -> Iterator[bytes]:
        """Raw body chunks, counted as they arrive; stops once more than `limit` bytes came (the rest is never read).

        A body of at most `limit` bytes is read to its end, so the connection goes back to the pool; stopping
        exactly at `limit` would leave the response unfinished and cost a new connection per request.
        """
        got = 0
        # iter_raw() without a chunk size yields each network read as it arrives: a body cut short is counted up
        # to its last byte (a chunker would hold back the tail it had not filled when the connection dropped)
        for chunk in response.iter_raw():
            if not chunk:
                continue
            self.stats.add(nbytes=len(chunk))
            got += len(chunk)
            yield chunk
            if got > limit:
                return

    # -- whole small files and the listing -----------------------------------------------------------------------
    def get_json(self, path: str, size: int | None, cap: int = MAX_JSON_BYTES) -> Any:
        """A small JSON side file (index, config): one GET, body capped at `cap` bytes."""
        what = self.display(path)
        if size is not None and size > cap:
            raise SourceError(f"{what}: {size:,} bytes, larger than the {cap:,}-byte cap for a side file")

        def consume(response: Any) -> bytes:
            data = b"".join(self.count_body(response, cap))
            if len(data) > cap:
                raise SourceError(f"{what}: larger than the {cap:,}-byte cap for a side file")
            return data

        raw = self.call(self.resolve_url(path), consume, what=what, path=path)
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SourceError(f"{what}: not valid JSON ({e})") from None

    def list_tree(self) -> dict[str, int]:
        """Every file of the repo at the revision with its exact size (LFS/Xet size for large files), all pages.

        One page is one answer of one state. A listing of several pages is pinned first: the revision's commit is
        asked for (one small request) and the pages are read at that commit, as are the files afterwards, so a
        commit landing between two pages cannot mix two states. When the endpoint cannot tell the commit, an entry
        seen twice means the repo changed meanwhile: the listing is read once more, and an error says so if it
        changes again.
        """
        first = self._tree_page(self.tree_url())
        if first[1] is None:
            return self._collect([first[0]])
        commit = None if is_commit(self.revision) else self._pin()
        try:
            if commit is not None:
                self.read_revision = commit
                return self._list_pages(self.tree_url(commit), None)
            return self._list_pages(None, first)
        except _ListingChanged as e:
            if commit is not None or is_commit(self.revision):
                raise HubError(f"listing {self.display()}: the server listed {e} twice at one commit") from None
        try:
            return self._list_pages(self.tree_url(), None)
        except _ListingChanged as e:
            raise HubError(f"listing {self.display()}: the repo changed while it was listed ({e} listed twice)",
                           hint="pin a commit with --revision, or retry once the upload is done") from None

    def _list_pages(self, url: str | None, first: tuple[list[Any], str | None] | None) -> dict[str, int]:
        pages: list[list[Any]] = []
        seen: set[str] = set()
        page = first if first is not None else self._tree_page(url or "")
        while True:
            entries, link = page
            for entry in entries:
                if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                    if entry["path"] in seen:
                        raise _ListingChanged(repr(entry["path"]))
                    seen.add(entry["path"])
            pages.append(entries)
            if link is None:
                return self._collect(pages)
            if len(pages) >= MAX_LISTING_PAGES:
                raise HubError(f"{self.display()}: listing has more than {MAX_LISTING_PAGES} pages")
            page = self._tree_page(link)

    def _tree_page(self, url: str) -> tuple[list[Any], str | None]:
        """One page of the tree listing and the absolute URL of the next one."""

        def consume(response: Any) -> tuple[bytes, str | None]:
            data = b"".join(self.count_body(response, MAX_JSON_BYTES))
            if len(data) > MAX_JSON_BYTES:
                raise HubError(f"listing {self.display()}: a page is larger than {MAX_JSON_BYTES:,} bytes")
            return data, response.links.get("next", {}).get("url")

        raw, link = self.call(url, consume, what=f"listing {self.display()}")
        try:
            entries = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HubError(f"listing {self.display()}: the Hub sent invalid JSON ({e})") from None
        if not isinstance(entries, list):
            raise HubError(f"listing {self.display()}: expected a JSON list of files")
        return entries, urljoin(url, link) if link else None

    @staticmethod
    def _collect(pages: list[list[Any]]) -> dict[str, int]:
        files: dict[str, int] = {}
        for entries in pages:
            for entry in entries:
                if isinstance(entry, dict) and entry.get("type") == "file" and isinstance(entry.get("path"), str):
                    lfs = entry.get("lfs")
                    size = lfs.get("size", entry.get("size")) if isinstance(lfs, dict) else entry.get("size")
                    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
                        files[entry["path"]] = size
        return files

    def _pin(self) -> str | None:
        """The commit the revision points to now (`/api/models/{repo}/revision/{rev}?expand=sha`), or None when the
        endpoint does not say (a mirror without that API)."""
        url = f"{self.endpoint}/api/models/{self.repo_id}/revision/{quote(self.revision, safe='')}?expand=sha"

        def consume(response: Any) -> bytes:
            return b"".join(self.count_body(response, 1 << 20))

        try:
            raw = self.call(url, consume, what=f"commit of {self.display()}")
            sha = json.loads(raw).get("sha")
        except (HubRepoNotFound, HubRevisionNotFound, HubGatedRepo, HubUnauthorized, HubOfflineError):
            raise
        except (HubError, SourceError, ValueError, AttributeError):
            return None
        return sha if isinstance(sha, str) and is_commit(sha) else None
