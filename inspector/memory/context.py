"""Reading the ggml memory options into MemoryOptions, and the context part of the runtime protocol for the
runtimes that share the ggml memory model."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from ..errors import UsageError
from ..model import Checkpoint
from .hparams import hparams_of
from .kv import cache_type
from .options import MEMORY_DESTS
from .plan import MemoryOptions


def memory_options_from(values: Mapping[str, Any], *, budgets: bool = False) -> MemoryOptions | None:
    """MemoryOptions from option values (None when no memory option was given and no budget asks for one)."""
    given = {k: values[k] for k in MEMORY_DESTS + ("ctx_size",)
             if values.get(k) is not None and values.get(k) is not False}
    if not given:
        return MemoryOptions() if budgets else None
    options = MemoryOptions()
    if "ctx_size" in given:
        if "ctx" in given:
            raise UsageError("--ctx is the context of each sequence and -c (--ctx-size) the total shared by the "
                             "sequences; give one")
        total = given.pop("ctx_size")
        given.update(ctx=max(1, total // given.get("parallel", 1)), ctx_total=total)
    if "kv_type" in given:
        if "cache_type_k" in given or "cache_type_v" in given:
            raise UsageError("--kv-type sets both cache types; give it or --cache-type-k/-v, not both")
        cache_type(given["kv_type"], "--kv-type")  # an unknown type is named under the flag the user typed
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
