"""Turning a SOURCE string into files with a ranged byte reader (local paths; Hub refs in `hub`)."""
from __future__ import annotations

from .base import ByteSource, LocalFile, ResolvedSource
from .local import resolve_local

__all__ = ["ByteSource", "LocalFile", "ResolvedSource", "resolve_local"]

# Hub refs (owner/repo, hf://…): hub.py imports huggingface_hub only when a Hub ref is resolved.
from .hub import HubExtra, HubListing, HubQuant, is_hub_ref, resolve_hub  # noqa: E402

__all__ += ["HubExtra", "HubListing", "HubQuant", "is_hub_ref", "resolve_hub"]
