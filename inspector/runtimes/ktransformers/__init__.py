"""KTransformers: its optimize-rule YAML replayed on the checkpoint (placement and runtime formats), and fit
writing a rule file (`--emit-yaml`)."""
from __future__ import annotations

from ...memory.options import GGML_MEMORY_OPTIONS
from ...options import OptionSpec
from ..base import RuntimeSpec


def _load():  # type: ignore[no-untyped-def]
    from .runtime import KtRuntime

    return KtRuntime(SPEC)


# kvcache-ai/ktransformers ktransformers/server/args.py (ArgumentParser.parse_args): --cache_lens is the KV cache in
# tokens shared by the batch (gpu_memory_size = cache_lens x per-token bytes), --max_batch_size the sequences served
# at once; --optimize_config_path the rule file.
OPTIONS = (
    OptionSpec("cache_lens", ("--cache-lens",), "int", "KTransformers: KV cache tokens shared by the batch (its "
               "--cache_lens); each sequence gets cache_lens / max_batch_size.", metavar="N", minimum=1,
               native=("--cache_lens",), memory=True),
    OptionSpec("max_batch_size", ("--max-batch-size",), "int", "KTransformers: sequences served at once (its "
               "--max_batch_size).", metavar="N", minimum=1, native=("--max_batch_size",), memory=True),
    OptionSpec("placement_file", (), "str", "KTransformers' rule file (its --optimize_config_path).",
               native=("--optimize_config_path",)),
)

# ktransformers/server/args.py flags with no effect on memory (True: the flag takes a value)
IGNORED = {
    **dict.fromkeys(("--host", "--port", "--api_key", "--model_name", "--model_path", "--model_dir", "--cpu_infer",
                     "--backend_type", "--chunk_size", "--max_new_tokens", "--temperature", "--top_p", "--top_k",
                     "--web", "--log_dir", "--log_level", "--architectures", "--kvc2_config_dir", "--page_size",
                     "--cache_q4", "--cache_8bit", "--prompt_file", "--ssl_keyfile", "--ssl_certfile"), True),
    **dict.fromkeys(("--force_think", "--no-force_think", "--use_cuda_graph", "--no-use_cuda_graph"), False),
}

SPEC = RuntimeSpec(
    "ktransformers", "KTransformers",
    "a KTransformers optimize-rule YAML (--placement FILE), or one written by fit (--emit-yaml)",
    OPTIONS + GGML_MEMORY_OPTIONS, _load,
    programs=("ktransformers", "ktransformers.server.main", "ktransformers.local_chat"),
    model_flags=("--gguf_path",),
    ignored_flags=IGNORED,
    when_over="a smaller quant (`inspect --quant-list`), a shorter context (--cache-lens), fewer sequences "
              "(--max-batch-size), or more memory (--budget)",
    order=20,
    placement_file_kinds=("ktransformers",),
)
