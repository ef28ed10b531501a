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


@dataclass(frozen=True)
class QuantOptions:
    """What to emulate: `llama-quantize [options] INPUT FTYPE` (inspector/quant; kept here, in a module without
    imports, because every command line builds one)."""

    ftype: str  # a llama-quantize name or alias (Q4_K_M, Q4_K, IQ4_XS, COPY …)
    rules: str = "current"  # a rule set name or alias (rulesets.py): 2026-10 = current, 2026-07, 2025-08 = legacy
    tensor_types: tuple[tuple[str, str], ...] = ()  # --tensor-type / --tensor-type-file (regex, type), CLI order
    output_tensor_type: str | None = None
    token_embedding_type: str | None = None
    pure: bool = False
    imatrix: bool = False  # pretend --imatrix FILE was given
    allow_requantize: bool = True
    leave_output_tensor: bool = False  # --leave-output-tensor: output.weight keeps its input type
    keep_split: bool = False  # --keep-split: one output file per input split
    prune_layers: tuple[int, ...] = ()  # --prune-layers: blocks removed, the rest renumbered
    override_kv: tuple[tuple[str, Any], ...] = ()  # --override-kv KEY=TYPE:VALUE, parsed (layout.parse_override_kv)
