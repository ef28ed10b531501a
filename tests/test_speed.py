"""The decode-speed bound, the bandwidth table and the rules-of-thumb rows (inspector/activity), with numbers derived
here by hand: Mixtral-8x7B BF16 (GGUF, the converter's F32 norms and routers) under llama.cpp `-ngl 99 --cpu-moe`."""
from __future__ import annotations

import json
from fractions import Fraction

import pytest

import inspector
from fixtures.generate import write_gguf
from inspector.activity import ActivityOptions, bandwidth_table, parse_bandwidths, parse_rate, resolve_rate
from inspector.cli import main
from inspector.errors import UsageError

HM, L, VOCAB = 4096, 32, 32000
ATTN = 2 * (HM * HM + 2 * 1024 * HM + HM * HM)  # q, k, v, o in BF16: 83,886,080 bytes per layer
NORMS = 2 * HM * 4  # attn_norm, ffn_norm in F32
ROUTER = 8 * HM * 4  # ffn_gate_inp, F32 (convert_hf_to_gguf keeps routers in F32)
EXPERT = 3 * 14336 * HM * 2  # one expert's gate, up, down in BF16: 352,321,536 bytes
# -ngl 99 --cpu-moe: every layer and the output on cuda:0, the routed experts and token_embd on the CPU
GPU_READ = L * (ATTN + NORMS + ROUTER) + HM * 4 + VOCAB * HM * 2  # + output_norm (F32) + output (BF16)
CPU_READ = L * 2 * EXPERT + HM * 2  # the 2 experts used of 8 per layer + one embedding row
KV_PER_POSITION = L * (1024 + 1024) * 2  # K and V, 8 heads x 128, f16: 131,072 bytes per cached token


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory):
    return str(write_gguf(tmp_path_factory.mktemp("speed") / "mixtral.gguf", "mixtral-8x7b", tensor_type="BF16"))


def run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_bound_for_a_fixed_placement(mixtral):
    assert GPU_READ == 2_951_757_824 and CPU_READ == 22_548_586_496
    bw = parse_bandwidths(["cuda:0=1TB/s,cpu=100GB/s"])
    r = inspector.inspect(mixtral, ngl="99", cpu_moe=True, ctx=4096, activity=ActivityOptions(bw)).activity
    assert r.tokens.bytes_by_device() == {"cuda:0": GPU_READ, "cpu": CPU_READ}
    assert r.kv_read == {"cuda:0": 4096 * KV_PER_POSITION}  # every cache is on the GPU with the layers
    empty, full = r.bounds
    # t >= 2,951,757,824 / 1e12 + 22,548,586,496 / 1e11 seconds
    t_empty = Fraction(GPU_READ, 10**12) + Fraction(CPU_READ, 10**11)
    assert empty.seconds_per_token == t_empty
    assert empty.tokens_per_s == pytest.approx(1 / 0.228437622784)
    t_full = Fraction(GPU_READ + 4096 * KV_PER_POSITION, 10**12) + Fraction(CPU_READ, 10**11)
    assert full.seconds_per_token == t_full and full.n_past == 4096


def test_layer_order_sum_not_max(mixtral):
    """All on one GPU the bound is its bytes over its bandwidth; split, the parts add up."""
    bw = parse_bandwidths(["cuda:0=2TB/s", "cpu=2TB/s"])
    r = inspector.inspect(mixtral, ngl="99", cpu_moe=True, activity=ActivityOptions(bw)).activity
    assert r.bounds[0].seconds_per_token == Fraction(GPU_READ + CPU_READ, 2 * 10**12)


def test_missing_bandwidth_is_a_usage_error(mixtral, capsys):
    code, _, err = run(["inspect", mixtral, "-ngl", "99", "--cpu-moe", "--bandwidth", "cuda:0=H100-SXM"], capsys)
    assert code == 2 and "no rate for cpu" in err and "Traceback" not in err


def test_rates_names_and_dram():
    assert parse_rate("3.35TB/s") == 3_350_000_000_000
    assert parse_rate("80 GB/s") == 80 * 10**9 and parse_rate("1GiB/s") == 2**30
    assert resolve_rate("ddr5-4800x8").bytes_per_s == 4800 * 10**6 * 8 * 8  # 307.2 GB/s
    assert resolve_rate("h100").bytes_per_s == 3_350 * 10**9  # an alias, any case
    assert resolve_rate("RTX-4090").bytes_per_s == 384 // 8 * 21 * 10**9  # 384-bit x 21 Gbit/s = 1,008 GB/s
    assert resolve_rate("EPYC-9004").bytes_per_s == 4800 * 10**6 * 8 * 12  # 460.8 GB/s (12 x DDR5-4800)
    assert resolve_rate("M2-Ultra").bytes_per_s == 1024 * 64 * 10**8 // 8  # 1024-bit LPDDR5-6400: 819.2 GB/s
    for bad in ("fast", "3TB", "-1GB/s", "0GB/s"):
        with pytest.raises(UsageError):
            parse_rate(bad)
    with pytest.raises(UsageError, match="twice"):
        parse_bandwidths(["gpu=1TB/s", "cuda:0=2TB/s"])


def test_every_table_entry_has_a_source_and_a_kind():
    table = bandwidth_table()
    assert len(table) >= 15 and all(e.source and e.kind in ("gpu", "cpu", "soc") for e in table)


