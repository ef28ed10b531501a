"""The fit search: llama.cpp flags (smallest --n-cpu-moe, then -ngl / -ts, then -ot) and KTransformers Marlin
layers. Optimality is checked independently: the chosen plan fits, and one step further (one more expert layer or
one more layer on the GPU) does not, each checked with the placement API and the memory plan."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fixtures.generate import write_gguf
from inspector import load
from inspector.errors import UsageError
from inspector.memory import MemoryOptions, memory_plan, parse_budget
from inspector.planner import best_quant as plan_best_quant
from inspector.planner import fit as plan_fit
from inspector.planner import FitResult
from inspector.runtimes import get_runtime
from inspector.model import Checkpoint
from inspector.runtimes.llamacpp.place import LlamaCppFlags, place_llamacpp
from inspector.api import validate_placement

GiB = 1 << 30
OPTS = MemoryOptions(ctx=4096)


def runtime_options(runtime: str, memory: MemoryOptions) -> object:
    return replace(get_runtime(runtime).options({}), memory=memory)


def fit(checkpoint: Checkpoint, budgets: dict[str, int], memory: MemoryOptions, *, runtime: str = "llamacpp"
        ) -> FitResult:
    """The planner with a runtime's options carrying these memory options."""
    return plan_fit(checkpoint, budgets, runtime, runtime_options(runtime, memory))


def best_quant(quants: dict[str, Checkpoint], budgets: dict[str, int], memory: MemoryOptions):  # noqa: ANN201
    return plan_best_quant(quants, budgets, "llamacpp", runtime_options("llamacpp", memory))


def flags_of(result: FitResult) -> LlamaCppFlags:
    return result.placement.detail.flags


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
    assert result.command == "-ngl 9 -c 4096"  # 8 blocks + the output layer
    assert result.verdict.exit_code == 0


def test_smallest_n_cpu_moe_is_minimal(mixtral: Checkpoint) -> None:
    budget = 4 * GiB
    result = fit(mixtral, {"cuda:0": budget}, OPTS)
    flags = flags_of(result)
    assert result.fits and flags.n_gpu_layers == 9 and flags.n_cpu_moe
    n = flags.n_cpu_moe
    assert exact(mixtral, LlamaCppFlags(n_gpu_layers=9, n_cpu_moe=n))["cuda:0"] <= budget
    # one expert layer fewer on the CPU (and no -ot refill) no longer fits
    assert exact(mixtral, LlamaCppFlags(n_gpu_layers=9, n_cpu_moe=n - 1))["cuda:0"] > budget
    # -ot refills come before --n-cpu-moe on the line (first match wins in llama.cpp) and stay within budget
    line = result.command
    if "-ot" in line:
        assert line.index("-ot") < line.index("--n-cpu-moe")
    assert result.memory.devices["cuda:0"].total <= budget


def test_partial_offload_when_even_cpu_experts_do_not_fit(mixtral: Checkpoint) -> None:
    result = fit(mixtral, {"cuda:0": 300 << 20, "cpu": 64 * GiB}, OPTS)
    flags = flags_of(result)
    assert result.fits and flags.cpu_moe and flags.n_gpu_layers < 9
    assert exact(mixtral, LlamaCppFlags(n_gpu_layers=flags.n_gpu_layers + 1, cpu_moe=True))["cuda:0"] > 300 << 20
    assert "largest -ngl" in " ".join(result.steps)


def test_two_gpus_get_a_tensor_split(mixtral: Checkpoint) -> None:
    budgets = {"cuda:0": 3 * GiB, "cuda:1": 3 * GiB}
    result = fit(mixtral, budgets, OPTS)
    flags = flags_of(result)
    assert result.fits
    assert flags.tensor_split is not None and sum(flags.tensor_split) == 9
    totals = result.memory.totals
    assert totals["cuda:0"] <= budgets["cuda:0"] and totals["cuda:1"] <= budgets["cuda:1"]
    assert "-ts " in result.command


