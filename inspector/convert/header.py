"""The header estimate of the converter view: the bytes convert_hf_to_gguf.py writes before the tensor data.

GGUF header = magic, version, tensor count, KV count, the KVs, the tensor infos. Tensor infos are exact (names
and dims are known) and so are the config KVs (made by `kv.write_kvs` with gguf-py's writer). `general.*` counts
what `Metadata.set_gguf_meta_model` writes without a model card (type, name, size label). The tokenizer is
estimated from the vocabulary size, since the tokenizer files are not read: per family, the token and merge
lengths measured on real vocabularies (`tokenizer_families` in the table), scores and token types, the special
token ids and a chat template of an assumed size. docs/quantization.md, "The header estimate", has the numbers.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import gguf

from ..model import Checkpoint, TensorInfo
from .kv import GGML_QUANT_VERSION
from .table import ArchSpec, ArchTable

GGUF_PREAMBLE = 4 + 4 + 8 + 8  # magic, version, n_tensors, n_kv


def header_estimate(table: ArchTable, spec: ArchSpec, names: Mapping[str, Any], tensors: Sequence[TensorInfo],
                    kvs: Mapping[str, tuple[Any, Any]]) -> tuple[int, str]:
    """(bytes from the magic through the last tensor info, unpadded; how the number was made).

    `kvs` are the file's KVs without the tokenizer (config KVs and general.*); general.quantization_version,
    which GGUFWriter adds when it writes, is counted here."""
    kv_bytes = sum(kv_nbytes(key, value, vtype) for key, (value, vtype) in kvs.items())
    kv_bytes += kv_nbytes("general.quantization_version", GGML_QUANT_VERSION, gguf.GGUFValueType.UINT32)
    tok_bytes, tok_basis = tokenizer_estimate(table, spec, names)
    infos = sum(8 + len(t.name.encode()) + 4 + 8 * len(t.shape) + 4 + 8 for t in tensors)
    total = GGUF_PREAMBLE + kv_bytes + tok_bytes + infos
    basis = (f"estimate: tensor infos ({infos:,} bytes) and config KVs exact; general.* without model-card "
             f"fields (license, tags, base models: typically a few hundred bytes more); {tok_basis}")
    return total, basis


def general_kvs(checkpoint: Checkpoint, tensors: Sequence[TensorInfo]) -> dict[str, tuple[Any, gguf.GGUFValueType]]:
    """general.type, name and size_label as Metadata.set_gguf_meta_model writes them without a model card
    (the name is config's _name_or_path or the folder name: an estimate)."""
    s = gguf.GGUFValueType.STRING
    return {"general.type": ("model", s), "general.name": (_model_name(checkpoint), s),
            "general.size_label": (_size_label(tensors), s)}


def tokenizer_estimate(table: ArchTable, spec: ArchSpec, names: Mapping[str, Any]) -> tuple[int, str]:
    """Bytes of the tokenizer.* KVs the class's set_vocab writes (_set_vocab_sentencepiece / _set_vocab_gpt2 and
    SpecialVocab), from the vocabulary size and the family's measured averages."""
    tok = spec.tokenizer
    assert tok is not None, spec.id  # kv_only entries never reach the converter view
    family_name = tok.family.get(names)
    family = table.tokenizer_families.get(family_name)
    if family is None:
        return 0, f"tokenizer: unknown family {family_name!r}, not counted"
    n_tokens = (tok.tokens.get(names) if tok.tokens else None) or names.get("vocab_size") or 0
    merges = 0
    if family.avg_merge_bytes:
        merges = (tok.merges.get(names) if tok.merges else None) or max(0, n_tokens - 256)
    template = (tok.chat_template_bytes.get(names) if tok.chat_template_bytes else None) or 0
    avg = (tok.avg_token_bytes.get(names) if tok.avg_token_bytes else None) or family.avg_token_bytes
    pre = tok.pre.get(names) or "default"
    s, u32, b = gguf.GGUFValueType.STRING, gguf.GGUFValueType.UINT32, gguf.GGUFValueType.BOOL
    total = kv_nbytes("tokenizer.ggml.model", family.model, s) + kv_nbytes("tokenizer.ggml.pre", pre, s)
    total += _array_kv("tokenizer.ggml.tokens", round(n_tokens * (8 + avg)))
    total += _array_kv("tokenizer.ggml.token_type", 4 * n_tokens)
    if family.scores:
        total += _array_kv("tokenizer.ggml.scores", 4 * n_tokens)
    if merges:
        total += _array_kv("tokenizer.ggml.merges", round(merges * (8 + family.avg_merge_bytes)))
    key_names = {"unk": "unknown", "pad": "padding"}
    for special in family.special_ids:
        total += kv_nbytes(f"tokenizer.ggml.{key_names.get(special, special)}_token_id", 0, u32)
    total += kv_nbytes("tokenizer.ggml.add_bos_token", True, b)
    total += kv_nbytes("tokenizer.ggml.add_eos_token", False, b)
    if template:
        total += kv_nbytes("tokenizer.chat_template", "x" * int(template), s)
    basis = (f"tokenizer ({total:,} bytes) estimated without the tokenizer files: {n_tokens:,} tokens of "
             f"~{avg} bytes ({family_name}, measured on a real vocabulary)"
             + (f", {merges:,} merges of ~{family.avg_merge_bytes} bytes" if merges else "")
             + f", chat template assumed {int(template):,} bytes")
    return total, basis


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


def kv_nbytes(key: str, value: Any, vtype: gguf.GGUFValueType) -> int:
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

