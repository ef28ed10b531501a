"""One normalized view of the hyperparameters that size runtime memory, from GGUF metadata or an HF config.json.

The view follows llama.cpp's `llama_hparams` (src/llama-hparams.{h,cpp}, src/llama-model.cpp `load_hparams`,
src/models/<arch>.cpp `load_arch_hparams`): per-layer head counts, K/V head widths for full and sliding-window
layers, which layers are SWA, recurrent, MLA, or nextn (MTP). A config.json first becomes the GGUF KVs llama.cpp's
converter would write from it (`inspector.convert` over rules/hf_architectures.yaml, the one config ->
hyperparameter mapping), read by the same code as a GGUF's own metadata: both sources give the same numbers.
Every count read is checked (whole, finite, within a sane cap): bad metadata is one FormatError naming the key.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from ..errors import ConversionError, FormatError
from ..formats.gguf import LazyArray
from ..model import Checkpoint
from . import archs

MAX_LAYERS = 1 << 16  # {arch}.block_count: far beyond any real model (the largest have a few hundred)
MAX_COUNT = 1 << 24  # any other per-layer or per-model count or width (heads, lengths, sizes, experts, windows)
MAX_CONTEXT = 1 << 40  # context_length (a few models claim ~10M tokens)
BROKEN_HINT = "the file's metadata is damaged or was not written by llama.cpp's tools; re-download or re-convert it"


@dataclass(frozen=True)
class HParams:
    """Hyperparameters that size the KV cache, recurrent state and buffers. Per-layer tuples have n_layer_all items.

    `attn_kv[il]` is True when layer il owns a main-context attention cache (after llama.cpp's layer filters:
    nextn layers, recurrent layers, shared-KV layers); `recr[il]` when it owns a recurrent state.
    """

    arch: str
    source: str  # "gguf metadata" or "config.json"
    n_layer_all: int
    n_layer_nextn: int
    n_embd: int
    n_vocab: int | None
    n_ctx_train: int | None
    n_head: tuple[int, ...]
    n_head_kv: tuple[int, ...]
    head_k_full: int
    head_v_full: int
    head_k_swa: int
    head_v_swa: int
    is_swa: tuple[bool, ...]
    n_swa: int
    swa_type: str  # none | standard | chunked | symmetric
    is_mla: bool
    attn_kv: tuple[bool, ...]
    recr: tuple[bool, ...]
    memory: str  # "kv", "recurrent", "hybrid" or "none"
    n_ff: tuple[int, ...] = ()
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    # recurrent state widths (llama_hparams::n_embd_r / n_embd_s inputs)
    ssm_d_conv: int = 0
    ssm_d_inner: int = 0
    ssm_d_state: int = 0
    ssm_n_group: int = 0
    wkv_head_size: int = 0
    token_shift_count: int = 2
    shortconv_l_cache: int = 0
    kda_head_dim: int = 0
    head_la: int = 0
    # DSA lightning indexer
    indexer_head_size: int = 0
    indexer_layers: tuple[bool, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def n_layer(self) -> int:
        """Trunk layers (llama_hparams::n_layer(): n_layer_all - n_layer_nextn)."""
        return self.n_layer_all - self.n_layer_nextn

    def head_k(self, il: int) -> int:
        return self.head_k_swa if self.is_swa[il] else self.head_k_full

    def head_v(self, il: int) -> int:
        return self.head_v_swa if self.is_swa[il] else self.head_v_full

    def n_embd_k_gqa(self, il: int) -> int:
        """K elements per cell of layer il (llama_hparams::n_embd_k_gqa)."""
        return self.head_k(il) * self.n_head_kv[il]

    def n_embd_v_gqa(self, il: int) -> int:
        """V elements per cell of layer il (llama_hparams::n_embd_v_gqa)."""
        return self.head_v(il) * self.n_head_kv[il]

    def n_embd_v_gqa_max(self) -> int:
        """Widest V row over all layers: the transposed V cache (flash attention off) pads every layer to it."""
        return max((self.n_embd_v_gqa(il) for il in range(self.n_layer_all)), default=0)

    def n_embd_r(self) -> int:
        """Per-sequence elements of the rolling (conv / token-shift) state of one recurrent layer
        (llama_hparams::n_embd_r, src/llama-hparams.cpp)."""
        if self.wkv_head_size:
            return self.token_shift_count * self.n_embd
        if self.shortconv_l_cache:
            return self.n_embd * (self.shortconv_l_cache - 1)
        if self.kda_head_dim:
            d_conv = self.ssm_d_conv - 1 if self.ssm_d_conv > 0 else 3
            return 3 * d_conv * self.n_head[0] * self.kda_head_dim
        conv = self.ssm_d_conv - 1 if self.ssm_d_conv > 0 else 0
        return conv * (self.ssm_d_inner + 2 * self.ssm_n_group * self.ssm_d_state)

    def n_embd_s(self) -> int:
        """Per-sequence elements of the recurrent (SSM / WKV / delta-rule) state of one layer (llama_hparams::n_embd_s)."""
        if self.wkv_head_size:
            return self.n_embd * self.wkv_head_size
        if self.kda_head_dim:
            return self.kda_head_dim * self.kda_head_dim * self.n_head[0]
        if self.head_la:
            return self.head_la * self.head_la * self.n_head[0]
        return self.ssm_d_state * self.ssm_d_inner


def hparams_of(checkpoint: Checkpoint) -> HParams:
    """The hyperparameters of a checkpoint: GGUF metadata when it has them, else its config.json.

    Raises:
        FormatError: neither source names the layer count and widths the memory plan needs.
    """
    if checkpoint.format == "gguf" and checkpoint.metadata.get("general.architecture"):
        hp = from_gguf(checkpoint.metadata, source=checkpoint.source)
    elif checkpoint.config:
        hp = from_config(checkpoint.config, source=checkpoint.source)
    else:
        raise FormatError(checkpoint.source, "no hyperparameters to size the KV cache (no GGUF metadata and no "
                          "config.json)", hint="put the model's config.json next to its safetensors files")
    if hp.n_vocab is None:
        hp = _with_vocab_fallback(hp, checkpoint)
    return hp


def _config_vocab(config: Mapping[str, Any] | None) -> int | None:
    """`vocab_size` of a config.json: the language model's (`text_config`, multimodal configs), else top level."""
    if not config:
        return None
    for c in (config.get("text_config"), config):
        if isinstance(c, Mapping):
            value = c.get("vocab_size")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def _tensor_vocab(checkpoint: Checkpoint, n_embd: int) -> tuple[int, str] | None:
    """Rows of the output matrix, else of the token embedding: (rows, tensor name). A matrix counts only when its
    other dimension is n_embd (so a packed or per-layer embedding is not mistaken for the vocabulary)."""
    for role in ("output", "embedding"):
        for t in checkpoint.tensors:
            if t.role != role or t.layer is not None or len(t.shape) != 2:
                continue
            # GGUF shapes are ne order (n_embd first); safetensors shapes are row-major (n_embd last)
            width, rows = (t.shape[0], t.shape[1]) if checkpoint.format == "gguf" else (t.shape[1], t.shape[0])
            if width == n_embd and rows > 0:
                return rows, t.name
    return None


