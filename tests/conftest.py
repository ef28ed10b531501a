"""Fixtures shared by several test modules."""
from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.generate import write_safetensors


@pytest.fixture(scope="session")
def llama_3b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Llama-3.2-3B (fixtures/archs/llama-3.2-3b.yaml: 28 layers, tied embeddings) as a safetensors folder."""
    folder = tmp_path_factory.mktemp("llama")
    write_safetensors(folder, "llama-3.2-3b")
    return folder
