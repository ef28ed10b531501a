"""The conversion engine: HF safetensors names, shapes and dtypes -> the GGUF tensors convert_hf_to_gguf.py writes.

`to_gguf_view(checkpoint)` runs the converter's pipeline on header facts only (ModelBase / TextModel in
convert_hf_to_gguf.py and conversion/base.py): `filter_tensors` (multimodal towers out, common renames),
`--outtype auto`, `dequant_model` (scales folded into their weights), the class's `modify_tensors` (drops,
renames, transforms, expert stacking; the facts come from rules/hf_architectures.yaml), `generate_extra_tensors`,
gguf-py's `TensorNameMap`, and `prepare_tensors`' type choice (F32 for 1-D tensors, norms, the `f32_tensors` list
and non-.weight names; the outtype elsewhere). The KVs come from `kv.py`, the header estimate from `header.py`.
"""
from __future__ import annotations

import math
import re
from collections import ChainMap
from typing import Any, Iterable, Mapping

import gguf

from ..formats.ggml_types import tensor_nbytes, type_by_name
from ..model import Checkpoint, TensorInfo
from ..roles import assign_roles, unmatched_warning
from .expr import Expr, Unavailable
from .header import general_kvs, header_estimate
from .kv import GGML_QUANT_VERSION, MAX_NAMED, kv_names, layer_count, namespace, skipped_warning, write_kvs
from .steps import ExpertBuffer, Log, Pending, check_unique, gguf_names, guess_outtype, rename, reshape
from .table import TABLE_FILE, ArchSpec, ArchTable, ConversionError, NameRule, config_hparams, load_table, \
    supported_architectures
from .view import ConvertedView


def to_gguf_view(checkpoint: Checkpoint, *, table: ArchTable | None = None) -> ConvertedView:
    """The GGUF `convert_hf_to_gguf.py --outtype auto` would write for this safetensors checkpoint.

    The view's checkpoint has GGUF names and `ne` shapes, converter types (F32/F16/BF16, MXFP4 kept for gpt-oss
    experts), exact bytes, roles assigned again from the GGUF names, and as metadata the KVs the converter writes
    from config.json. Tensors with one source keep its `file_index` and `offset` (where their data starts in the
    safetensors files); split, stacked, reshaped and generated tensors have `file_index` 0 and `offset` -1. The
    header estimate, outtype, converter and notes are fields of the ConvertedView.

    Raises:
        ConversionError: a GGUF input (it needs no conversion), no config.json, an architecture the table does not
            cover (or covers for its KVs only), or a quantization method the converter cannot dequantize.
    """
    if checkpoint.format == "gguf":
        raise ConversionError(f"{checkpoint.source} is a GGUF already; the converter view is for safetensors")
    table = table or load_table()
    config = dict(checkpoint.config or {})
    if not config:
        raise ConversionError(f"{checkpoint.source}: no config.json, so the converter view cannot be built",
                              hint="put config.json next to the safetensors files")
    spec = table.find(config)
    covered = ", ".join(sorted(supported_architectures(table)))
    if spec is None:
        raise ConversionError(f"{checkpoint.source}: architecture {table.hf_name(config)!r} is not in "
                              f"rules/{TABLE_FILE}; no conversion is guessed"
                              f"{_unmappable(checkpoint, table, str(config.get('model_type') or ''))}",
                              hint=f"covered: {covered}")
    if spec.kv_only:
        raise ConversionError(
            f"{checkpoint.source}: rules/{TABLE_FILE} describes only the hyperparameter KVs of "
            f"{table.hf_name(config)!r} ({spec.converter_class}), not its tensor steps"
            f"{_unmappable(checkpoint, table, spec.gguf_arch)}", hint=f"covered: {covered}")
    return Converter(checkpoint, table, spec, config).run()


