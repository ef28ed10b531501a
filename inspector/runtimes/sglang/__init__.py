"""SGLang (`python -m sglang.launch_server`): per-rank weights under --tp-size / --pp-size / --dp-size / --ep-size,
the KV token pool sized the way SGLang's model runner sizes it, and the share --mem-fraction-static keeps back.
docs/vllm.md ("SGLang") has every rule and its source."""
from __future__ import annotations

from ...memory.options import DTYPE, KV_CACHE_DTYPE, QUANTIZATION
from ...options import OptionSpec
from ..base import RuntimeSpec


def _load():  # type: ignore[no-untyped-def]
    from .runtime import SglangRuntime

    return SglangRuntime(SPEC)


OPTIONS = (
    OptionSpec("sglang_tp", ("--tp-size",), "int", "SGLang: tensor-parallel ranks.", metavar="N", minimum=1,
               native=("--tensor-parallel-size", "--tp")),
    OptionSpec("sglang_pp", ("--pp-size",), "int", "SGLang: pipeline stages.", metavar="N", minimum=1,
               native=("--pipeline-parallel-size",)),
    OptionSpec("sglang_dp", ("--dp-size",), "int", "SGLang: data-parallel replicas of the TP group.", metavar="N",
               minimum=1, native=("--data-parallel-size", "--dp")),
    OptionSpec("sglang_ep", ("--ep-size",), "int", "SGLang: expert-parallel ranks within the TP group.",
               metavar="N", minimum=1, native=("--expert-parallel-size", "--ep")),
    OptionSpec("mem_fraction_static", ("--mem-fraction-static",), "float", "SGLang: share of each GPU for weights "
               "and the KV pool (default: SGLang's own formula from the GPU's memory).", metavar="F", minimum=0,
               memory=True),
    OptionSpec("context_length", ("--context-length",), "int", "SGLang: context length of a request (default: "
               "the model's).", metavar="N", minimum=1, memory=True),
    OptionSpec("max_running_requests", ("--max-running-requests",), "int", "SGLang: requests running at once.",
               metavar="N", minimum=1, memory=True),
    OptionSpec("max_total_tokens", ("--max-total-tokens",), "int", "SGLang: cap on the KV pool in tokens.",
               metavar="N", minimum=1, memory=True),
    KV_CACHE_DTYPE,
    OptionSpec("page_size", ("--page-size",), "int", "SGLang: tokens per KV page (default 1).", metavar="N",
               minimum=1, memory=True),
    OptionSpec("chunked_prefill_size", ("--chunked-prefill-size",), "int", "SGLang: prefill chunk (enters the "
               "default --mem-fraction-static).", metavar="N", memory=True),
    OptionSpec("cuda_graph_max_bs", ("--cuda-graph-max-bs",), "int", "SGLang: largest CUDA graph batch (enters the "
               "default --mem-fraction-static).", metavar="N", minimum=1, memory=True),
    DTYPE,
    QUANTIZATION,
)

# launch_server flags that do not change GPU memory (python/sglang/srt/server_args.py); True: takes a value.
IGNORED = {
    **dict.fromkeys(("--host", "--port", "--api-key", "--served-model-name", "--chat-template", "--tokenizer-path",
                     "--tool-call-parser", "--reasoning-parser", "--random-seed", "--download-dir", "--load-format",
                     "--revision", "--log-level", "--schedule-policy", "--attention-backend", "--sampling-backend",
                     "--grammar-backend", "--dist-init-addr", "--nnodes", "--node-rank", "--tokenizer-mode",
                     "--stream-interval", "--schedule-conservativeness", "--moe-runner-backend",
                     "--moe-a2a-backend", "--speculative-algorithm", "--lora-paths", "--watchdog-timeout",
                     "--decode-log-interval", "--context-parallel-size"), True),
    **dict.fromkeys(("--trust-remote-code", "--enable-metrics", "--disable-radix-cache", "--disable-cuda-graph",
                     "--enable-torch-compile", "--enable-mixed-chunk", "--skip-tokenizer-init", "--log-requests",
                     "--disable-overlap-schedule", "--enable-cache-report",
                     "--enable-deterministic-inference"), False),
}

SPEC = RuntimeSpec(
    "sglang", "SGLang",
    "SGLang's parallel sharding and KV token pool (--tp-size, --ep-size, --mem-fraction-static, "
    "--context-length …)",
    OPTIONS, _load,
    programs=("sglang.launch_server",),
    model_flags=("--model-path", "--model"),
    ignored_flags=IGNORED,
    # maximum concurrency (requests of the full length the KV cache holds at once) has no ceiling of its own
    max_parallel=1 << 20,
    when_over="a shorter context (--context-length), more GPUs (more cuda --budget devices for --tp-size / "
              "--pp-size), FP8 weights (--quantization fp8) or a quantized checkpoint, or more memory (--budget)",
    order=40,
)
