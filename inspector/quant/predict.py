"""Predicting the GGUF `llama-quantize FTYPE` would write: per-tensor types, exact data bytes, the header.

Input: a Checkpoint whose tensors carry GGUF names, GGUF `ne` shapes and ggml type names, and whose metadata
holds the GGUF KVs — a GGUF file (what llama-quantize reads) or the converter's view of a safetensors repo
(`inspector.convert.to_gguf_view`), whose header size is an estimate handed over as `header_estimate=`.

What llama-quantize does with the file (ggml-org/llama.cpp src/llama-quant.cpp `llama_model_quantize_impl`,
007dbbf3; facts only): tensors are visited in the loader's order (`weight_name_comparer`: non-block tensors
first, then by layer, then by name) and written in that order, each padded to 32 bytes (GGUF_DEFAULT_ALIGNMENT);
a tensor is re-encoded only when its chosen type differs from its type in the input; the header copies every
input KV, sets general.quantization_version (u32 2) and general.file_type (u32), drops split.*, adds
quantize.imatrix.* when an imatrix is given, and writes each tensor's info with ggml_n_dims dims.
"""
from __future__ import annotations

import posixpath
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ..errors import UsageError
from ..formats.ggml_types import type_by_name
from ..model import Checkpoint, FileInfo, TensorInfo
from .ftypes import RULE_SETS, FtypeInfo, check_rules, ggml_type, is_quantized_type, resolve_ftype, resolve_type
from .header import (
    ALIGNMENT,
    INTERNAL_PREFIX,
    PREAMBLE,
    metadata_nbytes,
    pad,
    split_keys_nbytes,
    tensor_infos_nbytes,
)
from .overrides import compile_patterns
from .rules import Choice, ModelFacts, QuantizeError, TypeChooser
from .tables import ATTN_V_COUNTED, block_index, ggml_n_dims, loader_sort_key

# Legacy handover of a converter view's header estimate through metadata (before `header_estimate=`); still read
# when no estimate is passed, so checkpoints built that way keep working.
GGML_QNT_VERSION = 2  # ggml.h
GUESSED_FTYPE = 1024  # LLAMA_FTYPE_GUESSED
# What --imatrix adds (quantize.cpp): the file name (≤127 bytes), the dataset name when the imatrix records one,
# the entry count and the chunk count (u32 each). We assume this file name and no dataset: an estimate.
ASSUMED_IMATRIX_KVS: Mapping[str, Any] = {
    "quantize.imatrix.file": "imatrix.gguf",
    "quantize.imatrix.entries_count": 0,
    "quantize.imatrix.chunks_count": 0,
}
MAX_NAMED = 3


@dataclass(frozen=True)
class QuantOptions:
    """What to emulate: `llama-quantize [options] INPUT FTYPE`."""

    ftype: str  # a llama-quantize name or alias (Q4_K_M, Q4_K, IQ4_XS, COPY …)
    rules: str = "current"  # "current" (llama.cpp 2026) or "legacy" (Aug 2025)
    tensor_types: tuple[tuple[str, str], ...] = ()  # --tensor-type / --tensor-type-file (regex, type), CLI order
    output_tensor_type: str | None = None
    token_embedding_type: str | None = None
    pure: bool = False
    imatrix: bool = False  # pretend --imatrix FILE was given
    allow_requantize: bool = True


@dataclass(frozen=True)
class Prediction:
    """The predicted output file.

    `checkpoint` has the input's tensors (role, layer, expert, device kept) with dtype, nbytes, offset and shape
    as the quantized file would hold them, in the file's tensor order, in one file. `header_bytes` is the padded
    header (where the data starts), so `file_size = header_bytes + data_bytes`; `data_bytes` is exact, the header
    is exact when `header_exact`.
    """

    checkpoint: Checkpoint
    source_types: dict[str, str]  # tensor name -> its type in the input
    header_bytes: int
    header_exact: bool
    data_bytes: int  # tensor bytes, each tensor padded to 32
    file_size: int
    notes: tuple[str, ...]
    options: QuantOptions | None = None
    ftype: FtypeInfo | None = None
    choices: Mapping[str, Choice] = field(default_factory=dict)  # tensor name -> how its type was chosen


