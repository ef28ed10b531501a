"""Placement files in, placed checkpoints and findings out, for any runtime that reads such files.

Two dialects today, told apart by shape: a KTransformers optimize-rule file is a YAML list of rules; a ckpt-size
plan file is a mapping with `rules:` (docs/placement.md). `detect_placement_kind` names the dialect (the registry
maps it to the runtime that reads it); `read_placement` parses a file and hands it to that runtime's reader.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..datafiles import read_user_file
from ..errors import CheckFailed, RulesError
from ..model import Checkpoint
from .findings import Finding, PlacedPlan, ValidationResult, sort_findings
from .yaml_nodes import Document, parse

__all__ = ["Finding", "PlacedPlan", "ValidationResult", "detect_placement_kind", "read_placement",
           "require_placement"]



def _read(path: str | Path) -> str:
    return read_user_file(path, "placement file")


def _document(text: str, path: str | Path) -> Document:
    """The composed YAML document (no aliases expanded), or the parser's error at its line and column.

    Raises:
        RulesError: invalid YAML (exit 1: the file cannot be read as YAML at all).
    """
    doc = parse(text, str(path))
    if isinstance(doc, Finding):
        raise RulesError(f"{doc.location}: {doc.message}", hint=doc.fix)
    return doc


def _kind_of(doc: Document) -> str:
    import yaml

    if isinstance(doc.root, yaml.SequenceNode):
        return "ktransformers"
    if isinstance(doc.root, yaml.MappingNode):
        keys = {k.value for k, _ in doc.root.value if isinstance(k, yaml.ScalarNode)}
        # a lone KTransformers rule without its leading '-' is still a rule file (the reader says what is wrong)
        return "ktransformers" if keys & {"match", "replace"} and "rules" not in keys else "plan"
    return "unknown"


def detect_placement_kind(path: str | Path) -> str:
    """"ktransformers" (a YAML list of rules) or "plan" (a mapping with `rules:`).

    Raises:
        RulesError: unreadable, invalid YAML (with the parser's line and column), or neither kind.
    """
    kind = _kind_of(_document(_read(path), path))
    if kind == "unknown":
        raise RulesError(f"{path}: neither a KTransformers rule list nor a ckpt-size plan",
                         hint="a KTransformers file is a list of '- match: … replace: …' rules; "
                              "a plan file has a top-level 'rules:' (docs/placement.md)")
    return kind


Reader = Callable[[Document, Checkpoint, "int | None"], "tuple[PlacedPlan | None, list[Finding]]"]


def read_placement(path: str | Path, checkpoint: Checkpoint, reader: Reader, *, gpus: int | None = None
                   ) -> ValidationResult:
    """Every finding about the placement file for this checkpoint, and the placement when it can be made;
    `reader` is the runtime's.

    Raises:
        RulesError: the file cannot be read, or is not valid YAML (named at the parser's line and column).
    """
    doc = _document(_read(path), path)
    placed, findings = reader(doc, checkpoint, gpus)
    ordered = sort_findings(findings)
    return ValidationResult(ordered, placed, any(f.severity == "error" for f in ordered))


def require_placement(result: ValidationResult, path: str | Path) -> PlacedPlan:
    """The placed plan of a file whose findings have no errors; warnings travel in `warnings`, infos in `notes`.

    Raises:
        CheckFailed: the only errors are budgets the plan exceeds (exit code 3).
        RulesError: any other error-level finding (the first is named; `ckpt-size validate` lists all).
    """
    # rule-level errors first: a file-level one (line 0) is usually their consequence
    errors = sorted((f for f in result.findings if f.severity == "error"), key=lambda f: (f.line == 0, f.line))
    if errors or result.placed is None:
        first = errors[0] if errors else None
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        error = CheckFailed if errors and all(f.code == "over-budget" for f in errors) else RulesError
        raise error(
            f"{first.location}: {first.message}{more}" if first else f"{path}: no placement could be made",
            hint=f"{first.fix}; run `ckpt-size validate {path} SOURCE` for every finding" if first else None,
        )
    notes = result.placed.notes + tuple(f.render() for f in result.findings if f.severity != "warning")
    warnings = tuple(f.render() for f in result.findings if f.severity == "warning")
    return PlacedPlan(result.placed.checkpoint, result.placed.kind, notes, warnings)
