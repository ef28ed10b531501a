"""The KTransformers runtime behind the protocol: rule files in and out, the optimizer's placement, fit."""
from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from typing import Any, Mapping

from ...errors import UsageError
from ...memory.context import GgmlContext, memory_options_from
from ...memory.plan import MemoryOptions, MemoryPlan
from ...model import Checkpoint
from ...placement.files import read_placement, require_placement
from ...placement.findings import Finding, PlacedPlan
from ...placement.yaml_nodes import Document
from ..base import Placement, RuntimeBase, SearchOutcome
from .memory import kt_memory_plan
from .place import place_ktransformers
from .search import KIND, KtSearch


@dataclass(frozen=True)
class KtOptions:
    placement_file: str | None = None
    gpus: int | None = None
    memory: MemoryOptions | None = None


class KtRuntime(RuntimeBase, GgmlContext):
    def options(self, values: Mapping[str, Any]) -> KtOptions:
        own = {k: values[k] for k in ("cache_lens", "max_batch_size") if values.get(k) is not None}
        if own and ("ctx" in values or "parallel" in values):
            raise UsageError("--cache-lens / --max-batch-size are KTransformers' own spelling of the context; give "
                             "them or --ctx / --parallel, not both")
        ggml = {k: v for k, v in values.items() if k not in own}
        if "cache_lens" in own:  # the KV tokens shared by the batch, as llama.cpp's -c is
            ggml["ctx_size"] = own["cache_lens"]
        if "max_batch_size" in own:
            ggml["parallel"] = own["max_batch_size"]
        return KtOptions(values.get("placement_file"), values.get("gpus"),
                         memory_options_from(ggml, budgets=bool(values.get("budgets"))))

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
        plan = kt_memory_plan(placement.checkpoint, options.memory or MemoryOptions(), hparams=hparams)
        return replace(plan, command=self.command(placement, options))

    def search(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: KtOptions) -> SearchOutcome:
        return KtSearch(checkpoint, budgets, options.memory or MemoryOptions()).run()

    def command(self, placement: Placement, options: KtOptions) -> str:
        """KTransformers' own flags (ktransformers/server/args.py): the rule file, the KV tokens shared by the batch
        and the batch size."""
        memory = options.memory or MemoryOptions()
        rules = f"--optimize_config_path {shlex.quote(options.placement_file)} " if options.placement_file else ""
        return f"{rules}--cache_lens {memory.n_ctx_flag} --max_batch_size {memory.parallel}"
