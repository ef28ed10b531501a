"""Quantized checkpoints under tensor and expert parallelism: every auxiliary tensor follows its weight's split
(AWQ and GPTQ [in, out] packed int32 layouts, GPTQ's g_idx, compressed-tensors pack-quantized, bitsandbytes 4-bit
flattened data, gpt-oss MXFP4 blocks and scales, online FP8). Shapes are written out by hand from the formats'
layouts; a tiny Llama-like model (hidden 256, 4 heads / 2 KV heads of 64, intermediate 512) keeps them readable."""
from __future__ import annotations

import json
from pathlib import Path

from fixtures.generate import safetensors_header, write_safetensors
from inspector import api

CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "num_attention_heads": 4,
          "num_key_value_heads": 2, "intermediate_size": 512, "num_hidden_layers": 1, "vocab_size": 1000,
          "max_position_embeddings": 4096, "torch_dtype": "float16", "tie_word_embeddings": False}
LINEARS = {"self_attn.q_proj": (256, 256), "self_attn.k_proj": (128, 256), "self_attn.v_proj": (128, 256),
           "self_attn.o_proj": (256, 256), "mlp.gate_proj": (512, 256), "mlp.up_proj": (512, 256),
           "mlp.down_proj": (256, 512)}  # module: (out, in)


def write(folder: Path, quant: dict, linear_entries) -> str:  # type: ignore[no-untyped-def]
    entries = [("model.embed_tokens.weight", "F16", (1000, 256)), ("lm_head.weight", "F16", (1000, 256)),
               ("model.norm.weight", "F16", (256,)), ("model.layers.0.input_layernorm.weight", "F16", (256,))]
    for module, (out, inn) in LINEARS.items():
        entries += [(f"model.layers.0.{module}.{p}", dtype, shape) for p, dtype, shape in linear_entries(out, inn)]
    folder.mkdir(parents=True)
    header, _ = safetensors_header(entries)
    (folder / "model.safetensors").write_bytes(header)
    (folder / "config.json").write_text(json.dumps({**CONFIG, "quantization_config": quant}))
    return str(folder)


def shapes(result, device: str = "cuda:1") -> dict[str, tuple[int, ...]]:  # type: ignore[no-untyped-def]
    return {t.name.removeprefix("model.layers.0."): t.shape for t in result.checkpoint.tensors if t.device == device}


