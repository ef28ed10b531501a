"""KTransformers' memory beyond the weights.

KTransformers sizes its KV cache from --cache_lens (kvcache-ai/ktransformers ktransformers/server/args.py,
ArgumentParser.parse_args: gpu_memory_size = cache_lens x 2 bytes x 576 x 61 for DeepSeek-V3's MLA, and
cache_lens x 2 x 2 x layers x kv_heads x head_dim for the Qwen/GLM MoE models): 16-bit K and V per token and layer,
which is what the ggml model computes for an f16 cache (MLA: 576 values, no V). Its buffers are not documented; we
show llama.cpp's estimate, and say so in a note."""
from __future__ import annotations

from dataclasses import replace

from ...memory.hparams import HParams
from ...memory.plan import MemoryOptions, MemoryPlan, memory_plan
from ...model import Checkpoint

KV_NOTE = ("KTransformers keeps its own KV cache; it is sized with llama.cpp's formulas (for MLA the same 576 "
           "values per token per layer) and its buffers with llama.cpp's estimate")


def kt_memory_plan(placed: Checkpoint, options: MemoryOptions, *, hparams: HParams | None = None) -> MemoryPlan:
    """No llama.cpp staging copy of CPU weights: KTransformers runs CPU experts on the CPU (KExpertsCPU)."""
    plan = memory_plan(placed, options, hparams=hparams, cpu_staging=False)
    return replace(plan, notes=plan.notes + (KV_NOTE,))
