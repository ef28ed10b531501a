"""Training memory: the per-parameter arithmetic (16 B/param for mixed-precision AdamW) and activations."""
from __future__ import annotations

import pytest

from inspector.errors import UsageError
from inspector.memory.train import TrainOptions, activation_bytes_per_token_layer, train_memory
from inspector.model import Checkpoint, TensorInfo

P = 1_000_000_000  # one billion parameters


def _checkpoint() -> Checkpoint:
    # a llama-shaped 2-layer model: h 1,024, 8 heads × 128, 2 KV heads, ff 4,096, vocab 32,000; P set by hand
    tensor = TensorInfo("w", (1,), "BF16", 2 * P, 0, 0, P, "other")
    metadata = {"general.architecture": "llama", "llama.block_count": 2, "llama.embedding_length": 1024,
                "llama.attention.head_count": 8, "llama.attention.head_count_kv": 2,
                "llama.feed_forward_length": 4096, "tokenizer.ggml.tokens": ["a"] * 32000}
    return Checkpoint("m.gguf", "gguf", "llama", (), (tensor,), metadata)


def test_mixed_precision_adamw_is_16_bytes_per_param() -> None:
    # bf16 weights 2 + bf16 grads 2 + fp32 master 4 + AdamW m, v fp32 8 = 16 B/param
    mem = train_memory(_checkpoint(), TrainOptions(dtype="bf16", optimizer="adamw"))
    assert (mem.weights, mem.gradients, mem.master_weights, mem.optimizer) == (2 * P, 2 * P, 4 * P, 8 * P)
    assert mem.static == 16 * P
    # fp32 training (PyTorch autocast keeps fp32 weights): 4 + 4 + 8 = 16 B/param, no master copy
    fp32 = train_memory(_checkpoint(), TrainOptions(dtype="f32"))
    assert (fp32.master_weights, fp32.static) == (0, 16 * P)


def test_other_optimizers() -> None:
    # 8-bit Adam: 2 states × (1 B + 4 B absmax / 256) = 2.03125 B/param → 2,031,250,000 B
    assert train_memory(_checkpoint(), TrainOptions(optimizer="adamw8bit")).optimizer == 2_031_250_000
    assert train_memory(_checkpoint(), TrainOptions(optimizer="sgd")).optimizer == 0
    assert train_memory(_checkpoint(), TrainOptions(optimizer="sgd_momentum")).optimizer == 4 * P
    with pytest.raises(UsageError):
        train_memory(_checkpoint(), TrainOptions(optimizer="lion"))


def test_activations_with_and_without_checkpointing() -> None:
    ck = _checkpoint()
    # per token per layer (flash attention): attention 2·(2·1,024 + 1,024 + 2·256 + 1,024) + 4·8 = 9,248;
    # MLP 2·2·1,024 + 2·4·4,096 = 36,864 → 46,112 B
    from inspector.memory import hparams_of

    hp = hparams_of(ck)
    assert activation_bytes_per_token_layer(hp, 4096, True) == 46_112
    # without flash attention the scores and softmax add 2 × 2 B × 8 heads × 4,096 = 131,072 B per token
    assert activation_bytes_per_token_layer(hp, 4096, False) == 46_112 + 131_072
    mem = train_memory(ck, TrainOptions(micro_batch=2, seq_len=4096))
    tokens = 2 * 4096
    assert mem.activations == tokens * 46_112 * 2
    # checkpointed: layer inputs 2 B × 1,024 × 2 layers + one layer rebuilt (46,112) per token
    assert mem.activations_checkpointed == tokens * (2 * 1024 * 2 + 46_112)
    # logits: 32,000 × (2 + 4) B per token
    assert mem.logits == tokens * 32_000 * 6
    assert mem.total - mem.total_checkpointed == mem.activations - mem.activations_checkpointed
