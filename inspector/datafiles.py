"""Reading the data files behind the rules: packaged ones from `rules/` (inside the wheel), and users' own."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import RulesError


def read_packaged(name: str) -> str:
    """Text of a file in `rules/`: package data when installed, the checkout's `rules/` when run from source."""
    try:
        return resources.files("inspector.rules").joinpath(name).read_text(encoding="utf-8")
    except ModuleNotFoundError:
        return (Path(__file__).resolve().parent.parent / "rules" / name).read_text(encoding="utf-8")


def read_user_file(path: str | Path, what: str) -> str:
    """Text of a user's rules, table or plan file; one clear error when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RulesError(f"{path}: cannot read {what}: {e}") from None
