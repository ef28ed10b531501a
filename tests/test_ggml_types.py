"""The ggml type table ckpt-size carries as data equals gguf-py's (the reference), but for the corrections it
documents (Q8_1's block size, Q2_0 which gguf 0.19.0 lacks)."""
from __future__ import annotations

import gguf

from inspector.formats.ggml_table import GGML_TYPES
from inspector.formats.ggml_types import type_by_id, type_by_name


def test_the_table_is_gguf_pys() -> None:
    reference = {(t.value, t.name): tuple(gguf.GGML_QUANT_SIZES[t]) for t in gguf.GGMLQuantizationType
                 if t in gguf.GGML_QUANT_SIZES}
    assert {(i, n): (b, s) for i, n, b, s in GGML_TYPES} == reference


def test_the_corrections_apply() -> None:
    # ggml-common.h: block_q8_1 = {ggml_half d, s; int8_t qs[32]} = 36 bytes; block_q2_0 = {ggml_half d; qs[16]}
    assert (type_by_id(9).block_size, type_by_id(9).type_size) == (32, 36)
    assert (type_by_name("q2_0").block_size, type_by_name("Q2_0").type_size) == (64, 18)
    assert type_by_name("Q4_K").type_size == 144 and type_by_name("q4_k").block_size == 256


def test_reading_a_header_does_not_import_gguf() -> None:
    import subprocess
    import sys

    code = ("import sys; from inspector.formats.ggml_types import type_by_id; type_by_id(12); "
            "print('gguf' in sys.modules, 'numpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "False"], done.stderr
