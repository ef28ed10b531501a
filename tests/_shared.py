"""Where the real reference data lives (`../shared` beside the checkout), and a skip marker for when it is absent."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL = SHARED / "data" / "real"
THIREUS = REAL / "Thireus__GGUF-Tool-Suite"

needs_shared = pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real is not beside the checkout")


def thireus_maps() -> list[Path]:
    return sorted(THIREUS.glob("*/tensors.*.map")) if THIREUS.is_dir() else []


def real_indexes() -> list[Path]:
    return sorted(REAL.glob("*/model.safetensors.index.json")) if REAL.is_dir() else []
