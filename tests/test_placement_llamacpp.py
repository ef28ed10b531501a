"""llama.cpp flags on `inspect`: -ngl, -ot, --cpu-moe, --n-cpu-moe, -ts, -sm, -mg (inspector/placement/llamacpp.py).

Every expected number is derived here by hand from shapes and ggml block sizes (constants below, from ggml's
block structs), or read from a real per-tensor map; none is copied from the program's output. The layer
arithmetic follows llama.cpp's load_tensors (docs/placement-llamacpp.md): n_layer + 1 slots, the output layer
offloaded first, `-ts` cut points at cumulative fractions of the offloaded slots.
"""
from __future__ import annotations

import re
import shlex
from collections import Counter
from pathlib import Path

import pytest

import inspector
from inspector.errors import UsageError
from inspector.model import Checkpoint, TensorInfo
from inspector.runtimes.llamacpp.flags import (
    LlamaCppFlags,
    parse_n_gpu_layers,
    parse_override_tensor,
    parse_tensor_split,
)
from inspector.runtimes.llamacpp.place import place_llamacpp
from inspector.roles import assign_roles

from ._shared import THIREUS, needs_shared

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"

# bytes per block / elements per block (ggml-common.h): block_q4_K = 144 B per 256, block_q5_0 = 22 B per 32.
Q4K = (256, 144)
Q50 = (32, 22)


def q(ne0: int, rows: int, kind: tuple[int, int]) -> int:
    """Bytes of a quantized tensor with rows of ne0 elements."""
    block, size = kind
    return ne0 // block * size * rows


def per_device(plan) -> dict[str | None, int]:
    totals: Counter[str | None] = Counter()
    for t in plan.checkpoint.tensors:
        totals[t.device] += t.nbytes
    return dict(totals)


def devices_of(plan, pattern: str) -> set[str | None]:
    return {t.device for t in plan.checkpoint.tensors if re.search(pattern, t.name)}


# --- DeepSeek-V3.1 Q4_K_M (61 blocks: 0-2 dense, 3-60 MoE; header-only fixture made from the real map) -------

N_DS = 61
DS_TOTAL = 377_885_689_856  # ../shared/data/real/INDEX.md §2, q4_K map total
DS_EMBD = q(7168, 129280, Q4K)  # token_embd (7168, 129280) Q4_K
DS_OUTPUT = q(7168, 129280, Q4K) + 7168 * 4  # output.weight Q4_K + output_norm F32
DS_EXPERTS = q(7168, 2048 * 256, Q4K) * 2 + q(2048, 7168 * 256, Q4K)  # gate/up (7168,2048,256), down (2048,7168,256)
DS_ATTN = (
    512 * 4 + q(7168, 576, Q4K)  # attn_kv_a_norm F32, attn_kv_a_mqa (7168, 576)
    + q(128, 512 * 128, Q50) + q(512, 128 * 128, Q4K)  # attn_k_b (128,512,128) Q5_0, attn_v_b (512,128,128)
    + q(16384, 7168, Q4K) + 1536 * 4  # attn_output, attn_q_a_norm
    + q(7168, 1536, Q4K) + q(1536, 24576, Q4K)  # attn_q_a, attn_q_b
    + 7168 * 4 * 2  # attn_norm, ffn_norm
)
DS_MOE_BLOCK = (DS_ATTN + DS_EXPERTS + 3 * q(7168, 2048, Q4K)  # shared expert: gate/up (7168,2048), down (2048,7168)
                + 7168 * 256 * 4 + 256 * 4)  # ffn_gate_inp F32, exp_probs_b F32
DS_DENSE_BLOCK = DS_ATTN + 2 * q(7168, 18432, Q4K) + q(18432, 7168, Q4K)  # ffn_gate/up (7168,18432), down


@pytest.fixture(scope="module")
def deepseek() -> Checkpoint:
    return inspector.load(str(MODELS / "deepseek-v3.1-q4_k_m.gguf"))