def predict(checkpoint: Checkpoint, options: QuantOptions, *, header_estimate: int | None = None) -> Prediction:
    """Emulate `llama-quantize` on a GGUF (or the converter's GGUF view of safetensors).

    `header_estimate`: for a converter view (`inspector.convert.ConvertedView`), its `header_estimate` — the
    unpadded bytes of the header convert_hf_to_gguf.py would write; the predicted header is then an estimate.
    For a real GGUF leave it None: the header is computed from the input's KVs and checked against the file.

    Raises:
        UsageError: unknown file type, type name or rule set; invalid --tensor-type regex; an input without GGUF
            names (raw safetensors).
        QuantizeError: llama-quantize itself would stop (a shape with no fallback, requantizing refused, a type
            llama.cpp cannot read, a bad layer index).
    """
    check_rules(options.rules)
    info = resolve_ftype(options.ftype, options.rules)
    patterns = compile_patterns(options.tensor_types)
    output_type = options.output_tensor_type and resolve_type(options.output_tensor_type, "--output-tensor-type")
    embd_type = options.token_embedding_type and resolve_type(options.token_embedding_type, "--token-embedding-type")
    estimate = header_estimate
    if checkpoint.format != "gguf" and estimate is None:
        raise UsageError(f"{checkpoint.source}: predicting a llama.cpp quantization needs GGUF tensor names; "
                         "this is a raw safetensors checkpoint", hint="use the converter view of the repository")

    ordered = sorted(checkpoint.tensors, key=lambda t: loader_sort_key(t.name))
    facts = ModelFacts.from_metadata(checkpoint.metadata, checkpoint.architecture, _fallback_layers(ordered))
    chooser = TypeChooser(
        rules=options.rules,
        ftype=info,
        facts=facts,
        n_attention_wv=sum(any(s in t.name for s in ATTN_V_COUNTED) for t in ordered),
        tied_embeddings=not any(t.name == "output.weight" for t in ordered),
        patterns=patterns,
        output_tensor_type=output_type,
        token_embedding_type=embd_type,
        pure=options.pure,
        imatrix=options.imatrix,
    )
    choices = {t.name: _choose(chooser, t, options) for t in ordered}

    out_metadata = _output_metadata(checkpoint.metadata, info, options.imatrix)
    header_bytes, header_exact, header_note = _header(checkpoint, ordered, out_metadata, estimate, options.imatrix)
    tensors, data_bytes = _place(ordered, choices, header_bytes)
    file_size = header_bytes + data_bytes
    path = posixpath.join(posixpath.dirname(checkpoint.files[0].path) if checkpoint.files else "",
                          f"ggml-model-{info.name}.gguf")
    predicted = checkpoint.with_(
        format="gguf",
        files=(FileInfo(path, file_size, header_bytes, file_size),),
        tensors=tensors,
        metadata=out_metadata,
    )
    notes = _notes(info, options, ordered, choices, data_bytes, header_note, checkpoint.metadata)
    if f"{facts.arch}.block_count" not in checkpoint.metadata:
        notes += (f"{facts.arch}.block_count is missing (llama.cpp requires it); assumed {facts.n_layer_all} "
                  "from the tensor names",)
    return Prediction(
        checkpoint=predicted,
        source_types={t.name: t.dtype for t in ordered},
        header_bytes=header_bytes,
        header_exact=header_exact,
        data_bytes=data_bytes,
        file_size=file_size,
        notes=notes,
        options=options,
        ftype=info,
        choices=choices,
    )


def predict_many(checkpoint: Checkpoint, options: QuantOptions, ftypes: tuple[str, ...], *,
                 header_estimate: int | None = None) -> dict[str, Prediction]:
    """One prediction per file type with otherwise equal options (for --quant-list); skips none, raises on errors."""
    return {name: predict(checkpoint, _with_ftype(options, name), header_estimate=header_estimate)
            for name in ftypes}


def _with_ftype(options: QuantOptions, name: str) -> QuantOptions:
    return replace(options, ftype=name)


def _fallback_layers(tensors: list[TensorInfo]) -> int:
    layers = [block_index(t.name) for t in tensors]
    return max((n for n in layers if n is not None), default=-1) + 1


