"""KTransformers' search hook for `fit`: a rule file (ruleset.py) with every non-expert module on the GPUs (layers
split in proportion to the GPU budgets), routed experts on the CPU (KExpertsCPU), and on each GPU as many of its MoE
layers as fit with Marlin experts (KExpertsMarlin). Every candidate file is sized by replaying it with the same code
`validate` runs (place.py), so the bytes are KTransformers' (Marlin, bf16 dequantization, mmap'd CPU experts); the KV
cache and buffers come from the ggml memory model (runtime.py says why).
"""
from __future__ import annotations

from typing import Mapping, Sequence

from ...devices import device_sort_key
from ...errors import RulesError, UsageError
from ...memory.hparams import hparams_of
from ...memory.plan import MemoryOptions, MemoryPlan
from ...model import Checkpoint
from ...monotone import largest_fitting
from ...placement.yaml_nodes import parse
from ..base import Placement, SearchOutcome
from .data import kt_data
from .memory import kt_memory_plan
from .place import place_ktransformers
from .ruleset import TEMPLATES, rule_file, split_layers
from .tree import build_tree

KIND = "ktransformers"


class KtSearch:
    def __init__(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: MemoryOptions) -> None:
        self.checkpoint, self.budgets, self.options = checkpoint, dict(budgets), options
        self.gpus = sorted((d for d in budgets if d.startswith("cuda:")), key=device_sort_key)
        if not self.gpus:
            raise UsageError("KTransformers needs at least one GPU budget (--budget cuda:0=SIZE)")
        try:
            tree = build_tree(checkpoint, kt_data())
        except RulesError as e:
            raise UsageError(f"KTransformers rules cannot be written for this model: {e}") from None
        if tree.template.name not in TEMPLATES:
            raise UsageError(f"no KTransformers rule template for {tree.template.name!r}",
                             hint=f"supported: {', '.join(sorted(TEMPLATES))}")
        self.template = TEMPLATES[tree.template.name]
        self.moe_layers = tree.moe_layers
        self.ranges = split_layers(tree.n_layers, self.gpus, budgets)
        self.hp = hparams_of(checkpoint)
        self.n_gpus = max(int(g.split(":")[1]) for g in self.gpus) + 1

    def text(self, marlin_counts: Sequence[int]) -> str:
        marlin = [[i for i in r if i in self.moe_layers][:k] for r, k in zip(self.ranges, marlin_counts)]
        return rule_file(self.template, self.ranges, marlin, self.gpus, self.moe_layers)

    def place(self, text: str) -> Checkpoint:
        """The checkpoint as the rule file places it (the replay `validate` runs, without a temporary file)."""
        doc = parse(text, "<generated rules>")
        placed, findings = place_ktransformers(doc, self.checkpoint, gpus=self.n_gpus)
        errors = [f for f in findings if f.severity == "error"]
        if errors or placed is None:
            raise UsageError(f"the generated KTransformers rules do not validate: "
                             f"{errors[0].message if errors else 'no placement'}")
        return placed.checkpoint

    def plan(self, placed: Checkpoint, options: MemoryOptions) -> MemoryPlan:
        return kt_memory_plan(placed, options, hparams=self.hp)

    def fits(self, counts: Sequence[int], options: MemoryOptions, only: str | None = None) -> bool:
        verdict = self.plan(self.place(self.text(counts)), options).check(self.budgets)
        return all(d.fits for d in verdict.devices if only is None or d.device == only)

    def run(self) -> SearchOutcome:
        steps = []
        counts = [0] * len(self.gpus)
        base_fits = self.fits(counts, self.options)
        if not base_fits:
            steps.append("attention, shared experts and the head do not fit the GPUs even with every routed expert "
                         "on the CPU")
        else:
            for g, dev in enumerate(self.gpus):
                n_moe = sum(1 for i in self.ranges[g] if i in self.moe_layers)

                def ok(k: int, g: int = g, dev: str = dev) -> bool:
                    trial = list(counts)
                    trial[g] = k
                    return self.fits(trial, self.options, only=dev)

                counts[g] = max(0, largest_fitting(0, n_moe, ok))
                steps.append(f"{dev}: layers {self.ranges[g][0]}-{self.ranges[g][-1]}, {counts[g]} of its {n_moe} MoE "
                             "layers with Marlin experts" if self.ranges[g] else f"{dev}: no layers")
        text = self.text(counts)
        marlin = {dev: c for dev, c in zip(self.gpus, counts)}
        summary = "KTransformers: " + ", ".join(f"{d} {c} Marlin MoE layer(s)" for d, c in marlin.items())
        placement = Placement(KIND, self.place(text), self.checkpoint, summary, detail={"hparams": self.hp})
        note = ("the max lines keep this rule file as it is (the same Marlin layers per GPU); only the context and "
                "the sequences change")
        return SearchOutcome(placement, tuple(steps), limits_note=note, artifact=text,
                             details={"marlin_layers": marlin})
