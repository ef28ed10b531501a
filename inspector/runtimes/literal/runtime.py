"""The literal runtime: `--experts-on` / `--default-device`, and ckpt-size plan files."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from ...devices import normalize_device
from ...errors import UsageError
from ...memory.context import GgmlContext, memory_options_from
from ...memory.plan import MemoryOptions, MemoryPlan, memory_plan
from ...model import Checkpoint
from ..base import Placement, RuntimeBase, SearchOutcome
from .simple import place_simple

if TYPE_CHECKING:  # plan files only: their reader imports yaml (docs/performance.md, "Local")
    from ...placement.findings import Finding, PlacedPlan
    from ...placement.yaml_nodes import Document


@dataclass(frozen=True)
class LiteralOptions:
    experts_on: str | None = None
    default_device: str = "cuda:0"
    placement_file: str | None = None
    gpus: int | None = None
    memory: MemoryOptions | None = None


class LiteralRuntime(RuntimeBase, GgmlContext):
    def options(self, values: Mapping[str, Any]) -> LiteralOptions:
        return LiteralOptions(values.get("experts_on"), values.get("default_device") or "cuda:0",
                              values.get("placement_file"), values.get("gpus"),
                              memory_options_from(values, budgets=bool(values.get("budgets"))))

    def place(self, checkpoint: Checkpoint, options: LiteralOptions) -> Placement:
        if options.placement_file:
            from ...placement.files import read_placement, require_placement

            path = options.placement_file
            placed = require_placement(read_placement(path, checkpoint, self.read_placement_file, gpus=options.gpus),
                                       path)
            runtime = placed.checkpoint.with_(warnings=placed.checkpoint.warnings + placed.warnings)
            return Placement(self.spec.name, runtime, checkpoint, f"{placed.kind} plan from {options.placement_file}",
                             notes=placed.notes, detail={"cpu_staging": False})
        placed_ck = place_simple(checkpoint, experts_on=options.experts_on, default_device=options.default_device)
        _check_gpus({t.device for t in placed_ck.tensors if t.device}, options.gpus)
        default = normalize_device(options.default_device)
        notes: tuple[str, ...] = ()
        if options.experts_on:
            line = f"literal plan: routed experts on {normalize_device(options.experts_on)}, everything else on {default}"
            if not any(t.role == "routed_experts" for t in checkpoint.tensors):
                notes = ("--experts-on: this model has no routed experts; everything is on " + default,)
        else:
            line = f"literal plan: everything on {default}"
        return Placement(self.spec.name, placed_ck, checkpoint, line, notes=notes, detail={"cpu_staging": True})

    def memory(self, placement: Placement, options: LiteralOptions) -> MemoryPlan:
        staging = bool(placement.detail and placement.detail.get("cpu_staging"))
        return memory_plan(placement.checkpoint, options.memory or MemoryOptions(), cpu_staging=staging)

    def read_placement_file(self, doc: Document, checkpoint: Checkpoint, gpus: int | None
                            ) -> tuple[PlacedPlan | None, list[Finding]]:
        from .planfile import place_plan

        return place_plan(doc, checkpoint, gpus=gpus)

    def search(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: LiteralOptions) -> SearchOutcome:
        raise UsageError("the literal plan has no fit search", hint="use --runtime llamacpp or ktransformers")

    def command(self, placement: Placement, options: LiteralOptions) -> str:
        return (options.memory or MemoryOptions()).llama_cpp_flags()


def _check_gpus(devices: set[str], gpus: int | None) -> None:
    """Devices beyond `--gpus N` (cuda:N and up) are a usage error rather than a plan for a machine that is not."""
    beyond = sorted(d for d in devices if d.startswith("cuda:") and gpus is not None and int(d[5:]) >= gpus)
    if beyond:
        raise UsageError(f"{beyond[0]} is beyond --gpus {gpus}", hint="use cpu or cuda:0..cuda:N-1")
