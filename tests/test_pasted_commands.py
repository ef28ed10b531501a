"""Pasted command lines (`inspect -- llama-server …`) read as the program reads them, and the other defects of
issue 11 a new user hit: -c, markdown headers, empty budgeted devices, the quant a BF16 file is, quant-list
warnings, what to try when nothing fits."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.generate import write_gguf
from inspector.cli import main
from inspector.errors import UsageError
from inspector.runtimes import runtime_specs
from inspector.runtimes.argv import parse_command, program_of

ROOT = Path(__file__).resolve().parents[1]
LLAMA = str(ROOT / "fixtures" / "models" / "llama-3.2-3b-f16.gguf")
QWEN = str(ROOT / "fixtures" / "models" / "qwen3-moe-q8_0.gguf")
DEEPSEEK = str(ROOT / "fixtures" / "models" / "deepseek-v3.1-q4_k_m.gguf")
# Llama-3.2-3B: 28 layers x 8 KV heads x 128 (K and V) x 2 bytes (f16) = 114,688 bytes of KV per token
KV_PER_TOKEN = 28 * 8 * 128 * 2 * 2


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


@pytest.mark.parametrize("argv, program, used", [
    (["llama-server", "-m", "x"], "llama-server", 1),
    (["/opt/llama.cpp/build/bin/llama-server", "-m", "x"], "llama-server", 1),
    (["python3", "-m", "sglang.launch_server", "--model-path", "x"], "sglang.launch_server", 3),
    (["python", "-m", "ktransformers.local_chat"], "ktransformers.local_chat", 3),
])
def test_program_names(argv: list[str], program: str, used: int) -> None:
    assert program_of(argv) == (program, used)


def test_llama_server_flags_as_llama_cpp_reads_them() -> None:
    command = parse_command(["llama-server", "--port", "8080", "-m", "m.gguf", "--n-gpu-layers=99", "--ctx-size", "32768",
                             "-np", "4", "-ot", "a=CPU", "--override-tensor=b=CUDA0", "--cpu-moe", "--jinja",
                             "--no-such-flag", "value", "-t", "8"], runtime_specs())
    assert command.runtime == "llamacpp" and command.model == "m.gguf"
    assert command.values == {"ngl": "99", "ctx_size": 32768, "parallel": 4, "override_tensor": ("a=CPU", "b=CUDA0"),
                              "cpu_moe": True}
    assert command.ignored == ("--port", "--jinja", "-t")
    assert command.unknown == ("--no-such-flag",)  # its value was skipped with it
    assert command.warning() == ("llama-server: ignored --port, --jinja, -t (no effect on memory); --no-such-flag "
                                 "(not modelled)")


def test_hub_repo_and_quant_from_hf_flag() -> None:
    command = parse_command(["llama-server", "-hf", "unsloth/Qwen3-30B-A3B-GGUF:Q4_K_M", "-ngl", "99"],
                            runtime_specs())
    assert (command.model, command.quant) == ("unsloth/Qwen3-30B-A3B-GGUF", "Q4_K_M")


@pytest.mark.parametrize("argv, message", [
    (["llama-server", "-m"], "-m needs a value"),
    (["llama-server", "-m", "x", "-np", "two"], "-np 'two': expected a whole number"),
    (["llama-server", "-m", "x", "-sm", "sideways"], "-sm 'sideways': use one of none, layer, row"),
    (["ollama", "run", "x"], "'ollama' is not a program ckpt-size models"),
    (["python", "sglang"], "needs `-m MODULE`"),
])
def test_bad_pasted_commands(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_command(argv, runtime_specs())


def test_pasted_command_gives_the_same_answer_as_ckpt_size_flags(capsys: pytest.CaptureFixture[str]) -> None:
    _, pasted, err = run(["inspect", "--format", "json", "--", "llama-server", "-m", LLAMA, "-ngl", "20", "-c",
                          "16384", "-np", "2", "--port", "8080"], capsys)
    assert "ignored --port (no effect on memory)" in err
    _, own, _ = run(["inspect", LLAMA, "-ngl", "20", "--ctx", "8192", "-np", "2", "--format", "json"], capsys)
    a, b = json.loads(pasted), json.loads(own)
    assert a["devices"] == b["devices"] and a["memory"]["context"] == b["memory"]["context"]
    # -c 16384 shared by 2 sequences: 2 streams of 8,192 cells; KV bytes = cells x bytes per token
    assert a["memory"]["context"]["n_ctx"] == 16384 and a["memory"]["context"]["n_ctx_seq"] == 8192
    kv = sum(d.get("kv_cache", 0) for d in a["devices"].values())
    assert kv == 16384 * KV_PER_TOKEN


def test_c_not_divisible_by_np_keeps_llama_cpps_total(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["inspect", LLAMA, "-c", "10000", "-np", "3", "--format", "json"], capsys)
    assert code == 0
    context = json.loads(out)["memory"]["context"]
    # llama.cpp: n_ctx = pad(10000, 256) = 10240; per stream pad(10240 / 3, 256) = pad(3413, 256) = 3584
    assert context["llama_cpp_flags"].startswith("-c 10000 -np 3")
    assert (context["n_ctx_seq"], context["n_stream"]) == (3584, 3)


def test_options_given_twice_or_of_two_runtimes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["inspect", "-ngl", "3", "--", "llama-server", "-m", LLAMA, "-ngl", "4"], capsys)
    assert code == 2 and "ngl given both before -- and in the pasted command" in err
    code, _, err = run(["inspect", LLAMA, "--ctx", "4096", "-c", "8192"], capsys)
    assert code == 2 and "--ctx is the context of each sequence" in err
    code, _, err = run(["inspect", LLAMA, "--experts-on", "cpu", "--cache-lens", "4096"], capsys)
    assert code == 2 and "--experts-on and KTransformers flags each make a plan" in err
    code, _, err = run(["inspect", LLAMA, "extra"], capsys)
    assert code == 2 and "one SOURCE, not 2" in err


def test_markdown_has_a_real_header_row(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(["inspect", LLAMA, "--format", "markdown"], capsys)
    assert out.splitlines()[0].split("|")[1].strip() == "field"


def test_an_empty_budgeted_device_is_shown_with_its_free_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["inspect", LLAMA, "-ngl", "99", "--budget", "cuda:0=24GiB", "--budget", "cuda:1=8GiB"]
    _, table, _ = run(args + ["--by", "device"], capsys)
    row = next(line for line in table.splitlines() if line.startswith("cuda:1 ") and "GiB" in line)
    assert row.split()[-3:] == ["8.00", "GiB", "fits"]  # budget, free = budget, verdict
    _, out, _ = run(args + ["--format", "json"], capsys)
    doc = json.loads(out)
    assert doc["devices"]["cuda:1"]["total"] == 0
    assert doc["budget"]["devices"]["cuda:1"]["headroom"] == 8 << 30


def test_a_bf16_file_without_file_type_is_not_the_f16_quant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_gguf(tmp_path / "model-bf16.gguf", "llama-3.2-3b", tensor_type="BF16", n_layers=2,
                      with_file_type=False)
    code, out, _ = run(["inspect", str(path), "--quant", "F16", "--format", "json"], capsys)
    assert code == 0
    quant = json.loads(out)["quant"]
    assert quant["mode"] == "predicted" and quant["ftype"] == "F16"
    _, out, _ = run(["inspect", str(path), "--quant", "BF16", "--format", "json"], capsys)
    assert json.loads(out)["quant"]["mode"] == "selected"  # llama.cpp's loader guesses MOSTLY_BF16


def test_quant_list_names_llama_quantizes_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["inspect", QWEN, "--quant-list"], capsys)
    assert code == 0
    assert "IQ2_XXS, IQ2_M, IQ3_XXS: llama-quantize refuses these without --imatrix" in err
    assert "requantized from an already-quantized file" in err
    assert "header" in out.splitlines()[2] and "as noted" not in out


def test_does_not_fit_says_what_to_try_with_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["inspect", DEEPSEEK, "-ngl", "99", "--ctx", "32768", "--budget", "cuda:0=24GiB"], capsys)
    assert code == 3
    assert "these flags fit at this context (ckpt-size fit): -ngl 62" in err
    code, _, err = run(["inspect", LLAMA, "--ctx", "32768", "--budget", "cuda:0=7GiB"], capsys)
    # literal plan, everything on cuda:0: weights 5.98 GiB + buffers; the KV that still fits decides the context
    assert code == 3 and "with these flags at most" in err and "tokens per sequence fit" in err
