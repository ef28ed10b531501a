"""Placement files, runtime-neutral: YAML with positions (`yaml_nodes`), findings located at file:line:column,
a small JSON-schema validator, and reading a file through a runtime's reader (`files`)."""
from __future__ import annotations

from .files import detect_placement_kind, read_placement, require_placement
from .findings import Finding, PlacedPlan, ValidationResult

__all__ = ["Finding", "PlacedPlan", "ValidationResult", "detect_placement_kind", "read_placement",
           "require_placement"]
