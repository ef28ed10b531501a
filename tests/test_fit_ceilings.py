"""fit's max_parallel stops at the runtime's own ceiling: llama.cpp's 256 sequences (LLAMA_MAX_SEQ), none for
vLLM, whose maximum concurrency is what its KV cache holds."""
import json
from pathlib import Path

import pytest

from inspector.cli import main

MIXTRAL = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "mixtral-8x7b-bf16"


def test_vllm_max_parallel_is_not_capped_at_llama_cpps_256(capsys) -> None:  # type: ignore[no-untyped-def]
    budgets = [a for d in range(4) for a in ("--budget", f"cuda:{d}=80GiB")]
    with pytest.raises(SystemExit) as exit_:
        main(["fit", str(MIXTRAL), "--runtime", "vllm", "--max-model-len", "512", "--format", "json", *budgets])
    assert exit_.value.code == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    # Mixtral-8x7B at TP 2: 32 layers x (K + V) x 8/2 KV heads x 128 x 2 bytes = 65,536 bytes per token and rank
    per_token = 32 * 2 * (8 // 2) * 128 * 2
    kv_bytes = plan["memory"]["devices"]["cuda:0"]["kv_cache"]
    assert plan["max_parallel"] == kv_bytes // per_token // 512 > 256
    assert plan["max_parallel_cap"] > plan["max_parallel"]


def test_vllm_limits_are_at_the_length_the_engine_derives(capsys) -> None:  # type: ignore[no-untyped-def]
    """Without --max-model-len vLLM runs at the model's max_position_embeddings (32,768 in Mixtral's config.json):
    the limits say they hold at that length, not at 0."""
    budgets = [a for d in range(2) for a in ("--budget", f"cuda:{d}=80GiB")]
    with pytest.raises(SystemExit) as exit_:
        main(["fit", str(MIXTRAL), "--runtime", "vllm", "--format", "json", *budgets])
    assert exit_.value.code == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan["limits_at"] == {"ctx": 32768, "parallel": 1}
    per_token = 32 * 2 * (8 // 2) * 128 * 2  # TP 2, as in the test above
    assert plan["max_parallel"] == plan["memory"]["devices"]["cuda:0"]["kv_cache"] // per_token // 32768
