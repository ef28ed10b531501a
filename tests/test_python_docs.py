"""docs/python.md is true: every Python example on it runs, from the repository root, and its asserts hold."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "python.md").read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"example-{i}" for i in range(len(BLOCKS))])
def test_python_doc_example_runs(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    exec(compile(code, "docs/python.md", "exec"), {"__name__": "docs_example"})


def test_the_page_has_examples_and_the_package_exports_what_it_names() -> None:
    import inspector

    assert len(BLOCKS) >= 5
    for name in ("inspect", "fit", "validate", "load", "InspectRequest", "run_inspect", "Inspection", "FitReport",
                 "CkptSizeError", "UsageError", "runtime_names"):
        assert getattr(inspector, name).__doc__, name
