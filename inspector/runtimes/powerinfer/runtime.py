"""The PowerInfer runtime behind the protocol: its flags in, its placement (sparse or dense), its memory, its fit."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from ...errors import UsageError
from ...formats.gguf import MAGIC_KEY, POWERINFER_MAGIC
from ...memory.hparams import hparams_of
from ...memory.context import memory_options_from
from ...memory.plan import MemoryOptions
from ...model import Checkpoint
from ..base import Placement, RuntimeBase, SearchOutcome
from .dense import place_dense
from .gpuindex import find_index, read_index
from .layout import sparse_layout
from .memory import PowerInferMemory, powerinfer_memory
from .place import FREE_VRAM_MARGIN, GPU, SparseSettings, place_sparse, vram_budget_bytes

DEFAULT_N_CTX = 512  # PowerInfer common.h gpt_params.n_ctx


@dataclass(frozen=True)
class PowerInferOptions:
    vram_budget: float | None = None  # --vram-budget as typed, GiB (negative: PowerInfer's "all free VRAM")
    free_vram: int | None = None  # --budget cuda:0: taken as the GPU's free memory
    ngl: int | None = None
    reset_gpu_index: bool = False
    disable_gpu_index: bool = False
    gpu_index: str | None = None
    memory_f32: bool = False
    memory: MemoryOptions | None = None

    @property
    def context(self) -> MemoryOptions:
        return self.memory or MemoryOptions(ctx=DEFAULT_N_CTX, parallel=1)

    @property
    def n_ctx(self) -> int:
        """PowerInfer's -c: the one cache all sequences share."""
        return self.context.n_ctx_flag

    def budget(self) -> tuple[int | None, str]:
        """The VRAM budget in bytes (None: no GPU) and where it comes from."""
        if self.vram_budget is not None and self.vram_budget >= 0:
            return vram_budget_bytes(self.vram_budget), f"--vram-budget {gib_text(self.vram_budget)}"
        if self.free_vram is not None:
            return max(0, self.free_vram - FREE_VRAM_MARGIN), "free VRAM (--budget cuda:0) - 256 MiB"
        return None, "no GPU (give --vram-budget N or --budget cuda:0=SIZE)"


@dataclass(frozen=True)
class PowerInferDetail:
    """Placement.detail: the plan and the options that made it (its budget and index flags)."""

    plan: Any  # SparsePlan or DensePlan
    options: PowerInferOptions

    @property
    def read_fractions(self) -> Mapping[str, Any]:
        """For the per-token activity (inspector/activity): the CPU FFN matrices of hybrid layers are read only
        for their cold rows; their GPU rows are read from the copies."""
        return self.plan.read_fractions