def test_dense_model_largest_ngl(llama: Checkpoint) -> None:
    full = exact(llama, LlamaCppFlags(n_gpu_layers=9))["cuda:0"]
    budget = full * 2 // 3
    result = fit(llama, {"cuda:0": budget}, OPTS)
    ngl = flags_of(result).n_gpu_layers
    assert 0 < ngl < 9 and result.fits
    assert exact(llama, LlamaCppFlags(n_gpu_layers=ngl))["cuda:0"] <= budget
    assert exact(llama, LlamaCppFlags(n_gpu_layers=ngl + 1))["cuda:0"] > budget


def test_cpu_only_and_does_not_fit(llama: Checkpoint) -> None:
    ok = fit(llama, {"cpu": 64 * GiB}, OPTS)
    assert ok.fits and flags_of(ok).n_gpu_layers == 0 and ok.command.startswith("-ngl 0")
    no = fit(llama, {"cpu": 1 << 20}, OPTS)
    assert not no.fits and no.verdict.exit_code == 3
    assert no.verdict.devices[0].over_by == no.memory.devices["cpu"].total - (1 << 20)
    with pytest.raises(UsageError):
        fit(llama, {}, OPTS)
    with pytest.raises(UsageError):
        fit(llama, {"cuda:0": GiB}, OPTS, runtime="no-such-runtime")


def test_max_context_and_parallel_are_the_limits(llama: Checkpoint) -> None:
    # with every layer on one GPU the KV grows by 8 layers × 8 KV heads × 128 × 2 (K, V) × 2 B = 32,768 B a token
    weights = exact(llama, LlamaCppFlags(n_gpu_layers=9), OPTS.with_(ctx=256))["cuda:0"]
    budget = weights + 2 * GiB
    result = fit(llama, {"cuda:0": budget}, OPTS)
    k = result.limits.max_ctx
    assert k % 256 == 0 and k > 4096
    assert exact(llama, LlamaCppFlags(n_gpu_layers=9), OPTS.with_(ctx=k))["cuda:0"] <= budget
    assert exact(llama, LlamaCppFlags(n_gpu_layers=9), OPTS.with_(ctx=k + 256))["cuda:0"] > budget
    p = result.limits.max_parallel
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


# ------------------------------------------------------------------------------------------- limits (review fixes)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "models"


