"""What llama.cpp does per architecture for its runtime memory: which archs cache nothing, which are recurrent or
hybrid, where sliding-window layers are and how wide their window is. Keyed by GGUF `general.architecture` only:
how a Hugging Face config.json becomes those names and KVs is rules/hf_architectures.yaml (inspector.convert).

Every entry was read in llama.cpp's source (commit 0c1e5709, 2026-10-01, as vendored by llama-cpp-python 0.3.36):
`src/llama-arch.cpp` (`llm_arch_is_recurrent`, `llm_arch_is_hybrid`, arch names), `src/llama-model.cpp`
(`create_memory`: which cache class each arch gets and its layer filters; `load_swa_pattern`) and each
`src/models/<arch>.cpp` (`load_arch_hparams`: SWA defaults, recurrent-layer rules). Names are GGUF
`general.architecture` strings. These are facts about another program; docs/memory.md says how they are used.
"""
from __future__ import annotations

from dataclasses import dataclass

# create_memory(): `res = nullptr` — encoders, diffusion models and codecs keep no KV cache at all.
NO_MEMORY_ARCHS = frozenset({
    "bert", "jina-bert-v2", "jina-bert-v3", "nomic-bert", "nomic-bert-moe", "neo-bert", "eurobert",
    "wavtokenizer-dec", "modern-bert", "gemma-embedding", "dream", "llada", "llada-moe", "rnd1",
})

# llm_arch_is_recurrent(): llama_memory_recurrent only, over every trunk layer.
RECURRENT_ARCHS = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})

# llm_arch_is_hybrid(): an attention KV cache for some layers and a recurrent state for the others.
HYBRID_ARCHS = frozenset({
    "jamba", "falcon-h1", "plamo2", "granitehybrid", "lfm2", "lfm2moe", "nemotron_h", "nemotron_h_moe",
    "qwen3next", "kimi-linear", "bailingmoe3", "kimi-k3", "glm5-next", "qwen35", "qwen35moe", "qwen4exp",
    "deepseek4", "minimax-01",
})

# How each hybrid marks its recurrent layers (models/<arch>.cpp load_arch_hparams):
# - "kv_heads_zero": is_recr(il) = head_count_kv(il) == 0 (jamba.cpp, lfm2.cpp, granite-hybrid.cpp, …)
# - "interval": `attention.recurrent_layers` array, else il < n_layer and (il + 1) % full_attention_interval != 0,
#   interval 4 by default (qwen3next.cpp, qwen35.cpp, qwen35moe.cpp, qwen4exp.cpp, minimax-01.cpp)
# - "all": every layer has both an attention cache and a recurrent state (falcon-h1.cpp)
# - "nemotron": recurrent when head_count_kv == 0 and feed_forward_length == 0; attention only where
#   head_count_kv > 0 and feed_forward_length == 0 (nemotron-h.cpp; create_memory's filters)
RECURRENT_LAYER_RULE = {
    "jamba": "kv_heads_zero", "plamo2": "kv_heads_zero", "granitehybrid": "kv_heads_zero",
    "lfm2": "kv_heads_zero", "lfm2moe": "kv_heads_zero", "kimi-linear": "kv_heads_zero",
    "bailingmoe3": "kv_heads_zero", "kimi-k3": "kv_heads_zero", "glm5-next": "kv_heads_zero",
    "qwen3next": "interval", "qwen35": "interval", "qwen35moe": "interval", "qwen4exp": "interval",
    "minimax-01": "interval",
    "falcon-h1": "all",
    "nemotron_h": "nemotron", "nemotron_h_moe": "nemotron",
}

# create_memory(): these hybrids filter the attention cache to trunk layers (il < n_layer()); the other hybrids'
# default filter (!is_recr) would also keep a nextn layer's attention cache.
HYBRID_TRUNK_ONLY = frozenset({"qwen3next", "qwen35", "qwen35moe", "qwen4exp", "minimax-01", "glm5-next"})

