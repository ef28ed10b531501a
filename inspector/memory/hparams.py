"""One normalized view of the hyperparameters that size runtime memory, from GGUF metadata or an HF config.json.

The view follows llama.cpp's `llama_hparams` (src/llama-hparams.{h,cpp}, src/llama-model.cpp `load_hparams`,
src/models/<arch>.cpp `load_arch_hparams`): per-layer head counts, K/V head widths for full and sliding-window
layers, which layers are SWA, recurrent, MLA, or nextn (MTP). A config.json is read as llama.cpp's converter
(convert_hf_to_gguf.py, conversion/*.py) would write it to GGUF, so both sources give the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from ..errors import FormatError
from ..model import Checkpoint
from . import archs


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
        raise FormatError(
            checkpoint.source,
            "no hyperparameters to size the KV cache (no GGUF metadata and no config.json)",
            hint="put the model's config.json next to its safetensors files",
        )
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

    def has(self, name: str) -> bool:
        return self.key(name) in self.m

    def int(self, name: str, default: int | None = None) -> int:
        value = self.m.get(self.key(name), default)
        if value is None:
            raise FormatError(self.source, f"GGUF metadata lacks {self.key(name)!r}, needed to size the KV cache")
        if isinstance(value, (list, tuple)):
            raise FormatError(self.source, f"{self.key(name)!r} is an array where llama.cpp expects one number")
        return int(value)

    def per_layer(self, name: str, n: int, default: Sequence[int] | int) -> tuple[int, ...]:
        """llama_model_loader::get_key_or_arr: a scalar for every layer, or an array of exactly n items."""
        value = self.m.get(self.key(name))
        if value is None:
            return tuple(default) if isinstance(default, Sequence) else (int(default),) * n
        if isinstance(value, (list, tuple)):
            if len(value) != n:
                raise FormatError(self.source, f"{self.key(name)!r} has {len(value)} items for {n} layers")
            return tuple(int(v) for v in value)
        return (int(value),) * n

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
    return int(value) if isinstance(value, int) else None


def from_gguf(metadata: Mapping[str, Any], *, source: str = "<gguf>") -> HParams:
    arch = str(metadata.get("general.architecture"))
    m = _Meta(metadata, arch, source)
    n_all = m.int("block_count")
    n_nextn = m.int("nextn_predict_layers", 0)
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
    indexer_layers: tuple[bool, ...] = ()
    if indexer:
        types = m.bools("attention.indexer.types")
        if arch == "glm-dsa" and types is None:
            notes.append("glm-dsa without attention.indexer.types: indexer cache counted on every layer")
        indexer_layers = tuple(
            attn_kv[il] and (arch != "glm-dsa" or types is None or (il < len(types) and types[il]))
            for il in range(n_all)
        )
    if arch in archs.UNMODELLED_ARCHS:
        notes.append(f"{archs.UNMODELLED_ARCHS[arch]} is not modelled; its KV is sized as a plain cache")
    return HParams(
        arch=arch,
        source="gguf metadata",
        n_layer_all=n_all,
        n_layer_nextn=n_nextn,
        n_embd=n_embd,
        n_vocab=_vocab_from_gguf(metadata, arch),
        n_ctx_train=m.int("context_length", 0) or None,
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
def _flat_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Multimodal configs keep the language model under text_config (Gemma 3, Qwen3.5, Llama 4)."""
    flat = dict(config)
    text = config.get("text_config")
    if isinstance(text, Mapping):
        flat.update(text)
    return flat


def _arch_from_config(c: Mapping[str, Any]) -> tuple[str, bool]:
    for name in c.get("architectures") or []:
        if name in archs.HF_ARCHITECTURES:
            return archs.HF_ARCHITECTURES[name], True
    model_type = str(c.get("model_type") or "")
    if model_type in archs.HF_MODEL_TYPES:
        return archs.HF_MODEL_TYPES[model_type], True
    return model_type or "unknown", False


