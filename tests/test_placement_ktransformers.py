"""KTransformers optimize-rule replay: the real rule files on matching checkpoints, bytes derived by hand.

Formats (inspector/placement/kt_formats.py, from KTransformers' operators/linear.py and marlin_utils.py):
- Marlin int4 g64 of a K(in) x N(out) weight: K*N/2 packed + (K/64)*N*2 scales; if K % 128 or N % 128,
  K is padded to a multiple of 128 and N to a multiple of 64 first.
- dequantized ("default", KMoEGate, KLinearTorch, KExpertsTorch): bf16, 2 bytes per element.
- KExpertsCPU (llamafile): the GGUF bytes, on the CPU.

DeepSeek-V3 shapes (config: hidden 7168, q_lora 1536, 128 heads x (128 nope + 64 rope) = 24576 q_b rows,
kv_lora 512 + 64 rope = 576, o_proj in 128 x 128 = 16384, dense ffn 18432, moe ffn 2048, 256 experts,
vocab 129280; 61 layers, 0-2 dense, 3-60 MoE). Per layer, by hand:

  q_a_proj   K=7168  N=1536   7168*1536/2 = 5,505,024 + 112*1536*2 = 344,064      =  5,849,088
  q_b_proj   K=1536  N=24576  1536*24576/2 = 18,874,368 + 24*24576*2 = 1,179,648  = 20,054,016
  kv_a_mqa   K=7168  N=576 (576 % 128 = 64: padded, N stays 576)
                              7168*576/2 = 2,064,384 + 112*576*2 = 129,024        =  2,193,408
  o_proj     K=16384 N=7168   16384*7168/2 = 58,720,256 + 256*7168*2 = 3,670,016  = 62,390,272
  attention Marlin per layer                                                       = 90,486,784
  dense gate/up  K=7168 N=18432  66,060,288 + 112*18432*2 = 4,128,768             = 70,189,056 (x2)
  dense down     K=18432 N=7168  66,060,288 + 288*7168*2 = 4,128,768              = 70,189,056
  dense MLP per layer                                                              = 210,567,168
  shared gate/up K=7168 N=2048   7,340,032 + 112*2048*2 = 458,752                 =  7,798,784 (x2)
  shared down    K=2048 N=7168   7,340,032 + 32*7168*2 = 458,752                  =  7,798,784
  shared expert per layer                                                          = 23,396,352
  kv_b_proj (attn_k_b 128*512*128 + attn_v_b 128*128*512 = 16,777,216 el.) bf16    = 33,554,432
  MoE gate: 256*7168 = 1,835,008 el. + bias 256 -> (1,835,008 + 256) * 2           =  3,670,528
  norms: attn 7168 + ffn 7168 + q_a 1536 + kv_a 512 = 16,384 el. * 2               =     32,768
  lm_head   K=7168 N=129280  7168*129280/2 = 463,339,520 + 112*129280*2 = 28,958,720 = 492,298,240
  model.norm 7168 * 2                                                              =     14,336
  token_embd 129280 * 7168 * 2 (bf16 on the CPU)                                   = 1,853,358,080
  routed experts per MoE layer (Q4_K: 256*2048*7168 el. / 256 * 144 bytes = 2,113,929,216 per
  projection, as the real map's bytes column says)                    3 * 2,113,929,216 = 6,341,787,648
  KExpertsMarlin per MoE layer: 256 * 3 * 7,798,784                                = 5,989,466,112
"""
from __future__ import annotations

from pathlib import Path

import pytest

from inspector import load
from inspector.errors import RulesError
from inspector.model import Checkpoint, TensorInfo
from inspector.formats import storage as fmt
from inspector.runtimes.ktransformers.data import kt_data
from inspector.api import place_from_file, validate_placement
from inspector.placement import detect_placement_kind
from inspector.roles import assign_roles
from inspector.summary import by_device
from tests._kt_rules import EXPERTS_CLASS, kt_rule

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT.parent / "shared" / "ktransformers-rules"
V3_FIXTURE = ROOT / "fixtures" / "models" / "deepseek-v3.1-q4_k_m.gguf"
V31_MAP = ROOT.parent / "shared" / "data" / "real" / "Thireus__GGUF-Tool-Suite" / "DeepSeek-V3.1-Terminus"

needs_rules = pytest.mark.skipif(not RULES.is_dir(), reason="../shared/ktransformers-rules is absent")