def test_hand_numbers_add_up(deepseek):
    assert 3 * DS_DENSE_BLOCK + 58 * DS_MOE_BLOCK + DS_EMBD + DS_OUTPUT == DS_TOTAL == deepseek.nbytes


def test_cpu_moe_keeps_token_embd_and_experts_on_cpu(deepseek):
    plan = place_llamacpp(deepseek, LlamaCppFlags(n_gpu_layers=99, cpu_moe=True))
    assert per_device(plan) == {"cpu": 58 * DS_EXPERTS + DS_EMBD, "cuda:0": DS_TOTAL - 58 * DS_EXPERTS - DS_EMBD}
    assert devices_of(plan, r"_shexp|ffn_gate_inp|exp_probs_b") == {"cuda:0"}
    assert plan.flags_line == "-ngl 99 --cpu-moe"
    assert plan.n_gpus == 1 and plan.output_device == "cuda:0" and set(plan.layer_devices) == {"cuda:0"}
    assert any("input layer on the CPU" in n and "token_embd.weight" in n for n in plan.notes)


def test_n_cpu_moe_counts_blocks_from_zero(deepseek):
    plan = place_llamacpp(deepseek, LlamaCppFlags(n_cpu_moe=10))
    # blocks 0-2 are dense: --n-cpu-moe 10 moves the experts of blocks 3..9 only
    assert per_device(plan)["cpu"] == 7 * DS_EXPERTS + DS_EMBD
    assert devices_of(plan, r"^blk\.[3-9]\.ffn_\w+_exps") == {"cpu"}
    assert devices_of(plan, r"^blk\.(1\d|[2-6]\d)\.ffn_\w+_exps") == {"cuda:0"}  # blk.10 is not blk.1
    assert devices_of(plan, r"^blk\.[0-2]\.ffn_(up|gate|down)\.") == {"cuda:0"}
    assert plan.flags_line == f"-ngl {N_DS + 1} --n-cpu-moe 10"
    assert any("blocks 0–2 have no routed experts" in n for n in plan.notes)


def test_ngl_offloads_the_output_layer_first(deepseek):
    plan = place_llamacpp(deepseek, LlamaCppFlags(n_gpu_layers=30))
    # 62 slots; i_gpu_start = 62 - 30 = 32: blocks 32..60 (29 MoE blocks) and the output layer on the GPU
    assert plan.layer_devices == ("cpu",) * 32 + ("cuda:0",) * 29
    assert plan.output_device == "cuda:0"
    gpu = 29 * DS_MOE_BLOCK + DS_OUTPUT
    assert per_device(plan) == {"cuda:0": gpu, "cpu": DS_TOTAL - gpu}


def test_ngl_one_is_the_output_layer_only(deepseek):
    plan = place_llamacpp(deepseek, LlamaCppFlags(n_gpu_layers=1))
    assert per_device(plan)["cuda:0"] == DS_OUTPUT
    assert set(plan.layer_devices) == {"cpu"}


@pytest.mark.parametrize("ngl", [62, 99, 999, -1, -2, None])
def test_every_way_of_saying_all(deepseek, ngl):
    plan = place_llamacpp(deepseek, LlamaCppFlags(n_gpu_layers=ngl))
    assert per_device(plan) == {"cpu": DS_EMBD, "cuda:0": DS_TOTAL - DS_EMBD}


def test_tensor_split_3_1(deepseek):
    plan = place_llamacpp(deepseek, LlamaCppFlags(n_gpu_layers=99, tensor_split=(3.0, 1.0)))
    # cut at 3/4 of 62 slots: slot k goes to GPU 0 while k/62 < 0.75, i.e. k <= 46; the output layer is slot 61
    assert plan.layer_devices == ("cuda:0",) * 47 + ("cuda:1",) * 14
    assert plan.output_device == "cuda:1"
    assert per_device(plan) == {
        "cpu": DS_EMBD,
        "cuda:0": 3 * DS_DENSE_BLOCK + 44 * DS_MOE_BLOCK,
        "cuda:1": 14 * DS_MOE_BLOCK + DS_OUTPUT,
    }
    assert plan.flags_line == "-ngl 99 -ts 3,1"


