"""A fake Hugging Face Hub on 127.0.0.1 for tests and benchmarks: the endpoints `huggingface_hub` and ckpt-size use.

Each repo is a folder (one per revision). The server speaks:

- ``GET /api/models/{owner}/{name}/tree/{rev}[/{path}]?recursive=true&expand=false`` — JSON entries
  ``{"type": "file", "path", "size", "oid", "lfs"?: {"oid", "size", "pointerSize"}}`` and
  ``{"type": "directory", "path", "oid"}``, paginated with ``Link: <…&cursor=N>; rel="next"``.
- ``GET /api/models/{owner}/{name}[/revision/{rev}]`` — model info with ``siblings`` (sizes with ``blobs=true``).
- ``HEAD|GET /{owner}/{name}/resolve/{rev}/{path}`` — small (non-LFS) files are served here with Range
  support; LFS files (model weights) answer ``302`` to a second origin (another port, like the real CDN), with
  ``X-Repo-Commit``, ``X-Linked-Size``, ``X-Linked-Etag`` and ``ETag``. The CDN URL carries a signature, so it
  needs no token (and ``httpx`` drops ``Authorization`` on the cross-origin hop).
- Ranged reads: ``206`` + ``Content-Range: bytes a-b/TOTAL``; ``416`` when the start is past the end.
- Errors with the headers ``huggingface_hub.utils.hf_raise_for_status`` reads: ``X-Error-Code`` =
  ``RepoNotFound`` (401), ``RevisionNotFound`` (404), ``EntryNotFound`` (404), ``GatedRepo`` (401 without a
  token, 403 with a token that was not granted), and ``401`` + ``X-Error-Message: Invalid credentials in
  Authorization header`` for an unknown token.

- ``GET /api/models/{owner}/{name}/revision/{rev}?expand=sha`` — only the fields asked for (the commit), which is
  how a client pins a branch to the commit it points to.

Options: ``latency`` (seconds added to every response, both origins), ``page_size`` (tree pagination),
``ignore_range`` (serve ``200`` with the whole body, as some servers do), ``fail_first`` + ``fail_status``
(the first N GETs of ``/resolve`` answer 429 with ``Retry-After: retry_after``, or 503), ``redirect`` (send LFS
files through the CDN origin: True, False, or a predicate on the path in the repo).

Fault modes (issue 17), each counted in the log like any answer:

- ``truncate_first=N``: the first N file bodies (ranged or not, either origin) promise their full
  ``Content-Length`` but stop halfway and close the connection.
- ``bad_range_first=N``: the first N ranged answers carry a ``Content-Range`` one byte off from what was asked.
- ``max_concurrent=N``: a ``/resolve`` or CDN request arriving while N others are being answered gets ``429``
  with ``Retry-After: retry_after`` (a rate limit by concurrency, as CDNs do).
- ``redirect_loop={paths}``: ``/resolve`` of these paths redirects to the CDN, which redirects back.
- ``missing={paths}``: listed in the tree, but ``/resolve`` answers ``404 EntryNotFound`` (a shard the index
  names and the upload lost).
- ``change_after_page={repo_id: folder}``: once page 1 of that repo's listing at a branch is served, the branch
  moves to a new commit holding `folder` (the old commit stays readable by its hash).
- ``no_pin=True``: ``/api/models/{repo}/revision/{rev}`` answers 404 (a mirror without that API).

Every request is logged (method, kind, path, Range, status, body bytes written) so tests can count requests
and bytes. Bytes of a body the client stopped reading are counted as far as the socket accepted them.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt", ".pth", ".dat")
CHUNK = 64 << 10
SECRET = b"fake-hub-signing-key"


@dataclass
class FakeRepo:
    repo_id: str
    revisions: dict[str, Path]  # revision name (branch, tag, refs/pr/N) -> folder
    gated: bool = False
    private: bool = False
    commits: dict[str, str] = field(default_factory=dict)  # revision name -> 40-hex commit

    def folder_for(self, revision: str) -> tuple[str, Path] | None:
        """(commit, folder) of a branch, tag, refs/pr/N or commit hash."""
        if revision in self.revisions:
            return self.commits[revision], self.revisions[revision]
        for name, commit in self.commits.items():
            if revision == commit:
                return commit, self.revisions[name]
        return None


@dataclass(frozen=True)
class Record:
    method: str
    kind: str  # tree | info | resolve | cdn | other
    path: str
    range: str | None
    status: int
    bytes: int
    auth: bool


def _commit(repo_id: str, revision: str) -> str:
    return hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()


def _files(folder: Path) -> dict[str, Path]:
    out = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            p = Path(root) / name
            out[p.relative_to(folder).as_posix()] = p
    return dict(sorted(out.items()))


class FakeHub:
    """Two loopback HTTP servers (Hub origin and CDN origin) over a set of repo folders."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        page_size: int = 1000,
        ignore_range: bool = False,
        fail_first: int = 0,
        fail_status: int = 429,
        redirect: bool | Callable[[str], bool] = True,
        tokens: Iterable[str] = ("hf_good",),
        retry_after: str | None = "0",  # None: 429/503 answers without Retry-After
        truncate_first: int = 0,
        bad_range_first: int = 0,
        max_concurrent: int | None = None,
        redirect_loop: Iterable[str] = (),
        missing: Iterable[str] = (),
        change_after_page: dict[str, str | Path] | None = None,
        no_pin: bool = False,
    ) -> None:
        self.latency = latency
        self.page_size = page_size
        self.ignore_range = ignore_range
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.redirect = redirect
        self.tokens = set(tokens)
        self.retry_after = retry_after
        self.truncate_first = truncate_first
        self.bad_range_first = bad_range_first
        self.max_concurrent = max_concurrent
        self.redirect_loop = set(redirect_loop)
        self.missing = set(missing)
        self.change_after_page = {k: Path(v) for k, v in (change_after_page or {}).items()}
        self.no_pin = no_pin
        self._budgets = {"truncate": 0, "bad_range": 0}
        self._busy = 0  # /resolve and CDN requests being answered (for max_concurrent)
        self.peak_busy = 0
        self.listing_sizes: dict[str, int] = {}  # path -> size the tree listing claims (to test size checks)
        self.granted: dict[str, set[str]] = {}  # gated repo -> tokens granted access
        self.repos: dict[str, FakeRepo] = {}
        self._records: list[Record] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self.connections = {"hub": 0, "cdn": 0}  # TCP connections accepted per origin (keep-alive reuse)
        self._sockets: list[Any] = []  # accepted connections, closed by stop() and drop_connections()
        self._generation = 0  # bumped by reset(): requests that arrived before it are not counted
        self._idle = threading.Condition(self._lock)
        self._failed = 0
        self._hub = self._server("hub")
        self._cdn = self._server("cdn")
        self._threads: list[threading.Thread] = []

    # -- set-up ------------------------------------------------------------------------------------------------
    def add_repo(
        self,
        repo_id: str,
        folder: str | Path,
        *,
        revisions: dict[str, str | Path] | None = None,
        gated: bool = False,
        private: bool = False,
        granted: Iterable[str] = ("hf_good",),
    ) -> FakeRepo:
        """Serve `folder` as `repo_id` at `main` (plus `revisions`: name -> folder, e.g. {"refs/pr/1": …})."""
        revs = {"main": Path(folder)}
        revs.update({k: Path(v) for k, v in (revisions or {}).items()})
        repo = FakeRepo(repo_id, revs, gated, private, {k: _commit(repo_id, k) for k in revs})
        self.repos[repo_id] = repo
        if gated or private:
            self.granted[repo_id] = set(granted)
        return repo

    # -- life cycle --------------------------------------------------------------------------------------------
    def _server(self, role: str) -> ThreadingHTTPServer:
        hub = self

        class Handler(_Handler):
            fake = hub
            origin = role

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # 32+ concurrent connects must not hit the default backlog of 5

            def handle_error(self, request: Any, client_address: Any) -> None:
                import sys

                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)  # clients closing idle connections are normal

        return Server(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def start(self) -> FakeHub:
        for server in (self._hub, self._cdn):
            t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()
        self.drop_connections()  # a client's kept-alive connection must not reach this server's handlers later

    def drop_connections(self) -> None:
        """Close every accepted connection, as a server does with idle keep-alive connections."""
        import socket

        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- counters ----------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every request that arrived so far, including those still being answered: a handler logs after
        its last write, so the client may hold the whole answer (and the test call `reset`) before the log."""
        with self._lock:
            self._records.clear()
            self._failed = 0
            self._generation += 1

    def begin(self) -> int:
        """A request arrived; returns the counting generation it belongs to (for `log`)."""
        with self._lock:
            self._in_flight += 1
            return self._generation

    def log(self, record: Record, generation: int) -> None:
        """Record an answered request, unless a `reset` came since it arrived."""
        with self._lock:
            if generation == self._generation:
                self._records.append(record)
            self._in_flight -= 1
            self._idle.notify_all()

    @property
    def records(self) -> list[Record]:
        """Every request answered so far. A client has the last byte before the server logs it, so this waits
        (up to 2 s) for requests still being handled."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=2.0)
            return list(self._records)

    def count(self, kind: str | None = None, method: str | None = None) -> int:
        return sum(1 for r in self.records if (kind is None or r.kind == kind)
                   and (method is None or r.method == method))

    def bytes_sent(self, kind: str | None = None) -> int:
        return sum(r.bytes for r in self.records if kind is None or r.kind == kind)

    def take_failure(self) -> bool:
        """True for the first `fail_first` calls (the request must fail with `fail_status`)."""
        with self._lock:
            if self._failed < self.fail_first:
                self._failed += 1
                return True
            return False

    def take(self, fault: str) -> bool:
        """True for the first `truncate_first` / `bad_range_first` bodies."""
        limit = {"truncate": self.truncate_first, "bad_range": self.bad_range_first}[fault]
        with self._lock:
            if self._budgets[fault] < limit:
                self._budgets[fault] += 1
                return True
            return False

    def enter_file_request(self) -> bool:
        """Count a /resolve or CDN request in; False when it is over `max_concurrent` (answer 429)."""
        with self._lock:
            if self.max_concurrent is not None and self._busy >= self.max_concurrent:
                return False
            self._busy += 1
            self.peak_busy = max(self.peak_busy, self._busy)
            return True

    def leave_file_request(self) -> None:
        with self._lock:
            self._busy -= 1

    def redirects(self, rel: str) -> bool:
        return self.redirect(rel) if callable(self.redirect) else bool(self.redirect)

    def move_branch(self, repo: FakeRepo, revision: str, folder: Path) -> None:
        """A new commit on `revision` holding `folder`; the old commit stays readable by its hash."""
        with self._lock:
            old_commit = repo.commits[revision]
            repo.revisions[f"_old/{old_commit}"] = repo.revisions[revision]
            repo.commits[f"_old/{old_commit}"] = old_commit
            repo.revisions[revision] = folder
            repo.commits[revision] = hashlib.sha1(f"{old_commit}+{folder}".encode()).hexdigest()

    # -- signing of CDN URLs -----------------------------------------------------------------------------------
    @staticmethod
    def sign(path: str) -> str:
        return hmac.new(SECRET, path.encode(), hashlib.sha256).hexdigest()[:32]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    origin: str
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"
    # headers and body go out in separate writes: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms per answer
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake.connections[self.origin] += 1
            self.fake._sockets.append(self.connection)

    # -- plumbing ----------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        self._method = method
        self._kind = "other"
        self._status = 0
        self._sent = 0
        parts = urlsplit(self.path)
        self._query = parse_qs(parts.query)
        raw_path = parts.path
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
        if raw_path.startswith("/_fake/"):  # control endpoints for a server in another process (benchmarks)
            self._control(raw_path)
            return
        generation = self.fake.begin()
        gated = self.origin == "cdn" or "/resolve/" in raw_path
        entered = False
        try:
            if gated and method == "GET":  # a rate limit by concurrency: answered at once, before any latency
                entered = self.fake.enter_file_request()
                if not entered:
                    self._kind = "cdn" if self.origin == "cdn" else "resolve"
                    headers = {"Content-Type": "text/plain"}
                    if self.fake.retry_after is not None:
                        headers["Retry-After"] = self.fake.retry_after
                    self._send(429, headers, b"Too Many Requests")
                    return
            if self.fake.latency:
                time.sleep(self.fake.latency)
            if self.origin == "cdn":
                self._kind = "cdn"
                self._cdn(raw_path, parts.query)
            elif raw_path.startswith("/api/models/"):
                self._api(raw_path[len("/api/models/"):])
            elif "/resolve/" in raw_path:
                self._kind = "resolve"
                self._resolve(raw_path)
            else:
                self._error(404, "NotFound", "Not found")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            if entered:
                self.fake.leave_file_request()
            self.fake.log(Record(method, self._kind, unquote(raw_path), self.headers.get("Range"),
                                 self._status, self._sent, "authorization" in {k.lower() for k in self.headers}),
                          generation)

    def _control(self, raw_path: str) -> None:
        if raw_path == "/_fake/reset":
            self.fake.reset()
            self._send(200, {"Content-Type": "application/json"}, b"{}")
        elif raw_path == "/_fake/stats":
            records = self.fake.records
            stats: dict[str, dict[str, int]] = {}
            for r in records:
                key = f"{r.method} {r.kind}"
                entry = stats.setdefault(key, {"requests": 0, "bytes": 0})
                entry["requests"] += 1
                entry["bytes"] += r.bytes
            self._send(200, {"Content-Type": "application/json"}, json.dumps(stats).encode())
        else:
            self._send(404, {"Content-Type": "text/plain"}, b"")

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self._status = status
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if body and self._method != "HEAD":
            self.wfile.write(body)
            self._sent += len(body)

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, headers, json.dumps({"error": message}).encode())

    def _token(self) -> str | None:
        value = self.headers.get("Authorization") or ""
        return value[7:].strip() if value.lower().startswith("bearer ") else None

    def _repo_access(self, repo_id: str, *, download: bool) -> FakeRepo | None:
        """The repo if this request may see it; otherwise sends the Hub's error and returns None."""
        token = self._token()
        if token is not None and token not in self.fake.tokens:
            self._error(401, None, "Invalid credentials in Authorization header")
            return None
        repo = self.fake.repos.get(repo_id)
        granted = self.fake.granted.get(repo_id, set())
        if repo is None or (repo.private and token not in granted):
            self._error(401, "RepoNotFound", "Repository not found")
            return None
        if repo.gated and download and token not in granted:
            if token is None:
                self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must have access to "
                                              "it and be authenticated to access it. Please log in.")
            else:
                self._error(403, "GatedRepo", f"Access to model {repo_id} is restricted and you are not in the "
                                              "authorized list. Visit the repo page to ask for access.")
            return None
        return repo

    def _revision(self, repo: FakeRepo, revision: str) -> tuple[str, Path] | None:
        found = repo.folder_for(revision)
        if found is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return found

    # -- /api/models/… -----------------------------------------------------------------------------------------
    def _api(self, rest: str) -> None:
        segments = rest.split("/")
        if len(segments) < 2:
            self._error(404, None, "Not found")
            return
        repo_id = unquote(segments[0]) + "/" + unquote(segments[1])
        tail = segments[2:]
        if tail[:1] == ["tree"] and len(tail) >= 2:
            self._kind = "tree"
            repo = self._repo_access(repo_id, download=False)
            if repo is None:
                return
            revision = unquote(tail[1])
            found = self._revision(repo, revision)
            if found is None:
                return
            self._tree(repo, found[1], unquote("/".join(tail[2:])), rest)
            new_folder = self.fake.change_after_page.get(repo_id)
            if new_folder is not None and revision in repo.revisions and "cursor" not in self._query:
                del self.fake.change_after_page[repo_id]
                self.fake.move_branch(repo, revision, new_folder)
            return
        if not tail or (tail[0] == "revision" and len(tail) == 2):
            self._kind = "info"
            if self.fake.no_pin and tail:
                self._error(404, None, "Not found")
                return
            repo = self._repo_access(repo_id, download=False)
            if repo is None:
                return
            found = self._revision(repo, unquote(tail[1]) if tail else "main")
            if found is None:
                return
            self._info(repo, *found)
            return
        self._error(404, None, "Not found")

    def _entries(self, folder: Path) -> list[dict[str, Any]]:
        files = _files(folder)
        dirs = sorted({str(Path(p).parent.as_posix()) for p in files} - {"."})
        all_dirs = set()
        for d in dirs:
            parts = d.split("/")
            all_dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        entries: list[dict[str, Any]] = [
            {"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()} for d in sorted(all_dirs)
        ]
        for rel, p in files.items():
            size = self.fake.listing_sizes.get(rel, p.stat().st_size)
            entry: dict[str, Any] = {"type": "file", "path": rel, "size": size,
                                     "oid": hashlib.sha1(f"{rel}:{size}".encode()).hexdigest()}
            if rel.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"oid": hashlib.sha256(f"{rel}:{size}".encode()).hexdigest(), "size": size,
                                "pointerSize": 134}
            entries.append(entry)
        entries.sort(key=lambda e: e["path"])
        return entries

    def _tree(self, repo: FakeRepo, folder: Path, path: str, rest: str) -> None:
        entries = self._entries(folder)
        recursive = self._query.get("recursive", ["false"])[0] == "true"
        prefix = path.strip("/")
        if prefix:
            if not any(e["path"] == prefix and e["type"] == "directory" for e in entries):
                self._error(404, "EntryNotFound", f"{prefix} does not exist on this revision")
                return
            entries = [e for e in entries if e["path"].startswith(prefix + "/")]
        if not recursive:
            depth = prefix.count("/") + 1 if prefix else 0
            entries = [e for e in entries if e["path"].count("/") == depth]
        start = int(self._query.get("cursor", ["0"])[0])
        page = entries[start: start + self.fake.page_size]
        headers = {"Content-Type": "application/json"}
        if start + self.fake.page_size < len(entries):
            base = self.path.split("?")[0]
            expand = self._query.get("expand", ["false"])[0]
            link = (f"{self.fake.url}{base}?recursive={str(recursive).lower()}&expand={expand}"
                    f"&cursor={start + self.fake.page_size}")
            headers["Link"] = f'<{link}>; rel="next"'
        self._send(200, headers, json.dumps(page).encode())

    def _info(self, repo: FakeRepo, commit: str, folder: Path) -> None:
        expand = self._query.get("expand")
        if expand:  # only the properties asked for (the Hub's `expand` parameter)
            body: dict[str, Any] = {"_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id}
            if "sha" in expand:
                body["sha"] = commit
            self._send(200, {"Content-Type": "application/json"}, json.dumps(body).encode())
            return
        blobs = self._query.get("blobs", ["false"])[0] == "true"
        siblings = []
        for e in self._entries(folder):
            if e["type"] != "file":
                continue
            s: dict[str, Any] = {"rfilename": e["path"]}
            if blobs:
                s.update(size=e["size"], blobId=e["oid"])
                if "lfs" in e:
                    s["lfs"] = {"sha256": e["lfs"]["oid"], "size": e["size"], "pointerSize": 134}
            siblings.append(s)
        body = {"id": repo.repo_id, "modelId": repo.repo_id, "sha": commit, "private": repo.private,
                "gated": "auto" if repo.gated else False, "siblings": siblings}
        self._send(200, {"Content-Type": "application/json"}, json.dumps(body).encode())

    # -- /{repo}/resolve/{rev}/{path} ---------------------------------------------------------------------------
    def _resolve(self, raw_path: str) -> None:
        m = re.match(r"^/([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$", raw_path)
        if not m:
            self._error(404, None, "Not found")
            return
        repo_id = unquote(m[1]) + "/" + unquote(m[2])
        revision, rel = unquote(m[3]), unquote(m[4])
        repo = self._repo_access(repo_id, download=True)
        if repo is None:
            return
        found = self._revision(repo, revision)
        if found is None:
            return
        commit, folder = found
        target = folder / rel
        if not target.is_file() or ".." in Path(rel).parts or rel in self.fake.missing:
            self._error(404, "EntryNotFound", f"{rel} does not exist on {revision}")
            return
        if self._method == "GET" and self.fake.take_failure():
            status = self.fake.fail_status
            headers = {"Content-Type": "text/plain"}
            if self.fake.retry_after is not None:
                headers["Retry-After"] = self.fake.retry_after
            body = b"Too Many Requests" if status == 429 else b"Service Unavailable"
            self._send(status, headers, body)
            return
        size = target.stat().st_size
        etag = f'"{hashlib.sha1(f"{rel}:{size}".encode()).hexdigest()}"'
        common = {"X-Repo-Commit": commit, "ETag": etag, "Accept-Ranges": "bytes"}
        if rel in self.fake.redirect_loop:  # to the CDN, which sends the client back here
            back = quote(f"{self.fake.url}{raw_path}", safe="")
            self._send(302, {**common, "Location": f"{self.fake.cdn_url}/loop?to={back}", "Content-Length": "0"})
            return
        if rel.endswith(LFS_SUFFIXES) and self.fake.redirects(rel):
            cdn_path = f"/{quote(repo_id)}/{commit}/{quote(rel)}"
            location = f"{self.fake.cdn_url}/blob{cdn_path}?sig={self.fake.sign(cdn_path)}"
            lfs_etag = f'"{hashlib.sha256(f"{rel}:{size}".encode()).hexdigest()}"'
            self._send(302, {**common, "Location": location, "X-Linked-Size": str(size),
                             "X-Linked-Etag": lfs_etag, "Content-Length": "0"})
            return
        self._serve_file(target, common)

    def _cdn(self, raw_path: str, query: str) -> None:
        if raw_path == "/loop":
            self._send(302, {"Location": unquote(parse_qs(query).get("to", [""])[0]), "Content-Length": "0"})
            return
        sig = parse_qs(query).get("sig", [""])[0]
        cdn_path = raw_path[len("/blob"):] if raw_path.startswith("/blob/") else ""
        if not cdn_path or not hmac.compare_digest(sig, self.fake.sign(cdn_path)):
            self._send(403, {"Content-Type": "text/plain"}, b"Signature mismatch")
            return
        m = re.match(r"^/(.+)/([0-9a-f]{40})/(.+)$", cdn_path)
        repo = self.fake.repos.get(unquote(m[1])) if m else None
        folder = next((repo.revisions[n] for n, c in repo.commits.items() if c == m[2]), None) if repo and m else None
        if folder is None or not (folder / unquote(m[3])).is_file():
            self._send(404, {"Content-Type": "text/plain"}, b"No such blob")
            return
        self._serve_file(folder / unquote(m[3]), {"Accept-Ranges": "bytes"})

    def _serve_file(self, path: Path, headers: dict[str, str]) -> None:
        size = path.stat().st_size
        range_header = self.headers.get("Range")
        start, end = 0, size - 1
        status = 200
        if range_header and not self.fake.ignore_range:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if not m or (not m[1] and not m[2]):
                self._send(400, {"Content-Type": "text/plain"}, b"Bad Range")
                return
            if m[1]:
                start = int(m[1])
                end = min(int(m[2]), size - 1) if m[2] else size - 1
            else:  # suffix range: the last N bytes
                start, end = max(0, size - int(m[2])), size - 1
            if start >= size:
                self._send(416, {"Content-Range": f"bytes */{size}", "Content-Type": "text/plain"}, b"")
                return
            status = 206
            shown_start = start + 1 if self._method == "GET" and self.fake.take("bad_range") else start
            headers = {**headers, "Content-Range": f"bytes {shown_start}-{end}/{size}"}
        length = end - start + 1
        self._status = status
        self.send_response(status)
        for k, v in {**headers, "Content-Type": "application/octet-stream", "Content-Length": str(length)}.items():
            self.send_header(k, v)
        self.end_headers()
        if self._method == "HEAD":
            return
        # a truncated body: half of what Content-Length promised, then the connection closes
        send = max(0, length // 2) if self.fake.take("truncate") else length
        if send < length:
            self.close_connection = True
        with open(path, "rb") as f:
            f.seek(start)
            left = send
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                self._sent += len(chunk)
                left -= len(chunk)


def point_huggingface_hub_at(url: str, monkeypatch: Any = None) -> None:
    """Make `huggingface_hub` (already imported or not) use `url` as its endpoint.

    `HF_ENDPOINT` is read when huggingface_hub is imported, so a test that starts its server later also patches
    the module constants that derive from it (ENDPOINT and the resolve-URL template).
    """
    from huggingface_hub import constants

    setattr_ = monkeypatch.setattr if monkeypatch is not None else setattr
    if monkeypatch is not None:
        monkeypatch.setenv("HF_ENDPOINT", url)
    else:
        os.environ["HF_ENDPOINT"] = url
    setattr_(constants, "ENDPOINT", url)
    setattr_(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.hub_server --repo owner/name=DIR [--latency S] [--page-size N]``: serve until killed.

    Prints the Hub URL on the first line of stdout. ``GET /_fake/stats`` returns requests and body bytes per
    method and kind (tree, resolve, cdn, info, other); ``GET /_fake/reset`` clears them.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.hub_server")
    parser.add_argument("--repo", action="append", default=[], help="owner/name=DIR (repeatable)")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--ignore-range", action="store_true")
    args = parser.parse_args(argv)
    hub = FakeHub(latency=args.latency, page_size=args.page_size, ignore_range=args.ignore_range)
    for spec in args.repo:
        repo_id, _, folder = spec.partition("=")
        hub.add_repo(repo_id, folder)
    hub.start()
    print(hub.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