def _first(c: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if c.get(name) is not None:
            return c[name]
    return default


def from_config(config: Mapping[str, Any], *, source: str = "config.json") -> HParams:
    c = _flat_config(config)
    arch, known = _arch_from_config(c)
    notes: list[str] = []
    if not known:
        notes.append(f"config.json model_type {arch!r} is not in our table: sized as standard attention")
    n_layer = _first(c, "num_hidden_layers", "n_layer", "n_layers", "num_layers")
    n_embd = _first(c, "hidden_size", "d_model", "n_embd")
    if n_layer is None or n_embd is None:
        raise FormatError(source, "config.json lacks num_hidden_layers or hidden_size, needed to size the KV cache")
    n_layer, n_embd = int(n_layer), int(n_embd)
    heads = _first(c, "num_attention_heads", "n_head", default=0) or 0
    kv = _first(c, "num_key_value_heads", "n_head_kv", default=heads)
    n_head_kv = tuple(int(x) for x in kv) if isinstance(kv, list) else (int(kv if kv is not None else heads),) * n_layer
    n_head = (int(heads),) * n_layer
    head_dim = _first(c, "head_dim", default=(n_embd // heads) if heads else 0)
    head_k = head_v = int(head_dim)
    is_mla = False
    memory = _memory_kind(arch)
    layer_types = [str(t) for t in c.get("layer_types") or []]
    if len(layer_types) not in (0, n_layer):
        notes.append(f"layer_types has {len(layer_types)} entries for {n_layer} layers: ignored")
        layer_types = []

    # MLA (DeepSeek-V2/V3, Kimi-K2, GLM-4.7-Flash): the converter writes MQA with one head of
    # kv_lora_rank + qk_rope_head_dim and key/value_length_mla (conversion/deepseek.py); llama.cpp then caches
    # that K only (has_v = !is_mla, src/llama-kv-cache.cpp)
    if c.get("kv_lora_rank") and arch in ("deepseek2", "deepseek32"):
        is_mla = True
        head_k = int(c["kv_lora_rank"]) + int(c.get("qk_rope_head_dim", 64))
        head_v = int(c["kv_lora_rank"])
        n_head_kv = (1,) * n_layer

    recr = [False] * n_layer
    ssm = dict(d_conv=0, d_inner=0, d_state=0, n_group=0)
    shortconv = 0
    if memory == "recurrent":
        recr = [True] * n_layer
        ssm = _mamba_ssm(c, arch, n_embd)
    elif arch in ("qwen3next", "qwen35", "qwen35moe"):
        # conversion/qwen.py Qwen3NextModel: recurrent_layers from layer_types, else full_attention_interval
        if layer_types:
            recr = [t == "linear_attention" for t in layer_types]
        else:
            interval = int(c.get("full_attention_interval", 4))
            recr = [(il + 1) % interval != 0 for il in range(n_layer)]
        ssm = dict(d_conv=int(c["linear_conv_kernel_dim"]), d_state=int(c["linear_key_head_dim"]),
                   n_group=int(c["linear_num_key_heads"]),
                   d_inner=int(c["linear_value_head_dim"]) * int(c["linear_num_value_heads"]))
    elif arch == "lfm2":
        # conversion/lfm2.py: num_key_value_heads = 0 on "conv" layers; shortconv.l_cache = conv_L_cache
        recr = [t == "conv" for t in layer_types] if layer_types else [
            il not in set(c.get("full_attn_idxs") or []) for il in range(n_layer)]
        n_head_kv = tuple(0 if r else n_head_kv[il] for il, r in enumerate(recr))
        shortconv = int(c.get("conv_L_cache", 3))
    elif arch == "falcon-h1":
        recr = [True] * n_layer
        ssm = _mamba_ssm(c, "mamba2", n_embd)
    elif arch in ("granitehybrid", "jamba", "nemotron_h"):
        recr = _hybrid_layers_from_config(c, arch, n_layer, layer_types)
        ssm = _mamba_ssm(c, "mamba2" if arch != "jamba" else "mamba", n_embd)
        n_head_kv = tuple(0 if r else n_head_kv[il] for il, r in enumerate(recr))
    elif memory == "hybrid":
        notes.append(f"{arch} from config.json: recurrent layers not derived; sized as attention only")

    is_swa, n_swa, swa_type = _swa_from_config(c, arch, n_layer, layer_types)
    nextn = int(_first(c, "num_nextn_predict_layers", "mtp_num_hidden_layers", default=0) or 0)
    if nextn:
        notes.append(f"{nextn} MTP/nextn layer(s) in config.json: no main-context KV (llama.cpp filters them)")
    attn_kv = tuple(not recr[il] or arch == "falcon-h1" for il in range(n_layer))
    if memory in ("none", "recurrent"):
        attn_kv = (False,) * n_layer
    n_expert = int(_first(c, "num_local_experts", "n_routed_experts", "num_experts", default=0) or 0)
    return HParams(
        arch=arch,
        source="config.json",
        n_layer_all=n_layer,
        n_layer_nextn=0,
        n_embd=n_embd,
        n_vocab=_config_vocab(c),
        n_ctx_train=int(c["max_position_embeddings"]) if c.get("max_position_embeddings") else None,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_k_full=head_k,
        head_v_full=head_v,
        head_k_swa=head_k,
        head_v_swa=head_v,
        is_swa=is_swa,
        n_swa=n_swa,
        swa_type=swa_type,
        is_mla=is_mla,
        attn_kv=attn_kv,
        recr=tuple(recr),
        memory=memory,
        n_ff=(int(c.get("intermediate_size") or 0),) * n_layer,
        n_expert=n_expert,
        n_expert_used=int(_first(c, "num_experts_per_tok", "experts_per_token", default=0) or 0),
        n_ff_exp=int(_first(c, "moe_intermediate_size", "intermediate_size", default=0) or 0) if n_expert else 0,
        ssm_d_conv=ssm["d_conv"],
        ssm_d_inner=ssm["d_inner"],
        ssm_d_state=ssm["d_state"],
        ssm_n_group=ssm["n_group"],
        shortconv_l_cache=shortconv,
        notes=tuple(notes),
    )


def _mamba_ssm(c: Mapping[str, Any], arch: str, n_embd: int) -> dict[str, int]:
    """conversion/mamba.py: Mamba d_inner = intermediate_size (2·d_model), n_group 0; Mamba2 d_inner =
    expand·d_model, n_group = n_groups; d_conv 4 and d_state 16 (Mamba) / 128 (Mamba2) by default."""
    d_conv = int(_first(c, "conv_kernel", "d_conv", "mamba_d_conv", default=4))
    if arch == "mamba":
        d_inner = int(_first(c, "intermediate_size", "d_inner", "mamba_expand", default=2 * n_embd))
        if "mamba_expand" in c and "intermediate_size" not in c:
            d_inner = int(c["mamba_expand"]) * n_embd
        d_state = int(_first(c, "state_size", "d_state", "mamba_d_state", default=16))
        return dict(d_conv=d_conv, d_inner=d_inner, d_state=d_state, n_group=0)
    expand = _first(c, "expand", "mamba_expand", default=2)
    d_inner = int(_first(c, "mamba_d_ssm", "d_inner", default=int(expand) * n_embd))
    if c.get("mamba_n_heads") and c.get("mamba_d_head"):
        d_inner = int(c["mamba_n_heads"]) * int(c["mamba_d_head"])
    d_state = int(_first(c, "state_size", "d_state", "ssm_state_size", "mamba_d_state", default=128))
    n_group = int(_first(c, "n_groups", "mamba_n_groups", default=1))
    return dict(d_conv=d_conv, d_inner=d_inner, d_state=d_state, n_group=n_group)


def _hybrid_layers_from_config(c: Mapping[str, Any], arch: str, n_layer: int, layer_types: list[str]) -> list[bool]:
    if layer_types:
        return [t == "mamba" for t in layer_types]
    if arch == "nemotron_h" and isinstance(c.get("hybrid_override_pattern"), str):
        return [ch == "M" for ch in c["hybrid_override_pattern"][:n_layer]]
    if arch == "jamba":
        period, offset = int(c.get("attn_layer_period", 8)), int(c.get("attn_layer_offset", 4))
        return [il % period != offset for il in range(n_layer)]
    return [False] * n_layer


def _swa_from_config(c: Mapping[str, Any], arch: str, n_layer: int,
                     layer_types: list[str]) -> tuple[tuple[bool, ...], int, str]:
    none = ((False,) * n_layer, 0, "none")
    rule = archs.SWA_RULES.get(arch)
    window = c.get("sliding_window")
    if rule is None or (rule.only_if_layers is not None and n_layer != rule.only_if_layers):
        return none  # e.g. Mistral's sliding_window: llama.cpp's llama arch keeps a full cache
    if window in (None, 0) and rule.requires_window:
        return none
    window = rule.forced_window or window or rule.default_window or 0
    if window <= 0:
        return none
    if layer_types:
        is_swa = tuple(t in ("sliding_attention", "chunked_attention") for t in layer_types)
    else:
        n_pattern = int(c.get("sliding_window_pattern") or rule.pattern or 1)
        is_swa = _swa_pattern(n_layer, n_layer, n_pattern, rule.dense_first)
    return is_swa, int(window), rule.swa_type
