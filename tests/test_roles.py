"""Role rules: loading, validation errors with file:line, and classification of representative names."""
from __future__ import annotations

import pytest

from inspector.errors import RulesError
from inspector.roles import classify_names, load_rules, parse_rules

GOOD_HEADER = """version: 1
macros:
  blk: 'blk\\.(?P<layer>\\d+)'
rules:
"""


def _rules(body: str) -> str:
    return GOOD_HEADER + body


@pytest.mark.parametrize(
    "body, line, words",
    [
        ("  - {id: a, role: attention, match: '{blk}\\.attn_(q'}\n", 5, "invalid regex"),
        ("  - {id: a, role: attention, match: 'x'}\n  - {id: a, role: norm, match: 'y'}\n", 6, "duplicate rule id"),
        ("  - {id: a, role: attention, match: 'x'}\n  - {id: b, role: attention, match: 'x'}\n", 6, "duplicates rule"),
        ("  - {id: a, role: attention, match: 'x'}\n  - {id: b, role: norm, match: 'x'}\n", 6, "conflicts with"),
        ("  - {id: a, role: attention, match: 'x', devcie: cpu}\n", 5, "unknown key"),
        ("  - {id: a, role: experts, match: 'x'}\n", 5, "unknown role"),
        ("  - {id: a, role: norm, match: '{nope}'}\n", 5, "unknown macro"),
        ("  - {id: a, role: norm}\n", 5, "needs a non-empty 'match'"),
    ],
    ids=["bad-regex", "dup-id", "dup-pattern", "conflict", "unknown-key", "unknown-role", "unknown-macro", "no-match"],
)
def test_invalid_rules_name_file_and_line(body: str, line: int, words: str) -> None:
    with pytest.raises(RulesError) as e:
        parse_rules(_rules(body), "my-rules.yaml")
    assert f"my-rules.yaml:{line}:" in str(e.value)
    assert words in str(e.value)


def test_yaml_syntax_error_gives_line_and_column() -> None:
    # The flow sequence is still open when the text ends: PyYAML reports the end of stream, line 3 column 1.
    with pytest.raises(RulesError, match=r"bad\.yaml:3:1: invalid YAML"):
        parse_rules("rules:\n  - {id: a, role: [\n", "bad.yaml")


def test_unknown_top_level_key() -> None:
    with pytest.raises(RulesError, match="unknown top-level key"):
        parse_rules("rules: []\nrulez: []\n", "r.yaml")


def test_packaged_rules_load_and_have_unique_ids() -> None:
    rules = load_rules()
    ids = [r.id for r in rules.rules]
    assert len(ids) == len(set(ids)) > 20


