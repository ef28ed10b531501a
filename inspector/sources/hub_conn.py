"""A lean HTTP/1.1 client for Hub reads: `http.client` connections kept alive per origin, one GET at a time each.

Why not huggingface_hub's httpx session on every request: a header read is ~120 small exchanges, and httpx spends
~1.2 ms of CPU on each (measured against ~0.45 ms for `http.client` on the same loopback server), besides ~0.2 s
to import huggingface_hub's HTTP stack at start-up. `HubClient` uses this pool when nothing asks for more:
without proxy variables in the environment (`HTTP(S)_PROXY`, `ALL_PROXY`), and with huggingface_hub's default
client factory (a program that called `set_client_factory` gets its own client); otherwise, or with
`CKPT_SIZE_HUB_HTTP=huggingface_hub`, requests go through huggingface_hub's session as before (see `use_pool`).

The session and this pool look the same to `HubClient`: `stream("GET", url, headers=..., timeout=...)` is a
context manager giving a response with `status_code`, `headers` (case-insensitive `get`), `url`, `iter_raw()`,
`read()`, `content`, `links` and `close()`; failures are the exception classes below, named as httpx names them.
Certificates: `SSL_CERT_FILE` / `SSL_CERT_DIR` when set (as httpx reads them), else certifi's bundle when
installed (httpx's default), else the system's.
"""
from __future__ import annotations

import http.client
import os
import re
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

CHUNK = 64 << 10


# -- failures, named as httpx names them (HubClient handles either family the same way) ---------------------------
class TransportError(Exception):
    pass


class RequestError(TransportError):
    """The request cannot be sent at all (bad scheme or URL): not worth retrying."""


class NetworkError(TransportError):
    pass


class ConnectError(NetworkError):
    pass


class TimeoutException(TransportError):
    pass


class RemoteProtocolError(TransportError):
    pass


class ProxyError(TransportError):
    pass


def use_pool() -> bool:
    """True when the pool does what huggingface_hub's session would: no proxy, its default client factory."""
    if os.environ.get("CKPT_SIZE_HUB_HTTP", "").strip().lower() == "huggingface_hub":
        return False
    import urllib.request

    if any(k in urllib.request.getproxies() for k in ("http", "https", "all")):  # httpx's own source of proxies
        return False
    hf_http = sys.modules.get("huggingface_hub.utils._http")
    if hf_http is not None:
        factory = getattr(hf_http, "_GLOBAL_CLIENT_FACTORY", None)
        if factory is not getattr(hf_http, "default_client_factory", factory):
            return False
    return True


def _ssl_context() -> Any:
    import ssl

    cafile, capath = os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None
    context = ssl.create_default_context(cafile=cafile, capath=capath)  # the system store besides, as httpx2 trusts
    if cafile is None and capath is None and not context.get_ca_certs():
        try:  # no system store at all (some containers): certifi's bundle, as httpx 0.28 used
            import certifi

            context.load_verify_locations(certifi.where())
        except ImportError:
            pass
    return context


_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[^,;]*)*)')
_PARAM = re.compile(r';\s*([^=;\s]+)\s*=\s*"?([^";]*)"?')


def parse_links(value: str | None) -> dict[str, dict[str, str]]:
    """A `Link` header as httpx's `Response.links`: {rel: {"url": ..., "rel": ...}}."""
    links: dict[str, dict[str, str]] = {}
    for m in _LINK.finditer(value or ""):
        entry = {"url": m[1].strip()}
        entry.update((k.lower(), v) for k, v in _PARAM.findall(m[2]))
        links[entry.get("rel") or entry["url"]] = entry
    return links