def test_tensor_split_with_partial_offload(deepseek):
    plan = place_llamacpp(deepseek, LlamaCppFlags(n_gpu_layers=20, tensor_split=(1.0, 1.0)))
    # slots 42..61 offloaded (20); slot 42 + j goes to GPU 0 while j/20 < 0.5: blocks 42..51 → GPU 0
    assert plan.layer_devices == ("cpu",) * 42 + ("cuda:0",) * 10 + ("cuda:1",) * 9
    assert plan.output_device == "cuda:1"


def test_override_first_match_wins(deepseek):
    ot = parse_override_tensor([r"blk\.(3|4)\.ffn_.*_exps=CPU", "exps=CUDA1"])
    plan = place_llamacpp(deepseek, LlamaCppFlags(n_gpu_layers=99, override_tensor=ot))
    assert devices_of(plan, r"^blk\.[34]\.ffn_\w+_exps") == {"cpu"}
    assert devices_of(plan, r"^blk\.([5-9]|\d\d)\.ffn_\w+_exps") == {"cuda:1"}
    # 2 GPUs implied by CUDA1, no -ts: an even split, 31 slots each
    assert plan.layer_devices == ("cuda:0",) * 31 + ("cuda:1",) * 30
    moe_rest = DS_MOE_BLOCK - DS_EXPERTS
    assert per_device(plan) == {
        "cpu": 2 * DS_EXPERTS + DS_EMBD,
        "cuda:0": 3 * DS_DENSE_BLOCK + 28 * moe_rest,
        "cuda:1": 30 * moe_rest + DS_OUTPUT + 56 * DS_EXPERTS,
    }
    assert plan.flags_line == r"-ngl 99 -ts 1,1 -ot 'blk\.(3|4)\.ffn_.*_exps=CPU' -ot exps=CUDA1"


def test_override_order_matters(deepseek):
    ot = parse_override_tensor([r"exps=CUDA1,blk\.(3|4)\.ffn_.*_exps=CPU"])
    plan = place_llamacpp(deepseek, LlamaCppFlags(n_gpu_layers=99, override_tensor=ot))
    assert devices_of(plan, r"_exps") == {"cuda:1"}
    assert any(r"blk\.(3|4)\.ffn_.*_exps=CPU matched no tensor" in n for n in plan.notes)


def test_override_beats_cpu_moe(deepseek):
    ot = parse_override_tensor([r"blk\.10\.ffn_up_exps=CUDA0"])
    plan = place_llamacpp(deepseek, LlamaCppFlags(n_gpu_layers=99, override_tensor=ot, cpu_moe=True))
    assert devices_of(plan, r"^blk\.10\.ffn_up_exps") == {"cuda:0"}
    assert per_device(plan)["cpu"] == 58 * DS_EXPERTS - q(7168, 2048 * 256, Q4K) + DS_EMBD
    assert plan.flags_line == r"-ngl 99 -ot 'blk\.10\.ffn_up_exps=CUDA0' --cpu-moe"


def test_override_moves_token_embd(deepseek):
    plan = place_llamacpp(deepseek, LlamaCppFlags(override_tensor=(("token_embd", "CUDA0"),)))
    assert per_device(plan) == {"cuda:0": DS_TOTAL}


def test_flags_line_round_trips(deepseek):
    flags = LlamaCppFlags(n_gpu_layers=40, tensor_split=(2.0, 1.0), n_cpu_moe=12,
                          override_tensor=parse_override_tensor([r"blk\.5\d\.ffn_down_exps=CPU"]))
    plan = place_llamacpp(deepseek, flags)
    again = place_llamacpp(deepseek, _parse_line(plan.flags_line))
    assert again.checkpoint.tensors == plan.checkpoint.tensors
    assert again.flags_line == plan.flags_line


