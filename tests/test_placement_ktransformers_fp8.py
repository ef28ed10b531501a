"""KTransformers rules on safetensors checkpoints: Hugging Face names, GGUF names inside merged safetensors, and FP8
weights with their `weight_scale_inv` block scales (facts from kvcache-ai/ktransformers: util/custom_loader.py
SafeTensorLoader.load_tensor / load_dequantized_tensor / load_experts, operators/linear.py KLinearBase.load_weight,
KLinearFP8.load, KLinearTorch.load; util/utils.py load_cur_state_dict).

DeepSeek-R1 FP8 (the real config of ../shared/data/real/itounagi0116__DeepSeek-R1, shrunk to 4 layers: 0-2 dense,
3 MoE with its 256 experts): every Linear but the router is float8_e4m3 with a float32 weight_scale_inv of
ceil(out/128) x ceil(in/128) blocks. By hand, for layer 3:
  q_a_proj   [1536, 7168]  FP8 1536*7168 = 11,010,048 bytes; scale 12 x 56 x 4 = 2,688 bytes
  kv_b_proj  [32768, 512]  dequantized by load_cur_state_dict: 32768*512*2 = 33,554,432 bytes bf16; its scale
                           256 x 4 blocks is folded in (0 bytes resident)
  experts    256 x 3 x [2048 x 7168] FP8 = 11,274,289,152 bytes read as stored, scales 256 x 3 x 16 x 56 x 4 =
             2,752,512 bytes
"""
from __future__ import annotations

import math
from pathlib import Path


from inspector.api import validate_placement
from inspector.model import Checkpoint, TensorInfo
from inspector.roles import assign_roles

from ._kt_rules import ATTENTION, EXPERTS_CLASS, KT_MODEL, LINEAR, kt_rule
from ._shared import needs_shared
from .test_convert_view import deepseek_v3, real_config

WIDTH = {"BF16": 2, "F32": 4, "F8_E4M3": 1, "U8": 1, "I32": 4}

def fp8_rules(generate_op: str) -> str:
    """A rule file written for these tests after KTransformers' DeepSeek-V3-Chat-fp8-linear-ggml-experts.yaml: FP8
    linears on the GPU with `generate_op` (kv_b_proj excepted, it stays inside the attention module), the router on
    the GPU, the experts on the CPU, the embedding on the CPU."""
    return "".join([
        kt_rule(r"^model\.layers\.(?!.*self_attn\.kv_b_proj).*$", LINEAR, match_class="torch.nn.Linear",
                generate_device="cuda", prefill_device="cuda", generate_op=generate_op, prefill_op="KLinearTorch"),
        kt_rule(r"^model\.layers\..*\.mlp$", "ktransformers.operators.experts.KDeepseekV3MoE",
                match_class="ktransformers.models.modeling_deepseek_v3.DeepseekV3MoE", generate_device="cuda",
                prefill_device="cuda"),
        kt_rule(None, "ktransformers.operators.gate.KMoEGate",
                match_class="ktransformers.models.modeling_deepseek_v3.MoEGate", generate_device="cuda:0",
                prefill_device="cuda:0"),
        kt_rule(r"^model\.layers\..*\.mlp\.experts$", EXPERTS_CLASS, prefill_device="cuda", prefill_op="KExpertsTorch",
                generate_device="cpu", generate_op="KExpertsCPU", out_device="cuda", recursive=False),
        kt_rule(r"^model\.layers\..*\.self_attn$", ATTENTION, generate_device="cuda", prefill_device="cuda"),
        kt_rule(r"^model$", KT_MODEL, per_layer_prefill_intput_threshold=0),
        kt_rule(r"^model.embed_tokens", "default", generate_device="cpu", prefill_device="cpu"),
    ])


def checkpoint(specs, config) -> Checkpoint:
    tensors, offset = [], 0
    for name, shape, dtype in specs:
        n = math.prod(shape)
        tensors.append(TensorInfo(name, tuple(shape), dtype, n * WIDTH[dtype], offset, 0, n))
        offset += n * WIDTH[dtype]
    return assign_roles(Checkpoint("mem://r1-fp8", "safetensors", config["model_type"], (), tuple(tensors), {},
                                   config))


def r1_config() -> dict:
    cfg = real_config("itounagi0116__DeepSeek-R1")
    return {**cfg, "num_hidden_layers": 4, "num_nextn_predict_layers": 0}


def rules(tmp_path: Path, op: str) -> Path:
    path = tmp_path / f"fp8-{op}.yaml"
    path.write_text(fp8_rules(op))
    return path


def placed(result) -> dict[str, TensorInfo]:
    return {t.name: t for t in result.placed.checkpoint.tensors}


