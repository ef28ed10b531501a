"""The runtime-neutral planner: ask a runtime's search hook for a plan, size it with the runtime's memory model,
judge it against the budgets, and find how far its context and parallelism stretch; with several quants, the best.

It knows no runtime's flags: everything runtime-specific goes through the `Runtime` protocol
(inspector/runtimes/base.py).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from ..errors import UsageError
from ..model import Checkpoint
from ..runtimes import get_runtime
from ..runtimes.argv import ready_command
from ..runtimes.base import Limits, Placement, Runtime, SearchOutcome
from .limits import context_caps, context_limits
from .result import FitResult, QuantChoice


def fit(checkpoint: Checkpoint, budgets: Mapping[str, int], runtime: str, options: Any) -> FitResult:
    """The best plan for `checkpoint` (roles assigned, not placed) within `budgets` (device -> bytes; devices
    without a budget are unlimited), under `runtime` with its options object.

    Raises:
        UsageError: no budget, an unknown runtime, a runtime that cannot take this model.
    """
    if not budgets:
        raise UsageError("fit needs at least one --budget DEV=SIZE")
    rt = get_runtime(runtime)
    if not rt.spec.can_fit:
        raise UsageError(f"{rt.spec.title} has no fit search", hint="use --runtime llamacpp or ktransformers")
    outcome = rt.search(checkpoint, budgets, options)
    placement = outcome.placement
    memory = rt.memory(placement, options)
    verdict = memory.check(budgets)
    trained = rt.trained_context(checkpoint)
    limits = _limits(rt, placement, options, budgets, trained, outcome)
    notes = list(outcome.notes) + list(memory.notes)
    if limits.max_ctx and trained and limits.max_ctx >= trained:
        notes.append(f"the model's trained context ({trained}) fits; max_ctx stops there")
    flags = rt.command(placement, options)
    return FitResult(rt.spec.name, verdict.fits, placement, memory, verdict, flags, limits,
                     ready_command(rt.spec, checkpoint.source, flags), all_on_gpu=outcome.all_on_gpu, artifact=outcome.artifact, details=outcome.details,
                     steps=outcome.steps, notes=tuple(notes))


def _limits(rt: Runtime, placement: Placement, options: Any, budgets: Mapping[str, int], trained: int | None,
            outcome: SearchOutcome) -> Limits:
    """Limits with the placement kept (only the context options change), and re-planned ones when offered."""
    ctx, parallel = rt.placed_context(placement, options)

    def varied(c: int | None, p: int | None) -> Any:
        return rt.with_context(options, ctx=c, parallel=p)

    def same_plan(c: int | None, p: int | None) -> bool:
        return rt.memory(placement, varied(c, p)).check(budgets).fits

    most = rt.spec.max_parallel
    max_ctx, max_par = context_limits(ctx, parallel, trained, same_plan, most)
    ctx_cap, par_cap = context_caps(ctx, parallel, trained, most)
    limits = Limits(max_ctx, max_par,
                    rt.command(placement, varied(max_ctx, None)) if max_ctx else "",
                    rt.command(placement, varied(None, max_par)) if max_par else "", note=outcome.limits_note,
                    ctx=ctx, parallel=parallel, ctx_cap=ctx_cap, parallel_cap=par_cap)
    if outcome.replan is None:
        return limits
    replan = outcome.replan
    re_ctx, re_par = context_limits(ctx, parallel, trained, lambda c, p: replan(varied(c, p)) is not None, most)

    def line(opts: Any) -> str:
        placed = replan(opts)
        return rt.command(placed, opts) if placed is not None else ""

    return replace(limits, replanned_max_ctx=re_ctx, replanned_max_ctx_command=line(varied(re_ctx, None)) if re_ctx
                   else "", replanned_max_parallel=re_par,
                   replanned_max_parallel_command=line(varied(None, re_par)) if re_par else "")


def best_quant(candidates: Mapping[str, Checkpoint], budgets: Mapping[str, int], runtime: str, options: Any
               ) -> tuple[QuantChoice | None, tuple[QuantChoice, ...]]:
    """Fit every candidate (quant name -> checkpoint). The best is the largest (highest precision) that fits with
    all its layers and experts on the GPUs; if none does, the largest that fits at all. Returns (best or None,
    every candidate, largest first)."""
    rows = []
    for name, ck in candidates.items():
        result = fit(ck, budgets, runtime, options)
        rows.append(QuantChoice(name, result, ck.nbytes, result.fits and result.all_on_gpu))
    rows.sort(key=lambda q: (-q.weight_bytes, q.name))
    best = next((q for q in rows if q.all_on_gpu), None) or next((q for q in rows if q.result.fits), None)
    return best, tuple(rows)
