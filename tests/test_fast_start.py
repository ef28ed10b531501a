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
