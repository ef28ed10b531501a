"""Hub files read by ranges (`HubFile`, the ByteSource the header parsers see) and the `Prefetcher` that fetches
every file's first block concurrently, a bounded window ahead of the reader.

Settings are read from `hub_http` when used (WORKERS, WINDOW), so tests and benchmarks change them in one place.
"""
from __future__ import annotations

import atexit
import queue
import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from . import hub_http
from .hub_errors import HubError, HubNetworkError, _Retry
from .hub_http import HubClient, _origin


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

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def wait_ready(self, timeout: float) -> bool:
        """Whether the first block has arrived or failed (True at once when no prefetch was queued), waiting at
        most `timeout` seconds."""
        with self._lock:
            if self._state == "idle":
                return True
        return self._ready.wait(timeout)

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
        workers = hub_http.WORKERS if workers is None else workers
        window = hub_http.WINDOW if window is None else window
        self._files = files
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

    def settle(self, timeout: float = 60.0) -> None:
        """Wait (at most `timeout` seconds in all) for the first blocks the workers may fetch now: those on the
        wire, and those queued within the reader's window unless cancelled (then they never start). Files beyond
        the window wait for the reader."""
        deadline = time.monotonic() + timeout
        with self._cond:
            limit = self._reached + self._window
        for f in self._files:
            if f.index > limit or f.first_block <= 0:
                continue
            while not f.wait_ready(0.05):
                if (self._cancelled and f.state == "queued") or time.monotonic() > deadline:
                    break

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