# Archs whose main-context memory is a class we do not model byte for byte (compressed / multi-stream caches).
UNMODELLED_ARCHS = {
    "deepseek4": "DeepSeek-V4's compressed KV cache (llama-kv-cache-dsv4.cpp)",
    "minimax-m3": "MiniMax-M3's MSA cache (llama-kv-cache-msa.cpp)",
    "dots3note": "dots3note's DSA + SWA cache (llama-kv-cache-dsa-iswa.cpp)",
    "hy_v4": "HY-V4's indexer cache (llama-kv-cache-dsa.cpp)",
    "qwen4exp": "Qwen4-exp's indexer cache (llama-memory-hybrid-idx.cpp)",
}

# DSA archs: an MLA cache plus a lightning-indexer key cache (llama-kv-cache-dsa.cpp: one K head of
# `attention.indexer.key_length`, in the K cache type, no V). glm-dsa only on layers whose
# `attention.indexer.types` entry is "full" (1); deepseek32 on every trunk layer.
DSA_ARCHS = frozenset({"deepseek32", "glm-dsa"})


@dataclass(frozen=True)
class SwaRule:
    """How an arch finds its sliding-window layers (models/<arch>.cpp, llama-model.cpp load_swa_pattern).

    `pattern`: period for `set_swa_pattern(n, dense_first)` when the GGUF has no `sliding_window_pattern` array
    (an integer `sliding_window_pattern` overrides the period). None means the per-layer array is required.
    `requires_window`: SWA is on only when `attention.sliding_window` is present and > 0.
    `default_window` is used when the key is absent; `forced_window` replaces whatever the file says.
    """

    pattern: int | None
    dense_first: bool = False
    requires_window: bool = False
    default_window: int | None = None
    forced_window: int | None = None
    swa_type: str = "standard"
    only_if_layers: int | None = None  # exaone4: SWA only for the 64-layer (32B) model


SWA_RULES: dict[str, SwaRule] = {
    "gemma2": SwaRule(2, default_window=4096),
    "gemma3": SwaRule(6, requires_window=True),
    "gemma3n": SwaRule(5),
    "gemma4": SwaRule(None),
    "gemma4-assistant": SwaRule(None),
    "gpt-oss": SwaRule(2),
    "llama4": SwaRule(4, forced_window=8192, swa_type="chunked"),  # off only when sliding_window == 0
    "cohere2": SwaRule(4),
    "cohere2moe": SwaRule(4, dense_first=True),
    "exaone4": SwaRule(4, default_window=4096, only_if_layers=64),
    "exaone-moe": SwaRule(4, default_window=128),
    "afmoe": SwaRule(4, requires_window=True),
    "mellum": SwaRule(4, requires_window=True),
    "olmo2": SwaRule(4, requires_window=True),
    "plamo3": SwaRule(8, requires_window=True),
    "smallthinker": SwaRule(4, dense_first=True, requires_window=True, forced_window=4096),
    "laguna": SwaRule(4, dense_first=True, requires_window=True),
    "muse-glimmer": SwaRule(4),
    "granite_swa": SwaRule(None),
    "maple": SwaRule(None),
    "mimo2": SwaRule(None),
    "spark2_5": SwaRule(None),
    "step35": SwaRule(None),
    # lfm2: with sliding_window > 0, every attention (non-recurrent) layer is SWA (lfm2.cpp)
}
LFM2_SWA_ARCHS = frozenset({"lfm2"})

# gemma3n / gemma4: layers from n_layer_kv_from_start on reuse an earlier layer's cache (has_kv == false).
# gemma3n: fixed 20 (gemma3n.cpp); gemma4: n_layer_all - attention.shared_kv_layers (gemma4.cpp).
KV_FROM_START_FIXED = {"gemma3n": 20}
KV_SHARED_LAYERS_KEY_ARCHS = frozenset({"gemma4"})
