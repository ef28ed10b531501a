"""The GGUF KVs convert_hf_to_gguf.py writes from config.json: the one config -> hyperparameter mapping.

A class's `set_gguf_parameters` is a sequence of `GGUFWriter.add_*` calls over its hparams (TextModel's common
ones, then the class's own; a later call of a key overwrites the earlier value). The table lists those calls as
data (`kv_sets`); this module makes them on a scratch `gguf.GGUFWriter`, so key names and value types are gguf-py's
own, and returns what the GGUF would hold. The converter view (`engine.py`) and the memory model
(`inspector.memory.hparams.from_config`, which reads the result with the same code as a real GGUF's KVs) both
use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import gguf

from .expr import _first
from .table import ArchSpec, ArchTable, ConversionError, KvCall, config_hparams, load_table

MAX_NAMED = 3
GGML_QUANT_VERSION = 2  # general.quantization_version (gguf.GGML_QUANT_VERSION)
MAX_BLOCKS = 1 << 16  # a layer count beyond this is not a model config (and would make per-layer arrays huge)


@dataclass(frozen=True)
class WrittenKVs:
    """The KVs of a config.json as the converter writes them.

    `kvs` maps each key to (value, gguf value type), in write order, `general.architecture` first. `spec` is the
    table entry used, or None when the table has no entry for the architecture: then only the keys every
    converter class writes (TextModel.set_gguf_parameters, the table's `generic_kv`) are there, under the
    config's `model_type` as architecture name. `skipped` names the calls gguf-py refused (a value of the wrong
    kind in config.json).
    """

    arch: str
    kvs: Mapping[str, tuple[Any, gguf.GGUFValueType]]
    spec: ArchSpec | None
    hf_name: str
    skipped: tuple[str, ...] = ()

    @property
    def metadata(self) -> dict[str, Any]:
        """Key -> value, as our GGUF reader returns a file's metadata."""
        return {key: value for key, (value, _type) in self.kvs.items()}


def namespace(hparams: Mapping[str, Any], block_count: int) -> dict[str, Any]:
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


def checked_block_count(value: Any, source: str, what: str) -> int:
    """A layer count the converter could use: a positive integer no larger than MAX_BLOCKS.

    Raises:
        ConversionError: naming the value and where it came from.
    """
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_BLOCKS:
        raise ConversionError(f"{source}: {what} is {value!r}; a layer count must be an integer from 1 to "
                              f"{MAX_BLOCKS:,}", hint="check config.json")
    return value


def layer_count(hparams: Mapping[str, Any], table: ArchTable, source: str) -> int:
    """TextModel.__init__'s block_count: the first of the table's `block_count_keys` present in hparams.

    Raises:
        ConversionError: none is present, or the value is not a sane layer count.
    """
    key = next((k for k in table.block_count_keys if k in hparams), None)
    if key is None:
        raise ConversionError(f"{source}: config.json has no layer count ({', '.join(table.block_count_keys)})",
                              hint="config.json must name the number of layers")
    return checked_block_count(hparams[key], source, f"config.json's {key}")


def kv_names(spec: ArchSpec | None, hparams: Mapping[str, Any], block_count: int, source: str,
             file_type: int | None) -> dict[str, Any]:
    """The names the KV calls see: the namespace, `file_type`, the class's hparam overrides (`kv_hparams`, in
    order, each seeing the ones before) and the class's own layer count (`block_count`, e.g. MTP blocks added)."""
    names = namespace(hparams, block_count)
    names["file_type"] = file_type
    for key, expr in spec.kv_hparams if spec else ():
        names[key] = expr.get(names)
    if spec is not None and spec.block_count is not None:
        names["block_count"] = checked_block_count(spec.block_count.get(names), source,
                                                   f"the layer count {spec.block_count.text!r}")
    return names


def write_kvs(gguf_arch: str, calls: Sequence[KvCall], names: Mapping[str, Any]
              ) -> tuple[dict[str, tuple[Any, gguf.GGUFValueType]], list[str]]:
    """Make the calls on a scratch GGUFWriter; later calls of a key overwrite it in place, as GGUFWriter does.

    Returns (key -> (value, type), in write order; the calls gguf-py refused, each with its error)."""
    writer = gguf.GGUFWriter(path=None, arch=gguf_arch)
    kvs: dict[str, tuple[Any, gguf.GGUFValueType]] = {k: (v.value, v.type) for k, v in writer.kv_data[0].items()}
    writer.kv_data[0].clear()
    skipped = []
    for call in calls:
        if call.when is not None and not call.when.holds(names):
            continue
        value = call.value.get(names)
        if value is None:
            continue  # "a value that cannot be computed is not written" (the class's `if ... is not None`)
        try:
            if call.enum is not None:
                value = getattr(gguf, call.enum)[str(value)]
            getattr(writer, call.call)(value)
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as e:
            skipped.append(f"{call.call}({value!r}): {e}")
            continue
        for key, v in writer.kv_data[0].items():
            kvs[key] = (v.value, v.type)
        writer.kv_data[0].clear()
    return kvs, skipped


def skipped_warning(skipped: Sequence[str]) -> str:
    return (f"converter view: {len(skipped)} KVs could not be written from config.json: "
            f"{'; '.join(skipped[:MAX_NAMED])}")


def config_metadata(config: Mapping[str, Any], *, table: ArchTable | None = None, source: str = "config.json",
                    file_type: int | None = None) -> WrittenKVs:
    """The KVs convert_hf_to_gguf.py writes for this config.json (`general.architecture` and the
    `{arch}.*` hyperparameters; no tokenizer, no `general.*` model-card keys).

    `file_type` is the llama_ftype the converter would record (it depends on the tensors, which a config does not
    have); None leaves `general.file_type` out. For an architecture the table lacks, the generic TextModel keys
    are written under the config's model_type, and `spec` is None (see WrittenKVs).

    Raises:
        ConversionError: config.json has no usable layer count (n_layers, num_hidden_layers, n_layer, num_layers,
            or the class's own count).
    """
    table = table or load_table()
    hparams = config_hparams(config)
    base = layer_count(hparams, table, source)
    spec = table.find(config)
    if spec is None:
        arch, calls = str(config.get("model_type") or table.hf_name(config)).lower(), table.generic_kv
    else:
        arch, calls = spec.gguf_arch, spec.kv
    names = kv_names(spec, hparams, base, source, file_type)
    kvs, skipped = write_kvs(arch, calls, names)
    return WrittenKVs(arch, kvs, spec, table.hf_name(config), tuple(skipped))
