"""docs/adding-a-runtime.md is true: its example runtime, installed as a package in a temporary folder and
registered through the registry alone, gets `inspect` and `fit` output without touching any other file."""
from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from inspector import runtimes
from inspector.cli import build_cli, main

ROOT = Path(__file__).resolve().parents[1]
LLAMA = ROOT / "fixtures" / "models" / "llama-3.2-3b-f16.gguf"
# Llama-3.2-3B attention per block, F16: q and o are 3072 x 3072, k and v 3072 x 1024 (8 KV heads of 128);
# 28 blocks, 2 bytes a value; plus rope_freqs (head_dim / 2 = 64 F32 values), a token-mixer tensor too.
ATTENTION_BYTES = 28 * 2 * (2 * 3072 * 3072 + 2 * 3072 * 1024) + 64 * 4


@pytest.fixture()
def toy_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    text = (ROOT / "docs" / "adding-a-runtime.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n# toy_runtime/__init__.py\n(.*?)```", text, re.S).group(1)
    package = tmp_path / "toy_runtime"
    package.mkdir()
    (package / "__init__.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield str(tmp_path)
    runtimes.unregister("toy")
    sys.modules.pop("toy_runtime", None)


def run(group: object, args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args, group=group)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def test_the_example_runtime_works_through_the_registry_alone(toy_package: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    runtimes.register(importlib.import_module("toy_runtime").SPEC)
    group = build_cli()
    code, out, _ = run(group, ["inspect", str(LLAMA), "--toy-scratch", "1GiB", "--budget", "cuda:0=8GiB",
                               "--format", "json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["plan"] == "toy: attention on cuda:0"
    assert doc["devices"]["cuda:0"]["bytes"] == ATTENTION_BYTES
    assert doc["devices"]["cuda:0"]["scratch"] == 1 << 30
    assert doc["devices"]["cuda:0"]["total"] == ATTENTION_BYTES + (1 << 30)
    assert doc["devices"]["cpu"]["bytes"] == doc["bytes"] - ATTENTION_BYTES
    assert doc["budget"]["fits"] is True

    # attention (1.31 GiB) does not fit 1 GiB: the search falls back to the CPU, where the scratch still fits
    code, out, _ = run(group, ["fit", str(LLAMA), "--runtime", "toy", "--toy-scratch", "512MiB",
                               "--budget", "cuda:0=1GiB"], capsys)
    assert code == 0 and "toy-run --cpu --scratch 536870912" in out
    code, out, _ = run(group, ["fit", str(LLAMA), "--runtime", "toy", "--toy-scratch", "2GiB",
                               "--budget", "cuda:0=1GiB"], capsys)
    assert code == 3 and "does not fit" in out  # the scratch alone is over the GPU budget
    code, out, _ = run(group, ["fit", str(LLAMA), "--runtime", "toy", "--budget", "cuda:0=8GiB"], capsys)
    assert code == 0 and "toy-run --gpu --scratch 0" in out


def test_the_environment_variable_registers_it_for_the_installed_command(toy_package: str) -> None:
    env = {**os.environ, "CKPT_SIZE_RUNTIMES": "toy_runtime", "PYTHONPATH": toy_package + os.pathsep + str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "inspector", "inspect", str(LLAMA), "--toy-scratch", "2GiB",
                           "--by", "device"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "toy: attention on cuda:0" in done.stdout
    assert "scratch (est.)" in done.stdout and "2.00 GiB" in done.stdout
    help_text = subprocess.run([sys.executable, "-m", "inspector", "inspect", "--help"], capture_output=True,
                               text=True, env=env, timeout=60).stdout
    assert "Toy options:" in help_text and "--toy-scratch SIZE" in help_text
