"""Options as data: what a runtime (or the memory model it shares) accepts, declared once and turned into click
options by the CLI and into an argv parser for pasted command lines (inspector/runtimes/argv.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OPTION_KINDS = ("flag", "int", "float", "str", "choice")


@dataclass(frozen=True)
class OptionSpec:
    """One option of a runtime, as data.

    `flags` are ckpt-size's spellings (the first long one names it in messages); `native` the runtime's own
    spellings where they differ, for pasted command lines. `dest` is the key in the values mapping the runtime
    receives. `shared` options (context, cache types) do not by themselves select a runtime; `memory` options
    ask for the runtime's memory report (a `--budget` always does).
    """

    dest: str
    flags: tuple[str, ...]
    kind: str
    help: str
    default: Any = None
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    multiple: bool = False
    minimum: int | float | None = None
    native: tuple[str, ...] = ()
    shared: bool = False
    show_default: bool = False
    searched: bool = False  # a placement choice `fit` searches for itself: not an option of `fit`
    memory: bool = False  # giving it asks for the runtime's memory (KV cache, buffers), not only the weights

    def __post_init__(self) -> None:
        if self.kind not in OPTION_KINDS:
            raise ValueError(f"option {self.dest}: kind {self.kind!r} is not one of {OPTION_KINDS}")
        if not self.flags and not self.native:
            raise ValueError(f"option {self.dest}: no spelling (give flags, or native ones for pasted commands)")

    @property
    def name(self) -> str:
        """The spelling used in messages: the first `--long` flag, else the first flag."""
        spellings = self.flags + self.native
        return next((f for f in spellings if f.startswith("--")), spellings[0])
