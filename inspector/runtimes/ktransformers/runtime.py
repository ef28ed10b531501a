"""The KTransformers runtime behind the protocol: rule files in and out, the optimizer's placement, fit."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...errors import UsageError
from ...memory.options import GgmlContext, memory_options_from
from ...memory.plan import MemoryOptions, MemoryPlan
from ...model import Checkpoint
from ...placement.files import read_placement, require_placement
from ...placement.findings import Finding, PlacedPlan
from ...placement.yaml_nodes import Document
from ..base import Placement, RuntimeSpec, SearchOutcome
from .memory import kt_memory_plan
from .place import place_ktransformers
from .search import KIND, KtSearch


@dataclass(frozen=True)
class KtOptions:
    placement_file: str | None = None
    gpus: int | None = None
    memory: MemoryOptions | None = None


class KtRuntime(GgmlContext):
    def __init__(self, spec: RuntimeSpec) -> None:
        self.spec = spec

    def options(self, values: Mapping[str, Any]) -> KtOptions:
        return KtOptions(values.get("placement_file"), values.get("gpus"),
                         memory_options_from(values, budgets=bool(values.get("budgets"))))

    def read_placement_file(self, doc: Document, checkpoint: Checkpoint, gpus: int | None
                            ) -> tuple[PlacedPlan | None, list[Finding]]:
        return place_ktransformers(doc, checkpoint, gpus=gpus)

    def place(self, checkpoint: Checkpoint, options: KtOptions) -> Placement:
        path = options.placement_file
        if not path:
            raise UsageError("KTransformers places a model by its rule file", hint="give --placement RULES.yaml")
        placed = require_placement(read_placement(path, checkpoint, self.read_placement_file, gpus=options.gpus), path)
        runtime = placed.checkpoint.with_(warnings=placed.checkpoint.warnings + placed.warnings)
        return Placement(KIND, runtime, checkpoint, f"{placed.kind} plan from {path}", notes=placed.notes)

    def memory(self, placement: Placement, options: KtOptions) -> MemoryPlan:
        hparams = placement.detail.get("hparams") if isinstance(placement.detail, dict) else None
        return kt_memory_plan(placement.checkpoint, options.memory or MemoryOptions(), hparams=hparams)

    def search(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: KtOptions) -> SearchOutcome:
        return KtSearch(checkpoint, budgets, options.memory or MemoryOptions()).run()

    def command(self, placement: Placement, options: KtOptions) -> str:
        return (options.memory or MemoryOptions()).llama_cpp_flags()
