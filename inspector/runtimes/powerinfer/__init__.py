"""PowerInfer (SJTU-IPADS/PowerInfer, a llama.cpp fork): sparse PowerInfer GGUF (`*.powerinfer.gguf`, magic PWRI)
with its hot/cold neuron split under `--vram-budget`, and dense GGUF with `-ngl`. docs/powerinfer.md."""
from __future__ import annotations

from ...memory.options import CTX_SIZE_OPTION, GGML_MEMORY_OPTIONS, NGL_OPTION
from ...options import OptionSpec
from ..base import RuntimeSpec


def _load():  # type: ignore[no-untyped-def]
    from .runtime import PowerInferRuntime

    return PowerInferRuntime(SPEC)


OPTIONS = (
    OptionSpec("vram_budget", ("--vram-budget",), "float", "PowerInfer: VRAM budget in GiB, as PowerInfer reads it "
               "(dense tensors, KV, then hot FFN neurons); default: --budget cuda:0 less 256 MiB.", metavar="GIB",
               searched=True, memory=True),
    OptionSpec("reset_gpu_index", ("--reset-gpu-index",), "flag",
               "PowerInfer: ignore <model>.generated.gpuidx and split by the budget rule."),
    OptionSpec("disable_gpu_index", ("--disable-gpu-index",), "flag",
               "PowerInfer: no FFN split (every neuron on the CPU)."),
    OptionSpec("gpu_index", ("--gpu-index",), "str", "PowerInfer: read this split file instead of "
               "<model>.generated.gpuidx (ckpt-size's option; PowerInfer reads the latter).", metavar="FILE"),
    OptionSpec("memory_f32", ("--memory-f32",), "flag", "PowerInfer: f32 K and V cache instead of f16.",
               memory=True),
    NGL_OPTION,
    CTX_SIZE_OPTION,
) + tuple(o for o in GGML_MEMORY_OPTIONS if o.dest in ("ctx", "parallel", "overhead"))

# PowerInfer common/common.cpp flags that do not change memory; True: the flag takes a value.
IGNORED = {
    **dict.fromkeys(("-t", "--threads", "-tb", "--threads-batch", "-n", "--n-predict", "-p", "--prompt", "-f",
                     "--file", "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--repeat-last-n",
                     "-s", "--seed", "-b", "--batch-size", "--keep", "--grammar", "--host", "--port", "-a",
                     "--alias", "--log-file", "--timeout", "--threads-http", "-r", "--reverse-prompt",
                     "--in-prefix", "--in-suffix", "--chat-template", "--api-key", "--path"), True),
    **dict.fromkeys(("-i", "--interactive", "-ins", "--instruct", "--mlock", "--no-mmap", "--verbose-prompt",
                     "--color", "-cb", "--cont-batching", "--embedding", "--simple-io", "--log-disable"), False),
}

SPEC = RuntimeSpec(
    "powerinfer", "PowerInfer",
    "PowerInfer's --vram-budget hot/cold neuron split of a *.powerinfer.gguf (and -ngl for dense GGUF)",
    OPTIONS, _load,
    # PowerInfer builds llama.cpp's example binaries of late 2023 under their old names (README: ./build/bin/main,
    # examples/server); today's llama.cpp names them llama-cli and llama-server, so these pasted names mean PowerInfer
    programs=("main", "server"),
    model_flags=("-m", "--model"),
    ignored_flags=IGNORED,
    when_over="a smaller quant (`inspect --quant-list`), a shorter context (-c), or more memory (--budget)",
    order=30,
)
