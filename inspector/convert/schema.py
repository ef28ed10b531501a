"""Parsing and validating `rules/hf_architectures.yaml` into the data model of `table.py`.

Everything is checked at load, so a bad table fails once with a `RulesError` naming the file and the place:
unknown keys, gguf-py writer methods, enums, MODEL_TENSOR or architecture names that gguf-py does not have, bad
regexes or expressions, a split whose output count is wrong, an HF architecture claimed twice without a `when`
telling the claims apart. The schema is documented in docs/quantization.md ("The architecture table").
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import gguf
import yaml

from ..errors import RulesError
from .expr import Expr
from .table import (
    ArchSpec,
    ArchTable,
    Assumption,
    Dequant,
    ExpertRule,
    Extra,
    KvCall,
    NameRule,
    Output,
    TokenizerFamily,
    TokenizerSpec,
    Transform,
)


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
                "f32_tensors", "quantizable_suffixes", "dequantize", "generic_kv"}
_ARCH_KEYS = {"id", "converter_class", "gguf_arch", "hf_architectures", "model_types", "drops", "renames",
              "transforms", "experts", "extras", "kv_hparams", "kv", "tokenizer", "assumptions", "keep_quantized",
              "kv_only", "when", "block_count"}
_TENSOR_KEYS = ("drops", "renames", "transforms", "experts", "extras", "assumptions", "keep_quantized")
_TRANSFORM_KEYS = {"match", "when", "mxfp4_blocks", "transpose", "view", "split", "truncate", "pad", "outputs"}


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
    common = r.mapping(top["common"], "common", _COMMON_KEYS, sorted(_COMMON_KEYS - {"generic_kv"}))
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
    generic = common.get("generic_kv")
    if generic is not None and generic not in kv_sets:
        raise r.fail("common.generic_kv", f"unknown KV set {generic!r}")
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
        generic_kv=kv_sets[generic] if generic is not None else (),
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


_TO_EXPR = re.compile(r"\{=(.*?)\}")


def _read_rename(r: _Reader, raw: Any, where: str) -> NameRule:
    """A regex substitution; `{=EXPR}` in `to` is an expression over the config and the match's named groups
    (Qwen's `mtp.layers.{i}` becomes `model.layers.{num_hidden_layers + i}`)."""
    spec = r.mapping(raw, where, {"match", "to"}, ["match", "to"])
    if not isinstance(spec["to"], str):
        raise r.fail(where, "'to' must be a string")
    exprs: list[Any] = []

    def placeholder(m: re.Match[str]) -> str:
        exprs.append(r.expr(m.group(1), f"{where}.to"))
        return f"{{E{len(exprs) - 1}}}"

    to = _TO_EXPR.sub(placeholder, spec["to"])
    return NameRule(r.regex(spec["match"], f"{where}.match"), to=to, exprs=tuple(exprs))


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
    if spec.get("pad") is not None:  # rows added up to `size` (Gemma 3n pads its embeddings to the full vocabulary)
        pad = r.mapping(spec["pad"], f"{where}.pad", {"dim", "size"}, ["dim", "size"])
        t["pad_dim"] = int(pad["dim"])
        t["pad_size"] = r.expr(pad["size"], f"{where}.pad.size")
    return Transform(**t)


def _read_arch(r: _Reader, raw: Any, index: int, kv_sets: Mapping[str, tuple[KvCall, ...]]) -> ArchSpec:
    where = f"architectures[{index}]"
    spec = r.mapping(raw, where, _ARCH_KEYS, ["id", "gguf_arch", "hf_architectures", "kv"])
    where = f"architectures[{index}] ({spec['id']})"
    kv_only = bool(spec.get("kv_only", False))
    model_arch = _model_arch(r, spec, where, kv_only)
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
        experts=_read_experts(r, spec.get("experts"), f"{where}.experts"),
        extras=tuple(_read_extra(r, x, f"{where}.extras[{i}]") for i, x in enumerate(spec.get("extras") or [])),
        kv_hparams=tuple((k, r.expr(v, f"{where}.kv_hparams.{k}")) for k, v in kv_hparams.items()),
        kv=_read_kv_list(r, spec["kv"], f"{where}.kv", kv_sets),
        tokenizer=_read_tokenizer(r, spec.get("tokenizer"), f"{where}.tokenizer", kv_only),
        assumptions=tuple(_read_assumption(r, x, f"{where}.assumptions[{i}]")
                          for i, x in enumerate(spec.get("assumptions") or [])),
        keep_quantized=spec.get("keep_quantized"),
        kv_only=kv_only,
        when=r.opt_expr(spec.get("when"), f"{where}.when"),
        block_count=r.opt_expr(spec.get("block_count"), f"{where}.block_count"),
    )


