"""How far a plan stretches: the largest context per sequence and the most parallel sequences within budgets.

Both are found by bisection over a monotone test (more context or more sequences never needs less memory), so
any runtime's memory model can be searched the same way.
"""
from __future__ import annotations

from typing import Callable

from ..monotone import largest_fitting

MAX_PARALLEL = 256  # llama.cpp's -np ceiling (LLAMA_MAX_SEQ, src/llama-cparams.h)
MAX_CTX_FALLBACK = 1 << 20  # upper end of the context search when the model states no trained context
CTX_STEP = 256  # contexts are searched in multiples of llama.cpp's KV cell padding


def context_caps(ctx: int, parallel: int, trained: int | None, most_parallel: int = MAX_PARALLEL
                 ) -> tuple[int, int]:
    """Where the searches of `context_limits` stop: the trained context (or the asked one, if larger) and
    the runtime's most parallel sequences (or the asked number, if larger)."""
    return (CTX_STEP * max((trained or MAX_CTX_FALLBACK) // CTX_STEP, -(-ctx // CTX_STEP), 1),
            max(most_parallel, parallel))


def context_limits(ctx: int, parallel: int, trained: int | None, ok: Callable[[int | None, int | None], bool],
                   most_parallel: int = MAX_PARALLEL) -> tuple[int, int]:
    """(max_ctx, max_parallel) for a monotone `ok(ctx, parallel)` (None keeps the current value): the largest
    context per sequence, a multiple of 256 up to the trained context (or the asked one, if larger), at
    `parallel`; the most sequences up to `most_parallel` (the runtime's ceiling; or the asked number, if larger) at
    `ctx`. 0 when not even the smallest fits."""
    upper = max((trained or MAX_CTX_FALLBACK) // CTX_STEP, -(-ctx // CTX_STEP), 1)
    max_ctx = CTX_STEP * max(0, largest_fitting(1, upper, lambda k: ok(CTX_STEP * k, None)))
    max_par = max(0, largest_fitting(1, max(most_parallel, parallel), lambda p: ok(None, p)))
    return max_ctx, max_par


