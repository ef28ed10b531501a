"""Golden outputs: every fixture and documented command, stdout + stderr + exit code, as committed in
tests/golden/. A change that alters output on purpose rewrites them with `python tools/golden.py --update`."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("golden", ROOT / "tools" / "golden.py")
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)
CASES = golden.cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_matches_golden(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "0"))
    expected = (golden.GOLDEN / f"{name}.txt").read_text(encoding="utf-8")
    assert golden.run(CASES[name]) == expected, f"output drifted; if meant, run: python tools/golden.py --update {name}"


def test_every_golden_file_has_a_case() -> None:
    stored = {p.stem for p in golden.GOLDEN.glob("*.txt")}
    assert stored == set(CASES)
