"""Hub refs: which SOURCE strings name a Hugging Face model repo, and their repo id, revision and path.

Accepted refs: ``owner/repo``, ``owner/repo@REV``, ``owner/repo/path/in/repo``, ``owner/repo@REV/path``,
``hf://owner/repo[@REV][/path]`` and ``https://huggingface.co/owner/repo[/tree|blob|resolve/REV[/path]]``.
REV is a branch, tag, commit or ``refs/pr/N`` (also percent-encoded, ``refs%2Fpr%2F1``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..errors import UsageError
from .paths import looks_like_path

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"^{_NAME}/{_NAME}$")
_HUB_HOSTS = {"huggingface.co", "hf.co", "www.huggingface.co"}


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None = None
    path: str | None = None


def is_hub_ref(source: str) -> bool:
    """True when `source` is not an existing path and is ``hf://…``, a Hub URL, or ``owner/repo[…]`` that does not
    look like a local path (`paths.looks_like_path`: ``./x``, ``/abs``, ``dir/file.gguf``, or ``a/b`` when a
    local ``a`` exists), so a mistyped local path says "no such file" instead of asking the Hub.
    """
    if not source or os.path.lexists(source):
        return False
    if source.startswith("hf://"):
        return True
    if source.startswith(("http://", "https://")):
        return _url_ref(source) is not None
    if looks_like_path(source):
        return False
    try:
        _plain_ref(source)
    except UsageError:
        return False
    return True


def parse_hub_ref(source: str) -> HubRef:
    """Split a Hub ref into repo id, revision and path in the repo.

    Raises:
        UsageError: the ref is not a model repo ref.
    """
    if source.startswith("hf://"):
        rest = source[len("hf://"):]
        if rest.startswith(("datasets/", "spaces/", "buckets/")):
            raise UsageError(f"{source}: only model repos can be inspected", hint="use hf://owner/repo[@rev][/path]")
        rest = rest.removeprefix("models/")
        return _plain_ref(rest, original=source)
    if source.startswith(("http://", "https://")):
        ref = _url_ref(source)
        if ref is None:
            raise UsageError(f"{source}: not a Hugging Face model URL",
                             hint="use owner/repo, hf://owner/repo@rev/path or https://huggingface.co/owner/repo")
        return ref
    return _plain_ref(source)


def _plain_ref(text: str, original: str | None = None) -> HubRef:
    original = original or text
    parts = text.strip("/").split("/")
    if len(parts) < 2:
        raise UsageError(f"{original}: not a Hub ref", hint="use owner/repo[@rev][/path]")
    owner, name = parts[0], parts[1]
    rest = parts[2:]
    revision = None
    if "@" in name:
        name, rev_head = name.split("@", 1)
        rev_parts = [rev_head, *rest]
        # refs/pr/N and refs/convert/X contain slashes; every other revision ends at the next slash
        if rev_parts[0] == "refs" and len(rev_parts) >= 3 and rev_parts[1] in ("pr", "convert"):
            revision, rest = "/".join(rev_parts[:3]), rev_parts[3:]
        else:
            revision, rest = unquote(rev_parts[0]), rev_parts[1:]
        if not revision:
            raise UsageError(f"{original}: empty revision after '@'")
    repo_id = f"{owner}/{name}"
    if not _REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise UsageError(f"{original}: {repo_id!r} is not a valid repo id (owner/name)")
    path = "/".join(rest) or None
    if path is not None and (".." in path.split("/") or path.startswith("/")):
        raise UsageError(f"{original}: path {path!r} leaves the repo")
    return HubRef(repo_id, revision, path)


def _url_ref(url: str) -> HubRef | None:
    """`https://huggingface.co/owner/repo[/tree|blob|resolve/REV[/path]]` (or the HF_ENDPOINT host)."""
    parts = urlsplit(url)
    hosts = set(_HUB_HOSTS)
    endpoint = os.environ.get("HF_ENDPOINT")
    if endpoint:
        hosts.add(urlsplit(endpoint).netloc.lower())
    if parts.netloc.lower() not in hosts:
        return None
    segs = [unquote(s) for s in parts.path.strip("/").split("/") if s]
    if len(segs) < 2 or segs[0] in ("datasets", "spaces", "api"):
        return None
    try:
        base = _plain_ref("/".join(segs[:2]), original=url)
    except UsageError:
        return None
    if len(segs) == 2:
        return base
    if segs[2] not in ("tree", "blob", "resolve") or len(segs) < 4:
        return None
    rest = segs[3:]
    if rest[0] == "refs" and len(rest) >= 3 and rest[1] in ("pr", "convert"):
        revision, rest = "/".join(rest[:3]), rest[3:]
    else:
        revision, rest = rest[0], rest[1:]
    return HubRef(base.repo_id, revision, "/".join(rest) or None)
