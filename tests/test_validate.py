"""`validate`: one broken KTransformers rule file per finding kind, each finding at its file:line.

The checkpoint is the committed header-only DeepSeek-V3.1 Q4_K_M fixture (61 layers, 0-2 dense, 256 experts,
split attn_k_b/attn_v_b, no MTP layer), cut to layers 0-4 (`small`) unless a case says `v3`. The rule files are
tests/_kt_rules.py's BASE (16 lines: the embedding and the experts on the CPU), edited, or rules added to it: the
lines and columns below are counted on that layout.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from inspector import load
from inspector.errors import RulesError
from inspector.model import Checkpoint, TensorInfo
from inspector.api import place_from_file, validate_placement
from inspector.placement import detect_placement_kind
from inspector.roles import assign_roles
from tests._kt_rules import ATTENTION, BASE, EMBED, EXPERTS, EXPERTS_CLASS, KT_MODEL, LINEAR, kt_rule

ROOT = Path(__file__).resolve().parent.parent
V3_FIXTURE = ROOT / "fixtures" / "models" / "deepseek-v3.1-q4_k_m.gguf"


@pytest.fixture(scope="module")
def v3() -> Checkpoint:
    return load(str(V3_FIXTURE))


@pytest.fixture(scope="module")
def small(v3) -> Checkpoint:
    """Layers 0-4 only (0-2 dense, 3-4 MoE): for files that make the walk visit all 256 experts per layer."""
    tensors = tuple(t for t in v3.tensors if t.layer is None or t.layer < 5)
    return v3.with_(tensors=tensors, metadata={**v3.metadata, "deepseek2.block_count": 5})


def run(tmp_path: Path, text: str, checkpoint: Checkpoint, gpus: int | None = 1):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return validate_placement(path, checkpoint, gpus=gpus)


def found(result, code: str) -> list[tuple[str, int, int]]:
    return [(f.severity, f.line, f.column) for f in result.findings if f.code == code]


@dataclass(frozen=True)
class At:
    """One expected finding: where it is, and words its message and its fix must contain."""

    severity: str
    line: int
    column: int
    message: str = ""
    fix: str = ""


def error(line: int, column: int, **words: str) -> At:
    return At("error", line, column, **words)


def warning(line: int, column: int, **words: str) -> At:
    return At("warning", line, column, **words)


def info(line: int, column: int, **words: str) -> At:
    return At("info", line, column, **words)


def case(name: str, text: str, expected: dict[str, list[At]], *, on: str = "small", gpus: int = 1):
    """A rule file, the checkpoint fixture it is validated against (`small` or `v3`) with `gpus`, and every finding
    of each code named in `expected`, in file order."""
    return pytest.param(text, on, gpus, expected, id=name)


def test_base_file_is_clean(tmp_path, small):
    result = run(tmp_path, BASE, small)
    assert not result.has_errors
    assert {f.code for f in result.findings} == {"default-device"}
    assert all(f.severity == "info" for f in result.findings)


BAD_RANGE = EXPERTS.replace(".*\\\\.mlp", "([4-10])\\\\.mlp")  # the old FAQ example: a class is not a range
MLP_EXPERTS = r"^model\.layers\.(0|[1-4])\.mlp\.experts$"

CASES = [
    # ---- the file ----
    case("list-of-scalars", "- lm_head\n- match: {name: x}\n  replace: {class: default}\n",
         {"bad-rule": [error(1, 3)]}),
    case("duplicate-key",
         BASE.replace('      prefill_device: "cpu"\n', '      prefill_device: "cpu"\n      generate_device: "cuda"\n'),
         {"duplicate-key": [error(8, 7)]}),
    # ---- rule structure ----
    case("unknown-rule-key", BASE.replace("  recursive: False", "  recursve: False"),
         {"unknown-key": [error(16, 3, fix="did you mean 'recursive'?")]}),
    case("unknown-match-and-replace-keys",
         EMBED.replace("    name:", "    names:").replace("    class: \"default\"", "    clas: \"default\""),
         {"unknown-key": [error(2, 5), error(4, 5)], "missing-match": [error(2, 5)]}),
    case("missing-replace", '- match:\n    name: "^lm_head$"\n' + BASE, {"missing-replace": [error(1, 3)]}),
    # the column is the '4' the parser stumbles on, escapes counted
    case("invalid-regex-4-10", BAD_RANGE,
         {"invalid-regex": [error(2, BAD_RANGE.splitlines()[1].index("[4-10]") + 2,
                                  message="bad character range 4-1")]}),
    case("unknown-classes",
         kt_rule(None, "ktransformers.operators.gate.KMoEGates",
                 match_class="ktransformers.models.modeling_deepseek_v3.DeepseekV3Gate"),
         {"unknown-class": [error(2, 12), error(4, 12, fix="KMoEGate")]}),
    case("replace-device-is-ignored",
         EMBED.replace('    class: "default"\n', '    class: "default"\n    device: "cpu"\n'),
         {"ignored-key": [warning(5, 5)]}),
    case("misspelled-kwarg",
         BASE.replace('generate_device: "cpu"\n      generate_op', 'generate_devcie: "cpu"\n      generate_op'),
         {"unknown-kwarg": [error(13, 7, fix="did you mean 'generate_device'?")]}),
    case("recursive-as-a-string", BASE.replace("recursive: False", 'recursive: "False"'),
         {"bad-value": [error(16, 14)]}),
    case("marlin-group-size-and-backend",
         kt_rule(r"^lm_head$", LINEAR, group_size=100)
         + BASE.replace('out_device: "cuda:0"', 'out_device: "cuda:0"\n      backend: "AMX"'),
         {"bad-value": [error(6, 19), error(22, 16)]}),
    # ---- ops and devices ----
    case("legacy-and-unknown-ops",
         BASE.replace('generate_op: "KExpertsCPU"', 'generate_op: "MLPCPUExperts"')
         + kt_rule(r"^lm_head$", LINEAR, generate_op="KLinearMarlin4"),
         {"legacy-op": [error(14, 20, fix="KExpertsCPU")], "unknown-op": [error(22, 20)]}),
    case("kexpertscpu-off-the-cpu-and-marlin-on-the-cpu",
         BASE.replace('generate_device: "cpu"\n      generate_op', 'generate_device: "cuda"\n      generate_op')
         + kt_rule(r"^lm_head$", LINEAR, generate_device="cpu"),
         {"op-device": [error(13, 24), error(22, 24)]}),
    case("bad-device-and-devices-beyond-gpus",
         BASE.replace('out_device: "cuda:0"', 'out_device: "cuda:2"').replace(
             '      prefill_device: "cpu"\n', '      prefill_device: "gpu0"\n'),
         {"bad-device": [error(7, 23)], "device-beyond-gpus": [error(15, 19)]}, on="v3", gpus=2),
    case("out-device-differs-from-the-moe-block", BASE.replace('out_device: "cuda:0"', 'out_device: "cuda:1"'),
         {"out-device": [warning(15, 19)]}, gpus=2),
    case("embedding-on-the-gpu-with-the-kt-model",
         EXPERTS + kt_rule(r"^model$", KT_MODEL, per_layer_prefill_intput_threshold=0),
         {"embedding-device": [error(0, 0)]}),
    case("missing-generate-device", BASE + kt_rule(r"^model\.norm$", "default", prefill_device="cpu"),
         {"missing-generate-device": [error(17, 3)]}),
    case("op-on-the-wrong-module", BASE + kt_rule(r"^model\.layers\.\d+\.mlp$", LINEAR),
         {"op-module-mismatch": [error(17, 3)]}),
    case("fp8-linear-on-gguf", BASE + kt_rule(r"^lm_head$", LINEAR, generate_op="KLinearFP8"),
         {"op-format": [error(17, 3)]}),
    case("wrong-model-and-recursive-experts",
         kt_rule(r"^model\.layers\..*\.mlp$", "ktransformers.operators.experts.KQwen2MoeSparseMoeBlock",
                 match_class="ktransformers.models.modeling_qwen2_moe.Qwen2MoeSparseMoeBlock")
         + BASE.replace("  recursive: False\n", ""),
         {"wrong-model": [warning(3, 12)], "recursive-experts": [warning(13, 3)]}),
    # ---- what the walk finds ----
    case("rule-that-matches-nothing",
         BASE + kt_rule(r"^model\.layers\.\d+\.feed_forward$", "default", generate_device="cpu",
                        prefill_device="cpu"),
         {"no-match": [warning(17, 3)]}),
    case("shadowed-rule", BASE + EMBED.replace('"cpu"', '"cuda:0"'),  # the same name again, later
         {"shadowed": [warning(17, 3, message="line 1")]}),
    case("unreachable-below-recursive-false",
         BASE + kt_rule(r"^model\.layers\.4\.mlp\.experts\.0$", "default", generate_device="cuda:0",
                        prefill_device="cuda:0"),
         {"unreachable": [warning(17, 3, message="line 8")]}),
    # layers 0-4 lack experts (0-2 dense) and layers 61-69 do not exist: 60-69 reaches the last layer (info)
    case("layers-that-lack-the-module-or-do-not-exist",
         kt_rule(MLP_EXPERTS, EXPERTS_CLASS, generate_device="cuda:0", generate_op="KExpertsMarlin", recursive=False)
         + kt_rule(r"^model\.layers\.(6[0-9])\.self_attn$", ATTENTION) + BASE,
         {"layer-missing": [warning(1, 3)], "layer-beyond": [info(9, 3)]}, on="v3"),
    case("layer-range-that-misses-the-end",
         kt_rule(r"^model\.layers\.(5[0-9]|7[0-9])\.self_attn$", ATTENTION) + BASE,
         {"layer-beyond": [warning(1, 3)]}, on="v3"),
]


@pytest.mark.parametrize("text, on, gpus, expected", CASES)
def test_each_finding_at_its_line_and_column(tmp_path, request, text, on, gpus, expected):
    result = run(tmp_path, text, request.getfixturevalue(on), gpus=gpus)
    for code, wanted in expected.items():
        got = [f for f in result.findings if f.code == code]
        assert [(f.severity, f.line, f.column) for f in got] == [(w.severity, w.line, w.column) for w in wanted], code
        for finding, want in zip(got, wanted):
            assert want.message in finding.message and want.fix in (finding.fix or ""), (code, finding)


# ---- the file --------------------------------------------------------------------------------------------
def test_yaml_syntax_error_has_line_and_column(tmp_path, small):
    text = BASE + "- match:\n    name: \"^lm_head\n  replace:\n"  # unterminated string from line 18
    with pytest.raises(RulesError, match=r"rules\.yaml:20:1: invalid YAML") as e:  # where the scanner gives up
        run(tmp_path, text, small)
    assert e.value.exit_code == 1


@pytest.mark.parametrize("text, where", [("foo: [\n- bar\n", ":2:1: invalid YAML"),
                                         ("- match:\n    name: \"x\n  replace: y\n", ":4:1: invalid YAML")])
def test_yaml_syntax_errors_exit_1_with_the_parsers_position(tmp_path, text, where, capsys):
    from inspector.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    model = str(Path(__file__).resolve().parents[1] / "fixtures" / "models" / "llama-3.2-3b-f16.gguf")
    for args in (["validate", str(path), model], ["inspect", model, "--placement", str(path)]):
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 1
        assert f"Error: {path}{where}" in capsys.readouterr().err


def test_not_a_list(tmp_path, small):
    result = run(tmp_path, "match:\n  name: x\nreplace: {}\n", small)
    # a mapping at the top reads as a plan file; with match/replace it is a rule that lost its '-'
    assert found(result, "not-a-list") == [("error", 1, 1)]
    assert result.placed is None


ATTENTION_30_60_ON_CUDA1 = kt_rule(r"^model\.layers\.([3456][0-9])\.self_attn$", ATTENTION,
                                  generate_device="cuda:1", prefill_device="cuda:1")


def test_transfer_map(tmp_path, v3):
    # layers 30-60 on cuda:1 (attention), but the model's transfer_map moves the hidden state at layer 40
    text = BASE + ATTENTION_30_60_ON_CUDA1 + kt_rule(r"^model$", KT_MODEL, per_layer_prefill_intput_threshold=0,
                                                     transfer_map={"40": "cuda:1", 80: "cuda:1"})
    result = run(tmp_path, text, v3, gpus=2)
    kinds = [(f.severity, f.line, f.message) for f in result.findings if f.code == "transfer-map"]
    assert ("error", 31, "transfer_map key '40' is not an integer; `i in transfer_map` never matches it") in kinds
    assert any(s == "warning" and "layer 80" in m for s, _, m in kinds)
    assert any(s == "warning" and "layers 30-60 run on cuda:1" in m for s, _, m in kinds)


def test_default_device_warning_when_the_neighbours_are_elsewhere(tmp_path, v3):
    # attention of layers 30-60 on cuda:1, but nothing places their norms and kv_b_proj: they stay on cuda:0
    text = BASE + ATTENTION_30_60_ON_CUDA1
    result = run(tmp_path, text, v3, gpus=2)
    warned = [f for f in result.findings if f.code == "default-device" and f.severity == "warning"]
    # no Linear rule either: every attention submodule of those layers stays on cuda:0
    assert {f.message.split(" match no rule")[0].split(") ")[1] for f in warned} == {
        f"model.layers.*.self_attn.{m}" for m in ("q_a_proj", "q_a_layernorm", "q_b_proj", "kv_a_proj_with_mqa",
                                                  "kv_a_layernorm", "kv_b_proj", "o_proj")}
    assert all(f.line == 0 for f in warned)


def test_recursive_false_on_a_default_module(tmp_path, small):
    # layer 4 "on the CPU", but recursive: False gives its submodules no device: they load on cuda
    text = BASE + kt_rule(r"^model\.layers\.4$", "default", generate_device="cpu", prefill_device="cpu",
                          recursive=False)
    result = run(tmp_path, text, small)
    assert found(result, "unconfigured") == [("warning", 17, 3)]
    placed = {t.name: t.device for t in result.placed.checkpoint.tensors}
    assert placed["blk.4.attn_q_a.weight"] == "cuda:0"
    # the experts ModuleList of layer 4 is never replaced either: it would load expert by expert, and fail
    assert placed["blk.4.ffn_up_exps.weight[0]"] == "cuda:0"
    assert found(result, "per-expert-load") == [("error", 0, 0)]


def test_experts_left_unmatched_cannot_load_from_a_stacked_gguf(tmp_path, small):
    result = run(tmp_path, EMBED, small)
    ((severity, line, _),) = found(result, "per-expert-load")
    assert (severity, line) == ("error", 0)
    # what it would try: every expert dequantized to bf16 on cuda:0: 2 MoE layers * 3 projections *
    # 256 * 2048 * 7168 el. * 2 bytes (7,516,192,768)
    experts = sum(t.nbytes for t in result.placed.checkpoint.tensors if "_exps" in t.name)
    assert experts == 2 * 3 * 7_516_192_768
    assert sum(1 for t in result.placed.checkpoint.tensors if t.name.startswith("blk.3.ffn_up_exps.weight[")) == 256


def test_missing_tensor(tmp_path, small):
    # V3 rules on a GGUF without exp_probs_b (ktransformers issue #408): the gate bias cannot be found
    tensors = tuple(t for t in small.tensors if "exp_probs_b" not in t.name)
    old = small.with_(tensors=tensors)
    result = run(tmp_path, BASE, old)
    assert found(result, "missing-tensor") == [("error", 0, 0)]
    assert "blk.3.exp_probs_b.bias" in next(f.message for f in result.findings if f.code == "missing-tensor")


def test_unsupported_type(tmp_path, small):
    tensors = tuple(t.with_(dtype="IQ2_XXS") if t.name.endswith("attn_output.weight") else t for t in small.tensors)
    result = run(tmp_path, BASE, small.with_(tensors=tensors))
    assert found(result, "unsupported-type") == [("error", 0, 0)]


def test_mtp_layer_is_not_loaded(tmp_path, small):
    extra = TensorInfo("blk.61.nextn.eh_proj.weight", (14336, 7168), "F16", 14336 * 7168 * 2, 0, 0, 14336 * 7168)
    checkpoint = assign_roles(small.with_(tensors=small.tensors + (extra,)))
    result = run(tmp_path, BASE, checkpoint)
    assert found(result, "not-loaded") == [("info", 0, 0)]
    assert all(t.name != extra.name for t in result.placed.checkpoint.tensors)
    assert any("not loaded by KTransformers: 1 tensor(s)" in n for n in result.placed.notes)


# ---- results, API -----------------------------------------------------------------------------------------------
def test_errors_decide_has_errors_and_json_shape(tmp_path, small):
    clean = run(tmp_path, BASE, small)
    broken = run(tmp_path, BASE.replace("recursive: False", "recursive: 'no'"), small)
    assert (clean.has_errors, broken.has_errors) == (False, True)
    payload = json.loads(json.dumps([f.as_dict() for f in broken.findings]))
    assert set(payload[0]) == {"path", "line", "column", "severity", "code", "message", "fix"}
    lines = [f.line for f in broken.findings]
    assert lines == sorted(lines)  # file order


def test_detect_kind(tmp_path):
    kt = tmp_path / "a.yaml"
    kt.write_text(BASE)
    plan = tmp_path / "b.yaml"
    plan.write_text("rules:\n  - {role: embedding, device: cpu}\n")
    broken_kt = tmp_path / "c.yaml"
    broken_kt.write_text("- match:\n    name: 'x\n")
    other = tmp_path / "d.yaml"
    other.write_text("just text\n")
    assert [detect_placement_kind(p) for p in (kt, plan)] == ["ktransformers", "plan"]
    with pytest.raises(RulesError, match=r"c\.yaml:3:1: invalid YAML"):  # the scanner gives up at the end
        detect_placement_kind(broken_kt)
    with pytest.raises(RulesError, match="neither"):
        detect_placement_kind(other)
    with pytest.raises(RulesError, match="cannot read"):
        detect_placement_kind(tmp_path / "missing.yaml")


def test_place_from_file_refuses_errors(tmp_path, small):
    path = tmp_path / "r.yaml"
    path.write_text(BASE.replace('generate_op: "KExpertsCPU"', 'generate_op: "MLPCPUExperts"'))
    with pytest.raises(RulesError) as e:
        place_from_file(small, path)
    assert ":14:20: " in str(e.value) and "ckpt-size validate" in str(e.value)
