"""KTransformers' memory beyond the weights. KTransformers keeps its own KV cache (a static cache sized by its
--cache_lens, or flashinfer pages); we size it with the ggml model, which for MLA stores the same 576 values per
token per layer, and its buffers with llama.cpp's estimate, and say so in a note."""
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