def _parse_line(line: str) -> LlamaCppFlags:
    """A tiny reading of llama.cpp's own option syntax, to check the flags line is what it claims."""
    words = shlex.split(line)
    values: dict = {"override_tensor": ()}
    while words:
        flag = words.pop(0)
        if flag == "--cpu-moe":
            values["cpu_moe"] = True
            continue
        arg = words.pop(0)
        if flag == "-ngl":
            values["n_gpu_layers"] = parse_n_gpu_layers(arg)
        elif flag == "-ts":
            values["tensor_split"] = parse_tensor_split(arg)
        elif flag == "-ot":
            values["override_tensor"] += parse_override_tensor([arg])
        elif flag == "--n-cpu-moe":
            values["n_cpu_moe"] = int(arg)
        elif flag == "-sm":
            values["split_mode"] = arg
        elif flag == "-mg":
            values["main_gpu"] = int(arg)
    return LlamaCppFlags(**values)


# --- Llama-3.2-3B F16: tied embeddings (no output.weight) and a rope_freqs tensor -------------------------------

LL_TOTAL = 6_425_850_112  # fixture total; checked against the shapes below in test_llama_hand_numbers
LL_EMBD = 3072 * 128256 * 2
LL_ROPE = 64 * 4  # rope_freqs.weight (64,) F32
LL_BLOCK = (3072 * 3072 * 2 * 2 + 3072 * 1024 * 2 * 2  # attn_q, attn_output; attn_k, attn_v
            + 3 * 3072 * 8192 * 2 + 2 * 3072 * 4)  # ffn_gate/up/down; attn_norm, ffn_norm


@pytest.fixture(scope="module")
def llama() -> Checkpoint:
    return inspector.load(str(MODELS / "llama-3.2-3b-f16.gguf"))


def test_llama_hand_numbers(llama):
    assert 28 * LL_BLOCK + LL_EMBD + 3072 * 4 + LL_ROPE == LL_TOTAL == llama.nbytes


def test_tied_output_is_copied_to_the_gpu(llama):
    plan = place_llamacpp(llama, LlamaCppFlags())
    # token_embd stays on the CPU; the output layer's copy of it (TENSOR_DUPLICATED) and 27 more copies of
    # rope_freqs (blocks 1..27) are allocated on the GPU
    assert per_device(plan) == {"cpu": LL_EMBD, "cuda:0": LL_TOTAL - LL_EMBD + LL_EMBD + 27 * LL_ROPE}
    assert plan.checkpoint.params == llama.params  # copies add bytes, not parameters
    copy = [t for t in plan.checkpoint.tensors if t.name == "token_embd.weight [output copy]"]
    assert len(copy) == 1 and copy[0].device == "cuda:0" and copy[0].role == "output"
    assert any("a second time on the GPU" in n for n in plan.notes)


def test_ngl_one_moves_only_the_output_layer(llama):
    plan = place_llamacpp(llama, LlamaCppFlags(n_gpu_layers=1))
    assert per_device(plan) == {"cuda:0": LL_EMBD + 3072 * 4, "cpu": LL_TOTAL - 3072 * 4}


def test_ngl_zero_is_the_file(llama):
    plan = place_llamacpp(llama, LlamaCppFlags(n_gpu_layers=0))
    assert per_device(plan) == {"cpu": LL_TOTAL}
    assert plan.n_gpus == 0 and plan.flags_line == "-ngl 0"


def test_split_mode_none_uses_the_main_gpu(llama):
    plan = place_llamacpp(llama, LlamaCppFlags(split_mode="none", main_gpu=1, tensor_split=(1.0, 1.0)))
    assert per_device(plan) == {"cpu": LL_EMBD, "cuda:1": LL_TOTAL + 27 * LL_ROPE}
    assert plan.flags_line == "-ngl 29 -sm none -mg 1 -ts 1,1"


