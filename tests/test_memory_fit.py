"""The fit search: llama.cpp flags (smallest --n-cpu-moe, then -ngl / -ts, then -ot) and KTransformers Marlin
layers. Optimality is checked independently: the chosen plan fits, and one step further (one more expert layer or
one more layer on the GPU) does not, each checked with the placement API and the memory plan."""
from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.generate import write_gguf
from inspector import load
from inspector.errors import UsageError
from inspector.memory import MemoryOptions, memory_plan, parse_budget
from inspector.memory.fit import best_quant, fit
from inspector.model import Checkpoint
from inspector.placement.llamacpp import LlamaCppFlags, place_llamacpp
from inspector.placement.validate import validate_placement

GiB = 1 << 30
OPTS = MemoryOptions(ctx=4096)


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    # Mixtral-8x7B shapes, 8 blocks, Q4_K: each block's experts are 3 × 8 × 14,336 × 4,096 × 144/256 B = 792,723,456 B
    path = write_gguf(tmp_path_factory.mktemp("mix") / "mixtral.gguf", "mixtral-8x7b", tensor_type="Q4_K", n_layers=8)
    return load(str(path))


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    path = write_gguf(tmp_path_factory.mktemp("llama") / "llama.gguf", "llama-3.2-3b", tensor_type="Q8_0", n_layers=8)
    return load(str(path))


def exact(checkpoint: Checkpoint, flags: LlamaCppFlags, options: MemoryOptions = OPTS) -> dict[str, int]:
    placed = place_llamacpp(checkpoint, flags)
    plan = memory_plan(placed.checkpoint, options, layer_devices=dict(enumerate(placed.layer_devices)),
                       output_device=placed.output_device)
    return plan.totals


def test_everything_fits_on_a_large_gpu(mixtral: Checkpoint) -> None:
    result = fit(mixtral, {"cuda:0": 80 * GiB}, OPTS)
    assert result.fits and result.all_on_gpu
    assert result.flags_line == "-ngl 9 -c 4096"  # 8 blocks + the output layer
    assert result.verdict.exit_code == 0


def test_smallest_n_cpu_moe_is_minimal(mixtral: Checkpoint) -> None:
    budget = 4 * GiB
    result = fit(mixtral, {"cuda:0": budget}, OPTS)
    flags = result.flags
    assert result.fits and flags.n_gpu_layers == 9 and flags.n_cpu_moe
    n = flags.n_cpu_moe
    assert exact(mixtral, LlamaCppFlags(n_gpu_layers=9, n_cpu_moe=n))["cuda:0"] <= budget
    # one expert layer fewer on the CPU (and no -ot refill) no longer fits
    assert exact(mixtral, LlamaCppFlags(n_gpu_layers=9, n_cpu_moe=n - 1))["cuda:0"] > budget
    # -ot refills come before --n-cpu-moe on the line (first match wins in llama.cpp) and stay within budget
    line = result.flags_line
    if "-ot" in line:
        assert line.index("-ot") < line.index("--n-cpu-moe")
    assert result.plan.devices["cuda:0"].total <= budget


def test_partial_offload_when_even_cpu_experts_do_not_fit(mixtral: Checkpoint) -> None:
    result = fit(mixtral, {"cuda:0": 300 << 20, "cpu": 64 * GiB}, OPTS)
    flags = result.flags
    assert result.fits and flags.cpu_moe and flags.n_gpu_layers < 9
    assert exact(mixtral, LlamaCppFlags(n_gpu_layers=flags.n_gpu_layers + 1, cpu_moe=True))["cuda:0"] > 300 << 20
    assert "largest -ngl" in " ".join(result.steps)


def test_two_gpus_get_a_tensor_split(mixtral: Checkpoint) -> None:
    budgets = {"cuda:0": 3 * GiB, "cuda:1": 3 * GiB}
    result = fit(mixtral, budgets, OPTS)
    flags = result.flags
    assert result.fits
    assert flags.tensor_split is not None and sum(flags.tensor_split) == 9
    totals = result.plan.totals
    assert totals["cuda:0"] <= budgets["cuda:0"] and totals["cuda:1"] <= budgets["cuda:1"]
    assert "-ts " in result.flags_line


def test_dense_model_largest_ngl(llama: Checkpoint) -> None:
    full = exact(llama, LlamaCppFlags(n_gpu_layers=9))["cuda:0"]
    budget = full * 2 // 3
    result = fit(llama, {"cuda:0": budget}, OPTS)
    ngl = result.flags.n_gpu_layers
    assert 0 < ngl < 9 and result.fits
    assert exact(llama, LlamaCppFlags(n_gpu_layers=ngl))["cuda:0"] <= budget
    assert exact(llama, LlamaCppFlags(n_gpu_layers=ngl + 1))["cuda:0"] > budget


def test_cpu_only_and_does_not_fit(llama: Checkpoint) -> None:
    ok = fit(llama, {"cpu": 64 * GiB}, OPTS)
    assert ok.fits and ok.flags.n_gpu_layers == 0 and ok.flags_line.startswith("-ngl 0")
    no = fit(llama, {"cpu": 1 << 20}, OPTS)
    assert not no.fits and no.verdict.exit_code == 3
    assert no.verdict.devices[0].over_by == no.plan.devices["cpu"].total - (1 << 20)
    with pytest.raises(UsageError):
        fit(llama, {}, OPTS)
    with pytest.raises(UsageError):
        fit(llama, {"cuda:0": GiB}, OPTS, runtime="vllm")


