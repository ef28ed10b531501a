"""The converter view: what llama.cpp's `convert_hf_to_gguf.py` would write for a safetensors checkpoint.

`to_gguf_view(checkpoint)` turns an HF checkpoint (names, row-major shapes, safetensors dtypes, config.json)
into the GGUF the converter writes with `--outtype auto`: gguf-py tensor names, `ne` shapes, per-expert tensors
stacked, fused tensors split the way each converter class splits them, tensors the class drops dropped and the
ones it generates added, F32 for norms / 1-D tensors / routers / biases and the outtype elsewhere, plus the GGUF
KVs the class writes and an estimate of the header size. Nothing here reads a file.

Per-architecture facts are data (`rules/hf_architectures.yaml`); this module only knows the kinds of step the
converter takes (rename, drop, stack, split, view, transpose, truncate, MXFP4 repack, dequantize). Facts come
from ggml-org/llama.cpp `convert_hf_to_gguf.py` (commit 0024aa74) and its later split into `conversion/*.py`.
"""
from __future__ import annotations

import ast
import math
import re
from collections import ChainMap
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import gguf
import yaml

from ..errors import CkptSizeError, RulesError
from ..formats.ggml_types import tensor_nbytes, type_by_name
from ..model import Checkpoint, TensorInfo
from ..datafiles import read_packaged, read_user_file
from ..roles import assign_roles, unmatched_warning

TABLE_FILE = "hf_architectures.yaml"
HEADER_ESTIMATE_KEY = "ckpt_size.header_estimate"
HEADER_BASIS_KEY = "ckpt_size.header_estimate_basis"
NOTES_KEY = "ckpt_size.notes"
OUTTYPE_KEY = "ckpt_size.outtype"
SOURCE_FORMAT_KEY = "ckpt_size.source_format"
CONVERTER_KEY = "ckpt_size.converter"
GGUF_PREAMBLE = 4 + 4 + 8 + 8  # magic, version, n_tensors, n_kv
MAX_NAMED = 3
GGML_QUANT_VERSION = 2  # general.quantization_version (gguf.GGML_QUANT_VERSION)


class ConversionError(CkptSizeError):
    """convert_hf_to_gguf.py would not convert this checkpoint (unknown architecture, unsupported quantization)."""


# ==================================================================================================
# Expressions: a safe subset of Python over config values (rules/hf_architectures.yaml, header comment)
# ==================================================================================================
class _Unavailable(Exception):
    """An expression needed a value the config does not have."""


class _Record(dict):
    """A config mapping whose attribute access reads a key (None when absent)."""

    def __getattr__(self, key: str) -> Any:
        return self.get(key)


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _pad4(values: Any) -> Any:
    if not isinstance(values, (list, tuple)):
        return None
    return (list(values) + [0, 0, 0, 0])[:4]


def _str_fn(fn: Callable[[str], str]) -> Callable[[Any], Any]:
    return lambda s: fn(s) if isinstance(s, str) else None


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "first": _first,
    "len": len,
    "min": min,
    "max": max,
    "int": int,
    "float": float,
    "lower": _str_fn(str.lower),
    "upper": _str_fn(str.upper),
    "sqrt": math.sqrt,
    "log": math.log,
    "pad4": _pad4,
}
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_ALLOWED_NODES = (
    ast.Expression, ast.Constant, ast.Name, ast.Load, ast.BinOp, ast.UnaryOp, ast.USub, ast.Not, ast.BoolOp,
    ast.And, ast.Or, ast.Compare, ast.IfExp, ast.Call, ast.Attribute, ast.Tuple, ast.List, *_BINOPS, *_COMPARE,
)


@dataclass(frozen=True)
class Expr:
    """A compiled expression from the table."""

    text: str
    tree: ast.Expression = field(compare=False, repr=False)

    @staticmethod
    def parse(value: Any, where: str) -> "Expr":
        text = value if isinstance(value, str) else repr(value)
        try:
            tree = ast.parse(f"(\n{text}\n)", mode="eval")  # parenthesized: YAML folding may add newlines
        except SyntaxError as e:
            raise RulesError(f"{where}: invalid expression {text!r}: {e.msg}") from None
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES):
                raise RulesError(f"{where}: expression {text!r} uses {type(node).__name__}, which is not allowed")
            if isinstance(node, ast.Call) and (not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS
                                               or node.keywords):
                raise RulesError(f"{where}: expression {text!r} calls an unknown function")
        return Expr(text, tree)

    def value(self, names: Mapping[str, Any]) -> Any:
        """The value, or raise _Unavailable when a needed config value is missing."""
        try:
            return _eval(self.tree.body, names)
        except (TypeError, ZeroDivisionError, ValueError, KeyError, IndexError) as e:
            raise _Unavailable(str(e)) from None

    def holds(self, names: Mapping[str, Any]) -> bool:
        try:
            return bool(self.value(names))
        except _Unavailable:
            return False

    def get(self, names: Mapping[str, Any]) -> Any:
        """The value, or None when it cannot be computed."""
        try:
            return self.value(names)
        except _Unavailable:
            return None


def _eval(node: ast.AST, names: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in ("None", "True", "False"):
            return {"None": None, "True": True, "False": False}[node.id]
        value = names.get(node.id)
        return _Record(value) if isinstance(value, dict) and not isinstance(value, _Record) else value
    if isinstance(node, ast.Attribute):
        base = _eval(node.value, names)
        value = base.get(node.attr) if isinstance(base, Mapping) else None
        return _Record(value) if isinstance(value, dict) else value
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_eval(e, names) for e in node.elts)
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, names), _eval(node.right, names)
        if left is None or right is None:
            raise TypeError("missing operand")
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, names)
        if isinstance(node.op, ast.Not):
            return not operand
        if operand is None:
            raise TypeError("missing operand")
        return -operand
    if isinstance(node, ast.BoolOp):
        result: Any = None
        for value_node in node.values:
            result = _eval(value_node, names)
            if isinstance(node.op, ast.And) and not result or isinstance(node.op, ast.Or) and result:
                return result
        return result
    if isinstance(node, ast.Compare):
        left = _eval(node.left, names)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, names)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, names) else node.orelse, names)
    if isinstance(node, ast.Call):
        return _FUNCTIONS[node.func.id](*(_eval(a, names) for a in node.args))  # type: ignore[attr-defined]
    raise TypeError(f"unsupported expression node {type(node).__name__}")


# ==================================================================================================
# The table (rules/hf_architectures.yaml), validated at load
# ==================================================================================================
@dataclass(frozen=True)
class KvCall:
    call: str
    value: Expr
    when: Expr | None
    enum: str | None


@dataclass(frozen=True)
class NameRule:
    pattern: re.Pattern[str]
    to: str | None = None  # renames
    when: Expr | None = None
    reason: str = ""  # drops
    material: bool = False


@dataclass(frozen=True)
class Output:
    name: str
    transpose: tuple[int, int] | None = None


@dataclass(frozen=True)
class Transform:
    pattern: re.Pattern[str]
    outputs: tuple[Output, ...]
    when: Expr | None = None
    mxfp4_blocks: str | None = None
    transpose: tuple[int, int] | None = None
    view: tuple[Expr, ...] | None = None
    split_dim: int | None = None
    split_sizes: tuple[Expr, ...] | None = None
    split_parts: int | None = None
    split_interleave: int | None = None
    truncate_dim: int | None = None
    truncate_size: Expr | None = None