# Representative names; each row's role is what DESIGN.md's role contract says, by hand.
CASES = [
    ("token_embd.weight", "embedding", None, None),
    ("output.weight", "output", None, None),
    ("output_norm.weight", "norm", None, None),
    ("blk.7.attn_kv_a_mqa.weight", "attention", 7, None),
    ("blk.7.attn_k_b.weight", "attention", 7, None),
    ("blk.7.attn_sinks.weight", "attention", 7, None),
    ("blk.7.ssm_conv1d.weight", "attention", 7, None),
    ("blk.7.ffn_gate_inp.weight", "router", 7, None),
    ("blk.7.exp_probs_b.bias", "router", 7, None),
    ("blk.7.ffn_up_exps.weight", "routed_experts", 7, None),
    ("blk.7.ffn_down_shexp.weight", "shared_experts", 7, None),
    ("blk.1.ffn_down.weight", "dense_ffn", 1, None),
    ("v.blk.0.attn_q.weight", "vision", None, None),
    ("mm.input_projection.weight", "vision", None, None),
    ("model.embed_tokens.weight", "embedding", None, None),
    ("lm_head.weight", "output", None, None),
    ("model.layers.3.mlp.gate.weight", "router", 3, None),
    ("model.layers.3.mlp.gate.e_score_correction_bias", "router", 3, None),
    ("model.layers.3.mlp.experts.17.down_proj.weight", "routed_experts", 3, 17),
    ("model.layers.3.mlp.experts.17.down_proj.weight_scale_inv", "routed_experts", 3, 17),  # FP8 scale
    ("model.layers.3.mlp.shared_experts.up_proj.weight", "shared_experts", 3, None),
    ("model.layers.3.self_attn.kv_a_proj_with_mqa.weight", "attention", 3, None),
    ("model.layers.3.self_attn.kv_a_layernorm.weight", "norm", 3, None),
    ("model.layers.0.mlp.experts.gate_up_proj_blocks", "routed_experts", 0, None),  # gpt-oss MXFP4
    ("model.layers.0.mlp.experts.gate_up_proj_scales", "routed_experts", 0, None),
    ("model.layers.0.mlp.router.weight", "router", 0, None),
    ("model.layers.0.self_attn.sinks", "attention", 0, None),
    ("model.layers.2.block_sparse_moe.experts.5.w2.weight", "routed_experts", 2, 5),
    ("model.layers.2.mlp.down_proj.qweight", "dense_ffn", 2, None),  # GPTQ
    ("model.layers.2.mlp.down_proj.weight.absmax", "dense_ffn", 2, None),  # bitsandbytes 4-bit
    ("model.layers.2.mlp.down_proj.SCB", "dense_ffn", 2, None),  # bitsandbytes 8-bit
    ("vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight", "vision", None, None),
    ("mtp.layers.0.mlp.experts.3.up_proj.weight", "mtp", None, None),
    ("something.unheard.of", "other", None, None),
]


@pytest.mark.parametrize("name, role, layer, expert", CASES, ids=[c[0] for c in CASES])
def test_classify(name: str, role: str, layer: int | None, expert: int | None) -> None:
    assert classify_names([name]) == [(role, layer, expert)]


def test_mtp_marker_makes_the_whole_block_mtp() -> None:
    # DeepSeek-V3's layer 61 is an ordinary-looking block plus eh_proj/enorm/hnorm: all of it is MTP.
    names = [
        "model.layers.60.self_attn.q_a_proj.weight",
        "model.layers.61.self_attn.q_a_proj.weight",
        "model.layers.61.mlp.experts.0.up_proj.weight",
        "model.layers.61.eh_proj.weight",
        "blk.92.attn_q.weight",
        "blk.92.nextn.enorm.weight",
    ]
    roles = [r for r, _, _ in classify_names(names)]
    assert roles == ["attention", "mtp", "mtp", "mtp", "mtp", "mtp"]


def test_cache_by_template_keeps_layer_and_expert_per_name() -> None:
    names = [f"model.layers.{i}.mlp.experts.{j}.up_proj.weight" for i in range(3) for j in range(4)]
    got = classify_names(names)
    assert [(layer, x) for _, layer, x in got] == [(i, j) for i in range(3) for j in range(4)]


def test_first_match_wins_even_when_names_share_a_template() -> None:
    # blk.0 and blk.5 share the digit-free template blk.#.ffn_up; a rule naming block 0 literally comes first,
    # so blk.0 is dense_ffn whichever name is classified first.
    rules = parse_rules(
        "rules:\n"
        "  - {id: a, role: dense_ffn, match: 'blk\\.(?P<layer>0)\\.ffn_up'}\n"
        "  - {id: b, role: routed_experts, match: 'blk\\.(?P<layer>\\d+)\\.ffn_up'}\n",
        "t.yaml",
    )
    assert classify_names(["blk.5.ffn_up", "blk.0.ffn_up"], rules) == [("routed_experts", 5, None),
                                                                       ("dense_ffn", 0, None)]
    assert classify_names(["blk.0.ffn_up", "blk.5.ffn_up"], rules) == [("dense_ffn", 0, None),
                                                                       ("routed_experts", 5, None)]
