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
from ..options import QuantOptions  # kept in a light module: every command builds one
from .ftypes import FtypeInfo, ggml_type, is_quantized_type, resolve_ftype, resolve_type
from .header import (
    ALIGNMENT,
    INTERNAL_PREFIX,
    PREAMBLE,
    metadata_nbytes,
    pad,
    split_keys_nbytes,
    tensor_infos_nbytes,
)
from .layout import apply_overrides, prune_renames, split_path
from .overrides import compile_patterns
from .rules import Choice, ModelFacts, QuantizeError, TypeChooser
from .rules_ik import IkTypeChooser, ik_model_type, ik_type, ik_vocab_size, resolve_ik_type
from .rulesets import RuleSet, resolve_rules
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
    rule_set = resolve_rules(options.rules)
    info = resolve_ftype(options.ftype, rule_set)
    if rule_set.ik and options.prune_layers:
        raise UsageError("ik_llama.cpp's llama-quantize has no --prune-layers", hint="use a llama.cpp rule set")
    type_of = resolve_ik_type if rule_set.ik else resolve_type
    patterns = compile_patterns(options.tensor_types, type_of)
    output_type = options.output_tensor_type and type_of(options.output_tensor_type, "--output-tensor-type")
    embd_type = options.token_embedding_type and type_of(options.token_embedding_type, "--token-embedding-type")
    estimate = header_estimate
    if checkpoint.format != "gguf" and estimate is None:
        raise UsageError(f"{checkpoint.source}: predicting a llama.cpp quantization needs GGUF tensor names; "
                         "this is a raw safetensors checkpoint", hint="use the converter view of the repository")

    # ik_llama.cpp's loader keeps the file order; llama.cpp's sorts (weight_name_comparer)
    loader_order = (list(checkpoint.tensors) if rule_set.ik
                    else sorted(checkpoint.tensors, key=lambda t: loader_sort_key(t.name)))
    # the loader applies --override-kv to the hyperparameters the rules read
    loaded = apply_overrides(checkpoint.metadata, options.override_kv)
    facts = ModelFacts.from_metadata(loaded, checkpoint.architecture, _fallback_layers(loader_order))
    kept, renamed, block_count = _pruned(loader_order, options.prune_layers)
    single_file = checkpoint.format != "gguf" or len(checkpoint.files) <= 1
    if options.keep_split and not single_file:  # visited and written by (input split, offset)
        kept = sorted(kept, key=lambda t: (t.file_index, t.offset))
    chooser = _chooser(rule_set, info, facts, loaded, kept, renamed, patterns, output_type, embd_type, options)
    choices = {renamed[t.name]: _choose(chooser, t, options, renamed[t.name]) for t in kept}

    out_metadata = _output_metadata(checkpoint.metadata, info, options, facts.arch, block_count)
    shard_of = [t.file_index if options.keep_split and not single_file else 0 for t in kept]
    n_split = max(shard_of, default=0) + 1
    headers, header_exact, header_note = _headers(checkpoint, loader_order, kept, renamed, shard_of, n_split,
                                                  out_metadata, estimate, options.imatrix)
    tensors, shard_data = _place(kept, renamed, choices, headers, shard_of)
    data_bytes = sum(shard_data)
    header_bytes = sum(headers)
    file_size = header_bytes + data_bytes
    folder = posixpath.dirname(checkpoint.files[0].path) if checkpoint.files else ""
    prefix = posixpath.join(folder, f"ggml-model-{info.name}")
    if options.keep_split:  # llama_split_path names every split, a single one too
        paths = [split_path(prefix, i, n_split) for i in range(n_split)]
    else:
        paths = [prefix + ".gguf"]
    files = tuple(FileInfo(p, h + d, h, h + d) for p, h, d in zip(paths, headers, shard_data))
    predicted = checkpoint.with_(format="gguf", files=files, tensors=tensors, metadata=out_metadata)
    notes = _notes(info, options, rule_set, kept, renamed, choices, data_bytes, header_note, checkpoint.metadata)
    notes += _layout_notes(options, loader_order, kept, block_count, files, single_file, checkpoint)
    if f"{facts.arch}.block_count" not in loaded:
        notes += (f"{facts.arch}.block_count is missing (llama.cpp requires it); assumed {facts.n_layer_all} "
                  "from the tensor names",)
    return Prediction(
        checkpoint=predicted,
        source_types={renamed[t.name]: t.dtype for t in kept},
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


def _chooser(rule_set: RuleSet, info: FtypeInfo, facts: ModelFacts, loaded: Mapping[str, Any],
             kept: list[TensorInfo], renamed: Mapping[str, str], patterns: list[Any], output_type: str | None,
             embd_type: str | None, options: QuantOptions) -> TypeChooser | IkTypeChooser:
    """llama.cpp's chooser, or ik_llama.cpp's (rules_ik.py) for the ik_llama rule set."""
    names = [renamed[t.name] for t in kept]
    if rule_set.ik:  # ik counts attn_v and attn_qkv; has_output is "output.weight" present
        return IkTypeChooser(
            ftype=info, facts=facts, model_type=ik_model_type(facts.arch, loaded, facts),
            n_vocab=ik_vocab_size(facts.arch, loaded),
            n_attention_wv=sum(("attn_v.weight" in n or "attn_qkv.weight" in n) for n in names),
            has_output="output.weight" in names, patterns=patterns, output_tensor_type=output_type,
            token_embedding_type=embd_type, pure=options.pure, imatrix=options.imatrix,
            leave_output=options.leave_output_tensor)
    return TypeChooser(
        rules=rule_set,
        ftype=info,
        facts=facts,
        n_attention_wv=sum(any(s in n for s in ATTN_V_COUNTED) for n in names),
        tied_embeddings="output.weight" not in names,
        patterns=patterns,
        output_tensor_type=output_type,
        token_embedding_type=embd_type,
        pure=options.pure,
        imatrix=options.imatrix,
        leave_output=options.leave_output_tensor,
    )


def _fallback_layers(tensors: list[TensorInfo]) -> int:
    layers = [block_index(t.name) for t in tensors]
    return max((n for n in layers if n is not None), default=-1) + 1


def _pruned(loader_order: list[TensorInfo], prune: tuple[int, ...]
            ) -> tuple[list[TensorInfo], dict[str, str], int]:
    """(tensors kept, in loader order; input name -> output name; block count written, -1 when not pruned)."""
    renames, block_count = prune_renames([t.name for t in loader_order], prune)
    kept = [t for t in loader_order if renames[t.name] is not None]
    return kept, {t.name: renames[t.name] for t in kept}, block_count  # type: ignore[misc]


def _choose(chooser: TypeChooser | IkTypeChooser, tensor: TensorInfo, options: QuantOptions, name: str) -> Choice:
    current = tensor.dtype.upper()
    gtype = type_by_name(current)
    ik = isinstance(chooser, IkTypeChooser)
    if gtype is None or (gtype.origin != "ggml" and not ik):
        raise QuantizeError(f"tensor {tensor.name!r} has type {tensor.dtype}, which mainline llama.cpp cannot read; "
                            "llama-quantize would not load this file")
    choice = chooser.choose(name, tensor.shape, current)
    target = choice.target
    if target == current:
        return choice
    if is_quantized_type(current) and not options.allow_requantize:
        raise QuantizeError(f"tensor {name!r} is already {current}; llama-quantize refuses to requantize it "
                            f"to {target}", hint="pass --allow-requantize, as llama-quantize needs")
    if current not in ("F32", "F16", "BF16") and not is_quantized_type(current):
        raise QuantizeError(f"llama-quantize cannot convert tensor {name!r} from {current} to {target}")
    ne0 = tensor.shape[0] if tensor.shape else 1
    block = _gtype(target).block_size
    if ne0 % block:
        raise QuantizeError(f"llama-quantize would stop at tensor {name!r}: its row length {ne0} is not a "
                            f"multiple of {target}'s block size {block}",
                            hint="pick a type whose block divides the row length")
    return choice


def _place(kept: list[TensorInfo], renamed: Mapping[str, str], choices: Mapping[str, Choice],
           headers: list[int], shard_of: list[int]) -> tuple[tuple[TensorInfo, ...], list[int]]:
    """The output tensors, each at its offset in its split, and each split's data bytes (tensors padded to 32)."""
    out: list[TensorInfo] = []
    offsets = list(headers)
    for t, shard in zip(kept, shard_of):
        name = renamed[t.name]
        target = choices[name].target
        shape = (tuple(t.shape) + (1,))[:ggml_n_dims(t.shape)]  # as the C writer stores it
        nbytes = t.nbytes if target == t.dtype.upper() else _nbytes(target, t.shape)
        layer = block_index(name) if name != t.name else t.layer
        # TensorInfo's own fields, spelled out: dataclasses.replace costs ~10x more on 16k-tensor models
        out.append(TensorInfo(name, shape, target, nbytes, offsets[shard], shard, t.params, t.role, layer, t.expert,
                              t.device))
        offsets[shard] += pad(nbytes)
    return tuple(out), [end - start for end, start in zip(offsets, headers)]


def _gtype(type_name: str) -> Any:
    """A ggml type by name: mainline's, or ik_llama.cpp's (only the ik rule set chooses those)."""
    try:
        return ggml_type(type_name)
    except KeyError:
        return ik_type(type_name)


def _nbytes(type_name: str, ne: tuple[int, ...]) -> int:
    """ggml_nbytes of a contiguous tensor: rows × row size (ne0 is a multiple of the block, checked before)."""
    gtype = _gtype(type_name)
    rows = 1
    for n in ne[1:]:
        rows *= n
    return rows * (gtype.row_meta_size + (ne[0] if ne else 1) // gtype.block_size * gtype.type_size)


def _output_metadata(metadata: Mapping[str, Any], info: FtypeInfo, options: QuantOptions, arch: str,
                     block_count: int) -> dict[str, Any]:
    """The KVs llama-quantize writes, in its order: the input's; quantization version and file type set; split.*
    dropped; --override-kv (then the imatrix KVs, which quantize.cpp passes as overrides); the pruned block count."""
    out = {k: v for k, v in metadata.items() if not k.startswith("split.")}
    file_type = info.ftype if info.ftype is not None else metadata.get("general.file_type", GUESSED_FTYPE)
    for key, value in (("general.quantization_version", GGML_QNT_VERSION), ("general.file_type", file_type)):
        out.pop(key, None)  # gguf_set_val_* removes and re-appends
        out[key] = value
    out = apply_overrides(out, options.override_kv)
    if resolve_rules(options.rules).ik and info.ftype is not None:  # ik sets general.file_type after the overrides
        out = apply_overrides(out, (("general.file_type", info.ftype),))
    if options.imatrix:
        out = apply_overrides(out, ASSUMED_IMATRIX_KVS.items())
    if block_count >= 0:
        out = apply_overrides(out, ((f"{arch}.block_count", block_count),))
    return out


def _file_kvs(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if not k.startswith(INTERNAL_PREFIX)}


def _headers(
    checkpoint: Checkpoint,
    loader_order: list[TensorInfo],
    kept: list[TensorInfo],
    renamed: Mapping[str, str],
    shard_of: list[int],
    n_split: int,
    out_metadata: Mapping[str, Any],
    estimate: Any,
    imatrix: bool,
) -> tuple[list[int], bool, str]:
    """(padded header of each output split, exact?, a note saying how they were found).

    Our own computation of the input header is checked against the input (its real data offset, or the converter
    view's estimate); the difference, when there is one, carries over to split 0, which holds every KV."""
    in_kvs = _file_kvs(checkpoint.metadata)
    out_kvs_bytes = metadata_nbytes(_file_kvs(out_metadata))
    split_kvs = split_keys_nbytes() if n_split > 1 else 0
    shards = [PREAMBLE + split_kvs] * n_split
    shards[0] += out_kvs_bytes
    for t, shard in zip(kept, shard_of):
        shards[shard] += tensor_infos_nbytes(((renamed[t.name], ggml_n_dims(t.shape)),))
    imatrix_note = " (the imatrix KVs are assumed: file name 'imatrix.gguf', no dataset)" if imatrix else ""
    split_note = f" in {n_split} splits" if n_split > 1 else ""
    computed_in = PREAMBLE + metadata_nbytes(in_kvs) + tensor_infos_nbytes((t.name, len(t.shape)) for t in loader_order)
    if estimate is not None:
        shards[0] += int(estimate) - computed_in
        headers = [pad(h) for h in shards]
        return headers, False, (f"header: estimated, {sum(headers):,} bytes{split_note} — rebuilt from config and "
                                f"tokenizer files as convert_hf_to_gguf.py would write it{imatrix_note}")
    meta_in = PREAMBLE + metadata_nbytes(in_kvs) + (
        tensor_infos_nbytes((t.name, len(t.shape)) for t in loader_order) if len(checkpoint.files) == 1
        else _first_file_infos(checkpoint))
    actual = checkpoint.files[0].header_bytes if checkpoint.files else None
    alignment = _alignment(checkpoint.metadata)
    if len(checkpoint.files) > 1:
        meta_in += split_keys_nbytes()
    candidates = [meta_in] if len(checkpoint.files) > 1 else [meta_in, meta_in + split_keys_nbytes()]
    match = next((m for m in candidates if actual is None or pad(m, alignment) == actual), None)
    if match is not None:
        headers = [pad(h) for h in shards]
        exact = not imatrix
        how = "exact" if exact else "exact but for the imatrix KVs"
        return headers, exact, (f"header: {how}, {sum(headers):,} bytes{split_note} — the input GGUF header with "
                                f"llama-quantize's edits{imatrix_note}")
    # Our KV widths disagree with the file: start from the file's own header size instead.
    shards[0] += int(actual) - meta_in
    headers = [pad(h) for h in shards]
    return headers, False, (f"header: estimated, {sum(headers):,} bytes{split_note} — the input's KV value types could "
                            f"not be reproduced (computed {pad(meta_in, alignment):,}, file has {actual:,}); "
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
    rule_set: RuleSet,
    kept: list[TensorInfo],
    renamed: Mapping[str, str],
    choices: Mapping[str, Choice],
    data_bytes: int,
    header_note: str,
    metadata: Mapping[str, Any],
) -> tuple[str, ...]:
    alias = f"{options.rules} = " if options.rules != rule_set.name else ""
    notes = [
        f"predicted llama-quantize {info.name} with the {alias}{rule_set.name} rules ({rule_set.describe()})",
        f"tensor data: exact, {data_bytes:,} bytes in {len(kept)} tensors (each padded to 32 bytes)",
        header_note,
    ]
    named = [(renamed[t.name], t) for t in kept]
    fallbacks = [f"{n} {c.fallback_from}->{c.target} (row length {t.shape[0]})"
                 for n, t in named if (c := choices[n]).fallback_from]
    if fallbacks:
        notes.append(f"{len(fallbacks)} tensors use a fallback type because their row length is not a multiple of "
                     f"the block size: {_named(fallbacks)}")
    needs = [f"{n} ({c.target})" for n, t in named if (c := choices[n]).needs_imatrix]
    if needs and not options.imatrix:
        notes.append(f"llama-quantize writes this file only with an imatrix: {len(needs)} tensors need one, e.g. "
                     f"{_named(needs)}; these are the types of its --dry-run (with --imatrix some choices change)")
    requant = Counter(f"{t.dtype.upper()}->{choices[n].target}" for n, t in named
                      if is_quantized_type(t.dtype) and choices[n].target != t.dtype.upper())
    if requant:
        notes.append(f"{sum(requant.values())} already-quantized tensors are requantized (--allow-requantize): "
                     + ", ".join(f"{k_n}× {k}" for k, k_n in requant.most_common()))
    manual = sum(c.manual for c in choices.values())
    if manual:
        notes.append(f"{manual} tensors take their type from --tensor-type/--output-tensor-type/--token-embedding-type")
    if _alignment(metadata) != ALIGNMENT:
        notes.append(f"the input's general.alignment is {_alignment(metadata)}; llama-quantize copies that key but "
                     "pads with 32, as predicted here (an edge case flagged, not modelled further)")
    return tuple(notes)


def _layout_notes(options: QuantOptions, loader_order: list[TensorInfo], kept: list[TensorInfo], block_count: int,
                  files: tuple[FileInfo, ...], single_file: bool, checkpoint: Checkpoint) -> tuple[str, ...]:
    notes: list[str] = []
    if options.leave_output_tensor:
        notes.append("--leave-output-tensor: output.weight keeps its input type")
    if options.prune_layers:
        notes.append(f"--prune-layers {','.join(map(str, options.prune_layers))}: {len(loader_order) - len(kept)} "
                     f"tensors removed, blocks renumbered, block_count written as {block_count}; per-layer "
                     "hyperparameter arrays are copied unchanged (as llama-quantize does)")
    if options.override_kv:
        notes.append("--override-kv: " + ", ".join(f"{k}={v!r}" for k, v in options.override_kv)
                     + " (written after general.file_type; the rules read them too)")
    if options.keep_split:
        if single_file and checkpoint.format != "gguf":
            notes.append("--keep-split: convert_hf_to_gguf.py writes one GGUF, so the output is one split")
        sizes = ", ".join(f"{posixpath.basename(f.path)} {f.size:,}" for f in files)
        notes.append(f"--keep-split: {len(files)} output file(s): {sizes}")
    return tuple(notes)
