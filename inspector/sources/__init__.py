"""Turning a SOURCE string into files with a ranged byte reader (local paths; Hub refs in `hub`)."""
from __future__ import annotations

from .base import ByteSource, LocalFile, ResolvedSource
from .local import resolve_local

__all__ = ["ByteSource", "LocalFile", "ResolvedSource", "resolve_local"]
