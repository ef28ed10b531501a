"""Hub settings as huggingface_hub resolves them, without loading its HTTP stack on the common path.

`huggingface_hub.constants` is a small module (~3 ms to import): the endpoint (`HF_ENDPOINT`), offline mode
(`HF_HUB_OFFLINE`), the timeout (`HF_HUB_DOWNLOAD_TIMEOUT`), the token file (`HF_TOKEN_PATH`) and
`HF_HUB_DISABLE_IMPLICIT_TOKEN` are read from it (so a program that changed them in-process is obeyed). Importing
`huggingface_hub.utils` for `build_hf_headers` loads httpx and most of the library (~0.2 s), so the request
headers are built here when the token is simple to find, following huggingface_hub's order (utils/_auth.py
`get_token`, utils/_headers.py `get_token_to_send`):

1. `--token` (an explicit token is sent as given);
2. none when `HF_HUB_DISABLE_IMPLICIT_TOKEN` is set;
3. an OIDC exchange when `HF_OIDC_RESOURCE` is set  -> huggingface_hub builds the headers;
4. `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN` (trimmed; empty means none);
5. the token file, when it exists (an OAuth login may need a refresh) -> huggingface_hub builds the headers;
6. a Google Colab secret, when running under IPython                     -> huggingface_hub builds the headers;
7. none.

The user agent names ckpt-size, huggingface_hub's version and Python's; huggingface_hub's telemetry additions
(torch version, agent detection, which may fetch a registry) come only with the headers it builds.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote


def hf_constants() -> Any:
    from huggingface_hub import constants

    return constants


def endpoint() -> str:
    """The Hub endpoint as huggingface_hub resolves it (`HF_ENDPOINT`, else https://huggingface.co)."""
    return hf_constants().ENDPOINT.rstrip("/")


def offline() -> bool:
    return bool(hf_constants().is_offline_mode())


def download_timeout() -> float:
    return float(hf_constants().HF_HUB_DOWNLOAD_TIMEOUT)


def resolve_url(endpoint_url: str, repo_id: str, revision: str, path: str) -> str:
    """`/resolve` URL of a file, quoted as huggingface_hub's `hf_hub_url` quotes it."""
    return f"{endpoint_url}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"


def _clean(token: str | None) -> str | None:
    """As huggingface_hub's `_clean_token`: line breaks removed, spaces trimmed, empty is none."""
    if token is None:
        return None
    return token.replace("\r", "").replace("\n", "").strip() or None


def huggingface_hub_finds_the_token(token: str | None) -> bool:
    """True when only huggingface_hub can tell which token to send (OIDC, a token file, a Colab secret)."""
    constants = hf_constants()
    if token is not None or constants.HF_HUB_DISABLE_IMPLICIT_TOKEN:
        return False
    if os.environ.get("HF_OIDC_RESOURCE"):
        return True
    if _clean(os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")) is not None:
        return False
    return Path(constants.HF_TOKEN_PATH).exists() or "IPython" in sys.modules


def simple_headers(token: str | None, library_version: str) -> dict[str, str]:
    """Request headers when `huggingface_hub_finds_the_token(token)` is False."""
    constants = hf_constants()
    if token is None and not constants.HF_HUB_DISABLE_IMPLICIT_TOKEN:
        token = _clean(os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"))
    hf_version = getattr(sys.modules.get("huggingface_hub"), "__version__", "unknown")
    headers = {"user-agent": f"ckpt-size/{library_version}; hf_hub/{hf_version}; "
                             f"python/{'.'.join(map(str, sys.version_info[:3]))}"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers
