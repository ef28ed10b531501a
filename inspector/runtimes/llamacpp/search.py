"""llama.cpp's search hook for `fit`: the flags that keep the most bytes on the GPUs within the budgets, in this
order (issue 6):
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

Limits (inspector/planner): `max_ctx` / `max_parallel` keep the chosen flags and raise only -c or -np; the re-planned
limits re-run this search for each value and accept it when every layer slot stays on the GPUs (`replanned`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Mapping, Sequence

from ...devices import device_sort_key
from ...memory.hparams import hparams_of
from ...memory.plan import MemoryOptions, MemoryPlan, memory_plan
from ...model import Checkpoint
from ...monotone import largest_fitting, smallest_fitting
from ..base import Placement, SearchOutcome
from .flags import FFN_EXPS_REGEX, MAX_DEVICES, LlamaCppFlags
from .place import LlamaCppPlan, place_llamacpp, to_placement

_EXPS = re.compile(FFN_EXPS_REGEX)
FILL_STEPS = 10_000  # GPU fill fractions are searched in steps of 0.01%  # llama.cpp's LLM_FFN_EXPS_REGEX, the pattern --n-cpu-moe moves


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
    placed: LlamaCppPlan  # the single-GPU LlamaCppPlan the numbers come from

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


class LlamaCppSearch:
    def __init__(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: MemoryOptions) -> None:
        self.checkpoint = checkpoint
        self.budgets = dict(budgets)
        self.options = options
        gpus = sorted((d for d in budgets if d.startswith("cuda:")), key=device_sort_key)
        # -ts takes at most MAX_DEVICES - 1 values (common/arg.cpp): GPUs beyond are out of llama.cpp's reach
        self.gpus = [d for d in gpus if int(d.split(":")[1]) < MAX_DEVICES - 1]
        self.unreachable = [d for d in gpus if d not in self.gpus]
        self.scale = 1 + Fraction(str(options.overhead_pct)) / 100
        self.steps: list[str] = []
        self.hp = hparams_of(checkpoint)
        self.shrink: dict[str, int] = {}  # bytes the exact check found a GPU over, taken off its packing budget
        self._layout: _Layout | None = None

    # -- exact evaluation ------------------------------------------------------------------------------------
    def _memory(self, placed: LlamaCppPlan, options: MemoryOptions) -> MemoryPlan:
        return memory_plan(placed.checkpoint, options, layer_devices=dict(enumerate(placed.layer_devices)),
                           output_device=placed.output_device, hparams=self.hp)

    def flags_of(self, choice: _Choice) -> LlamaCppFlags:
        layout = self.layout()
        n_gpus = len(self.gpus)
        max_gpu = max(int(d.split(":")[1]) for d in self.gpus)
        counts = dict(zip(self.gpus, choice.counts or ()))
        ts: tuple[float, ...] | None = None
        if (n_gpus > 1 or max_gpu > 0) and any(counts.values()):
            ts = tuple(float(counts.get(f"cuda:{i}", 0)) for i in range(max_gpu + 1))
            while ts and ts[-1] == 0:  # llama.cpp fills missing -ts entries with 0: trailing zeros say nothing
                ts = ts[:-1]
        experts = layout.expert_blocks
        every = bool(experts) and choice.n_cpu_moe > max(experts)
        return LlamaCppFlags(n_gpu_layers=choice.ngl, n_cpu_moe=None if every else (choice.n_cpu_moe or None),
                          cpu_moe=every, tensor_split=ts, override_tensor=choice.ot)

    # -- the cost model ----------------------------------------------------------------------------------------
    def layout(self) -> _Layout:
        if self._layout is None:
            placed = place_llamacpp(self.checkpoint, LlamaCppFlags(n_gpu_layers=10**6))
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

    def pack(self, c: _Costs, ngl: int, n_cpu_moe: int, fill: int = FILL_STEPS) -> tuple[int, ...] | None:
        """Layers per GPU in llama.cpp's order, or None when the offloaded slots do not fit; each GPU takes at most
        `fill` / FILL_STEPS of its capacity."""
        i_gpu_start = max(c.n_layer + 1 - ngl, 0)
        caps = [cap * fill // FILL_STEPS for cap in self.capacities(c, self.staging(c, ngl, n_cpu_moe))]
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

    def spread(self, c: _Costs, ngl: int, packed: tuple[int, ...], say: Callable[[str], None]) -> tuple[int, ...]:
        """Layers over every GPU in proportion to its capacity, as llama.cpp splits by free memory when -ts is not
        given (src/llama-model.cpp load_tensors), when that fits: KV cache then grows on all GPUs alike, so the
        context stretches furthest. Otherwise the packing that fills each GPU to the same smallest share."""
        caps = self.capacities(c, self.staging(c, ngl, 0))
        counts = _proportional(ngl, caps)
        slot, loads = max(c.n_layer + 1 - ngl, 0), []
        for count in counts:
            loads.append(sum(self.slot_cost(c, s, 0) for s in range(slot, slot + count)))
            slot += count
        if all(load <= cap for load, cap in zip(loads, caps)):
            say(f"layers spread over the {len(self.gpus)} GPUs in proportion to their budgets")
            return counts
        fill = smallest_fitting(1, FILL_STEPS, lambda f: self.pack(c, ngl, 0, f) is not None)
        say(f"layers packed so each GPU fills at most {fill / FILL_STEPS:.1%} of its budget before context growth")
        return self.pack(c, ngl, 0, fill) or packed

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
            if len(self.gpus) > 1:
                counts = self.spread(c, all_slots, counts, say)
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

    def run(self) -> SearchOutcome:
        if self.unreachable:
            self.steps.append(f"{', '.join(self.unreachable)}: beyond the {MAX_DEVICES - 1} GPUs llama.cpp's -ts can "
                              "address; left unused")
        if not self.gpus:
            self.steps.append("no GPU budget: everything on the CPU (-ngl 0)")
            return self.finish(LlamaCppFlags(n_gpu_layers=0), keep_layers=False)
        choice = self.search(self.options)
        for _ in range(4):  # the exact check may disagree with the model by the buffer estimate's details
            placed = place_llamacpp(self.checkpoint, self.flags_of(choice))
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

    def replanned(self, options: MemoryOptions) -> LlamaCppPlan | None:
        """The plan the search picks for these options when it keeps every layer slot (so every KV cache) on the
        GPUs, routed experts free to move to the CPU, and its exact check passes; None otherwise."""
        c = self.costs(options)
        experts = c.layout.expert_blocks
        last = max(experts) + 1 if experts else 0
        all_slots = c.n_layer + 1
        if self.pack(c, all_slots, last) is None:
            return None
        choice = self.search(options, log=False)
        if choice.ngl < all_slots:
            return None
        placed = place_llamacpp(self.checkpoint, self.flags_of(choice))
        return placed if self._memory(placed, options).check(self.budgets).fits else None

    def finish(self, flags: LlamaCppFlags, *, keep_layers: bool) -> SearchOutcome:
        placed = place_llamacpp(self.checkpoint, flags)
        if keep_layers:
            note = ("the max lines keep these flags (the same -ngl, --n-cpu-moe, -ot and -ts) and raise only -c or "
                    "-np; the re-planned lines run the search again for each context or count, with every layer on "
                    "the GPUs and routed experts free to move to the CPU, and give the flags that reach it")
        else:
            note = ("the max lines keep these flags (-ngl 0: everything on the CPU) and raise only -c or -np within "
                    "the CPU budget")
        full = (bool(self.gpus) and flags.n_gpu_layers is not None and flags.n_gpu_layers >= placed.n_layer + 1
                and not flags.n_cpu_moe and not flags.cpu_moe
                and all(dev != "cpu" for _, dev in flags.override_tensor))

        def replan(options: Any) -> Placement | None:
            found = self.replanned(options.memory or MemoryOptions())
            return to_placement(found, self.checkpoint) if found is not None else None

        notes = placed.notes
        if self.checkpoint.format != "gguf":
            notes += ("llama.cpp loads GGUF files: these flags are for the GGUF convert_hf_to_gguf.py writes from this "
                      "checkpoint (the sizes above are that file's); pass that file to -m",)
        return SearchOutcome(to_placement(placed, self.checkpoint), tuple(self.steps), notes, all_on_gpu=full,
                             limits_note=note, details={"marlin_layers": {}}, replan=replan if keep_layers else None)


def _proportional(n: int, weights: Sequence[int]) -> tuple[int, ...]:
    """n items in proportion to non-negative weights, largest remainders first (ties: the earlier GPU)."""
    total = sum(max(w, 0) for w in weights)
    if total <= 0:
        return tuple([n] + [0] * (len(weights) - 1))
    shares = [Fraction(n * max(w, 0), total) for w in weights]
    counts = [int(x) for x in shares]
    order = sorted(range(len(weights)), key=lambda i: (-(shares[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return tuple(counts)
