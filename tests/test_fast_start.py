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
