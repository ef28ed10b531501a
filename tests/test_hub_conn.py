"""The lean HTTP client of Hub reads (inspector/sources/hub_conn.py) against the fake Hub: the same requests and
bytes as through huggingface_hub's session, connections kept alive, and the cases that go through the session."""
from __future__ import annotations

from pathlib import Path

import pytest

from inspector.formats import read_checkpoint
from inspector.sources import hub_conn, hub_http
from inspector.sources.hub import resolve_hub
from inspector.sources.hub_conn import parse_links, use_pool
from tests.hub_server import FakeHub, point_huggingface_hub_at

SHARDS = 3
PROXIES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(scope="module")
def repo(sparse_mixtral) -> Path:  # type: ignore[no-untyped-def]
    return sparse_mixtral(SHARDS)


@pytest.fixture
def hub(repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from huggingface_hub import constants

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "CKPT_SIZE_HUB_HTTP"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(hub_conn, "_POOL", None)  # a pool of this test's own (no connection of an earlier server)
    server = FakeHub().start()
    point_huggingface_hub_at(server.url, monkeypatch)
    server.add_repo("org/sharded", repo)
    yield server
    server.stop()


def test_link_headers_read_as_httpx_reads_them() -> None:
    value = '<https://hf.co/api/models/a/b/tree/main?cursor=Mg%3D%3D>; rel="next", <https://x/y>; rel=prev; t="z"'
    assert parse_links(value) == {"next": {"url": "https://hf.co/api/models/a/b/tree/main?cursor=Mg%3D%3D",
                                           "rel": "next"},
                                  "prev": {"url": "https://x/y", "rel": "prev", "t": "z"}}
    assert parse_links(None) == {} and parse_links("garbage") == {}


def test_proxies_and_a_custom_client_factory_go_through_huggingface_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.utils import _http

    for var in ("CKPT_SIZE_HUB_HTTP", *PROXIES, *(v.upper() for v in PROXIES)):
        monkeypatch.delenv(var, raising=False)
    assert use_pool()
    for var in ("HTTPS_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://proxy.example:3128")
        assert not use_pool(), var
        monkeypatch.delenv(var)
    monkeypatch.setenv("CKPT_SIZE_HUB_HTTP", "huggingface_hub")
    assert not use_pool()
    monkeypatch.delenv("CKPT_SIZE_HUB_HTTP")
    monkeypatch.setattr(_http, "_GLOBAL_CLIENT_FACTORY", lambda: _http.default_client_factory())
    assert not use_pool()


@pytest.mark.parametrize("transport", ["pool", "huggingface_hub"])
def test_both_transports_send_the_same_requests_and_read_the_same_bytes(hub: FakeHub, repo: Path, transport: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if transport == "huggingface_hub":
        monkeypatch.setenv("CKPT_SIZE_HUB_HTTP", "huggingface_hub")
    resolved = resolve_hub("org/sharded")
    checkpoint = read_checkpoint(resolved)
    # listing, index, config.json, and per shard its /resolve and the CDN hop
    assert resolved.fetch_stats() == {"requests": 3 + 2 * SHARDS, "bytes": hub.bytes_sent()}
    assert hub.count() == 3 + 2 * SHARDS
    assert len(checkpoint.files) == SHARDS
    client = resolved.files[0].client  # type: ignore[attr-defined]
    assert (client._pool is not None) == (transport == "pool")


def test_one_request_at_a_time_uses_one_connection_per_origin(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """With one request in flight at most, every request reuses the origin's kept-alive connection: 9 requests
    (listing, index, config and 3 /resolve on the Hub; 3 ranged reads on the CDN) on 2 connections."""
    monkeypatch.setattr(hub_http, "WORKERS", 1)
    read_checkpoint(resolve_hub("org/sharded"))
    assert hub.count() == 3 + 2 * SHARDS
    assert hub.connections == {"hub": 1, "cdn": 1}
    read_checkpoint(resolve_hub("org/sharded"))  # a second command in the same process: still no new connection
    assert hub.connections == {"hub": 1, "cdn": 1}


def test_a_kept_alive_connection_the_server_closed_is_replaced(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server closes idle connections when it likes: the request written to such a connection never reached it,
    so it is sent again on a new one, and the count stays what the server saw."""
    monkeypatch.setattr(hub_http, "WORKERS", 1)
    read_checkpoint(resolve_hub("org/sharded"))
    hub.drop_connections()
    hub.reset()
    resolved = resolve_hub("org/sharded")
    read_checkpoint(resolved)
    assert resolved.fetch_stats()["requests"] == hub.count() == 3 + 2 * SHARDS
    assert hub.connections == {"hub": 2, "cdn": 2}


def test_https_with_the_certificates_of_ssl_cert_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An https endpoint is verified against SSL_CERT_FILE (as httpx reads it), and a certificate nobody trusts is a
    connection failure, not an answer."""
    import shutil
    import ssl
    import subprocess
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    if shutil.which("openssl") is None:
        pytest.skip("no openssl binary to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = b"hello"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/x"
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        pool = hub_conn.Pool()
        for _ in range(2):  # the second request on the kept-alive TLS connection
            with pool.stream("GET", url, headers={}, timeout=5) as response:
                assert response.status_code == 200 and response.read() == b"hello"
        monkeypatch.delenv("SSL_CERT_FILE")
        with pytest.raises(hub_conn.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            hub_conn.Pool().stream("GET", url, headers={}, timeout=5)
    finally:
        server.shutdown()
        server.server_close()


def test_a_header_http_client_refuses_is_our_error_not_the_servers(hub: FakeHub) -> None:
    """A token read from a file with its newline: http.client refuses the header before anything is sent. That is
    a request error (not retried as a broken answer), and its message does not repeat the value (a secret)."""
    with pytest.raises(hub_conn.RequestError) as info:
        hub_conn.Pool().stream("GET", hub.url + "/api/models/org/sharded", headers={"authorization": "Bearer hf_S\n"},
                               timeout=5)
    assert "hf_S" not in str(info.value)
    assert hub.count() == 0


def test_a_resend_that_fails_again_is_one_transport_error(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kept-alive connection was dead, and so is the new one: a RemoteProtocolError (retried by the client
    like any broken answer), never http.client's own exception, and no socket left open."""
    pool = hub_conn.Pool()
    calls = []

    def dead(self, conn, method, target, headers, timeout):  # type: ignore[no-untyped-def]
        calls.append(conn)
        raise ConnectionResetError("reset by peer")

    monkeypatch.setattr(hub_conn.Pool, "_take", lambda self, key: hub_conn.Pool._open(self, key, 5))
    monkeypatch.setattr(hub_conn.Pool, "_send", dead)
    with pytest.raises(hub_conn.RemoteProtocolError):
        pool.stream("GET", hub.url + "/api/models/org/sharded", headers={}, timeout=5)
    assert len(calls) == 2 and all(c.sock is None for c in calls)
