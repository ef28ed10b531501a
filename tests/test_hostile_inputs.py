"""Hostile input at scale (issue 17): every defect a fuzz run of 86,000 mutants and 47 hostile invocations found,
each with its regression test, and the bounds that keep the rest from coming back.

Each command runs in-process under an alarm (a hang fails the test instead of blocking it) and, where memory is the
point, under tracemalloc (Python's allocations; the issue's bound is 100 MB for anything refused).
"""
from __future__ import annotations

import json
import os
import struct
import time
import tracemalloc
from pathlib import Path

import pytest

from inspector import patterns
from inspector.errors import FormatError, clip, shown
from inspector.formats import parse_gguf, parse_safetensors
from inspector.formats.gguf import EAGER_SCALAR_ITEMS, MAX_EAGER_ITEMS, MAX_NESTED_ARRAYS, LazyArray
from inspector.sources.base import LocalFile
from tests._bytes import ARRAY, STRING, U8, gguf_file, kv, kv_raw, small_gguf, st_entry, st_file, tinfo
from tests._cli import no_hang

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "fixtures" / "models"
DEEPSEEK = MODELS / "deepseek-v3.1-q4_k_m.gguf"
LLAMA = MODELS / "llama-3.2-3b-f16.gguf"
KT_RULES = ROOT / "fixtures" / "ktransformers-rules" / "DeepSeek-V3-Chat.yaml"
PEAK_LIMIT = 100 << 20


def cli(args: list[str], capsys: pytest.CaptureFixture[str], *, seconds: int = 60,
        trace: bool = False) -> tuple[int, str, str, int]:
    """Exit code, stdout, stderr and (with `trace`) the peak of Python allocations of one command."""
    from inspector.cli import main

    if trace:
        tracemalloc.start()
    try:
        with no_hang(seconds), pytest.raises(SystemExit) as e:
            main(args)
    finally:
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        if trace:
            tracemalloc.stop()
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err, peak


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if not line.startswith(("Warning: ", "Note: "))]
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


# ==================================================================================================================
# catastrophic regexes: bounded, and the pattern at fault named with where it came from
# ==================================================================================================================
EVIL = r"([a-z0-9_.]+)+!$"  # the issue's pattern: over 60 s with Python's re on every tensor name
EXPONENTIAL = r"(.|\w|\w)+\d$"  # ~3^n ways to fail on a name of n word characters ending in a letter


def kt_rule(name: str) -> str:
    return (f'- match:\n    name: "{name}"\n  replace:\n    class: "default"\n    kwargs:\n'
            '      generate_device: "cpu"\n      prefill_device: "cpu"\n')


def test_issue_pattern_no_longer_hangs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "evil.yaml"
    rules.write_text(kt_rule(EVIL.replace("\\", "\\\\")))
    for args in (["validate", str(rules), str(DEEPSEEK)],
                 ["inspect", str(LLAMA), "-ot", f"{EVIL}=CPU"],
                 ["inspect", str(LLAMA), "--quant", "Q4_K_M", "--tensor-type", f"{EVIL}=q8_0"]):
        start = time.perf_counter()
        code, _, err, _ = cli(args, capsys, seconds=60)
        assert code in (0, 3), err  # it matches nothing: the command runs to its end
        assert time.perf_counter() - start < 30


@pytest.fixture
def short_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patterns, "GUARD_SECONDS_PER_NAME", 0.05)


def test_ot_pattern_stopped(short_guard: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err, _ = cli(["inspect", str(LLAMA), "-ot", f"{EXPONENTIAL}=CPU"], capsys)
    line = error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"Error: -ot {EXPONENTIAL}=CPU: regex '{EXPONENTIAL}' was stopped after 0.05 s on the ")