ATTN, DENSE, SHARED, KV_B, GATE, NORMS = 90_486_784, 210_567_168, 23_396_352, 33_554_432, 3_670_528, 32_768
LM_HEAD, MODEL_NORM, EMBED = 492_298_240, 14_336, 1_853_358_080
EXPERTS_Q4K, EXPERTS_MARLIN = 6_341_787_648, 5_989_466_112
MOE_LAYER = ATTN + SHARED + KV_B + GATE + NORMS  # 151,140,864: the GPU part of one MoE layer
DENSE_LAYER = ATTN + DENSE + KV_B + NORMS  # 334,641,152


def device_bytes(checkpoint: Checkpoint) -> dict[str, int]:
    return {g.key: g.bytes for g in by_device(checkpoint.tensors)}


def codes(result) -> list[tuple[str, str, int]]:
    return [(f.severity, f.code, f.line) for f in result.findings]


@pytest.fixture(scope="module")
def v3() -> Checkpoint:
    return load(str(V3_FIXTURE))


# ---------------------------------------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------------------------------------
def test_marlin_bytes_and_padding():
    # no padding: 7168 x 1536 as in the table above
    assert fmt.marlin_nbytes(7168, 1536) == 5_849_088
    # out 576: 576 % 128 = 64 -> padding path; K 7168 stays, N rounds up to a multiple of 64 = 576
    assert fmt.marlin_dims(7168, 576) == (7168, 576)
    # Qwen2 router 3584 -> 64: padded path, K 3584 (28*128) stays, N 64 stays: 3584*64/2 + 56*64*2
    assert fmt.marlin_nbytes(3584, 64) == 114_688 + 7_168
    # shared_expert_gate 3584 -> 1: N padded to 64, same bytes as the router
    assert fmt.marlin_dims(3584, 1) == (3584, 64)
    # K 100 -> 128, N 100 -> 128: 128*128/2 + 2*128*2
    assert fmt.marlin_nbytes(100, 100) == 8_192 + 512
    # 8 bits, one group (-1): 7168*1536 + 1*1536*2
    assert fmt.marlin_nbytes(7168, 1536, num_bits=8, group_size=-1) == 11_010_048 + 3_072
    # workspace: (N/64)*16 int32 = N bytes
    assert fmt.marlin_workspace_nbytes(7168, 1536) == 1536


def test_gguf_name_translation_matches_the_reference_table():
    # ../shared/reference/placement.md §5 (translate_name_to_gguf run on these names)
    t = kt_data().translate
    assert t("model.embed_tokens.weight") == "token_embd.weight"
    assert t("lm_head.weight") == "output.weight"
    assert t("model.norm.weight") == "output_norm.weight"
    assert t("model.layers.7.input_layernorm.weight") == "blk.7.attn_norm.weight"
    assert t("model.layers.7.self_attn.kv_a_proj_with_mqa.weight") == "blk.7.attn_kv_a_mqa.weight"
    assert t("model.layers.7.self_attn.kv_b_proj.weight") == "blk.7.attn_kv_b.weight"
    assert t("model.layers.7.mlp.gate.weight") == "blk.7.ffn_gate_inp.weight"
    assert t("model.layers.7.mlp.gate.e_score_correction_bias") == "blk.7.exp_probs_b.bias"
    assert t("model.layers.7.mlp.shared_experts.down_proj.weight") == "blk.7.ffn_down_shexp.weight"
    assert t("model.layers.7.mlp.shared_expert_gate.weight") == "blk.7.ffn_gate_inp_shexp.weight"
    assert t("model.layers.7.mlp.experts") == "blk.7"
    assert t("model.layers.7.mlp.experts.3.gate_proj.weight") == "blk.7.3.ffn_gate_exps"
    assert t("model.layers.7.block_sparse_moe.experts.3.w1.weight") == "blk.7.ffn_gate.3.weight"
    assert t("model.layers.7.block_sparse_moe.gate.weight") == "blk.7.ffn_gate_inp.weight"