def _model_arch(r: _Reader, spec: Mapping[str, Any], where: str, kv_only: bool) -> gguf.MODEL_ARCH | None:
    """gguf-py's MODEL_ARCH (its tensor map names the tensors). A kv_only entry needs no tensor map, so it may
    name an architecture the installed gguf-py does not know yet (the KVs are then written under that name)."""
    name = spec["gguf_arch"]
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_.-]+", name):
        raise r.fail(where, f"gguf_arch {name!r} is not an architecture name")
    model_arch = next((a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == name), None)
    if kv_only:
        present = [k for k in _TENSOR_KEYS if spec.get(k)]
        if present:
            raise r.fail(where, f"a kv_only entry describes no tensor steps, but has {', '.join(present)}")
        return model_arch
    if model_arch is None:
        raise r.fail(where, f"gguf-py knows no architecture {name!r}")
    if spec.get("tokenizer") is None:
        raise r.fail(where, "missing key(s): tokenizer")
    return model_arch


def _read_kv_list(r: _Reader, raw: Any, where: str, kv_sets: Mapping[str, tuple[KvCall, ...]]) -> tuple[KvCall, ...]:
    kv: list[KvCall] = []
    for name in r.strings(raw, where):
        if name not in kv_sets:
            raise r.fail(where, f"unknown KV set {name!r}")
        kv.extend(kv_sets[name])
    return tuple(kv)


def _read_experts(r: _Reader, raw: Any, where: str) -> ExpertRule | None:
    if raw is None:
        return None
    e = r.mapping(raw, where, {"match", "count", "order", "merged"}, ["match", "count", "order", "merged"])
    pattern = r.regex(e["match"], f"{where}.match")
    if not {"bid", "xid", "w"} <= set(pattern.groupindex):
        raise r.fail(f"{where}.match", "needs the named groups bid, xid and w")
    return ExpertRule(pattern, r.expr(e["count"], f"{where}.count"), r.strings(e["order"], f"{where}.order"),
                      str(e["merged"]))


def _read_extra(r: _Reader, raw: Any, where: str) -> Extra:
    x = r.mapping(raw, where, {"name", "when", "shape"}, ["name", "when", "shape"])
    return Extra(str(x["name"]), r.expr(x["when"], f"{where}.when"),
                 tuple(r.expr(d, f"{where}.shape") for d in x["shape"]))


def _read_tokenizer(r: _Reader, raw: Any, where: str, kv_only: bool) -> TokenizerSpec | None:
    if raw is None and kv_only:
        return None
    tok = r.mapping(raw, where, {"family", "pre", "tokens", "merges", "avg_token_bytes", "chat_template_bytes"},
                    ["family", "pre"])
    return TokenizerSpec(*(r.opt_expr(tok.get(k), f"{where}.{k}")
                           for k in ("family", "pre", "tokens", "merges", "avg_token_bytes", "chat_template_bytes")))


def _read_assumption(r: _Reader, raw: Any, where: str) -> Assumption:
    a = r.mapping(raw, where, {"when", "warning"}, ["when", "warning"])
    return Assumption(r.expr(a["when"], f"{where}.when"), str(a["warning"]))


def _check_claims(r: _Reader, archs: tuple[ArchSpec, ...]) -> None:
    """An HF architecture or model_type belongs to one entry, unless every earlier claimant has a `when` (the
    first entry whose `when` holds wins, as ArchTable.find reads them)."""
    seen: dict[str, ArchSpec] = {}
    for spec in archs:
        for name in spec.hf_architectures + tuple(f"model_type:{m}" for m in spec.model_types):
            earlier = seen.get(name)
            if earlier is not None and earlier.when is None:
                raise r.fail(f"architectures ({spec.id})", f"{name!r} is already claimed by {earlier.id!r}")
            seen[name] = spec
    ids = [s.id for s in archs]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup:
        raise r.fail("architectures", f"duplicate id {dup!r}")

