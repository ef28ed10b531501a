"""The fit search: the plan that keeps the most bytes on the GPUs within the budgets, the largest context and the
most parallel sequences that fit, and the best quant of several.

llama.cpp (runtime "llamacpp"), in this order (issue 6):
1. every layer on the GPUs (`-ngl n_layer+1`) with the smallest `--n-cpu-moe N` (routed experts of blocks
   0..N-1 on the CPU; N = 0 for a dense model) for which the layers pack onto the GPUs;
2. if even all experts on the CPU do not fit, the largest `-ngl` (the last blocks and the output layer on GPUs);
3. `-ts`: layers are packed in llama.cpp's order (block 0 first, the output layer last), each GPU taking as many
   consecutive layers as its budget holds; the counts are the `-ts` proportions (llama.cpp maps layer j of the
   offloaded range to the first GPU whose cumulative share exceeds j / n_offloaded, so integer counts are exact);
4. `-ot` for the remaining experts: expert tensors of blocks below N go back to GPUs that still have room, one
   tensor at a time, placed before `--n-cpu-moe` so they win (first match).
A layer's cost on a GPU is its weights (as `inspector.placement.llamacpp` places them), its KV cache and state;
each GPU also reserves its estimated compute buffer, and `--overhead` scales every budget down. The final flags
are re-checked with the real placement and memory plan; the verdict printed is that re-check.

Limits: `max_ctx` / `max_parallel` keep the chosen flags (the same -ngl, --n-cpu-moe, -ot, -ts) and raise only -c or
-np, so they never contradict the flags printed; `replanned_max_ctx` / `replanned_max_parallel` re-run the search for
each value (every layer slot on the GPUs, routed experts free to move to the CPU) and come with the flags that reach
them. `limits_note` says which was done.

KTransformers (runtime "ktransformers"): a rule file with every non-expert module on the GPUs (layers split in
proportion to the GPU budgets), routed experts on the CPU (KExpertsCPU), and on each GPU as many of its MoE layers
as fit with Marlin experts (KExpertsMarlin), found by sizing the generated file with the KTransformers replay.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..errors import UsageError
from ..model import Checkpoint
from ..placement.devices import device_sort_key
from ..placement.llamacpp_flags import FFN_EXPS_REGEX
from .budget import BudgetVerdict
from .hparams import hparams_of
from .plan import MemoryOptions, MemoryPlan, memory_plan

RUNTIMES = ("llamacpp", "ktransformers")
MAX_PARALLEL = 256
MAX_CTX_FALLBACK = 1 << 20
_EXPS = re.compile(FFN_EXPS_REGEX)  # llama.cpp's LLM_FFN_EXPS_REGEX, the pattern --n-cpu-moe moves


@dataclass(frozen=True)
class FitResult:
    """The plan the search chose, its memory plan and verdict, and the context / parallel limits under it."""

    runtime: str
    fits: bool
    plan: MemoryPlan
    verdict: BudgetVerdict
    flags_line: str  # llama.cpp: placement + context options, ready to paste; KTransformers: context options
    placement_summary: str
    # The largest context per sequence (a multiple of 256, at `parallel`) and the most sequences (at `ctx`) that
    # still fit every budget with the placement kept as chosen (llama.cpp: the same -ngl, --n-cpu-moe, -ot, -ts;
    # KTransformers: the same rule file); only -c / -np change. 0: not even 256 tokens / one sequence fits.
    max_ctx: int
    max_parallel: int
    # the full line for each limit (llama.cpp: flags_line with -c / -np at the limit; KTransformers: the context
    # options); "" when the limit is 0
    max_ctx_flags: str = ""
    max_parallel_flags: str = ""
    # llama.cpp with GPU budgets: the same limits when the search is re-run for each value (every layer slot, so
    # every KV cache, on the GPUs; routed experts free to move to the CPU), and the flags line that reaches each;
    # None when not computed (KTransformers, no GPU budget); 0 / "" when no such plan exists
    replanned_max_ctx: int | None = None
    replanned_max_ctx_flags: str | None = None
    replanned_max_parallel: int | None = None
    replanned_max_parallel_flags: str | None = None
    limits_note: str = ""  # one sentence: how the limits above were computed
    flags: object | None = None  # LlamaCppFlags for llama.cpp
    yaml_text: str | None = None  # KTransformers rule file
    marlin_layers: Mapping[str, int] = field(default_factory=dict)  # KTransformers: MoE layers with Marlin experts
    all_on_gpu: bool = False  # every layer (and every expert) on the GPUs; only the input layer stays on the CPU
    steps: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def write_yaml(self, path: str | Path) -> Path:
        if self.yaml_text is None:
            raise UsageError("--emit-yaml writes KTransformers rules", hint="use it with --runtime ktransformers")
        target = Path(path)
        target.write_text(self.yaml_text, encoding="utf-8")
        return target

    def as_dict(self) -> dict[str, object]:
        return {
            "runtime": self.runtime, "fits": self.fits, "all_on_gpu": self.all_on_gpu, "flags": self.flags_line,
            "placement": self.placement_summary, "max_ctx": self.max_ctx, "max_parallel": self.max_parallel,
            "max_ctx_flags": self.max_ctx_flags, "max_parallel_flags": self.max_parallel_flags,
            "replanned_max_ctx": self.replanned_max_ctx, "replanned_max_ctx_flags": self.replanned_max_ctx_flags,
            "replanned_max_parallel": self.replanned_max_parallel,
            "replanned_max_parallel_flags": self.replanned_max_parallel_flags, "limits_note": self.limits_note,
            "marlin_layers": dict(self.marlin_layers), "verdict": self.verdict.as_dict(),
            "memory": self.plan.as_dict(), "steps": list(self.steps), "notes": list(self.notes),
        }


def fit(checkpoint: Checkpoint, budgets: Mapping[str, int], options: MemoryOptions = MemoryOptions(), *,
        runtime: str = "llamacpp") -> FitResult:
    """The best plan for `checkpoint` (roles assigned, not placed) within `budgets` (device → bytes; devices
    without a budget are unlimited).

    Raises:
        UsageError: no budget, an unknown runtime, a runtime that cannot take this model.
    """
    if not budgets:
        raise UsageError("fit needs at least one --budget DEV=SIZE")
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}", hint=f"use one of {', '.join(RUNTIMES)}")
    if runtime == "ktransformers":
        from .fit_kt import fit_ktransformers

        return fit_ktransformers(checkpoint, budgets, options)
    return _LlamaCppSearch(checkpoint, budgets, options).run()


# ----------------------------------------------------------------------------------------------------------
# shared: limits under a fixed placement
# ----------------------------------------------------------------------------------------------------------
def largest_fitting(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The largest x in [lo, hi] with ok(x), for ok monotone (true then false); lo - 1 when none."""
    if not ok(lo):
        return lo - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def smallest_fitting(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The smallest x in [lo, hi] with ok(x), for ok monotone (false then true); hi + 1 when none."""
    if not ok(hi):
        return hi + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


# ----------------------------------------------------------------------------------------------------------
# llama.cpp
# ----------------------------------------------------------------------------------------------------------
@dataclass
class _Layout:
    """What the placement decides, independent of the context: GPU bytes per layer slot with every layer on one
    GPU (blocks 0..n_layer-1, then the output layer), and each block's routed-expert tensors."""

    n_layer: int
    slot_weights: list[int]
    slot_experts: list[list[tuple[str, int]]]
    placed: object  # the single-GPU LlamaCppPlan the numbers come from

    @property
    def expert_blocks(self) -> list[int]:
        return [i for i, e in enumerate(self.slot_experts) if e]


@dataclass
class _Costs:
    layout: _Layout
    slot_runtime: list[int]  # KV + state per block under the options
    layer_buffer: int  # compute buffer of a GPU that runs layers (layer peak + mask)
    logits_extra: int  # what the output slot adds to its GPU's compute buffer

    @property
    def n_layer(self) -> int:
        return self.layout.n_layer


@dataclass(frozen=True)
class _Choice:
    ngl: int
    n_cpu_moe: int
    counts: tuple[int, ...] | None
    ot: tuple[tuple[str, str], ...] = ()


class _LlamaCppSearch:
    def __init__(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: MemoryOptions) -> None:
        from ..placement.llamacpp import LlamaCppFlags, place_llamacpp

        self.Flags, self.place = LlamaCppFlags, place_llamacpp
        self.checkpoint = checkpoint
        self.budgets = dict(budgets)
        self.options = options
        self.gpus = sorted((d for d in budgets if d.startswith("cuda:")), key=device_sort_key)
        self.scale = 1 + Fraction(str(options.overhead_pct)) / 100
        self.steps: list[str] = []
        self.hp = hparams_of(checkpoint)
        self.shrink: dict[str, int] = {}  # bytes the exact check found a GPU over, taken off its packing budget
        self._layout: _Layout | None = None

    # -- exact evaluation ------------------------------------------------------------------------------------
    def _memory(self, placed: object, options: MemoryOptions) -> MemoryPlan:
        return memory_plan(placed.checkpoint, options, layer_devices=dict(enumerate(placed.layer_devices)),
                           output_device=placed.output_device, hparams=self.hp)

    def flags_of(self, choice: _Choice) -> object:
        layout = self.layout()
        n_gpus = len(self.gpus)
        max_gpu = max(int(d.split(":")[1]) for d in self.gpus)
        counts = dict(zip(self.gpus, choice.counts or ()))
        ts: tuple[float, ...] | None = None
        if (n_gpus > 1 or max_gpu > 0) and any(counts.values()):
            ts = tuple(float(counts.get(f"cuda:{i}", 0)) for i in range(max_gpu + 1))
        experts = layout.expert_blocks
        every = bool(experts) and choice.n_cpu_moe > max(experts)
        return self.Flags(n_gpu_layers=choice.ngl, n_cpu_moe=None if every else (choice.n_cpu_moe or None),
                          cpu_moe=every, tensor_split=ts, override_tensor=choice.ot)

    # -- the cost model ----------------------------------------------------------------------------------------
    def layout(self) -> _Layout:
        if self._layout is None:
            placed = self.place(self.checkpoint, self.Flags(n_gpu_layers=10**6))
            n_layer = placed.n_layer
            weights = [0] * (n_layer + 1)
            experts: list[list[tuple[str, int]]] = [[] for _ in range(n_layer)]
            for t in placed.checkpoint.tensors:
                if t.device is None or t.device == "cpu":
                    continue
                block = t.layer if t.layer is not None and t.layer < n_layer else None
                weights[n_layer if block is None else block] += t.nbytes
                if block is not None and _EXPS.search(t.name):
                    experts[block].append((t.name, t.nbytes))
            self._layout = _Layout(n_layer, weights, experts, placed)
        return self._layout

    def costs(self, options: MemoryOptions) -> _Costs:
        layout = self.layout()
        plan = self._memory(layout.placed, options)
        runtime = [0] * (layout.n_layer + 1)
        for x in plan.per_layer:
            if x.layer < layout.n_layer:
                runtime[x.layer] += x.kv_bytes + x.state_bytes
        parts = plan.buffers["cuda:0"].parts if "cuda:0" in plan.buffers else {}
        layer_buffer = parts.get("layers", 0) + parts.get("mask", 0)
        return _Costs(layout, runtime, layer_buffer, max(0, parts.get("logits", 0) - layer_buffer))

    def staging(self, c: _Costs, ngl: int, n_cpu_moe: int) -> int:
        """The largest layer weight on the CPU under (ngl, n_cpu_moe): the first GPU's staging copy.

        Scans the placed GGUF-named view (a safetensors checkpoint's own names would never match the expert
        pattern) and only tensors llama.cpp loads, as memory_plan's staging does."""
        if self.options.ubatch < 32:
            return 0
        i_gpu_start = max(c.n_layer + 1 - ngl, 0)
        largest = 0
        for t in c.layout.placed.checkpoint.tensors:
            if t.device is None or t.layer is None or t.layer >= c.n_layer:
                continue
            if t.layer < i_gpu_start or (t.layer < n_cpu_moe and _EXPS.search(t.name)):
                largest = max(largest, t.nbytes)
        return largest

    def capacities(self, c: _Costs, staging: int) -> list[int]:
        caps = []
        for i, dev in enumerate(self.gpus):
            budget = self.budgets[dev] - self.shrink.get(dev, 0)
            caps.append(int(budget / self.scale) - c.layer_buffer - (staging if i == 0 else 0))
        return caps

    def slot_cost(self, c: _Costs, slot: int, n_cpu_moe: int) -> int:
        if slot == c.n_layer:
            return c.layout.slot_weights[slot] + c.logits_extra
        cost = c.layout.slot_weights[slot] + c.slot_runtime[slot]
        if slot < n_cpu_moe:
            cost -= sum(b for _, b in c.layout.slot_experts[slot])
        return cost

    def pack(self, c: _Costs, ngl: int, n_cpu_moe: int) -> tuple[int, ...] | None:
        """Layers per GPU in llama.cpp's order, or None when the offloaded slots do not fit."""
        i_gpu_start = max(c.n_layer + 1 - ngl, 0)
        caps = self.capacities(c, self.staging(c, ngl, n_cpu_moe))
        counts = [0] * len(self.gpus)
        g, used = 0, 0
        for slot in range(i_gpu_start, c.n_layer + 1):
            cost = self.slot_cost(c, slot, n_cpu_moe)
            while g < len(caps) and used + cost > caps[g]:
                g, used = g + 1, 0
            if g == len(caps):
                return None
            counts[g] += 1
            used += cost
        return tuple(counts)

    # -- the search ----------------------------------------------------------------------------------------------
    def search(self, options: MemoryOptions, *, log: bool = True) -> _Choice:
        """The choice for these options (issue 6 order: --n-cpu-moe, then -ngl and -ts, then -ot)."""
        c = self.costs(options)
        say = self.steps.append if log else (lambda _: None)
        all_slots = c.n_layer + 1
        experts = c.layout.expert_blocks
        counts = self.pack(c, all_slots, 0)
        if counts is not None:
            say(f"all {all_slots} layer slots fit on the GPUs" + (" with every routed expert" if experts else ""))
            return _Choice(all_slots, 0, counts)
        n_cpu_moe = 0
        if experts:
            last = max(experts) + 1
            n_cpu_moe = smallest_fitting(1, last, lambda n: self.pack(c, all_slots, n) is not None)
            if n_cpu_moe <= last:
                counts = self.pack(c, all_slots, n_cpu_moe)
                say(f"smallest --n-cpu-moe with every layer on the GPUs: {n_cpu_moe}"
                    + (" (every expert block: --cpu-moe)" if n_cpu_moe == last else ""))
                assert counts is not None
                return _Choice(all_slots, n_cpu_moe, counts, self.refill(c, all_slots, n_cpu_moe, counts, say))
            n_cpu_moe = last
            say("even with every routed expert on the CPU not all layers fit on the GPUs")
        ngl = max(0, largest_fitting(0, all_slots, lambda k: self.pack(c, k, n_cpu_moe) is not None))
        say(f"largest -ngl that fits: {ngl} of {all_slots} layer slots (the last blocks and the output layer)")
        return _Choice(ngl, n_cpu_moe, self.pack(c, ngl, n_cpu_moe))

    def refill(self, c: _Costs, ngl: int, n_cpu_moe: int, counts: Sequence[int],
               say: Callable[[str], None]) -> tuple[tuple[str, str], ...]:
        """-ot overrides that bring expert tensors of blocks below n_cpu_moe back to GPUs with room left."""
        i_gpu_start = max(c.n_layer + 1 - ngl, 0)
        left = self.capacities(c, self.staging(c, ngl, n_cpu_moe))
        owner: dict[int, int] = {}
        slot = i_gpu_start
        for g, count in enumerate(counts):
            for _ in range(count):
                left[g] -= self.slot_cost(c, slot, n_cpu_moe)
                owner[slot] = g
                slot += 1
        moved: dict[tuple[int, int], list[str]] = {}
        for block in range(min(n_cpu_moe, c.n_layer) - 1, i_gpu_start - 1, -1):
            home = owner.get(block, 0)
            for name, nbytes in sorted(c.layout.slot_experts[block], key=lambda x: (-x[1], x[0])):
                for g in [home] + [g for g in range(len(left)) if g != home]:
                    if nbytes <= left[g]:
                        left[g] -= nbytes
                        m = _EXPS.search(name)
                        moved.setdefault((block, g), []).append(m.group(1) + "_" + m.group(2) if m else name)
                        break
        ot = []
        for (block, g), projections in sorted(moved.items()):
            names = sorted(set(projections))
            proj = names[0] if len(names) == 1 else "(" + "|".join(names) + ")"
            ot.append((rf"blk\.{block}\.ffn_{proj}exps", self.gpus[g]))
        if ot:
            say(f"-ot brings {sum(len(p) for p in moved.values())} expert tensor(s) of blocks below {n_cpu_moe} "
                "back to GPUs with room left")
        return tuple(ot)

    def run(self) -> FitResult:
        if not self.gpus:
            self.steps.append("no GPU budget: everything on the CPU (-ngl 0)")
            return self.finish(self.Flags(n_gpu_layers=0), keep_layers=False)
        choice = self.search(self.options)
        for _ in range(4):  # the exact check may disagree with the model by the buffer estimate's details
            placed = self.place(self.checkpoint, self.flags_of(choice))
            verdict = self._memory(placed, self.options).check(self.budgets)
            over = [d for d in verdict.devices if not d.fits and d.device in self.gpus]
            if verdict.fits or not over:
                break
            for d in over:
                self.shrink[d.device] = self.shrink.get(d.device, 0) + d.over_by
            self.steps.append("re-packed: the exact check found " + ", ".join(
                f"{d.device} over by {d.over_by:,} bytes" for d in over))
            choice = self.search(self.options, log=False)
        return self.finish(self.flags_of(choice), keep_layers=True)

    def layers_fit(self, options: MemoryOptions) -> bool:
        """Whether every layer slot (so every KV cache) fits on the GPUs at these options, experts allowed on the
        CPU, and the exact check of that plan passes."""
        return self.replanned(options) is not None

    def replanned(self, options: MemoryOptions) -> object | None:
        """The LlamaCppPlan the search picks for these options when it keeps every layer slot on the GPUs and its
        exact check passes; None otherwise."""
        c = self.costs(options)
        experts = c.layout.expert_blocks
        last = max(experts) + 1 if experts else 0
        all_slots = c.n_layer + 1
        if self.pack(c, all_slots, last) is None:
            return None
        choice = self.search(options, log=False)
        if choice.ngl < all_slots:
            return None
        placed = self.place(self.checkpoint, self.flags_of(choice))
        return placed if self._memory(placed, options).check(self.budgets).fits else None

    def finish(self, flags: object, *, keep_layers: bool) -> FitResult:
        placed = self.place(self.checkpoint, flags)
        plan = self._memory(placed, self.options)
        verdict = plan.check(self.budgets)

        def same_flags(opts: MemoryOptions) -> bool:
            return self._memory(placed, opts).check(self.budgets).fits

        limits = limits_of(self.options, self.hp.n_ctx_train, same_flags)
        max_ctx, max_par = limits
        line = f"{placed.flags_line} {self.options.llama_cpp_flags()}".strip()
        ctx_line, par_line = limit_lines(self.options, limits, placed.flags_line)
        notes = list(placed.notes) + list(plan.notes)
        if max_ctx and self.hp.n_ctx_train and max_ctx >= self.hp.n_ctx_train:
            notes.append(f"the model's trained context ({self.hp.n_ctx_train}) fits; max_ctx stops there")
        re_ctx = re_par = None
        re_ctx_line = re_par_line = None
        if keep_layers:
            re_ctx, re_par = limits_of(self.options, self.hp.n_ctx_train, self.layers_fit)
            re_ctx_line = self.replanned_line(self.options.with_(ctx=re_ctx)) if re_ctx else ""
            re_par_line = self.replanned_line(self.options.with_(parallel=re_par)) if re_par else ""
            note = ("max_ctx and max_parallel keep these flags (the same -ngl, --n-cpu-moe, -ot and -ts) and raise "
                    "only -c or -np; replanned_max_ctx and replanned_max_parallel re-run the search for each value "
                    "with every layer on the GPUs and routed experts free to move to the CPU, and their flags are "
                    "in replanned_max_ctx_flags and replanned_max_parallel_flags")
        else:
            note = ("max_ctx and max_parallel keep these flags (-ngl 0: everything on the CPU) and raise only -c or "
                    "-np within the CPU budget")
        full = (bool(self.gpus) and flags.n_gpu_layers is not None and flags.n_gpu_layers >= placed.n_layer + 1
                and not flags.n_cpu_moe and not flags.cpu_moe
                and all(dev != "cpu" for _, dev in flags.override_tensor))
        return FitResult("llamacpp", verdict.fits, plan, verdict, line, placed.summary, max_ctx, max_par,
                         max_ctx_flags=ctx_line, max_parallel_flags=par_line,
                         replanned_max_ctx=re_ctx, replanned_max_ctx_flags=re_ctx_line,
                         replanned_max_parallel=re_par, replanned_max_parallel_flags=re_par_line,
                         limits_note=note, flags=flags, steps=tuple(self.steps), notes=tuple(notes), all_on_gpu=full)

    def replanned_line(self, options: MemoryOptions) -> str:
        placed = self.replanned(options)
        return f"{placed.flags_line} {options.llama_cpp_flags()}".strip() if placed is not None else ""


def limits_of(options: MemoryOptions, n_ctx_train: int | None, ok: Callable[[MemoryOptions], bool]
              ) -> tuple[int, int]:
    """(max_ctx, max_parallel) for a monotone `ok`: the largest context per sequence, a multiple of 256 up to the
    trained context (or the asked one, if larger), at `options.parallel`; the most sequences up to MAX_PARALLEL (or
    the asked number, if larger) at `options.ctx`. 0 when not even the smallest fits."""
    upper = max((n_ctx_train or MAX_CTX_FALLBACK) // 256, -(-options.ctx // 256), 1)
    max_ctx = 256 * max(0, largest_fitting(1, upper, lambda k: ok(options.with_(ctx=256 * k))))
    max_par = max(0, largest_fitting(1, max(MAX_PARALLEL, options.parallel),
                                     lambda p: ok(options.with_(parallel=p))))
    return max_ctx, max_par


def limit_lines(options: MemoryOptions, limits: tuple[int, int], placement_line: str = "") -> tuple[str, str]:
    """The full flags line at each limit ("" for a limit of 0)."""
    max_ctx, max_par = limits

    def line(opts: MemoryOptions) -> str:
        return f"{placement_line} {opts.llama_cpp_flags()}".strip()

    return (line(options.with_(ctx=max_ctx)) if max_ctx else "",
            line(options.with_(parallel=max_par)) if max_par else "")


# ----------------------------------------------------------------------------------------------------------
# best quant of several
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuantChoice:
    name: str
    result: FitResult
    weight_bytes: int
    all_on_gpu: bool


def best_quant(candidates: Mapping[str, Checkpoint], budgets: Mapping[str, int],
               options: MemoryOptions = MemoryOptions(), *, runtime: str = "llamacpp"
               ) -> tuple[QuantChoice | None, tuple[QuantChoice, ...]]:
    """Fit every candidate (quant name → checkpoint). The best is the largest (highest precision) that fits with
    all its layers and experts on the GPUs; if none does, the largest that fits at all. Returns (best or None,
    every candidate, largest first)."""
    rows = []
    for name, ck in candidates.items():
        result = fit(ck, budgets, options, runtime=runtime)
        rows.append(QuantChoice(name, result, ck.nbytes, result.fits and result.all_on_gpu))
    rows.sort(key=lambda q: (-q.weight_bytes, q.name))
    best = next((q for q in rows if q.all_on_gpu), None) or next((q for q in rows if q.result.fits), None)
    return best, tuple(rows)