def test_tensor_type_and_file_patterns_stopped(short_guard: None, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err, _ = cli(["inspect", str(LLAMA), "--quant", "Q4_K_M", "--tensor-type", f"{EXPONENTIAL}=q8_0"], capsys)
    assert code == 2 and "was stopped after 0.05 s" in error_line(err) and EXPONENTIAL in err
    listing = tmp_path / "types.txt"
    listing.write_text(f"attn_v=q8_0\n{EXPONENTIAL}=q6_k\n")
    code, _, err, _ = cli(["inspect", str(LLAMA), "--quant", "Q4_K_M", "--tensor-type-file", str(listing)], capsys)
    line = error_line(err)
    assert code == 2 and f"{listing}:2: regex '{EXPONENTIAL}' was stopped" in line


def test_rule_file_patterns_stopped_at_their_line(short_guard: None, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(kt_rule("^model\\\\.embed_tokens$") + kt_rule(EXPONENTIAL.replace("\\", "\\\\")))
    code, _, err, _ = cli(["validate", str(rules), str(DEEPSEEK)], capsys)
    # the name is on line 9 (rule 2 starts on line 8), its value in column 11
    assert code == 1 and error_line(err).startswith(f"Error: {rules}:9:11: regex '{EXPONENTIAL}' was stopped")
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"version: 1\nrules:\n  - {{role: embedding, device: cpu}}\n"
                    f"  - {{name: '{EXPONENTIAL}', device: cpu}}\n")
    code, _, err, _ = cli(["inspect", str(LLAMA), "--placement", str(plan)], capsys)
    assert code == 1 and error_line(err).startswith(f"Error: {plan}:4:12: regex '{EXPONENTIAL}' was stopped")


def test_patterns_too_large_to_compile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err, peak = cli(["inspect", str(LLAMA), "-ot", "(?:a{1000}){1000}=CPU"], capsys, trace=True)
    assert code == 2 and "more than 10,000" in error_line(err) and peak < PEAK_LIMIT
    rules = tmp_path / "long.yaml"
    rules.write_text(kt_rule("x" * 5000))
    code, out, _, _ = cli(["validate", str(rules), str(DEEPSEEK), "--format", "json"], capsys)
    found = json.loads(out)["findings"]
    assert code == 3 and any(f["code"] == "invalid-regex" and "5,000 characters" in f["message"] for f in found)


# ==================================================================================================================
# YAML from users: alias bombs, huge lists, deep nesting, too many rules
# ==================================================================================================================
BOMB = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
               for p, c in zip(["", *"abcdefgh"], "abcdefghi"))


