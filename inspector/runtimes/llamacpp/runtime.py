"""The llama.cpp runtime behind the protocol: flags in, llama.cpp's placement, ggml memory, fit search."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...errors import UsageError
from ...memory.context import GgmlContext, memory_options_from
from ...memory.plan import MemoryOptions, MemoryPlan, memory_plan
from ...model import Checkpoint
from ..base import Placement, RuntimeBase, SearchOutcome
from .flags import LlamaCppFlags, parse_n_gpu_layers, parse_override_tensor, parse_tensor_split
from .place import place_llamacpp, to_placement
from .search import LlamaCppSearch


@dataclass(frozen=True)
class LlamaCppOptions:
    flags: LlamaCppFlags = LlamaCppFlags()
    memory: MemoryOptions | None = None
    gpus: int | None = None


MOE_FLAGS = ("--cpu-moe", "-cmoe", "--n-cpu-moe", "-ncmoe")
OT_FLAGS = ("-ot", "--override-tensor")


def moe_position(argv: list[str]) -> int | None:
    """How many -ot pairs precede the first --cpu-moe/--n-cpu-moe on the command line (llama.cpp keeps that
    order: the first matching pattern wins); None when no MoE option is there."""
    pairs = 0
    for i, token in enumerate(argv):
        name, _, inline = token.partition("=")
        if token in MOE_FLAGS or name in MOE_FLAGS:
            return pairs
        if token in OT_FLAGS and i + 1 < len(argv):
            pairs += len(parse_override_tensor([argv[i + 1]]))
        elif name in OT_FLAGS and inline:
            pairs += len(parse_override_tensor([inline]))
    return None


def flags_from(values: Mapping[str, Any]) -> LlamaCppFlags:
    """LlamaCppFlags from option values (`argv`, when present, gives the order of -ot and the MoE flags)."""
    ot = tuple(values.get("override_tensor") or ())
    moe = bool(values.get("cpu_moe") or values.get("n_cpu_moe"))
    ngl, ts = values.get("ngl"), values.get("tensor_split")
    return LlamaCppFlags(
        n_gpu_layers=parse_n_gpu_layers(ngl) if ngl is not None else None,
        override_tensor=parse_override_tensor(ot),
        cpu_moe=bool(values.get("cpu_moe")),
        n_cpu_moe=values.get("n_cpu_moe"),
        tensor_split=parse_tensor_split(ts) if ts else None,
        split_mode=values.get("split_mode") or "layer",
        main_gpu=values.get("main_gpu") or 0,
        moe_after=moe_position(list(values.get("argv") or ())) if ot and moe else None,
    )


class LlamaCppRuntime(RuntimeBase, GgmlContext):
    def options(self, values: Mapping[str, Any]) -> LlamaCppOptions:
        return LlamaCppOptions(flags_from(values), memory_options_from(values, budgets=bool(values.get("budgets"))),
                               values.get("gpus"))

    def place(self, checkpoint: Checkpoint, options: LlamaCppOptions) -> Placement:
        plan = place_llamacpp(checkpoint, options.flags)
        if options.gpus is not None and plan.n_gpus > options.gpus:
            raise UsageError(f"these llama.cpp flags use {plan.n_gpus} GPU(s) but --gpus is {options.gpus}",
                             hint="check -ts, -mg and the CUDAn buffers in -ot")
        return to_placement(plan, checkpoint)

    def memory(self, placement: Placement, options: LlamaCppOptions) -> MemoryPlan:
        plan = placement.detail
        return memory_plan(placement.checkpoint, options.memory or MemoryOptions(),
                           layer_devices=dict(enumerate(plan.layer_devices)), output_device=plan.output_device)

    def search(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: LlamaCppOptions) -> SearchOutcome:
        return LlamaCppSearch(checkpoint, budgets, options.memory or MemoryOptions()).run()

    def command(self, placement: Placement, options: LlamaCppOptions) -> str:
        return f"{placement.command or ''} {(options.memory or MemoryOptions()).llama_cpp_flags()}".strip()
