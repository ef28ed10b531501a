"""Applying `regex=type` lines literally: the first matching regex gives a tensor its type, no mixture rules.

This is what a quant recipe describes (Thireus' GGUF-Tool-Suite `*.recipe` files, ik_llama.cpp's `--custom-q`,
llama-quantize's `--tensor-type` lists): every tensor named by a line gets that type; others keep theirs.
Types come from mainline ggml's table and ik_llama.cpp's (`iq4_ks`, `iq5_k_r4`, …). Lines starting with `#` and
blank lines are comments, as in the suite's recipe files.
"""
from __future__ import annotations

from pathlib import Path

from ..datafiles import read_user_file
from ..errors import CkptSizeError, RulesError, UsageError
from ..formats.ggml_types import tensor_nbytes, type_by_name
from ..model import Checkpoint
from ..patterns import Located, UserPattern, compile_pattern, where_of


def parse_recipe(path: str | Path) -> tuple[tuple[str, str], ...]:
    """The (regex, type) lines of a recipe in file order; errors name file:line.

    Raises:
        RulesError: unreadable file, a line without `=`, an invalid regex, a type neither table knows.
    """
    items = []
    for number, line in enumerate(read_user_file(path, "recipe").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        regex, sep, qtype = text.rpartition("=")
        where = f"{path}:{number}"
        if not sep or not regex:
            raise RulesError(f"{where}: expected REGEX=TYPE, found {text[:60]!r}")
        _check(regex, qtype, where, RulesError)
        items.append((Located(regex, where), qtype))
    return tuple(items)


def parse_recipe_items(items: tuple[str, ...], where: str = "--tensor-type") -> tuple[tuple[str, str], ...]:
    """`REGEX=TYPE` strings from the command line, checked like recipe lines (UsageError on a bad one)."""
    parsed = []
    for item in items:
        regex, sep, qtype = item.rpartition("=")
        if not sep or not regex:
            raise UsageError(f"{where} {item!r}: expected REGEX=TYPE")
        _check(regex, qtype, f"{where} {item!r}", UsageError)
        parsed.append((Located(regex, f"{where} {item!r}"), qtype))
    return tuple(parsed)


def _check(regex: str, qtype: str, where: str, error: type[CkptSizeError]) -> UserPattern:
    pattern = compile_pattern(regex, where, error=error)
    if type_by_name(qtype) is None:
        raise error(f"{where}: unknown tensor type {qtype!r} (neither ggml nor ik_llama.cpp defines it)")
    return pattern


def apply_recipe(checkpoint: Checkpoint, recipe: tuple[tuple[str, str], ...]) -> Checkpoint:
    """A copy of a GGUF-named checkpoint with each tensor retyped by the first recipe line that matches it.

    Raises:
        UsageError: an invalid regex or unknown type in `recipe`.
        FormatError: a line's type cannot hold a tensor's rows (row length not a multiple of its block size).
    """
    rules = []
    for regex, qtype in recipe:
        rules.append((_check(regex, qtype, where_of(regex, "recipe"), UsageError), type_by_name(qtype)))
    tensors = []
    for t in checkpoint.tensors:
        gtype = next((g for pattern, g in rules if pattern.search(t.name)), None)
        if gtype is None:
            tensors.append(t)
            continue
        nbytes = tensor_nbytes(gtype, t.shape, source="recipe", tensor=t.name)
        tensors.append(t.with_(dtype=gtype.name, nbytes=nbytes))
    return checkpoint.with_(tensors=tuple(tensors))
