"""Names of one layout (digits at the same places) share a classification unless a rule can tell their digit
values apart: a literal digit or a backreference can, `\\d` cannot (it takes the ten digits alike)."""
from __future__ import annotations

from inspector.roles import _Classifier, classify_names, load_rules, parse_rules


def one_by_one(names: list[str], rules) -> list[tuple[str, int | None, int | None]]:
    """Each name matched against every rule on its own (no layout cache): the reference."""
    classifier = _Classifier(rules)
    return [classifier._match(n) for n in names]


def test_a_single_digit_class_is_not_digit_sensitive() -> None:
    rules = parse_rules(r"""
rules:
  - {id: ln, role: norm, match: 'h\.(?P<layer>\d+)\.ln_\d'}
  - {id: two, role: vision, match: 'v\.\d\d\.x'}
  - {id: lit, role: router, match: 'h\.(?P<layer>\d+)\.ln_7'}
""", "test.yaml")
    assert [r.digit_sensitive for r in rules.rules] == [False, False, True]
    names = ["h.0.ln_1", "h.11.ln_2", "h.3.ln_7", "v.12.x", "v.1.x", "v.123.x"]
    expected = [("norm", 0, None), ("norm", 11, None), ("norm", 3, None),
                ("vision", None, None), ("other", None, None), ("other", None, None)]
    assert classify_names(names, rules) == expected == one_by_one(names, rules)


def test_a_literal_digit_after_a_digit_class_still_decides_first() -> None:
    rules = parse_rules(r"""
rules:
  - {id: seven, role: router, match: 'h\.(?P<layer>\d+)\.ln_7'}
  - {id: ln, role: norm, match: 'h\.(?P<layer>\d+)\.ln_\d'}
""", "test.yaml")
    names = ["h.0.ln_1", "h.0.ln_7", "h.5.ln_2", "h.5.ln_7"]
    expected = [("norm", 0, None), ("router", 0, None), ("norm", 5, None), ("router", 5, None)]
    assert classify_names(names, rules) == expected == one_by_one(names, rules)


def test_packaged_rules_by_layout_agree_with_one_by_one() -> None:
    # DeepSeek-V3 / GPT-2 / Qwen2-VL names: blocks with one and two digits, experts, ln_1 / ln_2, a vision tower
    names = ([f"model.layers.{i}.mlp.experts.{j}.down_proj.weight" for i in (3, 12) for j in (0, 7, 255)]
             + [f"model.layers.{i}.{n}.weight" for i in (0, 9, 61) for n in ("input_layernorm", "mlp.gate_proj",
                                                                            "self_attn.kv_a_layernorm", "mlp.gate")]
             + [f"h.{i}.ln_{k}.weight" for i in (0, 11) for k in (1, 2)] + ["h.0.mlp.c_fc.weight"]
             + ["visual.blocks.0.norm1.weight", "model.embed_tokens.weight", "lm_head.weight",
                "model.layers.61.eh_proj.weight", "model.norm.weight"])
    rules = load_rules()
    assert classify_names(names, rules) == one_by_one_promoted(names, rules)
    got = dict(zip(names, classify_names(names, rules)))
    assert got["h.11.ln_2.weight"] == ("norm", 11, None)
    assert got["model.layers.12.mlp.experts.255.down_proj.weight"] == ("routed_experts", 12, 255)


def one_by_one_promoted(names: list[str], rules) -> list[tuple[str, int | None, int | None]]:
    from inspector.roles import _promote_mtp_layers
    return _promote_mtp_layers(one_by_one(names, rules))
