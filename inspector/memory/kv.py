"""The attention KV cache as llama.cpp allocates it: cells per cache, bytes per layer.

Sources (llama.cpp commit 0c1e5709, read in its source):
- src/llama-context.cpp (constructor): n_ctx is padded to 256; with a unified cache n_ctx_seq = n_ctx and one
  stream, otherwise n_ctx_seq = pad(n_ctx / n_seq_max, 256) and one stream per sequence; n_batch = min(n_ctx,
  n_batch), n_ubatch = min(n_batch, n_ubatch). Quantized V needs flash attention ("auto" turns it on, "off" is an
  error); MLA needs the same K and V type.
- src/llama-kv-cache.cpp (constructor): per layer K = ggml tensor [n_embd_k_gqa(il), kv_size, n_stream] in
  type_k, V = [n_embd_v_gqa(il), kv_size, n_stream] in type_v; with flash attention off V is stored transposed
  and every layer is padded to n_embd_v_gqa_max(); MLA caches no V (`has_v = !is_mla`); a layer's tensors go to
  its layer's device unless --no-kv-offload.
- src/llama-kv-cache-iswa.cpp: sliding-window layers get their own cache of
  GGML_PAD(min(kv_size, n_swa * (unified ? n_seq_max : 1) + n_ubatch), 256) cells (all of kv_size with --swa-full).
- src/llama-kv-cache-dsa.cpp: DSA archs add an indexer key cache (one head of indexer.key_length, type_k, no V).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..formats.ggml_types import GgmlType, row_nbytes, type_by_name
from .hparams import HParams

# common/arg.cpp kv_cache_types: the only types --cache-type-k/-v accept
KV_CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
FLASH_ATTN_MODES = ("on", "off", "auto")
CTX_PAD = 256  # llama-context.cpp: cparams.n_ctx = GGML_PAD(cparams.n_ctx, 256); SWA caches too
DEFAULT_N_BATCH = 2048  # common/common.h n_batch


def pad(x: int, n: int) -> int:
    return (x + n - 1) // n * n


def cache_type(name: str, which: str = "--cache-type-k") -> GgmlType:
    """The ggml type of a KV cache type name, as llama.cpp's option accepts it (f16, q8_0, …)."""
    key = name.strip().lower()
    if key not in KV_CACHE_TYPES:
        raise UsageError(f"{which}: unsupported cache type {name!r}", hint=f"use one of {', '.join(KV_CACHE_TYPES)}")
    gtype = type_by_name(key)
    assert gtype is not None, key
    return gtype


@dataclass(frozen=True)
class ContextShape:
    """llama.cpp's context parameters for `-c n_ctx_flag -np n_seq [-kvu] -ub n_ubatch`."""

    n_ctx_flag: int  # the -c value: context per sequence × sequences
    n_ctx: int  # padded total
    n_ctx_seq: int  # cells per stream in the full-attention cache
    n_seq: int
    n_stream: int
    n_ubatch: int
    unified: bool

    @property
    def cells(self) -> int:
        """Cells of the full-attention cache over all streams."""
        return self.n_ctx_seq * self.n_stream

    def swa_cells_per_stream(self, n_swa: int, swa_full: bool = False) -> int:
        if swa_full:
            return self.n_ctx_seq
        return pad(min(self.n_ctx_seq, n_swa * (self.n_seq if self.unified else 1) + self.n_ubatch), CTX_PAD)


