"""Optional conformance with the real transformers + accelerate: for header-only checkpoints of real architectures,
transformers' own `_get_device_map` (on a meta model built from the same config.json, its quantizer included)
must give the same device map as ckpt-size, and the same size for every map entry; and bitsandbytes quantizing a
tiny random model on the CPU must hold exactly the tensors and bytes ckpt-size predicts.

Runs only when HF_PYTHON names a Python with torch (CPU), transformers 5, accelerate and bitsandbytes
(HF4_PYTHON: one with transformers 4.57 for the --transformers-version 4 cases); skipped otherwise. Install
commands and results: docs/transformers.md, "Conformance".
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fixtures.generate import write_safetensors
from inspector import inspect
from inspector.errors import UsageError

HERE = Path(__file__).resolve().parent
PYTHONS = {5: os.environ.get("HF_PYTHON"), 4: os.environ.get("HF4_PYTHON")}
pytestmark = pytest.mark.slow
GiB = 2**30


def references(version: int, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The real library's answers, one interpreter for the whole batch."""
    python = PYTHONS[version]
    if not python:
        pytest.skip(f"set HF{'4' if version == 4 else ''}_PYTHON to a Python with transformers {version}")
    done = subprocess.run([python, str(HERE / "hf_reference.py")], input=json.dumps(requests),
                          capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


_CACHE: dict[tuple[int, str], dict[tuple, dict[str, Any]]] = {}


def reference(models: dict[str, Path], version: int, arch: str, key: tuple) -> dict[str, Any]:
    """Every device-map case of (version, arch), computed on first use."""
    if (version, arch) not in _CACHE:
        keys = [c[1:] for c in CASES if c[0] == arch]
        answers = references(version, [{"task": "device_map", "folder": str(models[arch]), "kind": kind,
                                        "max_memory": MEMORY[mem], "dtype": dtype, "bnb": bnb}
                                       for kind, mem, dtype, bnb in keys])
        _CACHE[(version, arch)] = {_key(k): a for k, a in zip(keys, answers)}
    return _CACHE[(version, arch)][_key(key)]


def _key(key: tuple) -> tuple:
    return tuple(json.dumps(k, sort_keys=True) for k in key)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for arch, layers in (("llama-3.2-3b", None), ("mixtral-8x7b", 6), ("qwen3-moe", 6), ("qwen2.5-14b", None)):
        folder = root / arch
        write_safetensors(folder, arch, n_layers=layers)
        out[arch] = folder
    return out


BNB4 = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
        "llm_int8_enable_fp32_cpu_offload": True}
BNB8 = {"load_in_8bit": True, "llm_int8_enable_fp32_cpu_offload": True}
MEMORY = {
    "two-gpus-cpu": {"0": 3 * GiB, "1": 2 * GiB, "cpu": 1 * GiB},
    "one-gpu-cpu": {"0": 4 * GiB, "cpu": 10 * GiB},
    "gpus-no-cpu": {"0": 1 * GiB, "1": 1 * GiB},
    "cpu-only": {"cpu": 2 * GiB},
    "roomy": {"0": 8 * GiB, "1": 8 * GiB, "cpu": 64 * GiB},
    "tight-first": {"0": 700_000_000, "1": 20 * GiB, "cpu": 64 * GiB},
}
CASES = [(arch, kind, mem, dtype, bnb)
         for arch in ("llama-3.2-3b", "mixtral-8x7b", "qwen3-moe", "qwen2.5-14b")
         for kind in ("auto", "balanced_low_0", "sequential")
         for mem in MEMORY
         for dtype, bnb in (("bfloat16", None), ("float16", BNB4), ("bfloat16", BNB8))]


def _ours(folder: Path, version: int, kind: str, memory: dict[str, int], dtype: str, bnb: dict | None
          ) -> dict[str, Any]:
    options: dict[str, Any] = {"device_map": kind, "max_memory": (repr(
        {(int(k) if k.isdigit() else k): v for k, v in memory.items()}),),
        "torch_dtype": dtype, "transformers_version": str(version), "offload_folder": "offload"}
    if bnb:
        options.update(load_in_4bit=bnb.get("load_in_4bit"), load_in_8bit=bnb.get("load_in_8bit"),
                       bnb_4bit_quant_type=bnb.get("bnb_4bit_quant_type"),
                       bnb_4bit_use_double_quant=bnb.get("bnb_4bit_use_double_quant"),
                       llm_int8_enable_fp32_cpu_offload=bnb.get("llm_int8_enable_fp32_cpu_offload"))
    try:
        result = inspect(str(folder), runtime="transformers", **{k: v for k, v in options.items() if v})
    except UsageError as e:
        return {"error": str(e)}
    plan = result.memory.plan
    return {"device_map": dict(plan.device_map), "sizes": {k: plan.result.module_sizes.get(k, 0)
                                                           for k in plan.device_map}}


