"""PowerInfer (inspector/runtimes/powerinfer): placement, KV, split and fit on a header-only PowerInfer-layout
fixture (tests/test_powerinfer_fixture.py).

Every expected number is derived here by hand from the fixture's shapes and PowerInfer's rules, read in its source
(SJTU-IPADS/PowerInfer d3ebd7c5, llama.cpp: llama_set_vram_budget, buffered_tensor_allocator::flush,
llama_reserve_model_kv_cache, llama_kv_cache_init, llm_load_gpu_split_with_budget, slice_ffn_mat_to_gpu;
powerinfer-py solver.py). The fixture: 4 blocks, n_embd 512, 8 heads x 64 (no GQA), n_ff 1536, predictor rank
128, vocabulary 1000; 2-D tensors F16, 1-D F32.
"""
from __future__ import annotations

import shlex

import gguf
import pytest

import inspector
from inspector.cli import main
from inspector.errors import FormatError, UsageError
from inspector.formats.gguf import MAGIC_KEY, parse_gguf
from inspector.runtimes.powerinfer.place import vram_budget_bytes
from inspector.sources.base import LocalFile

from fixtures.generate import _write_gguf_file

from .test_powerinfer_fixture import F32, _set_magic, model_tensors, write_gpu_index, write_powerinfer_model

# --- the fixture's bytes, by hand ------------------------------------------------------------------------------------
EMBD = 1000 * 512 * 2  # token_embd F16 = 1,024,000 (output.weight the same)
NORM = 512 * 4  # a 1-D norm, F32: 2,048
ATTN = 512 * 512 * 2  # attn_q/k/v/output: 524,288 each
FFN = 1536 * 512 * 2  # ffn_gate / ffn_up / ffn_down_t: 1,572,864 each
FC1, FC2 = 128 * 512 * 2, 1536 * 128 * 2  # 131,072 and 393,216
ROW = 512 * 2  # one neuron's row of gate, up or down_t: 1,024 bytes
LAYER_ATTN_TIER = NORM + 4 * ATTN  # attn_norm, q, k, v, output: 2,099,200
TOTAL = 2 * EMBD + NORM + 4 * (2 * NORM + 4 * ATTN + 3 * FFN + FC1 + FC2)  # 31,426,560
DENSE_GPU_ALL = 4 * LAYER_ATTN_TIER + 4 * (FC1 + FC2) + 4 * NORM + NORM + EMBD  # every GPU tier: 11,528,192
CACHE = 512 * 4 * 512 * 2  # n_ctx 512 (PowerInfer's default -c) x n_layer x n_embd_gqa x f16: 2,097,152
HOST_KV = 2 * CACHE + 2 * 384  # llama_kv_cache_init's host buffer: K + V + two tensor headers
ZEROS = 4 * 1536 * 4  # a zero I32 gpu_idx of n_ff per layer (no split)


@pytest.fixture()
def model(tmp_path):
    path = write_powerinfer_model(tmp_path / "tiny.powerinfer.gguf")
    (tmp_path / "activation").mkdir()  # what PowerInfer's solver reads; its contents are not needed here
    return path


def weights(result) -> dict[str, int]:
    return {d: row["weights"] for d, row in result.memory.table.rows.items()}


def kv(result) -> dict[str, int]:
    return {d: row["kv_cache"] for d, row in result.memory.table.rows.items()}


def test_hand_totals_are_the_file_totals(model):
    assert TOTAL == 31_426_560 and DENSE_GPU_ALL == 11_528_192
    assert inspector.load(str(model)).nbytes == TOTAL


# --- the format and the roles ----------------------------------------------------------------------------------------
def test_pwri_magic_is_read_and_recorded(model):
    header = parse_gguf(LocalFile(model))
    assert header.magic == b"PWRI" and header.metadata[MAGIC_KEY] == "PWRI"


def test_roles_of_predictors_transposed_down_and_split(model, tmp_path):
    roles = {t.name: t.role for t in inspector.load(str(model)).tensors}
    assert roles["blk.0.fc1.weight"] == roles["blk.3.fc2.weight"] == "predictor"
    assert roles["blk.2.ffn_down_t.weight"] == "dense_ffn"
    split = write_gpu_index(tmp_path / "s.generated.gpuidx", [256, 0, 1536, 512], 1536, 1)
    ck = inspector.load(str(split))  # a split file inspected alone: PWRI magic, sniffed as GGUF
    assert ck.architecture == "generic.gpu_index"
    assert {t.role for t in ck.tensors} == {"predictor"} and [t.layer for t in ck.tensors][:3] == [0, 0, 1]
    assert sum(t.nbytes for t in ck.tensors) == 4 * (4 * 1536) + 4 * (256 + 0 + 1536 + 512)