def test_split_mode_row(llama):
    plan = place_llamacpp(llama, LlamaCppFlags(split_mode="row", tensor_split=(3.0, 2.0)))
    # Layers: 29 slots cut at 3/5: slots 0..17 on GPU 0 (17/29 < 0.6), 18..27 and the output on GPU 1.
    assert plan.layer_devices == ("cuda:0",) * 18 + ("cuda:1",) * 10
    # Matrix rows split at floor(rows * 0.6) rounded down to 128, whatever the layer:
    # 3072 rows → 1792 | 1280; 1024 → 512 | 512; 8192 → 4864 | 3328; 128256 (output copy) → 76928 | 51328.
    # No padding: every ne0 (3072, 8192) is a multiple of 512.
    row = 3072 * 2
    gpu0_block = (1792 * row * 2 + 512 * row * 2 + 4864 * row * 2) + 1792 * 8192 * 2
    gpu1_block = (1280 * row * 2 + 512 * row * 2 + 3328 * row * 2) + 1280 * 8192 * 2
    norms = 2 * 3072 * 4
    assert per_device(plan) == {
        "cpu": LL_EMBD,
        "cuda:0": 28 * gpu0_block + 18 * norms + LL_ROPE + 17 * LL_ROPE + 76928 * row,
        "cuda:1": 28 * gpu1_block + 10 * norms + 10 * LL_ROPE + 51328 * row + 3072 * 4,
    }
    slices = [t for t in plan.checkpoint.tensors if t.name.startswith("blk.20.attn_q.weight")]
    assert [(t.name, t.device, t.shape) for t in slices] == [
        ("blk.20.attn_q.weight [rows 0:1792]", "cuda:0", (3072, 1792)),
        ("blk.20.attn_q.weight [rows 1792:3072]", "cuda:1", (3072, 1280)),
    ]
    assert sum(t.params for t in slices) == 3072 * 3072


def _tiny(tensors: list[tuple[str, tuple[int, ...], str, int]], *, arch: str = "llama", blocks: int = 1,
          metadata: dict | None = None) -> Checkpoint:
    infos = tuple(
        TensorInfo(name=n, shape=s, dtype=d, nbytes=b, offset=0, file_index=0, params=_prod(s))
        for n, s, d, b in tensors
    )
    meta = {f"{arch}.block_count": blocks, **(metadata or {})}
    return assign_roles(Checkpoint("tiny.gguf", "gguf", arch, (), infos, metadata=meta))


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def test_row_split_padding_and_small_matrices():
    ckpt = _tiny([
        ("token_embd.weight", (2880, 1000), "F16", 2880 * 1000 * 2),
        ("blk.0.attn_norm.weight", (2880,), "F32", 2880 * 4),
        ("blk.0.attn_q.weight", (2880, 4096), "F16", 2880 * 4096 * 2),
        ("blk.0.attn_k.weight", (2880, 100), "F16", 2880 * 100 * 2),
        ("output.weight", (2880, 1000), "F16", 2880 * 1000 * 2),
    ])
    plan = place_llamacpp(ckpt, LlamaCppFlags(split_mode="row", tensor_split=(1.0, 1.0)))
    # 2 slots: block 0 on GPU 0 (0/2 < 0.5), the output layer on GPU 1 (1/2 is not < 0.5).
    # Each slice is padded by (512 - 2880 % 512) = 192 elements = 384 bytes.
    # attn_q: 4096 rows → 2048 | 2048. attn_k: 100 rows → split at 50 → 0: GPU 0 would get no rows, so
    # llama.cpp does not split it (supports_op) and it stays whole on its layer's GPU.
    # output: 1000 rows → 500 → 384 | 616.
    pad, row = 384, 2880 * 2
    assert per_device(plan) == {
        "cpu": 2880 * 1000 * 2,
        "cuda:0": 2880 * 4 + 2048 * row + pad + 100 * row + 384 * row + pad,
        "cuda:1": 2048 * row + pad + 616 * row + pad,
    }