@pytest.mark.parametrize(("name", "text", "where"), [
    ("bomb", BOMB + "rules: []\n", "expands to more than 500,000 nodes"),  # 9^9 = 387 million items expanded
    ("list", "- 1\n" * 1_000_000, "more than 50,000 nodes"),
    ("rules", "- {match: {name: x}, replace: {class: default}}\n" * 200_000, "more than 50,000 nodes"),
    ("block", "- " * 100_000 + "x\n", "nests deeper than 64 levels"),
    ("flow", "{a: " * 100_000 + "1" + "}" * 100_000 + "\n", "nests deeper than 64 levels"),
])
def test_yaml_limits(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, where: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    for args in (["validate", str(path), str(LLAMA)], ["inspect", str(LLAMA), "--placement", str(path)]):
        start = time.perf_counter()
        code, out, err, peak = cli(args, capsys, trace=True)
        line = error_line(err)
        assert code == 1 and out == "" and where in line and f"{path}:" in line, line
        assert peak < PEAK_LIMIT and time.perf_counter() - start < 20


def test_rule_count_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kt = tmp_path / "kt.yaml"
    kt.write_text(kt_rule("^model\\\\.norm$") * 1001)
    code, out, _, _ = cli(["validate", str(kt), str(DEEPSEEK), "--format", "json"], capsys)
    (finding,) = json.loads(out)["findings"]
    # rule 1,001 starts on line 7,001 (seven lines a rule)
    assert code == 3 and finding["code"] == "too-many-rules" and finding["line"] == 7001
    plan = tmp_path / "plan.yaml"
    plan.write_text("version: 1\nrules:\n" + "  - {role: norm, device: cpu}\n" * 1001)
    code, _, err, _ = cli(["inspect", str(LLAMA), "--placement", str(plan)], capsys)
    assert code == 1 and "1,001 rules, more than the 1,000" in error_line(err) and f"{plan}:1003:5" in err


def test_rule_handling_is_linear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Names searched per rule stay the same from 20 to 80 rules (a quadratic step would grow with the count)."""
    evaluated = [0]
    search, select = patterns.UserPattern.search, patterns.UserPattern.select

    def counting_search(self: patterns.UserPattern, name: str) -> bool:
        evaluated[0] += 1
        return search(self, name)

    def counting_select(self: patterns.UserPattern, names: object) -> list[int]:
        names = list(names)  # type: ignore[call-overload]
        evaluated[0] += len(names)
        return select(self, names)

    monkeypatch.setattr(patterns.UserPattern, "search", counting_search)
    monkeypatch.setattr(patterns.UserPattern, "select", counting_select)
    per_rule = []
    for n in (20, 80):
        rules = tmp_path / f"r{n}.yaml"
        rules.write_text("".join(kt_rule(f"^model\\\\.layers\\\\.{i}\\\\.mlp\\\\.experts$") for i in range(n)))
        evaluated[0] = 0
        code, _, err, _ = cli(["validate", str(rules), str(DEEPSEEK)], capsys)
        assert code in (0, 3), err
        per_rule.append(evaluated[0] / n)
    assert per_rule[1] <= per_rule[0] * 1.05, per_rule


# ==================================================================================================================
# user files: only regular files, capped in size
# ==================================================================================================================
def test_dev_zero_and_friends_as_user_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate((16 << 20) + 1)
    notutf8 = tmp_path / "latin1.yaml"
    notutf8.write_bytes(b"rules: [\xe9]\n")
    cases = [
        (["validate", "/dev/zero", str(LLAMA)], 1, "it is a device, not a regular file"),
        (["inspect", str(LLAMA), "--placement", "/dev/zero"], 1, "it is a device, not a regular file"),
        (["inspect", str(LLAMA), "--quant", "Q4_K_M", "--tensor-type-file", "/dev/zero"], 2, "it is a device"),
        (["inspect", str(LLAMA), "--tensor-type-file", "/dev/zero"], 1, "it is a device"),  # a recipe
        (["validate", str(tmp_path), str(LLAMA)], 2, "is a directory"),  # click's own check (dir_okay=False)
        (["inspect", str(LLAMA), "--placement", str(tmp_path)], 2, "is a directory"),
        (["validate", str(big), str(LLAMA)], 1, "16,777,217 bytes, more than the 16,777,216"),
        (["validate", str(notutf8), str(LLAMA)], 1, "not UTF-8 text (byte 8 is 0xe9)"),
        (["validate", str(tmp_path / "missing.yaml"), str(LLAMA)], 1, "No such file or directory"),
    ]
    for args, want_code, words in cases:
        code, _, err, peak = cli(args, capsys, seconds=20, trace=True)
        assert code == want_code and words in err, (args, err)
        assert peak < PEAK_LIMIT


def test_fifo_as_placement_file_does_not_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "rules.yaml"
    os.mkfifo(fifo)
    code, _, err, _ = cli(["validate", str(fifo), str(LLAMA)], capsys, seconds=20)
    assert code == 1 and "it is a FIFO (named pipe), not a regular file" in error_line(err)


# ==================================================================================================================
# --emit-yaml: typed errors naming the file
# ==================================================================================================================
FIT = ["fit", str(DEEPSEEK), "--budget", "cuda:0=24GiB", "--budget", "cpu=512GiB"]


@pytest.mark.parametrize(("target", "words"), [
    ("/dev/full", "cannot write /dev/full: No space left on device; free some space or write elsewhere"),
    ("{tmp}/no/such/rules.yaml", "cannot write {tmp}/no/such/rules.yaml: the folder {tmp}/no/such does not exist"),
    ("{tmp}/afile/rules.yaml", "cannot write {tmp}/afile/rules.yaml: Not a directory"),
])
def test_emit_yaml_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, words: str) -> None:
    if target == "/dev/full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    (tmp_path / "afile").write_text("x")
    code, _, err, _ = cli(FIT + ["--emit-yaml", target.format(tmp=tmp_path)], capsys)
    assert code == 1 and error_line(err).startswith("Error: " + words.format(tmp=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing half-written left behind


def test_emit_yaml_writes_the_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "rules.yaml"
    code, _, err, _ = cli(FIT + ["--emit-yaml", str(target)], capsys)
    assert code == 0 and f"wrote {target}" in err
    code, _, err, _ = cli(["validate", str(target), str(DEEPSEEK)], capsys)
    assert code == 0, err


# ==================================================================================================================
# headers: repeated keys, numbers too long to print, bounded eager building
# ==================================================================================================================
def st_path(tmp_path: Path, raw: str | bytes, data_len: int = 0) -> LocalFile:
    path = tmp_path / "m.safetensors"
    path.write_bytes(st_file(raw, data_len))
    return LocalFile(path)


@pytest.mark.parametrize("second", [
    '{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}',  # the same entry twice: the library loads it
    '{"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}',  # another entry: the library fails on its offsets
])
def test_safetensors_name_given_twice(tmp_path: Path, second: str) -> None:
    raw = '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": ' + second + "}"
    with pytest.raises(FormatError, match=r"header JSON has the key 'a' twice in one object"):
        parse_safetensors(st_path(tmp_path, raw, 8))


def test_safetensors_key_given_twice_inside_an_entry(tmp_path: Path) -> None:
    raw = '{"a": {"dtype": "F32", "dtype": "F16", "shape": [1], "data_offsets": [0, 4]}}'
    with pytest.raises(FormatError, match=r"has the key 'dtype' twice"):
        parse_safetensors(st_path(tmp_path, raw, 4))


def test_safetensors_product_past_printing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 64 dimensions of 2^64 - 1: the product has 1,233 digits; the check stops at the second dimension
    header = {"a": st_entry("F32", [2**64 - 1] * 64, 0, 4)}
    path = tmp_path / "m.safetensors"
    path.write_bytes(st_file(header, 4))
    code, _, err, _ = cli(["inspect", str(path)], capsys)
    line = error_line(err)
    assert code == 1 and "claims more than 1,125,899,906,842,624 elements" in line and len(line) < 700
    # a dimension beyond u64 (the library's usize) is refused as such, before any product
    header = {"a": st_entry("F32", [2**64, 0], 0, 0)}
    with pytest.raises(FormatError, match="integers from 0 to 2\\^64-1"):
        parse_safetensors(st_path(tmp_path, json.dumps(header)))


def test_gguf_eager_budget(tmp_path: Path) -> None:
    """Arrays of at most EAGER_SCALAR_ITEMS items are built as lists until MAX_EAGER_ITEMS items were built."""
    per = EAGER_SCALAR_ITEMS  # 65,536 u8 each
    arrays = MAX_EAGER_ITEMS // per + 4  # 16 fit the budget, 4 more do not
    kvs = [kv("general.architecture", STRING, "llama")] + [kv(f"x.{i}", ARRAY, (U8, [0] * per)) for i in range(arrays)]
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_file(kvs, [tinfo("token_embd.weight", (8, 4), 0, 0)], 128))
    header = parse_gguf(LocalFile(path))
    kinds = [type(header.metadata[f"x.{i}"]).__name__ for i in range(arrays)]
    assert kinds == ["list"] * 16 + ["LazyArray"] * 4
    assert header.metadata["x.19"] == LazyArray("u8", per, header.metadata["x.19"].offset, per)


def test_gguf_nested_arrays_are_walked_and_capped(tmp_path: Path) -> None:
    """ggml's reader refuses arrays of arrays; ours walks up to MAX_NESTED_ARRAYS of them without building them."""
    path = tmp_path / "m.gguf"

    def write(count: int) -> None:
        payload = struct.pack("<IQ", ARRAY, count) + struct.pack("<IQ", U8, 0) * count  # count empty u8 arrays
        path.write_bytes(gguf_file([kv_raw("x.nested", ARRAY, payload)], [tinfo("a.weight", (8,), 0, 0)], 32))

    write(MAX_NESTED_ARRAYS)
    tracemalloc.start()
    try:
        header = parse_gguf(LocalFile(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the array's items start after: preamble 24, key (8 + 8), value type 4, outer array header 12
    assert header.metadata["x.nested"] == LazyArray("array", MAX_NESTED_ARRAYS, 24 + 16 + 4 + 12,
                                                    12 * MAX_NESTED_ARRAYS)
    assert peak < 5 << 20
    write(MAX_NESTED_ARRAYS + 1)
    with pytest.raises(FormatError, match="more than 65,536 arrays inside arrays"):
        parse_gguf(LocalFile(path))


def test_messages_clip_what_files_hold() -> None:
    assert clip("x" * 50, 100) == "x" * 50
    cut = clip("a" * 3000 + "b" * 3000, 1000)
    assert cut.startswith("a" * 480) and cut.endswith("b" * 480) and "5,040 characters" in cut
    assert shown(10**5000) == "an integer of about 5,001 digits"
    assert shown("k" * 500).endswith("k'") and len(shown("k" * 500)) < 130


def test_hundred_gb_string_and_a_trillion_tensors_fail_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 10**12, 1) + small_gguf()[24:])
    code, _, err, peak = cli(["inspect", str(path)], capsys, seconds=10, trace=True)
    assert code == 1 and "1,000,000,000,000 tensors" in error_line(err) and peak < 10 << 20
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 20) + b"general.architecture"
                     + struct.pack("<IQ", STRING, 100 << 30) + b"llama")
    code, _, err, peak = cli(["inspect", str(path)], capsys, seconds=10, trace=True)
    assert code == 1 and "107,374,182,400" in error_line(err) and peak < 10 << 20


