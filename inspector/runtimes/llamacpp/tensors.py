"""What llama.cpp knows about each GGUF tensor name, as data: which llama.cpp "layer" owns it and its op.

llama.cpp places a tensor by the layer class its `LLM_TENSOR_INFOS` entry declares (`src/llama-arch.cpp`):
the input layer (always the CPU), a repeating layer `blk.N` (the device of block N), or the output layer
(offloaded first by `-ngl`). The op decides whether `-sm row` may split it (only `GGML_OP_MUL_MAT` weights).

Generated from llama.cpp commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f (2026-10-01, as vendored in the
PyPI sdist llama-cpp-python==0.3.36) by running this module on a llama.cpp checkout:

    python -m inspector.placement.llamacpp_tensors /path/to/llama.cpp

Names are the GGUF tensor names without their `.weight`/`.bias`/… suffix, with `#` for a block index.
- KNOWN_ARCHS: `LLM_ARCH_NAMES` (`general.architecture` values llama.cpp loads).
- INPUT_TENSORS / OUTPUT_TENSORS: `LLM_TENSOR_LAYER_INPUT` / `LLM_TENSOR_LAYER_OUTPUT` entries.
- OUTPUT_NORM_NAMED_TOKEN_EMBD_NORM_ARCHS: archs whose output norm is stored as `token_embd_norm`
  (`LLM_TENSOR_OUTPUT_NORM_LFM2`); elsewhere `token_embd_norm` is a repeating-layer tensor.
- LAYER0_TENSORS: repeating-layer tensors without a block number; the model loaders create them with block
  index 0 (`tn(..., 0)`), so they sit on block 0's device. `rope_freqs`/`rope_factors_*` are also created again
  in every other block with `TENSOR_DUPLICATED` (PER_LAYER_DUPLICATED below).
- UNUSED_TENSORS: entries whose op is `GGML_OP_NONE`; the loader skips them ("model has unused tensor").
- MUL_MAT_TENSORS: repeating- and output-layer entries whose op is `GGML_OP_MUL_MAT`.
- TIED_OUTPUT_ARCHS: archs whose loader falls back to `token_embd` as the output matrix when `output.weight` is
  absent, creating it again with `TENSOR_DUPLICATED` in the output layer's buffer (`src/models/*.cpp`).
"""
from __future__ import annotations

# fmt: off
KNOWN_ARCHS = frozenset({
    '(unknown)', 'afmoe', 'apertus', 'arcee', 'arctic', 'arwkv7', 'baichuan', 'bailingmoe', 'bailingmoe2',
    'bailingmoe3', 'bert', 'bitnet', 'bloom', 'chameleon', 'chatglm', 'clip', 'codeshell', 'cogvlm', 'cohere2',
    'cohere2moe', 'command-r', 'dbrx', 'deci', 'deepseek', 'deepseek2', 'deepseek2-ocr', 'deepseek32', 'deepseek4',
    'dflash', 'dots1', 'dots3note', 'dream', 'eagle3', 'ernie4_5', 'ernie4_5-moe', 'eurobert', 'exaone',
    'exaone-moe', 'exaone4', 'falcon', 'falcon-h1', 'gemma', 'gemma-embedding', 'gemma2', 'gemma3', 'gemma3n',
    'gemma4', 'gemma4-assistant', 'glm-dsa', 'glm4', 'glm4moe', 'glm5-next', 'gpt-oss', 'gpt2', 'gptj', 'gptneox',
    'granite', 'granite_swa', 'granitehybrid', 'granitemoe', 'graniteswitch', 'grok', 'grovemoe', 'hrm_text',
    'hunyuan-dense', 'hunyuan-moe', 'hunyuan_vl', 'hy_v3', 'hy_v4', 'internlm2', 'jais', 'jais2', 'jamba',
    'jina-bert-v2', 'jina-bert-v3', 'kimi-k3', 'kimi-linear', 'laguna', 'lfm2', 'lfm2moe', 'llada', 'llada-moe',
    'llama', 'llama-embed', 'llama4', 'maincoder', 'mamba', 'mamba2', 'maple', 'mellum', 'mimo2', 'minicpm',
    'minicpm3', 'minimax-01', 'minimax-m2', 'minimax-m3', 'mistral3', 'mistral4', 'modern-bert', 'mpt',
    'muse-glimmer', 'nanbeige', 'nemotron', 'nemotron_h', 'nemotron_h_moe', 'neo-bert', 'nomic-bert',
    'nomic-bert-moe', 'olmo', 'olmo2', 'olmoe', 'openelm', 'orion', 'paddleocr', 'pangu-embedded', 'phi2', 'phi3',
    'phimoe', 'plamo', 'plamo2', 'plamo3', 'plm', 'pockettts', 'qwen', 'qwen2', 'qwen2moe', 'qwen2vl', 'qwen3',
    'qwen35', 'qwen35moe', 'qwen3moe', 'qwen3next', 'qwen3tts', 'qwen3vl', 'qwen3vlmoe', 'qwen4exp', 'refact',
    'rnd1', 'rwkv6', 'rwkv6qwen2', 'rwkv7', 'seed_oss', 'smallthinker', 'smollm3', 'spark2_5', 'stablelm',
    'starcoder', 'starcoder2', 'step35', 't5', 't5encoder', 'talkie', 'wavtokenizer-dec', 'xverse',
})

