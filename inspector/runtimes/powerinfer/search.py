"""PowerInfer's search hook for `fit`: the VRAM budget to give it.

PowerInfer fills its budget by itself (place.py), so the only choice is `--vram-budget N`: the largest N, in
hundredths of a GiB (printed as PowerInfer's `std::stof` reads it back, so the pasted flag gives the same bytes),
whose whole GPU footprint fits the `cuda:0` budget: weights and KV the budget pays for, plus what comes on top of it
(the GPU scratch estimate, the hybrid layers' gpu_bucket, the --overhead margin). More budget never puts less on
the GPU, so the test is monotone and found by bisection. A dense (GGUF-magic) model gets the largest `-ngl` instead
(0 .. n_layer + 3: blocks, head, V, K). Without a GPU budget: `--vram-budget 0` (everything on the CPU).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from ...formats.gguf import MAGIC_KEY
from ...memory.hparams import hparams_of
from ...model import Checkpoint
from ...monotone import largest_fitting
from ..base import Placement, SearchOutcome
from .place import GIB, GPU

STEPS_PER_GIB = 100


class PowerInferSearch:
    def __init__(self, runtime: Any, checkpoint: Checkpoint, budgets: Mapping[str, int], options: Any) -> None:
        self.rt = runtime
        self.checkpoint = checkpoint
        self.budgets = dict(budgets)
        self.options = options
        self.sparse = checkpoint.metadata.get(MAGIC_KEY) == "PWRI"
        self.steps: list[str] = []

    def candidate(self, k: int, options: Any) -> Any:
        """Options with the k-th candidate: --vram-budget k/100 (sparse) or -ngl k (dense)."""
        if self.sparse:
            return replace(options, vram_budget=k / STEPS_PER_GIB, free_vram=None, ngl=None)
        return replace(options, ngl=k, vram_budget=None, free_vram=None)

    def fits_gpu(self, k: int, options: Any) -> bool:
        opts = self.candidate(k, options)
        placed = self.rt.place(self.checkpoint, opts)
        verdict = self.rt.memory(placed, opts).check({GPU: self.budgets[GPU]})
        return verdict.fits

    def choose(self, options: Any, *, log: bool = True) -> int:
        say = self.steps.append if log else (lambda _: None)
        if GPU not in self.budgets:
            say(f"no {GPU} budget: everything on the CPU" + (" (--vram-budget 0)" if self.sparse else " (-ngl 0)"))
            return 0
        if self.sparse:
            top = self.budgets[GPU] * STEPS_PER_GIB // GIB
            k = max(0, largest_fitting(0, top, lambda x: self.fits_gpu(x, options)))
            say(f"largest --vram-budget whose GPU total (weights, KV, scratch, split index) fits {GPU}: "
                f"{k / STEPS_PER_GIB:g} GiB")
            return k
        n_layer = hparams_of(self.checkpoint).n_layer
        k = max(0, largest_fitting(0, n_layer + 3, lambda x: self.fits_gpu(x, options)))
        say(f"largest -ngl that fits {GPU}: {k} (of n_layer {n_layer} + head, V, K)")
        return k

    def run(self) -> SearchOutcome:
        k = self.choose(self.options)
        opts = self.candidate(k, self.options)
        placement = self.rt.place(self.checkpoint, opts)
        plan = placement.detail.plan
        full = (plan.mode == "sparse" and plan.complete and plan.k_on_gpu and plan.split.total == plan.n_layer *
                plan.n_ff) or (plan.mode == "dense" and plan.k_on_gpu)

        def replan(options: Any) -> Placement | None:
            if GPU not in self.budgets:
                return None
            choice = self.choose(options, log=False)
            again = self.rt.place(self.checkpoint, self.candidate(choice, options))
            kept = again.detail.plan.k_on_gpu  # every dense tensor, V and K on the GPU (the dense path: -ngl n+3)
            return again if kept and self.rt.memory(again, options).check(self.budgets).fits else None

        note = ("max_ctx and max_parallel keep the VRAM budget and raise only -c or -np (PowerInfer then reserves "
                "more KV and splits fewer neurons); the re-planned limits search the budget again for each value and "
                "accept it while every dense tensor and the whole KV cache stay on the GPU")
        return SearchOutcome(placement, tuple(self.steps), placement.notes, all_on_gpu=full, limits_note=note,
                             replan=replan)
