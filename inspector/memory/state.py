"""The fixed per-sequence state of recurrent layers (Mamba, RWKV, gated delta-net, short-conv, KDA …).

Source: src/llama-memory-recurrent.cpp (llama.cpp commit 0c1e5709). For every trunk layer (il < n_layer()) that the
filter keeps, it allocates r = [n_embd_r(), mem_size·(1 + n_rs_seq)] and s = [n_embd_s(), mem_size·(1 + n_rs_seq)]
in f32 (create_memory passes GGML_TYPE_F32 for both), with mem_size = max(1, n_seq_max) and n_rs_seq = 0 unless
speculative rollback is used. The state does not grow with the context. It sits on the layer's device unless
--no-kv-offload (same `offload` flag as the KV cache).
"""
from __future__ import annotations

from dataclasses import dataclass

from .hparams import HParams

STATE_TYPE_BYTES = 4  # f32


@dataclass(frozen=True)
class LayerState:
    layer: int
    r_bytes: int
    s_bytes: int

    @property
    def bytes(self) -> int:
        return self.r_bytes + self.s_bytes


def state_layers(hp: HParams, n_seq: int, *, n_rs_seq: int = 0) -> tuple[LayerState, ...]:
    rows = max(1, n_seq) * (1 + n_rs_seq)
    r = hp.n_embd_r() * STATE_TYPE_BYTES * rows
    s = hp.n_embd_s() * STATE_TYPE_BYTES * rows
    return tuple(LayerState(il, r, s) for il in range(hp.n_layer) if hp.recr[il])
