"""vLLM (`vllm serve`): per-rank weights under tensor / pipeline / data / expert parallelism, the paged KV cache
sized the way vLLM's worker sizes it, and the maximum concurrency it logs; fit searches the smallest TP/PP/EP.
docs/vllm.md has every rule, its source, and the formulas of the estimates."""
from __future__ import annotations

from ...memory.options import DTYPE, KV_CACHE_DTYPE, QUANTIZATION
from ...options import OptionSpec
from ..base import RuntimeSpec


def _load():  # type: ignore[no-untyped-def]
    from .runtime import VllmRuntime

    return VllmRuntime(SPEC)


OPTIONS = (
    OptionSpec("vllm_tp", ("-tp", "--tensor-parallel-size"), "int", "vLLM: tensor-parallel ranks (GPUs per stage).",
               metavar="N", minimum=1),
    OptionSpec("vllm_pp", ("-pp", "--pipeline-parallel-size"), "int", "vLLM: pipeline stages.", metavar="N",
               minimum=1),
    OptionSpec("vllm_dp", ("-dp", "--data-parallel-size"), "int", "vLLM: data-parallel replicas (MoE layers are "
               "sharded across TP x DP).", metavar="N", minimum=1),
    OptionSpec("enable_expert_parallel", ("--enable-expert-parallel",), "flag",
               "vLLM: whole experts per rank (EP = TP x DP) instead of splitting each expert."),
    OptionSpec("max_model_len", ("--max-model-len",), "str", "vLLM: context length of a request (32768, 32k, "
               "32K; default: the model's limit).", metavar="N", memory=True),
    OptionSpec("max_num_seqs", ("--max-num-seqs",), "int", "vLLM: requests per batch (CUDA graph sizes, sampler).",
               metavar="N", minimum=1, memory=True),
    OptionSpec("max_num_batched_tokens", ("--max-num-batched-tokens",), "int",
               "vLLM: tokens per step (the profiling run's activation peak).", metavar="N", minimum=1, memory=True),
    OptionSpec("gpu_memory_utilization", ("--gpu-memory-utilization",), "float",
               "vLLM: fraction of each GPU's memory (its --budget) vLLM may use (default 0.9).", metavar="F",
               minimum=0, memory=True),
    KV_CACHE_DTYPE,
    OptionSpec("block_size", ("--block-size",), "int", "vLLM: tokens per KV block (default 16; 64 for MLA).",
               metavar="N", minimum=1, memory=True),
    DTYPE,
    QUANTIZATION,
    OptionSpec("cpu_offload_gb", ("--cpu-offload-gb",), "float", "vLLM: GiB of weights per GPU kept in CPU memory.",
               metavar="GIB", minimum=0),
    OptionSpec("kv_cache_memory", ("--kv-cache-memory", "--kv-cache-memory-bytes"), "str",
               "vLLM: KV cache size per GPU (ignores --gpu-memory-utilization).", metavar="SIZE", memory=True),
    OptionSpec("enforce_eager", ("--enforce-eager",), "flag", "vLLM: no CUDA graphs.", memory=True),
)

# `vllm serve` flags that do not change GPU memory (vllm/engine/arg_utils.py, entrypoints/openai/cli_args.py);
# True: the flag takes a value.
IGNORED = {
    **dict.fromkeys(("--host", "--port", "--api-key", "--served-model-name", "--chat-template", "--tokenizer",
                     "--tool-call-parser", "--reasoning-parser", "--seed", "--download-dir", "--load-format",
                     "--revision", "--code-revision", "--tokenizer-revision", "--tokenizer-mode", "--config-format",
                     "--generation-config", "--distributed-executor-backend", "--max-log-len", "--response-role",
                     "--ssl-keyfile", "--ssl-certfile", "--root-path", "--middleware", "--uvicorn-log-level",
                     "--allowed-origins", "--hf-overrides", "--override-generation-config", "--swap-space",
                     "--limit-mm-per-prompt", "--guided-decoding-backend", "--structured-outputs-config",
                     "--api-server-count", "--data-parallel-address", "--data-parallel-rpc-port",
                     "--data-parallel-size-local", "--data-parallel-start-rank", "--nnodes", "--node-rank",
                     "--master-addr", "--master-port", "--log-config-file", "--chat-template-content-format",
                     "--prefix-caching-hash-algo", "--scheduling-policy", "--lora-modules", "--max-loras",
                     "--max-lora-rank", "--compilation-config", "-O", "--override-pooler-config"), True),
    **dict.fromkeys(("--enable-prefix-caching", "--no-enable-prefix-caching", "--enable-chunked-prefill",
                     "--no-enable-chunked-prefill", "--disable-log-stats", "--enable-auto-tool-choice",
                     "--trust-remote-code", "--disable-custom-all-reduce", "--enable-lora", "--disable-fastapi-docs",
                     "--enable-log-requests", "--no-enable-log-requests", "--disable-uvicorn-access-log",
                     "--enable-sleep-mode", "--async-scheduling", "--no-async-scheduling", "--enable-eplb",
                     "--headless", "--enable-reasoning", "--disable-log-requests"), False),
}

SPEC = RuntimeSpec(
    "vllm", "vLLM",
    "vLLM's parallel sharding, paged KV cache and maximum concurrency (-tp, -pp, -dp, "
    "--enable-expert-parallel, --max-model-len, --gpu-memory-utilization …)",
    OPTIONS, _load,
    programs=("vllm serve", "vllm.entrypoints.openai.api_server"),
    model_positional=True,
    model_flags=("--model",),
    ignored_flags=IGNORED,
    # maximum concurrency (requests of the full length the KV cache holds at once) has no ceiling of its own
    max_parallel=1 << 20,
    when_over="a shorter context (--max-model-len), more GPUs (more cuda --budget devices for -tp / -pp), FP8 "
              "weights (--quantization fp8) or a quantized checkpoint (AWQ, GPTQ, FP8), or more memory (--budget)",
    order=30,
)
