"""What serving engines that load Hugging Face checkpoints (vLLM, SGLang) share: the model's dimensions as they
read config.json, the dtype they store each tensor in, the options both declare, and the per-rank memory report.

Facts from vllm-project/vllm (commit 001cabc1, 2026) unless said otherwise:
- `vllm/config/model.py` `_get_and_verify_max_len`: the model's limit is the smallest of the config's length keys
  (max_position_embeddings, n_positions, max_seq_len, seq_length, model_max_length, max_sequence_length,
  max_seq_length, seq_len); a `rope_scaling` other than su / longrope / llama3 multiplies it by its factor (yarn
  multiplies `original_max_position_embeddings`).
- `_get_and_verify_dtype` / `_resolve_auto_dtype`: `--dtype auto` is the config's torch_dtype (`dtype` in newer
  configs), except float32 checkpoints, served in bfloat16.
- Parameters are created in the model dtype and the weight loader copies the file's values into them, so every
  unquantized weight is stored in the model dtype; quantized weights and their scales keep their own dtypes;
  DeepSeek's `e_score_correction_bias` is created float32 (models/deepseek_v2.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import FormatError, UsageError
from ..formats.safetensors import DTYPE_BITS
from ..model import Checkpoint, TensorInfo
from .budget import BudgetVerdict, DeviceVerdict
from .table import MemoryTable

LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
               "max_sequence_length", "max_seq_length", "seq_len")
DTYPE_NAMES = {"float16": "F16", "half": "F16", "bfloat16": "BF16", "float32": "F32", "float": "F32"}
DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4}
PLAIN_PARAMS = ("weight", "bias")
KEEP_F32 = ("e_score_correction_bias",)

def _text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    text = config.get("text_config")
    return {**config, **text} if isinstance(text, Mapping) else config


def _int(c: Mapping[str, Any], *keys: str, default: int | None = None) -> int | None:
    for key in keys:
        value = c.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return default


@dataclass(frozen=True)
class ServingModel:
    """A checkpoint's dimensions as vLLM / SGLang read config.json."""

    architecture: str
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    head_dim_v: int
    vocab: int
    intermediate: int
    moe_intermediate: int
    n_experts: int
    top_k: int
    tie_embeddings: bool
    dtype: str  # safetensors name of the config's torch dtype
    max_len: int | None
    max_len_key: str
    is_mla: bool = False
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    sliding: tuple[int, ...] = ()  # per layer: the window (0 = full attention)
    quant_method: str | None = None
    block: tuple[int, int] | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    def window(self, layer: int) -> int:
        return self.sliding[layer] if layer < len(self.sliding) else 0


def derived_max_len(c: Mapping[str, Any]) -> tuple[int | None, str]:
    """The model's length limit and the key that set it (vLLM's `_get_and_verify_max_len`)."""
    found = [(c[k], k) for k in LENGTH_KEYS if isinstance(c.get(k), int) and not isinstance(c.get(k), bool)]
    if not found:
        return None, ""
    length, key = min(found)
    rope = c.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type")) if isinstance(rope, Mapping) else None
    if kind and kind not in ("su", "longrope", "llama3", "default", "mrope") and "factor" in rope:
        if kind == "yarn" and isinstance(rope.get("original_max_position_embeddings"), int):
            length = rope["original_max_position_embeddings"]
        length = int(length * rope["factor"])
    return length, key


