"""The table's expression language, its schema for KV-only entries, and the KV writer (`config_metadata`).

Expected values are read off the config values in each test (the converter writes them through gguf-py's writer
unchanged), or are the documented behaviour of the language; none is copied from the program's output.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inspector.convert import config_metadata, load_table, parse_table, supported_architectures
from inspector.convert.expr import MAX_ITEMS, Expr
from inspector.errors import RulesError

from ._shared import REAL, needs_shared

TABLE = Path(__file__).resolve().parents[1] / "rules" / "hf_architectures.yaml"


# ------------------------------------------------------------------------------------------------ expressions
@pytest.mark.parametrize("text, names, value", [
    ('[t == "sliding" for t in kinds]', {"kinds": ["sliding", "full"]}, [True, False]),
    ("[i for i, t in enumerate(kinds) if t == 'full']", {"kinds": ["a", "full", "b", "full"]}, [1, 3]),
    ("[p[i % len(p)] == 'L' for i in range(5)]", {"p": "LLG"}, [True, True, False, True, True]),
    ("[k if i in idx else 0 for i in range(n)]", {"k": 8, "idx": [1], "n": 3}, [0, 8, 0]),
    ("[a * b for a in xs for b in ys]", {"xs": [1, 2], "ys": [10, 100]}, [10, 100, 20, 200]),
    ("-(d // -16)", {"d": 2560}, 160),  # ceiling division, as the Mamba converter writes dt_rank
    ("x if is_int(x) else 0", {"x": "auto"}, 0),
    ("[1, 2] + [3]", {}, [1, 2, 3]),
    ("cfg.inner.k", {"cfg": {"inner": {"k": 5}}}, 5),
])
def test_expressions(text: str, names: dict[str, Any], value: Any) -> None:
    assert Expr.parse(text, "test").value(names) == value


def test_unavailable_values_are_none_and_false() -> None:
    # a missing key in arithmetic, a bad index, or a range over the limit: "not written" / "false"
    for text in ("missing + 1", "xs[5]", f"range({MAX_ITEMS + 1})", f"[0 for i in range({MAX_ITEMS})] + xs[9]"):
        assert Expr.parse(text, "test").get({"xs": [1]}) is None
        assert Expr.parse(text, "test").holds({"xs": [1]}) is False
    long = list(range(MAX_ITEMS + 1))
    assert Expr.parse("[x for x in xs]", "test").get({"xs": long}) is None


@pytest.mark.parametrize("text, message", [
    ("xs[1:2]", "slice"),
    ("lambda: 1", "Lambda"),
    ("open('x')", "unknown function"),
    ("{x for x in xs}", "SetComp"),
    ("x.__class__.__bases__", None),  # attributes read mapping keys only: allowed, and harmless
])
def test_expressions_outside_the_language_are_rules_errors(text: str, message: str | None) -> None:
    if message is None:
        assert Expr.parse(text, "test").get({"x": 1}) is None
        return
    with pytest.raises(RulesError, match=message):
        Expr.parse(text, "test")


# ------------------------------------------------------------------------------------------------ schema
@pytest.mark.parametrize("mutation, message", [
    # a kv_only entry describes no tensor steps
    (lambda t: t.replace("  - id: jamba\n", "  - id: jamba\n    drops: [{match: x, reason: y}]\n"),
     "a kv_only entry describes no tensor steps, but has drops"),
    # an entry with tensor steps needs a tokenizer (header estimate) and an architecture gguf-py knows
    (lambda t: t.replace("    tokenizer: {family: \"'bpe'\", pre: \"'qwen2'\", chat_template_bytes: '2048'}\n\n  - id: qwen3\n",
                         "\n  - id: qwen3\n"), "missing key(s): tokenizer"),
    (lambda t: t.replace("gguf_arch: deepseek32\n    kv_only: true", "gguf_arch: deepseek32"),
     "no architecture 'deepseek32'"),
    # a second claim is allowed only after a conditional one
    (lambda t: t.replace("    when: 'num_experts_per_tok is not None'   # the class switches", "    # the class"),
     "'NemotronHForCausalLM' is already claimed by 'nemotron_h_moe'"),
    (lambda t: t.replace("generic_kv: text_model", "generic_kv: text_models"), "unknown KV set 'text_models'"),
    (lambda t: t.replace("block_count: '_n_trunk'", "block_count: '_n_trunk +'"), "invalid expression"),
])
def test_schema_of_kv_only_entries(mutation: Any, message: str) -> None:
    text = TABLE.read_text()
    mutated = mutation(text)
    assert mutated != text
    with pytest.raises(RulesError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_table(mutated, "test.yaml")


def test_when_picks_the_variant() -> None:
    # NemotronHForCausalLM: the MoE variant when num_experts_per_tok is present (NemotronHModel.__init__)
    table = load_table()
    dense = {"architectures": ["NemotronHForCausalLM"], "num_hidden_layers": 4}
    assert table.find(dense).gguf_arch == "nemotron_h"
    assert table.find(dict(dense, num_experts_per_tok=6)).gguf_arch == "nemotron_h_moe"
    # the key under llm_config counts too (load_hparams moves it to text_config)
    assert table.find(dict(dense, llm_config={"num_experts_per_tok": 6})).gguf_arch == "nemotron_h_moe"


def test_kv_only_architectures_are_listed_apart() -> None:
    view = supported_architectures()
    both = supported_architectures(kv_only=True)
    assert "JambaForCausalLM" not in view and both["JambaForCausalLM"] == "jamba"
    assert view.items() <= both.items()


# ------------------------------------------------------------------------------------------------ the KV writer
@needs_shared
def test_mixtral_config_kvs_are_its_config_values() -> None:
    config = json.loads((REAL / "Ming-999__Mixtral-8x7B-Instruct-v0.1" / "config.json").read_text())
    kvs = config_metadata(config).metadata
    assert kvs["general.architecture"] == "llama"
    expected = {
        "llama.block_count": config["num_hidden_layers"], "llama.context_length": config["max_position_embeddings"],
        "llama.embedding_length": config["hidden_size"], "llama.feed_forward_length": config["intermediate_size"],
        "llama.attention.head_count": config["num_attention_heads"],
        "llama.attention.head_count_kv": config["num_key_value_heads"],
        "llama.expert_count": config["num_local_experts"], "llama.expert_used_count": config["num_experts_per_tok"],
        "llama.vocab_size": config["vocab_size"],
        # LlamaModel: rope dims = hidden_size / heads = 4096 / 32
        "llama.rope.dimension_count": 128,
    }
    assert {k: kvs[k] for k in expected} == expected
    assert "general.file_type" not in kvs  # it depends on the tensors, which a config does not have


def test_per_layer_arrays_and_the_class_layer_count() -> None:
    # Jamba: attention every 8th layer from 4; Qwen3.5: the MTP block appended and named as nextn
    jamba = config_metadata({"architectures": ["JambaForCausalLM"], "num_hidden_layers": 16, "hidden_size": 256,
                             "num_attention_heads": 4, "num_key_value_heads": 2, "attn_layer_offset": 4,
                             "attn_layer_period": 8, "mamba_expand": 2, "intermediate_size": 512,
                             "num_experts": 4, "num_experts_per_tok": 2}).metadata
    assert jamba["jamba.attention.head_count_kv"] == [0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]
    assert jamba["jamba.ssm.inner_size"] == 512  # mamba_expand 2 × hidden 256
    qwen35 = config_metadata({"architectures": ["Qwen3_5ForCausalLM"], "num_hidden_layers": 8, "hidden_size": 256,
                              "num_attention_heads": 4, "num_key_value_heads": 1, "mtp_num_hidden_layers": 1,
                              "linear_conv_kernel_dim": 4, "linear_key_head_dim": 32, "linear_num_key_heads": 4,
                              "linear_num_value_heads": 8, "linear_value_head_dim": 32}).metadata
    assert (qwen35["qwen35.block_count"], qwen35["qwen35.nextn_predict_layers"]) == (9, 1)
    assert qwen35["qwen35.ssm.inner_size"] == 256  # 32 × 8 value heads
    assert qwen35["qwen35.rope.dimension_sections"] == [11, 11, 10, 0]  # the mixin's default


def test_an_unknown_architecture_gets_the_generic_keys_under_its_model_type() -> None:
    written = config_metadata({"architectures": ["FancyForCausalLM"], "model_type": "Fancy",
                               "num_hidden_layers": 3, "hidden_size": 96, "num_attention_heads": 3})
    assert written.spec is None and written.arch == "fancy" and written.hf_name == "FancyForCausalLM"
    assert written.metadata == {"general.architecture": "fancy", "fancy.block_count": 3,
                                "fancy.embedding_length": 96, "fancy.attention.head_count": 3}