def context_shape(ctx: int, parallel: int = 1, *, ubatch: int = 512, unified: bool = False,
                  n_batch: int = DEFAULT_N_BATCH, total: int | None = None) -> ContextShape:
    """`ctx` is the context of each sequence; llama.cpp is given `-c ctx*parallel -np parallel`, or `-c total`
    when the total was given (llama.cpp's own -c, shared by the sequences)."""
    if ctx <= 0:
        raise UsageError(f"--ctx must be a positive number of tokens, got {ctx}")
    if parallel <= 0:
        raise UsageError(f"--parallel must be at least 1, got {parallel}")
    if ubatch <= 0:
        raise UsageError(f"--ubatch-size must be positive, got {ubatch}")
    flag = total if total is not None else ctx * parallel
    n_ctx = pad(flag, CTX_PAD)
    if unified or parallel == 1:
        n_ctx_seq, n_stream = n_ctx, 1
    else:
        n_ctx_seq, n_stream = pad(n_ctx // parallel, CTX_PAD), parallel
        n_ctx = n_ctx_seq * parallel
    batch = min(n_ctx, n_batch)
    return ContextShape(flag, n_ctx, n_ctx_seq, parallel, n_stream, min(batch, ubatch), unified or parallel == 1)


@dataclass(frozen=True)
class LayerKV:
    """The cache tensors of one layer: cells over all streams and exact bytes."""

    layer: int
    kind: str  # "full" or "swa"
    cells: int
    k_bytes: int
    v_bytes: int
    indexer_bytes: int = 0

    @property
    def bytes(self) -> int:
        return self.k_bytes + self.v_bytes + self.indexer_bytes


def resolve_flash_attn(mode: str, type_v: GgmlType) -> bool:
    """llama_init_from_model: quantized V forces FA on from auto and is an error with FA off. We take auto as on:
    the CPU, CUDA and Metal backends support flash attention (llama.cpp resolves auto per device)."""
    m = mode.strip().lower()
    if m not in FLASH_ATTN_MODES:
        raise UsageError(f"--flash-attn: {mode!r} is not on, off or auto")
    quantized = type_v.block_size > 1
    if m == "off" and quantized:
        raise UsageError(f"a quantized V cache ({type_v.name.lower()}) requires flash attention",
                         hint="use --flash-attn on or auto, or an f16/bf16/f32 V cache")
    return m != "off"


def check_types(hp: HParams, type_k: GgmlType, type_v: GgmlType, flash_attn: bool) -> None:
    """The combinations llama.cpp refuses (llama_init_from_model in src/llama-context.cpp): MLA with different K
    and V types; with flash attention, a quantized type whose block does not divide a head."""
    if hp.is_mla and type_k.type_id != type_v.type_id:
        raise UsageError(f"{hp.arch} uses MLA: llama.cpp needs the same K and V cache types "
                         f"(got {type_k.name.lower()} and {type_v.name.lower()})", hint="use --kv-type T")
    for gtype, head, which in ((type_k, hp.head_k, "K"), (type_v, hp.head_v, "V")):
        if gtype.block_size == 1:
            continue
        for il in range(hp.n_layer):
            if flash_attn and hp.attn_kv[il] and head(il) % gtype.block_size:
                raise UsageError(f"{which} cache type {gtype.name.lower()} (block {gtype.block_size}) does not "
                                 f"divide the head size {head(il)} of layer {il}")


def kv_layers(hp: HParams, shape: ContextShape, type_k: GgmlType, type_v: GgmlType, *, flash_attn: bool,
              swa_full: bool = False) -> tuple[LayerKV, ...]:
    """Every main-context attention cache of the model, one entry per layer that owns one."""
    swa_cells = shape.swa_cells_per_stream(hp.n_swa, swa_full) if any(hp.is_swa) else 0
    out = []
    for il in range(hp.n_layer_all):
        if not hp.attn_kv[il]:
            continue
        swa = hp.is_swa[il] and hp.n_swa > 0
        rows = (swa_cells if swa else shape.n_ctx_seq) * shape.n_stream
        k, v, idx = _cell_bytes(hp, il, type_k, type_v, flash_attn)
        out.append(LayerKV(il, "swa" if swa else "full", rows, k * rows, v * rows, idx * rows))
    return tuple(out)


def _cell_bytes(hp: HParams, il: int, type_k: GgmlType, type_v: GgmlType, flash_attn: bool) -> tuple[int, int, int]:
    """Bytes of one cache cell of layer `il`: K, V (none under MLA; padded to the widest layer without flash
    attention) and the DSA indexer key."""
    k = row_nbytes(type_k, _whole(hp.n_embd_k_gqa(il), type_k, il, "K"))
    v = 0
    if not hp.is_mla:
        width = hp.n_embd_v_gqa(il) if flash_attn else hp.n_embd_v_gqa_max()
        v = row_nbytes(type_v, _whole(width, type_v, il, "V"))
    idx = 0
    if hp.indexer_layers and hp.indexer_layers[il]:
        idx = row_nbytes(type_k, _whole(hp.indexer_head_size, type_k, il, "indexer K"))
    return k, v, idx


def _whole(width: int, gtype: GgmlType, il: int, what: str) -> int:
    if width % gtype.block_size:
        raise UsageError(f"{what} cache type {gtype.name.lower()} needs rows in blocks of {gtype.block_size}; "
                         f"layer {il} has {width}")
    return width


def kv_bytes_per_token(hp: HParams, type_k: GgmlType, type_v: GgmlType, *, flash_attn: bool = True) -> int:
    """Bytes one token adds to the caches of the full-attention layers (SWA caches stop growing at their window)."""
    return sum(sum(_cell_bytes(hp, il, type_k, type_v, flash_attn)) for il in range(hp.n_layer_all)
               if hp.attn_kv[il] and not (hp.is_swa[il] and hp.n_swa > 0))