def _unmappable(checkpoint: Checkpoint, table: ArchTable, arch: str) -> str:
    """`; gguf-py's tensor map for ARCH cannot name: TEMPLATES…` — what the missing tensor steps would have to
    handle (names with their digit runs as {N}), when gguf-py knows an architecture of that name."""
    model_arch = next((a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch.replace("_", "-") or n == arch),
                      None)
    if model_arch is None:
        return f"; gguf-py has no architecture {arch!r} to name its tensors" if arch else ""
    blocks = max((int(m.group(1)) for t in checkpoint.tensors if (m := re.search(r"layers\.(\d+)\.", t.name))),
                 default=-1) + 1
    tensor_map = gguf.get_tensor_name_map(model_arch, max(blocks, 1))
    templates: dict[str, int] = {}
    for t in checkpoint.tensors:
        name = rename(table.renames, t.name)
        if name.endswith(table.skip_suffixes) or tensor_map.get_name(name, try_suffixes=(".weight", ".bias")):
            continue
        template = re.sub(r"\d+", "{N}", name)
        templates[template] = templates.get(template, 0) + 1
    if not templates:
        return f"; gguf-py's tensor map for {arch} names every tensor, but the class's transforms are not described"
    shown = ", ".join(f"{k} ({n})" for k, n in list(templates.items())[:MAX_NAMED])
    more = f" and {len(templates) - MAX_NAMED} more" if len(templates) > MAX_NAMED else ""
    return f"; gguf-py's tensor map for {arch} cannot name {sum(templates.values())} tensors: {shown}{more}"