@dataclass(frozen=True)
class ExpertRule:
    pattern: re.Pattern[str]
    count: Expr
    order: tuple[str, ...]
    merged: str


@dataclass(frozen=True)
class Extra:
    name: str
    when: Expr
    shape: tuple[Expr, ...]


@dataclass(frozen=True)
class TokenizerSpec:
    family: Expr
    pre: Expr
    tokens: Expr | None
    merges: Expr | None
    avg_token_bytes: Expr | None
    chat_template_bytes: Expr | None


@dataclass(frozen=True)
class Assumption:
    when: Expr
    warning: str


@dataclass(frozen=True)
class ArchSpec:
    id: str
    converter_class: str
    gguf_arch: str
    model_arch: gguf.MODEL_ARCH
    hf_architectures: tuple[str, ...]
    model_types: tuple[str, ...]
    drops: tuple[NameRule, ...]
    renames: tuple[NameRule, ...]
    transforms: tuple[Transform, ...]
    experts: ExpertRule | None
    extras: tuple[Extra, ...]
    kv_hparams: tuple[tuple[str, Expr], ...]
    kv: tuple[KvCall, ...]
    tokenizer: TokenizerSpec
    assumptions: tuple[Assumption, ...]
    keep_quantized: str | None


@dataclass(frozen=True)
class TokenizerFamily:
    model: str
    avg_token_bytes: float
    scores: bool
    avg_merge_bytes: float
    special_ids: tuple[str, ...]


@dataclass(frozen=True)
class Dequant:
    scales: tuple[tuple[str, str], ...]  # (suffix, weight-name template with {stem})
    drop: tuple[str, ...]
    packed: bool


@dataclass(frozen=True)
class ArchTable:
    path: str
    converter: str
    block_count_keys: tuple[str, ...]
    skip_suffixes: tuple[str, ...]
    multimodal_prefixes: tuple[str, ...]
    multimodal_contains: tuple[str, ...]
    renames: tuple[NameRule, ...]
    f32_tensors: frozenset[gguf.MODEL_TENSOR]
    quantizable_suffixes: tuple[str, ...]
    dequantize: Mapping[str, Dequant]
    tokenizer_families: Mapping[str, TokenizerFamily]
    architectures: tuple[ArchSpec, ...]

    def find(self, config: Mapping[str, Any]) -> ArchSpec | None:
        """The entry for config.json's architectures[0], else its model_type."""
        names = config.get("architectures") or []
        first = names[0] if isinstance(names, list) and names else None
        for spec in self.architectures:
            if first in spec.hf_architectures:
                return spec
        model_type = config.get("model_type")
        return next((s for s in self.architectures if model_type in s.model_types), None)


