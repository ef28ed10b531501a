"""Pasted command lines: `llama-server -m model.gguf -ngl 99 -c 32768`, `vllm serve REPO -tp 2`,
`python -m sglang.launch_server --model-path REPO --tp 2`, read as that program would read them.

Which runtime: the program name (a path's last part; `python -m MODULE`; `vllm serve`) against each spec's
`programs`. Which model: the spec's `model_flags` (`-m`, `--model-path`), or the first positional argument when
`model_positional`. The rest is parsed with the runtime's `OptionSpec`s under their own spellings (`flags` and
`native`): `--opt value`, `--opt=value`, repeated options accumulating, `--no-FLAG` turning a flag off (argparse
`BooleanOptionalAction`, as vLLM declares its switches). Flags the spec lists in `ignored_flags`
(they do not change memory: ports, threads, sampling) and flags it does not know are collected, to be named in one
warning; an unknown flag takes the next token as its value unless that token starts with '-'.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..errors import UsageError
from ..options import OptionSpec
from .base import RuntimeSpec

PYTHONS = ("python", "python3")


@dataclass(frozen=True)
class PastedCommand:
    """A command line read as its program would read it."""

    runtime: str
    program: str
    model: str | None
    values: dict[str, Any]
    quant: str | None  # `-hf owner/repo:Q4_K_M`: the quant named after the colon
    argv: tuple[str, ...]  # the options after the program, in order (llama.cpp's -ot / --cpu-moe order)
    ignored: tuple[str, ...] = ()  # known flags that do not affect memory
    unknown: tuple[str, ...] = ()  # flags the runtime model does not know
    notes: tuple[str, ...] = field(default=())

    def warning(self) -> str | None:
        """One line naming the flags that were not used, or None."""
        parts = []
        if self.ignored:
            parts.append(f"{', '.join(self.ignored)} (no effect on memory)")
        if self.unknown:
            parts.append(f"{', '.join(self.unknown)} (not modelled)")
        return f"{self.program}: ignored {'; '.join(parts)}" if parts else None


def program_of(argv: Sequence[str]) -> tuple[str, int]:
    """The program a command line runs and how many tokens name it: `vllm serve` (2), `python -m mod` (3),
    `./build/bin/llama-server` (1)."""
    if not argv:
        raise UsageError("the pasted command line is empty", hint="write it after --, e.g. -- llama-server -m M.gguf")
    first = os.path.basename(argv[0])
    if first.split(".")[0] in PYTHONS or first.startswith("python3."):
        if len(argv) >= 3 and argv[1] == "-m":
            return argv[2], 3
        raise UsageError(f"{' '.join(argv[:3])}: a Python command needs `-m MODULE`")
    if len(argv) >= 2 and not argv[1].startswith("-") and f"{first} {argv[1]}" in _all_programs():
        return f"{first} {argv[1]}", 2
    return first, 1


def _all_programs() -> set[str]:
    from . import runtime_specs

    return {p for s in runtime_specs() for p in s.programs}


def spec_for_program(program: str, specs: Iterable[RuntimeSpec]) -> RuntimeSpec:
    for spec in specs:
        if program in spec.programs:
            return spec
    known = sorted(p for s in specs for p in s.programs)
    raise UsageError(f"{program!r} is not a program ckpt-size models", hint=f"paste one of: {', '.join(known)}")


def _spellings(spec: RuntimeSpec) -> dict[str, OptionSpec]:
    table: dict[str, OptionSpec] = {}
    for option in spec.options:
        for name in option.flags + option.native:
            table[name] = option
    return table


def _convert(option: OptionSpec, name: str, text: str) -> Any:
    try:
        if option.kind == "int":
            return int(text)
        if option.kind == "float":
            return float(text)
    except ValueError:
        raise UsageError(f"{name} {text!r}: expected a {'whole number' if option.kind == 'int' else 'number'}") \
            from None
    if option.kind == "choice" and text not in option.choices:
        raise UsageError(f"{name} {text!r}: use one of {', '.join(option.choices)}")
    return text


def parse_command(argv: Sequence[str], specs: Sequence[RuntimeSpec]) -> PastedCommand:
    """Read a pasted command line (see the module docstring).

    Raises:
        UsageError: an unknown program, a missing value, a value of the wrong kind.
    """
    program, used = program_of(argv)
    spec = spec_for_program(program, specs)
    table = _spellings(spec)
    values: dict[str, Any] = {}
    model: str | None = None
    quant: str | None = None
    ignored: list[str] = []
    unknown: list[str] = []
    rest = list(argv[used:])
    i = 0
    while i < len(rest):
        token = rest[i]
        name, eq, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        i += 1
        if not token.startswith("-") or token == "-":
            if model is None and spec.model_positional:
                model = token
            else:
                unknown.append(token)
            continue
        if name in spec.model_flags or name in spec.hub_model_flags:
            model, i = (inline, i) if eq else (_value(rest, i, name), i + 1)
            if name in spec.hub_model_flags and ":" in model:
                model, quant = model.rsplit(":", 1)
            continue
        option = table.get(name)
        negated = table.get("--" + name[5:]) if option is None and name.startswith("--no-") else None
        if negated is not None and negated.kind == "flag":  # argparse BooleanOptionalAction (vLLM): --no-FLAG
            values[negated.dest] = False
            continue
        if option is None:
            takes = spec.ignored_flags.get(name)
            (ignored if takes is not None else unknown).append(name)
            if not eq and (takes or (takes is None and i < len(rest) and not rest[i].startswith("-"))):
                i += 1
            continue
        if option.kind == "flag":
            values[option.dest] = True
            continue
        text, i = (inline, i) if eq else (_value(rest, i, name), i + 1)
        value = _convert(option, name, text)
        values[option.dest] = values.get(option.dest, ()) + (value,) if option.multiple else value
    return PastedCommand(spec.name, program, model, values, quant, tuple(rest), tuple(dict.fromkeys(ignored)),
                         tuple(dict.fromkeys(unknown)))


def _value(rest: list[str], i: int, name: str) -> str:
    if i >= len(rest):
        raise UsageError(f"{name} needs a value")
    return rest[i]


def ready_command(spec: RuntimeSpec, source: str, flags: str) -> str:
    """The runtime's command line for a plan, ready to paste: its program, the model, the flags (what
    `parse_command` reads back). Hub repos go to a hub flag (`-hf`) when the runtime has one."""
    import shlex

    program = spec.programs[0] if spec.programs else spec.name
    if flags.startswith(program + " "):  # the runtime's command already names its program and model (vLLM)
        return flags
    if spec.model_positional:
        model = shlex.quote(source)
    else:
        local = os.path.exists(source) or not spec.hub_model_flags
        flag = (spec.model_flags if local else spec.hub_model_flags)[0] if (spec.model_flags or
                                                                          spec.hub_model_flags) else ""
        model = f"{flag} {shlex.quote(source)}".strip()
    return " ".join(part for part in (program, model, flags) if part)
