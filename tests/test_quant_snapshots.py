"""llama.cpp's own expectations: for 12 real models, every file type's per-tensor choice must be reproduced.

Data: ../shared/data/llama-quant-snapshots/*.schema, verbatim copies of llama.cpp's tests/snapshots (vendored
commit 0c1e5709, 2026-10-01), which llama.cpp's tests/test-quant-type-selection.cpp checks its quantizer against.
That test builds each model from its real GGUF header (arch, block_count, head counts of layer 0, expert_count,
every tensor's ne), keeps the quantizable tensors, sorts them like the loader and asks for every file type's
choice without an imatrix; a snapshot lists the tensors whose choice differs from the default type.
The tensor lists are rebuilt in tests/_quant_models.py (model configurations or real per-tensor maps).
"""
from __future__ import annotations


import pytest

from inspector.quant import QuantOptions, predict

from ._quant_models import SNAPSHOT_MODELS, parse_snapshot, snapshot_checkpoint, snapshot_files, snapshot_model

pytestmark = pytest.mark.skipif(not snapshot_files(), reason="../shared/data/llama-quant-snapshots is absent")


def _cases() -> list[tuple[str, str]]:
    cases = []
    for path in snapshot_files():
        _, sections = parse_snapshot(path)
        cases.extend((path.stem, s.ftype) for s in sections)
    return cases


def _section(stem: str, ftype: str):
    path = next(p for p in snapshot_files() if p.stem == stem)
    header, sections = parse_snapshot(path)
    return header, next(s for s in sections if s.ftype == ftype)


def test_every_snapshot_has_a_model() -> None:
    assert {p.stem for p in snapshot_files()} == set(SNAPSHOT_MODELS)


@pytest.mark.parametrize("stem", sorted(SNAPSHOT_MODELS))
def test_rebuilt_model_matches_the_snapshot_header(stem: str) -> None:
    """The rebuilt tensor list agrees with the snapshot's header numbers and with its MXFP4_MOE section, where
    every 2-D quantizable tensor except output/token_embd is listed (Q8_0) and every 3-D one gets the default."""
    header, mxfp4 = _section(stem, "MXFP4_MOE")
    model = snapshot_model(stem)
    arch = model.arch
    assert model.kvs[f"{arch}.block_count"] == header["n_layer"]
    assert model.kvs.get(f"{arch}.expert_count", 0) == header.get("n_expert", 0)
    heads = model.kvs[f"{arch}.attention.head_count"]
    kv_heads = model.kvs[f"{arch}.attention.head_count_kv"]
    assert (heads[0] if isinstance(heads, list) else heads) == header["n_head"]
    assert (kv_heads[0] if isinstance(kv_heads, list) else kv_heads) == header["n_head_kv"]
    token_embd = dict(model.tensors).get("token_embd.weight")
    assert token_embd[0] == header["n_embd"]
    prediction = predict(snapshot_checkpoint(stem), QuantOptions("F16"))
    quantizable_2d = {n for n, c in prediction.choices.items() if c.quantizable and len(dict(model.tensors)[n]) == 2}
    assert quantizable_2d - {"output.weight", "token_embd.weight"} == (
        set(mxfp4.overrides) - {"output.weight", "token_embd.weight"})


@pytest.mark.parametrize(("stem", "ftype"), _cases())
def test_snapshot_section(stem: str, ftype: str) -> None:
    _, section = _section(stem, ftype)
    prediction = predict(snapshot_checkpoint(stem), QuantOptions(ftype))
    assert prediction.ftype is not None and prediction.ftype.default_type == section.default
    quantizable = {n: c.target for n, c in prediction.choices.items() if c.quantizable}
    missing = set(section.overrides) - set(quantizable)
    assert not missing, f"snapshot lists tensors the rebuilt model lacks: {sorted(missing)[:5]}"
    wrong = {n: (t, section.overrides.get(n, section.default)) for n, t in quantizable.items()
             if t != section.overrides.get(n, section.default)}
    assert not wrong, f"{len(wrong)} tensors differ (got, expected): {dict(list(wrong.items())[:6])}"


LEGACY_SAMPLE = ("Q2_K", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_M", "IQ2_XS", "IQ3_XXS", "IQ4_XS", "MXFP4_MOE")


@pytest.mark.parametrize("stem", sorted(SNAPSHOT_MODELS))
def test_legacy_rules_differ_only_where_documented(stem: str) -> None:
    """The Aug 2025 rules (8784689f) against today's expectations: the only differences allowed are the two the
    spec documents for these models — Q2_K/Q3_K shape fallbacks go to IQ4_NL instead of Q4_0, and attn_qkv has
    its own branch (which also shifts the attn_v counter, since attn_qkv no longer advances it)."""
    path = next(p for p in snapshot_files() if p.stem == stem)
    _, sections = parse_snapshot(path)
    checkpoint = snapshot_checkpoint(stem)
    has_qkv = any(t.name.endswith("attn_qkv.weight") for t in checkpoint.tensors)
    for section in (s for s in sections if s.ftype in LEGACY_SAMPLE):
        legacy = predict(checkpoint, QuantOptions(section.ftype, rules="legacy"))
        for name, choice in legacy.choices.items():
            expected = section.overrides.get(name, section.default)
            if not choice.quantizable or choice.target == expected:
                continue
            fallback_change = ((expected, choice.target) == ("Q4_0", "IQ4_NL")
                               and choice.fallback_from in ("Q2_K", "Q3_K"))
            qkv_change = has_qkv and name.endswith(("attn_qkv.weight", "attn_v.weight"))
            assert fallback_change or qkv_change, (section.ftype, name, expected, choice.target)
