"""llama-quantize's `--tensor-type REGEX=TYPE` and `--tensor-type-file FILE` options.

Facts from ggml-org/llama.cpp `tools/quantize/quantize.cpp` (03161a4e; no code copied): an option is split at its
first `=`; the tensor-name pattern is lower-cased; the type is matched case-insensitively against ggml's type
names; a file holds the same `regex=type` items separated by spaces or newlines (read with `file >> arg`: no
comments, no quoting). llama-quant.cpp compiles each pattern as a std::regex (ECMAScript) and uses
`regex_search`, i.e. the pattern may match anywhere in the name. We compile with Python's `re`, which agrees
with ECMAScript on the patterns people write (`attn_v`, `blk\\.[0-9]+\\.ffn_down_exps`, `^output\\.weight$` …).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from ..datafiles import read_user_file
from ..errors import UsageError
from ..patterns import Located, UserPattern, compile_pattern, where_of
from .ftypes import resolve_type


def parse_tensor_type(arg: str, where: str = "--tensor-type",
                      type_of: Callable[[str, str], str] = resolve_type) -> tuple[str, str]:
    """`REGEX=TYPE` -> (lower-cased regex, canonical ggml type name).

    Raises:
        UsageError: no `=`, an empty side, an unknown type or an invalid regex.
    """
    regex, sep, qtype = arg.partition("=")
    if not sep:
        raise UsageError(f"{where}: malformed tensor type {arg!r}; expected REGEX=TYPE, e.g. attn_v=q8_0")
    if not regex:
        raise UsageError(f"{where}: missing tensor name pattern in {arg!r}")
    if not qtype:
        raise UsageError(f"{where}: missing quantization type in {arg!r}")
    regex = regex.lower()  # as quantize.cpp does
    _compile(regex, where)
    return Located(regex, where), type_of(qtype, f"{where} {arg!r}")


def parse_tensor_type_file(path: str | Path, type_of: Callable[[str, str], str] = resolve_type
                           ) -> tuple[tuple[str, str], ...]:
    """The `regex=type` items of a --tensor-type-file, in file order; errors name file:line.

    Raises:
        UsageError: the file cannot be read, or an item is malformed (see `parse_tensor_type`).
    """
    text = read_user_file(path, "tensor type file", error=UsageError)
    items: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for token in line.split():
            items.append(parse_tensor_type(token, f"{path}:{number}", type_of))
    return tuple(items)


def compile_patterns(tensor_types: Iterable[tuple[str, str]], type_of: Callable[[str, str], str] = resolve_type
                     ) -> list[tuple[UserPattern, str]]:
    """Compiled (pattern, type) pairs in the given order; patterns lower-cased and types checked as the CLI does
    (`type_of` resolves type names: mainline ggml's by default)."""
    compiled = []
    for regex, qtype in tensor_types:
        where = where_of(regex, f"--tensor-type {regex}={qtype}")  # a file's items say file:line
        compiled.append((_compile(regex.lower(), where), type_of(qtype, where)))
    return compiled


def _compile(regex: str, where: str) -> UserPattern:
    return compile_pattern(regex, where)