# ---------------------------------------------------------------------------------------------------------
# DeepSeek-V3-Chat.yaml: one GPU, experts on the CPU
# ---------------------------------------------------------------------------------------------------------
@needs_rules
def test_v3_chat_bytes_per_device(v3):
    result = validate_placement(RULES / "DeepSeek-V3-Chat.yaml", v3)
    placed = result.placed.checkpoint
    # 61 attention + 3 dense MLP + 58 shared experts + lm_head on Marlin; kv_b, gates, norms in bf16:
    # 5,519,693,824 + 631,701,504 + 1,356,988,416 + 492,298,240 + 2,046,820,352 + 212,890,624 + 2,013,184
    gpu = 61 * ATTN + 3 * DENSE + 58 * SHARED + LM_HEAD + 61 * KV_B + 58 * GATE + 61 * NORMS + MODEL_NORM
    assert gpu == 10_262_406_144  # ≈ 10.26 GB (9.56 GiB), the reference's ≈10.3 GB
    assert device_bytes(placed) == {"cuda:0": gpu, "cpu": EMBED + 58 * EXPERTS_Q4K}


@needs_rules
def test_v3_chat_breakdown(v3):
    placed = validate_placement(RULES / "DeepSeek-V3-Chat.yaml", v3).placed.checkpoint

    def total(*suffixes: str) -> int:
        return sum(t.nbytes for t in placed.tensors if t.device == "cuda:0" and t.name.split(".")[-2] in suffixes)

    assert total("attn_q_a", "attn_q_b", "attn_kv_a_mqa", "attn_output") == 61 * ATTN == 5_519_693_824
    assert total("ffn_gate", "ffn_up", "ffn_down") == 3 * DENSE == 631_701_504
    assert total("ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp") == 58 * SHARED == 1_356_988_416
    assert total("attn_k_b", "attn_v_b") == 61 * KV_B == 2_046_820_352
    assert total("ffn_gate_inp", "exp_probs_b") == 58 * GATE == 212_890_624
    assert total("output") == LM_HEAD
    dtypes = {t.dtype for t in placed.tensors if t.name.endswith("attn_q_a.weight")}
    assert dtypes == {"MARLIN_INT4_G64"}
    embed = next(t for t in placed.tensors if t.name == "token_embd.weight")
    assert (embed.device, embed.dtype, embed.nbytes) == ("cpu", "BF16", EMBED)
    experts = next(t for t in placed.tensors if t.name == "blk.3.ffn_up_exps.weight")
    assert (experts.device, experts.dtype, experts.nbytes) == ("cpu", "Q4_K", 2_113_929_216)
    assert experts.params == 256 * 2048 * 7168  # logical parameters are unchanged


@needs_rules
def test_v3_chat_findings_are_the_known_defaults(v3):
    result = validate_placement(RULES / "DeepSeek-V3-Chat.yaml", v3, gpus=1)
    assert not result.has_errors
    assert {f.severity for f in result.findings} == {"info"}
    defaults = {f.message.split(" match no rule")[0].split(") ")[1] for f in result.findings
                if f.code == "default-device"}
    # the reference §4.1: every RMSNorm, model.norm and self_attn.kv_b_proj stay on cuda:0 unmatched
    assert defaults == {
        "model.layers.*.self_attn.q_a_layernorm", "model.layers.*.self_attn.kv_a_layernorm",
        "model.layers.*.self_attn.kv_b_proj", "model.layers.*.input_layernorm",
        "model.layers.*.post_attention_layernorm", "model.norm",
    }
    kv_b = next(f for f in result.findings if "kv_b_proj" in f.message)
    assert f"({61 * KV_B:,} bytes)" in kv_b.message


@needs_rules
@pytest.mark.real
@pytest.mark.skipif(not V31_MAP.is_dir(), reason="../shared/data/real is absent")
def test_v3_chat_on_a_checkpoint_built_from_the_real_map():
    # The Q4_K map gives every tensor's name, ne shape, ggml type and bytes; nothing is read from a GGUF here.
    tensors = []
    for line in (V31_MAP / "tensors.q4_K.map").read_text().splitlines():
        _, _, name, shape, dtype, elements, nbytes = line.split(":")[:7]
        ne = tuple(int(x) for x in shape[len("shape=("):-1].split(",") if x.strip())
        tensors.append(TensorInfo(name, ne, dtype.split("=")[1].upper(), int(nbytes.split("=")[1]), 0, 0,
                                  int(elements.split("=")[1])))
    checkpoint = assign_roles(Checkpoint("map", "gguf", "deepseek2", (), tuple(tensors),
                                         {"deepseek2.block_count": 61}))
    experts = sum(t.nbytes for t in tensors if "_exps" in t.name)  # the map's own bytes column
    placed = validate_placement(RULES / "DeepSeek-V3-Chat.yaml", checkpoint).placed.checkpoint
    assert device_bytes(placed) == {"cuda:0": 10_262_406_144, "cpu": EMBED + experts}