def test_max_context_and_parallel_are_the_limits(llama: Checkpoint) -> None:
    # with every layer on one GPU the KV grows by 8 layers × 8 KV heads × 128 × 2 (K, V) × 2 B = 32,768 B a token
    weights = exact(llama, LlamaCppFlags(n_gpu_layers=9), OPTS.with_(ctx=256))["cuda:0"]
    budget = weights + 2 * GiB
    result = fit(llama, {"cuda:0": budget}, OPTS)
    k = result.max_ctx
    assert k % 256 == 0 and k > 4096
    assert exact(llama, LlamaCppFlags(n_gpu_layers=9), OPTS.with_(ctx=k))["cuda:0"] <= budget
    assert exact(llama, LlamaCppFlags(n_gpu_layers=9), OPTS.with_(ctx=k + 256))["cuda:0"] > budget
    p = result.max_parallel
    assert p >= 1
    assert exact(llama, LlamaCppFlags(n_gpu_layers=9), OPTS.with_(parallel=p))["cuda:0"] <= budget
    assert exact(llama, LlamaCppFlags(n_gpu_layers=9), OPTS.with_(parallel=p + 1))["cuda:0"] > budget


def test_best_quant_prefers_the_largest_that_fits_on_the_gpu(tmp_path: Path) -> None:
    quants = {}
    for name in ("Q8_0", "Q4_0"):
        quants[name] = load(str(write_gguf(tmp_path / f"m-{name}.gguf", "llama-3.2-3b", tensor_type=name,
                                           n_layers=8)))
    q4_full = exact(quants["Q4_0"], LlamaCppFlags(n_gpu_layers=9))["cuda:0"]
    q8_full = exact(quants["Q8_0"], LlamaCppFlags(n_gpu_layers=9))["cuda:0"]
    assert q4_full < q8_full
    best, rows = best_quant(quants, {"cuda:0": (q4_full + q8_full) // 2}, OPTS)
    assert best is not None and best.name == "Q4_0" and best.all_on_gpu
    assert [r.name for r in rows] == ["Q8_0", "Q4_0"]  # largest first
    roomy, _ = best_quant(quants, {"cuda:0": 2 * q8_full}, OPTS)
    assert roomy is not None and roomy.name == "Q8_0"


# ---------------------------------------------------------------------------------------------------------- KT
@pytest.fixture(scope="module")
def deepseek(tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    # DeepSeek-V3 shapes with 6 blocks: 0–2 dense, 3–5 MoE (256 experts of 7,168 × 2,048)
    path = write_gguf(tmp_path_factory.mktemp("ds") / "ds.gguf", "deepseek-v3", tensor_type="Q8_0", n_layers=6)
    return load(str(path))


# Marlin int4 group 64 per expert projection (K·N/2 + K/64·N·2 B): gate/up K 7,168 N 2,048 → 7,340,032 + 458,752;
# down K 2,048 N 7,168 → 7,340,032 + 458,752; × 3 × 256 experts = 5,989,466,112 B per MoE layer
MARLIN_LAYER = 3 * 256 * (7_340_032 + 458_752)


def test_ktransformers_marlin_layers_per_gpu(deepseek: Checkpoint, tmp_path: Path) -> None:
    roomy = fit(deepseek, {"cuda:0": 1 << 50}, OPTS, runtime="ktransformers")
    assert roomy.marlin_layers == {"cuda:0": 3}  # room for every MoE layer
    # GPU bytes with k Marlin layers = (bytes with all 3) - (3 - k) × MARLIN_LAYER; a budget halfway between k = 2
    # and k = 3 must give 2
    all3 = roomy.plan.devices["cuda:0"].total
    budget = all3 - MARLIN_LAYER // 2
    two = fit(deepseek, {"cuda:0": budget}, OPTS, runtime="ktransformers")
    assert two.marlin_layers == {"cuda:0": 2} and two.fits
    assert all3 - two.plan.devices["cuda:0"].total >= MARLIN_LAYER  # one layer's Marlin experts left the GPU
    out = two.write_yaml(tmp_path / "rules.yaml")
    result = validate_placement(out, deepseek, gpus=1)
    assert not result.has_errors, [f.render() for f in result.findings if f.severity == "error"]
    assert "KExpertsMarlin" in out.read_text() and "KExpertsCPU" in out.read_text()


def test_ktransformers_two_gpus_and_yaml_only_for_kt(deepseek: Checkpoint, mixtral: Checkpoint) -> None:
    result = fit(deepseek, {"cuda:0": 40 * GiB, "cuda:1": 40 * GiB}, OPTS, runtime="ktransformers")
    assert set(result.marlin_layers) == {"cuda:0", "cuda:1"}
    assert "transfer_map" in (result.yaml_text or "")
    with pytest.raises(UsageError):
        fit(mixtral, {"cuda:0": 80 * GiB}, OPTS).write_yaml("/nonexistent/x.yaml")


def test_parse_budget_feeds_fit(llama: Checkpoint) -> None:
    result = fit(llama, parse_budget(["cuda:0=80GB"]), OPTS)
    assert result.fits and result.verdict.devices[0].budget == 80 * 10**9