def test_mtp_layers_are_not_loaded_but_count_as_slots():
    ckpt = _tiny([
        ("token_embd.weight", (256, 100), "F32", 256 * 100 * 4),
        ("blk.0.attn_q.weight", (256, 256), "F32", 256 * 256 * 4),
        ("blk.1.attn_q.weight", (256, 256), "F32", 256 * 256 * 4),
        ("blk.2.attn_q.weight", (256, 256), "F32", 256 * 256 * 4),
        ("blk.2.nextn.eh_proj.weight", (512, 256), "F32", 512 * 256 * 4),
        ("output_norm.weight", (256,), "F32", 1024),
        ("output.weight", (256, 100), "F32", 256 * 100 * 4),
    ], arch="glm4moe", blocks=3, metadata={"glm4moe.nextn_predict_layers": 1})
    plan = place_llamacpp(ckpt, LlamaCppFlags(n_gpu_layers=2))
    # 4 slots; -ngl 2 = the output layer and block 2, which is the (skipped) MTP block
    assert per_device(plan) == {
        "cpu": 256 * 100 * 4 + 2 * 256 * 256 * 4,
        "cuda:0": 1024 + 256 * 100 * 4,
        None: 256 * 256 * 4 + 512 * 256 * 4,
    }
    assert any("MTP" in n and "--spec-type draft-mtp" in n for n in plan.notes)


def test_unknown_tensors_are_named_and_unplaced():
    ckpt = _tiny([
        ("token_embd.weight", (64, 10), "F32", 2560),
        ("blk.0.attn_q.weight", (64, 64), "F32", 16384),
        ("v.blk.0.attn_q.weight", (64, 64), "F32", 16384),
        ("output.weight", (64, 10), "F32", 2560),
    ])
    plan = place_llamacpp(ckpt, LlamaCppFlags())
    assert per_device(plan) == {"cpu": 2560, "cuda:0": 16384 + 2560, None: 16384}
    assert any("v.blk.0.attn_q.weight" in n for n in plan.notes)


def test_cpu_moe_on_a_dense_model_says_so(llama):
    plan = place_llamacpp(llama, LlamaCppFlags(cpu_moe=True))
    assert any("no routed-expert tensors" in n for n in plan.notes)


# --- safetensors inputs are mapped to GGUF names first -----------------------------------------------------------


def test_safetensors_mixtral_cpu_moe():
    ckpt = inspector.load(str(MODELS / "mixtral-8x7b-bf16"))
    plan = place_llamacpp(ckpt, LlamaCppFlags(n_gpu_layers=99, cpu_moe=True))
    assert plan.checkpoint.format == "gguf"
    experts = 32 * 3 * 4096 * 14336 * 8 * 2  # BF16 ffn_{gate,up,down}_exps of 32 blocks
    embd = 4096 * 32000 * 2
    attention = 32 * (4096 * 4096 * 2 + 4096 * 1024 * 2) * 2  # q, o; k, v (BF16)
    small = 32 * 2 * 4096 * 4 + 4096 * 4 + 32 * 4096 * 8 * 4  # norms and routers, F32 after conversion
    assert per_device(plan) == {"cpu": experts + embd, "cuda:0": attention + small + embd}


# --- parsing ---------------------------------------------------------------------------------------------------


def test_parse_override_tensor():
    assert parse_override_tensor(["a=CPU,b=CUDA0", r"blk\.1\.=CUDA12"]) == (
        ("a", "cpu"), ("b", "cuda:0"), (r"blk\.1\.", "cuda:12"))
    assert parse_override_tensor(["x=y=CPU"][:0]) == ()


