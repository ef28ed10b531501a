"""The vLLM runtime behind the protocol: `vllm serve` flags in, per-rank placement, paged KV memory, fit search,
the `vllm serve …` command out."""
from __future__ import annotations

import shlex
from dataclasses import replace
from typing import Any, Mapping

from ...errors import CheckFailed
from ...memory.serving import ServingContext, ServingReport, serve_path
from ...memory.shard_rows import role_bytes
from ...model import Checkpoint
from ..base import Placement, RuntimeBase, SearchOutcome
from .layout import Settings, place, resolve
from .memory import vllm_memory
from .options import VllmOptions, options_from


def settings_for(placement: Placement, options: VllmOptions) -> Settings:
    """The placement's parallel layout with the lengths and limits of `options` (fit varies them)."""
    placed: Settings = placement.detail.settings
    fixed = options.with_(tp=placed.tp, pp=placed.pp, dp=placed.dp, expert_parallel=placed.expert_parallel,
                          max_model_len=options.max_model_len or (None if options.auto_fit else placed.max_model_len))
    return resolve(placement.source, fixed, placed.model)


class VllmRuntime(ServingContext, RuntimeBase):  # ServingContext first: its placed_context
    LENGTH_FIELD = "max_model_len"

    def options(self, values: Mapping[str, Any]) -> VllmOptions:
        return options_from(values)

    def place(self, checkpoint: Checkpoint, options: VllmOptions) -> Placement:
        placement = place(checkpoint, resolve(checkpoint, options))
        return replace(placement, command=self.command(placement, options))

    def memory(self, placement: Placement, options: VllmOptions) -> ServingReport:
        settings = settings_for(placement, options)
        report = vllm_memory(settings, role_bytes(placement.checkpoint.tensors), options.budgets)
        if report.refusal and not placement.detail.searched:
            raise CheckFailed(report.refusal)
        return report

    def search(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: VllmOptions) -> SearchOutcome:
        from .search import VllmSearch

        return VllmSearch(self, checkpoint, budgets, options).run()

    def command(self, placement: Placement, options: VllmOptions) -> str:
        s: Settings = placement.detail.settings
        length = options.max_model_len or s.max_model_len
        parts = ["vllm", "serve", shlex.quote(serve_path(placement.source.source))]
        parts += [f"-tp {s.tp}"] * (s.tp > 1) + [f"-pp {s.pp}"] * (s.pp > 1) + [f"-dp {s.dp}"] * (s.dp > 1)
        parts += ["--enable-expert-parallel"] * s.expert_parallel
        parts.append("--max-model-len -1" if options.auto_fit and not options.max_model_len else
                     f"--max-model-len {length}")
        given = [("--max-num-seqs", options.max_num_seqs), ("--max-num-batched-tokens",
                                                            options.max_num_batched_tokens),
                 ("--gpu-memory-utilization", options.utilization), ("--kv-cache-dtype", options.kv_cache_dtype),
                 ("--block-size", options.block_size), ("--dtype", options.dtype),
                 ("--quantization", options.quantization), ("--cpu-offload-gb", options.cpu_offload_gb),
                 ("--kv-cache-memory-bytes", options.kv_cache_memory)]
        parts += [f"{flag} {value}" for flag, value in given if value is not None]
        parts += ["--enforce-eager"] * options.enforce_eager
        return " ".join(parts)
