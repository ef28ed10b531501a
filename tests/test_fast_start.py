"""Start-up structure (docs/performance.md, "Local"): tables ckpt-size carries as data equal the libraries they
come from, and the common commands do not import the heavy libraries (numpy via gguf, yaml, huggingface_hub,
tabulate, httpx) that only some paths need. No timings here: bench/bench_local.py measures them."""
from __future__ import annotations

import gguf

from inspector.quant.ftypes import FTYPES

# llama.h added LLAMA_FTYPE_MOSTLY_Q2_0 = 41 in July 2026; gguf 0.19.0's LlamaFileType stops at Q1_0 = 40.
_NOT_IN_GGUF = {"Q2_0": 41}


def test_ftype_ids_are_gguf_pys() -> None:
    for name, info in FTYPES.items():
        if info.ftype is None:  # COPY keeps the input's file type
            assert name == "COPY"
            continue
        member = "ALL_F32" if name == "F32" else f"MOSTLY_{name}"
        if name in _NOT_IN_GGUF and member not in gguf.LlamaFileType.__members__:
            assert info.ftype == _NOT_IN_GGUF[name]
            continue
        assert info.ftype == int(gguf.LlamaFileType[member]), name


def test_names_of_one_template_keep_first_match_wins() -> None:
    """Names are classified once per digit-free template (blk.#.ffn_up), but a digit-sensitive rule before the
    template's winner still decides the names it matches, and layer numbers come from each name's own digits."""
    from inspector.roles import classify_names, parse_rules

    rules = parse_rules(r"""
strip_suffixes: ['\.weight']
rules:
  - {id: odd-one, role: norm, match: 'blk\.1\d\.ffn_up'}
  - {id: ffn, role: dense_ffn, match: 'blk\.(?P<layer>\d+)\.ffn_up'}
  - {id: qwen2, role: vision, match: 'qwen2_(?P<layer>\d+)'}
""", "test.yaml")
    names = ["blk.0.ffn_up.weight", "blk.12.ffn_up.weight", "blk.7.ffn_up.weight", "blk.1.ffn_up.weight",
             "qwen2_5", "qwen3_5"]
    assert classify_names(names, rules) == [("dense_ffn", 0, None), ("norm", None, None), ("dense_ffn", 7, None),
                                            ("dense_ffn", 1, None), ("vision", 5, None), ("other", None, None)]


def test_compiled_role_rules_are_the_yaml() -> None:
    """`ckpt-size` reads rules/roles.json at start; it must be rules/roles.yaml compiled (ids, roles, expanded regexes,
    lines, suffixes). After editing the YAML: python tools/compile_rules.py"""
    from inspector.datafiles import read_packaged
    from inspector.roles import COMPILED, PACKAGED, load_rules, parse_rules, rules_from_json, rules_to_json

    from_yaml = parse_rules(read_packaged(PACKAGED), f"rules/{PACKAGED}")
    assert rules_from_json(read_packaged(COMPILED)) == from_yaml, "run: python tools/compile_rules.py"
    assert read_packaged(COMPILED) == rules_to_json(from_yaml), "run: python tools/compile_rules.py"
    assert load_rules() == from_yaml


def test_text_tables_are_tabulates() -> None:
    """report/grid.py prints the common tables without tabulate: the same text as tabulate, for the cases it
    takes (and it hands the others to tabulate)."""
    import random

    from tabulate import tabulate

    from inspector.report.grid import _alignment, table

    words = ["", "a", "Q4_K", "72.3%", "170.00 MiB", "1", "12", "3.5", " pad ", "x y", "nan", "-", "…", "é", "1e5",
             "0x1f", "True", 0, 72, -3, 1.5, None, True]
    texts = [w for w in words[1:] if isinstance(w, str)]
    rng = random.Random(16)
    taken = 0
    for _ in range(3000):
        columns = rng.randint(1, 5)
        rows = [[rng.choice(words) for _ in range(columns)] for _ in range(rng.randint(0, 4))]
        fmt = rng.choice(["plain", "simple", "github"])
        with_headers = fmt != "plain" and rng.random() < 0.7
        headers = [rng.choice(texts) for _ in range(columns)] if with_headers else []
        numparse_off = rng.random() < 0.5
        expected = tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=numparse_off)
        assert table(rows, headers, fmt, numparse_off) == expected, (rows, headers, fmt, numparse_off)
        taken += _alignment(rows, headers, fmt, numparse_off) is not None
    assert taken > 150  # the fast path was exercised, not only the hand-over


HEAVY = ("numpy", "gguf", "yaml", "huggingface_hub", "tabulate", "httpx")
_PROBE = """
import sys
from inspector.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write("\\nLOADED " + " ".join(m for m in {heavy!r} if m in sys.modules) + "\\n")
"""


def _heavy_modules_loaded(*args: str) -> list[str]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True,
                          timeout=120)
    last = done.stderr.rstrip().rsplit("\n", 1)[-1]
    assert last.startswith("LOADED"), done.stderr
    return last.split()[1:]


def test_import_and_help_load_no_heavy_library() -> None:
    assert _heavy_modules_loaded("--help") == []
    assert _heavy_modules_loaded("inspect", "--help") == []


def test_plain_inspect_of_a_gguf_loads_no_heavy_library(tmp_path) -> None:
    """`inspect FILE.gguf` (table, JSON, by layer) reads the header, gives roles, places and prints with none of
    numpy, gguf, yaml, huggingface_hub, tabulate or httpx (docs/performance.md, "Local")."""
    from fixtures.generate import write_gguf

    path = str(write_gguf(tmp_path / "m.gguf", "qwen3-moe", tensor_type="Q4_K", n_layers=2))
    assert _heavy_modules_loaded("inspect", path) == []
    assert _heavy_modules_loaded("inspect", path, "--format", "json") == []
    assert _heavy_modules_loaded("inspect", path, "--by", "layer", "--experts-on", "cpu") == []


def test_a_digit_sensitive_rule_with_a_backreference_still_decides_first() -> None:
    """The guard joins the digit-sensitive rules into one regex; a rule with a backreference cannot be joined (its
    group numbers would change), so names of that layout are matched one by one: still first match wins."""
    from inspector.roles import classify_names, parse_rules

    rules = parse_rules(r"""
rules:
  - {id: other-first, role: vision, match: '(x)1y'}
  - {id: twins, role: norm, match: 'blk\.(\d)\1\.w'}
  - {id: ffn, role: dense_ffn, match: 'blk\.(?P<layer>\d+)\.w'}
""", "test.yaml")
    names = ["blk.12.w", "blk.33.w", "blk.34.w", "blk.77.w"]
    assert classify_names(names, rules) == [("dense_ffn", 12, None), ("norm", None, None),
                                            ("dense_ffn", 34, None), ("norm", None, None)]
    # a backreference compares digit values: `blk.3.3` and `blk.3.4` share a layout but not a rule
    rules = parse_rules(r"""
rules:
  - {id: same, role: norm, match: 'blk\.(\d+)\.\1'}
  - {id: any, role: dense_ffn, match: 'blk\.(?P<layer>\d+)\.\d+'}
""", "test.yaml")
    assert classify_names(["blk.3.4", "blk.3.3"], rules) == [("dense_ffn", 3, None), ("norm", None, None)]
