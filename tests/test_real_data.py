"""Real files written by others (../shared/data/real, the gemma3 part package): roles, byte sums, truncation."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from fixtures.generate import rebuild_split_from_map
from inspector import inspect
from inspector.roles import classify_names

from ._shared import needs_shared, real_indexes, thireus_maps

pytestmark = [needs_shared, pytest.mark.real]


def _map_rows(path: Path) -> list[tuple[str, str, int, int]]:
    """(name, dtype, elements, bytes) per line of a Thireus map, parsed independently of our readers."""
    rows = []
    for line in path.read_text().splitlines():
        fields = dict(f.split("=", 1) for f in line.split(":")[3:])
        rows.append((line.split(":")[2], fields["dtype"], int(fields["elements"]), int(fields["bytes"])))
    return rows


def _names_of(path: Path) -> list[str]:
    if path.suffix == ".map":
        return [name for name, _, _, _ in _map_rows(path)]
    return list(json.loads(path.read_text())["weight_map"])


@pytest.mark.parametrize("path", real_indexes() + thireus_maps(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_real_tensor_name_has_a_role(path: Path) -> None:
    names = _names_of(path)
    unmatched = [n for n, (role, _, _) in zip(names, classify_names(names)) if role == "other"]
    assert unmatched == []


# Role counts derived by hand from each model's config.json (layers × tensors per layer), checked against
# the number of tensors in the real weight_map.
INDEX_ROLE_COUNTS = {
    # 32 layers × (4 attention, 2 norms, 1 router, 8 experts × 3) + embed + final norm + lm_head = 995
    "Ming-999__Mixtral-8x7B-Instruct-v0.1": {"attention": 128, "norm": 65, "router": 32, "routed_experts": 768,
                                             "embedding": 1, "output": 1},
    # 28 layers × (4 attention, 3 dense FFN, 2 norms) + embed + final norm; tied embeddings, no lm_head = 254
    "Gusiion__meta-llama-Llama-3.2-3B-Instruct": {"attention": 112, "dense_ffn": 84, "norm": 57, "embedding": 1},
    # 24 layers × (q,k,v,o weights and biases + sinks = 9 attention, 2 norms, router weight+bias,
    # MXFP4 experts: gate_up and down × (blocks, scales, bias) = 6) + embed + final norm + lm_head = 459
    "EchoCog__gpt-oss-20b": {"attention": 216, "norm": 49, "router": 48, "routed_experts": 144, "embedding": 1,
                             "output": 1},
    # bitsandbytes 8-bit: each of the 7 linears per layer also has .SCB and .weight_format (3 tensors each):
    # 32 layers × (4×3 attention, 3×3 dense FFN, 2 norms) + embed + final norm + lm_head = 739
    "jeevanchaps__Meta-Llama3.1-8B-Instruct-assessment": {"attention": 384, "dense_ffn": 288, "norm": 65,
                                                          "embedding": 1, "output": 1},
}


@pytest.mark.parametrize("folder", sorted(INDEX_ROLE_COUNTS))
def test_index_role_counts(folder: str) -> None:
    from ._shared import REAL

    names = _names_of(REAL / folder / "model.safetensors.index.json")
    counts = Counter(role for role, _, _ in classify_names(names))
    assert dict(counts) == INDEX_ROLE_COUNTS[folder]


def test_deepseek_ocr2_keeps_shared_experts_apart() -> None:
    from ._shared import REAL

    names = _names_of(REAL / "sen-ye__DeepSeek-OCR2-query-ablation" / "model.safetensors.index.json")
    roles = dict(zip(names, (r for r, _, _ in classify_names(names))))
    assert roles["model.layers.1.mlp.shared_experts.up_proj.weight"] == "shared_experts"
    assert roles["model.layers.1.mlp.experts.63.up_proj.weight"] == "routed_experts"
    assert roles["model.layers.1.mlp.gate.weight"] == "router"
    assert roles["model.sam_model.blocks.0.attn.qkv.weight"] == "vision"


def _true_bytes(dtype: str, elements: int, listed: int) -> int:
    # The suite lists a tiny f32 tensor's size as its 32-byte-padded shard data (gemma-4's 1-element
    # layer_output_scale is listed as 32 bytes); the tensor itself holds elements × 4 bytes.
    return elements * 4 if dtype == "f32" else listed


@pytest.mark.slow
@pytest.mark.parametrize("map_path", thireus_maps(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_rebuilt_split_set_inspects_to_the_map_sums(map_path: Path, tmp_path: Path) -> None:
    rows = _map_rows(map_path)
    expected_total = sum(_true_bytes(d, e, b) for _, d, e, b in rows)
    # Blocks holding nextn.* tensors are whole MTP layers (role mtp), their experts included.
    mtp_blocks = {n.split(".")[1] for n, _, _, _ in rows if ".nextn." in n}
    expected_routed = sum(
        _true_bytes(d, e, b)
        for n, d, e, b in rows
        if re.search(r"\.ffn_\w+_exps\.", n) and n.split(".")[1] not in mtp_blocks
    )
    shards = rebuild_split_from_map(map_path, tmp_path)
    # Passing a middle shard must load the whole set.
    result = inspect(str(shards[len(shards) // 2]), experts_on="cpu")
    assert len(result.checkpoint.files) == len(rows) + 1
    assert len(result.checkpoint.tensors) == len(rows)
    assert result.bytes == expected_total
    roles = {g.key: g.bytes for g in result.by_role}
    assert roles.get("routed_experts", 0) == expected_routed
    devices = {g.key: g.bytes for g in result.by_device}
    assert devices.get("cpu", 0) == expected_routed
    assert devices["cuda:0"] == expected_total - expected_routed


# Totals printed in ../shared/data/real/INDEX.md, section 2 (independent of the map parsing above).
INDEX_TOTALS = {
    "DeepSeek-V3.1-Terminus/tensors.q4_K.map": 377_885_689_856,
    "DeepSeek-V3.1-Terminus/tensors.bf16.map": 1_342_267_742_208,
    "GLM-4.5-Air/tensors.q8_0.map": 117_447_146_496,
    "Kimi-K2.5/tensors.iq4_xs.map": 547_208_185_856,
}


@pytest.mark.parametrize("rel", sorted(INDEX_TOTALS))
def test_map_sums_match_the_published_totals(rel: str) -> None:
    from ._shared import THIREUS

    assert sum(b for _, _, _, b in _map_rows(THIREUS / rel)) == INDEX_TOTALS[rel]


@pytest.mark.slow
def test_pure_q4_k_m_prediction_from_the_bf16_map_is_the_real_q4_k_map(tmp_path: Path) -> None:
    """Thireus's q4_K DeepSeek-V3.1 files are `llama-quantize --pure Q4_K_M` of the BF16 ones: predicting that
    from the rebuilt BF16 split set must give every tensor's real type and byte count (fallbacks included, e.g.
    attn_k_b rows of 128 cannot hold Q4_K blocks of 256 and become Q5_0)."""
    from inspector.api import load, predict_quant
    from inspector.quant import QuantOptions

    from ._shared import THIREUS

    folder = THIREUS / "DeepSeek-V3.1-Terminus"
    real = {name: (dtype.upper(), nbytes) for name, dtype, _, nbytes in _map_rows(folder / "tensors.q4_K.map")}
    shards = rebuild_split_from_map(folder / "tensors.bf16.map", tmp_path)
    prediction = predict_quant(load(str(shards[0])), QuantOptions("Q4_K_M", pure=True))
    predicted = {t.name: (t.dtype, t.nbytes) for t in prediction.checkpoint.tensors}
    assert predicted == real
    assert sum(b for _, b in real.values()) == 377_885_689_856  # INDEX.md's q4_K total


def _recipes_with_bf16_maps() -> list[Path]:
    from ._shared import THIREUS

    if not THIREUS.is_dir():
        return []
    # Recipes that split GPU (all but ffn_*_exps) from CPU (the ffn_*_exps) and print both totals. Recipes that
    # print only a GPU total (everything on the GPU: GLM-4.7-Flash, GLM-5.1) or split a dense model otherwise
    # (Qwen3-4B) use other definitions and are not compared here.
    return [r for r in sorted(THIREUS.glob("*/recipe_examples/*.recipe"))
            if (r.parents[1] / "tensors.bf16.map").exists() and "CPU Total:" in r.read_text()
            and "Qwen3-4B" not in r.name]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", _recipes_with_bf16_maps(), ids=lambda p: p.name[:60])
def test_recipe_on_the_bf16_map_gives_the_authors_gpu_and_cpu_totals(recipe: Path, tmp_path: Path) -> None:
    """A recipe applied (as --tensor-type-file, without --quant) to the model's BF16 layout reproduces the totals
    its author printed, to their 0.01 GiB: GPU = every tensor but `ffn_*_exps`, CPU = the `ffn_*_exps`.

    Two known differences are undone before comparing, each checked here:
    - the author's sizes ignore ik_llama.cpp's per-row metadata (iq*_ks, iq*_kt … store a scale per row; the
      suite fixed this in 17eebae, after these recipes): ours are larger by rows x row_meta_size per tensor;
    - the author counts the experts of the MTP/nextn block as CPU; `--experts-on cpu` keeps a whole MTP block
      on the default device (role mtp).
    """
    from inspector.api import inspect
    from inspector.formats.ggml_types import type_by_name
    from inspector.quant.recipe import parse_recipe

    header = recipe.read_text()
    gpu_gib = float(re.search(r"GPU Total: ([\d.]+) GiB", header).group(1))
    cpu_gib = float(re.search(r"CPU Total: ([\d.]+) GiB", header).group(1))
    shards = rebuild_split_from_map(recipe.parents[1] / "tensors.bf16.map", tmp_path)
    result = inspect(str(shards[0]), experts_on="cpu", recipe=parse_recipe(recipe))
    totals = {"gpu": 0, "cpu": 0}
    for t in result.checkpoint.tensors:
        rows = 1
        for n in t.shape[1:]:
            rows *= n
        without_row_meta = t.nbytes - rows * type_by_name(t.dtype).row_meta_size
        totals["cpu" if re.search(r"\.ffn_\w+_exps\.", t.name) else "gpu"] += without_row_meta
    assert abs(totals["gpu"] / 2**30 - gpu_gib) <= 0.005 + 1e-9
    assert abs(totals["cpu"] / 2**30 - cpu_gib) <= 0.005 + 1e-9
    devices = {g.key: g.bytes for g in result.by_device}
    assert devices["cpu"] == sum(t.nbytes for t in result.checkpoint.tensors if t.role == "routed_experts")