def serving_model(checkpoint: Checkpoint) -> ServingModel:
    """The dimensions vLLM and SGLang use, from config.json (GGUF metadata is not read here).

    Raises:
        FormatError: no config.json, or one without the layer count, widths or heads.
    """
    if not checkpoint.config:
        raise FormatError(checkpoint.source, "no config.json: vLLM and SGLang read the model from it",
                          hint="put the model's config.json next to its safetensors files (GGUF inputs are not "
                               "modelled for vLLM / SGLang yet)")
    c = _text_config(checkpoint.config)
    n_layers, hidden, heads = _int(c, "num_hidden_layers", "n_layer"), _int(c, "hidden_size", "d_model"), \
        _int(c, "num_attention_heads", "n_head")
    if not n_layers or not hidden or not heads:
        raise FormatError(checkpoint.source, "config.json lacks num_hidden_layers, hidden_size or "
                                             "num_attention_heads")
    check_attention_only(checkpoint.source, c)
    kv_heads = _int(c, "num_key_value_heads", "n_head_kv", default=heads) or heads
    head_dim = _int(c, "head_dim", default=hidden // heads) or hidden // heads
    is_mla = bool(c.get("kv_lora_rank"))
    n_experts = _int(c, "n_routed_experts", "num_local_experts", "num_experts", default=0) or 0
    quant = c.get("quantization_config") if isinstance(c.get("quantization_config"), Mapping) else {}
    block = quant.get("weight_block_size") if quant else None
    max_len, key = derived_max_len(c)
    window = _int(c, "sliding_window", default=0) or 0
    return ServingModel(
        architecture=(c.get("architectures") or [c.get("model_type", "?")])[0],
        n_layers=n_layers, hidden=hidden, n_heads=heads, n_kv_heads=kv_heads, head_dim=head_dim,
        head_dim_v=_int(c, "v_head_dim", default=head_dim) or head_dim,
        vocab=_int(c, "vocab_size", default=0) or 0,
        intermediate=_int(c, "intermediate_size", "ffn_hidden_size", default=4 * hidden) or 4 * hidden,
        moe_intermediate=_int(c, "moe_intermediate_size", "intermediate_size", default=0) or 0,
        n_experts=n_experts, top_k=_int(c, "num_experts_per_tok", "experts_per_token", default=0) or 0,
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        dtype=DTYPE_NAMES.get(str(c.get("torch_dtype") or c.get("dtype") or "bfloat16"), "BF16"),
        max_len=max_len, max_len_key=key, is_mla=is_mla,
        kv_lora_rank=_int(c, "kv_lora_rank", default=0) or 0,
        qk_rope_head_dim=_int(c, "qk_rope_head_dim", default=0) or 0,
        qk_nope_head_dim=_int(c, "qk_nope_head_dim", default=0) or 0,
        sliding=_windows(c, n_layers, window),
        quant_method=str(quant.get("quant_method")) if quant.get("quant_method") else None,
        block=(int(block[0]), int(block[1])) if isinstance(block, list) and len(block) == 2 else None,
    )


ATTENTION_LAYER_TYPES = ("full_attention", "sliding_attention", "attention")
STATE_KEYS = ("mamba_d_state", "ssm_state_size", "mamba_expand", "linear_num_value_heads", "state_size")


def check_attention_only(source: str, c: Mapping[str, Any]) -> None:
    """Refuse models with recurrent (Mamba, linear-attention) layers: vLLM keeps their state in its own page
    groups (MambaSpec), which is not modelled; their KV cache would be wrong."""
    kinds = {str(t) for t in c.get("layer_types") or [] if isinstance(t, str)}
    odd = sorted(kinds - set(ATTENTION_LAYER_TYPES))
    if odd or any(k in c for k in STATE_KEYS):
        raise FormatError(source, f"{', '.join(odd) or 'Mamba / SSM'} layers: their recurrent state is not modelled "
                                  "for vLLM / SGLang", hint="use --runtime llamacpp (its state model covers them)")


def _windows(c: Mapping[str, Any], n_layers: int, window: int) -> tuple[int, ...]:
    """Sliding window per layer: `layer_types` (gpt-oss, Gemma 3, Qwen3 …) when given, else every layer when
    `use_sliding_window` is not false (Mistral), else none."""
    types = c.get("layer_types")
    if isinstance(types, list) and len(types) >= n_layers and window:  # a truncated test model keeps the first
        return tuple(window if str(t) == "sliding_attention" else 0 for t in types[:n_layers])
    if window and c.get("use_sliding_window", True) and not c.get("max_window_layers"):
        return (window,) * n_layers
    return (0,) * n_layers


def serve_path(source: str) -> str:
    """The model argument a serving engine takes: a local checkpoint's folder (not its index or single file)."""
    for suffix in (".safetensors.index.json", ".safetensors"):
        if source.endswith(suffix):
            parent = source.rsplit("/", 1)[0] if "/" in source else "."
            return parent
    return source


def model_dtype(model: ServingModel, dtype_option: str | None) -> str:
    """`--dtype`: auto is the config's dtype, float32 served as bfloat16."""
    if dtype_option and dtype_option != "auto":
        return DTYPE_NAMES[dtype_option]
    return "BF16" if model.dtype == "F32" else model.dtype


def runtime_dtype(t: TensorInfo, shape: tuple[int, ...], nbytes: int, dtype: str, fp8_online: bool
                  ) -> tuple[str, int]:
    """The dtype and bytes a serving engine stores a shard (`shape`, `nbytes` in the file's dtype) of tensor t in:
    plain float weights and biases in the model dtype (FP8 for linear weights under online `--quantization fp8`),
    everything quantized as in the file."""
    if t.dtype not in DTYPE_BYTES:
        return t.dtype, nbytes
    param = t.name.rsplit(".", 1)[-1]
    if param not in PLAIN_PARAMS and not t.name.endswith(KEEP_F32):
        return t.dtype, nbytes
    elements = nbytes * 8 // DTYPE_BITS[t.dtype]
    if t.name.endswith(KEEP_F32):
        return "F32", elements * 4
    if fp8_online and param == "weight" and len(shape) >= 2 and t.role not in ("embedding", "output", "router",
                                                                                "norm", "vision"):
        return "F8_E4M3", elements + 4  # one byte per weight and its float32 per-tensor scale
    return dtype, elements * DTYPE_BYTES[dtype]


def check_quantization(model: ServingModel, asked: str | None) -> bool:
    """Whether to quantize to FP8 on load (`--quantization fp8` on an unquantized checkpoint).

    Raises:
        UsageError: a method that contradicts the checkpoint's, as vLLM's `_verify_quantization` refuses it.
    """
    if not asked:
        return False
    have = model.quant_method
    if have is not None:
        compatible = {have, have.replace("-", "_"), f"{have}_marlin", "marlin" if have in ("gptq", "awq") else have}
        if asked not in compatible and not asked.startswith(have):
            raise UsageError(f"Quantization method specified in the model config ({have}) does not match the "
                             f"quantization method specified in the `quantization` argument ({asked})",
                             hint=f"drop --quantization, or pass --quantization {have}")
        return False
    if asked != "fp8":
        raise UsageError(f"--quantization {asked} on an unquantized checkpoint is not modelled",
                         hint="ckpt-size models quantizing on load for fp8 only; give a pre-quantized checkpoint")
    return True


def kv_bytes_per_element(kv_cache_dtype: str | None, dtype: str) -> int:
    """`--kv-cache-dtype`: auto stores the model dtype; fp8 variants one byte."""
    if not kv_cache_dtype or kv_cache_dtype == "auto":
        return DTYPE_BYTES[dtype]
    return 1 if kv_cache_dtype.startswith("fp8") else 2


@dataclass(frozen=True)
class ServingReport:
    """Per-rank memory of a serving engine: the table (weights by role, KV cache, estimates, headroom, free), the
    sizes its verdict needs, and its own numbers (`facts`) for JSON.

    `required[device]` is what the engine needs on that device to start with `min_sequences` requests of the
    full length: the verdict compares it with the budget, so `over_by` says how much memory is missing."""

    table: MemoryTable
    required: Mapping[str, int]
    facts: Mapping[str, Any]
    notes: tuple[str, ...] = ()
    refusal: str | None = None  # the engine's own refusal, when it would not start

    def check(self, budgets: Mapping[str, int]) -> BudgetVerdict:
        devices = tuple(DeviceVerdict(d, b, self.required.get(d, 0) if self.refusal is None or
                                      self.required.get(d, 0) > b else b + 1)
                        for d, b in budgets.items())
        unchecked = tuple(d for d in self.table.devices if d not in budgets and self.table.total(d) > 0)
        return BudgetVerdict(devices, unchecked)

    def as_dict(self) -> dict[str, Any]:
        return {"devices": {d: self.table.row_dict(d) for d in self.table.devices},
                "required": dict(self.required), **dict(self.facts), "refusal": self.refusal,
                "notes": list(self.notes)}


class ServingContext:
    """The context part of the runtime protocol for serving engines (vLLM, SGLang): options carry the engine's
    length limit (field `LENGTH_FIELD`: `max_model_len`, `context_length`) and the concurrent sequences a plan
    must hold (`min_sequences`); the trained context is the model config's."""

    LENGTH_FIELD = ""

    def context(self, options: Any) -> tuple[int, int]:
        return getattr(options, self.LENGTH_FIELD) or 0, options.min_sequences  # 0: the engine derives it

    def placed_context(self, placement: Any, options: Any) -> tuple[int, int]:
        """The length the placed plan runs at: the asked one, else the one the engine derived (its settings)."""
        ctx, parallel = self.context(options)
        return ctx or getattr(placement.detail.settings, self.LENGTH_FIELD), parallel

    def with_context(self, options: Any, *, ctx: int | None = None, parallel: int | None = None) -> Any:
        changes: dict[str, Any] = {}
        if ctx is not None:
            changes[self.LENGTH_FIELD] = ctx
        if parallel is not None:
            changes["min_sequences"] = parallel
        return options.with_(**changes)

    def trained_context(self, checkpoint: Checkpoint) -> int | None:
        return serving_model(checkpoint).max_len