def _with_vocab_fallback(hp: HParams, checkpoint: Checkpoint) -> HParams:
    """n_vocab when the primary source lacks it (a GGUF view of a safetensors checkpoint has no tokenizer list;
    a config.json may lack vocab_size): config.json's vocab_size (also under text_config), else the rows of the
    output matrix or token embedding; a note when it stays unknown (output buffers and logits are then 0)."""
    vocab = _config_vocab(checkpoint.config)
    if vocab is not None:
        return replace(hp, n_vocab=vocab)
    found = _tensor_vocab(checkpoint, hp.n_embd)
    if found is not None:
        rows, name = found
        note = f"vocabulary size taken from the rows of {name}: {rows:,}"
        return replace(hp, n_vocab=rows, notes=(*hp.notes, note))
    unknown = ("vocabulary size unknown (no tokenizer list, no vocab_size, no output or token embedding matrix): "
               "the output buffer and the logits peak are counted as 0")
    return replace(hp, notes=(*hp.notes, unknown))


# ----------------------------------------------------------------------------------------------------------
# GGUF metadata
# ----------------------------------------------------------------------------------------------------------
class _Meta:
    def __init__(self, metadata: Mapping[str, Any], arch: str, source: str) -> None:
        self.m, self.arch, self.source = metadata, arch, source

    def key(self, name: str) -> str:
        return f"{self.arch}.{name}"

    def int(self, name: str, default: int | None = None, cap: int = MAX_COUNT) -> int:
        """One count (default when absent). Raises FormatError: absent without a default, an array, or not a
        whole number from 0 to `cap`."""
        value = self.m.get(self.key(name))
        if value is None:
            if default is None:
                raise FormatError(self.source, f"GGUF metadata lacks {self.key(name)!r}, needed to size the KV cache")
            return default
        if isinstance(value, (list, tuple, LazyArray)):
            raise FormatError(self.source, f"{self.key(name)!r} is an array where llama.cpp expects one number",
                              hint=BROKEN_HINT)
        return self.count(name, value, cap)

    def count(self, name: str, value: Any, cap: int = MAX_COUNT) -> int:
        """A whole number from 0 to cap (an integral float too). FormatError: NaN, infinite, fractional, negative,
        over the cap, or not a number."""
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or not 0 <= value <= cap:
            shown = repr(value) if isinstance(value, (int, float)) else f"a {type(value).__name__}"
            raise FormatError(self.source, f"{self.key(name)!r} is {shown}; llama.cpp expects a whole number from 0 "
                                           f"to {cap:,} there", hint=BROKEN_HINT)
        return value

    def per_layer(self, name: str, n: int, default: Sequence[int] | int) -> tuple[int, ...]:
        """llama_model_loader::get_key_or_arr: a scalar for every layer, or an array of exactly n items."""
        value = self.m.get(self.key(name))
        if value is None:
            return tuple(default) if isinstance(default, Sequence) else (int(default),) * n
        if isinstance(value, (list, tuple, LazyArray)):
            items = value.count if isinstance(value, LazyArray) else len(value)
            if items != n:
                raise FormatError(self.source, f"{self.key(name)!r} has {items:,} items for {n:,} layers",
                                  hint=BROKEN_HINT)
            return tuple(self.count(name, v) for v in value)
        return (self.count(name, value),) * n

    def bools(self, name: str) -> list[bool] | None:
        value = self.m.get(self.key(name))
        if isinstance(value, (list, tuple)):
            return [bool(v) for v in value]
        return None


