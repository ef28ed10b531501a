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


@pytest.fixture(scope="session")
def sparse_mixtral(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """`sparse_mixtral(shards)`: Mixtral-8x7B as a sharded safetensors repo (index + config.json), sparse: real
    sizes (tens of GB), data regions are holes; one folder per shard count, made once per session."""
    made: dict[int, Path] = {}

    def make(shards: int) -> Path:
        if shards not in made:
            made[shards] = tmp_path_factory.mktemp(f"mixtral-{shards}") / "sharded"
            write_safetensors(made[shards], "mixtral-8x7b", shards=shards, mode="sparse")
        return made[shards]
    return make
