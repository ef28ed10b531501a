"""The options of the ggml memory model (KV cache, state, buffers), spelled as llama.cpp spells them. Shared by
the runtimes that allocate memory the llama.cpp way (literal plans, llama.cpp, KTransformers' KV estimate)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from ..errors import UsageError
from ..model import Checkpoint
from ..options import OptionSpec
from .hparams import hparams_of
from .plan import MemoryOptions

GGML_MEMORY_OPTIONS = (
    OptionSpec("ctx", ("--ctx",), "int", "Context length of EACH sequence (llama.cpp's -c is the total: ctx x "
               "parallel); adds KV cache, state and buffers per device.", metavar="N", minimum=1, shared=True, memory=True),
    OptionSpec("parallel", ("--parallel", "-np"), "int", "Parallel sequences (llama.cpp gets -c ctx*N -np N).",
               metavar="N", minimum=1, shared=True, memory=True),
    OptionSpec("kv_type", ("--kv-type",), "str", "K and V cache type (f16, q8_0, q4_0 …).", metavar="TYPE",
               shared=True, memory=True),
    OptionSpec("cache_type_k", ("--cache-type-k", "-ctk"), "str", "K cache type (default f16).", metavar="TYPE",
               shared=True, memory=True),
    OptionSpec("cache_type_v", ("--cache-type-v", "-ctv"), "str", "V cache type (default f16).", metavar="TYPE",
               shared=True, memory=True),
    OptionSpec("no_kv_offload", ("--no-kv-offload", "-nkvo"), "flag", "Keep the KV cache on the CPU.", shared=True, memory=True),
    OptionSpec("flash_attn", ("--flash-attn", "-fa"), "choice", "Flash attention (changes V padding and buffers).",
               choices=("on", "off", "auto"), shared=True, memory=True),
    OptionSpec("ubatch", ("--ubatch-size", "-ub"), "int", "Physical batch size (compute buffers).", metavar="N",
               minimum=1, shared=True, memory=True),
    OptionSpec("kv_unified", ("--kv-unified", "-kvu"), "flag", "One KV buffer shared by all sequences (llama.cpp "
               "-kvu).", shared=True, memory=True),
    OptionSpec("swa_full", ("--swa-full",), "flag", "Full-size cache for sliding-window layers.", shared=True, memory=True),
    OptionSpec("overhead", ("--overhead",), "float", "Safety margin in percent, shown as its own row.",
               metavar="PCT", minimum=0, shared=True, memory=True),
)
MEMORY_DESTS = tuple(o.dest for o in GGML_MEMORY_OPTIONS)

# Options several llama.cpp-family runtimes declare (llama.cpp and its fork PowerInfer): one OptionSpec object
# each, since the command line refuses two different specs under one dest. Each runtime reads the value its own
# way (PowerInfer refuses -ngl for a sparse PWRI model, as its llama_model_load does).
NGL_OPTION = OptionSpec("ngl", ("-ngl", "--n-gpu-layers"), "str", "llama.cpp: layers on GPUs (N, all, auto).",
                        metavar="N", native=("--gpu-layers",), searched=True)
CTX_SIZE_OPTION = OptionSpec("ctx_size", ("-c", "--ctx-size"), "int", "llama.cpp's total context, shared by the -np "
                             "sequences (each gets -c / -np); use --ctx for the context of each sequence.",
                             metavar="N", minimum=1, memory=True)


def memory_options_from(values: Mapping[str, Any], *, budgets: bool = False) -> MemoryOptions | None:
    """MemoryOptions from option values (None when no memory option was given and no budget asks for one)."""
    given = {k: values[k] for k in MEMORY_DESTS + ("ctx_size",)
             if values.get(k) is not None and values.get(k) is not False}
    if not given:
        return MemoryOptions() if budgets else None
    options = MemoryOptions()
    if "ctx_size" in given:
        if "ctx" in given:
            raise UsageError("--ctx is the context of each sequence and -c (--ctx-size) llama.cpp's total; give one")
        total = given.pop("ctx_size")
        given.update(ctx=max(1, total // given.get("parallel", 1)), ctx_total=total)
    if "kv_type" in given:
        if "cache_type_k" in given or "cache_type_v" in given:
            raise UsageError("--kv-type sets both cache types; give it or --cache-type-k/-v, not both")
        options = options.with_kv_type(given.pop("kv_type"))
    if "overhead" in given:
        given["overhead_pct"] = given.pop("overhead")
    return options.with_(**given)


class GgmlContext:
    """The context part of the runtime protocol for runtimes whose options object (a dataclass) carries the ggml
    `memory: MemoryOptions | None`: the context per sequence and the parallel sequences, varied by the planner."""

    def context(self, options: Any) -> tuple[int, int]:
        memory = options.memory or MemoryOptions()
        return memory.ctx, memory.parallel

    def with_context(self, options: Any, *, ctx: int | None = None, parallel: int | None = None) -> Any:
        changes = {k: v for k, v in (("ctx", ctx), ("parallel", parallel)) if v is not None}
        return replace(options, memory=(options.memory or MemoryOptions()).with_(**changes))

    def trained_context(self, checkpoint: Checkpoint) -> int | None:
        return hparams_of(checkpoint).n_ctx_train
