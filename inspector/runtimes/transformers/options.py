"""`from_pretrained`'s loading arguments as ckpt-size options: device_map, max_memory, dtype, offload_folder and
bitsandbytes' BitsAndBytesConfig, parsed and checked.

`--max-memory` takes accelerate's own spellings: `0=20GiB,1=20GiB,cpu=60GiB` (GPU indices, "cpu", "disk"; `cuda:0`
is read as 0), or the Python dict pasted from a script, `{0: '20GiB', 'cpu': '60GiB'}` (read with
ast.literal_eval, never eval). Sizes are converted by accelerate's `convert_file_size_to_int`
(accelerate/utils/modeling.py): GiB/MiB/KiB are powers of 2, GB/MB/KB powers of 10, and a decimal unit ending in
a lowercase "b" ("20Gb", "10kb") means bits (divided by 8); an int is bytes; no other unit is accepted.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any, Mapping, Union

from ...errors import UsageError
from ...memory.bnb import BnbConfig

Device = Union[int, str]
MAP_KINDS = ("auto", "balanced", "balanced_low_0", "sequential")
DTYPES = {"auto": "auto", "float16": "F16", "fp16": "F16", "half": "F16", "bfloat16": "BF16", "bf16": "BF16",
          "float32": "F32", "fp32": "F32", "float": "F32"}
TORCH_NAMES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}


def _whole(value: int, what: str) -> int:
    """A max_memory key or size given as a Python int: a GPU index or bytes (never True/False, never negative)."""
    if isinstance(value, bool):
        raise UsageError(f"max_memory {what} {value!r} is not a {'size' if what == 'size' else 'device'}")
    if value < 0:
        raise UsageError(f"max_memory {what} {value} is negative")
    return value


def convert_file_size_to_int(size: int | str) -> int:
    """accelerate's size strings (module docstring); Python's float() reads the number, as accelerate does."""
    if isinstance(size, (bool, int)):
        return _whole(size, "size")
    text = str(size)
    upper = text.upper()
    value: int | None = None
    try:
        for unit, scale in (("GIB", 2**30), ("MIB", 2**20), ("KIB", 2**10)):
            if upper.endswith(unit):
                value = int(float(text[:-3]) * scale)
                break
        else:
            for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
                if upper.endswith(unit):
                    whole = int(float(text[:-2]) * scale)
                    value = whole // 8 if text.endswith("b") else whole
                    break
    except (ValueError, OverflowError):
        value = None
    if value is None or value < 0:
        raise UsageError(f"max_memory size {text!r} is not in accelerate's format",
                         hint="use an integer for bytes, or a number with GiB, MiB, KiB, GB, MB or KB (e.g. 20GiB)")
    return value


def _device_key(key: Any) -> Device:
    if isinstance(key, (bool, int)):
        return _whole(key, "key")
    text = str(key).strip().lower()
    if text.isdigit():
        return int(text)
    m = re.fullmatch(r"(?:cuda|gpu):?(\d+)", text)
    if m:
        return int(m.group(1))
    if text in ("cpu", "disk", "mps"):
        return text
    raise UsageError(f"max_memory key {key!r} is not a device accelerate knows",
                     hint="use GPU indices (0, 1 …), 'cpu' or 'disk'")


def parse_max_memory(texts: tuple[str, ...] | str | Mapping[Any, Any] | None) -> dict[Device, int] | None:
    """`0=20GiB,cpu=60GiB` items, a pasted Python dict, or (library callers) a dict as accelerate takes it ->
    {0: 21474836480, 'cpu': 64424509440}."""
    if not texts:
        return None
    if isinstance(texts, Mapping):
        texts = (repr(dict(texts)),)
    items: list[tuple[Any, Any]] = []
    for text in ([texts] if isinstance(texts, str) else list(texts)):
        text = text.strip()
        if text.startswith("{"):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise UsageError(f"--max-memory {text!r} is not a Python dict literal",
                                 hint="write {0: '20GiB', 'cpu': '60GiB'} or 0=20GiB,cpu=60GiB") from None
            if not isinstance(value, dict):
                raise UsageError(f"--max-memory {text!r} is not a dict")
            for key in value:  # accelerate's get_max_memory: GPU ints, "mps", "cpu", "disk", nothing else
                if not (isinstance(key, int) and not isinstance(key, bool)) and key not in ("mps", "cpu", "disk"):
                    raise UsageError(f"max_memory key {key!r}: accelerate knows GPU indices (ints), 'cpu' and "
                                     "'disk'", hint="write {0: '20GiB', 'cpu': '60GiB'}")
            items += list(value.items())
            continue
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, size = part.partition("=")
            if not sep:
                key, sep, size = part.partition(":") if part.count(":") == 1 else (part, "", "")
            if not sep or not key.strip() or not size.strip():
                raise UsageError(f"--max-memory {part!r}: expected DEVICE=SIZE", hint="e.g. 0=20GiB,cpu=60GiB")
            size = size.strip()
            items.append((key, int(size) if size.isdigit() else size))  # DEV=BYTES: a byte count, as an int
    out: dict[Device, int] = {}
    for key, size in items:
        device = _device_key(key)
        if device in out:
            raise UsageError(f"--max-memory names {device!r} twice")
        if isinstance(size, float) and not isinstance(size, bool):  # accelerate keeps a number as it is
            if not size >= 0 or size == float("inf"):
                raise UsageError(f"max_memory size {size!r} is not a size")
            out[device] = int(size) if size == int(size) else size  # type: ignore[assignment]
            continue
        out[device] = convert_file_size_to_int(size if isinstance(size, int) else str(size))
    return out


def parse_device_map(value: str | None) -> str | dict[str, Device] | None:
    """"auto" | "balanced" | "balanced_low_0" | "sequential", one device for everything ("cpu", "cuda:1", "0"),
    or a pasted dict {module: device} (transformers' check_and_set_device_map)."""
    if value is None:
        return None
    text = value.strip()
    if text in MAP_KINDS:
        return text
    if text.startswith("{"):
        try:
            raw = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise UsageError(f"--device-map {text[:60]!r} is not a Python dict literal") from None
        if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
            raise UsageError("--device-map: a dict maps module names to devices")
        return {k: _map_device(v) for k, v in raw.items()}
    return {"": _map_device(text)}


def _map_device(value: Any) -> Device:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise UsageError("device_map cannot be a negative int", hint="to put the model on the cpu, use cpu")
        return value
    text = str(value).strip().lower()
    if text == "cuda":
        return 0
    if text in ("cpu", "disk", "meta"):
        if text == "meta":
            raise UsageError("device_map 'meta' loads nothing")
        return text
    try:
        return _device_key(text)
    except UsageError:
        raise UsageError(f"device_map {value!r} is not a device nor one of {', '.join(MAP_KINDS)}") from None


def parse_dtype(value: str | None) -> str | None:
    if value is None:
        return None
    key = value.strip().lower().removeprefix("torch.")
    if key not in DTYPES:
        raise UsageError(f"--torch-dtype {value!r}", hint="use auto, bfloat16, float16 or float32")
    return DTYPES[key]


@dataclass(frozen=True)
class TransformersOptions:
    device_map: str | dict[str, Device] | None = None
    max_memory: dict[Device, int] | None = None
    dtype: str | None = None  # "auto", "BF16", "F16", "F32"; None: from_pretrained's default
    offload_folder: str | None = None
    bnb: BnbConfig | None = None
    version: int = 5
    offload_buffers: bool = False
    budgets: Mapping[str, int] | None = None
    gpus: int | None = None


def options_from(values: Mapping[str, Any]) -> TransformersOptions:
    """The options object from option values (by dest)."""
    four, eight = bool(values.get("load_in_4bit")), bool(values.get("load_in_8bit"))
    if four and eight:
        raise UsageError("--load-in-4bit and --load-in-8bit exclude each other")
    four_only = [f for f, d in (("--bnb-4bit-quant-type", "bnb_4bit_quant_type"),
                                ("--bnb-4bit-use-double-quant", "bnb_4bit_use_double_quant")) if values.get(d)]
    if four_only and not four:
        raise UsageError(f"{four_only[0]} goes with --load-in-4bit")
    bnb_only = [f for f, d in (("--llm-int8-skip-modules", "llm_int8_skip_modules"),
                               ("--llm-int8-enable-fp32-cpu-offload", "llm_int8_enable_fp32_cpu_offload"))
                if values.get(d)]
    if bnb_only and not (four or eight):
        raise UsageError(f"{bnb_only[0]} goes with --load-in-4bit or --load-in-8bit")
    bnb = None
    if four or eight:
        skip = values.get("llm_int8_skip_modules")
        bnb = BnbConfig(4 if four else 8, values.get("bnb_4bit_quant_type") or "fp4",
                        bool(values.get("bnb_4bit_use_double_quant")),
                        tuple(s.strip() for s in skip.split(",") if s.strip()) if skip is not None else None,
                        bool(values.get("llm_int8_enable_fp32_cpu_offload")))
    version = int(values.get("transformers_version") or 5)
    device_map = parse_device_map(values.get("device_map"))
    max_memory = parse_max_memory(values.get("max_memory"))
    if max_memory is not None and not isinstance(device_map, str):
        raise UsageError("--max-memory goes with --device-map auto, balanced, balanced_low_0 or sequential")
    return TransformersOptions(device_map, max_memory, parse_dtype(values.get("torch_dtype")),
                               values.get("offload_folder"), bnb, version, bool(values.get("offload_buffers")),
                               dict(values.get("budgets") or {}), values.get("gpus"))