def _vocab_from_gguf(metadata: Mapping[str, Any], arch: str) -> int | None:
    tokens = metadata.get("tokenizer.ggml.tokens")
    count = getattr(tokens, "count", None) if not isinstance(tokens, (list, tuple)) else len(tokens)
    if isinstance(count, int) and not isinstance(tokens, str):
        return count  # llama_vocab::n_tokens(): the tokenizer list, what sizes llama.cpp's logits
    value = metadata.get(f"{arch}.vocab_size")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_COUNT else None


def _layer_counts(m: _Meta) -> tuple[int, int]:
    """(block_count, nextn_predict_layers), checked: at least one block, no more NextN blocks than blocks.

    Raises:
        FormatError: naming the key and what to do.
    """
    n_all = m.int("block_count", cap=MAX_LAYERS)
    if n_all == 0:
        raise FormatError(m.source, f"{m.key('block_count')!r} is 0: a model needs at least one block to size its "
                                    "KV cache, and llama.cpp would not load it",
                          hint="inspect without --ctx/fit to see its tensors; the file's metadata needs fixing")
    n_nextn = m.int("nextn_predict_layers", 0, cap=MAX_LAYERS)
    if n_nextn > n_all:
        raise FormatError(m.source, f"{m.key('nextn_predict_layers')!r} is {n_nextn:,}, more than the "
                                    f"{n_all:,} blocks of {m.key('block_count')!r}", hint=BROKEN_HINT)
    return n_all, n_nextn


