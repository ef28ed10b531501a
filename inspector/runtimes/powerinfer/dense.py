"""PowerInfer with a dense (GGUF-magic) model: its llama.cpp fork's `-ngl` placement of late 2023.

Source: SJTU-IPADS/PowerInfer `llama.cpp` (d3ebd7c5), `llm_load_tensors` (taken when the file is not PWRI):
- `i_gpu_start = n_layer - n_gpu_layers`; blocks il >= i_gpu_start go to the GPU, the others stay on the CPU;
- the output norm and the output matrix go to the GPU only when n_gpu_layers > n_layer (non-Windows builds);
- token_embd (and every tensor outside the blocks but the output head) stays on the CPU;
- `llama_kv_cache_init`: V on the GPU when n_gpu_layers > n_layer + 1, K when > n_layer + 2.
So `-ngl n_layer` offloads every block but not the head, and `-ngl n_layer + 3` everything with the cache; this is
the rule of llama.cpp before the KV cache moved per layer (upstream PR #4309), not today's.
`--vram-budget` plays no part here (llama_model_load reads it on the sparse path only).
"""
from __future__ import annotations

from dataclasses import dataclass

from ...model import Checkpoint
from .place import GPU


@dataclass(frozen=True)
class DensePlan:
    checkpoint: Checkpoint
    n_gpu_layers: int
    n_layer: int
    v_on_gpu: bool
    k_on_gpu: bool
    notes: tuple[str, ...] = ()
    mode: str = "dense"

    @property
    def read_fractions(self) -> dict:
        return {}


def place_dense(checkpoint: Checkpoint, n_layer: int, ngl: int) -> DensePlan:
    start = n_layer - ngl
    head = ngl > n_layer
    tensors = []
    for t in checkpoint.tensors:
        if t.layer is not None and t.layer < n_layer:
            device = GPU if t.layer >= start else "cpu"
        elif t.role in ("output",) or t.name.startswith("output_norm."):
            device = GPU if head else "cpu"
        else:
            device = "cpu"
        tensors.append(t.with_(device=device))
    return DensePlan(checkpoint.with_(tensors=tuple(tensors)), ngl, n_layer, ngl > n_layer + 1, ngl > n_layer + 2)
