"""HTTP side of Hub sources: ranged header reads through `huggingface_hub`'s session, retries, errors, prefetch.

Everything goes through `huggingface_hub.utils.get_session()` (the user's proxies, certificates and client
factory apply, `HF_HUB_OFFLINE` is enforced by its request hook), `build_hf_headers()` (token resolution:
`--token`, `HF_TOKEN`, the stored login) and `hf_raise_for_status()` (the Hub's `X-Error-Code` headers become
typed errors, which we turn into one-line `RemoteError`s here).

Costs are counted in `FetchStats`: one *request* per HTTP exchange we send (a retry is a new request, and so is
each redirect hop: `/resolve` and the CDN it redirects to are two), so the count is what the server sees; and
the *bytes* of every response body we received. Redirects are followed here, not by the HTTP client, so each hop
is counted, a loop is caught at once, and the token never leaves the Hub's origin.

Concurrency is bounded by a `Throttle` per repo: `WORKERS` requests in flight at most; a 429 (or a 503 with
`Retry-After`) halves that limit once per round and pauses every sender until the time the server asked for;
successes add the slots back one at a time.
"""
from __future__ import annotations

import atexit
import contextvars
import email.utils
import functools
import json
import os
import queue
import random
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from ..errors import RemoteError, SourceError


# -- tuning (module constants so tests and benchmarks can change them) --------------------------------------------
def _env_int(name: str, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(os.environ.get(name, default))))
    except ValueError:
        return default


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
PROGRESS_INTERVAL = 0.1  # seconds between progress calls that only report bytes


class HubError(RemoteError):
    """The Hub answered with an error or could not be reached (exit code 1)."""


class HubRepoNotFound(HubError):
    """The repository does not exist, or is private and the token cannot see it."""


class HubRevisionNotFound(HubError):
    """The revision (branch, tag, commit, refs/pr/N) does not exist in the repository."""


class HubGatedRepo(HubError):
    """The repository is gated: access must be requested on the Hub and a token given."""


class HubUnauthorized(HubError):
    """The token was rejected, or lacks the permission for this repository."""


class HubNetworkError(HubError):
    """The endpoint could not be reached, timed out, or kept failing after every retry."""


class HubOfflineError(HubError):
    """Offline mode is on and the files are not in the local Hugging Face cache."""


