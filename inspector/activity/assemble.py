"""The activity of an `inspect` or a `fit` plan, through the runtime protocol only (the api calls these)."""
from __future__ import annotations

from typing import Any, Mapping

from ..errors import CkptSizeError, UsageError
from ..planner.limits import MAX_PARALLEL
from ..memory.hparams import hparams_of
from ..monotone import largest_fitting
from ..runtimes.base import Placement
from . import ActivityOptions, ActivityReport, activity_report
from .thumb import thumb_rows


def _hparams(placement: Placement) -> Any:
    try:
        return hparams_of(placement.source)
    except CkptSizeError:
        return None


def plan_activity(placement: Placement, runtime: Any, runtime_options: Any, memory: Any, options: ActivityOptions,
                  *, budgets: Mapping[str, int] | None = None) -> ActivityReport:
    """Per-token activity of a placement; the cache read at the runtime's context; the speed bound with
    bandwidths; the rules-of-thumb rows when asked (their exact side from the runtime's memory model)."""
    hp = _hparams(placement)
    if memory is None:
        try:
            memory = runtime.memory(placement, runtime_options)
        except CkptSizeError:
            memory = None  # no hyperparameters for a cache: weights only
    ctx, parallel = runtime.context(runtime_options)
    fractions = getattr(placement.detail, "read_fractions", None)
    thumbs = ()
    if options.rules_of_thumb:
        if hp is None or memory is None:
            raise UsageError("--rules-of-thumb compares with the runtime's memory, which needs the model's "
                             "hyperparameters (GGUF metadata or config.json)")
        thumbs = _thumbs(placement, runtime, runtime_options, memory, hp, ctx, parallel, budgets or {})
    return activity_report(placement.checkpoint, n_expert=hp.n_expert if hp else 0,
                           n_expert_used=hp.n_expert_used if hp else 0, memory=memory, ctx=ctx,
                           read_fractions=fractions, options=options, thumbs=thumbs)


def _thumbs(placement: Placement, runtime: Any, runtime_options: Any, memory: Any, hp: Any, ctx: int, parallel: int,
            budgets: Mapping[str, int]) -> tuple:
    rows = memory.table.rows
    total = sum(memory.table.totals.values())
    kv = sum(row.get("kv_cache", 0) + row.get("state", 0) for row in rows.values())
    gpu_budget = sum(v for d, v in budgets.items() if d.startswith("cuda:")) or None
    exact_parallel = None
    if gpu_budget is not None:
        def fits(p: int) -> bool:  # the placement kept, only the parallel sequences change (as fit's max_parallel)
            varied = runtime.with_context(runtime_options, parallel=p)
            return runtime.memory(placement, varied).check(budgets).fits

        exact_parallel = max(0, largest_fitting(1, max(MAX_PARALLEL, parallel), fits))
    gpu_weights = sum(t.nbytes for t in placement.checkpoint.tensors if (t.device or "").startswith("cuda:"))
    return thumb_rows(hp, weights=placement.source.nbytes, ctx=ctx, parallel=parallel, exact_total=total,
                      exact_kv=kv, gpu_budget=gpu_budget, gpu_weights=gpu_weights, exact_parallel=exact_parallel)
