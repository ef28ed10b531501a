"""The safetensors reader's fast paths (plain json.loads with a key count, well-formed entries at a glance) fall
back to the precise checks whenever they are unsure: every header here gets the same result or the same error
with and without them, and the errors are the ones worded by hand below."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.errors import FormatError, UnknownTypeError
from inspector.formats import safetensors
from inspector.formats.safetensors import parse_safetensors
from inspector.sources.base import LocalFile
from tests._bytes import st_file

F32_1 = '{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'  # one F32: 4 bytes


def outcome(tmp_path: Path, raw: str, data_len: int) -> tuple[str, str]:
    path = tmp_path / "m.safetensors"
    path.write_bytes(st_file(raw, data_len))
    try:
        header = parse_safetensors(LocalFile(path))
    except FormatError as e:
        return type(e).__name__, str(e)
    return "ok", repr((header.metadata, header.tensors))


def both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: str, data_len: int = 4) -> tuple[str, str]:
    """The outcome with the fast paths, after checking it equals the outcome without them."""
    fast = outcome(tmp_path, raw, data_len)
    with monkeypatch.context() as m:
        m.setattr(safetensors, "_no_duplicate_keys", lambda raw, text, header: False)
        m.setattr(safetensors, "_well_formed_entry", lambda key, value: None)
        slow = outcome(tmp_path, raw, data_len)
    assert fast == slow
    return fast


DUPLICATES = {
    "whitespace before the colon": ('{"a" \t\r\n: ' + F32_1 + ', "a"  :' + F32_1 + "}", "a"),
    "inside __metadata__": ('{"__metadata__": {"format": "pt", "format": "pt"}, "a": ' + F32_1 + "}", "format"),
    "inside an object inside an entry": (
        '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": {"k": 1, "k": 2}}}', "k"),
    "inside an object inside a list": ('{"a": ' + F32_1 + ', "b": [{"k": 1, "k": 1}]}', "k"),
    "before invalid JSON": ('{"a": {"dtype": "F32", "dtype": "F32"}, "b": nul}', "dtype"),
    "beside a colon in a value": ('{"__metadata__": {"t": "12:30", "t": "12:31"}, "a": ' + F32_1 + "}", "t"),
    "beside a quote-colon in a value": ('{"__metadata__": {"t": "x\\":", "t": "y"}, "a": ' + F32_1 + "}", "t"),
    "non-ASCII": ('{"é": ' + F32_1 + ', "é": ' + F32_1 + "}", "é"),
}


@pytest.mark.parametrize("case", DUPLICATES)
def test_duplicate_key_found_by_the_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    raw, key = DUPLICATES[case]
    kind, message = both_ways(tmp_path, monkeypatch, raw)
    assert kind == "FormatError"
    assert f"header JSON has the key {key!r} twice in one object" in message


@pytest.mark.parametrize("raw", [
    '{"__metadata__": {"time": "12:30:00"}, "a": ' + F32_1 + "}",  # colons in a value: the regex count decides
    '{"__metadata__": {"note": "say \\":\\" twice"}, "a": ' + F32_1 + "}",  # `":` in a value: the hooked decoding
    '{"a:b": ' + F32_1 + "}",  # a colon in a name
    '{"a" : {"dtype" :"F32",\n"shape"\t: [1], "data_offsets": [0, 4]}}',  # whitespace before the colons
    '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": {"k": 1}}}',  # an extra key is ignored
])
def test_no_duplicate_parses_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    kind, result = both_ways(tmp_path, monkeypatch, raw)
    assert kind == "ok"
    assert "shape=(1,), dtype='F32', nbytes=4, offset=" in result


def entry(dtype: object = "F32", shape: object = (1,), offsets: object = (0, 4), **extra: object) -> str:
    fields = {"dtype": dtype, "shape": list(shape) if isinstance(shape, tuple) else shape,
              "data_offsets": list(offsets) if isinstance(offsets, tuple) else offsets, **extra}
    return json.dumps({"t": fields})


SHAPE = "tensor 't': shape must be a list of at most 64 integers from 0 to 2^64-1"
OFFSETS = "tensor 't': data_offsets must be [begin, end], integers from 0 to 2^64-1 with begin <= end"
BAD_ENTRIES = {
    "not an object": (json.dumps({"t": [1]}), "FormatError", "entry 't' must be an object with dtype, shape and data_offsets"),
    "dtype missing": (json.dumps({"t": {"shape": [1], "data_offsets": [0, 4]}}), "FormatError",
                      "tensor 't': missing or invalid dtype"),
    "dtype a number": (entry(dtype=5), "FormatError", "tensor 't': missing or invalid dtype"),
    "dtype unknown": (entry(dtype="F12"), "UnknownTypeError", "tensor 't' has unknown dtype 'F12'"),
    "shape a bool": (entry(shape=[True]), "FormatError", SHAPE),
    "shape negative": (entry(shape=[-1]), "FormatError", SHAPE),
    "shape a float": (entry(shape=[1.0]), "FormatError", SHAPE),
    "shape past u64": (entry(shape=[2**64]), "FormatError", SHAPE),
    "shape of 65 dims": (entry(shape=[1] * 65), "FormatError", SHAPE),
    "shape a tuple-like object": (entry(shape={"0": 1}), "FormatError", SHAPE),
    "offsets reversed": (entry(offsets=[4, 0]), "FormatError", OFFSETS),
    "three offsets": (entry(offsets=[0, 4, 8]), "FormatError", OFFSETS),
    "offset a bool": (entry(offsets=[False, 4]), "FormatError", OFFSETS),
    "offset past u64": (entry(offsets=[0, 2**64]), "FormatError", OFFSETS),
    # 2^25 x 2^25 = 2^50 elements is the cap itself; one more row is past it
    "elements past the cap": (entry(shape=[2**25 + 1, 2**25]), "FormatError",
                              "tensor 't' claims more than 1,125,899,906,842,624 elements"),
    # a zero dimension: no elements, whatever the others; 0 bytes, so [0, 4] spans 4 too many
    "zero beside huge": (entry(shape=[2**63, 2**63, 0]), "FormatError",
                         "tensor 't': data_offsets span 4 bytes but F32 [9223372036854775808, 9223372036854775808, 0] "
                         "needs 0"),
    # 3 F4 values are 12 bits
    "F4 not whole bytes": (entry(dtype="F4", shape=[3]), "FormatError",
                           "tensor 't': 3 elements of F4 do not fill whole bytes"),
    # 3 F32 values are 12 bytes, the offsets give 4
    "span too short": (entry(shape=[3]), "FormatError", "tensor 't': data_offsets span 4 bytes but F32 [3] needs 12"),
}


@pytest.mark.parametrize("case", BAD_ENTRIES)
def test_bad_entry_same_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    raw, kind, words = BAD_ENTRIES[case]
    got_kind, message = both_ways(tmp_path, monkeypatch, raw)
    assert (got_kind, words in message) == (kind, True), message
    assert issubclass(UnknownTypeError, FormatError)  # UnknownTypeError is caught as a FormatError above


def test_well_formed_entries_read_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 2 x 3 BF16 = 12 bytes at [0, 12); 5 F4 + 1 = 6 F4 = 3 bytes at [12, 15); a scalar F64 = 8 bytes at [15, 23)
    raw = json.dumps({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},
                      "s": {"dtype": "F64", "shape": [], "data_offsets": [15, 23]},
                      "q": {"dtype": "F4", "shape": [6], "data_offsets": [12, 15]}})
    kind, result = both_ways(tmp_path, monkeypatch, raw, 23)
    assert kind == "ok"
    header_end = 8 + len(raw)
    assert f"name='w', shape=(2, 3), dtype='BF16', nbytes=12, offset={header_end}, elements=6" in result
    assert f"name='q', shape=(6,), dtype='F4', nbytes=3, offset={header_end + 12}, elements=6" in result
    assert f"name='s', shape=(), dtype='F64', nbytes=8, offset={header_end + 15}, elements=1" in result


@pytest.mark.parametrize("name", [
    "model.layers.0.mlp.down_proj.weight", "model.layers.0.mlp.down_proj.weight_scale_inv",
    "model.layers.0.mlp.down_proj.weight_scale_inv\n", "model.layers.0.mlp.down_proj.weight_scale_inv\n\n",
    "a.qzeros", "a.scales", "a.scales.x", "a_scales", "a.SCB", "a.g_idx", "a.weight.quant_state.bitsandbytes__nf4",
    "a.weight.quant_state.", "a.weight.quant_state.x-y", "a.weight.quant_state.x\n", "a.weight.absmax",
    "a.weight.nested_quant_map", "experts.gate_up_proj_blocks", "experts.gate_up_proj_scales", "", "\n",
])
def test_aux_prefilter_agrees_with_the_regex(name: str) -> None:
    from inspector.formats.packed import AUX_TENSOR, _is_aux
    assert _is_aux(name) == bool(AUX_TENSOR.search(name))


def test_aux_regex_by_hand() -> None:
    from inspector.formats.packed import AUX_TENSOR
    matched = ["a.weight_scale_inv", "a.input_scale", "a.qzeros\n", "a.weight.quant_state.bitsandbytes__nf4", "x_scales"]
    unmatched = ["a.weight", "a.scales.x", "a.weight.quant_state.", "a.weight.quant_state.x-y", "a.qzeros\n\n"]
    assert [bool(AUX_TENSOR.search(n)) for n in matched + unmatched] == [True] * 5 + [False] * 5
