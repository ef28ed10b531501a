"""Damaged hyperparameters end in one typed error naming the key, never a crash (issue 17).

Before: `{arch}.block_count` = 0 raised IndexError in memory/hparams.py, a NaN or infinite float where a count is
expected raised ValueError/OverflowError from int(), and an absurd layer count in config.json raised
"cannot fit 'int' into an index-sized integer"; plain inspect worked, --ctx and fit crashed.
"""
from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from inspector.cli import main
from inspector.errors import FormatError
from inspector.formats.gguf import LazyArray
from inspector.memory import MemoryOptions, from_config, from_gguf, memory_plan
from inspector.model import Checkpoint

BASE = {"block_count": 2, "embedding_length": 64, "attention.head_count": 4, "context_length": 2048}


def meta(**kvs: object) -> dict:
    out = {"general.architecture": "llama"}
    out.update({f"llama.{k.replace('__', '.')}": v for k, v in {**BASE, **kvs}.items()})
    return out


def write_gguf(path: Path, kvs: dict) -> Path:
    """A small real GGUF (gguf-py's writer) with these llama.* KVs and two tensors."""
    w = gguf.GGUFWriter(str(path), "llama")
    for key, value in kvs.items():
        if isinstance(value, float):
            w.add_float32(f"llama.{key}", value)
        elif value >= 1 << 32:
            w.add_uint64(f"llama.{key}", value)
        else:
            w.add_uint32(f"llama.{key}", value)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((64, 64), dtype=np.float16))
    w.add_tensor("token_embd.weight", np.zeros((100, 64), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("kvs, words", [
    ({"block_count": 0}, ["'llama.block_count' is 0", "at least one block"]),
    ({"attention.head_count": float("nan")}, ["'llama.attention.head_count' is nan"]),
    ({"attention.head_count_kv": float("inf")}, ["'llama.attention.head_count_kv' is inf"]),
    ({"attention.head_count_kv": 1 << 62}, ["'llama.attention.head_count_kv' is 4611686018427387904", "16,777,216"]),
    ({"attention.key_length": 1 << 40}, ["'llama.attention.key_length'"]),
])
@pytest.mark.parametrize("command", [["inspect", "--ctx", "4096"], ["fit", "--budget", "cuda:0=8GiB"]])
def test_damaged_counts_are_one_error_line_for_ctx_and_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            kvs: dict, words: list[str], command: list[str]) -> None:
    path = write_gguf(tmp_path / "m.gguf", {**BASE, **kvs})
    code, err = run_cli(capsys, command[0], str(path), *command[1:])
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in err
    assert all(w in lines[0] for w in words), lines[0]


def test_plain_inspect_of_a_zero_block_file_still_works(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_gguf(tmp_path / "m.gguf", {**BASE, "block_count": 0})
    code, _ = run_cli(capsys, "inspect", str(path))
    assert code == 0


@pytest.mark.parametrize("kvs, message", [
    ({"block_count": 0}, "'llama.block_count' is 0"),
    ({"block_count": 70_000}, "'llama.block_count' is 70000"),
    ({"nextn_predict_layers": 3}, "'llama.nextn_predict_layers' is 3, more than the 2 blocks"),
    ({"attention__head_count": -4}, "'llama.attention.head_count' is -4"),
    ({"attention__head_count": 2.5}, "'llama.attention.head_count' is 2.5"),
    ({"attention__head_count": "four"}, "'llama.attention.head_count' is a str"),
    ({"attention__head_count_kv": [4, float("nan")]}, "'llama.attention.head_count_kv' is nan"),
    ({"attention__head_count_kv": [4, 4, 4]}, "'llama.attention.head_count_kv' has 3 items for 2 layers"),
    ({"attention__head_count_kv": LazyArray("u32", 70_000, 0, 280_000)},
     "'llama.attention.head_count_kv' has 70,000 items for 2 layers"),
    ({"feed_forward_length": [[1, 2], [3]]}, "'llama.feed_forward_length' is a list"),
    ({"embedding_length": [64, 64]}, "'llama.embedding_length' is an array"),
    ({"context_length": float("inf")}, "'llama.context_length' is inf"),
])
def test_from_gguf_names_the_bad_key(kvs: dict, message: str) -> None:
    with pytest.raises(FormatError, match=f"m.gguf: {message.replace('[', '.').replace('(', '.')}"):
        from_gguf(meta(**kvs), source="m.gguf")


def test_whole_floats_are_read_as_counts() -> None:
    # some writers store counts as f32: 4.0 heads of 64 / 4 = 16 wide, K+V f16, 2 layers, 1,024 cells:
    # 2 × 4 × 16 × 2 B × 2 × 1,024 = 524,288 B
    hp = from_gguf(meta(attention__head_count=4.0))
    assert hp.n_head == (4, 4)
    ck = Checkpoint("m.gguf", "gguf", "llama", (), (), meta(attention__head_count=4.0))
    assert memory_plan(ck, MemoryOptions(ctx=1024)).devices["cpu"].kv_cache == 524_288


@pytest.mark.parametrize("change, message", [
    ({"num_hidden_layers": 1 << 70}, "config.json's num_hidden_layers is 1180591620717411303424"),
    ({"num_hidden_layers": 0}, "config.json's num_hidden_layers is 0"),
    ({"num_hidden_layers": None, "n_layers": None}, "config.json has no layer count"),
    ({"num_attention_heads": float("nan")}, "cannot write: add_head_count.nan."),
    ({"num_key_value_heads": 1 << 70}, "from config.json, 'llama.attention.head_count_kv' is 1180591620717411303424"),
    ({"hidden_size": None}, "lacks hidden_size"),
])
def test_from_config_names_the_bad_value(change: dict, message: str) -> None:
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 4,
              "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2}
    config.update(change)
    config = {k: v for k, v in config.items() if v is not None}
    with pytest.raises(FormatError, match=message):
        from_config(config)
