"""Every JSON document the commands print validates against docs/schema/ckpt-size.schema.json (additional keys
are refused, so the schema, and docs/json.md generated from it, document every key)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from inspector.placement.schema import Validator

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs" / "schema" / "ckpt-size.schema.json").read_text())
_spec = importlib.util.spec_from_file_location("golden", ROOT / "tools" / "golden.py")
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)


def kind(argv: list[str]) -> str:
    if argv[0] == "inspect":
        return "quant_list" if "--quant-list" in argv else "inspect"
    return argv[0]


def json_cases() -> list[tuple[str, str]]:
    cases = []
    for name, argv in golden.cases().items():
        if "json" in argv and "--format" in argv:
            cases.append((name, kind(argv)))
    return cases


def validator(command: str) -> Validator:
    return Validator({"$ref": f"#/$defs/{command}", "$defs": SCHEMA["$defs"]})


@pytest.mark.parametrize("name, command", json_cases())
def test_golden_json_outputs_follow_the_schema(name: str, command: str) -> None:
    text = (golden.GOLDEN / f"{name}.txt").read_text()
    stdout = text.split("--- stdout\n", 1)[1].split("--- stderr\n", 1)[0]
    if not stdout.strip():
        pytest.skip("the command failed before printing (an error case)")
    errors = list(validator(command).errors(json.loads(stdout)))
    assert not errors, errors[:5]


@pytest.mark.parametrize("argv, command", [
    (["inspect", "fixtures/models/qwen3-moe-q8_0.gguf", "--quant-list", "--format", "json"], "quant_list"),
    (["inspect", "fixtures/models/llama-3.2-3b-f16.gguf", "--ctx", "65536", "--budget", "cuda:0=4GiB",
      "--format", "json"], "inspect"),
    (["fit", "fixtures/models/llama-3.2-3b-f16.gguf", "--budget", "cuda:0=1GiB", "--format", "json"], "fit"),
    (["inspect", "fixtures/models/llama-3.2-3b-f16.gguf", "--quant", "Q4_K_M", "--by", "tensor", "--format", "json"],
     "inspect"),
])
def test_more_outputs_follow_the_schema(argv: list[str], command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    text = golden.run(argv)
    stdout = text.split("--- stdout\n", 1)[1].split("--- stderr\n", 1)[0]
    errors = list(validator(command).errors(json.loads(stdout)))
    assert not errors, errors[:5]


def test_the_schema_refuses_an_undocumented_key() -> None:
    text = (golden.GOLDEN / "inspect-llama-role-json.txt").read_text()
    doc = json.loads(text.split("--- stdout\n", 1)[1].split("--- stderr\n", 1)[0])
    doc["surprise"] = 1
    assert [e[1] for e in validator("inspect").errors(doc)] == ["additionalProperties"]


def test_docs_json_md_is_generated_from_the_schema() -> None:
    spec = importlib.util.spec_from_file_location("update_json_docs", ROOT / "tools" / "update_json_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "docs" / "json.md").read_text()
    assert module.updated(text) == text, "run: python tools/update_json_docs.py"
