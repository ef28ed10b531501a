"""Hub settings and request headers without huggingface_hub's HTTP stack (inspector/sources/hub_env.py): the token
chosen as huggingface_hub chooses it, checked against its own `get_token_to_send`, and a whole Hub inspection that
never imports httpx."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.generate import write_safetensors
from inspector.sources.hub_env import huggingface_hub_finds_the_token, resolve_url, simple_headers
from tests.hub_server import FakeHub

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    from huggingface_hub import constants

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    return tmp_path / "token"


def sent(token: str | None) -> str | None:
    """The Authorization value ckpt-size sends when it builds the headers itself."""
    assert not huggingface_hub_finds_the_token(token)
    return simple_headers(token, "0").get("authorization")


def test_the_token_is_the_one_huggingface_hub_would_send(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants
    from huggingface_hub.utils._headers import get_token_to_send

    def hf(token: str | None) -> str | None:
        found = get_token_to_send(token)
        return None if found is None else f"Bearer {found}"

    assert sent(None) is None and hf(None) is None  # nothing anywhere
    assert sent("hf_explicit") == "Bearer hf_explicit" == hf("hf_explicit")  # --token wins
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_old_name")
    assert sent(None) == "Bearer hf_old_name" == hf(None)
    monkeypatch.setenv("HF_TOKEN", "  hf_env\n")  # HF_TOKEN first, trimmed
    assert sent(None) == "Bearer hf_env" == hf(None)
    assert sent("hf_explicit") == "Bearer hf_explicit" == hf("hf_explicit")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    assert sent(None) is None and hf(None) is None
    assert sent("hf_explicit") == "Bearer hf_explicit" == hf("hf_explicit")


def test_a_stored_login_oidc_or_colab_is_left_to_huggingface_hub(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean.write_text("hf_stored\n")  # may be an OAuth token that needs a refresh: only huggingface_hub knows
    assert huggingface_hub_finds_the_token(None)
    assert not huggingface_hub_finds_the_token("hf_explicit")
    monkeypatch.setenv("HF_TOKEN", "hf_env")  # HF_TOKEN comes before the file
    assert not huggingface_hub_finds_the_token(None)
    monkeypatch.setenv("HF_OIDC_RESOURCE", "org/repo")  # an OIDC exchange comes before HF_TOKEN
    assert huggingface_hub_finds_the_token(None)
    monkeypatch.delenv("HF_OIDC_RESOURCE")
    monkeypatch.delenv("HF_TOKEN")
    clean.unlink()
    assert not huggingface_hub_finds_the_token(None)
    monkeypatch.setitem(sys.modules, "IPython", object())  # a notebook may hold a Colab secret
    assert huggingface_hub_finds_the_token(None)


def test_resolve_urls_are_quoted_as_hf_hub_url_quotes_them() -> None:
    from huggingface_hub import hf_hub_url

    for revision, path in (("main", "model.safetensors"), ("refs/pr/1", "sub dir/m#1.gguf"), ("v1.0", "a/b+c.json")):
        assert resolve_url("https://huggingface.co", "org/name", revision, path) == \
               hf_hub_url("org/name", path, revision=revision, endpoint="https://huggingface.co")


def test_a_hub_inspection_never_imports_httpx(tmp_path: Path) -> None:
    """A private repo read with HF_TOKEN in a fresh process: the token reaches the Hub, huggingface_hub's HTTP
    stack is never imported."""
    folder = tmp_path / "repo"
    write_safetensors(folder, "mixtral-8x7b", shards=2, mode="sparse")
    with FakeHub() as hub:
        hub.add_repo("org/private", folder, private=True, granted=("hf_good",))
        code = ("import json, sys\n"
                "from inspector.formats import read_checkpoint\n"
                "from inspector.sources.hub import resolve_hub\n"
                "resolved = resolve_hub('org/private')\n"
                "tensors = len(read_checkpoint(resolved).tensors)\n"
                "loaded = sorted(m for m in sys.modules if m.startswith(('httpx', 'huggingface_hub.utils')))\n"
                "print(json.dumps([tensors, resolved.fetch_stats()['requests'], loaded]))\n")
        env = {"PATH": "/usr/bin:/bin", "HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_good", "HF_HOME": str(tmp_path / "hf"),
               "HF_HUB_DISABLE_TELEMETRY": "1"}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                             check=True)
        tensors, requests, loaded = json.loads(out.stdout)
        assert requests == hub.count() == 3 + 2 * 2  # listing, index, config.json, /resolve + CDN per shard
        assert all(r.auth for r in hub.records if r.kind in ("tree", "resolve"))
    assert loaded == [] and tensors > 0