# ---------------------------------------------------------------------------------------------------------
# the multi-GPU files
# ---------------------------------------------------------------------------------------------------------
@needs_rules
def test_v3_multi_gpu_bytes(v3):
    result = validate_placement(RULES / "DeepSeek-V3-Chat-multi-gpu.yaml", v3, gpus=2)
    # layers 0-29 on cuda:0 (3 dense + 27 MoE), layers 30-60 (31 MoE) + lm_head + model.norm on cuda:1
    cuda0 = 3 * DENSE_LAYER + 27 * MOE_LAYER  # 1,003,923,456 + 4,080,803,328
    cuda1 = 31 * MOE_LAYER + LM_HEAD + MODEL_NORM
    assert (cuda0, cuda1) == (5_084_726_784, 5_177_679_360)
    assert device_bytes(result.placed.checkpoint) == {"cuda:0": cuda0, "cuda:1": cuda1,
                                                      "cpu": EMBED + 58 * EXPERTS_Q4K}
    assert not result.has_errors
    # known: the ([3456][0-9]) ranges name layers 61-69 (info), and the 0-29 MoE-only rules name the dense
    # layers 0-2 as part of the same device split (info); nothing else
    assert {(s, c) for s, c, _ in codes(result)} == {("info", "layer-beyond"), ("info", "layer-missing")}
    beyond = sorted(line for s, c, line in codes(result) if c == "layer-beyond")
    assert beyond == [17, 37, 56, 73, 94, 113, 148]
    missing = sorted(line for s, c, line in codes(result) if c == "layer-missing")
    assert missing == [48, 65, 82]


@needs_rules
def test_v3_multi_gpu_marlin_bytes_and_the_layer_0_4_rule(v3):
    result = validate_placement(RULES / "DeepSeek-V3-Chat-multi-gpu-marlin.yaml", v3, gpus=2)
    # as multi-gpu, plus Marlin experts of layers 3 and 4 on cuda:0 and of layer 30 on cuda:1;
    # lm_head moves to cuda:0 in this file
    cuda0 = 3 * DENSE_LAYER + 27 * MOE_LAYER + 2 * EXPERTS_MARLIN + LM_HEAD
    cuda1 = 31 * MOE_LAYER + MODEL_NORM + EXPERTS_MARLIN
    assert (cuda0, cuda1) == (17_555_957_248, 10_674_847_232)
    assert device_bytes(result.placed.checkpoint) == {"cuda:0": cuda0, "cuda:1": cuda1,
                                                      "cpu": EMBED + 55 * EXPERTS_Q4K}
    marlin = next(t for t in result.placed.checkpoint.tensors if t.name == "blk.4.ffn_down_exps.weight")
    assert (marlin.device, marlin.dtype, marlin.nbytes) == ("cuda:0", "MARLIN_INT4_G64", 256 * 7_798_784)
    warnings = {(c, line) for s, c, line in codes(result) if s == "warning"}
    # "inject experts in layer 0~4 as marlin expert" hits only layers 3 and 4; Marlin experts need
    # CUDA graphs off
    assert warnings == {("layer-missing", 82), ("marlin-cuda-graph", 82), ("marlin-cuda-graph", 91)}
    layer_0_4 = next(f for f in result.findings if f.code == "layer-missing" and f.line == 82)
    assert "only layers 3-4" in layer_0_4.message and "layers 0-2 lack it" in layer_0_4.message


@needs_rules
def test_gpus_flag_turns_cuda1_into_errors(v3):
    result = validate_placement(RULES / "DeepSeek-V3-Chat-multi-gpu.yaml", v3, gpus=1)
    assert result.has_errors
    lines = sorted({f.line for f in result.findings if f.code == "device-beyond-gpus"})
    # every kwargs line that says cuda:1, and the transfer_map
    assert lines == [23, 24, 43, 44, 62, 63, 79, 80, 99, 103, 118, 119, 127, 143, 144, 153, 154]


