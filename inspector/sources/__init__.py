"""Turning a SOURCE string into files with a ranged byte reader: one `RepoView` per command (local paths, Hub
repos, the offline HF cache), and the `ResolvedSource` of the model a command selects from it."""
from __future__ import annotations

from .base import ByteSource, LocalFile, ResolvedSource
from .local import LocalRepoView, resolve_local
from .repo import HubExtra, HubListing, HubOptions, HubQuant, RepoView, open_repo

__all__ = ["ByteSource", "HubExtra", "HubListing", "HubOptions", "HubQuant", "LocalFile", "LocalRepoView",
           "RepoView", "ResolvedSource", "open_repo", "resolve_local"]

# Hub refs (owner/repo, hf://…): hub.py imports huggingface_hub only when a Hub ref is opened.
from .hub import CacheRepoView, HubRepoView, is_hub_ref, open_hub, resolve_hub  # noqa: E402

__all__ += ["CacheRepoView", "HubRepoView", "is_hub_ref", "open_hub", "resolve_hub"]