# ==================================================================================================================
# counts from the command line and from tensor shapes, bounded by what the model has
# ==================================================================================================================
def test_n_cpu_moe_beyond_the_blocks(capsys: pytest.CaptureFixture[str]) -> None:
    """--n-cpu-moe N builds one pattern per block index below N that a tensor name carries, not N patterns."""
    devices = []
    for n in ("1000000000", "61"):  # DeepSeek-V3 has blocks 0-60: both put every routed expert on the CPU
        start = time.perf_counter()
        code, out, err, _ = cli(["inspect", str(DEEPSEEK), "--n-cpu-moe", n, "--format", "json"], capsys, seconds=30)
        assert code == 0, err
        assert time.perf_counter() - start < 15
        devices.append(json.loads(out)["devices"])
    assert devices[0] == devices[1]


def test_stacked_expert_count_is_bounded() -> None:
    from inspector.api import load
    from inspector.runtimes.ktransformers.data import kt_data
    from inspector.runtimes.ktransformers.tree import MAX_EXPERTS, build_tree

    checkpoint = load(str(DEEPSEEK))
    name = "blk.3.ffn_gate_exps.weight"
    tensors = tuple(t.with_(shape=t.shape[:2] + (10**9,)) if t.name == name else t for t in checkpoint.tensors)
    with pytest.raises(FormatError, match=f"{name}: stacks 1,000,000,000 experts") as info:
        build_tree(checkpoint.with_(tensors=tensors), kt_data()).walk_all()
    assert f"{MAX_EXPERTS:,}" in str(info.value)