class _Reader:
    """Small helpers that check the table's shape and name the place of a problem."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> RulesError:
        return RulesError(f"{self.path}: {where}: {message}")

    def mapping(self, value: Any, where: str, allowed: set[str], required: Iterable[str] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a mapping")
        unknown = set(value) - allowed
        if unknown:
            raise self.fail(where, f"unknown key(s): {', '.join(sorted(map(str, unknown)))}")
        missing = [k for k in required if k not in value]
        if missing:
            raise self.fail(where, f"missing key(s): {', '.join(missing)}")
        return value

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(where, "must be a list of strings")
        return tuple(value)

    def regex(self, value: Any, where: str) -> re.Pattern[str]:
        if not isinstance(value, str):
            raise self.fail(where, "regex must be a string")
        try:
            return re.compile(value)
        except re.error as e:
            raise self.fail(where, f"invalid regex {value!r}: {e}") from None

    def expr(self, value: Any, where: str) -> Expr:
        if isinstance(value, (dict, list)):
            raise self.fail(where, "expression must be a string or a number")
        return Expr.parse(value, f"{self.path}: {where}")

    def opt_expr(self, value: Any, where: str) -> Expr | None:
        return None if value is None else self.expr(value, where)

    def pair(self, value: Any, where: str) -> tuple[int, int] | None:
        if value is None:
            return None
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)):
            raise self.fail(where, "must be a list of two dimension indices")
        return value[0], value[1]


_TOP_KEYS = {"version", "converter", "common", "tokenizer_families", "kv_sets", "architectures"}
_COMMON_KEYS = {"block_count_keys", "skip_suffixes", "multimodal_prefixes", "multimodal_contains", "renames",
                "f32_tensors", "quantizable_suffixes", "dequantize"}
_ARCH_KEYS = {"id", "converter_class", "gguf_arch", "hf_architectures", "model_types", "drops", "renames",
              "transforms", "experts", "extras", "kv_hparams", "kv", "tokenizer", "assumptions", "keep_quantized"}
_TRANSFORM_KEYS = {"match", "when", "mxfp4_blocks", "transpose", "view", "split", "truncate", "outputs"}


def parse_table(text: str, path: str) -> ArchTable:
    """Validate and compile the architecture table.

    Raises:
        RulesError: invalid YAML, unknown keys, gguf-py names or writer methods, bad regexes or expressions,
            an HF architecture or model_type claimed by two entries.
    """
    r = _Reader(path)
    try:
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise RulesError(f"{path}: invalid YAML: {e}") from None
    top = r.mapping(raw, "top level", _TOP_KEYS, ["version", "common", "tokenizer_families", "kv_sets",
                                                    "architectures"])
    if top["version"] != 1:
        raise r.fail("version", f"unsupported version {top['version']!r}")
    common = r.mapping(top["common"], "common", _COMMON_KEYS, sorted(_COMMON_KEYS))
    families = {name: _read_family(r, spec, f"tokenizer_families.{name}")
                for name, spec in r.mapping(top["tokenizer_families"], "tokenizer_families",
                                            set(top["tokenizer_families"] or {})).items()}
    kv_sets = {name: tuple(_read_kv(r, item, f"kv_sets.{name}[{i}]") for i, item in enumerate(items or []))
               for name, items in r.mapping(top["kv_sets"], "kv_sets", set(top["kv_sets"] or {})).items()}
    if not isinstance(top["architectures"], list):
        raise r.fail("architectures", "must be a list")
    archs = tuple(_read_arch(r, item, i, kv_sets) for i, item in enumerate(top["architectures"]))
    _check_claims(r, archs)
    converter = top.get("converter") or {}
    return ArchTable(
        path=path,
        converter=(f"{converter.get('repo', '?')} {converter.get('file', '?')} "
                   f"@ {str(converter.get('commit', '?'))[:8]}"),
        block_count_keys=r.strings(common["block_count_keys"], "common.block_count_keys"),
        skip_suffixes=r.strings(common["skip_suffixes"], "common.skip_suffixes"),
        multimodal_prefixes=r.strings(common["multimodal_prefixes"], "common.multimodal_prefixes"),
        multimodal_contains=r.strings(common["multimodal_contains"], "common.multimodal_contains"),
        renames=tuple(_read_rename(r, x, f"common.renames[{i}]") for i, x in enumerate(common["renames"] or [])),
        f32_tensors=frozenset(_tensor_key(r, n, "common.f32_tensors")
                              for n in r.strings(common["f32_tensors"], "common.f32_tensors")),
        quantizable_suffixes=r.strings(common["quantizable_suffixes"], "common.quantizable_suffixes"),
        dequantize={m: _read_dequant(r, spec, f"common.dequantize.{m}")
                    for m, spec in r.mapping(common["dequantize"], "common.dequantize",
                                             set(common["dequantize"] or {})).items()},
        tokenizer_families=families,
        architectures=archs,
    )


def _tensor_key(r: _Reader, name: str, where: str) -> gguf.MODEL_TENSOR:
    try:
        return gguf.MODEL_TENSOR[name]
    except KeyError:
        raise r.fail(where, f"gguf-py has no MODEL_TENSOR.{name}") from None


def _read_family(r: _Reader, raw: Any, where: str) -> TokenizerFamily:
    spec = r.mapping(raw, where, {"model", "avg_token_bytes", "scores", "avg_merge_bytes", "special_ids"},
                     ["model", "avg_token_bytes", "scores", "avg_merge_bytes", "special_ids"])
    for key in ("avg_token_bytes", "avg_merge_bytes"):
        if not isinstance(spec[key], (int, float)) or spec[key] < 0:
            raise r.fail(f"{where}.{key}", "must be a non-negative number")
    return TokenizerFamily(str(spec["model"]), float(spec["avg_token_bytes"]), bool(spec["scores"]),
                           float(spec["avg_merge_bytes"]), r.strings(spec["special_ids"], f"{where}.special_ids"))


def _read_kv(r: _Reader, raw: Any, where: str) -> KvCall:
    spec = r.mapping(raw, where, {"call", "value", "when", "enum"}, ["call", "value"])
    call = spec["call"]
    if not isinstance(call, str) or not call.startswith("add_") or not callable(getattr(gguf.GGUFWriter, call, None)):
        raise r.fail(where, f"gguf.GGUFWriter has no method {call!r}")
    enum = spec.get("enum")
    if enum is not None and not (isinstance(enum, str) and isinstance(getattr(gguf, enum, None), type)):
        raise r.fail(where, f"gguf has no enum {enum!r}")
    return KvCall(call, r.expr(spec["value"], f"{where}.value"), r.opt_expr(spec.get("when"), f"{where}.when"), enum)


def _read_rename(r: _Reader, raw: Any, where: str) -> NameRule:
    spec = r.mapping(raw, where, {"match", "to"}, ["match", "to"])
    if not isinstance(spec["to"], str):
        raise r.fail(where, "'to' must be a string")
    return NameRule(r.regex(spec["match"], f"{where}.match"), to=spec["to"])


def _read_drop(r: _Reader, raw: Any, where: str) -> NameRule:
    spec = r.mapping(raw, where, {"match", "when", "reason", "material"}, ["match", "reason"])
    return NameRule(r.regex(spec["match"], f"{where}.match"), when=r.opt_expr(spec.get("when"), f"{where}.when"),
                    reason=str(spec["reason"]), material=bool(spec.get("material", False)))


def _read_dequant(r: _Reader, raw: Any, where: str) -> Dequant:
    spec = r.mapping(raw, where, {"scales", "drop", "packed"})
    scales = []
    for i, item in enumerate(spec.get("scales") or []):
        s = r.mapping(item, f"{where}.scales[{i}]", {"suffix", "weight"}, ["suffix", "weight"])
        scales.append((str(s["suffix"]), str(s["weight"])))
    return Dequant(tuple(scales), r.strings(spec.get("drop") or [], f"{where}.drop"), bool(spec.get("packed")))


def _read_transform(r: _Reader, raw: Any, where: str) -> Transform:
    spec = r.mapping(raw, where, _TRANSFORM_KEYS, ["match", "outputs"])
    outputs = []
    for i, out in enumerate(spec["outputs"] or []):
        if isinstance(out, str):
            outputs.append(Output(out))
        else:
            o = r.mapping(out, f"{where}.outputs[{i}]", {"name", "transpose"}, ["name"])
            outputs.append(Output(str(o["name"]), r.pair(o.get("transpose"), f"{where}.outputs[{i}].transpose")))
    if not outputs:
        raise r.fail(where, "needs at least one output")
    t: dict[str, Any] = {"pattern": r.regex(spec["match"], f"{where}.match"), "outputs": tuple(outputs),
                         "when": r.opt_expr(spec.get("when"), f"{where}.when"),
                         "mxfp4_blocks": spec.get("mxfp4_blocks"),
                         "transpose": r.pair(spec.get("transpose"), f"{where}.transpose")}
    if spec.get("view") is not None:
        if not isinstance(spec["view"], list):
            raise r.fail(f"{where}.view", "must be a list of dimensions")
        t["view"] = tuple(r.expr(d, f"{where}.view") for d in spec["view"])
    if spec.get("split") is not None:
        split = r.mapping(spec["split"], f"{where}.split", {"dim", "sizes", "parts", "interleave"}, ["dim"])
        kinds = [k for k in ("sizes", "parts", "interleave") if k in split]
        if len(kinds) != 1:
            raise r.fail(f"{where}.split", "needs exactly one of sizes, parts, interleave")
        t["split_dim"] = int(split["dim"])
        if "sizes" in split:
            t["split_sizes"] = tuple(r.expr(s, f"{where}.split.sizes") for s in split["sizes"])
        else:
            t["split_parts" if "parts" in split else "split_interleave"] = int(split[kinds[0]])
        n_parts = len(t["split_sizes"]) if "split_sizes" in t else t.get("split_parts") or t["split_interleave"]
        if n_parts != len(outputs):
            raise r.fail(where, f"split makes {n_parts} tensors but {len(outputs)} outputs are named")
    elif len(outputs) != 1:
        raise r.fail(where, "several outputs need a split")
    if spec.get("truncate") is not None:
        trunc = r.mapping(spec["truncate"], f"{where}.truncate", {"dim", "size"}, ["dim", "size"])
        t["truncate_dim"] = int(trunc["dim"])
        t["truncate_size"] = r.expr(trunc["size"], f"{where}.truncate.size")
    return Transform(**t)


def _read_arch(r: _Reader, raw: Any, index: int, kv_sets: Mapping[str, tuple[KvCall, ...]]) -> ArchSpec:
    where = f"architectures[{index}]"
    spec = r.mapping(raw, where, _ARCH_KEYS, ["id", "gguf_arch", "hf_architectures", "kv", "tokenizer"])
    where = f"architectures[{index}] ({spec['id']})"
    model_arch = next((a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == spec["gguf_arch"]), None)
    if model_arch is None:
        raise r.fail(where, f"gguf-py knows no architecture {spec['gguf_arch']!r}")
    kv: list[KvCall] = []
    for name in r.strings(spec["kv"], f"{where}.kv"):
        if name not in kv_sets:
            raise r.fail(f"{where}.kv", f"unknown KV set {name!r}")
        kv.extend(kv_sets[name])
    experts = None
    if spec.get("experts") is not None:
        e = r.mapping(spec["experts"], f"{where}.experts", {"match", "count", "order", "merged"},
                      ["match", "count", "order", "merged"])
        pattern = r.regex(e["match"], f"{where}.experts.match")
        if not {"bid", "xid", "w"} <= set(pattern.groupindex):
            raise r.fail(f"{where}.experts.match", "needs the named groups bid, xid and w")
        experts = ExpertRule(pattern, r.expr(e["count"], f"{where}.experts.count"),
                             r.strings(e["order"], f"{where}.experts.order"), str(e["merged"]))
    extras = []
    for i, x in enumerate(spec.get("extras") or []):
        x = r.mapping(x, f"{where}.extras[{i}]", {"name", "when", "shape"}, ["name", "when", "shape"])
        extras.append(Extra(str(x["name"]), r.expr(x["when"], f"{where}.extras[{i}].when"),
                            tuple(r.expr(d, f"{where}.extras[{i}].shape") for d in x["shape"])))
    tok = r.mapping(spec["tokenizer"], f"{where}.tokenizer",
                    {"family", "pre", "tokens", "merges", "avg_token_bytes", "chat_template_bytes"}, ["family", "pre"])
    tokenizer = TokenizerSpec(*(r.opt_expr(tok.get(k), f"{where}.tokenizer.{k}")
                                for k in ("family", "pre", "tokens", "merges", "avg_token_bytes",
                                          "chat_template_bytes")))
    assumptions = tuple(
        Assumption(r.expr(a["when"], f"{where}.assumptions[{i}].when"), str(a["warning"]))
        for i, a in enumerate(r.mapping(x, f"{where}.assumptions[{i}]", {"when", "warning"}, ["when", "warning"])
                              for i, x in enumerate(spec.get("assumptions") or [])))
    kv_hparams = r.mapping(spec.get("kv_hparams") or {}, f"{where}.kv_hparams", set(spec.get("kv_hparams") or {}))
    return ArchSpec(
        id=str(spec["id"]),
        converter_class=str(spec.get("converter_class", "")),
        gguf_arch=spec["gguf_arch"],
        model_arch=model_arch,
        hf_architectures=r.strings(spec["hf_architectures"], f"{where}.hf_architectures"),
        model_types=r.strings(spec.get("model_types") or [], f"{where}.model_types"),
        drops=tuple(_read_drop(r, d, f"{where}.drops[{i}]") for i, d in enumerate(spec.get("drops") or [])),
        renames=tuple(_read_rename(r, d, f"{where}.renames[{i}]") for i, d in enumerate(spec.get("renames") or [])),
        transforms=tuple(_read_transform(r, t, f"{where}.transforms[{i}]")
                         for i, t in enumerate(spec.get("transforms") or [])),
        experts=experts,
        extras=tuple(extras),
        kv_hparams=tuple((k, r.expr(v, f"{where}.kv_hparams.{k}")) for k, v in kv_hparams.items()),
        kv=tuple(kv),
        tokenizer=tokenizer,
        assumptions=assumptions,
        keep_quantized=spec.get("keep_quantized"),
    )


def _check_claims(r: _Reader, archs: tuple[ArchSpec, ...]) -> None:
    seen: dict[str, str] = {}
    for spec in archs:
        for name in spec.hf_architectures + tuple(f"model_type:{m}" for m in spec.model_types):
            if name in seen:
                raise r.fail(f"architectures ({spec.id})", f"{name!r} is already claimed by {seen[name]!r}")
            seen[name] = spec.id
    ids = [s.id for s in archs]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup:
        raise r.fail("architectures", f"duplicate id {dup!r}")


def load_table(path: str | Path | None = None) -> ArchTable:
    """The packaged table (`rules/hf_architectures.yaml`), or another file with the same schema."""
    if path is None:
        return _packaged_table()
    return parse_table(read_user_file(path, "the architecture table"), str(path))


@lru_cache(maxsize=1)
def _packaged_table() -> ArchTable:
    return parse_table(read_packaged(TABLE_FILE), f"rules/{TABLE_FILE}")


def supported_architectures(table: ArchTable | None = None) -> dict[str, str]:
    """HF architecture name -> gguf architecture, for every entry of the table."""
    table = table or load_table()
    return {hf: spec.gguf_arch for spec in table.architectures for hf in spec.hf_architectures}


# ==================================================================================================
# Conversion
# ==================================================================================================
@dataclass
class _Pending:
    """A tensor on its way through the converter: torch-order shape, source dtype, where it came from."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    sources: tuple[TensorInfo, ...]
    raw_type: str | None = None  # a ggml type written as is (MXFP4), bypassing the outtype
    synthesized: bool = False  # split, stacked, reshaped or generated: no single source location