# --- the VRAM budget ----------------------------------------------------------------------------------------------------
def test_vram_budget_is_read_as_a_float_then_multiplied_in_double():
    # 0.01f = 0x3C23D70A: mantissa 0xA3D70A = 10,737,418 times 2^-30, so 0.01f x 2^30 is exactly that integer
    assert vram_budget_bytes(0.01) == 10_737_418
    # 0.03f = 0x3CF5C28F: 2 x 0xF5C28F = 32,212,254
    assert vram_budget_bytes(0.03) == 32_212_254
    assert vram_budget_bytes(8) == 8 * 2**30


def test_greedy_prefix_stops_at_the_output_matrix(model):
    """0.01 GiB = 10,737,418 bytes: every attention tier (8,396,800), the predictors (2,097,152), the ffn_norms
    (8,192) and output_norm (2,048) fit, 233,226 bytes remain and output.weight (1,024,000) stops the walk. The
    output tier was reached, so n_gpu_layers = n_layer + 1 and the KV reservation is tried: 2,097,152 > 233,226.
    The dense part is incomplete, so no FFN neuron is split; every layer gets a zero gpu_idx on the host."""
    r = inspector.inspect(str(model), runtime="powerinfer", vram_budget=0.01)
    gpu = 4 * LAYER_ATTN_TIER + 4 * (FC1 + FC2) + 4 * NORM + NORM
    assert gpu == 10_504_192 and 10_737_418 - gpu == 233_226
    assert weights(r) == {"cuda:0": gpu, "cpu": TOTAL - gpu + ZEROS}
    assert kv(r) == {"cuda:0": 0, "cpu": HOST_KV}
    placed = {t.name: t.device for t in r.checkpoint.tensors}
    assert placed["output_norm.weight"] == "cuda:0" and placed["output.weight"] == "cpu"
    assert r.memory.as_dict()["n_gpu_layers"] == 5
    assert r.flags_line == "--vram-budget 0.01 -c 512"


def test_a_layer_can_be_half_on_the_gpu(model):
    """5 MiB = 5,242,880: layers 0 and 1 take 4,198,400; layer 2's attn_norm, q (524,288) fit (left 520,192),
    its k (524,288) does not: n_gpu_layers stays 2 (1 + the last layer whose attn_output fitted)."""
    r = inspector.inspect(str(model), runtime="powerinfer", vram_budget=5 / 1024)
    on_gpu = {t.name for t in r.checkpoint.tensors if t.device == "cuda:0"}
    assert {"blk.2.attn_norm.weight", "blk.2.attn_q.weight"} <= on_gpu and "blk.2.attn_k.weight" not in on_gpu
    assert weights(r)["cuda:0"] == 2 * LAYER_ATTN_TIER + NORM + ATTN
    assert r.memory.as_dict()["n_gpu_layers"] == 2


def test_solver_capacity_and_hot_rows(model):
    """0.03 GiB = 32,212,254: all dense tensors (11,528,192), then V and K (2,097,152 each) are reserved, leaving
    16,489,758 for the split. slice_size = 1536 x 2 = 3,072; vram_bytes_per_slice = int(3,072 x 4.5) = 13,824
    (the model has ffn_gate); neuron_cap = floor(16,489,758 / 13,824) x 4 = 1,192 x 4 = 4,768; the solver takes
    int(4,768 / 256) = 18 of the 4 x 6 = 24 groups: 4,608 neurons, each a 1,024-byte row of gate, up and down_t."""
    r = inspector.inspect(str(model), runtime="powerinfer", vram_budget=0.03)
    left = 32_212_254 - DENSE_GPU_ALL - 2 * CACHE
    assert left == 16_489_758 and left // 13_824 == 1_192
    hot = 3 * 4_608 * ROW
    bucket = 4_608 * 4  # gpu_bucket of the hybrid layers, I32 on the GPU
    assert weights(r) == {"cuda:0": DENSE_GPU_ALL + hot + bucket, "cpu": EMBD + 4 * 3 * FFN + ZEROS}
    assert kv(r) == {"cuda:0": 2 * CACHE, "cpu": HOST_KV}
    pi = r.memory.as_dict()["powerinfer"]
    assert (pi["neuron_cap"], pi["gpu_neurons"], pi["ffn_gpu_bytes"], pi["budget_left_for_ffn"]) == \
        (4_768, 4_608, hot, left)


