"""ckpt-size's own plan files: schema, first-match placement, storage re-sizing, budgets, findings.

Checkpoint: the committed header-only DeepSeek-V3.1 Q4_K_M fixture, whose tensors are those of the real
map ../shared/data/real/Thireus__GGUF-Tool-Suite/DeepSeek-V3.1-Terminus/tensors.q4_K.map (total
377,885,689,856 bytes, shared/data/real/INDEX.md). By hand:
  token_embd Q4_K: 7168*129280 = 926,679,040 el. / 256 * 144                 =     521,256,960
  routed experts Q4_K: 256*2048*7168 el. / 256 * 144 = 2,113,929,216 per projection, 3 per layer,
    58 MoE layers (3-60)                                                      = 367,823,683,584
  everything else: 377,885,689,856 - 521,256,960 - 367,823,683,584          =   9,540,749,312
  Marlin int4 g64 experts of one layer: 256 * 3 * (7168*2048/2 + 112*2048*2) =   5,989,466,112
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector import load
from inspector.errors import CheckFailed, RulesError, UsageError
from inspector.memory.budget import parse_size as budget_parse_size
from inspector.model import ROLES, Checkpoint
from inspector.runtimes.literal.planfile import parse_layers, parse_size, plan_schema
from inspector.placement.schema import Validator
from inspector.api import place_from_file, validate_placement
from inspector.placement import detect_placement_kind
from inspector.summary import by_device

ROOT = Path(__file__).resolve().parent.parent
V3_FIXTURE = ROOT / "fixtures" / "models" / "deepseek-v3.1-q4_k_m.gguf"

EMBED_Q4K, EXPERTS_LAYER, REST = 521_256_960, 3 * 2_113_929_216, 9_540_749_312
MARLIN_LAYER = 5_989_466_112


@pytest.fixture(scope="module")
def v3() -> Checkpoint:
    return load(str(V3_FIXTURE))


def plan(tmp_path: Path, text: str, checkpoint: Checkpoint, gpus: int | None = None):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return validate_placement(path, checkpoint, gpus=gpus)


def found(result, code: str) -> list[tuple[str, int, int]]:
    return [(f.severity, f.line, f.column) for f in result.findings if f.code == code]


def col(text: str, line: int, token: str) -> int:
    """1-based column of `token` on 1-based `line` of `text`."""
    return text.splitlines()[line - 1].index(token) + 1


def device_bytes(result) -> dict[str, int]:
    return {g.key: g.bytes for g in by_device(result.placed.checkpoint.tensors)}


GOOD = """\
version: 1
default_device: cuda:0
rules:
  - {role: embedding, device: cpu}
  - {role: routed_experts, layers: 3-4, device: cuda:1, storage: MARLIN_INT4_G64}
  - {role: routed_experts, device: CPU}
budgets:
  cuda:0: 10 GB
  cuda:1: 12 GiB
  cpu: 400GB