INPUT_TENSORS = frozenset({
    'masked_embd_centroids', 'masked_embd_ordering', 'per_layer_token_embd', 'position_embd', 'token_embd',
    'token_types',
})

OUTPUT_TENSORS = frozenset({
    'altup_proj', 'altup_unembd_proj', 'cls', 'cls.norm', 'cls.output', 'conf_proj', 'd2t', 'dec.output_norm',
    'dense_2', 'dense_3', 'enc.output_norm', 'fc', 'markov_w1', 'markov_w2', 'nextn.post_projection', 'output',
    'output_hc_base', 'output_hc_down', 'output_hc_fn', 'output_hc_norm', 'output_hc_scale', 'output_hc_up',
    'output_norm', 'output_res_score', 'selector_hidden', 'selector_predecessor', 'selector_successor',
})

OUTPUT_NORM_NAMED_TOKEN_EMBD_NORM_ARCHS = frozenset({
    'lfm2', 'lfm2moe',
})

LAYER0_TENSORS = frozenset({
    'conv1d', 'hrm.z_l_init', 'nextn.pre_projection', 'per_layer_model_proj', 'per_layer_proj_norm',
    'rope_factors_long', 'rope_factors_short', 'rope_freqs', 'token_embd_norm',
})

UNUSED_TENSORS = frozenset({
    'dec.blk.#.cross_attn_rel_b', 'masked_embd_centroids', 'masked_embd_ordering',
})