@dataclass
class _Log:
    """What the conversion dropped, assumed or could not do."""

    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dropped: dict[str, list[TensorInfo]] = field(default_factory=dict)
    material: set[str] = field(default_factory=set)

    def drop(self, reason: str, tensor: TensorInfo, material: bool = False) -> None:
        self.dropped.setdefault(reason, []).append(tensor)
        if material:
            self.material.add(reason)

    def finish(self) -> None:
        for reason, tensors in self.dropped.items():
            nbytes = sum(t.nbytes for t in tensors)
            line = (f"converter view: dropped {len(tensors)} tensor{'s' if len(tensors) != 1 else ''} "
                    f"({nbytes:,} bytes in the checkpoint): {reason}")
            self.notes.append(line)
            if reason in self.material:
                self.warnings.append(line)


def to_gguf_view(checkpoint: Checkpoint, *, table: ArchTable | None = None) -> Checkpoint:
    """The GGUF `convert_hf_to_gguf.py --outtype auto` would write for this safetensors checkpoint.

    Tensors get GGUF names and `ne` shapes, converter types (F32/F16/BF16, MXFP4 kept for gpt-oss experts) and
    exact bytes; roles are assigned again from the GGUF names. Tensors with one source keep its `file_index` and
    `offset` (where their data starts in the safetensors files); split, stacked, reshaped and generated tensors
    have `file_index` 0 and `offset` -1. `metadata` holds the KVs the converter writes from config.json plus
    `ckpt_size.header_estimate` (bytes from the GGUF magic through the last tensor info, unpadded; the
    tokenizer part is estimated from the vocabulary size) and `ckpt_size.notes`. A GGUF checkpoint is returned
    unchanged.

    Raises:
        ConversionError: no config.json, an architecture the table does not cover, or a quantization method
            the converter cannot dequantize.
    """
    if checkpoint.format == "gguf":
        return checkpoint
    table = table or load_table()
    config = dict(checkpoint.config or {})
    if not config:
        raise ConversionError(f"{checkpoint.source}: no config.json, so the converter view cannot be built",
                              hint="put config.json next to the safetensors files")
    spec = table.find(config)
    if spec is None:
        arch = (config.get("architectures") or [config.get("model_type")])[0]
        raise ConversionError(
            f"{checkpoint.source}: architecture {arch!r} is not in rules/{TABLE_FILE}",
            hint=f"covered: {', '.join(sorted(supported_architectures(table)))}")
    return _Converter(checkpoint, table, spec, config).run()