@pytest.mark.parametrize("value, words", [
    (r"blk\.{3,5}=CPU", "no '=BUFT'"),  # the comma splits the regex, as in llama.cpp
    ("exps", "no '=BUFT'"),
    ("exps=CPU,", "no '=BUFT'"),
    ("exps=Vulkan0", "unknown buffer type 'Vulkan0'"),
    ("exps=CPU=1", "unknown buffer type 'CPU=1'"),
    ("ex(ps=CPU", "invalid regex"),
    ("(?P<x>exps)=CPU", "named groups"),
    ("(?<!ffn)_exps=CPU", "look-behind"),
    ("(?<=ffn)_exps=CPU", "invalid regex '(?<'"),  # the first '=' ends the pattern, as in llama.cpp
    ("(?i)EXPS=CPU", "inline flags"),
])
def test_parse_override_tensor_errors(value, words):
    with pytest.raises(UsageError, match=re.escape(words)):
        parse_override_tensor([value])


def test_parse_tensor_split():
    assert parse_tensor_split("3,1") == (3.0, 1.0)
    assert parse_tensor_split("3/1") == (3.0, 1.0)
    assert parse_tensor_split("0.5,,0.25") == (0.5, 0.25)
    for bad in ("a,1", "-1,2", "0,0", ",".join(["1"] * 16), "3,"):
        with pytest.raises(UsageError):
            parse_tensor_split(bad)


def test_parse_n_gpu_layers():
    assert parse_n_gpu_layers("auto") is None
    assert parse_n_gpu_layers("-1") is None
    assert parse_n_gpu_layers("all") == -2
    assert parse_n_gpu_layers("99") == 99
    with pytest.raises(UsageError):
        parse_n_gpu_layers("lots")


@pytest.mark.parametrize("flags", [
    LlamaCppFlags(split_mode="tensor"),
    LlamaCppFlags(n_cpu_moe=-1),
    LlamaCppFlags(tensor_split=(0.0, 0.0)),
    LlamaCppFlags(override_tensor=(("exps", "NPU0"),)),
])
def test_bad_flag_values(llama, flags):
    with pytest.raises(UsageError):
        place_llamacpp(llama, flags)


# --- the real map (independent of the fixture generator) ---------------------------------------------------------

_MAP_LINE = re.compile(r"^[^:]+:[0-9a-f]+:(?P<name>[^:]+):shape=\((?P<shape>[^)]*)\):dtype=(?P<dtype>\w+):"
                       r"elements=(?P<elements>\d+):bytes=(?P<bytes>\d+)$")


@needs_shared
@pytest.mark.real
def test_real_map_cpu_moe_and_n_cpu_moe():
    path = THIREUS / "DeepSeek-V3.1-Terminus" / "tensors.q4_K.map"
    rows = [_MAP_LINE.match(line).groupdict() for line in path.read_text().splitlines() if line.strip()]
    tensors = tuple(
        TensorInfo(r["name"], tuple(int(x) for x in r["shape"].split(",") if x.strip()), r["dtype"].upper(),
                   int(r["bytes"]), 0, 0, int(r["elements"]))
        for r in rows
    )
    ckpt = assign_roles(Checkpoint("map", "gguf", "deepseek2", (), tensors, metadata={"deepseek2.block_count": 61}))
    total = sum(int(r["bytes"]) for r in rows)
    experts = sum(int(r["bytes"]) for r in rows if re.search(r"ffn_(up|gate|down)_exps", r["name"]))
    embd = sum(int(r["bytes"]) for r in rows if r["name"] == "token_embd.weight")
    plan = place_llamacpp(ckpt, LlamaCppFlags(n_gpu_layers=99, cpu_moe=True))
    assert per_device(plan) == {"cpu": experts + embd, "cuda:0": total - experts - embd}
    early = sum(int(r["bytes"]) for r in rows if re.match(r"blk\.\d\.ffn_\w+_exps", r["name"]))
    plan = place_llamacpp(ckpt, LlamaCppFlags(n_gpu_layers=99, n_cpu_moe=10))
    assert per_device(plan)["cpu"] == early + embd