MUL_MAT_TENSORS = frozenset({
    'altup_proj', 'altup_unembd_proj', 'blk.#.altup_correct_coef', 'blk.#.altup_predict_coef', 'blk.#.altup_router',
    'blk.#.attn_compressor_gate', 'blk.#.attn_compressor_kv', 'blk.#.attn_conv_proj', 'blk.#.attn_gate',
    'blk.#.attn_k', 'blk.#.attn_k_b', 'blk.#.attn_kv', 'blk.#.attn_kv_a_mqa', 'blk.#.attn_kv_b',
    'blk.#.attn_output', 'blk.#.attn_output_a', 'blk.#.attn_output_b', 'blk.#.attn_q', 'blk.#.attn_q_a',
    'blk.#.attn_q_b', 'blk.#.attn_qkv', 'blk.#.attn_v', 'blk.#.attn_v_b', 'blk.#.channel_mix_key',
    'blk.#.channel_mix_receptance', 'blk.#.channel_mix_value', 'blk.#.ffn_conv_proj', 'blk.#.ffn_down',
    'blk.#.ffn_down_shexp', 'blk.#.ffn_gate', 'blk.#.ffn_gate_inp', 'blk.#.ffn_gate_inp_shexp',
    'blk.#.ffn_gate_shexp', 'blk.#.ffn_latent_down', 'blk.#.ffn_latent_up', 'blk.#.ffn_routed_down',
    'blk.#.ffn_routed_up', 'blk.#.ffn_up', 'blk.#.ffn_up_shexp', 'blk.#.hc_attn_down', 'blk.#.hc_attn_fn',
    'blk.#.hc_attn_inject', 'blk.#.hc_attn_up', 'blk.#.hc_ffn_down', 'blk.#.hc_ffn_fn', 'blk.#.hc_ffn_inject',
    'blk.#.hc_ffn_up', 'blk.#.indexer.attn_k', 'blk.#.indexer.attn_q_b', 'blk.#.indexer.k_proj',
    'blk.#.indexer.proj', 'blk.#.indexer.q_proj', 'blk.#.indexer_compressor_gate', 'blk.#.indexer_compressor_kv',
    'blk.#.inp_gate', 'blk.#.laurel_l', 'blk.#.laurel_r', 'blk.#.nextn.eh_proj', 'blk.#.nextn.shared_head_head',
    'blk.#.ple_key', 'blk.#.ple_value', 'blk.#.proj', 'blk.#.shortconv.in_proj', 'blk.#.shortconv.out_proj',
    'blk.#.ssm_alpha', 'blk.#.ssm_ba', 'blk.#.ssm_beta', 'blk.#.ssm_dt', 'blk.#.ssm_f_a', 'blk.#.ssm_f_b',
    'blk.#.ssm_g', 'blk.#.ssm_g_a', 'blk.#.ssm_g_b', 'blk.#.ssm_in', 'blk.#.ssm_out', 'blk.#.ssm_x',
    'blk.#.time_mix_a1', 'blk.#.time_mix_a2', 'blk.#.time_mix_decay_w1', 'blk.#.time_mix_decay_w2',
    'blk.#.time_mix_g1', 'blk.#.time_mix_g2', 'blk.#.time_mix_gate', 'blk.#.time_mix_key', 'blk.#.time_mix_output',
    'blk.#.time_mix_receptance', 'blk.#.time_mix_v1', 'blk.#.time_mix_v2', 'blk.#.time_mix_value',
    'blk.#.time_mix_w1', 'blk.#.time_mix_w2', 'blk.#.vis_attn_output', 'blk.#.vis_attn_qkv', 'blk.#.vis_down',
    'blk.#.vis_gate', 'blk.#.vis_up', 'cls', 'cls.output', 'conf_proj', 'convnext.#.pw1', 'convnext.#.pw2',
    'dec.blk.#.attn_k', 'dec.blk.#.attn_o', 'dec.blk.#.attn_q', 'dec.blk.#.attn_v', 'dec.blk.#.cross_attn_k',
    'dec.blk.#.cross_attn_o', 'dec.blk.#.cross_attn_q', 'dec.blk.#.cross_attn_v', 'dec.blk.#.ffn_down',
    'dec.blk.#.ffn_gate', 'dec.blk.#.ffn_up', 'dense_2', 'dense_3', 'enc.blk.#.attn_k', 'enc.blk.#.attn_o',
    'enc.blk.#.attn_q', 'enc.blk.#.attn_v', 'enc.blk.#.ffn_down', 'enc.blk.#.ffn_gate', 'enc.blk.#.ffn_up', 'fc',
    'markov_w2', 'nextn.post_projection', 'nextn.pre_projection', 'output', 'output_hc_down', 'output_hc_fn',
    'output_hc_up', 'per_layer_model_proj', 'posnet.#.attn_k', 'posnet.#.attn_output', 'posnet.#.attn_q',
    'posnet.#.attn_v', 'selector_hidden',
})

TIED_OUTPUT_ARCHS = frozenset({
    'afmoe', 'arcee', 'arctic', 'bailingmoe3', 'bloom', 'chameleon', 'chatglm', 'cogvlm', 'cohere2', 'cohere2moe',
    'command-r', 'deci', 'deepseek', 'deepseek2', 'deepseek2-ocr', 'deepseek32', 'dflash', 'dots3note', 'dream',
    'ernie4_5', 'ernie4_5-moe', 'exaone', 'exaone-moe', 'exaone4', 'falcon', 'falcon-h1', 'gemma',
    'gemma-embedding', 'gemma2', 'gemma3', 'gemma3n', 'gemma4', 'gemma4-assistant', 'glm-dsa', 'glm4', 'glm4moe',
    'gpt2', 'granite', 'granite_swa', 'granitehybrid', 'granitemoe', 'graniteswitch', 'grok', 'grovemoe',
    'hrm_text', 'hunyuan-dense', 'hunyuan-moe', 'hunyuan_vl', 'hy_v3', 'jais2', 'jamba', 'laguna', 'lfm2',
    'lfm2moe', 'llada', 'llama', 'llama-embed', 'llama4', 'maincoder', 'mamba', 'mamba2', 'minicpm', 'minicpm3',
    'minimax-01', 'mistral3', 'mistral4', 'mpt', 'nanbeige', 'nemotron_h', 'nemotron_h_moe', 'olmo', 'openelm',
    'paddleocr', 'pangu-embedded', 'phi3', 'plamo2', 'plamo3', 'plm', 'pockettts', 'qwen2', 'qwen2vl', 'qwen3',
    'qwen35', 'qwen35moe', 'qwen3moe', 'qwen3next', 'qwen3tts', 'qwen3vl', 'qwen3vlmoe', 'qwen4exp', 'refact',
    'rnd1', 'seed_oss', 'smallthinker', 'smollm3', 'spark2_5', 'starcoder', 'starcoder2', 't5', 't5encoder',
})
# fmt: on

PER_LAYER_DUPLICATED = frozenset({"rope_freqs", "rope_factors_long", "rope_factors_short"})

