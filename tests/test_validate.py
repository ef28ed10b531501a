"""`validate`: one broken KTransformers rule file per finding kind, each finding at its file:line.

The checkpoint is the committed header-only DeepSeek-V3.1 Q4_K_M fixture (61 layers, 0-2 dense, 256 experts,
split attn_k_b/attn_v_b, no MTP layer) unless a test says otherwise.
"""
from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from inspector import load
from inspector.errors import RulesError
from inspector.model import Checkpoint, TensorInfo
from inspector.api import place_from_file, validate_placement
from inspector.placement import detect_placement_kind
from inspector.roles import assign_roles

ROOT = Path(__file__).resolve().parent.parent
V3_FIXTURE = ROOT / "fixtures" / "models" / "deepseek-v3.1-q4_k_m.gguf"

EMBED = """\
- match:
    name: "^model\\\\.embed_tokens$"
  replace:
    class: "default"
    kwargs:
      generate_device: "cpu"
      prefill_device: "cpu"
"""
EXPERTS = """\
- match:
    name: "^model\\\\.layers\\\\..*\\\\.mlp\\\\.experts$"
  replace:
    class: ktransformers.operators.experts.KTransformersExperts
    kwargs:
      generate_device: "cpu"
      generate_op: "KExpertsCPU"
      out_device: "cuda:0"
  recursive: False
"""
BASE = EMBED + EXPERTS  # 16 lines: a valid file (everything else stays on cuda:0 by default)


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
    path.write_text(dedent(text) if text.startswith("\n") else text)
    return validate_placement(path, checkpoint, gpus=gpus)


def found(result, code: str) -> list[tuple[str, int, int]]:
    return [(f.severity, f.line, f.column) for f in result.findings if f.code == code]


def test_base_file_is_clean(tmp_path, small):
    result = run(tmp_path, BASE, small)
    assert not result.has_errors
    assert {f.code for f in result.findings} == {"default-device"}
    assert all(f.severity == "info" for f in result.findings)


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


def test_list_of_scalars_is_bad_rules(tmp_path, small):
    result = run(tmp_path, "- lm_head\n- match: {name: x}\n  replace: {class: default}\n", small)
    assert found(result, "bad-rule") == [("error", 1, 3)]


def test_duplicate_key(tmp_path, small):
    text = BASE.replace('      prefill_device: "cpu"\n', '      prefill_device: "cpu"\n      generate_device: "cuda"\n')
    result = run(tmp_path, text, small)
    assert found(result, "duplicate-key") == [("error", 8, 7)]


# ---- rule structure -----------------------------------------------------------------------------------------
def test_unknown_rule_key(tmp_path, small):
    text = BASE.replace("  recursive: False", "  recursve: False")
    result = run(tmp_path, text, small)
    assert found(result, "unknown-key") == [("error", 16, 3)]
    assert "did you mean 'recursive'?" in next(f.fix for f in result.findings if f.code == "unknown-key")


def test_unknown_match_and_replace_keys(tmp_path, small):
    text = EMBED.replace("    name:", "    names:").replace("    class: \"default\"", "    clas: \"default\"")
    result = run(tmp_path, text, small)
    assert found(result, "unknown-key") == [("error", 2, 5), ("error", 4, 5)]
    assert found(result, "missing-match") == [("error", 2, 5)]


def test_missing_replace(tmp_path, small):
    result = run(tmp_path, '- match:\n    name: "^lm_head$"\n' + BASE, small)
    assert found(result, "missing-replace") == [("error", 1, 3)]


def test_invalid_regex_4_10(tmp_path, small):
    # the old FAQ example: a character class is not a numeric range
    text = EXPERTS.replace(".*\\\\.mlp", "([4-10])\\\\.mlp")
    result = run(tmp_path, text, small)
    ((severity, line, column),) = found(result, "invalid-regex")
    assert (severity, line) == ("error", 2)
    source_line = text.splitlines()[1]
    assert column == source_line.index("[4-10]") + 2  # the '4' the parser stumbles on, escapes counted
    assert any("bad character range 4-1" in f.message for f in result.findings)


