"""docs/vllm.md shows real output: every ```console block starting with `$ ckpt-size` is run (in-process, in a
folder holding the documented models) and must match what the page shows (stderr lines, then stdout).

    python -m tests.test_vllm_docs --update     # rewrite the blocks after a change meant to alter the output

The models are header-only sparse checkpoints written by the fixture generator from the real configs
(fixtures/archs/serving/*.yaml, fixtures/archs/mixtral-8x7b.yaml), sharded like their Hub repos.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "vllm.md"
BLOCK = re.compile(r"```console\n(\$ ckpt-size [^\n]*)\n(.*?)```", re.S)
MODELS = {  # folder under models/: (description, shards as on the Hub)
    "Qwen2.5-32B-Instruct": ("fixtures/archs/serving/qwen2.5-32b.yaml", 17),
    "DeepSeek-V3": ("fixtures/archs/serving/deepseek-v3-fp8.yaml", 163),
    "Mixtral-8x7B-Instruct-v0.1": ("mixtral-8x7b", 19),
}


def build_models(folder: Path) -> None:
    from fixtures.arch import load_arch
    from fixtures.generate import write_safetensors

    for name, (arch, shards) in MODELS.items():
        desc = load_arch(ROOT / arch) if arch.endswith(".yaml") else load_arch(arch)
        write_safetensors(folder / "models" / name, desc, shards=shards, mode="sparse")


def run(command: str) -> str:
    from inspector.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(shlex.split(command)[1:])
        except SystemExit as e:
            code = int(e.code or 0)
    tail = "" if code == 0 else f"(exit {code})\n"
    return err.getvalue() + out.getvalue() + tail


def blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1)[2:], m.group(2)) for m in BLOCK.finditer(text)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vllm-docs")
    build_models(folder)
    return folder


@pytest.mark.parametrize("index", range(len(blocks(DOC.read_text(encoding="utf-8")))))
def test_doc_block_is_real_output(index: int, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    command, shown = blocks(DOC.read_text(encoding="utf-8"))[index]
    assert run(command) == shown, f"docs/vllm.md drifted at `{command}`: python -m tests.test_vllm_docs --update"


def update() -> None:
    import tempfile

    text = DOC.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        build_models(Path(tmp))
        here = os.getcwd()
        os.chdir(tmp)
        try:
            text = BLOCK.sub(lambda m: f"```console\n{m.group(1)}\n{run(m.group(1)[2:])}```", text)
        finally:
            os.chdir(here)
    DOC.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        raise SystemExit("usage: python -m tests.test_vllm_docs --update")
    sys.path.insert(0, str(ROOT))
    update()
