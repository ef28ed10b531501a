"""Rewrite the example outputs in README.md and docs/*.md from the real commands: `python tools/update_docs_examples.py`.

Two forms, both run from the repository root:
- a fenced block whose first line is `$ ckpt-size ARGS [2>&1] [| head -N]`: the rest of the block becomes the
  command's output (stdout; with `2>&1` stderr follows it; `| head -N` keeps the first N lines);
- `<!-- example: ckpt-size ARGS [2>&1] -->` right before a fenced block: the whole block becomes the output.
tests/test_docs_examples.py fails when an output drifts, so no example in the docs is trimmed, stale or invented.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOLLAR = re.compile(r"(```[a-z]*\n)(\$ ckpt-size ((?:[^\n]*\\\n)*[^\n]*)\n)(.*?)(```)", re.S)
MARKER = re.compile(r"(<!-- example: ckpt-size ([^\n]*?) -->\n```[a-z]*\n)(.*?)(```)", re.S)
HEAD = re.compile(r"\s*\|\s*head -(\d+)\s*$")


def output(command: str) -> str:
    """What `ckpt-size COMMAND` prints, run in-process from the repository root."""
    from inspector.cli import main

    command = command.replace("\\\n", " ")  # a command continued over lines with a backslash
    limit = None
    if m := HEAD.search(command):
        limit, command = int(m.group(1)), command[: m.start()]
    both = command.rstrip().endswith("2>&1")
    argv = shlex.split(command.rstrip().removesuffix("2>&1"))
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
            except SystemExit:
                pass
    finally:
        os.chdir(cwd)
    text = out.getvalue() + (err.getvalue() if both else "")
    if limit is not None:
        text = "".join(text.splitlines(keepends=True)[:limit])
    return text if text.endswith("\n") or not text else text + "\n"


def ours(command: str) -> bool:
    """Examples on the committed fixtures run from the repository root; examples on models a page's own test builds
    (docs/vllm.md, docs/powerinfer.md, docs/speed.md: `models/…`) are checked by those tests instead."""
    return "fixtures/" in command


def updated(text: str) -> str:
    text = DOLLAR.sub(lambda m: m.group(1) + m.group(2) + (output(m.group(3)) if ours(m.group(3)) else m.group(4))
                      + m.group(5), text)
    return MARKER.sub(lambda m: m.group(1) + (output(m.group(2)) if ours(m.group(2)) else m.group(3)) + m.group(4),
                      text)


if __name__ == "__main__":
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        new = updated(text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"updated {path.relative_to(ROOT)}")