def _choose(chooser: TypeChooser, tensor: TensorInfo, options: QuantOptions) -> Choice:
    current = tensor.dtype.upper()
    gtype = type_by_name(current)
    if gtype is None or gtype.origin != "ggml":
        raise QuantizeError(f"tensor {tensor.name!r} has type {tensor.dtype}, which mainline llama.cpp cannot read; "
                            "llama-quantize would not load this file")
    choice = chooser.choose(tensor.name, tensor.shape, current)
    target = choice.target
    if target == current:
        return choice
    if is_quantized_type(current) and not options.allow_requantize:
        raise QuantizeError(f"tensor {tensor.name!r} is already {current}; llama-quantize refuses to requantize it "
                            f"to {target}", hint="pass --allow-requantize, as llama-quantize needs")
    if current not in ("F32", "F16", "BF16") and not is_quantized_type(current):
        raise QuantizeError(f"llama-quantize cannot convert tensor {tensor.name!r} from {current} to {target}")
    ne0 = tensor.shape[0] if tensor.shape else 1
    if ne0 % ggml_type(target).block_size:
        raise QuantizeError(f"llama-quantize would stop at tensor {tensor.name!r}: its row length {ne0} is not a "
                            f"multiple of {target}'s block size {ggml_type(target).block_size}",
                            hint="pick a type whose block divides the row length")
    return choice


def _place(
    ordered: list[TensorInfo], choices: Mapping[str, Choice], header_bytes: int
) -> tuple[tuple[TensorInfo, ...], int]:
    out: list[TensorInfo] = []
    offset = header_bytes
    for t in ordered:
        target = choices[t.name].target
        shape = (tuple(t.shape) + (1,))[:ggml_n_dims(t.shape)]  # as the C writer stores it
        nbytes = t.nbytes if target == t.dtype.upper() else _nbytes(target, t.shape)
        # TensorInfo's own fields, spelled out: dataclasses.replace costs ~10x more on 16k-tensor models
        out.append(TensorInfo(t.name, shape, target, nbytes, offset, 0, t.params, t.role, t.layer, t.expert, t.device))
        offset += pad(nbytes)
    return tuple(out), offset - header_bytes


