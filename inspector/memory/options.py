"""The options of the ggml memory model (KV cache, state, buffers), spelled as llama.cpp spells them, as data.
Shared by the runtimes that allocate memory the llama.cpp way (literal plans, llama.cpp, KTransformers' KV
estimate). Light on purpose: every runtime's SPEC imports it at start-up; the values are read in context.py."""
from __future__ import annotations

from ..options import OptionSpec

GGML_MEMORY_OPTIONS = (
    OptionSpec("ctx", ("--ctx",), "int", "Context length of EACH sequence (llama.cpp's -c is the total: ctx x "
               "parallel); adds KV cache, state and buffers per device.", metavar="N", minimum=1, shared=True, memory=True),
    OptionSpec("parallel", ("--parallel", "-np"), "int", "Parallel sequences (llama.cpp gets -c ctx*N -np N).",
               metavar="N", minimum=1, shared=True, memory=True),
    OptionSpec("kv_type", ("--kv-type",), "str", "K and V cache type (f16, q8_0, q4_0 …).", metavar="TYPE",
               shared=True, memory=True),
    OptionSpec("cache_type_k", ("--cache-type-k", "-ctk"), "str", "K cache type (default f16).", metavar="TYPE",
               shared=True, memory=True),
    OptionSpec("cache_type_v", ("--cache-type-v", "-ctv"), "str", "V cache type (default f16).", metavar="TYPE",
               shared=True, memory=True),
    OptionSpec("no_kv_offload", ("--no-kv-offload", "-nkvo"), "flag", "Keep the KV cache on the CPU.", shared=True, memory=True),
    OptionSpec("flash_attn", ("--flash-attn", "-fa"), "choice", "Flash attention (changes V padding and buffers).",
               choices=("on", "off", "auto"), shared=True, memory=True),
    OptionSpec("ubatch", ("--ubatch-size", "-ub"), "int", "Physical batch size (compute buffers).", metavar="N",
               minimum=1, shared=True, memory=True),
    OptionSpec("kv_unified", ("--kv-unified", "-kvu"), "flag", "One KV buffer shared by all sequences (llama.cpp "
               "-kvu).", shared=True, memory=True),
    OptionSpec("swa_full", ("--swa-full",), "flag", "Full-size cache for sliding-window layers.", shared=True, memory=True),
    OptionSpec("overhead", ("--overhead",), "float", "Safety margin in percent, shown as its own row.",
               metavar="PCT", minimum=0, shared=True, memory=True),
)
MEMORY_DESTS = tuple(o.dest for o in GGML_MEMORY_OPTIONS)

# Options several llama.cpp-family runtimes declare (llama.cpp and its fork PowerInfer): one OptionSpec object
# each, since the command line refuses two different specs under one dest. Each runtime reads the value its own
# way (PowerInfer refuses -ngl for a sparse PWRI model, as its llama_model_load does).
NGL_OPTION = OptionSpec("ngl", ("-ngl", "--n-gpu-layers"), "str", "llama.cpp: layers on GPUs (N, all, auto).",
                        metavar="N", native=("--gpu-layers",), searched=True)
CTX_SIZE_OPTION = OptionSpec("ctx_size", ("-c", "--ctx-size"), "int", "llama.cpp's total context, shared by the -np "
                             "sequences (each gets -c / -np); use --ctx for the context of each sequence.",
                             metavar="N", minimum=1, memory=True)

# Options vLLM and SGLang both declare: one object each, merged into one click option (cli.runtime_option_specs).
KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bfloat16", "bf16", "float16")
KV_CACHE_DTYPE = OptionSpec("kv_cache_dtype", ("--kv-cache-dtype",), "choice",
                            "vLLM / SGLang: KV cache dtype (auto = the model dtype; fp8* = 1 byte).",
                            choices=KV_CACHE_DTYPES, memory=True)
DTYPE = OptionSpec("serve_dtype", ("--dtype",), "choice", "vLLM / SGLang: dtype of unquantized weights "
                   "(auto = config.json's torch_dtype, float32 served as bfloat16).",
                   choices=("auto", "half", "float16", "bfloat16", "float", "float32"))
QUANTIZATION = OptionSpec("quantization", ("--quantization", "-q"), "str",
                          "vLLM / SGLang: quantization method (the checkpoint's own, or fp8 to quantize a 16-bit "
                          "checkpoint on load).", metavar="METHOD")

# transformers and training read HF checkpoints the way one transformers version lays modules out.
TRANSFORMERS_VERSION_OPTION = OptionSpec(
    "transformers_version", ("--transformers-version",), "choice", "transformers and training: whose module layout "
    "and loading rules, 5 (5.25, default) or 4 (4.57).", choices=("4", "5"), shared=True, memory=True, searched=True)