@needs_shared
def test_fp8_linears_keep_their_scales_and_the_rest_is_dequantized(tmp_path) -> None:
    cfg = r1_config()
    result = validate_placement(rules(tmp_path, "KLinearFP8"), checkpoint(deepseek_v3(cfg, fp8=True), cfg))
    t = placed(result)
    q_a, q_a_s = t["model.layers.3.self_attn.q_a_proj.weight"], t["model.layers.3.self_attn.q_a_proj.weight_scale_inv"]
    assert (q_a.device, q_a.dtype, q_a.nbytes) == ("cuda:0", "F8_E4M3", 1536 * 7168)
    assert (q_a_s.device, q_a_s.dtype, q_a_s.nbytes) == ("cuda:0", "F32", 12 * 56 * 4)
    kv_b, kv_b_s = t["model.layers.0.self_attn.kv_b_proj.weight"], t["model.layers.0.self_attn.kv_b_proj.weight_scale_inv"]
    assert (kv_b.device, kv_b.dtype, kv_b.nbytes) == ("cuda:0", "BF16", 32768 * 512 * 2)
    assert (kv_b_s.dtype, kv_b_s.nbytes) == ("folded", 0)
    # the dense MLP of layer 0 is FP8 too: gate_proj [18432, 7168], scale 144 x 56
    g = t["model.layers.0.mlp.gate_proj.weight_scale_inv"]
    assert (g.device, g.nbytes) == ("cuda:0", 144 * 56 * 4)
    # FP8 experts cannot be read by any expert op from safetensors: an error, sized as read
    assert any(f.code == "fp8-experts" and f.severity == "error" for f in result.findings)
    experts = [x for x in result.placed.checkpoint.tensors if ".mlp.experts." in x.name]
    assert sum(x.nbytes for x in experts) == 256 * 3 * 2048 * 7168 + 256 * 3 * 16 * 56 * 4
    assert {x.device for x in experts} == {"cpu"}
    # every scale tensor is placed (none is "not loaded")
    assert not [n for n in (x.name for x in result.placed.checkpoint.tensors) if n.endswith("_scale_inv")
                and t[n].device is None]
    assert not any(f.code == "not-loaded" for f in result.findings)


@needs_shared
def test_an_fp8_weight_through_klinear_torch_takes_its_scale_for_a_bias(tmp_path) -> None:
    cfg = r1_config()
    result = validate_placement(rules(tmp_path, "KLinearTorch"), checkpoint(deepseek_v3(cfg, fp8=True), cfg))
    assert any(f.code == "fp8-scale-as-bias" and f.severity == "error" for f in result.findings)
    t = placed(result)
    # KLinearTorch.load: weight cast to bf16 (unscaled), the scale cast to bf16 as a bias
    assert t["model.layers.3.self_attn.q_a_proj.weight"].nbytes == 1536 * 7168 * 2
    s = t["model.layers.3.self_attn.q_a_proj.weight_scale_inv"]
    assert (s.dtype, s.nbytes) == ("BF16", 12 * 56 * 2)


@needs_shared
def test_gguf_names_inside_merged_safetensors_are_found(tmp_path) -> None:
    """merge_safetensor_gguf.py output: FP8 linears and their scales under GGUF names, experts as stacked GGUF
    tensors (raw Q4_K bytes, U8) with .ggml_type scalars. SafeTensorLoader finds them through
    translate_name_to_gguf; KExpertsCPU takes the stacked experts as stored (Q4_K: 144 bytes per 256 values)."""
    cfg = r1_config()
    hf = checkpoint(deepseek_v3(cfg, fp8=True), cfg)
    from inspector.runtimes.ktransformers.data import kt_data

    data = kt_data()
    specs = []
    for x in hf.tensors:
        if ".mlp.experts." in x.name:
            continue
        specs.append((data.translate(x.name), x.shape, x.dtype))
    for proj, (rows, cols) in (("gate", (2048, 7168)), ("up", (2048, 7168)), ("down", (7168, 2048))):
        q4k = 256 * rows * cols // 256 * 144
        specs += [(f"blk.3.ffn_{proj}_exps.weight", (q4k,), "U8"), (f"blk.3.ffn_{proj}_exps.ggml_type", (1,), "I32")]
    merged = checkpoint(specs, cfg)
    result = validate_placement(rules(tmp_path, "KLinearFP8"), merged)
    t = placed(result)
    assert (t["blk.3.attn_q_a.weight"].device, t["blk.3.attn_q_a.weight"].nbytes) == ("cuda:0", 1536 * 7168)
    assert t["blk.3.attn_q_a.weight_scale_inv"].nbytes == 12 * 56 * 4
    exps = t["blk.3.ffn_up_exps.weight"]
    assert (exps.device, exps.nbytes) == ("cpu", 256 * 2048 * 7168 // 256 * 144)
    assert not any(f.code in ("fp8-experts", "missing-tensor") and f.severity == "error" for f in result.findings)
