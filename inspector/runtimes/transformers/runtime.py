"""The transformers runtime behind the protocol: from_pretrained's loading options in, accelerate's device map
and the loaded model's bytes per device out."""
from __future__ import annotations

from typing import Any, Mapping

from ...errors import UsageError
from ...model import Checkpoint
from ..base import Placement, RuntimeBase, SearchOutcome
from .load import load_plan
from .memory import TransformersMemory, memory_of
from .options import TransformersOptions, options_from
from .place import to_placement


class TransformersRuntime(RuntimeBase):
    def options(self, values: Mapping[str, Any]) -> TransformersOptions:
        return options_from(values)

    def place(self, checkpoint: Checkpoint, options: TransformersOptions) -> Placement:
        if checkpoint.format != "safetensors":
            raise UsageError("transformers loads safetensors checkpoints with their config.json",
                             hint="point at the Hugging Face folder or repo (a GGUF is llama.cpp's format)")
        plan = load_plan(checkpoint, options)
        gpus = sorted({d for d in plan.devices.values() if d.startswith("cuda:")})
        if options.gpus is not None and any(int(d[5:]) >= options.gpus for d in gpus):
            raise UsageError(f"this device map uses {gpus[-1]} but --gpus is {options.gpus}")
        return to_placement(plan, checkpoint, options)

    def memory(self, placement: Placement, options: TransformersOptions) -> TransformersMemory:
        return memory_of(placement.detail)

    def search(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: TransformersOptions
               ) -> SearchOutcome:
        raise UsageError("transformers has no fit search: accelerate's device map is the plan",
                         hint="use inspect --runtime transformers --device-map auto --budget DEV=SIZE")

    def command(self, placement: Placement, options: TransformersOptions) -> str:
        return placement.command or ""

    def context(self, options: TransformersOptions) -> tuple[int, int]:
        return 0, 1

    def with_context(self, options: TransformersOptions, *, ctx: int | None = None, parallel: int | None = None
                     ) -> TransformersOptions:
        return options

    def trained_context(self, checkpoint: Checkpoint) -> int | None:
        return None