def test_limits_keep_the_chosen_flags(mixtral: Checkpoint) -> None:
    # Under the chosen flags only -c / -np change. On cuda:0 (every layer there, the output layer too) a token of
    # context adds K + V = 8 layers × 8 KV heads × 128 × 2 × 2 B = 32,768 B and a KQ mask column n_ubatch × 2 B =
    # 512 × 2 = 1,024 B (flash attention on; the layer peak + mask, 192,970,752 B + 1,024·ctx, stays above the
    # logits peak (32,000 + 2·4,096) × 512 × 4 = 82,313,216 B): 33,792 B per token, 8,650,752 B per 256 cells.
    # A sequence at ctx 4,096 adds 4,096 cells × 32,768 B = 134,217,728 B (its own stream; the mask and ubatch stay
    # the same, its output buffer is on the CPU). So with headroom H on cuda:0 at ctx 4,096:
    #   max_ctx = 4,096 + 256 × floor(H / 8,650,752), max_parallel = 1 + floor(H / 134,217,728)
    budget = 3 * GiB
    result = fit(mixtral, {"cuda:0": budget}, OPTS)
    assert result.fits and flags_of(result).n_cpu_moe
    headroom = budget - result.memory.devices["cuda:0"].total
    assert result.limits.max_ctx == 4096 + 256 * (headroom // 8_650_752)
    assert result.limits.max_parallel == 1 + headroom // 134_217_728
    # independently: the same flags at the limit fit, one step further does not
    flags = flags_of(result)
    assert exact(mixtral, flags, OPTS.with_(ctx=result.limits.max_ctx))["cuda:0"] <= budget
    assert exact(mixtral, flags, OPTS.with_(ctx=result.limits.max_ctx + 256))["cuda:0"] > budget
    assert exact(mixtral, flags, OPTS.with_(parallel=result.limits.max_parallel + 1))["cuda:0"] > budget
    # each limit comes with its line: the chosen placement flags, only -c / -np changed
    placement = result.command.removesuffix(" -c 4096")
    assert result.limits.max_ctx_command == f"{placement} -c {result.limits.max_ctx}"
    p = result.limits.max_parallel
    assert result.limits.max_parallel_command == f"{placement} -c {4096 * p}" + (f" -np {p}" if p > 1 else "")
    # the re-planned limits move more experts to the CPU: at least as large, with flags that say so
    assert result.limits.replanned_max_ctx is not None and result.limits.replanned_max_ctx >= result.limits.max_ctx
    assert result.limits.replanned_max_parallel is not None and result.limits.replanned_max_parallel >= result.limits.max_parallel
    assert result.limits.replanned_max_ctx_command.endswith(f"-c {result.limits.replanned_max_ctx}")
    assert "cpu-moe" in result.limits.replanned_max_ctx_command
    assert result.limits.note.startswith("the max lines keep these flags")
    data = result.as_dict()
    for key in ("max_ctx_flags", "max_parallel_flags", "replanned_max_ctx", "replanned_max_ctx_flags",
                "replanned_max_parallel", "replanned_max_parallel_flags", "limits_note"):
        assert key in data


@pytest.mark.parametrize("budget", [300 << 20, 3 * GiB, 4 * GiB, 80 * GiB])
def test_a_plan_that_fits_has_limits_at_least_the_asked_ones(mixtral: Checkpoint, budget: int) -> None:
    # the limits are monotone in ctx / parallel under fixed flags, so fits at ctx 4,096 and 1 sequence means
    # max_ctx >= 4,096 and max_parallel >= 1 (fits with max_ctx 0 was possible when the limits were re-planned)
    result = fit(mixtral, {"cuda:0": budget, "cpu": 64 * GiB}, OPTS)
    assert result.fits
    assert result.limits.max_ctx >= 4096 and result.limits.max_parallel >= 1
    assert result.limits.max_ctx_command and result.limits.max_parallel_command


def test_partial_offload_limits_and_cpu_only_note(llama: Checkpoint) -> None:
    # -ngl below every layer: the re-planned limits need every layer on the GPU, so none exists (0, "");
    # the limits under the chosen -ngl are still those of a plan that fits
    full = exact(llama, LlamaCppFlags(n_gpu_layers=9))["cuda:0"]
    result = fit(llama, {"cuda:0": full * 2 // 3}, OPTS)
    assert result.fits and flags_of(result).n_gpu_layers < 9
    assert result.limits.max_ctx >= 4096 and (result.limits.replanned_max_ctx, result.limits.replanned_max_ctx_command) == (0, "")
    cpu = fit(llama, {"cpu": 64 * GiB}, OPTS)
    assert cpu.limits.replanned_max_ctx is None and cpu.limits.replanned_max_parallel_command is None
    assert "-ngl 0" in cpu.limits.note and cpu.limits.max_ctx_command.startswith("-ngl 0 -c ")


def test_tiny_budgets_do_not_fit_deepseek() -> None:
    # DeepSeek-V3.1 Q4_K_M holds 377,885,689,856 B of weights: 1 GiB of CPU cannot hold them with any flags
    result = fit(load(str(FIXTURES / "deepseek-v3.1-q4_k_m.gguf")), {"cuda:0": GiB, "cpu": GiB}, OPTS)
    assert not result.fits and result.verdict.exit_code == 3
    assert (result.limits.max_ctx, result.limits.max_parallel, result.limits.max_ctx_command) == (0, 0, "")


def test_fit_on_mixtral_safetensors_counts_the_staging_copy() -> None:
    # Mixtral-8x7B bf16 from safetensors: llama.cpp sees GGUF names (blk.N.ffn_up_exps.weight, 8 experts merged).
    # With experts of a block on the CPU, the first GPU copies the largest CPU layer weight to run it:
    # one merged expert tensor = 8 experts × 14,336 × 4,096 × 2 B = 939,524,096 B. The search used to scan the HF
    # names (block_sparse_moe.experts.N.w1), found 0, and was corrected by the exact check ("re-packed").
    from inspector.runtimes.llamacpp.search import LlamaCppSearch

    ck = load(str(FIXTURES / "mixtral-8x7b-bf16"))
    budgets = {"cuda:0": 40 * GiB}
    search = LlamaCppSearch(ck, budgets, OPTS)
    costs = search.costs(OPTS)
    assert search.staging(costs, 33, 1) == 939_524_096  # block 0's experts on the CPU
    assert search.staging(costs, 33, 0) == 0  # nothing of the layers on the CPU
    result = fit(ck, budgets, OPTS)
    assert result.fits and flags_of(result).n_gpu_layers == 33 and flags_of(result).n_cpu_moe
    assert not any(step.startswith("re-packed") for step in result.steps), result.steps
    assert result.memory.buffers["cuda:0"].parts["staging"] == 939_524_096
    assert result.memory.devices["cuda:0"].total <= budgets["cuda:0"]
    # minimal: one expert block fewer on the CPU (no -ot) does not fit
    n = flags_of(result).n_cpu_moe
    assert exact(ck, LlamaCppFlags(n_gpu_layers=33, n_cpu_moe=n - 1))["cuda:0"] > budgets["cuda:0"]


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
    assert roomy.details['marlin_layers'] == {"cuda:0": 3}  # room for every MoE layer
    # GPU bytes with k Marlin layers = (bytes with all 3) - (3 - k) × MARLIN_LAYER; a budget halfway between k = 2
    # and k = 3 must give 2
    all3 = roomy.memory.devices["cuda:0"].total
    budget = all3 - MARLIN_LAYER // 2
    two = fit(deepseek, {"cuda:0": budget}, OPTS, runtime="ktransformers")
    assert two.details['marlin_layers'] == {"cuda:0": 2} and two.fits
    assert all3 - two.memory.devices["cuda:0"].total >= MARLIN_LAYER  # one layer's Marlin experts left the GPU
    out = two.write_artifact(tmp_path / "rules.yaml")
    result = validate_placement(out, deepseek, gpus=1)
    assert not result.has_errors, [f.render() for f in result.findings if f.severity == "error"]
    assert "KExpertsMarlin" in out.read_text() and "KExpertsCPU" in out.read_text()
    # the limits keep this rule file; KTransformers has no re-planned limits
    assert "keep this rule file as it is" in two.limits.note
    assert two.limits.replanned_max_ctx is None and two.limits.max_ctx >= 4096
    # KTransformers' own flags (ktransformers/server/args.py): --cache_lens is the KV tokens of the batch
    assert two.limits.max_ctx_command == f"--cache_lens {two.limits.max_ctx} --max_batch_size 1"


def test_ktransformers_two_gpus_and_yaml_only_for_kt(deepseek: Checkpoint, mixtral: Checkpoint) -> None:
    result = fit(deepseek, {"cuda:0": 40 * GiB, "cuda:1": 40 * GiB}, OPTS, runtime="ktransformers")
    assert set(result.details['marlin_layers']) == {"cuda:0", "cuda:1"}
    assert "transfer_map" in (result.artifact or "")
    with pytest.raises(UsageError):
        fit(mixtral, {"cuda:0": 80 * GiB}, OPTS).write_artifact("/nonexistent/x.yaml")


def test_parse_budget_feeds_fit(llama: Checkpoint) -> None:
    result = fit(llama, parse_budget(["cuda:0=80GB"]), OPTS)
    assert result.fits and result.verdict.devices[0].budget == 80 * 10**9
