"""Every command `fit` prints is accepted back by `inspect` (pasted after --) and fits the same budgets with the same
bytes per device; the table, JSON and CSV of fit agree."""
from __future__ import annotations

import csv
import io
import json
import shlex
from pathlib import Path

import pytest

from inspector.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "fixtures" / "models"
DEEPSEEK = str(MODELS / "deepseek-v3.1-q4_k_m.gguf")
LLAMA = str(MODELS / "llama-3.2-3b-f16.gguf")
QWEN = str(MODELS / "qwen3-moe-q8_0.gguf")
MIXTRAL = str(MODELS / "mixtral-8x7b-bf16")


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def budgets(*pairs: str) -> list[str]:
    return [x for pair in pairs for x in ("--budget", pair)]


CASES = [
    (DEEPSEEK, budgets("cuda:0=24GiB", "cpu=512GiB"), ["--ctx", "32768"]),
    (DEEPSEEK, budgets("cuda:0=48GiB", "cuda:1=48GiB"), ["--ctx", "8192"]),
    (LLAMA, budgets("cuda:0=4GiB"), ["--ctx", "8192", "-np", "2"]),
    (LLAMA, budgets(*(f"cuda:{i}=2GiB" for i in range(16))), []),
    (QWEN, budgets("cuda:0=24GiB", "cuda:1=8GiB"), ["--ctx", "16384", "-ctk", "q8_0", "-ctv", "q8_0"]),
    (MIXTRAL, budgets("cuda:0=48GiB", "cuda:1=48GiB"), ["-c", "65536", "-np", "4"]),
]


@pytest.mark.parametrize("source, budget, memory", CASES, ids=lambda x: Path(x).name if isinstance(x, str) else None)
def test_llamacpp_fit_command_round_trips(source: str, budget: list[str], memory: list[str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["fit", source, *budget, *memory, "--format", "json"], capsys)
    assert code == 0
    doc = json.loads(out)
    plan = doc["plan"]
    command = shlex.split(plan["command"])
    assert command[:3] == ["llama-server", "-m", doc["source"]]
    code, out, err = run(["inspect", *budget, "--format", "json", "--", *command], capsys)
    assert code == 0, err
    again = json.loads(out)
    assert again["budget"]["fits"] is True
    # the same bytes per device, part by part
    for device, rows in plan["memory"]["devices"].items():
        for part in ("weights", "kv_cache", "state", "buffers", "overhead", "total"):
            assert again["devices"][device][part] == rows[part], (device, part)
    # the limits' own commands round-trip too, and still fit
    for key in ("max_ctx_flags", "max_parallel_flags", "replanned_max_ctx_flags", "replanned_max_parallel_flags"):
        if plan[key]:
            code, _, err = run(["inspect", *budget, "--", "llama-server", "-m", source, *shlex.split(plan[key])],
                               capsys)
            assert code == 0, (key, err)


def test_ktransformers_fit_command_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    budget = budgets("cuda:0=24GiB", "cuda:1=24GiB")
    code, out, _ = run(["fit", DEEPSEEK, "--runtime", "ktransformers", *budget, "--ctx", "8192", "-np", "2",
                        "--emit-yaml", str(rules), "--format", "json"], capsys)
    assert code == 0
    plan = json.loads(out)["plan"]
    assert plan["flags"] == f"--optimize_config_path {rules} --cache_lens 16384 --max_batch_size 2"
    command = shlex.split(plan["command"])
    assert command[:3] == ["ktransformers", "--gguf_path", DEEPSEEK]
    code, out, err = run(["inspect", *budget, "--format", "json", "--", *command], capsys)
    assert code == 0, err
    again = json.loads(out)
    assert again["plan"] == f"ktransformers plan from {rules}"
    for device, rows in plan["memory"]["devices"].items():
        assert again["devices"][device]["total"] == rows["total"]


def csv_blocks(text: str) -> list[list[list[str]]]:
    """CSV output as blocks separated by empty rows."""
    blocks: list[list[list[str]]] = [[]]
    for row in csv.reader(io.StringIO(text)):
        if row:
            blocks[-1].append(row)
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def test_fit_table_json_and_csv_agree(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["fit", DEEPSEEK, *budgets("cuda:0=48GiB", "cuda:1=48GiB"), "--ctx", "8192"]
    _, table, _ = run(args, capsys)
    _, out, _ = run(args + ["--format", "json"], capsys)
    _, text, _ = run(args + ["--format", "csv"], capsys)
    plan = json.loads(out)["plan"]
    fields = {row[0]: row[1] for row in csv_blocks(text)[0]}
    assert fields["verdict"] == "fits" and plan["fits"] is True
    assert fields["flags"] == plan["flags"] and fields["command"] == plan["command"]
    for key in ("max_ctx", "max_parallel", "replanned_max_ctx", "replanned_max_parallel"):
        assert int(fields[key]) == plan[key]
        assert f"{plan[key]:,}" in table
    memory = {row[0]: row for row in csv_blocks(text)[1][1:]}
    header = csv_blocks(text)[1][0]
    for device, rows in plan["memory"]["devices"].items():
        assert int(memory[device][header.index("total")]) == rows["total"]
    assert f"{plan['max_parallel']:,} sequence" in table
    assert plan["command"] in table
