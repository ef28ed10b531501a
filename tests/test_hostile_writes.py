"""Inputs are never written (issue 17 #5), for every command and every kind of user file, local or from the
offline Hugging Face cache; the only file a command writes is the one `--emit-yaml` names.

tests/test_sources_local.py checks inspect, fit and validate on local models and the cache; this adds what reads
or writes more: `fit --emit-yaml`, `--tensor-type-file` (llama-quantize's list and a recipe), plan files, `-ot`,
`--quant-list`, validate of a plan file, and fit --emit-yaml from the offline cache.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests._cli import all_succeed, offline_hub_cache, tree_state
from tests.test_sources_local import KT_RULES, MODELS

PLAN = """version: 1
default_device: cuda:0
rules:
  - {role: embedding, device: cpu}
  - {name: 'ffn_(gate|up|down)_exps', device: cpu}
budgets: {cuda:0: 200 GiB, cpu: 512 GiB}
"""


def user_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"rules": folder / "rules.yaml", "plan": folder / "plan.yaml", "types": folder / "types.txt",
             "recipe": folder / "model.recipe"}
    shutil.copy(KT_RULES, files["rules"])
    files["plan"].write_text(PLAN)
    files["types"].write_text("attn_v=q8_0 ffn_down=q6_k\noutput\\.weight=q8_0\n")
    files["recipe"].write_text("# a recipe\n^blk\\.[0-9]+\\.ffn_.*=q4_k\ntoken_embd\\.weight=q8_0\n")
    return files


def test_every_command_leaves_its_inputs_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = tmp_path / "inputs"
    shutil.copytree(MODELS, inputs / "models")
    files = user_files(inputs / "files")
    out = tmp_path / "out"
    out.mkdir()
    before = tree_state(inputs)
    ds, llama, mixtral = (str(inputs / "models" / n) for n in
                          ("deepseek-v3.1-q4_k_m.gguf", "llama-3.2-3b-f16.gguf", "mixtral-8x7b-bf16"))
    commands = [
        ["fit", ds, "--budget", "cuda:0=24GiB", "--budget", "cpu=512GiB", "--emit-yaml", str(out / "ds.yaml")],
        ["fit", mixtral, "--budget", "cuda:0=24GiB", "--budget", "cpu=128GiB", "--runtime", "ktransformers",
         "--emit-yaml", str(out / "mixtral.yaml")],
        ["inspect", llama, "--quant", "Q4_K_M", "--tensor-type-file", str(files["types"]), "--format", "json"],
        ["inspect", llama, "--tensor-type-file", str(files["recipe"])],
        ["inspect", llama, "--placement", str(files["plan"])],
        ["inspect", ds, "-ot", r"blk\.([3-9])\.ffn_.*_exps=CPU", "-ngl", "99", "--ctx", "4096"],
        ["inspect", mixtral, "--quant-list"],
        ["validate", str(files["plan"]), llama],
        ["validate", str(files["rules"]), ds, "--format", "json"],
    ]
    all_succeed(commands, capsys)
    assert tree_state(inputs) == before
    assert sorted(p.name for p in out.iterdir()) == ["ds.yaml", "mixtral.yaml"]  # and nothing else was written


def test_offline_cache_is_never_written_by_any_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from fixtures.generate import write_gguf

    repo = tmp_path / "repo"
    write_gguf(repo / "DeepSeek-V3.1-Q8_0.gguf", "deepseek-v3", tensor_type="Q8_0", n_layers=4, mode="header")
    files = user_files(tmp_path / "files")
    out = tmp_path / "out"
    out.mkdir()
    with offline_hub_cache(tmp_path, monkeypatch, {"org/ds": repo}) as (hub, cache):
        before = tree_state(cache), tree_state(files["rules"].parent)
        all_succeed([
            ["fit", "org/ds", "--budget", "cuda:0=24GiB", "--budget", "cpu=512GiB", "--emit-yaml",
             str(out / "rules.yaml")],
            ["validate", str(files["rules"]), "org/ds"],
            ["validate", str(out / "rules.yaml"), "org/ds"],
            ["inspect", "org/ds", "--placement", str(files["plan"])],
            ["inspect", "org/ds", "-ot", r"ffn_.*_exps=CPU", "--ctx", "2048"],
            ["inspect", "org/ds", "--quant", "Q8_0", "--tensor-type-file", str(files["types"])],
        ], capsys)
        assert hub.count() == 0  # offline: nothing went to the network
    assert (tree_state(cache), tree_state(files["rules"].parent)) == before
    assert [p.name for p in out.iterdir()] == ["rules.yaml"]