def test_split_file_gives_exact_rows_per_layer(model):
    """A split of [1536, 1024, 512, 0] neurons: layer 0 moves whole (gate, up, down_t on the GPU, no CPU copy),
    layers 1 and 2 copy 1,024 and 512 rows and keep all rows on the CPU, layer 3 stays on the CPU; the hybrid
    layers' gpu_bucket goes to the GPU (4 x 1,024 and 4 x 512 bytes); every gpu_idx (4 x 1,536) and the full and
    empty layers' buckets stay in the host mapping."""
    write_gpu_index(str(model) + ".generated.gpuidx", [1536, 1024, 512, 0], 1536, 16_000_000)
    r = inspector.inspect(str(model), runtime="powerinfer", vram_budget=0.03)
    gpu = DENSE_GPU_ALL + 3 * FFN + 3 * 1024 * ROW + 3 * 512 * ROW + 4 * 1024 + 4 * 512
    cpu = EMBD + 3 * 3 * FFN + 4 * 4 * 1536 + 4 * 1536 + 0
    assert weights(r) == {"cuda:0": gpu, "cpu": cpu}
    assert r.memory.as_dict()["powerinfer"]["gpu_neurons_per_layer"] == [1536, 1024, 512, 0]
    assert len(r.checkpoint.files) == 2  # the model and its split


def test_stale_or_reset_split_falls_back_to_the_solver(model):
    """check_vram_allocable: a split made for 17,000,000 bytes is refused with 16,489,758 left."""
    write_gpu_index(str(model) + ".generated.gpuidx", [1536, 1024, 512, 0], 1536, 17_000_000)
    stale = inspector.inspect(str(model), runtime="powerinfer", vram_budget=0.03)
    assert stale.memory.as_dict()["powerinfer"]["split_source"] == "solver"
    assert any("check_vram_allocable" in n for n in stale.notes)
    write_gpu_index(str(model) + ".generated.gpuidx", [1536, 1024, 512, 0], 1536, 1)
    reset = inspector.inspect(str(model), runtime="powerinfer", vram_budget=0.03, reset_gpu_index=True)
    assert reset.memory.as_dict()["powerinfer"]["gpu_neurons"] == 4_608
    assert reset.flags_line == "--vram-budget 0.03 -c 512 --reset-gpu-index"


def test_disable_gpu_index_and_missing_activation_leave_every_neuron_on_the_cpu(model, tmp_path):
    off = inspector.inspect(str(model), runtime="powerinfer", vram_budget=0.03, disable_gpu_index=True)
    assert weights(off) == {"cuda:0": DENSE_GPU_ALL, "cpu": EMBD + 4 * 3 * FFN + ZEROS}
    bare = write_powerinfer_model(tmp_path / "bare" / "m.powerinfer.gguf")  # no activation/ beside it
    r = inspector.inspect(str(bare), runtime="powerinfer", vram_budget=0.03)
    assert weights(r)["cuda:0"] == DENSE_GPU_ALL and any("activation" in n for n in r.notes)


def test_memory_f32_doubles_the_reservation(model):
    """f32: each of K and V is 4,194,304 bytes; 0.03 GiB leaves 32,212,254 - 11,528,192 - 8,388,608 = 12,295,454:
    floor(12,295,454 / 13,824) = 889 -> capacity 3,556 -> 13 groups = 3,328 neurons."""
    r = inspector.inspect(str(model), runtime="powerinfer", vram_budget=0.03, memory_f32=True)
    assert kv(r) == {"cuda:0": 2 * 2 * CACHE, "cpu": 2 * 2 * CACHE + 768}
    assert r.memory.as_dict()["powerinfer"]["gpu_neurons"] == 3_328


def test_free_vram_from_the_budget_less_256_mib(model):
    """Without --vram-budget PowerInfer takes the free VRAM less 256 MiB: --budget cuda:0=300MiB gives 44 MiB,
    more than the whole model, so everything dense, the cache and all 6,144 neurons (layers moved whole)."""
    r = inspector.inspect(str(model), runtime="powerinfer", budgets={"cuda:0": 300 * 2**20})
    assert r.memory.as_dict()["powerinfer"]["vram_budget"] == 44 * 2**20
    # the solver's split file (gpu_idx and a full gpu_bucket per layer) stays in the host mapping
    assert weights(r) == {"cuda:0": TOTAL - EMBD, "cpu": EMBD + 2 * ZEROS}
    assert r.flags_line == "-c 512"


