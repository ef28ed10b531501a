"""What to try when a plan does not fit, with the numbers: a shorter context with the same flags, the flags the
runtime's fit search finds, the bytes each device is over."""
from __future__ import annotations

from typing import Any, Mapping

from ..memory.budget import BudgetVerdict
from ..model import Checkpoint
from ..runtimes import get_runtime, get_spec
from ..runtimes.base import Placement, RuntimeSpec
from .limits import context_limits


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def over_lines(verdict: BudgetVerdict) -> list[str]:
    return [f"{d.device} needs {_gib(d.over_by)} ({d.over_by:,} bytes) more" for d in verdict.devices if not d.fits]


def inspect_advice(runtime: str, source: Checkpoint, placement: Placement, options: Any,
                   budgets: Mapping[str, int], verdict: BudgetVerdict) -> tuple[str, ...]:
    """For an `inspect` whose plan is over a budget: how much, the longest context these flags allow, and the
    flags the runtime's own fit search finds for the asked context."""
    rt = get_runtime(runtime)
    advice = over_lines(verdict)
    ctx, parallel = rt.context(options)

    def fits(c: int | None, p: int | None) -> bool:
        return rt.memory(placement, rt.with_context(options, ctx=c, parallel=p)).check(budgets).fits

    max_ctx, _ = context_limits(ctx, parallel, rt.trained_context(source), fits)
    advice.append(f"with these flags at most {max_ctx:,} tokens per sequence fit" if max_ctx
                  else "with these flags not even 256 tokens per sequence fit")
    if rt.spec.can_fit and any(d.startswith("cuda:") for d in budgets):
        from .planner import fit

        result = fit(source, budgets, runtime, options)
        advice.append(f"these flags fit at this context (ckpt-size fit): {result.command}" if result.fits
                      else f"no {rt.spec.title} plan fits these budgets at this context (ckpt-size fit)")
    advice.append("--quant-list shows the bytes per device of smaller quants")
    return tuple(advice)


def fit_advice(verdict: BudgetVerdict | None, runtime: str | None) -> tuple[str, ...]:
    """For a `fit` that found nothing fitting: how far off the best plan is, and what else to try, in the runtime's
    own flags (`RuntimeSpec.when_over`; the ggml runtimes' by default)."""
    advice = over_lines(verdict) if verdict is not None else []
    hint = get_spec(runtime).when_over if runtime else RuntimeSpec.when_over
    advice.append(f"try {hint}")
    return tuple(advice)