# ggml types the CUDA split buffer (`-sm row`) accepted for GGML_OP_MUL_MAT, from
# `ggml_backend_cuda_device_supports_op` in ggml/src/ggml-cuda/ggml-cuda.cu (the last versions that had the
# split buffer type, before it was removed in 2026; see docs/placement-llamacpp.md).
CUDA_ROW_SPLIT_TYPES = frozenset({
    "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "MXFP4", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
    "Q6_K", "Q8_K", "IQ1_M", "IQ1_S", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ3_S", "IQ3_XXS", "IQ4_NL", "IQ4_XS",
})


def _generate(root: str) -> None:  # pragma: no cover - maintenance tool, run by hand on a llama.cpp checkout
    import glob
    import os
    import re

    arch_src = open(os.path.join(root, "src/llama-arch.cpp")).read()
    model_src = open(os.path.join(root, "src/llama-model.cpp")).read()
    models_h = open(os.path.join(root, "src/models/models.h")).read()

    def block(src, start):
        b = src[src.index(start):]
        return b[: b.index("};")]

    names = dict(re.findall(r'\{\s*(LLM_TENSOR_\w+),\s*"([^"]+)"\s*\}', block(arch_src, "LLM_TENSOR_NAMES = {")))
    infos = {
        m[0]: (m[1], m[2])
        for m in re.findall(
            r"\{\s*(LLM_TENSOR_\w+),\s*\{\s*LLM_TENSOR_LAYER_(\w+),\s*GGML_OP_(\w+)\s*\}\s*\}",
            block(arch_src, "LLM_TENSOR_INFOS = {"),
        )
    }
    arch_names = dict(re.findall(r'\{\s*(LLM_ARCH_\w+),\s*"([^"]+)"', block(arch_src, "LLM_ARCH_NAMES = {")))
    mapping = dict(re.findall(r"case (LLM_ARCH_\w+):\s*return new llama_model_(\w+)\(", model_src))
    parents = dict(re.findall(r"struct llama_model_(\w+)\s*:\s*public llama_model_(\w+)", models_h))
    cls_text = {}
    for f in glob.glob(os.path.join(root, "src/models/*.cpp")):
        t = open(f).read()
        for m in re.finditer(r"void llama_model_(\w+)::load_arch_tensors", t):
            cls_text[m.group(1)] = t

    def text_of(cls):
        while cls not in cls_text and cls in parents:
            cls = parents[cls]
        return cls_text.get(cls, "")

    tied_re = re.compile(r'LLM_TENSOR_TOKEN_EMBD,\s*"weight"\),\s*\{[^}]*\},\s*TENSOR_DUPLICATED')
    tied = sorted({arch_names[a] for a, c in mapping.items() if a in arch_names and tied_re.search(text_of(c))})
    lfm2 = sorted({arch_names[a] for a, c in mapping.items() if a in arch_names and "OUTPUT_NORM_LFM2" in text_of(c)})

    def tmpl(t):
        return t.replace("%d", "#")

    def pick(layer, op=None):
        out = set()
        for e, t in names.items():
            if e not in infos:
                continue
            lay, o = infos[e]
            if lay == layer and (op is None or o == op):
                out.add(tmpl(t))
        return sorted(out)

    lfm2_only = {names["LLM_TENSOR_OUTPUT_NORM_LFM2"]}
    output = [t for t in pick("OUTPUT") if t not in lfm2_only]
    inputs = pick("INPUT")
    layer0 = sorted(t for t in pick("REPEATING") if "#" not in t)
    mul_mat = sorted(set(pick("REPEATING", "MUL_MAT")) | set(pick("OUTPUT", "MUL_MAT")))
    unused = sorted({tmpl(names[e]) for e, (lay, o) in infos.items() if o == "NONE" and e in names})

    def emit(name, values):
        print(f"{name} = frozenset({{")
        line = "   "
        for v in values:
            piece = f" {v!r},"
            if len(line) + len(piece) > 116:
                print(line)
                line = "   "
            line += piece
        print(line)
        print("})")
        print()

    emit("KNOWN_ARCHS", sorted(set(arch_names.values())))
    emit("INPUT_TENSORS", inputs)
    emit("OUTPUT_TENSORS", output)
    emit("OUTPUT_NORM_NAMED_TOKEN_EMBD_NORM_ARCHS", lfm2)
    emit("LAYER0_TENSORS", layer0)
    emit("UNUSED_TENSORS", unused)
    emit("MUL_MAT_TENSORS", mul_mat)
    emit("TIED_OUTPUT_ARCHS", tied)


if __name__ == "__main__":  # pragma: no cover
    import sys

    _generate(sys.argv[1])
