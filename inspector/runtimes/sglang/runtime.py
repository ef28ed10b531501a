"""The SGLang runtime behind the protocol: launch_server flags in, per-rank placement, KV token pool, fit search
(the fewest GPUs, widest TP first; for MoE models --ep-size 1 then the TP size), the launch command out.
--tp-size, --pp-size, --dp-size and --ep-size given are kept; the search varies the others."""
from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from typing import Any, Mapping

from ...errors import CheckFailed, UsageError
from ...memory.serving import ServingContext, ServingReport, runtime_dtype, serve_path, serving_model
from ...memory.shard_rows import rank_role_bytes, role_bytes, shard_checkpoint
from ...model import Checkpoint, TensorInfo
from ..base import Placement, RuntimeBase, SearchOutcome
from .memory import sglang_memory
from .settings import Settings, SglangOptions, options_from, resolve

LIMITS_NOTE = ("max_ctx is the longest --context-length whose one request fits the token pool; max_parallel how "
               "many context_length requests the pool holds at once")


@dataclass(frozen=True)
class Placed:
    settings: Settings
    searched: bool = False


def _dtype_of(s: Settings):  # type: ignore[no-untyped-def]
    def dtype_of(t: TensorInfo, shape: tuple[int, ...], nbytes: int) -> tuple[str, int]:
        return runtime_dtype(t, shape, nbytes, s.dtype, s.fp8_online)

    return dtype_of


def place(checkpoint: Checkpoint, s: Settings, searched: bool = False) -> Placement:
    tensors = shard_checkpoint(checkpoint, s.dims(), s.parallel(), _dtype_of(s))
    summary = (f"SGLang: TP {s.tp} x PP {s.pp}" + (f" x DP {s.dp}" if s.dp > 1 else "")
               + (f", EP {s.ep}" if s.ep > 1 else "") + f" ({s.world} GPU{'s' * (s.world > 1)})")
    skipped = sum(1 for t in tensors if t.device is None)
    notes = (f"{skipped} tensor(s) SGLang does not load without speculative decoding (MTP layers)",) if skipped else ()
    return Placement("sglang", checkpoint.with_(tensors=tensors), checkpoint, summary, notes=notes,
                     detail=Placed(s, searched))


class SglangRuntime(ServingContext, RuntimeBase):  # ServingContext first: its placed_context
    LENGTH_FIELD = "context_length"

    def options(self, values: Mapping[str, Any]) -> SglangOptions:
        return options_from(values)

    def place(self, checkpoint: Checkpoint, options: SglangOptions) -> Placement:
        placement = place(checkpoint, resolve(checkpoint, options))
        return replace(placement, command=self.command(placement, options))

    def _settings(self, placement: Placement, options: SglangOptions) -> Settings:
        s: Settings = placement.detail.settings
        return resolve(placement.source, options.with_(tp=s.tp, pp=s.pp, dp=s.dp, ep=s.ep), s.model)

    def memory(self, placement: Placement, options: SglangOptions) -> ServingReport:
        report = sglang_memory(self._settings(placement, options), role_bytes(placement.checkpoint.tensors),
                               options.budgets or {})
        if report.refusal and not placement.detail.searched:
            raise CheckFailed(report.refusal)
        return report

    def search(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: SglangOptions) -> SearchOutcome:
        options = options.with_(budgets=dict(budgets))
        model = serving_model(checkpoint)
        n = 0
        while f"cuda:{n}" in budgets:
            n += 1
        if not n:
            raise UsageError("SGLang runs on GPUs: give --budget cuda:0=SIZE (and cuda:1 … for more GPUs)")
        steps: list[str] = []
        last = chosen = None
        for opts in _candidates(options, n, model.is_moe):
            try:
                s = resolve(checkpoint, opts, model)
            except UsageError as e:
                steps.append(f"{_label(opts)}: SGLang would refuse it ({e.args[0]})")
                continue
            report = sglang_memory(s, rank_role_bytes(checkpoint, s.dims(), s.parallel(), _dtype_of(s)), budgets)
            fits = report.refusal is None and all(report.required.get(d, 0) <= b for d, b in budgets.items())
            steps.append(f"{_label(opts)}: " + ("fits" if fits else (report.refusal or "over budget").split(";")[0]))
            last = s
            if fits:
                chosen = s
                break
        if last is None:
            raise UsageError("no parallel layout SGLang accepts fits these GPUs", hint="; ".join(steps[-3:]))
        placement = place(checkpoint, chosen or last, searched=True)
        placement = replace(placement, command=self.command(placement, options))
        return SearchOutcome(placement, tuple(steps), placement.notes, all_on_gpu=chosen is not None,
                             limits_note=LIMITS_NOTE)

    def command(self, placement: Placement, options: SglangOptions) -> str:
        s: Settings = placement.detail.settings
        parts = ["python -m sglang.launch_server --model-path", shlex.quote(serve_path(placement.source.source))]
        parts += [f"--tp-size {s.tp}"] * (s.tp > 1) + [f"--pp-size {s.pp}"] * (s.pp > 1)
        parts += [f"--dp-size {s.dp}"] * (s.dp > 1) + [f"--ep-size {s.ep}"] * (s.ep > 1)
        parts.append(f"--context-length {options.context_length or s.context_length}")
        given = [("--mem-fraction-static", options.mem_fraction_static), ("--max-running-requests",
                                                                          options.max_running_requests),
                 ("--max-total-tokens", options.max_total_tokens), ("--kv-cache-dtype", options.kv_cache_dtype),
                 ("--page-size", options.page_size), ("--chunked-prefill-size", options.chunked_prefill_size),
                 ("--cuda-graph-max-bs", options.cuda_graph_max_bs), ("--dtype", options.dtype),
                 ("--quantization", options.quantization)]
        return " ".join(parts + [f"{flag} {value}" for flag, value in given if value is not None])


def _candidates(o: SglangOptions, n: int, moe: bool) -> list[SglangOptions]:
    dp = o.dp or 1
    out = []
    for world in range(1, n + 1):
        if world % dp:
            continue
        per = world // dp
        for tp in ([o.tp] if o.tp else [t for t in range(per, 0, -1) if per % t == 0]):
            if per % tp or (o.pp and per // tp != o.pp):
                continue
            eps = [o.ep] if o.ep else ([1, tp] if moe and tp > 1 else [1])
            out += [o.with_(tp=tp, pp=per // tp, dp=dp, ep=ep) for ep in eps]
    return out


def _label(o: SglangOptions) -> str:
    return f"--tp-size {o.tp} --pp-size {o.pp}" + (f" --dp-size {o.dp}" if (o.dp or 1) > 1 else "") + \
        (f" --ep-size {o.ep}" if (o.ep or 1) > 1 else "")
