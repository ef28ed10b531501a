"""Every example output in README.md and docs/*.md is what the command prints today (tools/update_docs_examples.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("update_docs_examples", ROOT / "tools" / "update_docs_examples.py")
examples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(examples)


@pytest.mark.parametrize("path", examples.FILES, ids=lambda p: p.name)
def test_example_outputs_are_current(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert examples.updated(text) == text, f"run: python tools/update_docs_examples.py ({path.name} drifted)"


def test_the_readme_shows_real_outputs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(examples.DOLLAR.findall(text)) + len(examples.MARKER.findall(text)) >= 5
    assert "…" not in "".join(m[3] for m in examples.DOLLAR.findall(text))  # nothing trimmed by hand