# ---------------------------------------------------------------------------------------------------------
# Qwen2-57B-A14B
# ---------------------------------------------------------------------------------------------------------
H, LAYERS, E, FF, S, NH, KV, VOCAB = 3584, 28, 64, 2560, 20480, 28, 4, 151936


def _tensor(name: str, ne: tuple[int, ...], dtype: str) -> TensorInfo:
    from inspector.formats.ggml_types import tensor_nbytes, type_by_name

    numel = 1
    for d in ne:
        numel *= d
    gtype = type_by_name(dtype)
    return TensorInfo(name, ne, gtype.name, tensor_nbytes(gtype, ne, source="test", tensor=name), 0, 0, numel)


def qwen2_57b() -> Checkpoint:
    """Qwen2-57B-A14B as llama.cpp names it (qwen2moe), from its config: hidden 3584, 28 layers, 64 experts of
    2560, shared expert 20480, 28 heads and 4 KV heads of 128, vocab 151936. Types: a Q4_K_M-like mix."""
    ts = [_tensor("token_embd.weight", (H, VOCAB), "Q4_K")]
    for i in range(LAYERS):
        b = f"blk.{i}."
        ts += [
            _tensor(b + "attn_norm.weight", (H,), "F32"),
            _tensor(b + "attn_q.weight", (H, NH * 128), "Q4_K"), _tensor(b + "attn_q.bias", (NH * 128,), "F32"),
            _tensor(b + "attn_k.weight", (H, KV * 128), "Q4_K"), _tensor(b + "attn_k.bias", (KV * 128,), "F32"),
            _tensor(b + "attn_v.weight", (H, KV * 128), "Q6_K"), _tensor(b + "attn_v.bias", (KV * 128,), "F32"),
            _tensor(b + "attn_output.weight", (NH * 128, H), "Q4_K"),
            _tensor(b + "ffn_norm.weight", (H,), "F32"),
            _tensor(b + "ffn_gate_inp.weight", (H, E), "F32"),
            _tensor(b + "ffn_gate_exps.weight", (H, FF, E), "Q4_K"),
            _tensor(b + "ffn_up_exps.weight", (H, FF, E), "Q4_K"),
            _tensor(b + "ffn_down_exps.weight", (FF, H, E), "Q6_K"),
            _tensor(b + "ffn_gate_inp_shexp.weight", (H,), "F32"),
            _tensor(b + "ffn_gate_shexp.weight", (H, S), "Q4_K"),
            _tensor(b + "ffn_up_shexp.weight", (H, S), "Q4_K"),
            _tensor(b + "ffn_down_shexp.weight", (S, H), "Q6_K"),
        ]
    ts += [_tensor("output_norm.weight", (H,), "F32"), _tensor("output.weight", (H, VOCAB), "Q6_K")]
    return assign_roles(Checkpoint("qwen2-57b", "gguf", "qwen2moe", (), tuple(ts), {"qwen2moe.block_count": LAYERS}))


@needs_rules
def test_qwen2_57b_bytes():
    result = validate_placement(RULES / "Qwen2-57B-A14B-Instruct.yaml", qwen2_57b(), gpus=1)
    # Marlin per layer (every Linear under model.layers, the router and shared_expert_gate included):
    #   q, o     K=3584 N=3584: 3584*3584/2 + 56*3584*2 = 6,422,528 + 401,408 = 6,823,936 (x2)
    #   k, v     K=3584 N=512:  3584*512/2 + 56*512*2   =   917,504 +  57,344 =   974,848 (x2)
    #   router   K=3584 N=64 (padded path): 114,688 + 7,168                     =   121,856
    #   sh. gate K=3584 N=1 -> 64:                                              =   121,856
    #   shared gate/up K=3584 N=20480: 36,700,160 + 56*20480*2 = 2,293,760     = 38,993,920 (x2)
    #   shared down K=20480 N=3584: 36,700,160 + 320*3584*2 = 2,293,760         = 38,993,920
    marlin = 2 * 6_823_936 + 2 * 974_848 + 2 * 121_856 + 3 * 38_993_920  # 132,823,040
    biases = (3584 + 512 + 512) * 2  # q/k/v biases in bf16: 9,216
    norms = 2 * 3584 * 2  # 14,336
    lm_head = 3584 * 151936 // 2 + 56 * 151936 * 2  # 272,269,312 + 17,016,832 = 289,286,144
    gpu = LAYERS * (marlin + biases + norms) + lm_head + 3584 * 2
    assert gpu == 4_008_997_888
    # experts on the CPU as stored: gate/up Q4_K 64*2560*3584 el. / 256 * 144 = 330,301,440 each,
    # down Q6_K 587,202,560 el. / 256 * 210 = 481,689,600; embedding bf16 151936*3584*2 = 1,089,077,248
    cpu = LAYERS * (2 * 330_301_440 + 481_689_600) + 1_089_077_248
    assert device_bytes(result.placed.checkpoint) == {"cuda:0": gpu, "cpu": cpu}
    # the reference §4.4: model.norm is the only module left to the default
    assert codes(result) == [("info", "default-device", 0)]
    assert "model.norm" in result.findings[0].message


