"""vLLM and SGLang from the command line: pasted `vllm serve …` / `python -m sglang.launch_server …` lines, the
printed command round-tripping to the same bytes, fit's search (the seeds' cases), JSON / CSV / table agreeing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from inspector.cli import main
from inspector.runtimes import runtime_specs
from inspector.runtimes.argv import parse_command
from tests.test_vllm_sharding import model

GIB = 1 << 30


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def budgets(n: int, size: str) -> list[str]:
    return [arg for i in range(n) for arg in ("--budget", f"cuda:{i}={size}")]


def test_pasted_vllm_serve_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = model(tmp_path, "qwen2.5-32b", 2)
    code, out, err = run(["inspect", "--format", "json", *budgets(2, "24GiB"), "--", "vllm", "serve", src, "-tp", "2",
                          "--max-model-len", "16K", "--port", "8000", "--trust-remote-code",
                          "--no-enable-expert-parallel", "--swap-space=4", "--fancy-new-flag", "x"], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "vllm serve: ignored" in line]
    assert warnings == ["Warning: vllm serve: ignored --port, --trust-remote-code, --swap-space (no effect on "
                        "memory); --fancy-new-flag (not modelled)"]
    doc = json.loads(out)
    assert doc["memory"]["runtime_settings"]["max_model_len"] == 16384  # 16K: binary, as vLLM's human_readable_int
    assert doc["flags"] == f"vllm serve {src} -tp 2 --max-model-len 16384"


def test_printed_command_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = model(tmp_path, "mixtral-8x7b", 2)
    first = ["inspect", src, "-tp", "2", "--enable-expert-parallel", "--max-model-len", "8k", "--kv-cache-dtype",
             "fp8", "--format", "json", *budgets(2, "24GiB")]
    code, out, _ = run(first, capsys)
    doc = json.loads(out)
    line = doc["flags"]
    assert line == f"vllm serve {src} -tp 2 --enable-expert-parallel --max-model-len 8000 --kv-cache-dtype fp8"
    code2, out2, _ = run(["inspect", "--format", "json", *budgets(2, "24GiB"), "--", *line.split()], capsys)
    again = json.loads(out2)
    assert (code, code2) == (0, 0)
    assert again["devices"] == doc["devices"] and again["memory"] == doc["memory"]


def test_table_json_and_csv_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = model(tmp_path, "qwen2.5-32b", 2)
    argv = ["fit", src, "--runtime", "vllm", *budgets(2, "16GiB"), "--max-model-len", "32768"]
    _, table, _ = run(argv, capsys)
    _, text, _ = run(argv + ["--format", "json"], capsys)
    _, csv, _ = run(argv + ["--format", "csv"], capsys)
    plan = json.loads(text)["plan"]
    memory = csv.split("\n\n")[1].splitlines()  # the CSV's second block: the memory rows (docs/json.md)
    rows = {line.split(",")[0]: line.split(",") for line in memory[1:]}
    header = memory[0].split(",")
    for device, values in plan["memory"]["devices"].items():
        assert [int(rows[device][header.index(k)]) for k in values] == list(values.values())
    assert f"flags         {plan['flags']}" in table


def test_fit_qwen_on_two_48gb_and_one_80gb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = model(tmp_path, "qwen2.5-32b", 64)  # the whole model: 65,527,752,704 bytes of BF16 weights
    code, out, _ = run(["fit", src, "--runtime", "vllm", *budgets(2, "48GB"), "--format", "json"], capsys)
    plan = json.loads(out)["plan"]
    assert code == 0 and plan["flags"] == f"vllm serve {src} -tp 2 --max-model-len 32768"
    assert plan["steps"][0].startswith("-tp 1 -pp 1: vLLM would refuse to start: no memory left")
    code, out, _ = run(["fit", src, "--runtime", "vllm", "--budget", "cuda:0=80GB", "--format", "json"], capsys)
    plan = json.loads(out)["plan"]
    # one 32,768-token request: 64 layers x (K + V) x 8 KV heads x 128 x 2 bytes x 32,768 tokens = 8 GiB
    assert 64 * 2 * 8 * 128 * 2 * 32768 == 8 * GIB
    assert plan["steps"][0].startswith("-tp 1 -pp 1: vLLM would refuse to start: one 32,768-token sequence needs "
                                       "8.0 GiB of KV per rank")
    length = plan["memory"]["runtime_settings"]["max_model_len"]
    assert code == 0 and plan["flags"] == f"vllm serve {src} --max-model-len {length}"
    assert length < 32768 and length % 256 == 0 and plan["max_ctx"] == length
    assert plan["max_parallel"] == plan["memory"]["kv_cache"]["max_full_length_requests"] >= 1


def test_fit_keeps_a_pasted_tp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = model(tmp_path, "qwen2.5-32b", 2)
    code, out, _ = run(["fit", *budgets(4, "24GiB"), "--format", "json", "--", "vllm", "serve", src, "-tp", "4"],
                       capsys)
    assert code == 0 and json.loads(out)["plan"]["flags"].startswith(f"vllm serve {src} -tp 4 ")


def test_fit_moe_tries_expert_parallelism(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = model(tmp_path, "mixtral-8x7b", 32)  # the whole model: 93,405,585,408 bytes of BF16 weights
    code, out, _ = run(["fit", src, "--runtime", "vllm", *budgets(4, "48GB"), "--format", "json"], capsys)
    plan = json.loads(out)["plan"]
    tried = [step.split(":")[0] for step in plan["steps"]]
    assert tried == ["-tp 1 -pp 1", "-tp 2 -pp 1", "-tp 2 -pp 1 --enable-expert-parallel", "-tp 1 -pp 2",
                     "-tp 3 -pp 1", "-tp 3 -pp 1 --enable-expert-parallel", "-tp 1 -pp 3"]  # fewest GPUs first
    assert "Total number of attention heads (32) must be divisible by tensor parallel size (3)" in plan["steps"][4]
    assert code == 0 and plan["flags"] == f"vllm serve {src} -pp 3 --max-model-len 32768"


def test_sglang_pasted_line_and_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = model(tmp_path, "qwen2.5-32b", 2)
    code, out, err = run(["inspect", "--format", "json", *budgets(2, "24GiB"), "--", "python3", "-m",
                          "sglang.launch_server", "--model-path", src, "--tp", "2", "--mem-fraction-static", "0.8",
                          "--port", "30000"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["flags"] == (f"python -m sglang.launch_server --model-path {src} --tp-size 2 --context-length 32768 "
                            "--mem-fraction-static 0.8")
    assert doc["memory"]["kv_cache"]["max_total_num_tokens"] == 4_205_193  # test_vllm_kvcache.test_sglang_token_pool
    assert "Warning: sglang.launch_server: ignored --port (no effect on memory)" in err


def test_no_flag_turns_a_switch_off() -> None:
    command = parse_command(["vllm", "serve", "REPO", "--enable-expert-parallel", "--no-enable-expert-parallel"],
                            runtime_specs())
    assert command.values == {"enable_expert_parallel": False} and command.model == "REPO"


def test_help_lists_both_runtimes() -> None:
    from inspector.cli import cli

    text = CliRunner().invoke(cli, ["inspect", "--help"]).output
    assert "vLLM options:" in text and "SGLang options:" in text
    assert text.count("--kv-cache-dtype") == 1  # one option shared by both runtimes


def test_kv_cache_dtype_spellings_per_runtime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = model(tmp_path, "qwen2.5-32b", 1)
    code, _, err = run(["inspect", src, "--tp-size", "2", "--kv-cache-dtype", "fp8"], capsys)
    assert code == 2 and err.strip() == ("Error: SGLang's --kv-cache-dtype takes auto, fp8_e4m3, fp8_e5m2, bf16, "
                                         "bfloat16, not fp8")
    code, _, err = run(["inspect", src, "-tp", "2", "--kv-cache-dtype", "bf16"], capsys)
    assert code == 2 and "vLLM's --kv-cache-dtype takes" in err