def from_gguf(metadata: Mapping[str, Any], *, source: str = "<gguf>") -> HParams:
    """The hyperparameters llama.cpp's load_hparams reads from these GGUF KVs.

    Raises:
        FormatError: a key the memory model needs is absent, or a count is not a sane whole number.
    """
    arch = str(metadata.get("general.architecture"))
    m = _Meta(metadata, arch, source)
    n_all, n_nextn = _layer_counts(m)
    n_embd = m.int("embedding_length", 0)
    n_head = m.per_layer("attention.head_count", n_all, 0)
    n_head_kv = m.per_layer("attention.head_count_kv", n_all, n_head)  # defaults to n_head (load_hparams)
    n_ff = m.per_layer("feed_forward_length", n_all, 0)
    notes: list[str] = []
    if n_head[0] > 0:
        head_k = m.int("attention.key_length", n_embd // n_head[0])
        head_v = m.int("attention.value_length", n_embd // n_head[0])
    else:
        head_k = head_v = 0
    head_k_swa = m.int("attention.key_length_swa", head_k)
    head_v_swa = m.int("attention.value_length_swa", head_v)
    is_mla = m.int("attention.key_length_mla", 0) > 0 and m.int("attention.value_length_mla", 0) > 0
    is_swa, n_swa, swa_type = _swa_from_gguf(m, arch, n_all, n_nextn)
    recr = _recr_from_gguf(m, arch, n_all, n_nextn, n_head_kv, n_ff)
    if arch in archs.LFM2_SWA_ARCHS and m.int("attention.sliding_window", 0) > 0:
        n_swa, swa_type = m.int("attention.sliding_window"), "standard"
        is_swa = tuple(il < n_all - n_nextn and not recr[il] for il in range(n_all))
    kv_from_start = _kv_from_start(m, arch, n_all)
    memory = _memory_kind(arch)
    attn_kv = _attention_layers(arch, memory, n_all, n_nextn, recr, n_head_kv, n_ff, kv_from_start)
    expert_used = m.per_layer("expert_used_count", n_all, 0)
    indexer = m.int("attention.indexer.key_length", 0) if arch in archs.DSA_ARCHS else 0
    indexer_layers = _indexer_layers(m, arch, attn_kv, notes) if indexer else ()
    if arch in archs.UNMODELLED_ARCHS:
        notes.append(f"{archs.UNMODELLED_ARCHS[arch]} is not modelled; its KV is sized as a plain cache")
    return HParams(
        arch=arch,
        source="gguf metadata",
        n_layer_all=n_all,
        n_layer_nextn=n_nextn,
        n_embd=n_embd,
        n_vocab=_vocab_from_gguf(metadata, arch),
        n_ctx_train=m.int("context_length", 0, cap=MAX_CONTEXT) or None,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_k_full=head_k,
        head_v_full=head_v,
        head_k_swa=head_k_swa,
        head_v_swa=head_v_swa,
        is_swa=is_swa,
        n_swa=n_swa,
        swa_type=swa_type,
        is_mla=is_mla,
        attn_kv=attn_kv,
        recr=recr,
        memory=memory,
        n_ff=n_ff,
        n_expert=m.int("expert_count", 0),
        n_expert_used=max(expert_used, default=0),
        # llama-arch MoE GGUFs (Mixtral) have no expert_feed_forward_length: the experts use feed_forward_length
        n_ff_exp=max(m.per_layer("expert_feed_forward_length", n_all, 0), default=0) or (
            max(n_ff, default=0) if m.int("expert_count", 0) else 0),
        ssm_d_conv=m.int("ssm.conv_kernel", 0),
        ssm_d_inner=m.int("ssm.inner_size", 0),
        ssm_d_state=m.int("ssm.state_size", 0),
        ssm_n_group=m.int("ssm.group_count", 0),
        wkv_head_size=m.int("wkv.head_size", 0),
        token_shift_count=m.int("token_shift_count", 2),
        shortconv_l_cache=m.int("shortconv.l_cache", 0),
        kda_head_dim=m.int("kda.head_dim", 0),
        head_la=head_k if arch == "minimax-01" else 0,  # minimax-01.cpp: n_embd_head_la = n_embd_head_k_full
        indexer_head_size=indexer,
        indexer_layers=indexer_layers,
        notes=tuple(notes),
    )


def _indexer_layers(m: _Meta, arch: str, attn_kv: tuple[bool, ...], notes: list[str]) -> tuple[bool, ...]:
    """DSA: the layers with an indexer key cache (glm-dsa: where attention.indexer.types says "full")."""
    types = m.bools("attention.indexer.types")
    if arch == "glm-dsa" and types is None:
        notes.append("glm-dsa without attention.indexer.types: indexer cache counted on every layer")
    return tuple(kv and (arch != "glm-dsa" or types is None or (il < len(types) and types[il]))
                 for il, kv in enumerate(attn_kv))


def _swa_pattern(n_all: int, n_layer: int, n_pattern: int, dense_first: bool) -> tuple[bool, ...]:
    """llama_hparams::set_swa_pattern: trunk layers follow the period, nextn layers are never SWA."""
    out = []
    for il in range(n_all):
        if il >= n_layer:
            out.append(False)
        elif dense_first:
            out.append(n_pattern == 0 or il % n_pattern != 0)
        else:
            out.append(n_pattern == 0 or il % n_pattern < n_pattern - 1)
    return tuple(out)


def _swa_from_gguf(m: _Meta, arch: str, n_all: int, n_nextn: int) -> tuple[tuple[bool, ...], int, str]:
    none = ((False,) * n_all, 0, "none")
    rule = archs.SWA_RULES.get(arch)
    if rule is None:
        return none
    if rule.only_if_layers is not None and n_all - n_nextn != rule.only_if_layers:
        return none
    window = m.int("attention.sliding_window", -1)
    if rule.requires_window and window <= 0:
        return none
    if arch == "llama4" and window == 0:
        return none
    if rule.forced_window is not None:
        window = rule.forced_window
    elif window < 0:
        window = rule.default_window or 0
    if window <= 0:
        # e.g. gemma4 or maple without the key: llama.cpp fails to load; size it as no SWA and say so
        return none
    array = m.bools("attention.sliding_window_pattern")
    if array is not None:
        # load_swa_pattern: the array is copied over is_swa_impl; layers past its end stay non-SWA
        is_swa = tuple(array[il] if il < len(array) else False for il in range(n_all))
    elif rule.pattern is None:
        raise FormatError(m.source, f"{arch}: GGUF lacks {m.key('attention.sliding_window_pattern')!r}, "
                                    "which llama.cpp requires for this architecture")
    else:
        n_pattern = m.int("attention.sliding_window_pattern", rule.pattern)
        is_swa = _swa_pattern(n_all, n_all - n_nextn, n_pattern, rule.dense_first)
    return is_swa, window, rule.swa_type


def _recr_from_gguf(m: _Meta, arch: str, n_all: int, n_nextn: int, n_head_kv: tuple[int, ...],
                    n_ff: tuple[int, ...]) -> tuple[bool, ...]:
    n_layer = n_all - n_nextn
    if arch in archs.RECURRENT_ARCHS:
        return tuple(il < n_layer for il in range(n_all))
    rule = archs.RECURRENT_LAYER_RULE.get(arch)
    if rule == "kv_heads_zero":
        return tuple(n_head_kv[il] == 0 for il in range(n_all))
    if rule == "all":
        return (True,) * n_all
    if rule == "nemotron":
        return tuple(il < n_layer and n_head_kv[il] == 0 and n_ff[il] == 0 for il in range(n_all))
    if rule == "interval":
        array = m.bools("attention.recurrent_layers")
        if array is not None:
            return tuple(array[il] if il < len(array) else False for il in range(n_all))
        interval = m.int("full_attention_interval", 4)
        return tuple(il < n_layer and (il + 1) % interval != 0 for il in range(n_all))
    return (False,) * n_all


def _kv_from_start(m: _Meta, arch: str, n_all: int) -> int:
    if arch in archs.KV_FROM_START_FIXED:
        return archs.KV_FROM_START_FIXED[arch]
    if arch in archs.KV_SHARED_LAYERS_KEY_ARCHS:
        return n_all - m.int("attention.shared_kv_layers", 0)
    return -1


def _memory_kind(arch: str) -> str:
    if arch in archs.NO_MEMORY_ARCHS:
        return "none"
    if arch in archs.RECURRENT_ARCHS:
        return "recurrent"
    if arch in archs.HYBRID_ARCHS:
        return "hybrid"
    return "kv"


def _attention_layers(arch: str, memory: str, n_all: int, n_nextn: int, recr: tuple[bool, ...],
                      n_head_kv: tuple[int, ...], n_ff: tuple[int, ...], kv_from_start: int) -> tuple[bool, ...]:
    """Which layers get a main-context attention cache (llama_model::create_memory filters, has_kv)."""
    n_layer = n_all - n_nextn
    if memory in ("none", "recurrent"):
        return (False,) * n_all
    out = []
    for il in range(n_all):
        if kv_from_start >= 0 and il >= kv_from_start:  # llama_hparams::has_kv
            out.append(False)
        elif memory == "hybrid":
            rule = archs.RECURRENT_LAYER_RULE.get(arch)
            if rule == "all":
                keep = True
            elif rule == "nemotron":
                keep = not recr[il] and n_ff[il] == 0
            else:
                keep = not recr[il]
            if arch in archs.HYBRID_TRUNK_ONLY and il >= n_layer:
                keep = False
            out.append(keep)
        else:
            # plain and SWA caches: nextn layers are filtered out of the main context when there is a trunk
            out.append(not (n_nextn > 0 and n_layer > 0 and il >= n_layer))
    return tuple(out)


# ----------------------------------------------------------------------------------------------------------
# Hugging Face config.json
# ----------------------------------------------------------------------------------------------------------
def from_config(config: Mapping[str, Any], *, source: str = "config.json") -> HParams:
    """The hyperparameters of a config.json: the GGUF KVs convert_hf_to_gguf.py would write from it
    (`inspector.convert.config_metadata`, rules/hf_architectures.yaml), read by `from_gguf`, so a model gives the
    same HParams from its config.json as from its GGUF. `n_vocab` falls back to config's vocab_size.

    An architecture the table does not have is read from the keys every converter class writes (layers, width,
    heads, KV heads, head_dim: TextModel) as plain full attention, and a note says so and names it.

    Raises:
        FormatError: no usable layer count or hidden size, or a value out of range.
    """
    try:
        from ..convert import config_metadata  # the converter's tables load only for config.json sources

        written = config_metadata(config, source=source)
    except ConversionError as e:
        raise FormatError(source, f"{e.args[0].removeprefix(source + ': ')} (needed to size the KV cache)",
                          hint=e.hint) from None
    if written.skipped:  # the converter itself would fail on these values (GGUFWriter refuses them)
        raise FormatError(source, f"config.json value the converter cannot write: {written.skipped[0]}",
                          hint="check config.json; llama.cpp's converter would stop on it too")
    if f"{written.arch}.embedding_length" not in written.kvs:
        raise FormatError(source, "config.json lacks hidden_size (or the width its converter class reads), needed to "
                                  "size the KV cache")
    try:
        hp = from_gguf(written.metadata, source=source)
    except FormatError as e:  # a count out of range: name config.json, not a file to re-download
        message = e.args[0].removeprefix(f"{source}: ")
        raise FormatError(source, f"from config.json, {message}", hint="check config.json") from None
    notes = list(hp.notes)
    if written.spec is None:
        notes.append(f"config.json architecture {written.hf_name!r} is not in rules/hf_architectures.yaml: sized "
                     "from the keys every converter class writes (layers, heads, KV heads, head_dim) as plain "
                     "full attention; its own layer kinds (sliding window, MLA, recurrent) are not known")
    n_vocab = hp.n_vocab if hp.n_vocab is not None else _config_vocab(config)
    return replace(hp, source="config.json", n_vocab=n_vocab, notes=tuple(notes))