# ---------------------------------------------------------------------------------------------------------
# other ops and backends
# ---------------------------------------------------------------------------------------------------------
def experts_only(device: str, op: str, **backend: str) -> str:
    """Layer 3's experts on `device` with `op` (and `backend`), every other layer's experts on the CPU."""
    return (kt_rule(r"^model\.layers\.3\.mlp\.experts$", EXPERTS_CLASS, generate_device=device, generate_op=op,
                    recursive=False, **backend)
            + kt_rule(r"^model\.layers\..*\.mlp\.experts$", EXPERTS_CLASS, generate_device="cpu",
                      generate_op="KExpertsCPU", recursive=False))


def _layer3(result) -> set[tuple[str, str, int]]:
    return {(t.device, t.dtype, t.nbytes) for t in result.placed.checkpoint.tensors
            if t.name.startswith("blk.3.ffn_") and "_exps" in t.name}


def test_kexperts_torch_dequantizes_a_layer_to_22_5_gb(v3, tmp_path):
    path = tmp_path / "torch.yaml"
    path.write_text(experts_only("cuda:0", "KExpertsTorch"))
    result = validate_placement(path, v3)
    # 256 * 2048 * 7168 el. * 2 bytes = 7,516,192,768 per projection; 3 of them = 22,548,578,304 per layer
    assert _layer3(result) == {("cuda:0", "BF16", 7_516_192_768)}


def test_amx_int8_needs_bf16_and_sizes_int8_buffers(v3, tmp_path):
    path = tmp_path / "amx.yaml"
    path.write_text(experts_only("cpu", "KExpertsCPU", backend="AMXInt8"))
    result = validate_placement(path, v3)
    assert ("error", "amx-needs-bf16", 1) in codes(result)
    # per expert: gate/up n=2048 x k=7168 -> 14,680,064 + 2048*4; down n=7168 x k=2048 -> 14,680,064 + 7168*4
    assert _layer3(result) == {("cpu", "AMX_INT8", 256 * (14_680_064 + 8_192)),
                               ("cpu", "AMX_INT8", 256 * (14_680_064 + 28_672))}


# ---------------------------------------------------------------------------------------------------------
# the API around it
# ---------------------------------------------------------------------------------------------------------
@needs_rules
def test_detect_kind_and_place_from_file(v3, tmp_path):
    assert detect_placement_kind(RULES / "DeepSeek-V3-Chat.yaml") == "ktransformers"
    placed = place_from_file(v3, RULES / "DeepSeek-V3-Chat-multi-gpu-marlin.yaml", gpus=2)
    assert placed.kind == "ktransformers"
    assert all(t.device in ("cuda:0", "cuda:1", "cpu") for t in placed.checkpoint.tensors)
    assert any("marlin-cuda-graph" in w for w in placed.warnings)  # warnings travel apart from notes
    assert any("Marlin workspaces on cuda:0" in n for n in placed.notes)
    with pytest.raises(RulesError, match="device-beyond-gpus|needs GPU 1"):
        place_from_file(v3, RULES / "DeepSeek-V3-Chat-multi-gpu.yaml", gpus=1)


def test_unknown_architecture_is_a_finding(tmp_path):
    checkpoint = assign_roles(Checkpoint("x", "gguf", "gpt2", (), (_tensor("token_embd.weight", (64, 10), "F32"),)))
    path = tmp_path / "r.yaml"
    path.write_text('- match:\n    name: "^model$"\n  replace:\n    class: "default"\n')
    result = validate_placement(path, checkpoint)
    assert codes(result) == [("error", "unknown-architecture", 0)] and result.placed is None