def test_ngl_is_refused_for_a_sparse_model(model):
    with pytest.raises(UsageError, match="--vram-budget"):
        inspector.inspect(str(model), runtime="powerinfer", ngl="10")


def test_dense_gguf_follows_the_old_ngl_rule(tmp_path):
    """Dense path (llm_load_tensors of the fork): -ngl 4 = every block, not the head; -ngl 5 adds output_norm and
    output; -ngl 6 adds V, -ngl 7 K."""
    dense = write_powerinfer_model(tmp_path / "dense.gguf", sparse=False)
    block = 2 * NORM + 4 * ATTN + 3 * FFN
    r4 = inspector.inspect(str(dense), runtime="powerinfer", ngl="4", ctx=512)
    assert weights(r4) == {"cuda:0": 4 * block, "cpu": 2 * EMBD + NORM}
    r5 = inspector.inspect(str(dense), runtime="powerinfer", ngl="5", ctx=512)
    assert weights(r5) == {"cuda:0": 4 * block + EMBD + NORM, "cpu": EMBD} and kv(r5)["cuda:0"] == 0
    assert kv(inspector.inspect(str(dense), runtime="powerinfer", ngl="6", ctx=512))["cuda:0"] == CACHE
    assert kv(inspector.inspect(str(dense), runtime="powerinfer", ngl="7", ctx=512))["cuda:0"] == 2 * CACHE


def test_falcon_capacity_has_no_gate_factor(tmp_path):
    """ReluFalcon layout (no ffn_gate): vram_bytes_per_slice = slice_size x 2. n_embd 512, 8 heads, 1 KV head
    (n_embd_gqa 64), n_ff 2048: attn tier per layer = attn_norm + bias (4,096) + qkv (640 x 512 x 2 = 655,360) +
    output (524,288) = 1,183,744; predictors 131,072 + 2048 x 128 x 2 = 655,360; output tier 4,096 + 1,024,000.
    With 0.01 GiB: left = 10,737,418 - 4 x 1,183,744 - 4 x 655,360 - 1,028,096 = 2,352,906; the cache is
    512 x 4 x 64 x 2 = 262,144 twice: left 1,828,618; slice 4,096 -> 8,192 per slice -> floor = 223 -> capacity
    892 -> 3 groups = 768 neurons, 2 matrices (up, down_t) of 1,024-byte rows."""
    path = write_powerinfer_model(tmp_path / "falcon.powerinfer.gguf", arch="falcon", n_ff=2048, n_head_kv=1)
    (tmp_path / "activation").mkdir()
    r = inspector.inspect(str(path), runtime="powerinfer", vram_budget=0.01)
    pi = r.memory.as_dict()["powerinfer"]
    assert pi["dense_gpu_bytes"] == 4 * 1_183_744 + 4 * 655_360 + 1_028_096
    assert (pi["budget_left_for_ffn"], pi["neuron_cap"], pi["gpu_neurons"]) == (1_828_618, 892, 768)
    assert pi["ffn_gpu_bytes"] == 2 * 768 * ROW


def test_files_the_sparse_loader_refuses(tmp_path):
    """llm_load_sparse_model_tensors knows llama, refact, bamboo, opt and falcon only; done_getting_tensors fails on
    a tensor it did not create."""
    other = write_powerinfer_model(tmp_path / "a" / "m.powerinfer.gguf", arch="gptneox")
    with pytest.raises(FormatError, match="not 'gptneox'"):
        inspector.inspect(str(other), runtime="powerinfer", vram_budget=1)
    kvs = {"llama.block_count": (gguf.GGUFValueType.UINT32, 1), "llama.embedding_length": (gguf.GGUFValueType.UINT32, 512),
           "llama.attention.head_count": (gguf.GGUFValueType.UINT32, 8),
           "llama.feed_forward_length": (gguf.GGUFValueType.UINT32, 1536)}
    tensors = model_tensors(1, 512, 1536, 128, 1000) + [("blk.0.attn_rot_embd.weight", (4,), F32, 16)]
    path = _write_gguf_file(tmp_path / "b.powerinfer.gguf", "llama", kvs, tensors, "header")
    _set_magic(path)
    with pytest.raises(FormatError, match="wrong number of tensors"):
        inspector.inspect(str(path), runtime="powerinfer", vram_budget=1)