"""


def test_good_plan_bytes_per_device(tmp_path, v3):
    result = plan(tmp_path, GOOD, v3, gpus=2)
    assert not result.has_errors
    assert device_bytes(result) == {
        "cuda:0": REST,
        "cuda:1": 2 * MARLIN_LAYER,  # 11,978,932,224 < 12 GiB (12,884,901,888)
        "cpu": EMBED_Q4K + 56 * EXPERTS_LAYER,  # 355,661,365,248
    }
    assert [(f.severity, f.code) for f in result.findings] == [("info", "default-device")]
    marlin = next(t for t in result.placed.checkpoint.tensors if t.name == "blk.3.ffn_up_exps.weight")
    assert (marlin.device, marlin.dtype, marlin.nbytes) == ("cuda:1", "MARLIN_INT4_G64", MARLIN_LAYER // 3)
    assert result.placed.kind == "plan"
    assert detect_placement_kind(tmp_path / "plan.yaml") == "plan"


def test_storage_resizes_by_ggml_block_sizes(tmp_path, v3):
    text = ("rules:\n"
            "  - {name: 'attn_q_a\\.weight$', device: cuda:0, storage: Q8_0}\n"
            "  - {role: norm, device: cuda:0, storage: bf16}\n")
    result = plan(tmp_path, text, v3)
    tensors = {t.name: t for t in result.placed.checkpoint.tensors}
    # Q8_0: blocks of 32 elements in 34 bytes: 7168*1536 = 11,010,048 el. / 32 * 34
    q_a = tensors["blk.7.attn_q_a.weight"]
    assert (q_a.dtype, q_a.nbytes) == ("Q8_0", 11_698_176)
    # BF16 norms: 2 bytes per element; kv_a_norm has 512
    kv_a_norm = tensors["blk.7.attn_kv_a_norm.weight"]
    assert (kv_a_norm.dtype, kv_a_norm.nbytes) == ("BF16", 1024)
    norms = sum(t.nbytes for t in result.placed.checkpoint.tensors if t.role == "norm")
    assert norms == 61 * (7168 + 7168 + 1536 + 512) * 2 + 7168 * 2  # 2,013,184


def test_first_match_wins_shadowed_and_no_match(tmp_path, v3):
    text = ("rules:\n"
            "  - {role: routed_experts, device: cpu}\n"
            "  - {name: 'ffn_up_exps', device: cuda:0}\n"
            "  - {role: vision, device: cpu}\n")
    result = plan(tmp_path, text, v3)
    assert found(result, "shadowed") == [("warning", 3, 5)]
    assert found(result, "no-match") == [("warning", 4, 5)]
    assert all(t.device == "cpu" for t in result.placed.checkpoint.tensors if t.role == "routed_experts")


def test_layers_beyond_the_model(tmp_path, v3):
    text = "rules:\n  - {layers: [3, '58-70'], device: cpu}\n"
    result = plan(tmp_path, text, v3)
    assert found(result, "layer-beyond") == [("warning", 2, col(text, 2, "["))]


def test_over_budget_is_an_error(tmp_path, v3):
    text = GOOD.replace("cuda:1: 12 GiB", "cuda:1: 11 GiB")
    result = plan(tmp_path, text, v3, gpus=2)
    # 11,978,932,224 > 11 GiB = 11,811,160,064
    assert found(result, "over-budget") == [("error", 9, 11)]
    assert "167,772,160 over" in next(f.message for f in result.findings if f.code == "over-budget")
    assert result.has_errors


def test_devices_beyond_gpus(tmp_path, v3):
    result = plan(tmp_path, GOOD, v3, gpus=1)
    assert found(result, "device-beyond-gpus") == [("error", 5, col(GOOD, 5, "cuda:1")), ("error", 9, 3)]


def test_schema_findings_with_positions(tmp_path, v3):
    text = """\
version: 2
rules:
  - {role: attenton, device: cpu}
  - {name: 'blk\\.([4-10])\\.', device: cuda:0}
  - {device: cpu}
  - {role: norm, devise: cpu}
  - {layers: 10-5, device: gpu}
  - {role: norm, device: tpu0, storage: Q9_K}