@dataclass
class FetchStats:
    """Requests sent and body bytes received, shared by every reader of one resolved source (thread-safe)."""

    requests: int = 0
    bytes: int = 0
    files_done: int = 0
    files_total: int = 0
    progress: Callable[[int, int, int], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._last_report = 0.0

    def add(self, *, requests: int = 0, nbytes: int = 0, files: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.bytes += nbytes
            self.files_done += files
            if self.progress is None or not (files or nbytes):
                return
            now = time.monotonic()
            if not files and now - self._last_report < PROGRESS_INTERVAL:
                return  # bytes alone are reported at most every PROGRESS_INTERVAL seconds
            self._last_report = now
            try:
                self.progress(self.files_done, self.files_total, self.bytes)
            except Exception:  # a broken progress display must not break the inspection
                self.progress = None

    def add_total(self, files: int) -> None:
        """More files to read (each `select` of a view adds its model's files)."""
        with self._lock:
            self.files_total += files

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"requests": self.requests, "bytes": self.bytes}


class Throttle:
    """At most `limit` requests in flight, adapting to rate limits (additive increase, multiplicative decrease).

    A throttled answer (429, or 503 with `Retry-After`/`RateLimit` reset) halves the limit, at most once per
    round: answers to requests sent before the last decrease do not decrease it again (the burst of 429s from one
    round costs one halving, not five). It also pauses every sender until the time the server asked for. Each
    `limit` successful answers in a row add one slot back, up to the starting limit.
    """

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max = self.limit = max(1, limit)
        self.in_flight = 0
        self.resume_at = 0.0
        self.epoch = 0  # bumped at each decrease; requests carry the epoch they started in
        self.decreases = 0
        self._successes = 0
        self._clock = clock
        self._cond = threading.Condition()

    def acquire(self) -> int:
        """Wait for a slot (and for any pause to end); returns the ticket to give back to `release`."""
        with self._cond:
            while True:
                pause = self.resume_at - self._clock()
                if pause > 0:
                    self._cond.wait(pause)
                elif self.in_flight < self.limit:
                    self.in_flight += 1
                    return self.epoch
                else:
                    self._cond.wait()

    def release(self, ticket: int, *, throttled: bool = False, wait: float | None = None) -> None:
        with self._cond:
            self.in_flight -= 1
            if throttled:
                if ticket == self.epoch:
                    self.limit = max(1, self.limit // 2)
                    self.epoch += 1
                    self.decreases += 1
                self._successes = 0
                if wait:
                    self.resume_at = max(self.resume_at, self._clock() + wait)
            else:
                self._successes += 1
                if self.limit < self.max and self._successes >= self.limit:
                    self.limit += 1
                    self._successes = 0
            self._cond.notify_all()


# Requests huggingface_hub sends on our behalf (building the headers may fetch its agent registry or refresh an
# OAuth token) are counted by a request hook on its session, active only while this variable holds our stats:
# the hook is a no-op for everybody else's requests on the shared session.
_COUNTING: contextvars.ContextVar[FetchStats | None] = contextvars.ContextVar("ckpt_size_counting", default=None)


def _count_hook(request: Any) -> None:
    stats = _COUNTING.get()
    if stats is not None:
        stats.add(requests=1)


def _count_response_hook(response: Any) -> None:
    stats = _COUNTING.get()
    length = response.headers.get("content-length", "")
    if stats is not None and length.isdigit():
        stats.add(nbytes=int(length))


def _install_count_hooks(session: Any) -> None:
    hooks = getattr(session, "event_hooks", None)
    if not isinstance(hooks, dict) or _count_hook in hooks.get("request", []):
        return
    session.event_hooks = {**hooks, "request": [*hooks.get("request", []), _count_hook],
                           "response": [*hooks.get("response", []), _count_response_hook]}


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


def endpoint() -> str:
    """The Hub endpoint as huggingface_hub resolves it (`HF_ENDPOINT`, else https://huggingface.co)."""
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


@functools.lru_cache(maxsize=1024)
def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _short_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class _Retry(Exception):
    """A retryable failure: a status in RETRY_STATUS, a transport error, or an answer that broke the protocol
    (a body cut short, a wrong Content-Range)."""

    def __init__(self, reason: str, wait: float | None = None, connect: bool = False, status: int | None = None,
                 protocol: bool = False) -> None:
        super().__init__(reason)
        self.wait = wait
        self.connect = connect
        self.status = status
        self.protocol = protocol

    @property
    def throttled(self) -> bool:
        """The server asked us to slow down: 429, or 503 naming a wait (Retry-After / RateLimit)."""
        return self.status == 429 or (self.status == 503 and self.wait is not None)


class _ListingChanged(Exception):
    """Pages of one listing disagree (an entry seen twice): the repo changed while it was listed."""


def is_commit(revision: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{40}", revision) is not None


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from `RateLimit` (remaining 0) or `Retry-After` (seconds or an HTTP date)."""
    try:
        from huggingface_hub.utils import parse_ratelimit_headers

        info = parse_ratelimit_headers(headers)
        if info is not None and info.remaining == 0:
            return float(info.reset_in_seconds)
    except Exception:
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class HubClient:
    """One repo at one revision: builds URLs and headers, sends GETs with retries, maps errors to one line."""

    def __init__(self, repo_id: str, revision: str, token: str | None, stats: FetchStats) -> None:
        from huggingface_hub import constants
        from huggingface_hub.utils import build_hf_headers

        from ..version import __version__

        self.repo_id = repo_id
        self.revision = revision
        self.token = token
        self.stats = stats
        self.endpoint = endpoint()
        self.timeout = float(constants.HF_HUB_DOWNLOAD_TIMEOUT)
        from huggingface_hub.utils import get_session

        _install_count_hooks(get_session())
        counting = _COUNTING.set(stats)
        try:
            self.headers = build_hf_headers(token=token, library_name="ckpt-size", library_version=__version__)
        except Exception as e:  # e.g. an unreadable token file
            raise HubUnauthorized(f"cannot build Hub request headers: {e}") from e
        finally:
            _COUNTING.reset(counting)
        self.has_token = any(k.lower() == "authorization" for k in self.headers)
        # Redirect targets are not Hub origins: the token never goes there (we follow redirects ourselves and
        # send it to the endpoint's origin only, also when we go to a cached CDN URL directly).
        self.public_headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        self._http = _http_module()
        self.throttle = Throttle(WORKERS)
        # The revision files are read at: the user's, or the commit it pointed to when a listing of several pages
        # was pinned (so every page and every file is of one commit).
        self.read_revision = revision
        self.commit: str | None = None  # X-Repo-Commit of the first /resolve answer; later ones must agree
        self._commit_lock = threading.Lock()

    # -- URLs ----------------------------------------------------------------------------------------------------
    def resolve_url(self, path: str) -> str:
        from huggingface_hub import hf_hub_url

        url = hf_hub_url(self.repo_id, path, revision=self.read_revision, endpoint=self.endpoint)
        if not url.startswith(self.endpoint):  # hf_hub_url's template is fixed at import; keep HF_ENDPOINT's host
            url = f"{self.endpoint}/{self.repo_id}/resolve/{quote(self.read_revision, safe='')}/{quote(path)}"
        return url

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
                if isinstance(e, _hf().errors.OfflineModeIsEnabled):
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
        from huggingface_hub.utils import get_session

        session = get_session()
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


class HubFile:
    """A file in a Hub repo read by ranges: the ByteSource for the header parsers.

    `size()` comes from the listing. The first `first_block` bytes are fetched ahead (concurrently with the other
    files, by `Prefetcher`); a read past what is held continues where the last one ended with one ranged GET for
    the missing bytes only, never from byte 0 again. Every 206 answer's `Content-Range` total is checked against
    the listing. A server that ignores `Range` (200 with the whole file) is read only as far as needed and the
    connection closed. After a redirect to the CDN, later reads go to the CDN URL directly (one hop, no token).
    """

    def __init__(self, client: HubClient, path: str, size: int, first_block: int, index: int = 0) -> None:
        self.client = client
        self.path = path
        self.name = client.display(path)
        self._size = size
        self.first_block = max(0, min(first_block, size))
        self.index = index  # position in its source, for the prefetch window
        self._url = client.resolve_url(path)
        self._cdn_url: str | None = None
        self._buf = b""
        self._buf_start = 0
        self._state = "idle"  # idle -> queued -> running -> ready
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()  # guards _state
        self._io = threading.Lock()  # one read at a time per file
        self.range_ignored = False
        self.requests = 0
        self.bytes_read = 0
        self._window: Prefetcher | None = None

    def size(self) -> int:
        return self._size

    # -- prefetch ------------------------------------------------------------------------------------------------
    def queue(self, window: Prefetcher) -> None:
        with self._lock:
            if self._state == "idle":
                self._state = "queued"
                self._window = window

    def run_prefetch(self) -> None:
        """Called by a prefetch worker: fetch the first block unless a reader already took over."""
        with self._lock:
            if self._state != "queued":
                return
            self._state = "running"
        self._do_prefetch()

    def _do_prefetch(self) -> None:
        try:
            if self.first_block > 0:
                self._buf = self._fetch(0, self.first_block)
                self._buf_start = 0
        except BaseException as e:  # delivered to the reader
            self._error = e
        finally:
            with self._lock:
                self._state = "ready"
            self._ready.set()
            self.client.stats.add(files=1)

    def _await_prefetch(self) -> None:
        with self._lock:
            state = self._state
            if state in ("idle", "queued"):
                self._state = "running"
        if state in ("idle", "queued"):
            self._do_prefetch()  # not started yet: do it now rather than wait behind other files
        else:
            self._ready.wait()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    # -- ByteSource ----------------------------------------------------------------------------------------------
    def read(self, offset: int, n: int) -> bytes:
        if self._window is not None:
            self._window.reached(self.index)
        if n <= 0 or offset >= self._size:
            return b""
        end = min(offset + n, self._size)
        self._await_prefetch()
        with self._io:
            start, buf = self._buf_start, self._buf
            held_end = start + len(buf)
            if start <= offset and end <= held_end:
                data = buf[offset - start:]
            elif start <= offset <= held_end and buf:
                data = buf[offset - start:] + self._fetch(held_end, end)
            else:
                data = self._fetch(offset, end)
            # Readers move forward only: keep what follows `offset`, drop what came before.
            self._buf, self._buf_start = data, offset
            return data[: end - offset]

    def close(self) -> None:
        with self._io:
            self._buf = b""
            self._buf_start = 0

    # -- one ranged GET ------------------------------------------------------------------------------------------
    def _fetch(self, start: int, end: int) -> bytes:
        """Bytes [start, end) with one ranged GET (a server that sends less gets asked for the rest)."""
        parts: list[bytes] = []
        pos = start
        while pos < end:
            chunk = self._get(pos, end)
            if not chunk:
                raise HubError(f"{self.name}: the server sent no bytes for range {pos}-{end - 1}")
            parts.append(chunk)
            pos += len(chunk)
        return b"".join(parts)

    def _get(self, start: int, end: int) -> bytes:
        client = self.client
        what = self.name
        want = end - start

        def consume(response: Any) -> bytes:
            if response.status_code == 206:
                # the body first (at most `want` bytes and a little): what came is counted, the connection reused
                body = b"".join(client.count_body(response, want))
                first, last = self._check_content_range(response.headers.get("content-range"), start, end)
                span = last - first + 1
                if len(body) > span:
                    raise _Retry(f"the body is longer than its Content-Range bytes {first}-{last}", protocol=True)
                if len(body) < span:
                    raise _Retry(f"the body was cut short: {len(body):,} of {span:,} bytes", protocol=True)
                return body
            if response.status_code == 200:  # Range ignored: read the stream only as far as needed, then close
                self.range_ignored = True
                length = response.headers.get("content-length")
                if length is not None and length.isdigit() and int(length) != self._size:
                    raise self._size_changed(int(length))
                body = b"".join(client.count_body(response, end - 1))  # stops after `end` bytes or more
                return body[start:end]
            raise HubError(f"{what}: unexpected HTTP {response.status_code} to a ranged read")

        url = self._cdn_url or self._url
        try:
            data = client.call(url, lambda r: (consume(r), str(r.url)), what=what, path=self.path,
                               headers={"Range": f"bytes={start}-{end - 1}"})
        except HubError as e:
            if self._cdn_url is None or isinstance(e, HubNetworkError):
                raise
            self._cdn_url = None  # a signed CDN URL may have expired (403/404): go through /resolve again
            return self._get(start, end)
        body, final_url = data
        self.requests += 1
        self.bytes_read += len(body)
        if final_url != url and _origin(final_url) != _origin(client.endpoint):
            self._cdn_url = final_url
        return body

    def _check_content_range(self, value: str | None, start: int, end: int) -> tuple[int, int]:
        """(first, last) of a 206 answer that covers the start of what was asked; a total other than the listed
        size means the file changed (an error); a range that does not start where asked is a broken answer
        (retried: a CDN edge may serve it right the next time)."""
        m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
        if not m:
            raise _Retry(f"a 206 answer without a valid Content-Range ({(value or '')[:60]!r})", protocol=True)
        first, last, total = int(m[1]), int(m[2]), m[3]
        if total != "*" and int(total) != self._size:
            raise self._size_changed(int(total))
        if first != start or last < first or last >= end:
            raise _Retry(f"asked for bytes {start}-{end - 1}, the server sent {first}-{last}", protocol=True)
        return first, last

    def _size_changed(self, served: int) -> HubError:
        return HubError(f"{self.name}: the listing says {self._size:,} bytes but the server serves {served:,}",
                        hint="the revision changed while reading; pin a commit with --revision")


class Prefetcher:
    """Daemon workers that fetch each file's first block in order, at most WINDOW files ahead of the reader.

    Daemon threads and an atexit hook mean a failed or abandoned inspection never keeps the process alive;
    `cancel()` (also called when the resolved source is garbage-collected) drops what is still queued.
    """

    _live: weakref.WeakSet[Prefetcher] = weakref.WeakSet()

    def __init__(self, files: list[HubFile], workers: int | None = None, window: int | None = None) -> None:
        workers = WORKERS if workers is None else workers
        window = WINDOW if window is None else window
        self._queue: queue.Queue[HubFile | None] = queue.Queue()
        self._cond = threading.Condition()
        self._reached = -1
        self._window = max(1, window)
        self._cancelled = False
        for f in files:
            f.queue(self)
            self._queue.put(f)
        n = max(1, min(workers, len(files)))
        for _ in range(n):
            self._queue.put(None)
        self._threads = [threading.Thread(target=self._work, name="ckpt-size-prefetch", daemon=True)
                         for _ in range(n)]
        Prefetcher._live.add(self)
        for t in self._threads:
            t.start()

    def reached(self, index: int) -> None:
        """The reader is at file `index`: let the workers run up to index + WINDOW."""
        with self._cond:
            if index > self._reached:
                self._reached = index
                self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            f = self._queue.get()
            if f is None:
                return
            with self._cond:
                while not self._cancelled and f.index > self._reached + self._window:
                    self._cond.wait(0.5)
                if self._cancelled:
                    continue
            f.run_prefetch()


class _Deferred:
    """A value computed on a daemon thread (so an abandoned run never blocks interpreter exit)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(fn,), name="ckpt-size-side", daemon=True).start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._value = fn()
        except BaseException as e:
            self._error = e
        finally:
            self._done.set()

    def result(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


@atexit.register
def _cancel_all() -> None:
    for p in list(Prefetcher._live):
        p.cancel()
