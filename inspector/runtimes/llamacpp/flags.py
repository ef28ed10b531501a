"""llama.cpp offload flags: the values `inspect` takes, parsed and checked the way llama.cpp parses them.

Sources are llama.cpp at commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f (2026-10-01) unless stated:
`common/arg.cpp` (the option parsers), `common/common.h` (`LLM_FFN_EXPS_REGEX`, `llm_ffn_block_regex`).
docs/placement-llamacpp.md explains every decision.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Sequence

from ...errors import UsageError
from ...devices import normalize_device
from ...patterns import UserPattern, compile_pattern

SPLIT_MODES = ("none", "layer", "row")

# common/common.h: LLM_FFN_EXPS_REGEX; --cpu-moe pushes it as one CPU override, --n-cpu-moe N pushes
# "blk\.<i>" + it for i = 0..N-1 (llm_add_n_cpu_ffn_overrides / llm_ffn_block_regex).
FFN_EXPS_REGEX = r"\.ffn_(up|down|gate|gate_up)_(ch|)exps"

# common/arg.cpp (-ts): more than llama_max_devices() - 1 values are refused; LLAMA_MAX_DEVICES is 16.
MAX_DEVICES = 16

_LLAMA_CUDA = re.compile(r"^CUDA(\d+)$")
# Python `re` syntax that std::regex (ECMAScript) does not accept: a pattern using it would not mean the same
# thing to llama.cpp, so it is refused rather than silently matched differently.
_PYTHON_ONLY_SYNTAX = (
    ("(?P<", "named groups (?P<name>…)"),
    ("(?P=", "named back-references (?P=name)"),
    ("(?<=", "look-behind (?<=…)"),
    ("(?<!", "look-behind (?<!…)"),
    ("(?#", "comments (?#…)"),
    ("(?>", "atomic groups (?>…)"),
    (r"\A", r"\A"),
    (r"\Z", r"\Z"),
)
_INLINE_FLAGS = re.compile(r"\(\?[aiLmsux]+[:)]|\(\?-[imsx]+:")


@dataclass(frozen=True)
class LlamaCppFlags:
    """llama.cpp's weight-placement flags, as given on its command line.

    n_gpu_layers: `-ngl N`. None = not given (llama.cpp's default `auto`); a negative value follows llama.cpp
        (-1 = auto, -2 or less = all). This plan offloads every layer for None and negatives.
    override_tensor: `-ot REGEX=BUFT` pairs in command-line order (see `parse_override_tensor`); BUFT may be
        llama.cpp's `CPU`/`CUDA0` or ckpt-size's `cpu`/`cuda:0`.
    cpu_moe / n_cpu_moe: `--cpu-moe` / `--n-cpu-moe N`. llama.cpp appends their patterns to the same override
        list as `-ot`, in command-line order, and the first match wins (common/arg.cpp).
    moe_after: how many `-ot` pairs come before `--cpu-moe`/`--n-cpu-moe` on the command line; None = all of
        them (the -ot pairs then win wherever both match).
    tensor_split: `-ts` proportions per GPU (see `parse_tensor_split`); None = not given.
    split_mode: `-sm none|layer|row`. main_gpu: `-mg`.
    """

    n_gpu_layers: int | None = None
    override_tensor: tuple[tuple[str, str], ...] = ()
    cpu_moe: bool = False
    n_cpu_moe: int | None = None
    tensor_split: tuple[float, ...] | None = None
    split_mode: str = "layer"
    main_gpu: int = 0
    moe_after: int | None = None

    @property
    def given(self) -> bool:
        """Whether any llama.cpp flag was given (all defaults mean: no llama.cpp plan asked for)."""
        return self != LlamaCppFlags()


def parse_n_gpu_layers(value: str | int) -> int | None:
    """`-ngl` as llama.cpp reads it: an integer, `auto` (None: the default) or `all` (-2).

    Raises:
        UsageError: anything else.
    """
    if isinstance(value, int):
        return None if value == -1 else value
    text = value.strip()
    if text == "auto":
        return None
    if text == "all":
        return -2
    try:
        number = int(text)
    except ValueError:
        raise UsageError(f"-ngl {value!r}: not a number", hint="give a layer count, 'all' or 'auto'") from None
    return None if number == -1 else number


def parse_override_tensor(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Parse `-ot` values in order: each is `REGEX=BUFT[,REGEX=BUFT…]`, split on EVERY comma.

    Like llama.cpp's `parse_tensor_buffer_overrides` (common/arg.cpp): the value is split on every `,` (so a
    regex cannot contain one: write `(3|4|5)`, not `{3,5}`), and the first `=` of each piece separates the
    pattern from the buffer name. Returns (regex, device) pairs with ckpt-size device names (`cpu`, `cuda:N`).

    Raises:
        UsageError: a piece without `=`, an unknown buffer name, or a regex Python or std::regex rejects.
    """
    pairs: list[tuple[str, str]] = []
    for value in values:
        for piece in value.split(","):
            pos = piece.find("=")
            if pos < 0:
                hint = "write REGEX=BUFT; commas separate overrides, so a regex cannot contain ','"
                raise UsageError(f"-ot {value!r}: {piece!r} has no '=BUFT'", hint=hint)
            pattern, buft = piece[:pos], piece[pos + 1 :]
            check_regex(pattern, context=f"-ot {piece!r}")
            pairs.append((pattern, buffer_device(buft, context=f"-ot {piece!r}")))
    return tuple(pairs)


def check_regex(pattern: str, *, context: str) -> UserPattern:
    """Compile an override pattern, refusing syntax that std::regex (ECMAScript) would read differently, and
    patterns too large to compile or match safely (inspector/patterns.py)."""
    for token, what in _PYTHON_ONLY_SYNTAX:
        if token in pattern:
            raise UsageError(f"{context}: regex {pattern!r} uses {what}, which llama.cpp's std::regex does not support")
    if _INLINE_FLAGS.search(pattern):
        raise UsageError(
            f"{context}: regex {pattern!r} uses inline flags, which llama.cpp's std::regex does not support"
        )
    return compile_pattern(pattern, context)


def buffer_device(name: str, *, context: str) -> str:
    """`CPU`, `CUDA0`, … (llama.cpp's buffer type names) or `cpu`, `cuda:0`, `gpu` → the ckpt-size device."""
    m = _LLAMA_CUDA.match(name)
    if m:
        return f"cuda:{int(m.group(1))}"
    if name == "CPU":
        return "cpu"
    try:
        return normalize_device(name)
    except UsageError:
        raise UsageError(
            f"{context}: unknown buffer type {name!r}", hint="use CPU or CUDA0, CUDA1, … (llama.cpp's buffer names)"
        ) from None


def llama_buffer_name(device: str) -> str:
    """The llama.cpp buffer type name of a ckpt-size device: `cpu` → `CPU`, `cuda:1` → `CUDA1`."""
    return "CPU" if device == "cpu" else "CUDA" + device.split(":")[1]


MAX_SPLIT = 1e6  # proportions are relative; anything larger only risks float32 overflow in llama.cpp's sums


def parse_tensor_split(value: str) -> tuple[float, ...]:
    """`-ts 3,1` (or `3/1`): proportions per GPU, split like llama.cpp on runs of `,` and `/`.

    Raises:
        UsageError: an empty or non-numeric entry, a negative one, all zeros, or 16 entries or more.
    """
    pieces = re.split(r"[,/]+", value.strip())
    numbers: list[float] = []
    for piece in pieces:
        try:
            number = float(piece)
        except ValueError:
            hint = "write proportions, e.g. -ts 3,1"
            raise UsageError(f"-ts {value!r}: {piece!r} is not a number", hint=hint) from None
        if number < 0 or number != number:
            raise UsageError(f"-ts {value!r}: {piece!r} must be zero or positive")
        if not number <= MAX_SPLIT:
            # llama.cpp sums -ts in single precision: huge values overflow to inf and break the split
            raise UsageError(f"-ts {value!r}: {piece!r} is too large; give small proportions like 3,1")
        numbers.append(number)
    if len(numbers) >= MAX_DEVICES:
        raise UsageError(f"-ts {value!r}: {len(numbers)} values; llama.cpp accepts at most {MAX_DEVICES - 1}")
    if not any(numbers):
        raise UsageError(
            f"-ts {value!r}: all proportions are zero",
            hint="llama.cpp then splits by each GPU's free memory, which ckpt-size cannot know; give proportions",
        )
    return tuple(numbers)


def validate(flags: LlamaCppFlags) -> None:
    """Check the values a caller may have built by hand (the parsers above check what users type)."""
    if flags.split_mode not in SPLIT_MODES:
        hint = "-sm tensor (experimental tensor parallelism) is not modelled" if flags.split_mode == "tensor" else None
        raise UsageError(f"-sm {flags.split_mode!r}: use one of {', '.join(SPLIT_MODES)}", hint=hint)
    if flags.n_cpu_moe is not None and flags.n_cpu_moe < 0:
        raise UsageError(f"--n-cpu-moe {flags.n_cpu_moe}: must be 0 or more")
    if flags.tensor_split is not None:
        parse_tensor_split(",".join(repr(float(x)) for x in flags.tensor_split))
    for pattern, buft in flags.override_tensor:
        check_regex(pattern, context=f"-ot {pattern}={buft}")
        buffer_device(buft, context=f"-ot {pattern}={buft}")


def format_number(x: float) -> str:
    """`3.0` → `3`, `0.75` → `0.75`: the shortest spelling that parses back to the same value."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def flags_line(
    *,
    n_gpu_layers: int,
    overrides: Sequence[tuple[str, str]],
    cpu_moe: bool,
    n_cpu_moe: int | None,
    tensor_split: Sequence[float] | None,
    split_mode: str,
    main_gpu: int,
    moe_after: int | None = None,
) -> str:
    """The llama.cpp options that reproduce a plan, in the order that gives llama.cpp the same precedence."""
    parts = [f"-ngl {n_gpu_layers}"]
    if split_mode != "layer":
        parts.append(f"-sm {split_mode}")
    if main_gpu != 0 or split_mode == "none":
        parts.append(f"-mg {main_gpu}")
    if tensor_split is not None:
        parts.append("-ts " + ",".join(format_number(x) for x in tensor_split))
    ot = ["-ot " + shlex.quote(f"{pattern}={llama_buffer_name(device)}") for pattern, device in overrides]
    moe = (["--cpu-moe"] if cpu_moe else []) + ([f"--n-cpu-moe {n_cpu_moe}"] if n_cpu_moe else [])
    split = len(ot) if moe_after is None else moe_after
    return " ".join(parts + ot[:split] + moe + ot[split:])
