"""Running the CLI in-process from a test: exit code and captured output, under an alarm so a hang fails the test
instead of blocking the suite (a blocking open() of a FIFO is interrupted by the alarm); and the offline Hugging
Face cache the "inputs are never written" tests read from."""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@contextlib.contextmanager
def no_hang(seconds: int = 20) -> Iterator[None]:
    """Fail instead of blocking forever: a TimeoutError after `seconds`."""

    def boom(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def cli(args: list[str], capsys: pytest.CaptureFixture[str], *, seconds: int = 20) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of one `ckpt-size` command."""
    from inspector.cli import main

    with no_hang(seconds), pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def all_succeed(commands: list[list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    """Every command exits 0 (done) or 3 (does not fit): none fails on its input."""
    for command in commands:
        code, _, err = cli(command, capsys)
        assert code in (0, 3), (command, err)


@contextlib.contextmanager
def offline_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repos: dict[str, Path]) -> Iterator[tuple[Any, Path]]:
    """A fake Hub serving `repos` (repo id -> folder), each downloaded into an empty huggingface_hub cache below
    `tmp_path` (no token, no telemetry), then HF_HUB_OFFLINE turned on and the Hub's request log cleared: yields
    the hub (`hub.count()` tells whether anything went to the network since) and the cache folder."""
    from huggingface_hub import constants, snapshot_download

    from inspector.sources import hub_http
    from tests.hub_server import FakeHub, point_huggingface_hub_at

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    cache = tmp_path / "cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_http, "RETRY_BASE_WAIT", 0.01)
    with FakeHub() as hub:
        point_huggingface_hub_at(hub.url, monkeypatch)
        for repo_id, folder in repos.items():
            hub.add_repo(repo_id, folder)
            snapshot_download(repo_id, cache_dir=str(cache))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        hub.reset()
        yield hub, cache


def tree_state(root: Path) -> dict[str, tuple]:
    """Every entry below `root` (links not followed): kind, size, mtime in ns, content digest for files and the
    target of links; folders with their mtime (a file created and removed again changes it)."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(p), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", st.st_mtime_ns, st.st_mode)
            else:
                digest = hashlib.sha256(p.read_bytes()).hexdigest() if st.st_size < (64 << 20) else "big"
                state[rel] = ("file", st.st_size, st.st_mtime_ns, st.st_mode, digest)
    top = root.stat()
    state["."] = ("dir", top.st_mtime_ns, top.st_mode)
    return state