def test_unknown_classes(tmp_path, small):
    text = dedent("""\
        - match:
            class: ktransformers.models.modeling_deepseek_v3.DeepseekV3Gate
          replace:
            class: ktransformers.operators.gate.KMoEGates
        """)
    result = run(tmp_path, text, small)
    assert found(result, "unknown-class") == [("error", 2, 12), ("error", 4, 12)]
    fixes = [f.fix for f in result.findings if f.code == "unknown-class"]
    assert "KMoEGate" in fixes[1]


def test_replace_device_is_ignored(tmp_path, small):
    text = EMBED.replace('    class: "default"\n', '    class: "default"\n    device: "cpu"\n')
    result = run(tmp_path, text, small)
    assert found(result, "ignored-key") == [("warning", 5, 5)]


def test_misspelled_kwarg(tmp_path, small):
    text = BASE.replace('generate_device: "cpu"\n      generate_op', 'generate_devcie: "cpu"\n      generate_op')
    result = run(tmp_path, text, small)
    assert found(result, "unknown-kwarg") == [("error", 13, 7)]
    assert "did you mean 'generate_device'?" in next(f.fix for f in result.findings if f.code == "unknown-kwarg")


def test_recursive_as_a_string(tmp_path, small):
    result = run(tmp_path, BASE.replace("recursive: False", 'recursive: "False"'), small)
    assert ("error", 16, 14) in found(result, "bad-value")


def test_marlin_and_backend_values(tmp_path, small):
    text = dedent("""\
        - match:
            name: "^lm_head$"
          replace:
            class: ktransformers.operators.linear.KTransformersLinear
            kwargs:
              group_size: 100
        """) + BASE.replace('out_device: "cuda:0"', 'out_device: "cuda:0"\n      backend: "AMX"')
    result = run(tmp_path, text, small)
    assert [(s, line) for s, line, _ in found(result, "bad-value")] == [("error", 6), ("error", 22)]


# ---- ops and devices ------------------------------------------------------------------------------------------
def test_legacy_and_unknown_ops(tmp_path, small):
    text = BASE.replace('generate_op: "KExpertsCPU"', 'generate_op: "MLPCPUExperts"') + dedent("""\
        - match:
            name: "^lm_head$"
          replace:
            class: ktransformers.operators.linear.KTransformersLinear
            kwargs:
              generate_op: "KLinearMarlin4"
        """)
    result = run(tmp_path, text, small)
    assert found(result, "legacy-op") == [("error", 14, 20)]
    assert "KExpertsCPU" in next(f.fix for f in result.findings if f.code == "legacy-op")
    assert found(result, "unknown-op") == [("error", 22, 20)]


def test_kexpertscpu_off_the_cpu_and_marlin_on_the_cpu(tmp_path, small):
    text = BASE.replace('generate_device: "cpu"\n      generate_op', 'generate_device: "cuda"\n      generate_op')
    text += dedent("""\
        - match:
            name: "^lm_head$"
          replace:
            class: ktransformers.operators.linear.KTransformersLinear
            kwargs:
              generate_device: "cpu"
        """)
    result = run(tmp_path, text, small)
    assert found(result, "op-device") == [("error", 13, 24), ("error", 22, 24)]


def test_bad_device_and_devices_beyond_gpus(tmp_path, v3):
    text = BASE.replace('out_device: "cuda:0"', 'out_device: "cuda:2"').replace(
        '      prefill_device: "cpu"\n', '      prefill_device: "gpu0"\n')
    result = run(tmp_path, text, v3, gpus=2)
    assert found(result, "bad-device") == [("error", 7, 23)]
    assert found(result, "device-beyond-gpus") == [("error", 15, 19)]


def test_transfer_map(tmp_path, v3):
    # layers 30-60 on cuda:1 (attention), but the model's transfer_map moves the hidden state at layer 40
    text = BASE + dedent("""\
        - match:
            name: "^model\\\\.layers\\\\.([3456][0-9])\\\\.self_attn$"
          replace:
            class: ktransformers.operators.attention.KDeepseekV2Attention
            kwargs:
              generate_device: "cuda:1"
              prefill_device: "cuda:1"
        - match:
            name: "^model$"
          replace:
            class: "ktransformers.operators.models.KDeepseekV2Model"
            kwargs:
              per_layer_prefill_intput_threshold: 0
              transfer_map:
                "40": "cuda:1"
                80: "cuda:1"
        """)
    result = run(tmp_path, text, v3, gpus=2)
    kinds = [(f.severity, f.line, f.message) for f in result.findings if f.code == "transfer-map"]
    assert ("error", 31, "transfer_map key '40' is not an integer; `i in transfer_map` never matches it") in kinds
    assert any(s == "warning" and "layer 80" in m for s, _, m in kinds)
    assert any(s == "warning" and "layers 30-60 run on cuda:1" in m for s, _, m in kinds)


