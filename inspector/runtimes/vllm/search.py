"""vLLM's search hook for `fit`: the fewest GPUs (then the widest tensor parallelism, then pipeline stages; for MoE
models without, then with expert parallelism) on which vLLM starts with at least one request of max_model_len
tokens in its KV cache, within the budgets of cuda:0..cuda:N-1.

-tp, -pp, -dp and --enable-expert-parallel given on the command line are kept as given (a pasted `vllm serve …
-tp 2` asks about TP 2); the search varies only what was not given. Candidates vLLM would refuse (TP not dividing
the heads, FP8 blocks split mid-block) are skipped and named in the steps. Each candidate is sized from per-rank
sums without building the shard tensors; the chosen one is placed in full.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Mapping

from ...errors import UsageError
from ...memory.serving import ServingModel, runtime_dtype, serving_model
from ...memory.shard_rows import rank_role_bytes, role_bytes
from ...model import Checkpoint, TensorInfo
from ..base import SearchOutcome
from .layout import Settings, mla_copy_bytes, place, resolve
from .memory import vllm_memory
from .options import VllmOptions

if TYPE_CHECKING:
    from .runtime import VllmRuntime

LIMITS_NOTE = ("max_ctx is the longest --max-model-len with one request of that length in the KV cache; "
               "max_parallel how many max_model_len requests the KV cache holds at once (vLLM's maximum concurrency, "
               "rounded down)")


def gpu_count(budgets: Mapping[str, int]) -> int:
    """Consecutive GPU budgets from cuda:0 (vLLM's ranks are cuda:0..N-1)."""
    n = 0
    while f"cuda:{n}" in budgets:
        n += 1
    return n


class VllmSearch:
    def __init__(self, runtime: "VllmRuntime", checkpoint: Checkpoint, budgets: Mapping[str, int],
                 options: VllmOptions) -> None:
        self.runtime = runtime
        self.checkpoint = checkpoint
        self.budgets = dict(budgets)
        self.options = options.with_(budgets=dict(budgets))
        self.model: ServingModel = serving_model(checkpoint)
        self.steps: list[str] = []

    def candidates(self) -> list[VllmOptions]:
        o, n = self.options, gpu_count(self.budgets)
        dp = o.dp or 1
        eps = [o.expert_parallel] if o.expert_parallel is not None or not self.model.is_moe else [False, True]
        out = []
        for world in range(1, n + 1):
            if world % dp:
                continue
            per_engine = world // dp
            tps = [o.tp] if o.tp else [t for t in range(per_engine, 0, -1) if per_engine % t == 0]
            for tp in tps:
                if per_engine % tp or (o.pp and per_engine // tp != o.pp):
                    continue
                for ep in eps if tp * dp > 1 else eps[:1]:  # EP = TP x DP: nothing to spread on one rank
                    out.append(o.with_(tp=tp, pp=per_engine // tp, dp=dp, expert_parallel=ep))
        return out

    def evaluate(self, opts: VllmOptions) -> tuple[Settings, bool, int | None] | None:
        """The settings of a candidate, whether it fits, and the longest max_model_len it would start with."""
        try:
            s = resolve(self.checkpoint, opts, self.model)
        except UsageError as e:
            self.steps.append(f"{label(opts)}: vLLM would refuse it ({e.args[0]})")
            return None
        if s.offload_bytes:
            roles = role_bytes(place(self.checkpoint, s).checkpoint.tensors)
        else:
            def dtype_of(t: TensorInfo, shape: tuple[int, ...], nbytes: int) -> tuple[str, int]:
                return runtime_dtype(t, shape, nbytes, s.dtype, s.fp8_online)

            roles = rank_role_bytes(self.checkpoint, s.dims(), s.parallel(), dtype_of)
            for device, extra in mla_copy_bytes(self.checkpoint, s).items():
                roles[device]["attention"] = roles[device].get("attention", 0) + extra
        report = vllm_memory(s, roles, self.budgets)
        fits = report.refusal is None and all(report.required.get(d, 0) <= b for d, b in self.budgets.items())
        why = "fits" if fits else (report.refusal or "over budget").split(";")[0]
        self.steps.append(f"{label(opts)}: {why}" + (f" ({report.facts['kv_cache']['max_concurrency']:.2f}x "
                                                      f"{s.max_model_len:,}-token requests)" if fits else ""))
        return s, fits, report.facts["kv_cache"]["longest_max_model_len"]

    def shorter(self, opts: VllmOptions, longest: int) -> Settings | None:
        """No layout holds a request of the model's full length: the fewest GPUs that start, at the longest
        max_model_len they take (rounded down to 256 tokens), when the user did not ask for a length."""
        length = longest // 256 * 256 or longest
        found = self.evaluate(opts.with_(max_model_len=length))
        if found is None or not found[1]:
            return None
        self.steps.append(f"no layout on these GPUs holds one {self.model.max_len:,}-token request: "
                          f"{label(opts)} with --max-model-len {length}")
        return found[0]

    def run(self) -> SearchOutcome:
        if gpu_count(self.budgets) == 0:
            raise UsageError("vLLM runs on GPUs: give --budget cuda:0=SIZE (and cuda:1 … for more GPUs)")
        last: Settings | None = None
        chosen: Settings | None = None
        shorter: tuple[VllmOptions, int] | None = None  # the fewest GPUs that start with a shorter max_model_len
        for opts in self.candidates():
            found = self.evaluate(opts)
            if found is None:
                continue
            last = found[0]
            if found[1]:
                chosen = found[0]
                break
            if shorter is None and found[2]:
                shorter = (opts, found[2])
        if last is None:
            raise UsageError("no parallel layout vLLM accepts fits these GPUs", hint="; ".join(self.steps[-3:]))
        if chosen is None and shorter is not None and self.options.max_model_len is None:
            chosen = self.shorter(*shorter)
        settings = chosen or last
        if chosen is None:
            self.steps.append(f"nothing fits: showing {label_settings(settings)}")
        placement = place(self.checkpoint, settings, searched=True)
        placement = replace(placement, command=self.runtime.command(placement, self.options))
        return SearchOutcome(placement, tuple(self.steps), placement.notes, all_on_gpu=chosen is not None and
                             not settings.offload_bytes, limits_note=LIMITS_NOTE)


def label(o: VllmOptions) -> str:
    return f"-tp {o.tp or 1} -pp {o.pp or 1}" + (f" -dp {o.dp}" if (o.dp or 1) > 1 else "") + \
        (" --enable-expert-parallel" if o.expert_parallel else "")


def label_settings(s: Settings) -> str:
    return label(VllmOptions(tp=s.tp, pp=s.pp, dp=s.dp, expert_parallel=s.expert_parallel))