class Response:
    """One answer being read; `close()` gives its connection back when the body was read to its end."""

    def __init__(self, pool: Pool, key: tuple[str, str, int], conn: http.client.HTTPConnection,
                 raw: http.client.HTTPResponse, url: str) -> None:
        self._pool, self._key, self._conn, self._raw = pool, key, conn, raw
        self.url = url
        self.status_code = raw.status
        self.headers = raw.headers  # an email.message.Message: case-insensitive get()
        self.content = b""
        self._done = False

    @property
    def links(self) -> dict[str, dict[str, str]]:
        return parse_links(self.headers.get("link"))

    def iter_raw(self) -> Iterator[bytes]:
        """Body bytes as the network delivers them; a body that stops short of its length is an error."""
        raw = self._raw
        while True:
            try:
                chunk = raw.read1(CHUNK)
            except http.client.IncompleteRead as e:
                raise RemoteProtocolError(f"peer closed connection without sending complete message body ({e})") \
                    from None
            except TimeoutError as e:
                raise TimeoutException(f"read timed out ({e})".replace(" ()", "")) from None
            except (OSError, http.client.HTTPException) as e:
                raise NetworkError(f"{type(e).__name__}: {e}".rstrip(": ")) from None
            if chunk:
                yield chunk
                continue
            if raw.length:  # Content-Length promised more than came before the connection closed
                raise RemoteProtocolError("peer closed connection without sending complete message body "
                                          f"({raw.length:,} bytes missing)")
            self._done = True
            return

    def read(self) -> bytes:
        self.content = b"".join(self.iter_raw())
        return self.content

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._raw.close()  # ends the answer for http.client (its connection takes a new request only then)
        if self._done and not self._raw.will_close:
            self._pool.give_back(self._key, conn)
        else:  # a body left unread (or a server closing it): the connection cannot carry another request
            conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Pool:
    """Idle keep-alive connections per (scheme, host, port); each request takes one (or opens one) and gives it
    back when its body was read. Thread-safe; as many connections as requests in flight (the Throttle's bound)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._ssl: Any = None

    def stream(self, method: str, url: str, *, headers: dict[str, str], timeout: float,
               follow_redirects: bool = False) -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise RequestError(f"cannot send a request to {url!r} (need an http:// or https:// URL)")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as e:
            raise RequestError(f"invalid URL {url!r}: {e}") from None
        key = (scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        reused = self._take(key)
        conn = reused or self._open(key, timeout)
        try:
            raw = self._send(conn, method, target, headers, timeout)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            conn.close()
            if reused is None:
                raise RemoteProtocolError("the server closed the connection without answering") from None
            # a kept-alive connection the server had closed meanwhile: the request never reached it; send it anew
            conn = self._open(key, timeout)
            try:
                raw = self._send(conn, method, target, headers, timeout)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                raise RemoteProtocolError("the server closed the connection without answering") from None
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        return Response(self, key, conn, raw, url)

    def _send(self, conn: http.client.HTTPConnection, method: str, target: str, headers: dict[str, str],
              timeout: float) -> http.client.HTTPResponse:
        try:
            if conn.sock is None:
                try:
                    conn.connect()
                except TimeoutError as e:
                    raise TimeoutException(f"connect timed out ({e})".replace(" ()", "")) from None
                except OSError as e:
                    raise ConnectError(f"{type(e).__name__}: {e}".rstrip(": ")) from None
            else:
                conn.sock.settimeout(timeout)
            try:
                conn.request(method, target, headers=headers)
            except (ValueError, http.client.InvalidURL) as e:  # CR/LF in a header value, a path http.client refuses
                conn.close()
                raise RequestError(f"invalid request header or URL ({type(e).__name__})") from None
            return conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, TransportError):
            raise
        except TimeoutError as e:
            conn.close()
            raise TimeoutException(f"read timed out ({e})".replace(" ()", "")) from None
        except (http.client.HTTPException, ValueError) as e:  # a broken status line or headers
            conn.close()
            raise RemoteProtocolError(f"{type(e).__name__}: {e}".rstrip(": ")) from None
        except OSError as e:
            conn.close()
            raise NetworkError(f"{type(e).__name__}: {e}".rstrip(": ")) from None

    def _take(self, key: tuple[str, str, int]) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def _open(self, key: tuple[str, str, int], timeout: float) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            with self._lock:
                if self._ssl is None:
                    self._ssl = _ssl_context()
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                                           context=self._ssl)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        # small requests and answers: no Nagle delay on the request line and headers
        conn._create_connection = _nodelay_connection  # type: ignore[attr-defined]
        return conn

    def give_back(self, key: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault(key, []).append(conn)

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for c in conns:
            c.close()


def _nodelay_connection(address: tuple[str, int], timeout: float | None = None,
                        source_address: Any = None) -> socket.socket:
    sock = socket.create_connection(address, timeout, source_address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


_POOL: Pool | None = None
_POOL_LOCK = threading.Lock()


def shared_pool() -> Pool:
    """One pool per process: the connections to the Hub and its CDN outlive one command (the API may run many)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = Pool()
        return _POOL
