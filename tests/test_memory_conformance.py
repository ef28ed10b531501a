"""Optional conformance with llama.cpp itself: its `llama-fit-params` sizes a context on the CPU without loading
weights (no_alloc) and logs the KV cache it would allocate; we compare with our exact numbers.

Runs only when a llama.cpp binary is at hand: `LLAMA_FIT_PARAMS=/path/to/llama-fit-params`, or one on PATH
(build it from the llama.cpp source the `llama-cpp-python` sdist vendors: `cmake -B build && cmake --build build
--target llama-fit-params`). Skipped otherwise. Models are generated sparse GGUFs (full length, no disk used) with
a small SentencePiece-style vocabulary so that llama.cpp accepts them.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.generate import write_gguf
from inspector import load
from inspector.memory import MemoryOptions, memory_plan
from inspector.runtimes.literal.simple import place_simple

BINARY = os.environ.get("LLAMA_FIT_PARAMS") or shutil.which("llama-fit-params")
pytestmark = pytest.mark.skipif(not BINARY or not Path(BINARY).exists(),
                                reason="no llama-fit-params binary (set LLAMA_FIT_PARAMS)")

MiB = 1 << 20
_KV = re.compile(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers")
_RS = re.compile(r"llama_memory_recurrent: size = +([\d.]+) MiB")
_OUT = re.compile(r"output buffer size = +([\d.]+) MiB")
_COMPUTE = re.compile(r"(\w+) compute buffer size (?:=|is) +([\d.]+) MiB")


def _vocab(n: int) -> dict:
    tokens = ["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(3, n)]
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": [0.0] * n,
        "tokenizer.ggml.token_type": [2, 3, 3] + [1] * (n - 3),
    }


def _model(tmp: Path, arch: str, n_layers: int, vocab: int, dtype: str = "Q8_0") -> Path:
    return write_gguf(tmp / f"{arch}.gguf", arch, tensor_type=dtype, mode="sparse", n_layers=n_layers,
                      extra_kv=_vocab(vocab))


def _llama(path: Path, *args: str) -> str:
    cmd = [BINARY, "-m", str(path), "-ngl", "0", "-v", *args]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return run.stdout + run.stderr


def _ours(path: Path, options: MemoryOptions):
    ck = place_simple(load(str(path)), experts_on=None, default_device="cpu")
    return memory_plan(ck, options)


def _mib(n: int) -> float:
    return round(n / MiB, 2)


CASES = [
    # (fixture description, blocks, vocab size of the description, llama.cpp flags, our options)
    ("llama-3.2-3b", 4, 128256, ["-c", "8192"], MemoryOptions(ctx=8192)),
    ("llama-3.2-3b", 4, 128256, ["-c", "8192", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on"],
     MemoryOptions(ctx=8192).with_kv_type("q8_0").with_(flash_attn="on")),
    ("llama-3.2-3b", 4, 128256, ["-c", "4000", "-np", "3"], MemoryOptions(ctx=1334, parallel=3)),
    ("llama-3.2-3b", 4, 128256, ["-c", "32768", "-fa", "off"], MemoryOptions(ctx=32768, flash_attn="off")),
    ("llama-3.2-3b", 4, 128256, ["-c", "32768", "-ub", "2048", "-b", "2048"], MemoryOptions(ctx=32768, ubatch=2048)),
    ("qwen3-moe", 2, 151936, ["-c", "4096"], MemoryOptions(ctx=4096)),
    ("deepseek-v3", 4, 129280, ["-c", "4096"], MemoryOptions(ctx=4096)),
    ("gpt-oss-20b", 4, 201088, ["-c", "16384"], MemoryOptions(ctx=16384)),
    ("mixtral-8x7b", 2, 32000, ["-c", "32768", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on"],
     MemoryOptions(ctx=32768, flash_attn="on").with_kv_type("q8_0")),
]
COMPUTE_TOLERANCE = 0.05  # the compute buffer is an estimate: within 5 % of what llama.cpp's CPU backend reserves


@pytest.mark.slow
@pytest.mark.parametrize("arch, blocks, vocab, flags, options", CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_kv_cache_matches_llama_cpp(tmp_path: Path, arch: str, blocks: int, vocab: int, flags: list[str],
                                    options: MemoryOptions) -> None:
    path = _model(tmp_path, arch, blocks, vocab, "Q8_0" if arch != "gpt-oss-20b" else "F16")
    log = _llama(path, *flags)
    sizes = [float(m.group(1)) for m in _KV.finditer(log)]
    assert sizes, log[-3000:]
    plan = _ours(path, options)
    ours_full = sum(x.kv_bytes for x in plan.per_layer if x.kind.startswith("full"))
    ours_swa = sum(x.kv_bytes for x in plan.per_layer if x.kind.startswith("swa"))
    expected = sorted(_mib(b) for b in (ours_full, ours_swa) if b)
    assert sorted(sizes) == expected, log[-3000:]
    outputs = [float(m.group(1)) for m in _OUT.finditer(log)]
    if outputs:
        assert outputs[-1] == _mib(plan.buffers["cpu"].output)
    # the compute buffer (reported when the graph reserve ran through; our DeepSeek fixture trips a scheduler
    # assertion in llama.cpp's CPU build after the KV cache is sized)
    computes = [float(m.group(2)) for m in _COMPUTE.finditer(log) if m.group(1) == "CPU"]
    if computes:
        ours = plan.buffers["cpu"].compute / MiB
        assert abs(ours - computes[-1]) <= COMPUTE_TOLERANCE * computes[-1], (ours, computes[-1])