class Converter:
    """One conversion: the pipeline of ModelBase.prepare_tensors over a checkpoint's header facts."""

    def __init__(self, checkpoint: Checkpoint, table: ArchTable, spec: ArchSpec, config: dict[str, Any]) -> None:
        assert spec.model_arch is not None, spec.id  # the schema requires it of entries with tensor steps
        self.ckpt = checkpoint
        self.table = table
        self.spec = spec
        self.hparams = config_hparams(config)
        self.block_count = layer_count(self.hparams, table, checkpoint.source)
        if spec.block_count is not None:  # the class's own count (NextN/MTP blocks appended), for its tensor map
            self.block_count = kv_names(spec, self.hparams, self.block_count, checkpoint.source, None)["block_count"]
        self.names = namespace(self.hparams, self.block_count)
        self.tensor_map = gguf.get_tensor_name_map(spec.model_arch, self.block_count)
        self.gguf_names = gguf_names(spec.model_arch, self.block_count)
        self.log = Log()
        self.unmapped: list[str] = []
        self._when_cache: dict[tuple[int, tuple[Any, ...]], bool] = {}
        qconfig = self.hparams.get("quantization_config")
        self.quant_method = str(qconfig.get("quant_method", "")).lower() if isinstance(qconfig, dict) else ""

    # -- the pipeline -----------------------------------------------------------------------------
    def run(self) -> ConvertedView:
        tensors = self._filter(self.ckpt.tensors)
        outtype = guess_outtype(tensors)
        tensors = self._dequantize(tensors)
        pending = self._extras() + self._modify(tensors)
        out = tuple(self._finish(p, outtype) for p in pending)
        check_unique(self.ckpt.source, out)
        self._warn_unmapped()
        file_type = self._file_type(outtype)
        kvs, skipped = write_kvs(self.spec.gguf_arch, self.spec.kv, kv_names(
            self.spec, self.hparams, self.block_count, self.ckpt.source, file_type))
        if skipped:
            self.log.warnings.append(skipped_warning(skipped))
        kvs.update(general_kvs(self.ckpt, out))
        for assumption in self.spec.assumptions:
            if assumption.when.holds(self.names):
                self.log.warnings.append(f"converter view: {assumption.warning}")
        self.log.finish()
        estimate, basis = header_estimate(self.table, self.spec, self.names, out, kvs)
        metadata: dict[str, Any] = {key: value for key, (value, _type) in kvs.items()}
        metadata["general.quantization_version"] = GGML_QUANT_VERSION
        stale = set(unmatched_warning(self.ckpt.tensors))  # about HF names; roles are assigned again below
        kept = tuple(w for w in self.ckpt.warnings if w not in stale)
        view = self.ckpt.with_(format="gguf", architecture=self.spec.gguf_arch, tensors=out, metadata=metadata,
                               warnings=kept + tuple(self.log.warnings))
        return ConvertedView(checkpoint=assign_roles(view), header_estimate=estimate, header_basis=basis,
                             outtype=outtype, converter=f"{self.spec.converter_class} ({self.table.converter})",
                             notes=tuple(self.log.notes), source_format=self.ckpt.format)

    def _warn_unmapped(self) -> None:
        if not self.unmapped:
            return
        shown = ", ".join(repr(n) for n in self.unmapped[:MAX_NAMED])
        more = f" and {len(self.unmapped) - MAX_NAMED} more" if len(self.unmapped) > MAX_NAMED else ""
        self.log.warnings.append(
            f"converter view: {len(self.unmapped)} tensors have no GGUF name in gguf-py's tensor map for "
            f"{self.spec.gguf_arch} ({shown}{more}); convert_hf_to_gguf.py would stop with 'Can not map "
            "tensor'. They are kept under their HF names, converted to the outtype")

    def _filter(self, tensors: Iterable[TensorInfo]) -> list[TensorInfo]:
        """TextModel/ModelBase.filter_tensors: multimodal towers out, common renames."""
        contains = re.compile("|".join(re.escape(s) for s in self.table.multimodal_contains) or "(?!)")
        out = []
        for t in tensors:
            if t.name.startswith(self.table.multimodal_prefixes) or contains.search(t.name):
                self.log.drop("vision/audio tower and projector tensors (they go to a separate mmproj GGUF)", t,
                              material=True)
                continue
            name = rename(self.table.renames, t.name)
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

    def _extras(self) -> list[Pending]:
        """generate_extra_tensors: rope_freqs, rope_factors_* (always F32, 1-D)."""
        out = []
        for extra in self.spec.extras:
            if not extra.when.holds(self.names):
                continue
            shape = tuple(d.get(self.names) for d in extra.shape)
            if any(not isinstance(d, int) or d <= 0 for d in shape):
                self.log.warnings.append(f"converter view: cannot size generated tensor {extra.name!r} from config")
                continue
            out.append(Pending(extra.name, shape, "F32", (), synthesized=True))
        return out

    def _modify(self, tensors: list[TensorInfo]) -> list[Pending]:
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
            kept.append((t, rename(self.spec.renames, t.name, self.names)))
        by_name = {name: t for t, name in kept}
        consumed = self._mxfp4_scales(name for _t, name in kept)
        experts = ExpertBuffer(self)
        out: list[Pending] = []
        for t, name in kept:
            if name in consumed:
                continue
            item = Pending(name, tuple(t.shape), t.dtype, (t,))
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

    def _transform(self, item: Pending, by_name: Mapping[str, TensorInfo]) -> list[Pending] | None:
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
                pieces = reshape(tr, shape, names)
            except Unavailable as e:
                return self._cannot(item, str(e))
            return [Pending(o.name.format(**groups), tuple(s), item.dtype, sources, raw_type,
                             synthesized=len(pieces) > 1 or tr.view is not None or tr.truncate_dim is not None
                             or tr.pad_dim is not None
                             or len(sources) > 1)
                    for o, s in zip(tr.outputs, pieces)]
        return None

    def _cannot(self, item: Pending, why: str) -> list[Pending]:
        self.log.warnings.append(f"converter view: cannot transform {item.name!r} as the converter does ({why}); "
                                 "kept as it is")
        return [item]

    def _finish(self, p: Pending, outtype: str) -> TensorInfo:
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