def gib_text(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def parse_ngl(text: Any) -> int | None:
    """-ngl as PowerInfer's common.cpp reads it (std::stoi): a whole number."""
    if text is None:
        return None
    try:
        return int(str(text))
    except ValueError:
        raise UsageError(f"-ngl {text!r}: PowerInfer takes a whole number of layers") from None


class PowerInferRuntime(RuntimeBase):
    # -- options and context ---------------------------------------------------------------------------------
    def options(self, values: Mapping[str, Any]) -> PowerInferOptions:
        memory = memory_options_from(values)
        if memory is not None and values.get("ctx") is None and values.get("ctx_size") is None:
            memory = memory.with_(ctx=max(1, DEFAULT_N_CTX // memory.parallel), ctx_total=DEFAULT_N_CTX)
        budgets = values.get("budgets") or {}
        return PowerInferOptions(values.get("vram_budget"), budgets.get(GPU), parse_ngl(values.get("ngl")),
                                 bool(values.get("reset_gpu_index")), bool(values.get("disable_gpu_index")),
                                 values.get("gpu_index"), bool(values.get("memory_f32")), memory)

    def context(self, options: PowerInferOptions) -> tuple[int, int]:
        return options.context.ctx, options.context.parallel

    def with_context(self, options: PowerInferOptions, *, ctx: int | None = None,
                     parallel: int | None = None) -> PowerInferOptions:
        changes = {k: v for k, v in (("ctx", ctx), ("parallel", parallel)) if v is not None}
        return replace(options, memory=options.context.with_(**changes))

    def trained_context(self, checkpoint: Checkpoint) -> int | None:
        return hparams_of(checkpoint).n_ctx_train

    # -- placement ----------------------------------------------------------------------------------------------
    def place(self, checkpoint: Checkpoint, options: PowerInferOptions) -> Placement:
        if checkpoint.format != "gguf":
            raise UsageError("PowerInfer loads GGUF files (a *.powerinfer.gguf for sparse inference)",
                             hint="convert with PowerInfer's convert.py, or use another runtime")
        hp = hparams_of(checkpoint)
        sparse = checkpoint.metadata.get(MAGIC_KEY) == POWERINFER_MAGIC.decode()
        if not sparse:
            plan = place_dense(checkpoint, hp.n_layer, options.ngl or 0)
            notes = ["dense GGUF: PowerInfer runs it as its llama.cpp fork does, with -ngl (blocks from the last, "
                     "the head above n_layer, V and K above n_layer + 1 and + 2)"]
            if options.vram_budget is not None:
                notes.append("--vram-budget applies to PowerInfer GGUF (PWRI) files only; this dense file uses -ngl")
            summary = f"PowerInfer dense: -ngl {plan.n_gpu_layers} of {hp.n_layer} blocks (+1 head, +2 V, +3 K)"
            plan = replace(plan, notes=tuple(notes))
        else:
            if options.ngl:
                raise UsageError("PowerInfer refuses -ngl for a sparse (PWRI) model: llama_model_load fails with "
                                 "'sparse inference ignores n_gpu_layers'", hint="use --vram-budget N (GiB) instead")
            plan = self._place_sparse(checkpoint, options, hp)
            summary = sparse_summary(plan, options)
            if options.gpu_index and plan.split.source == "index":
                plan = replace(plan, notes=plan.notes + (f"PowerInfer reads {checkpoint.files[0].path}"
                                                         ".generated.gpuidx: put --gpu-index's file there for these "
                                                         "flags to give this plan",))
        detail = PowerInferDetail(plan, options)
        return Placement("powerinfer", plan.checkpoint, checkpoint, summary, command=self.flags(detail, options),
                         notes=plan.notes, detail=detail)

    def _place_sparse(self, checkpoint: Checkpoint, options: PowerInferOptions, hp: Any) -> Any:
        layout = sparse_layout(checkpoint, hp.n_layer)
        n_ff = layout.ffn_matrices(0)[0].shape[1]
        budget, _ = options.budget()
        model_path = checkpoint.files[0].path
        index = None
        if budget is not None and not options.disable_gpu_index:
            found = find_index(model_path, options.gpu_index)
            index = read_index(found) if found else None
        settings = SparseSettings(budget, options.n_ctx, 4 if options.memory_f32 else 2, options.disable_gpu_index,
                                  options.reset_gpu_index)
        return place_sparse(checkpoint, layout, settings, n_embd_gqa=hp.n_embd_k_gqa(0), n_ff=n_ff, index=index,
                            model_path=model_path)

    def flags(self, detail: PowerInferDetail, options: PowerInferOptions) -> str:
        """PowerInfer's flags: the placement's (budget, index) from the options that made it, the context's from
        `options`."""
        made = detail.options
        parts = []
        if detail.plan.mode == "dense":
            parts.append(f"-ngl {detail.plan.n_gpu_layers}")
        elif made.vram_budget is not None:
            parts.append(f"--vram-budget {gib_text(made.vram_budget)}")
        parts.append(f"-c {options.n_ctx}")
        if options.context.parallel != 1:
            parts.append(f"-np {options.context.parallel}")
        for flag, on in (("--memory-f32", options.memory_f32), ("--reset-gpu-index", made.reset_gpu_index),
                         ("--disable-gpu-index", made.disable_gpu_index)):
            if on:
                parts.append(flag)
        return " ".join(parts)

    # -- memory, search, command ------------------------------------------------------------------------------------
    def memory(self, placement: Placement, options: PowerInferOptions) -> PowerInferMemory:
        detail = placement.detail
        plan = detail.plan
        kv_bytes = 4 if options.memory_f32 else 2
        if plan.mode == "sparse" and (plan.settings.n_ctx, plan.settings.kv_bytes) != (options.n_ctx, kv_bytes):
            # the KV reservation comes out of the VRAM budget before the FFN split: another -c is another placement
            again = replace(detail.options, memory=options.memory, memory_f32=options.memory_f32)
            plan = self.place(placement.source, again).detail.plan
        return powerinfer_memory(plan, hparams_of(placement.source), n_ctx=options.n_ctx, f32=options.memory_f32,
                                 overhead_pct=options.context.overhead_pct)

    def search(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: PowerInferOptions) -> SearchOutcome:
        from .search import PowerInferSearch

        return PowerInferSearch(self, checkpoint, budgets, options).run()

    def command(self, placement: Placement, options: PowerInferOptions) -> str:
        return self.flags(placement.detail, options)


def sparse_summary(plan: Any, options: PowerInferOptions) -> str:
    _, origin = options.budget()
    if plan.settings.budget is None:
        return "PowerInfer sparse: no GPU, everything on the CPU"
    kv = "V and K" if plan.k_on_gpu else "V" if plan.v_on_gpu else "no KV"
    split = plan.split
    ffn = (f"{split.total:,} FFN neurons on {GPU} ({split.label})" if split.total else "no FFN neuron on the GPU")
    done = "every dense tensor" if plan.complete else "a prefix of the dense tensors"
    budget = plan.settings.budget
    share = f" ({100 * split.total / (plan.n_layer * plan.n_ff):.1f}% of {plan.n_layer * plan.n_ff:,})" \
        if split.total else ""
    return (f"PowerInfer sparse: {origin} = {budget:,} bytes; {done} ({plan.dense_gpu_bytes:,} bytes) and {kv} "
            f"on {GPU}; {ffn}{share}")