def _nbytes(type_name: str, ne: tuple[int, ...]) -> int:
    """ggml_nbytes of a contiguous tensor: rows × row size (ne0 is a multiple of the block, checked before)."""
    gtype = ggml_type(type_name)
    rows = 1
    for n in ne[1:]:
        rows *= n
    return rows * (gtype.row_meta_size + (ne[0] if ne else 1) // gtype.block_size * gtype.type_size)


def _output_metadata(metadata: Mapping[str, Any], info: FtypeInfo, imatrix: bool) -> dict[str, Any]:
    """The KVs llama-quantize writes: the input's, split.* dropped, version and file type re-set at the end."""
    out = {k: v for k, v in metadata.items() if not k.startswith("split.")}
    file_type = info.ftype if info.ftype is not None else metadata.get("general.file_type", GUESSED_FTYPE)
    for key, value in (("general.quantization_version", GGML_QNT_VERSION), ("general.file_type", file_type)):
        out.pop(key, None)  # gguf_set_val_* removes and re-appends
        out[key] = value
    if imatrix:
        out.update(ASSUMED_IMATRIX_KVS)
    return out


def _file_kvs(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if not k.startswith(INTERNAL_PREFIX)}


def _header(
    checkpoint: Checkpoint,
    ordered: list[TensorInfo],
    out_metadata: Mapping[str, Any],
    estimate: Any,
    imatrix: bool,
) -> tuple[int, bool, str]:
    """(padded header bytes, exact?, a note saying how it was found)."""
    in_kvs = _file_kvs(checkpoint.metadata)
    out_kvs = _file_kvs(out_metadata)
    # What llama-quantize changes: KVs set/added/dropped, and tensor infos written with ggml_n_dims dims
    # (8 bytes less per dropped trailing 1).
    infos_in = tensor_infos_nbytes((t.name, len(t.shape)) for t in ordered)
    infos_out = infos_in - 8 * sum(len(t.shape) - ggml_n_dims(t.shape) for t in ordered)
    delta = metadata_nbytes(out_kvs) - metadata_nbytes(in_kvs) + infos_out - infos_in
    imatrix_note = " (the imatrix KVs are assumed: file name 'imatrix.gguf', no dataset)" if imatrix else ""
    if estimate is not None:
        meta = int(estimate) + delta
        return pad(meta), False, (f"header: estimated, {pad(meta):,} bytes — rebuilt from config and tokenizer "
                                  f"files as convert_hf_to_gguf.py would write it{imatrix_note}")
    meta_in = PREAMBLE + metadata_nbytes(in_kvs) + (
        infos_in if len(checkpoint.files) == 1 else _first_file_infos(checkpoint))
    actual = checkpoint.files[0].header_bytes if checkpoint.files else None
    alignment = _alignment(checkpoint.metadata)
    if len(checkpoint.files) > 1:
        meta_in += split_keys_nbytes()
    candidates = [meta_in] if len(checkpoint.files) > 1 else [meta_in, meta_in + split_keys_nbytes()]
    match = next((m for m in candidates if actual is None or pad(m, alignment) == actual), None)
    if match is not None:
        meta = PREAMBLE + metadata_nbytes(out_kvs) + infos_out
        exact = not imatrix
        how = "exact" if exact else "exact but for the imatrix KVs"
        return pad(meta), exact, (f"header: {how}, {pad(meta):,} bytes — the input GGUF header with "
                                  f"llama-quantize's edits{imatrix_note}")
    # Our KV widths disagree with the file: start from the file's own header size instead.
    meta = int(actual) + delta
    return pad(meta), False, (f"header: estimated, {pad(meta):,} bytes — the input's KV value types could not be "
                              f"reproduced (computed {pad(meta_in, alignment):,}, file has {actual:,}); "
                              f"within 32 bytes{imatrix_note}")


def _first_file_infos(checkpoint: Checkpoint) -> int:
    """Tensor infos as stored in the first input file (their own n_dims)."""
    return tensor_infos_nbytes((t.name, len(t.shape)) for t in checkpoint.tensors if t.file_index == 0)


def _alignment(metadata: Mapping[str, Any]) -> int:
    value = metadata.get("general.alignment", ALIGNMENT)
    return value if isinstance(value, int) and value > 0 else ALIGNMENT


def _named(items: list[str]) -> str:
    more = f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else ""
    return ", ".join(items[:MAX_NAMED]) + more


def _notes(
    info: FtypeInfo,
    options: QuantOptions,
    ordered: list[TensorInfo],
    choices: Mapping[str, Choice],
    data_bytes: int,
    header_note: str,
    metadata: Mapping[str, Any],
) -> tuple[str, ...]:
    notes = [
        f"predicted llama-quantize {info.name} with the {options.rules} rules ({RULE_SETS[options.rules]})",
        f"tensor data: exact, {data_bytes:,} bytes in {len(ordered)} tensors (each padded to 32 bytes)",
        header_note,
    ]
    fallbacks = [f"{t.name} {c.fallback_from}->{c.target} (row length {t.shape[0]})"
                 for t in ordered if (c := choices[t.name]).fallback_from]
    if fallbacks:
        notes.append(f"{len(fallbacks)} tensors use a fallback type because their row length is not a multiple of "
                     f"the block size: {_named(fallbacks)}")
    needs = [f"{t.name} ({c.target})" for t in ordered if (c := choices[t.name]).needs_imatrix]
    if needs and not options.imatrix:
        notes.append(f"llama-quantize writes this file only with an imatrix: {len(needs)} tensors need one, e.g. "
                     f"{_named(needs)}; these are the types of its --dry-run (with --imatrix some choices change)")
    requant = Counter(f"{t.dtype.upper()}->{choices[t.name].target}" for t in ordered
                      if is_quantized_type(t.dtype) and choices[t.name].target != t.dtype.upper())
    if requant:
        notes.append(f"{sum(requant.values())} already-quantized tensors are requantized (--allow-requantize): "
                     + ", ".join(f"{n}× {k}" for k, n in requant.most_common()))
    manual = sum(c.manual for c in choices.values())
    if manual:
        notes.append(f"{manual} tensors take their type from --tensor-type/--output-tensor-type/--token-embedding-type")
    if _alignment(metadata) != ALIGNMENT:
        notes.append(f"the input's general.alignment is {_alignment(metadata)}; llama-quantize copies that key but "
                     "pads with 32, as predicted here (an edge case flagged, not modelled further)")
    return tuple(notes)
