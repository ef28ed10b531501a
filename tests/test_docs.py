"""The docs describe what is built: every command and option is in docs/cli.md, every doc the README links exists."""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from inspector.cli import cli

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_and_option_is_documented(name: str) -> None:
    text = (DOCS / "cli.md").read_text()
    assert f"## `{name}`" in text
    command = cli.commands[name]
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts + param.secondary_opts:
                assert opt in text, f"{name} {opt} missing from docs/cli.md"


def test_help_blocks_in_cli_md_are_current() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("update_cli_docs", DOCS.parent / "tools" / "update_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (DOCS / "cli.md").read_text()
    assert module.updated(text) == text, "run: python tools/update_cli_docs.py"


def test_exit_codes_table_matches_the_error_table() -> None:
    from inspector.errors import ERROR_TABLE

    text = (DOCS / "cli.md").read_text()
    for cls, code, _ in ERROR_TABLE:
        assert f"| {code} |" in text
        if cls.__module__ == "inspector.errors":
            assert f"`{cls.__name__}`" in text, f"{cls.__name__} missing from the exit code table in docs/cli.md"


def test_readme_links_resolve() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (DOCS.parent / link).is_file(), link
