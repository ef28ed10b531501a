"""User regexes (issue 17 #3): compiled with size checks, matched with a bound on backtracking or a time limit, and
the pattern at fault named. The bounds below are derived by hand from the rules in inspector/patterns.py."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector import patterns
from inspector.errors import RulesError, UsageError
from inspector.patterns import PatternProblem, PatternSet, compile_pattern, try_compile

ROOT = Path(__file__).resolve().parents[1]
KT_RULES = sorted((ROOT / "fixtures" / "ktransformers-rules").glob("*.yaml"))


@pytest.mark.parametrize(("pattern", "n", "paths"), [
    (r"^abc", 10, 1),  # anchored: one start, no choices
    (r"abc", 10, 11),  # unanchored: n + 1 starts
    (r"a*", 10, 11 * 11),  # 11 starts x counts 0..10
    (r"(ab|cd)x", 10, 11 * 2),  # two alternatives
    (r"(?:ab)+", 6, 7 * 3),  # the body matches one way and takes 2 characters: counts 1..3
    (r"(a+)+", 4, 5 * (4 + 16 + 64 + 256)),  # body: 4 ways (counts 1..4); outer: 1..4 iterations of 4 ways each
    (r"^x{2,5}", 3, 2),  # at most 3 characters: counts 2..3
    (r"^(?:a|b|c)", 9, 1),  # sre turns single-character alternatives into a class: no choice
])
def test_paths_bound_by_hand(pattern: str, n: int, paths: int) -> None:
    assert compile_pattern(pattern, "t").paths(n) == paths


def test_common_patterns_take_the_fast_path() -> None:
    real = [r"blk\.(1[6-9]|[2-3][0-9])\.ffn_.*_exps\.=CPU", r"exps", r"^model\.layers\.([3456][0-9])\.",
            r"^model\.layers\..*\.mlp\.experts$", r"\.ffn_(up|down|gate)_exps", r"attn_v"]
    for text in real:
        p = compile_pattern(text, "t")
        assert p.paths(200) <= patterns.FAST_PATHS, text  # names of 200 characters, twice the longest real ones
        assert p.search("blk.20.ffn_up_exps.weight") == (re.search(text, "blk.20.ffn_up_exps.weight") is not None)
        assert p._guarded is None


def test_many_unbounded_repeats_are_guarded_and_agree_with_re() -> None:
    p = compile_pattern(r".*a.*b.*c", "t")
    assert p.paths(40) == 41 ** 4 > patterns.FAST_PATHS  # starts x three .* with 41 counts each
    names = ["x" * 36 + "abc", "c" * 40, "a" * 20 + "b" * 19 + "c", "abc" + "z" * 37]
    assert [p.search(n) for n in names] == [re.search(r".*a.*b.*c", n) is not None for n in names]
    assert p._guarded is not None  # the `regex` engine with a time limit ran


def test_catastrophic_pattern_is_stopped_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patterns, "GUARD_SECONDS_PER_NAME", 0.05)
    p = compile_pattern(r"(a|aa)+$", "-ot '(a|aa)+$=CPU'")
    start = time.perf_counter()
    with pytest.raises(UsageError) as info:
        p.search("a" * 60 + "!")  # ~2^60 ways to split the a's
    assert time.perf_counter() - start < 5
    text = str(info.value)
    assert text.startswith("-ot '(a|aa)+$=CPU': regex '(a|aa)+$' was stopped after 0.05 s on the 61-character")
    assert "(a+)+ or (a|aa)*" in text  # the hint names the construct


def test_time_budget_in_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patterns, "GUARD_SECONDS_PER_NAME", 0.05)
    monkeypatch.setattr(patterns, "GUARD_SECONDS_TOTAL", 0.0)
    p = compile_pattern(r".*a.*b.*c", "rules.yaml:3:11", error=RulesError)
    with pytest.raises(RulesError, match=r"rules.yaml:3:11: regex '\.\*a\.\*b\.\*c' was stopped after 0 s in all"):
        p.search("x" * 60)


@pytest.mark.parametrize(("pattern", "words", "position"), [
    ("x" * 4097, ["4,097 characters", "4,096 allowed"], None),
    ("(?:a{1000}){1000}", ["more than 10,000"], None),
    ("a{99999999999}", ["too large"], None),
    ("(" * 1500 + ")" * 1500, ["nests groups too deeply"], None),
    ("ffn_(up", ["invalid regex 'ffn_(up'", "missing )"], 4),
    ("[4-10]", ["bad character range 4-1"], 1),
])
def test_refused_before_matching(pattern: str, words: list[str], position: int | None) -> None:
    problem = try_compile(pattern, "w")
    assert isinstance(problem, PatternProblem) and problem.position == position
    for word in words:
        assert word in problem.message
    with pytest.raises(UsageError) as info:
        compile_pattern(pattern, "--tensor-type x")
    assert str(info.value).startswith("--tensor-type x: ") and len(str(info.value)) < 400


# ---- PatternSet: one search per name says whether any member matches --------------------------------------------
PIECES = ["a", "b", ".", r"\.", "a*", "b+", "(a|b)", "(ab|ba)", "[ab]", "x?", r"\d", "(?=a)", "(?!b)"]
pattern_text = st.builds(lambda anchor, parts, end: anchor + "".join(parts) + end,
                         st.sampled_from(["", "^", r"\A"]), st.lists(st.sampled_from(PIECES), min_size=1, max_size=4),
                         st.sampled_from(["", "$", r"\Z"]))
odd = st.sampled_from([r"(a)\1", r"(?P<n>b)a", r"(?i)AB", r"(?m)^b", r"(?s).a"])


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(texts=st.lists(pattern_text | odd, min_size=1, max_size=6),
       names=st.lists(st.text("ab.1\nx", max_size=8), min_size=1, max_size=8))
def test_pattern_set_selects_what_any_member_matches(texts: list[str], names: list[str]) -> None:
    members = [compile_pattern(t, "t") for t in texts]
    expected = [i for i, n in enumerate(names) if any(re.search(t, n) for t in texts)]
    assert PatternSet(members).select(names) == expected


# ---- the guarded engine means what re means --------------------------------------------------------------------
def test_guarded_engine_agrees_with_re_on_real_rule_files(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from inspector.runtimes.ktransformers.data import kt_data
    from inspector.runtimes.ktransformers.tree import build_tree
    from inspector.api import load

    texts = set()
    for path in KT_RULES:
        for rule in yaml.safe_load(path.read_text()):
            name = (rule.get("match") or {}).get("name")
            if name:
                texts.add(name)
    assert len(texts) >= 15
    checkpoint = load(str(ROOT / "fixtures" / "models" / "deepseek-v3.1-q4_k_m.gguf"))
    paths = [m.path for m in build_tree(checkpoint, kt_data()).walk_all()][:5000]
    monkeypatch.setattr(patterns, "FAST_PATHS", -1)  # every name through the `regex` engine
    for text in sorted(texts):
        guarded = compile_pattern(text, "t")
        assert guarded.select(paths) == [i for i, p in enumerate(paths) if re.search(text, p)], text
        assert guarded._guarded is not None
