"""SGLang: expert parallelism inside the TP group, its pipeline partition, its refusals and its fit search; numbers
by hand from the shapes (sglang server_args.py, model_runner.py, distributed/utils.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector import api
from inspector.errors import CheckFailed, UsageError
from tests.test_vllm_cli import budgets, run
from tests.test_vllm_sharding import model, per_device

GIB = 1 << 30


def experts(result, device: str) -> dict[str, tuple[int, ...]]:  # type: ignore[no-untyped-def]
    return {t.name.rsplit(".", 1)[-1]: t.shape for t in result.checkpoint.tensors
            if t.device == device and t.layer == 0 and t.role == "routed_experts"}


def test_ep_inside_the_tp_group(tmp_path: Path) -> None:
    src = model(tmp_path, "mixtral-8x7b", 1)
    # --tp-size 2 --ep-size 2: moe_tp = 2 / 2 = 1, 8 / 2 = 4 whole experts per rank
    two = api.inspect(src, runtime="sglang", sglang_tp=2, sglang_ep=2)
    assert experts(two, "cuda:1") == {"w13_weight": (4, 2 * 14336, 4096), "w2_weight": (4, 4096, 14336)}
    # --tp-size 4 --ep-size 2: ranks 0-1 hold experts 0-3, ranks 2-3 experts 4-7, each expert split over 2
    four = api.inspect(src, runtime="sglang", sglang_tp=4, sglang_ep=2)
    assert experts(four, "cuda:3") == {"w13_weight": (4, 14336, 4096), "w2_weight": (4, 4096, 7168)}
    with pytest.raises(UsageError, match="--ep-size 3 must divide --tp-size 4"):
        api.inspect(src, runtime="sglang", sglang_tp=4, sglang_ep=3)


def test_sglang_pipeline_partition(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 5)
    result = api.inspect(src, runtime="sglang", sglang_pp=2)
    # get_pp_indices: 5 // 2 = 2 per stage, the last 5 % 2 = 1 stage one more: [2, 3] (vLLM gives [3, 2])
    stage1 = {t.layer for t in result.checkpoint.tensors if t.device == "cuda:1" and t.layer is not None}
    assert stage1 == {2, 3, 4}
    vllm = api.inspect(src, runtime="vllm", vllm_pp=2)
    assert per_device(vllm)["cuda:0"] - per_device(result)["cuda:0"] == \
        per_device(result)["cuda:1"] - per_device(vllm)["cuda:1"]  # one layer moved between the stages


def test_sglang_refusals(tmp_path: Path) -> None:
    src = model(tmp_path, "qwen2.5-32b", 2)
    with pytest.raises(CheckFailed, match="SGLang would refuse to start: Not enough memory on cuda:0"):
        api.inspect(src, runtime="sglang", budgets={"cuda:0": 4 * GIB})
    with pytest.raises(UsageError, match=r"User-specified context_length \(65536\) is greater than the derived "
                                         r"context_length \(32768\)"):
        api.inspect(src, runtime="sglang", context_length=65536)


def test_sglang_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = model(tmp_path, "qwen2.5-32b", 64)
    code, out, _ = run(["fit", src, "--runtime", "sglang", *budgets(2, "48GB"), "--format", "json"], capsys)
    plan = json.loads(out)["plan"]
    assert code == 0
    assert plan["flags"] == f"python -m sglang.launch_server --model-path {src} --tp-size 2 --context-length 32768"
    assert plan["steps"][0].startswith("--tp-size 1 --pp-size 1: SGLang would refuse to start: Not enough memory")
