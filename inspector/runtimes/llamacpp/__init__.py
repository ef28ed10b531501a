"""llama.cpp (and ik_llama.cpp): its offload flags, its loader's placement, its KV cache and buffers, its fit."""
from __future__ import annotations

from ...memory.options import CTX_SIZE_OPTION, GGML_MEMORY_OPTIONS, NGL_OPTION
from ...options import OptionSpec
from ..base import RuntimeSpec


def _load():  # type: ignore[no-untyped-def]
    from .runtime import LlamaCppRuntime

    return LlamaCppRuntime(SPEC)


OPTIONS = (
    NGL_OPTION,
    OptionSpec("override_tensor", ("-ot", "--override-tensor"), "str",
               "llama.cpp: tensors matching REGEX on buffer BUFT (CPU, CUDA0 …); first match wins.",
               metavar="REGEX=BUFT[,..]", multiple=True, searched=True),
    OptionSpec("cpu_moe", ("--cpu-moe", "-cmoe"), "flag", "llama.cpp: all routed experts on the CPU.", searched=True),
    OptionSpec("n_cpu_moe", ("--n-cpu-moe", "-ncmoe"), "int", "llama.cpp: routed experts of blocks 0..N-1 on the CPU.",
               metavar="N", minimum=0, searched=True),
    OptionSpec("tensor_split", ("-ts", "--tensor-split"), "str", "llama.cpp: proportions of layers per GPU.",
               metavar="A,B,..", searched=True),
    OptionSpec("split_mode", ("-sm", "--split-mode"), "choice", "llama.cpp: how to split across GPUs.",
               default="layer", choices=("none", "layer", "row"), show_default=True, searched=True),
    OptionSpec("main_gpu", ("-mg", "--main-gpu"), "int", "llama.cpp: the GPU for -sm none / row.", default=0,
               minimum=0, show_default=True, searched=True),
    CTX_SIZE_OPTION,
)

# llama-server / llama-cli flags that do not change memory (common/arg.cpp); True: the flag takes a value.
IGNORED = {
    **dict.fromkeys(("--host", "--port", "-t", "--threads", "-tb", "--threads-batch", "-n", "--n-predict",
                     "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--seed", "-s", "-a", "--alias",
                     "--api-key", "--chat-template", "--chat-template-file", "-p", "--prompt", "-f", "--file",
                     "--log-file", "--timeout", "--threads-http", "--slot-save-path", "--reasoning-format",
                     "--reasoning-budget", "-b", "--batch-size", "--keep", "--grammar", "--json-schema",
                     "-sys", "--system-prompt", "--path", "--api-prefix", "--ssl-key-file", "--ssl-cert-file",
                     "--numa", "-cb", "--poll", "--prio", "-C", "--cpu-mask", "--override-kv", "--lora",
                     "--lora-scaled", "--mmproj", "-mm", "--draft-max", "--draft-min", "-md", "--model-draft",
                     "--spec-type"), True),
    **dict.fromkeys(("--jinja", "--no-jinja", "--mlock", "--no-mmap", "--mmap", "--metrics", "--props", "--slots",
                     "--no-webui", "--verbose", "-v", "--log-disable", "--cont-batching", "--no-cont-batching",
                     "-cnv", "--conversation", "-no-cnv", "--no-warmup", "--embedding", "--embeddings",
                     "--reranking", "-sp", "--special", "--no-perf", "--log-colors", "-i", "--interactive",
                     "--check-tensors", "--no-context-shift", "--context-shift"), False),
}

SPEC = RuntimeSpec(
    "llamacpp", "llama.cpp",
    "llama.cpp's own flags and loader: -ngl, -ot, --cpu-moe, --n-cpu-moe, -ts, -sm, -mg",
    OPTIONS + GGML_MEMORY_OPTIONS, _load,
    programs=("llama-server", "llama-cli", "llama-mtmd-cli", "llama-bench"),
    model_flags=("-m", "--model"),
    hub_model_flags=("-hf", "-hfr", "--hf-repo"),
    ignored_flags=IGNORED,
    order=10,
)