def test_rules_of_thumb_rows(mixtral):
    """NVIDIA's formula: 2 x 32 layers x 8 KV heads x 128 x 2 B = 131,072 B per token, x 4096 tokens x 1 user =
    536,870,912 bytes, which is what llama.cpp allocates here (flat GQA, no sliding window). Substratus:
    (weights + that KV) x 1.2, weights = 2 x 46,702,792,704 params + 2 more bytes for each of the 1,314,816 F32
    ones (norms 32 x 8,192 + 4,096, routers 32 x 32,768). Capacity with 200 GiB of GPU: floor((214,748,364,800 -
    weights on the GPU) / 536,870,912) users; -ngl 99 puts all but token_embd (32000 x 4096 BF16) there."""
    weights = 2 * 46_702_792_704 + 2 * (32 * 8192 + 4096 + 32 * 32768)
    r = inspector.inspect(mixtral, ngl="99", ctx=4096, budgets={"cuda:0": 200 * 2**30},
                          activity=ActivityOptions(rules_of_thumb=True)).activity
    rows = {t.name: t for t in r.thumbs}
    assert rows["NVIDIA KV formula"].shortcut == rows["NVIDIA KV formula"].exact == 536_870_912
    assert rows["Substratus 1.2x"].shortcut == (weights + 536_870_912) * 6 // 5
    capacity = rows["KV capacity"]
    assert capacity.shortcut == (200 * 2**30 - (weights - 32000 * 4096 * 2)) // 536_870_912 == 226
    fits = inspector.inspect(mixtral, ngl="99", ctx=4096, parallel=capacity.exact, budgets={"cuda:0": 200 * 2**30})
    more = inspector.inspect(mixtral, ngl="99", ctx=4096, parallel=capacity.exact + 1,
                             budgets={"cuda:0": 200 * 2**30})
    assert fits.budget.fits and not more.budget.fits


def test_mla_cache_is_half_the_formula(tmp_path):
    """DeepSeek-V3 in GGUF caches one 576-wide latent K row per layer and no V (MLA); the formula, fed the same
    1 KV head of 576, counts K and V: 2 x 61 x 1 x 576 x 2 = 140,544 B per token vs 61 x 576 x 2 = 70,272."""
    path = write_gguf(tmp_path / "ds.gguf", "deepseek-v3", tensor_type="Q8_0")
    r = inspector.inspect(str(path), ngl="99", ctx=1024, activity=ActivityOptions(rules_of_thumb=True)).activity
    kv = {t.name: t for t in r.thumbs}["NVIDIA KV formula"]
    assert (kv.shortcut, kv.exact) == (140_544 * 1024, 70_272 * 1024)


def test_cli_output_json_and_round_trip(mixtral, capsys):
    code, out, _ = run(["inspect", mixtral, "-ngl", "99", "--cpu-moe", "--ctx", "4096", "--bandwidth",
                        "cuda:0=1TB/s,cpu=100GB/s", "--format", "json"], capsys)
    doc = json.loads(out)["activity"]
    assert code == 0 and doc["devices"]["cpu"]["routed_experts"]["bytes"] == L * 2 * EXPERT
    assert doc["speed_bound"][0]["devices"]["cpu"]["bytes_per_token"] == CPU_READ
    code, text, _ = run(["inspect", mixtral, "-ngl", "99", "--cpu-moe", "--ctx", "4096", "--bandwidth",
                         "cuda:0=1TB/s,cpu=100GB/s"], capsys)
    assert "at most 4.4 tokens/s" in text  # 1 / 0.2284 s (empty cache)
    code, plain, _ = run(["inspect", mixtral, "-ngl", "99", "--cpu-moe"], capsys)
    assert "one token" not in plain  # nothing changes without the new options


def test_fit_reports_the_bound_and_ranks_needs_bandwidth(mixtral, capsys):
    code, out, _ = run(["fit", mixtral, "--budget", "cuda:0=24GiB", "--budget", "cpu=512GiB", "--bandwidth",
                        "cuda:0=RTX-4090,cpu=desktop-ddr5-5600", "--format", "json"], capsys)
    plan = json.loads(out)["plan"]
    assert code == 0 and plan["activity"]["speed_bound"][0]["tokens_per_s_max"] > 0
    code, _, err = run(["fit", mixtral, "--budget", "cuda:0=24GiB", "--rank", "speed"], capsys)
    assert code == 2 and "--bandwidth" in err


# --- docs/speed.md shows real output -----------------------------------------------------------------------------
DOCS = __import__("pathlib").Path(__file__).resolve().parents[1] / "docs"


def doc_blocks(name: str) -> list[tuple[list[str], list[str]]]:
    """(command argv, output lines) of every ```-block in a doc that starts with `$ ckpt-size`."""
    import re
    import shlex

    out = []
    for block in re.findall(r"```\n(\$ ckpt-size .*?)```", (DOCS / name).read_text(), re.S):
        first, *lines = block.rstrip("\n").split("\n")
        out.append((shlex.split(first[len("$ ckpt-size "):]), [x for x in lines if x.strip() and x != "…"]))
    return out


def test_speed_md_examples_are_real_output(capsys, monkeypatch):
    monkeypatch.chdir(DOCS.parent)
    blocks = doc_blocks("speed.md")
    assert len(blocks) == 2
    for argv, lines in blocks:
        code, out, _ = run(argv, capsys)
        assert code == 0
        for line in lines:
            assert line in out.splitlines(), line


def test_speed_md_lists_the_whole_bandwidth_table():
    text = (DOCS / "speed.md").read_text()
    for entry in bandwidth_table():
        assert f"| {entry.name} |" in text
        assert f"{entry.bytes_per_s / 1e9:,.1f}".removesuffix(".0") in text, entry.name


def test_activity_options_are_refused_with_quant_list(mixtral, capsys):
    code, _, err = run(["inspect", mixtral, "--quant-list", "--activity"], capsys)
    assert code == 2 and "--quant-list" in err