def test_awq_packed_in_out_layout(tmp_path: Path) -> None:
    src = write(tmp_path / "awq", {"quant_method": "awq", "bits": 4, "group_size": 64},
                lambda out, inn: [("qweight", "I32", (inn, out // 8)), ("qzeros", "I32", (inn // 64, out // 8)),
                                  ("scales", "F16", (inn // 64, out))])
    got = shapes(api.inspect(src, runtime="vllm", vllm_tp=2))
    # column-parallel: the output dim is axis 1 ([in, out / 8] int32 holds 8 four-bit values per element)
    assert got["self_attn.q_proj.qweight"] == (256, 16) and got["self_attn.q_proj.scales"] == (4, 128)
    assert got["self_attn.k_proj.qzeros"] == (4, 8)  # 2 KV heads / 2 ranks: 64 outputs, 8 int32 columns
    # row-parallel: the input dim is axis 0
    assert got["self_attn.o_proj.qweight"] == (128, 32) and got["self_attn.o_proj.qzeros"] == (2, 32)
    assert got["mlp.down_proj.scales"] == (4, 256)
    assert got["model.embed_tokens.weight"] == (512, 256)  # pad_vocab_size(1000, 64) = 1024, / 2


def test_gptq_g_idx_follows_the_input_dim(tmp_path: Path) -> None:
    src = write(tmp_path / "gptq", {"quant_method": "gptq", "bits": 4, "group_size": 64, "desc_act": True},
                lambda out, inn: [("qweight", "I32", (inn // 8, out)), ("qzeros", "I32", (inn // 64, out // 8)),
                                  ("scales", "F16", (inn // 64, out)), ("g_idx", "I32", (inn,))])
    got = shapes(api.inspect(src, runtime="vllm", vllm_tp=2))
    assert got["self_attn.q_proj.qweight"] == (32, 128) and got["self_attn.q_proj.g_idx"] == (256,)  # replicated
    assert got["self_attn.o_proj.qweight"] == (16, 256) and got["self_attn.o_proj.g_idx"] == (128,)  # split
    assert got["mlp.down_proj.scales"] == (4, 256) and got["mlp.down_proj.qzeros"] == (4, 32)


def test_compressed_tensors_pack_quantized(tmp_path: Path) -> None:
    src = write(tmp_path / "ct", {"quant_method": "compressed-tensors", "format": "pack-quantized"},
                lambda out, inn: [("weight_packed", "I32", (out, inn // 8)), ("weight_scale", "BF16", (out, inn // 128)),
                                  ("weight_shape", "I64", (2,))])
    result = api.inspect(src, runtime="vllm", vllm_tp=2)
    got = shapes(result)
    assert got["mlp.up_proj.weight_packed"] == (256, 32) and got["mlp.up_proj.weight_scale"] == (256, 2)
    assert got["mlp.down_proj.weight_packed"] == (256, 32) and got["mlp.down_proj.weight_scale"] == (256, 2)
    assert got["self_attn.o_proj.weight_scale"] == (256, 1)  # 2 groups of 128 inputs, one per rank
    assert got["mlp.down_proj.weight_shape"] == (2,)
    scale = next(t for t in result.checkpoint.tensors if t.name.endswith("up_proj.weight_scale"))
    assert (scale.dtype, scale.nbytes) == ("BF16", 256 * 2 * 2)  # scales keep their own dtype


def test_bitsandbytes_4bit_flattened(tmp_path: Path) -> None:
    def nf4(out: int, inn: int):  # type: ignore[no-untyped-def]
        n = out * inn  # double-quantized NF4: data [n / 2, 1] U8, absmax [n / 64] U8, nested_absmax [n / 64 / 256]
        return [("weight", "U8", (n // 2, 1)), ("weight.absmax", "U8", (n // 64,)),
                ("weight.nested_absmax", "F32", (n // 64 // 256,)), ("weight.nested_quant_map", "F32", (256,)),
                ("weight.quant_map", "F32", (16,)), ("weight.quant_state.bitsandbytes__nf4", "U8", (117,))]

    src = write(tmp_path / "bnb", {"quant_method": "bitsandbytes", "load_in_4bit": True}, nf4)
    got = shapes(api.inspect(src, runtime="vllm", vllm_tp=2))
    assert got["mlp.gate_proj.weight"] == (512 * 256 // 2 // 2, 1)  # half of the packed bytes per rank
    assert got["mlp.gate_proj.weight.absmax"] == (512 * 256 // 64 // 2,)
    assert got["self_attn.k_proj.weight"] == (128 * 256 // 2 // 2, 1)  # one of 2 KV heads
    assert got["mlp.gate_proj.weight.quant_map"] == (16,)
    assert got["mlp.gate_proj.weight.quant_state.bitsandbytes__nf4"] == (117,)


def test_online_fp8_quantization_of_a_16_bit_checkpoint(tmp_path: Path) -> None:
    src = write(tmp_path / "fp16", {}, lambda out, inn: [("weight", "F16", (out, inn))])
    plain = api.inspect(src, runtime="vllm")
    fp8 = api.inspect(src, runtime="vllm", quantization="fp8")
    linear = sum(out * inn for out, inn in LINEARS.values())
    # each linear weight: one byte per value plus its float32 per-tensor scale; embeddings, norms stay float16
    assert fp8.placed_bytes == plain.placed_bytes - linear * 2 + linear + 7 * 4


def test_gpt_oss_mxfp4_experts_under_tp_and_ep(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "oss", "gpt-oss-20b", n_layers=1)
    tp = shapes(api.inspect(str(tmp_path / "oss"), runtime="vllm", vllm_tp=2))
    # [E, rows, cols / 32, 16] blocks: gate_up rows (2 x 2880) halved, down's input blocks (2880 / 32 = 90) halved
    assert tp["mlp.experts.gate_up_proj_blocks"] == (32, 2880, 90, 16)
    assert tp["mlp.experts.gate_up_proj_scales"] == (32, 2880, 90)
    assert tp["mlp.experts.gate_up_proj_bias"] == (32, 2880)
    assert tp["mlp.experts.down_proj_blocks"] == (32, 2880, 45, 16)
    assert tp["mlp.experts.down_proj_bias"] == (32, 2880)  # a row-parallel bias is added once: kept whole
    assert tp["self_attn.sinks"] == (32,)  # one per query head: 64 / 2
    ep = shapes(api.inspect(str(tmp_path / "oss"), runtime="vllm", vllm_tp=2, enable_expert_parallel=True))
    assert ep["mlp.experts.gate_up_proj_blocks"] == (16, 5760, 90, 16)  # 32 experts / EP 2, whole
    assert ep["mlp.experts.down_proj_bias"] == (16, 2880)
    sixteen = shapes(api.inspect(str(tmp_path / "oss"), runtime="vllm", vllm_tp=16), "cuda:15")
    assert sixteen["self_attn.k_proj.weight"] == (64, 2880)  # 8 KV heads < 16 ranks: one head of 64 per rank
