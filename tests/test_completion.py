"""Shell completion (click's, for bash, zsh and fish): options, runtime names, quant names and devices complete,
and completing never loads the library (no numpy, gguf or tabulate), so it feels instant."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def complete(words: str, *, shell: str = "bash") -> tuple[list[str], str]:
    """What `ckpt-size` answers the shell for the command line `words` (the cursor after the last word)."""
    parts = words.split(" ")
    env = {**os.environ, "_CKPT_SIZE_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(parts) - 1), "PYTHONPATH": str(ROOT)}
    if shell == "zsh":
        env.pop("COMP_CWORD")
    done = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "import sys; from inspector.cli import main; sys.argv[0] = 'ckpt-size'; main()"],
                          capture_output=True, text=True, env=env, timeout=60)
    return done.stdout.splitlines(), done.stderr


def values(lines: list[str]) -> list[str]:
    return [line.split(",", 1)[1] for line in lines if "," in line]


def test_options_complete() -> None:
    lines, _ = complete("ckpt-size inspect --cpu-m")
    assert values(lines) == ["--cpu-moe"]


def test_runtime_names_complete() -> None:
    lines, _ = complete("ckpt-size fit model.gguf --runtime ")
    assert {"llamacpp", "ktransformers"} <= set(values(lines))


def test_quant_names_complete() -> None:
    lines, _ = complete("ckpt-size inspect model.gguf --quant Q4_K")
    assert values(lines) == ["Q4_K_S", "Q4_K_M"]


def test_budget_devices_complete() -> None:
    lines, _ = complete("ckpt-size fit model.gguf --budget cu")
    assert values(lines)[:2] == ["cuda:0=", "cuda:1="]


def test_source_completes_as_a_file() -> None:
    lines, _ = complete("ckpt-size inspect fix")
    assert lines == ["file,fix"]


@pytest.mark.parametrize("words", ["ckpt-size inspect --ru", "ckpt-size fit model.gguf --runtime "])
def test_completing_loads_no_heavy_module(words: str) -> None:
    _, importtime = complete(words)
    loaded = {line.split("|")[-1].strip() for line in importtime.splitlines() if line.startswith("import time:")}
    assert not loaded & {"numpy", "gguf", "tabulate", "huggingface_hub", "yaml", "inspector.api"}


def test_the_scripts_are_printed_for_each_shell() -> None:
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "#compdef ckpt-size"), ("fish", "complete")):
        env = {**os.environ, "_CKPT_SIZE_COMPLETE": f"{shell}_source", "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", "import sys; from inspector.cli import main; "
                               "sys.argv[0] = 'ckpt-size'; main()"], capture_output=True, text=True, env=env,
                              timeout=60)
        assert marker in done.stdout, (shell, done.stdout[:200], done.stderr[-300:])