class _Converter:
    def __init__(self, checkpoint: Checkpoint, table: ArchTable, spec: ArchSpec, config: dict[str, Any]) -> None:
        self.ckpt = checkpoint
        self.table = table
        self.spec = spec
        self.hparams = _hparams(config)
        self.block_count = next((self.hparams[k] for k in table.block_count_keys if k in self.hparams), None)
        if not isinstance(self.block_count, int):
            raise ConversionError(f"{checkpoint.source}: config.json has no layer count "
                                  f"({', '.join(table.block_count_keys)})")
        self.names = _namespace(self.hparams, self.block_count)
        self.tensor_map = gguf.get_tensor_name_map(spec.model_arch, self.block_count)
        self.gguf_names = _gguf_names(spec.model_arch, self.block_count)
        self.log = _Log()
        self.unmapped: list[str] = []
        self._when_cache: dict[tuple[int, tuple[Any, ...]], bool] = {}
        qconfig = self.hparams.get("quantization_config")
        self.quant_method = str(qconfig.get("quant_method", "")).lower() if isinstance(qconfig, dict) else ""

    # -- the pipeline -----------------------------------------------------------------------------
    def run(self) -> Checkpoint:
        tensors = self._filter(self.ckpt.tensors)
        outtype = _guess_outtype(tensors)
        tensors = self._dequantize(tensors)
        pending = self._extras() + self._modify(tensors)
        out = tuple(self._finish(p, outtype) for p in pending)
        _check_unique(self.ckpt.source, out)
        if self.unmapped:
            shown = ", ".join(repr(n) for n in self.unmapped[:MAX_NAMED])
            more = f" and {len(self.unmapped) - MAX_NAMED} more" if len(self.unmapped) > MAX_NAMED else ""
            self.log.warnings.append(
                f"converter view: {len(self.unmapped)} tensors have no GGUF name in gguf-py's tensor map for "
                f"{self.spec.gguf_arch} ({shown}{more}); convert_hf_to_gguf.py would stop with 'Can not map "
                "tensor'. They are kept under their HF names, converted to the outtype")
        file_type = self._file_type(outtype)
        kvs = self._kvs(file_type)
        kvs.update(self._general_kvs(out))
        for assumption in self.spec.assumptions:
            if assumption.when.holds(self.names):
                self.log.warnings.append(f"converter view: {assumption.warning}")
        self.log.finish()
        estimate, basis = self._header_estimate(out, kvs)
        metadata: dict[str, Any] = {key: value for key, (value, _type) in kvs.items()}
        metadata["general.quantization_version"] = GGML_QUANT_VERSION
        metadata.update({
            HEADER_ESTIMATE_KEY: estimate,
            HEADER_BASIS_KEY: basis,
            OUTTYPE_KEY: outtype,
            SOURCE_FORMAT_KEY: self.ckpt.format,
            CONVERTER_KEY: f"{self.spec.converter_class} ({self.table.converter})",
            NOTES_KEY: tuple(self.log.notes),
        })
        stale = set(unmatched_warning(self.ckpt.tensors))  # about HF names; roles are assigned again below
        kept = tuple(w for w in self.ckpt.warnings if w not in stale)
        view = self.ckpt.with_(format="gguf", architecture=self.spec.gguf_arch, tensors=out, metadata=metadata,
                               warnings=kept + tuple(self.log.warnings))
        return assign_roles(view)

    def _filter(self, tensors: Iterable[TensorInfo]) -> list[TensorInfo]:
        """TextModel/ModelBase.filter_tensors: multimodal towers out, common renames."""
        contains = re.compile("|".join(re.escape(s) for s in self.table.multimodal_contains) or "(?!)")
        out = []
        for t in tensors:
            if t.name.startswith(self.table.multimodal_prefixes) or contains.search(t.name):
                self.log.drop("vision/audio tower and projector tensors (they go to a separate mmproj GGUF)", t,
                              material=True)
                continue
            name = _rename(self.table.renames, t.name)
            out.append(t.with_(name=name) if name != t.name else t)
        return out

    def _dequantize(self, tensors: list[TensorInfo]) -> list[TensorInfo]:
        """ModelBase.dequant_model: scales folded into their weights, which become float."""
        method = self.quant_method
        if not method or (self.spec.keep_quantized and method == self.spec.keep_quantized):
            return tensors
        rule = self.table.dequantize.get(method)
        qformat = (self.hparams.get("quantization_config") or {}).get("format")
        if rule is None or qformat == "pack-quantized":
            raise ConversionError(
                f"{self.ckpt.source}: a {method!r}{f' ({qformat})' if qformat else ''}-quantized checkpoint is not "
                "covered: convert_hf_to_gguf.py cannot dequantize it (bitsandbytes, AWQ, ...: 'Quant method is not "
                "yet supported') or its dequantized shapes depend on tensor data (bitnet, pack-quantized)",
                hint="convert from the unquantized weights")
        if rule.packed:
            return self._unpack_gptq(tensors)
        names = {t.name for t in tensors}
        scale_suffixes = tuple(s for s, _w in rule.scales)
        out = []
        for t in tensors:
            if not t.name.endswith(scale_suffixes) and not t.name.endswith(rule.drop):
                out.append(t)
                continue
            scale = next(((s, w) for s, w in rule.scales if t.name.endswith(s)), None)
            if scale is not None:
                weight = scale[1].format(stem=t.name[: -len(scale[0])])
                if weight in names:
                    self.log.drop(f"{method} scale tensors (folded into their weights by dequant_model)", t)
                    continue
            if t.name.endswith(rule.drop):
                self.log.drop(f"{method} activation scales (unused)", t)
                continue
            out.append(t)
        # The dequantized weights are float now; their stored dtype no longer matters (the outtype decides).
        return out

    def _unpack_gptq(self, tensors: list[TensorInfo]) -> list[TensorInfo]:
        bits = self.hparams["quantization_config"].get("bits") or 4
        by_name = {t.name: t for t in tensors}
        aux = {".g_idx", ".qzeros", ".scales"}
        out = []
        for t in tensors:
            base, _, suffix = t.name.rpartition(".")
            if "." + suffix in aux and base + ".qweight" in by_name:
                self.log.drop("GPTQ zero points, scales and group indices (folded into the weights)", t)
                continue
            if t.name.endswith(".qweight") and len(t.shape) == 2:
                in_features = t.shape[0] * (32 // int(bits) if t.dtype in ("I32", "U32") else 8 // int(bits))
                out.append(t.with_(name=base + ".weight", shape=(t.shape[1], in_features), dtype="F32"))
                continue
            out.append(t)
        return out

    def _extras(self) -> list[_Pending]:
        """generate_extra_tensors: rope_freqs, rope_factors_* (always F32, 1-D)."""
        out = []
        for extra in self.spec.extras:
            if not extra.when.holds(self.names):
                continue
            shape = tuple(d.get(self.names) for d in extra.shape)
            if any(not isinstance(d, int) or d <= 0 for d in shape):
                self.log.warnings.append(f"converter view: cannot size generated tensor {extra.name!r} from config")
                continue
            out.append(_Pending(extra.name, shape, "F32", (), synthesized=True))
        return out

    def _modify(self, tensors: list[TensorInfo]) -> list[_Pending]:
        """prepare_tensors' loop: skips, the class's drops/renames/transforms/stacking (names mapped later)."""
        kept: list[tuple[TensorInfo, str]] = []
        for t in tensors:
            if t.name.endswith(self.table.skip_suffixes):
                self.log.drop("rotary inv_freq / attention mask buffers (prepare_tensors skips them)", t)
                continue
            drop = self._drop_rule(t.name)
            if drop is not None:
                self.log.drop(drop.reason, t, drop.material)
                continue
            kept.append((t, _rename(self.spec.renames, t.name)))
        by_name = {name: t for t, name in kept}
        consumed = self._mxfp4_scales(name for _t, name in kept)
        experts = _ExpertBuffer(self)
        out: list[_Pending] = []
        for t, name in kept:
            if name in consumed:
                continue
            item = _Pending(name, tuple(t.shape), t.dtype, (t,))
            transformed = self._transform(item, by_name)
            if transformed is not None:
                out.extend(transformed)
                continue
            stacked = experts.add(item)
            out.extend([item] if stacked is None else stacked)
        out.extend(experts.leftovers())
        return out

    def _mxfp4_scales(self, names: Iterable[str]) -> set[str]:
        """Scales tensors that MXFP4 transforms fold into their blocks (whatever order the files list them in)."""
        scales: set[str] = set()
        transforms = [tr for tr in self.spec.transforms if tr.mxfp4_blocks is not None]
        for name in names:
            for tr in transforms:
                m = tr.pattern.fullmatch(name)
                if m and tr.mxfp4_blocks is not None:
                    scales.add(tr.mxfp4_blocks.format(**{k: v for k, v in m.groupdict().items() if v is not None}))
                    break
        return scales

    def _drop_rule(self, name: str) -> NameRule | None:
        for rule in self.spec.drops:
            m = rule.pattern.fullmatch(name)
            if m and (rule.when is None or self._holds(rule.when, m)):
                return rule
        return None

    def _holds(self, expr: Expr, m: re.Match[str]) -> bool:
        """expr over the config and the match's groups; cached, as a layer's tensors share their groups."""
        key = (id(expr), m.groups())
        if key not in self._when_cache:
            groups = {k: v for k, v in m.groupdict().items() if v is not None}
            self._when_cache[key] = expr.holds(ChainMap(groups, self.names))
        return self._when_cache[key]

    def _transform(self, item: _Pending, by_name: Mapping[str, TensorInfo]) -> list[_Pending] | None:
        """The first transform matching the tensor (and whose `when` holds), or None."""
        for tr in self.spec.transforms:
            m = tr.pattern.fullmatch(item.name)
            if not m:
                continue
            groups = {k: v for k, v in m.groupdict().items() if v is not None}
            names = ChainMap(groups, self.names)
            if tr.when is not None and not tr.when.holds(names):
                continue
            shape, raw_type = list(item.shape), item.raw_type
            sources = item.sources
            if tr.mxfp4_blocks is not None:
                scales_name = tr.mxfp4_blocks.format(**groups)
                if scales_name in by_name:
                    sources = sources + (by_name[scales_name],)
                else:
                    self.log.warnings.append(f"converter view: MXFP4 blocks {item.name!r} have no scales tensor "
                                             f"{scales_name!r}")
                if len(shape) < 2 or item.dtype != "U8":
                    return self._cannot(item, "MXFP4 blocks must be U8 [..., n_blocks, 16]")
                shape = shape[:-2] + [shape[-2] * shape[-1] * 2]  # 16 bytes = 32 four-bit values per block
                raw_type = "MXFP4"
            try:
                pieces = _reshape(tr, shape, names)
            except _Unavailable as e:
                return self._cannot(item, str(e))
            return [_Pending(o.name.format(**groups), tuple(s), item.dtype, sources, raw_type,
                             synthesized=len(pieces) > 1 or tr.view is not None or tr.truncate_dim is not None
                             or len(sources) > 1)
                    for o, s in zip(tr.outputs, pieces)]
        return None

    def _cannot(self, item: _Pending, why: str) -> list[_Pending]:
        self.log.warnings.append(f"converter view: cannot transform {item.name!r} as the converter does ({why}); "
                                 "kept as it is")
        return [item]

    def _finish(self, p: _Pending, outtype: str) -> TensorInfo:
        """Map the name, pick the type the converter writes, reverse the shape into ne."""
        name = self._gguf_name(p.name)
        gtype = p.raw_type or self._converted_type(name, len(p.shape), outtype)
        ne = tuple(reversed(p.shape)) if p.shape else ()
        ggml = type_by_name(gtype)
        assert ggml is not None, gtype
        nbytes = tensor_nbytes(ggml, ne or (1,), source=self.ckpt.source, tensor=name)
        params = math.prod(ne) if ne else 1
        src = p.sources[0] if len(p.sources) == 1 and not p.synthesized else None
        return TensorInfo(name=name, shape=ne, dtype=gtype, nbytes=nbytes,
                          offset=src.offset if src else -1, file_index=src.file_index if src else 0, params=params)

    def _gguf_name(self, name: str) -> str:
        if name in self.gguf_names:
            return name
        mapped = self.tensor_map.get_name(key=name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            self.unmapped.append(name)
            return name
        return mapped

    def _converted_type(self, name: str, n_dims: int, outtype: str) -> str:
        """prepare_tensors: F32 for 1-D, norms, routers & co and non-.weight tensors; the outtype otherwise."""
        if n_dims <= 1 or name.endswith("_norm.weight"):
            return "F32"
        if not name.endswith(self.table.quantizable_suffixes) or self._is_f32_tensor(name):
            return "F32"
        return outtype

    def _is_f32_tensor(self, name: str) -> bool:
        stem = name[: -len(".weight")] if name.endswith(".weight") else None
        if stem is None:
            return False
        block = re.match(r"blk\.(\d+)\.", stem)
        for key in self.table.f32_tensors:
            if key not in gguf.MODEL_TENSORS[self.spec.model_arch]:
                continue
            template = gguf.TENSOR_NAMES[key]
            if ("{bid}" in template) != (block is not None):
                continue
            if (template.format(bid=block.group(1)) if block else template) == stem:
                return True
        return False

    def _file_type(self, outtype: str) -> int:
        ftype = {"F16": gguf.LlamaFileType.MOSTLY_F16, "BF16": gguf.LlamaFileType.MOSTLY_BF16}[outtype]
        if self.spec.keep_quantized == "mxfp4" and self.quant_method == "mxfp4":
            ftype = gguf.LlamaFileType.MOSTLY_MXFP4_MOE  # prepare_metadata renames F16/BF16 for MXFP4 checkpoints
        return int(ftype)

    # -- metadata -------------------------------------------------------------------------------
    def _kvs(self, file_type: int) -> dict[str, tuple[Any, gguf.GGUFValueType]]:
        """Run the class's add_* calls on a scratch GGUFWriter; later calls of a key overwrite in place."""
        names = dict(self.names, file_type=file_type)
        for key, expr in self.spec.kv_hparams:
            names[key] = expr.get(names)
        writer = gguf.GGUFWriter(path=None, arch=self.spec.gguf_arch)
        kvs: dict[str, tuple[Any, gguf.GGUFValueType]] = {
            k: (v.value, v.type) for k, v in writer.kv_data[0].items()}
        writer.kv_data[0].clear()
        skipped = []
        for call in self.spec.kv:
            if call.when is not None and not call.when.holds(names):
                continue
            value = call.value.get(names)
            if value is None:
                continue
            try:
                if call.enum is not None:
                    value = getattr(gguf, call.enum)[str(value)]
                getattr(writer, call.call)(value)
            except (KeyError, TypeError, ValueError, OverflowError) as e:
                skipped.append(f"{call.call}({value!r}): {e}")
                continue
            for key, v in writer.kv_data[0].items():
                kvs[key] = (v.value, v.type)
            writer.kv_data[0].clear()
        if skipped:
            self.log.warnings.append(f"converter view: {len(skipped)} KVs could not be written from config.json: "
                                     f"{'; '.join(skipped[:MAX_NAMED])}")
        return kvs

    def _header_estimate(self, tensors: Sequence[TensorInfo], kvs: Mapping[str, tuple[Any, Any]]) -> tuple[int, str]:
        """Magic through the last tensor info: exact for tensor infos and hparam KVs, estimated for the rest."""
        kv_bytes = sum(_kv_nbytes(key, value, vtype) for key, (value, vtype) in kvs.items())
        kv_bytes += _kv_nbytes("general.quantization_version", GGML_QUANT_VERSION, gguf.GGUFValueType.UINT32)
        tok_bytes, tok_basis = self._tokenizer_estimate()
        infos = sum(8 + len(t.name.encode()) + 4 + 8 * len(t.shape) + 4 + 8 for t in tensors)
        total = GGUF_PREAMBLE + kv_bytes + tok_bytes + infos
        basis = (f"estimate: tensor infos ({infos:,} bytes) and config KVs exact; general.* without model-card "
                 f"fields (license, tags, base models: typically a few hundred bytes more); {tok_basis}")
        return total, basis

    def _general_kvs(self, tensors: Sequence[TensorInfo]) -> dict[str, tuple[Any, gguf.GGUFValueType]]:
        """general.type, name and size_label as Metadata.set_gguf_meta_model writes them without a model card
        (the name is config's _name_or_path or the folder name: an estimate)."""
        s = gguf.GGUFValueType.STRING
        name = _model_name(self.ckpt)
        return {"general.type": ("model", s), "general.name": (name, s),
                "general.size_label": (_size_label(tensors), s)}

    def _tokenizer_estimate(self) -> tuple[int, str]:
        tok = self.spec.tokenizer
        family_name = tok.family.get(self.names)
        family = self.table.tokenizer_families.get(family_name)
        if family is None:
            return 0, f"tokenizer: unknown family {family_name!r}, not counted"
        n_tokens = (tok.tokens.get(self.names) if tok.tokens else None) or self.hparams.get("vocab_size") or 0
        merges = 0
        if family.avg_merge_bytes:
            merges = (tok.merges.get(self.names) if tok.merges else None) or max(0, n_tokens - 256)
        template = (tok.chat_template_bytes.get(self.names) if tok.chat_template_bytes else None) or 0
        avg = (tok.avg_token_bytes.get(self.names) if tok.avg_token_bytes else None) or family.avg_token_bytes
        pre = tok.pre.get(self.names) or "default"
        s, u32, b = gguf.GGUFValueType.STRING, gguf.GGUFValueType.UINT32, gguf.GGUFValueType.BOOL
        total = _kv_nbytes("tokenizer.ggml.model", family.model, s) + _kv_nbytes("tokenizer.ggml.pre", pre, s)
        total += _array_kv("tokenizer.ggml.tokens", round(n_tokens * (8 + avg)))
        total += _array_kv("tokenizer.ggml.token_type", 4 * n_tokens)
        if family.scores:
            total += _array_kv("tokenizer.ggml.scores", 4 * n_tokens)
        if merges:
            total += _array_kv("tokenizer.ggml.merges", round(merges * (8 + family.avg_merge_bytes)))
        key_names = {"unk": "unknown", "pad": "padding"}
        for special in family.special_ids:
            total += _kv_nbytes(f"tokenizer.ggml.{key_names.get(special, special)}_token_id", 0, u32)
        total += _kv_nbytes("tokenizer.ggml.add_bos_token", True, b)
        total += _kv_nbytes("tokenizer.ggml.add_eos_token", False, b)
        if template:
            total += _kv_nbytes("tokenizer.chat_template", "x" * int(template), s)
        basis = (f"tokenizer ({total:,} bytes) estimated without the tokenizer files: {n_tokens:,} tokens of "
                 f"~{avg} bytes ({family_name}, measured on a real vocabulary)"
                 + (f", {merges:,} merges of ~{family.avg_merge_bytes} bytes" if merges else "")
                 + f", chat template assumed {int(template):,} bytes")
        return total, basis


class _ExpertBuffer:
    """Per-expert tensors held until a layer's set is complete, then stacked as the class does."""

    def __init__(self, conv: _Converter) -> None:
        self.conv = conv
        self.rule = conv.spec.experts
        self.count = self.rule.count.get(conv.names) if self.rule else None
        self.layers: dict[str, dict[tuple[str, int], _Pending]] = {}

    def add(self, item: _Pending) -> list[_Pending] | None:
        """None when the tensor is not a per-expert one; else the stacked tensors once the layer is complete."""
        if self.rule is None:
            return None
        m = self.rule.pattern.fullmatch(item.name)
        if m is None or m.group("w") not in self.rule.order:
            return None
        if not isinstance(self.count, int) or self.count <= 0:
            self.conv.log.warnings.append(f"converter view: expert count {self.rule.count.text!r} is not in "
                                          "config.json; per-expert tensors kept unstacked")
            self.rule = None
            return None
        bid = m.group("bid")
        layer = self.layers.setdefault(bid, {})
        layer[(m.group("w"), int(m.group("xid")))] = item
        if len(layer) < self.count * len(self.rule.order):
            return []
        del self.layers[bid]
        return self._stack(bid, layer)

    def _stack(self, bid: str, layer: dict[tuple[str, int], _Pending]) -> list[_Pending]:
        assert self.rule is not None
        out = []
        for w in self.rule.order:
            parts = [layer.get((w, x)) for x in range(self.count)]
            present = [p for p in parts if p is not None]
            if len(present) != self.count or len({p.shape for p in present}) != 1:
                self.conv.log.warnings.append(
                    f"converter view: layer {bid} {w}: experts 0..{self.count - 1} are not all present with one "
                    "shape; kept unstacked")
                out.extend(present)
                continue
            first = present[0]
            out.append(_Pending(self.rule.merged.format(bid=bid, w=w), (self.count,) + first.shape, first.dtype,
                                tuple(s for p in present for s in p.sources), synthesized=True))
        return out

    def leftovers(self) -> list[_Pending]:
        out = []
        for bid, layer in self.layers.items():
            self.conv.log.warnings.append(
                f"converter view: layer {bid} has {len(layer)} per-expert tensors, not the {self.count} x "
                f"{len(self.rule.order) if self.rule else 0} the converter stacks (it would stop with "
                "'Unprocessed experts'); kept unstacked")
            out.extend(layer.values())
        return out


# ==================================================================================================
# Helpers
# ==================================================================================================
def _hparams(config: Mapping[str, Any]) -> dict[str, Any]:
    """TextModel: text_config moved to the top level (and the renames load_hparams does)."""
    hparams = dict(config)
    for alias in ("llm_config", "lm_config", "language_config"):
        if isinstance(hparams.get(alias), dict):
            hparams["text_config"] = hparams[alias]
    if isinstance(hparams.get("text_config"), dict):
        hparams = {**hparams, **hparams["text_config"]}
    return hparams


def _namespace(hparams: Mapping[str, Any], block_count: int) -> dict[str, Any]:
    """Expression names: hparams, the RoPE parameters as TextModel.__init__ normalizes them, block_count."""
    rope_all = dict(hparams.get("rope_parameters") or hparams.get("rope_scaling") or {})
    theta = _first(*(hparams.get(k) for k in ("global_rope_theta", "rope_global_theta", "rope_theta_global",
                                              "rope_theta", "rotary_emb_base")))
    local = _first(*(hparams.get(k) for k in ("local_rope_theta", "rope_local_theta", "rope_theta_local",
                                              "swa_rope_theta", "rope_local_base_freq")))
    if "full_attention" not in rope_all and "sliding_attention" not in rope_all:
        if local is not None:
            rope_all["sliding_attention"] = {"rope_theta": local}
        if "rope_theta" not in rope_all and theta is not None:
            rope_all["rope_theta"] = theta
        if "rope_type" not in rope_all and rope_all.get("type") is not None:
            rope_all["rope_type"] = rope_all["type"]
    rope = rope_all.get("full_attention", rope_all)
    sliding = rope_all.get("sliding_attention")
    return {**hparams, "rope_all": rope_all, "rope": rope, "block_count": block_count,
            "rope_swa_theta": sliding.get("rope_theta") if isinstance(sliding, dict) else None}


def _rename(rules: Sequence[NameRule], name: str) -> str:
    """Apply regex renames in order."""
    for rule in rules:
        name = rule.pattern.sub(rule.to or "", name)
    return name


def _guess_outtype(tensors: Sequence[TensorInfo]) -> str:
    """--outtype auto: the first tensor of >= 2 dims that is BF16 or F16 decides; F16 when there is none."""
    for t in tensors:
        if len(t.shape) >= 2 and t.dtype in ("BF16", "F16"):
            return t.dtype
    return "F16"


def _reshape(tr: Transform, shape: list[int], names: Mapping[str, Any]) -> list[list[int]]:
    """The shapes a transform produces from one tensor (elements are checked to be preserved)."""
    elements = math.prod(shape)
    if tr.transpose is not None:
        a, b = tr.transpose
        shape[a], shape[b] = shape[b], shape[a]
    if tr.view is not None:
        dims = [d.value(names) for d in tr.view]
        if any(not isinstance(d, int) for d in dims) or dims.count(-1) > 1:
            raise _Unavailable("view dimensions are not integers")
        known = math.prod(d for d in dims if d != -1)
        if -1 in dims:
            if known <= 0 or elements % known:
                raise _Unavailable(f"{shape} cannot be viewed as {dims}")
            dims[dims.index(-1)] = elements // known
        if math.prod(dims) != elements:
            raise _Unavailable(f"{shape} cannot be viewed as {dims}")
        shape = dims
    if tr.truncate_dim is not None:
        size = tr.truncate_size.value(names) if tr.truncate_size else None
        if not isinstance(size, int) or size <= 0:
            raise _Unavailable("truncate size is not a positive integer")
        shape[tr.truncate_dim] = min(shape[tr.truncate_dim], size)
    if tr.split_dim is None:
        pieces = [shape]
    else:
        pieces = _split(tr, shape, names)
    for o, piece in zip(tr.outputs, pieces):
        if o.transpose is not None:
            a, b = o.transpose
            piece[a], piece[b] = piece[b], piece[a]
    return pieces


def _split(tr: Transform, shape: list[int], names: Mapping[str, Any]) -> list[list[int]]:
    dim = tr.split_dim if tr.split_dim >= 0 else len(shape) + tr.split_dim  # type: ignore[operator]
    if not 0 <= dim < len(shape):
        raise _Unavailable(f"no dimension {tr.split_dim} in {shape}")
    total = shape[dim]
    if tr.split_sizes is not None:
        sizes = [s.value(names) for s in tr.split_sizes]
    else:
        n = tr.split_parts or tr.split_interleave or 1
        sizes = [total // n] * n if total % n == 0 else []
    if not sizes or any(not isinstance(s, int) or s <= 0 for s in sizes) or sum(sizes) != total:
        raise _Unavailable(f"dimension {dim} of {shape} does not split into {sizes or 'equal parts'}")
    return [shape[:dim] + [s] + shape[dim + 1:] for s in sizes]


@lru_cache(maxsize=64)
def _gguf_names(model_arch: gguf.MODEL_ARCH, block_count: int) -> frozenset[str]:
    """Every tensor name gguf-py defines for the architecture (with .weight and .bias), for names already GGUF."""
    names = set()
    for key in gguf.MODEL_TENSORS[model_arch]:
        template = gguf.TENSOR_NAMES[key]
        stems = [template.format(bid=b) for b in range(block_count)] if "{bid}" in template else [template]
        for stem in stems:
            names.update((stem + ".weight", stem + ".bias", stem))
    return frozenset(names)


def _check_unique(source: str, tensors: Sequence[TensorInfo]) -> None:
    seen: set[str] = set()
    for t in tensors:
        if t.name in seen:
            raise ConversionError(f"{source}: the converter view writes {t.name!r} twice; the architecture table "
                                  "maps two tensors to one name")
        seen.add(t.name)


def _value_nbytes(value: Any, vtype: gguf.GGUFValueType) -> int:
    t = gguf.GGUFValueType
    fixed = {t.UINT8: 1, t.INT8: 1, t.UINT16: 2, t.INT16: 2, t.UINT32: 4, t.INT32: 4, t.FLOAT32: 4, t.BOOL: 1,
             t.UINT64: 8, t.INT64: 8, t.FLOAT64: 8}
    if vtype in fixed:
        return fixed[vtype]
    if vtype == t.STRING:
        return 8 + len(str(value).encode("utf-8"))
    if vtype == t.ARRAY:
        items = list(value)
        if not items:
            return 4 + 8
        item_type = gguf.GGUFValueType.get_type(items[0])
        return 4 + 8 + sum(_value_nbytes(v, item_type) for v in items)
    raise TypeError(f"cannot size a GGUF value of type {vtype!r}")


def _kv_nbytes(key: str, value: Any, vtype: gguf.GGUFValueType) -> int:
    return 8 + len(key.encode("utf-8")) + 4 + _value_nbytes(value, vtype)


def _array_kv(key: str, items_nbytes: int) -> int:
    return 8 + len(key) + 4 + 4 + 8 + items_nbytes


def _model_name(checkpoint: Checkpoint) -> str:
    config = checkpoint.config or {}
    name = config.get("_name_or_path")
    if isinstance(name, str) and name.strip():
        return name.rstrip("/").rsplit("/", 1)[-1]
    path = Path(checkpoint.source)
    return (path.parent.name if path.suffix else path.name) or "model"


def _size_label(tensors: Sequence[TensorInfo]) -> str:
    """gguf.size_label over the GGUF tensors, counted as GGUFWriter.get_total_parameter_count does."""
    total = shared = expert = expert_sum = n_expert_tensors = 0
    for t in tensors:
        size = math.prod(t.shape) if t.shape else 1
        torch_shape = tuple(reversed(t.shape))
        if "_exps." in t.name and len(torch_shape) >= 3:
            count = torch_shape[-2 if ".bias" in t.name else -3]
            expert += size // count
            expert_sum += count
            n_expert_tensors += 1
        else:
            shared += size
        total += size
    count = expert_sum // n_expert_tensors if n_expert_tensors else 0
    return gguf.size_label(total, shared, expert, count)


def describe_view(view: Checkpoint) -> list[str]:
    """Human-readable lines about a converter view (outtype, header estimate, notes), for reports."""
    md = view.metadata
    lines = [f"converter view of {view.source}: {view.architecture}, outtype {md.get(OUTTYPE_KEY)}, "
             f"{len(view.tensors)} tensors, {view.nbytes:,} bytes of tensor data"]
    if HEADER_ESTIMATE_KEY in md:
        lines.append(f"header: ~{md[HEADER_ESTIMATE_KEY]:,} bytes ({md.get(HEADER_BASIS_KEY)})")
    lines.extend(md.get(NOTES_KEY) or ())
    return lines