def test_out_device_differs_from_the_moe_block(tmp_path, small):
    text = BASE.replace('out_device: "cuda:0"', 'out_device: "cuda:1"')
    result = run(tmp_path, text, small, gpus=2)
    assert found(result, "out-device") == [("warning", 15, 19)]


def test_embedding_on_the_gpu_with_the_kt_model(tmp_path, small):
    text = EXPERTS + dedent("""\
        - match:
            name: "^model$"
          replace:
            class: "ktransformers.operators.models.KDeepseekV2Model"
            kwargs:
              per_layer_prefill_intput_threshold: 0
        """)
    result = run(tmp_path, text, small)
    assert found(result, "embedding-device") == [("error", 0, 0)]


# ---- what the walk finds --------------------------------------------------------------------------------------
def test_rule_that_matches_nothing(tmp_path, small):
    text = BASE + dedent("""\
        - match:
            name: "^model\\\\.layers\\\\.\\\\d+\\\\.feed_forward$"
          replace:
            class: "default"
            kwargs:
              generate_device: "cpu"
              prefill_device: "cpu"
        """)
    result = run(tmp_path, text, small)
    assert found(result, "no-match") == [("warning", 17, 3)]


def test_shadowed_rule(tmp_path, small):
    text = BASE + EMBED.replace('"cpu"', '"cuda:0"')  # the same name again, later
    result = run(tmp_path, text, small)
    assert found(result, "shadowed") == [("warning", 17, 3)]
    assert "line 1" in next(f.message for f in result.findings if f.code == "shadowed")


def test_unreachable_rule_below_recursive_false(tmp_path, small):
    text = BASE + dedent("""\
        - match:
            name: "^model\\\\.layers\\\\.4\\\\.mlp\\\\.experts\\\\.0$"
          replace:
            class: "default"
            kwargs:
              generate_device: "cuda:0"
              prefill_device: "cuda:0"
        """)
    result = run(tmp_path, text, small)
    assert found(result, "unreachable") == [("warning", 17, 3)]
    assert "line 8" in next(f.message for f in result.findings if f.code == "unreachable")


def test_layers_that_lack_the_module_or_do_not_exist(tmp_path, v3):
    text = dedent("""\
        - match:
            name: "^model\\\\.layers\\\\.(0|[1-4])\\\\.mlp\\\\.experts$"
          replace:
            class: ktransformers.operators.experts.KTransformersExperts
            kwargs:
              generate_device: "cuda:0"
              generate_op: "KExpertsMarlin"
          recursive: False
        - match:
            name: "^model\\\\.layers\\\\.(6[0-9])\\\\.self_attn$"
          replace:
            class: ktransformers.operators.attention.KDeepseekV2Attention
        """) + BASE
    result = run(tmp_path, text, v3)
    assert found(result, "layer-missing") == [("warning", 1, 3)]
    # names 60-69 and reaches the last layer (60): info
    assert found(result, "layer-beyond") == [("info", 9, 3)]


def test_layer_range_that_misses_the_end_is_a_warning(tmp_path, v3):
    text = dedent("""\
        - match:
            name: "^model\\\\.layers\\\\.(5[0-9]|7[0-9])\\\\.self_attn$"
          replace:
            class: ktransformers.operators.attention.KDeepseekV2Attention
        """) + BASE
    result = run(tmp_path, text, v3)
    assert found(result, "layer-beyond") == [("warning", 1, 3)]