budgets: {cuda:0: lots, xpu: 1 GB}
extra: 1
"""
    result = plan(tmp_path, text, v3)
    got = [(f.severity, f.code, f.line, f.column) for f in result.findings]
    assert ("error", "bad-value", 1, col(text, 1, "2")) in got  # version must be 1
    assert ("error", "bad-value", 3, col(text, 3, "attenton")) in got  # unknown role
    assert ("error", "invalid-regex", 4, col(text, 4, "'blk")) in got
    assert ("error", "bad-value", 5, 5) in got  # no criterion at all
    assert ("error", "unknown-key", 6, col(text, 6, "devise")) in got
    assert ("error", "bad-value", 6, 5) in got  # devise: so no device
    assert ("error", "bad-value", 7, col(text, 7, "10-5")) in got  # 10-5 ends before it starts
    assert ("error", "bad-device", 8, col(text, 8, "tpu0")) in got
    assert not any(c == "unknown-storage" for _, c, _, _ in got)  # the rule is invalid already: not used
    assert ("error", "bad-value", 9, col(text, 9, "lots")) in got  # size
    assert ("error", "bad-device", 9, col(text, 9, "xpu")) in got  # budget key
    assert ("error", "unknown-key", 10, 1) in got
    fix = next(f.fix for f in result.findings if f.code == "unknown-key" and f.line == 6)
    assert "did you mean 'device'?" in fix
    no_criterion = next(f for f in result.findings if f.line == 5)
    assert "needs one of 'name', 'role', 'layers'" in no_criterion.message


def test_unknown_storage_and_storage_that_does_not_fit(tmp_path, v3):
    text = ("rules:\n"
            "  - {name: 'attn_k_b', device: cuda:0, storage: Q4_K}\n"  # ne0 = 128, Q4_K blocks are 256
            "  - {role: norm, device: cuda:0, storage: Q9_K}\n")
    result = plan(tmp_path, text, v3)
    assert found(result, "storage-shape") == [("error", 2, col(text, 2, "Q4_K"))]
    assert found(result, "unknown-storage") == [("error", 3, col(text, 3, "Q9_K"))]
    k_b = next(t for t in result.placed.checkpoint.tensors if t.name == "blk.0.attn_k_b.weight")
    assert (k_b.dtype, k_b.nbytes) == ("Q5_0", 5_767_168)  # left as stored


def test_yaml_syntax_and_empty_plan(tmp_path, v3):
    with pytest.raises(RulesError, match=r"plan\.yaml:3:1: invalid YAML"):
        plan(tmp_path, "rules:\n  - {role: norm, device: cpu\n", v3)
    result = plan(tmp_path, "rules: []\n", v3)
    assert not result.has_errors
    assert set(device_bytes(result)) == {"cuda:0"}


def test_duplicate_rule_keys(tmp_path, v3):
    result = plan(tmp_path, "rules:\n  - role: norm\n    device: cpu\n    device: cuda:0\n", v3)
    assert found(result, "duplicate-key") == [("error", 4, 5)]


def test_place_from_file_with_a_plan(tmp_path, v3):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    placed = place_from_file(v3, path, gpus=2)
    assert placed.kind == "plan" and any("default-device" in n for n in placed.notes)
    path.write_text(GOOD.replace("cuda:1: 12 GiB", "cuda:1: 1 GiB"))
    with pytest.raises(CheckFailed, match="over its budget"):  # exit code 3: the check said no
        place_from_file(v3, path, gpus=2)
    path.write_text(GOOD.replace("role: embedding", "role: embeding"))
    with pytest.raises(RulesError, match="embeding"):
        place_from_file(v3, path, gpus=2)


# ---- the schema and its validator ---------------------------------------------------------------------------
def test_schema_roles_are_the_model_roles():
    assert plan_schema()["$defs"]["role"]["enum"] == list(ROLES)


def test_schema_file_is_json_schema_shaped():
    schema = json.loads((ROOT / "rules" / "plan.schema.json").read_text())
    assert schema["$schema"].startswith("https://json-schema.org/")
    Validator(schema)  # only keywords the validator implements


def test_validator_keywords():
    v = Validator({
        "type": "object", "required": ["a"], "additionalProperties": False,
        "properties": {
            "a": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^x"}]},
            "b": {"oneOf": [{"type": "integer"}, {"type": "number"}]},
            "c": {"type": "array", "minItems": 1, "items": {"enum": [1, 2]}},
        },
    })
    assert list(v.errors({"a": 3})) == []
    assert list(v.errors({"a": "xy", "c": [1]})) == []
    assert [kw for _, kw, _ in v.errors({})] == ["required"]
    assert [kw for _, kw, _ in v.errors({"a": -1})] == ["minimum"]
    assert [(p, kw) for p, kw, _ in v.errors({"a": 1, "c": [3]})] == [(("c", 0), "enum")]
    assert [kw for _, kw, _ in v.errors({"a": 1, "c": []})] == ["minItems"]
    assert [kw for _, kw, _ in v.errors({"a": 1, "b": 2})] == ["oneOf"]  # 2 is an integer and a number
    assert [kw for _, kw, _ in v.errors({"a": 1, "z": 0})] == ["additionalProperties"]
    assert [kw for _, kw, _ in v.errors({"a": True})] == ["type"]  # a bool is not an integer
    with pytest.raises(ValueError, match="unsupported"):
        Validator({"type": "object", "maxProperties": 3})


def test_sizes_and_layer_ranges():
    assert parse_size(1024) == 1024
    assert parse_size("24 GiB") == 24 * 2**30
    assert parse_size("512GB") == 512 * 10**9
    assert parse_size("1.5 TiB") == 3 * 2**39
    assert parse_size("100") == 100
    assert parse_layers("3-5").intervals == ((3, 5),)
    assert parse_layers([0, "7 - 8"]).intervals == ((0, 0), (7, 8))
    assert [i for i in range(10) if i in parse_layers([0, "7 - 8"])] == [0, 7, 8]
    with pytest.raises(ValueError):
        parse_layers("9-2")


def test_plan_sizes_are_the_budget_parser():
    # one size grammar for --budget and plan files (inspector.memory.budget.parse_size)
    assert parse_size("24G") == 24 * 2**30  # a bare letter is binary: 25,769,803,776
    assert parse_size("24G") == budget_parse_size("24G")
    # exact decimal arithmetic: 4.1 × 10^9 = 4,100,000,000 (the old float arithmetic gave 4,099,999,999)
    assert parse_size("4.1 GB") == 4_100_000_000
    assert parse_size("1 PB") == 10**15 and parse_size("1 PiB") == 2**50  # the schema admits P units
    for bad in (-1, 1.5, True, "lots"):
        with pytest.raises(UsageError):
            parse_size(bad)


def test_plan_budget_with_exact_decimal_size(tmp_path, v3):
    # every tensor on the default cuda:0: 377,885,689,856 bytes. The budget 4.1 GB is 4,100,000,000 bytes (by hand,
    # 4.1 × 10^9; float arithmetic read 4,099,999,999), so it is over by 377,885,689,856 - 4,100,000,000 =
    # 373,785,689,856, reported at the budget's value on line 2
    text = "rules: []\nbudgets: {cuda:0: 4.1 GB}\n"
    result = plan(tmp_path, text, v3)
    assert device_bytes(result) == {"cuda:0": 377_885_689_856}
    assert found(result, "over-budget") == [("error", 2, col(text, 2, "4.1"))]
    message = next(f.message for f in result.findings if f.code == "over-budget")
    assert "373,785,689,856 over its budget of 4,100,000,000" in message


def test_huge_layer_range_is_intervals_not_a_set(tmp_path, v3):
    # "0-10000000000" was expanded into a set of 10^10 ints (MemoryError); as one interval it costs nothing. The
    # rule takes every block-indexed tensor (layers 0-60), and layers 61-10,000,000,000 are reported on line 2.
    text = "rules:\n  - {layers: '0-10000000000', device: cpu}\n"
    result = plan(tmp_path, text, v3)
    assert found(result, "layer-beyond") == [("warning", 2, col(text, 2, "'0-"))]
    message = next(f.message for f in result.findings if f.code == "layer-beyond")
    assert "layers 61-10000000000 do not exist" in message
    layered = [t for t in result.placed.checkpoint.tensors if t.layer is not None]
    assert layered and all(t.device == "cpu" for t in layered)
    ranges = parse_layers(["5-10000000000", 3, "4-4", 10**12])
    assert ranges.intervals == ((3, 10_000_000_000), (10**12, 10**12))  # 3, 4 and 5-… merge: adjacent
    assert 10_000_000_000 in ranges and 10_000_000_001 not in ranges and 2 not in ranges and 10**12 in ranges
    assert ranges.beyond(61) == (61, 10**12)
