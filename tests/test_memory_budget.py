"""Budget sizes (decimal vs binary units), the per-device verdict and the plan's overhead row."""
from __future__ import annotations

import pytest

from inspector.errors import UsageError
from inspector.memory import MemoryOptions, check_budgets, memory_plan, parse_budget, parse_size
from inspector.model import Checkpoint, TensorInfo


@pytest.mark.parametrize("text, expected", [
    ("24GiB", 24 * 2**30),          # 25,769,803,776
    ("80GB", 80 * 10**9),           # decimal: 80,000,000,000
    ("512G", 512 * 2**30),          # a bare letter is binary (dd, docker -m): 549,755,813,888
    ("512g", 512 * 2**30),
    ("1.5TiB", 3 * 2**39),          # 1.5 × 2^40
    ("1.5GB", 1_500_000_000),
    ("100", 100),                   # plain bytes
    ("64 MiB", 64 * 2**20),
    ("2kb", 2000),
    ("0.5K", 512),
    ("2PB", 2 * 10**15),            # P units, as plan files' schema admits: 2,000,000,000,000,000
    ("1PiB", 2**50),                # 1,125,899,906,842,624
    ("4.1GB", 4_100_000_000),       # exact decimal: float arithmetic gives 4,099,999,999
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GiB", "12 parsecs", "-1GiB", "1e9", "1,5GB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


def test_parse_budget_normalizes_devices_and_orders_them() -> None:
    budgets = parse_budget(["cpu=128G", "CUDA1=24GiB", "gpu=80GB"])
    assert budgets == {"cuda:0": 80 * 10**9, "cuda:1": 24 * 2**30, "cpu": 128 * 2**30}
    assert list(budgets) == ["cuda:0", "cuda:1", "cpu"]
    for bad in (["cuda:0"], ["=24GiB"], ["cuda:0=24GiB", "cuda0=1G"], ["tpu:0=1G"]):
        with pytest.raises(UsageError):
            parse_budget(bad)


def _checkpoint() -> Checkpoint:
    # one 1,000-byte tensor on cuda:0 and one 3,000-byte tensor on the CPU; 2 layers of llama attention
    tensors = (
        TensorInfo("blk.0.attn_q.weight", (10,), "F16", 1000, 0, 0, 500, "attention", 0, None, "cuda:0"),
        TensorInfo("blk.1.attn_q.weight", (10,), "F16", 3000, 0, 0, 1500, "attention", 1, None, "cpu"),
    )
    metadata = {"general.architecture": "llama", "llama.block_count": 2, "llama.embedding_length": 64,
                "llama.attention.head_count": 1, "llama.attention.head_count_kv": 1,
                "tokenizer.ggml.tokens": ["a"] * 10}
    return Checkpoint("m.gguf", "gguf", "llama", (), tensors, metadata)


def test_verdict_fits_and_over_by() -> None:
    # ctx 256: per layer 256 cells × (64 + 64) × 2 B = 65,536 B of KV
    plan = memory_plan(_checkpoint(), MemoryOptions(ctx=256))
    assert plan.devices["cuda:0"].weights == 1000 and plan.devices["cuda:0"].kv_cache == 65_536
    total = plan.devices["cuda:0"].total
    verdict = check_budgets(plan, {"cuda:0": total, "cpu": 1})
    by = {d.device: d for d in verdict.devices}
    assert by["cuda:0"].fits and by["cuda:0"].headroom == 0
    assert not by["cpu"].fits and by["cpu"].over_by == plan.devices["cpu"].total - 1
    assert not verdict.fits and verdict.exit_code == 3
    ok = check_budgets(plan, {"cuda:0": total + 10})
    assert ok.fits and ok.exit_code == 0 and ok.unchecked == ("cpu",)
    assert ok.as_dict()["devices"]["cuda:0"]["headroom"] == 10


def test_overhead_is_its_own_row_rounded_up() -> None:
    base = memory_plan(_checkpoint(), MemoryOptions(ctx=256))
    plan = memory_plan(_checkpoint(), MemoryOptions(ctx=256, overhead_pct=20))
    for dev, mem in plan.devices.items():
        b = base.devices[dev]
        assert (mem.weights, mem.kv_cache, mem.state, mem.buffers) == (b.weights, b.kv_cache, b.state, b.buffers)
        assert mem.overhead == -(-b.total * 20 // 100)  # ceil(20 % of the other rows)
        assert mem.total == b.total + mem.overhead
    odd = memory_plan(_checkpoint(), MemoryOptions(ctx=256, overhead_pct=12.5))
    assert odd.devices["cuda:0"].overhead == -(-base.devices["cuda:0"].total * 125 // 1000)
    with pytest.raises(UsageError):
        memory_plan(_checkpoint(), MemoryOptions(overhead_pct=-1))


def test_plan_json_rows_and_basis() -> None:
    data = memory_plan(_checkpoint(), MemoryOptions(ctx=256)).as_dict()
    assert set(data["devices"]["cuda:0"]) == {"weights", "kv_cache", "state", "buffers", "overhead", "total"}
    assert data["basis"]["buffers"].startswith("estimate")
    assert data["basis"]["kv_cache"].startswith("exact")
    assert data["context"]["llama_cpp_flags"] == "-c 256"
    assert data["buffers"]["cpu"]["output"] == 10 * 4  # n_vocab 10 × 1 sequence × 4 B


def test_llama_cpp_flags_echo_the_options() -> None:
    opts = MemoryOptions(ctx=8192, parallel=4, cache_type_k="q8_0", cache_type_v="q8_0", flash_attn="on",
                         no_kv_offload=True)
    assert opts.llama_cpp_flags() == "-c 32768 -np 4 -ctk q8_0 -ctv q8_0 -fa on -nkvo"


@pytest.mark.parametrize("changes", [
    {"overhead_pct": float("nan")}, {"overhead_pct": float("inf")}, {"overhead_pct": -1}, {"overhead_pct": "5"},
    {"ctx": 0}, {"ctx": -4096}, {"ctx": 4096.0}, {"parallel": 0}, {"ubatch": 0}, {"ubatch": True},
])
def test_memory_options_refuse_bad_values_with_a_usage_error(changes: dict) -> None:
    # `--overhead nan` used to reach Fraction("nan") in memory_plan and fit (ValueError traceback); every bad value
    # is now refused where the options are built, as a UsageError (exit code 2)
    with pytest.raises(UsageError):
        MemoryOptions(**changes)
    with pytest.raises(UsageError):
        MemoryOptions().with_(**changes)


def test_memory_options_accept_the_edges() -> None:
    # 0 % overhead, 12.5 %, and 1 token / 1 sequence / a ubatch of 1 are all legal
    assert MemoryOptions(overhead_pct=0).overhead_pct == 0
    assert MemoryOptions(ctx=1, parallel=1, ubatch=1, overhead_pct=12.5).llama_cpp_flags() == "-c 1 -ub 1"


def test_devices_sort_by_gpu_index_everywhere() -> None:
    # device_sort_key: GPUs by index (cuda:2 before cuda:10, not as strings), then cpu, then anything else
    tensors = (
        TensorInfo("blk.0.attn_q.weight", (10,), "F16", 1000, 0, 0, 500, "attention", 0, None, "cuda:10"),
        TensorInfo("blk.1.attn_q.weight", (10,), "F16", 3000, 0, 0, 1500, "attention", 1, None, "cuda:2"),
    )
    ck = _checkpoint().with_(tensors=tensors)
    plan = memory_plan(ck, MemoryOptions(ctx=256))
    assert list(plan.devices) == ["cuda:2", "cuda:10", "cpu"]
    assert list(plan.buffers) == ["cuda:2", "cuda:10", "cpu"]
    verdict = check_budgets(plan, {"cpu": 1 << 40})
    assert verdict.unchecked == ("cuda:2", "cuda:10")
    assert parse_budget(["cuda:10=1G", "cpu=1G", "cuda:2=1G"]) == {"cuda:2": 2**30, "cuda:10": 2**30, "cpu": 2**30}
    assert list(parse_budget(["cuda:10=1G", "cpu=1G", "cuda:2=1G"])) == ["cuda:2", "cuda:10", "cpu"]