def test_default_device_warning_when_the_neighbours_are_elsewhere(tmp_path, v3):
    # attention of layers 30-60 on cuda:1, but nothing places their norms and kv_b_proj: they stay on cuda:0
    text = BASE + dedent("""\
        - match:
            name: "^model\\\\.layers\\\\.([3456][0-9])\\\\.self_attn$"
          replace:
            class: ktransformers.operators.attention.KDeepseekV2Attention
            kwargs:
              generate_device: "cuda:1"
              prefill_device: "cuda:1"
        """)
    result = run(tmp_path, text, v3, gpus=2)
    warned = [f for f in result.findings if f.code == "default-device" and f.severity == "warning"]
    # no Linear rule either: every attention submodule of those layers stays on cuda:0
    assert {f.message.split(" match no rule")[0].split(") ")[1] for f in warned} == {
        f"model.layers.*.self_attn.{m}" for m in ("q_a_proj", "q_a_layernorm", "q_b_proj", "kv_a_proj_with_mqa",
                                                  "kv_a_layernorm", "kv_b_proj", "o_proj")}
    assert all(f.line == 0 for f in warned)


def test_recursive_false_on_a_default_module(tmp_path, small):
    # layer 4 "on the CPU", but recursive: False gives its submodules no device: they load on cuda
    text = BASE + dedent("""\
        - match:
            name: "^model\\\\.layers\\\\.4$"
          replace:
            class: "default"
            kwargs:
              generate_device: "cpu"
              prefill_device: "cpu"
          recursive: False
        """)
    result = run(tmp_path, text, small)
    assert found(result, "unconfigured") == [("warning", 17, 3)]
    placed = {t.name: t.device for t in result.placed.checkpoint.tensors}
    assert placed["blk.4.attn_q_a.weight"] == "cuda:0"
    # the experts ModuleList of layer 4 is never replaced either: it would load expert by expert, and fail
    assert placed["blk.4.ffn_up_exps.weight[0]"] == "cuda:0"
    assert found(result, "per-expert-load") == [("error", 0, 0)]


def test_missing_generate_device(tmp_path, small):
    text = BASE + dedent("""\
        - match:
            name: "^model\\\\.norm$"
          replace:
            class: "default"
            kwargs:
              prefill_device: "cpu"
        """)
    result = run(tmp_path, text, small)
    assert found(result, "missing-generate-device") == [("error", 17, 3)]


def test_experts_left_unmatched_cannot_load_from_a_stacked_gguf(tmp_path, small):
    result = run(tmp_path, EMBED, small)
    ((severity, line, _),) = found(result, "per-expert-load")
    assert (severity, line) == ("error", 0)
    # what it would try: every expert dequantized to bf16 on cuda:0: 2 MoE layers * 3 projections *
    # 256 * 2048 * 7168 el. * 2 bytes (7,516,192,768)
    experts = sum(t.nbytes for t in result.placed.checkpoint.tensors if "_exps" in t.name)
    assert experts == 2 * 3 * 7_516_192_768
    assert sum(1 for t in result.placed.checkpoint.tensors if t.name.startswith("blk.3.ffn_up_exps.weight[")) == 256


def test_op_on_the_wrong_module(tmp_path, small):
    text = BASE + dedent("""\
        - match:
            name: "^model\\\\.layers\\\\.\\\\d+\\\\.mlp$"
          replace:
            class: ktransformers.operators.linear.KTransformersLinear
        """)
    result = run(tmp_path, text, small)
    assert found(result, "op-module-mismatch") == [("error", 17, 3)]


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


def test_fp8_linear_on_gguf(tmp_path, small):
    text = BASE + dedent("""\
        - match:
            name: "^lm_head$"
          replace:
            class: ktransformers.operators.linear.KTransformersLinear
            kwargs:
              generate_op: "KLinearFP8"
        """)
    result = run(tmp_path, text, small)
    assert found(result, "op-format") == [("error", 17, 3)]


def test_wrong_model_and_recursive_experts(tmp_path, small):
    text = dedent("""\
        - match:
            name: "^model\\\\.layers\\\\..*\\\\.mlp$"
            class: ktransformers.models.modeling_qwen2_moe.Qwen2MoeSparseMoeBlock
          replace:
            class: ktransformers.operators.experts.KQwen2MoeSparseMoeBlock
        """) + BASE.replace("  recursive: False\n", "")
    result = run(tmp_path, text, small)
    assert found(result, "wrong-model") == [("warning", 3, 12)]
    assert found(result, "recursive-experts") == [("warning", 13, 3)]


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
