"""Rewrite the `--help` blocks of docs/cli.md from the program itself: `python tools/update_cli_docs.py`.

tests/test_docs.py fails when a block is stale, so the reference cannot drift from the code.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inspector.cli import cli  # noqa: E402

DOC = ROOT / "docs" / "cli.md"


def help_text(command: str) -> str:
    result = CliRunner().invoke(cli, [command, "--help"], prog_name="ckpt-size", terminal_width=110)
    return result.output.rstrip()


def block(command: str) -> re.Pattern[str]:
    return re.compile(r"(## `%s`\n\n```\n)(.*?)(\n```)" % command, re.S)


def updated(text: str) -> str:
    for command in sorted(cli.commands):
        text = block(command).sub(lambda m, c=command: m.group(1) + help_text(c) + m.group(3), text, count=1)
    return text


if __name__ == "__main__":
    DOC.write_text(updated(DOC.read_text()))