@pytest.mark.parametrize("version", [5, 4])
@pytest.mark.parametrize("arch,kind,mem,dtype,bnb", CASES)
def test_device_map_matches_transformers(models: dict[str, Path], version: int, arch: str, kind: str, mem: str,
                                         dtype: str, bnb: dict | None) -> None:
    ref = reference(models, version, arch, (kind, mem, dtype, bnb))
    ours = _ours(models[arch], version, kind, MEMORY[mem], dtype, bnb)
    if "error" in ref:
        assert "error" in ours, f"transformers failed ({ref['error']}) but ckpt-size gave a map"
        return
    assert "error" not in ours, ours.get("error")
    assert ours["device_map"] == dict((k, v) for k, v in ref["device_map"])
    assert ours["sizes"] == pytest.approx(ref["sizes"], abs=0)


# --- bitsandbytes: the real quantizer's tensors, bytes and dtypes -------------------------------------------------
TINY = {  # tiny configs of real architectures (random weights are made by the reference)
    "qwen2": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64,
              "intermediate_size": 160, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
              "vocab_size": 320, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
              "max_position_embeddings": 512},
    "llama-tied": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 96,
                   "intermediate_size": 200, "num_attention_heads": 6, "num_key_value_heads": 2,
                   "num_hidden_layers": 3, "vocab_size": 250, "tie_word_embeddings": True,
                   "torch_dtype": "bfloat16", "max_position_embeddings": 512},
    "mixtral": {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 64,
                "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
                "num_hidden_layers": 2, "vocab_size": 320, "num_local_experts": 4, "num_experts_per_tok": 2,
                "tie_word_embeddings": False, "torch_dtype": "bfloat16", "max_position_embeddings": 512},
}
BNB_CASES = {
    "nf4-dq": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True},
    "fp4": {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4"},
    "int8": {"load_in_8bit": True},
}


@pytest.mark.parametrize("bnb", list(BNB_CASES))
@pytest.mark.parametrize("arch", list(TINY))
def test_bitsandbytes_bytes_match_the_real_quantizer(tmp_path: Path, arch: str, bnb: str) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY[arch]))
    out = tmp_path / "model"
    [ref] = references(5, [{"task": "bnb_bytes", "folder": str(folder), "out": str(out), "dtype": "bfloat16",
                            "bnb": BNB_CASES[bnb]}])
    assert "error" not in ref, ref.get("error")
    flags = {"load_in_4bit": True, "bnb_4bit_quant_type": BNB_CASES[bnb].get("bnb_4bit_quant_type"),
             "bnb_4bit_use_double_quant": BNB_CASES[bnb].get("bnb_4bit_use_double_quant")} \
        if BNB_CASES[bnb].get("load_in_4bit") else {"load_in_8bit": True}
    dtypes = {"bfloat16": "BF16", "float32": "F32", "uint8": "U8", "int8": "I8"}
    expected = {name: (dtypes[d], tuple(shape), n) for name, (d, shape, n) in ref["tensors"].items()}
    # the real bf16 checkpoint quantized now, and the checkpoint bitsandbytes saved, loaded pre-quantized
    for source, options in ((out, flags), (Path(str(out) + "-quantized"), {})):
        result = inspect(str(source), runtime="transformers", device_map="cpu", torch_dtype="bfloat16",
                         **{k: v for k, v in options.items() if v})
        ours = {t.name: (t.dtype, tuple(t.shape), t.nbytes) for t in result.checkpoint.tensors if t.device}
        if arch == "mixtral":  # transformers 5 fuses the experts (mlp.experts.gate_up_proj …): compare their bytes
            def split(d: dict) -> tuple[dict, int]:
                experts = sum(v[2] for k, v in d.items() if ".experts." in k)
                return {k: v for k, v in d.items() if ".experts." not in k and "block_sparse_moe.gate" not in k
                        and ".mlp.gate." not in k}, experts
            assert split(ours) == split(expected), source.name
            continue
        assert ours == expected, source.name
        assert result.memory.table.total("cpu") == sum(n for _, _, n in expected.values())
