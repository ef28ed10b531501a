"""What a conversation with the Hub costs and how fast it may go: `FetchStats` (requests sent, body bytes
received, progress), the hooks that count huggingface_hub's own requests, and the `Throttle` that bounds requests
in flight per repo and backs off on rate limits."""
from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PROGRESS_INTERVAL = 0.1  # seconds between progress calls that only report bytes


def _env_int(name: str, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(os.environ.get(name, default))))
    except ValueError:
        return default


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
            progress, shown = self.progress, (self.files_done, self.files_total, self.bytes)
        try:  # outside the lock: the display may ask for the counts itself
            progress(*shown)
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
