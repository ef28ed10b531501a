"""What PowerInfer's sparse loader creates, in which order, and in which offload tier: facts as tables.

Source: SJTU-IPADS/PowerInfer `llama.cpp` (snapshot d3ebd7c5, file last changed 1113aef, 2025-02-19):
- `llm_load_sparse_model_tensors` creates the tensors of a PWRI file per architecture (llama, refact and bamboo share
  one branch; opt; falcon; anything else: "unknown architecture"), each through
  `buffered_tensor_allocator::buffered_alloc`, in the order of the `*_ORDER` tables below.
- `get_offloading_level(llm_tensor)` sorts each tensor *type* (biases follow their weight's type) into a tier:
  `TENSOR_NO_OFFLOAD` and `TENSOR_OFFLOAD_FFN` are created on the CPU; the others wait in one queue per tier and
  `buffered_tensor_allocator::flush` walks the tiers ATTN -> MLP_PRED -> FFN_IO -> OUTPUT, each in creation order.
- `llama_model_loader::done_getting_tensors` fails ("wrong number of tensors") when the file holds a tensor the
  loader did not create, and `create_tensor` fails when a required one is missing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import FormatError
from ...model import Checkpoint, TensorInfo

# the tiers, in the order flush() offers them VRAM (enum tensor_offloading_levels)
NO_OFFLOAD, FFN, ATTN, MLP_PRED, FFN_IO, OUTPUT = "no_offload", "ffn", "attn", "mlp_pred", "ffn_io", "output"
GPU_TIERS = (ATTN, MLP_PRED, FFN_IO, OUTPUT)

# get_offloading_level: tensor kind (the GGUF name without `blk.N.` and `.weight`/`.bias`) -> tier
TIER_OF_KIND = {
    "token_embd": NO_OFFLOAD, "token_embd_norm": NO_OFFLOAD, "position_embd": NO_OFFLOAD, "rope_freqs": NO_OFFLOAD,
    "output": OUTPUT, "output_norm": OUTPUT,
    "attn_q": ATTN, "attn_k": ATTN, "attn_v": ATTN, "attn_qkv": ATTN, "attn_output": ATTN, "attn_norm": ATTN,
    "attn_norm_2": ATTN, "attn_rot_embd": ATTN, "attn_q_norm": ATTN, "attn_k_norm": ATTN,
    "ffn_gate": FFN, "ffn_down": FFN, "ffn_up": FFN, "ffn_down_t": FFN,
    "ffn_norm": FFN_IO,
    "fc1": MLP_PRED, "fc2": MLP_PRED,
}

# llm_load_sparse_model_tensors, per architecture: the global tensors, then each block's, in creation order.
# A trailing "?" marks a tensor created only when present (falcon-40B's attn_norm_2, checked with gguf_find_tensor).
LLAMA_ORDER = (
    ("token_embd.weight", "output_norm.weight", "output.weight"),
    ("attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight", "ffn_norm.weight",
     "ffn_gate.weight", "ffn_down_t.weight", "fc1.weight", "fc2.weight", "ffn_up.weight"),
)
OPT_ORDER = (  # opt: no output matrix (commented out in the loader), learned position embeddings, biases
    ("token_embd.weight", "position_embd.weight", "output_norm.weight", "output_norm.bias"),
    ("attn_norm.weight", "attn_norm.bias", "attn_q.weight", "attn_q.bias", "attn_k.weight", "attn_k.bias",
     "attn_v.weight", "attn_v.bias", "attn_output.weight", "attn_output.bias", "ffn_norm.weight", "ffn_norm.bias",
     "ffn_down_t.weight", "ffn_down_t.bias", "fc1.weight", "fc2.weight", "ffn_up.weight", "ffn_up.bias"),
)
FALCON_ORDER = (  # falcon: fused QKV, no gate, no ffn_norm (parallel attention and FFN)
    ("token_embd.weight", "output_norm.weight", "output_norm.bias", "output.weight"),
    ("attn_norm.weight", "attn_norm.bias", "attn_norm_2.weight?", "attn_norm_2.bias?", "attn_qkv.weight",
     "attn_output.weight", "ffn_down_t.weight", "fc1.weight", "fc2.weight", "ffn_up.weight"),
)
SPARSE_ARCHS = {"llama": LLAMA_ORDER, "refact": LLAMA_ORDER, "bamboo": LLAMA_ORDER, "opt": OPT_ORDER,
                "falcon": FALCON_ORDER}

_BLOCK = re.compile(r"^blk\.(\d+)\.(.+)$")


def kind_of(name: str) -> str:
    """`blk.3.ffn_down_t.weight` -> `ffn_down_t`; `output_norm.bias` -> `output_norm`."""
    m = _BLOCK.match(name)
    base = m.group(2) if m else name
    return re.sub(r"\.(weight|bias)$", "", base)


def tier_of(name: str) -> str:
    return TIER_OF_KIND[kind_of(name)]


@dataclass(frozen=True)
class SparseLayout:
    """A PWRI checkpoint's tensors in the loader's creation order, each with its tier."""

    arch: str
    n_layer: int
    ordered: tuple[tuple[TensorInfo, str], ...]  # (tensor, tier) in creation order

    def tier(self, tier: str) -> tuple[TensorInfo, ...]:
        return tuple(t for t, level in self.ordered if level == tier)

    def ffn_matrices(self, layer: int) -> tuple[TensorInfo, ...]:
        """The layer's neuron-indexed matrices (gate, up, down_t): the ones PowerInfer slices by rows."""
        return tuple(t for t, level in self.ordered if level == FFN and t.layer == layer and len(t.shape) == 2)


def sparse_layout(checkpoint: Checkpoint, n_layer: int) -> SparseLayout:
    """The loader's view of a PWRI checkpoint.

    Raises:
        FormatError: an architecture the sparse loader does not handle, a tensor it does not create (or one it
            needs that is missing): PowerInfer fails to load such a file.
    """
    arch = str(checkpoint.metadata.get("general.architecture"))
    order = SPARSE_ARCHS.get(arch)
    if order is None:
        raise FormatError(checkpoint.source, f"PowerInfer's sparse loader handles {', '.join(sorted(SPARSE_ARCHS))}, "
                                             f"not {arch!r} (llm_load_sparse_model_tensors: unknown architecture)")
    by_name = {t.name: t for t in checkpoint.tensors}
    names = list(order[0]) + [f"blk.{il}.{n}" for il in range(n_layer) for n in order[1]]
    ordered = []
    for name in names:
        optional = name.endswith("?")
        name = name.rstrip("?")
        t = by_name.pop(name, None)
        if t is None:
            if optional:
                continue
            raise FormatError(checkpoint.source, f"PowerInfer's sparse loader needs tensor {name!r}, which the "
                                                 "file lacks (llama_model_loader: tensor not found)")
        ordered.append((t, tier_of(name)))
    if by_name:
        extra = sorted(by_name)
        raise FormatError(checkpoint.source, f"{len(extra)} tensor(s) PowerInfer's {arch} sparse loader does not "
                                             f"create, e.g. {extra[0]!r} (done_getting_tensors: wrong number of tensors)")
    return SparseLayout(arch, n_layer, tuple(ordered))