# --- the command line: options, pasted commands, round trips, fit ------------------------------------------------------
def run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_vram_budget_selects_powerinfer_and_its_flags_round_trip(model, capsys):
    code, out, _ = run(["inspect", str(model), "--vram-budget", "0.03", "--format", "json"], capsys)
    import json

    doc = json.loads(out)
    assert code == 0 and doc["flags"] == "--vram-budget 0.03 -c 512"
    pasted = ["inspect", "--format", "json", "--", "./build/bin/main", "-m", str(model), *shlex.split(doc["flags"]),
              "-t", "8", "-n", "128", "-p", "hello"]
    code2, out2, err2 = run(pasted, capsys)
    again = json.loads(out2)
    assert code2 == 0 and again["devices"] == doc["devices"] and "ignored -t, -n, -p" in err2


@pytest.mark.parametrize("gib", ["0.04", "0.05"])
def test_fit_picks_the_largest_budget_that_fits(model, capsys, gib):
    """The search tries --vram-budget in hundredths of a GiB up to the device's budget: the chosen one fits, the next
    one does not (or would pass the device's budget itself)."""
    import json

    code, out, _ = run(["fit", str(model), "--runtime", "powerinfer", "--budget", f"cuda:0={gib}GiB",
                        "--budget", "cpu=1GiB", "--format", "json"], capsys)
    plan = json.loads(out)["plan"]
    assert code == 0 and plan["flags"].startswith("--vram-budget ")
    chosen = round(float(plan["flags"].split()[1]) * 100)
    budget = {"cuda:0": int(float(gib) * 2**30)}
    fits = inspector.inspect(str(model), runtime="powerinfer", vram_budget=chosen / 100, budgets=budget)
    assert fits.budget.fits
    if chosen + 1 <= budget["cuda:0"] * 100 // 2**30:
        over = inspector.inspect(str(model), runtime="powerinfer", vram_budget=(chosen + 1) / 100, budgets=budget)
        assert not over.budget.fits


def test_powerinfer_md_examples_are_real_output(tmp_path, capsys, monkeypatch):
    """docs/powerinfer.md's outputs, from the fixture written as the page says (models/ with activation/)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "powerinfer.md").read_text()
    monkeypatch.chdir(tmp_path)
    write_powerinfer_model(tmp_path / "models" / "relu-llama-tiny.powerinfer.gguf")
    (tmp_path / "models" / "activation").mkdir()
    blocks = re.findall(r"```\n\$ ckpt-size (.*?)\n(.*?)```", doc, re.S)
    assert len(blocks) == 3
    for i, (command, body) in enumerate(blocks):
        split = tmp_path / "models" / "relu-llama-tiny.powerinfer.gguf.generated.gpuidx"
        if i == 1:  # the page's second example has a split file beside the model
            write_gpu_index(split, [1536, 1024, 512, 0], 1536, 16_000_000)
        elif split.exists():
            split.unlink()
        code, out, _ = run(shlex.split(command), capsys)
        assert code == 0
        for line in (x for x in body.split("\n") if x.strip() and x != "…"):
            assert line in out.splitlines(), line


def test_bad_inputs_get_one_clear_error(model, tmp_path, capsys):
    code, _, err = run(["inspect", str(model), "--vram-budget", "1", "--gpu-index", str(tmp_path / "nope")], capsys)
    assert code == 2 and "--gpu-index" in err and "no such file" in err
    junk = tmp_path / "junk.gpuidx"
    junk.write_bytes(b"PWRI" + b"\x03\x00\x00\x00" + b"\x00" * 16)  # a header without split.vram_capacity
    code, _, err = run(["inspect", str(model), "--vram-budget", "1", "--gpu-index", str(junk)], capsys)
    assert code == 1 and "split.vram_capacity" in err and "Traceback" not in err
    from pathlib import Path

    hf = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "mixtral-8x7b-bf16"
    code, _, err = run(["inspect", str(hf), "--runtime", "powerinfer"], capsys)
    assert code == 2 and "GGUF" in err


def test_explicit_split_file_is_read_and_named(model, tmp_path):
    split = write_gpu_index(tmp_path / "elsewhere.gpuidx", [0, 0, 0, 1536], 1536, 1)
    r = inspector.inspect(str(model), runtime="powerinfer", vram_budget=0.03, gpu_index=str(split))
    assert weights(r)["cuda:0"] == DENSE_GPU_ALL + 3 * FFN
    assert any("put --gpu-index's file there" in n for n in r.notes)
