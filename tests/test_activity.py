"""What one token touches (inspector/activity): active parameters of DeepSeek-V3 and Mixtral-8x7B derived by hand from
their shapes (fixtures/archs/*.yaml, the published config.json values), in GGUF and HF naming, and compared with the
published figures (docs/speed.md explains the conventions)."""
from __future__ import annotations

import pytest

import inspector
from fixtures.generate import write_gguf, write_hf_config, write_safetensors
from inspector.activity import ActivityOptions

# --- DeepSeek-V3 (config_671B.json): h 7168, 61 layers (3 dense, 58 MoE), 256 routed experts of 2048 + 1 shared,
# top 8, dense FFN 18432, vocab 129280; MLA: q_lora 1536, kv_lora 512, nope 128, rope 64, v 128, 128 heads --------
H = 7168
ATTN_V3 = (1536 * H  # q_a
           + 1536  # q_a_norm
           + 128 * (128 + 64) * 1536  # q_b
           + (512 + 64) * H  # kv_a_proj_with_mqa
           + 512  # kv_a_norm
           + 128 * (128 + 128) * 512  # kv_b (GGUF: attn_k_b 128x512x128 + attn_v_b 128x128x512, the same count)
           + H * 128 * 128)  # o_proj
assert ATTN_V3 == 187_107_328
NORMS_V3 = 2 * H  # attn_norm, ffn_norm
EXPERT_V3 = 3 * 2048 * H  # gate, up, down: 44,040,192
DENSE_V3 = 3 * 18432 * H  # 396,361,728 (= 9 experts)
ROUTER_V3 = 256 * H + 256  # gate.weight + e_score_correction_bias
EMBD_V3 = 129280 * H  # 926,679,040, the head the same
V3_EXCL = 61 * (ATTN_V3 + NORMS_V3) + 3 * DENSE_V3 + 58 * (ROUTER_V3 + (1 + 8) * EXPERT_V3) + H  # + final norm
V3_READ = V3_EXCL + H + EMBD_V3  # one embedding row and the head
V3_FULL = V3_EXCL + 2 * EMBD_V3
V3_TOTAL = V3_EXCL + 58 * (256 - 8) * EXPERT_V3 + 2 * EMBD_V3

# --- Mixtral-8x7B: h 4096, 32 layers, 32 q / 8 kv heads of 128, 8 experts of 14336, top 2, vocab 32000 -------------
HM = 4096
ATTN_MX = HM * HM + 2 * (8 * 128) * HM + HM * HM  # q, k, v, o
EXPERT_MX = 3 * 14336 * HM
MX_EXCL = 32 * (ATTN_MX + 2 * HM + 8 * HM + 2 * EXPERT_MX) + HM  # + norms, router, top-2 experts; final norm
MX_READ = MX_EXCL + HM + 32000 * HM
MX_FULL = MX_EXCL + 2 * 32000 * HM
MX_TOTAL = MX_EXCL + 32 * 6 * EXPERT_MX + 2 * 32000 * HM


def test_hand_counts_match_the_published_totals():
    assert (V3_EXCL, V3_READ, V3_FULL, V3_TOTAL) == (35_698_939_392, 36_625_625_600, 37_552_297_472, 671_026_419_200)
    assert (MX_EXCL, MX_READ, MX_FULL, MX_TOTAL) == (12_617_781_248, 12_748_857_344, 12_879_925_248, 46_702_792_704)
    # published: DeepSeek-V3 "671B total, 37B activated" (36.63B rounds to 37B); Mixtral "46.7B total, 12.9B per token"
    assert round(V3_TOTAL / 1e9) == 671 and round(V3_READ / 1e9) == 37
    assert round(MX_TOTAL / 1e8) == 467 and round(MX_FULL / 1e8) == 129


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("activity")
    out = {}
    for arch in ("deepseek-v3", "mixtral-8x7b"):
        out[arch + "-gguf"] = str(write_gguf(d / f"{arch}.gguf", arch, tensor_type="BF16"))
        hf = d / f"{arch}-hf"
        write_safetensors(hf, arch)
        write_hf_config(hf, arch)
        out[arch + "-hf"] = str(hf)
    return out


def tokens(source: str, **options):
    return inspector.inspect(source, activity=ActivityOptions(), **options).activity.tokens


@pytest.mark.parametrize("form", ["gguf", "hf"])
def test_deepseek_v3_active_parameters(models, form):
    t = tokens(models[f"deepseek-v3-{form}"], experts_on="cpu")
    assert (t.total_params, t.excluding_embeddings, t.read_per_token, t.with_full_embeddings) == \
        (V3_TOTAL, V3_EXCL, V3_READ, V3_FULL)
    assert (t.n_expert, t.n_expert_used) == (256, 8)
    if form == "hf":  # the MTP layer (layer 61) is not read per token
        assert any("mtp" in n for n in t.notes)


@pytest.mark.parametrize("form", ["gguf", "hf"])
def test_mixtral_active_parameters(models, form):
    t = tokens(models[f"mixtral-8x7b-{form}"], experts_on="cpu")
    assert (t.total_params, t.excluding_embeddings, t.read_per_token, t.with_full_embeddings) == \
        (MX_TOTAL, MX_EXCL, MX_READ, MX_FULL)


def test_deepseek_v3_bytes_per_token_by_device(models):
    """BF16 file; the converter keeps 1-D tensors, norms and routers in F32 (2 more bytes per parameter):
    per layer attn_norm, ffn_norm (2 x 7168), q_a_norm 1536, kv_a_norm 512; the final norm; 58 routers with their
    bias. With --experts-on cpu (the literal plan) the routed experts (8 of 256 read) are on the CPU and everything
    else, the embedding included (one row read), on cuda:0."""
    t = tokens(models["deepseek-v3-gguf"], experts_on="cpu")
    f32 = 61 * (2 * H + 1536 + 512) + H + 58 * ROUTER_V3
    assert f32 == 107_451_904
    routed = 58 * 8 * EXPERT_V3 * 2
    assert t.bytes_per_token == 2 * V3_READ + 2 * f32
    by_device = t.bytes_by_device()
    assert by_device["cpu"] == routed
    assert by_device["cuda:0"] == 2 * V3_READ + 2 * f32 - routed
    rows = {(r.device, r.role): r for r in t.rows}
    assert rows[("cpu", "routed_experts")].stored_bytes == 58 * 256 * EXPERT_V3 * 2
    assert (rows[("cuda:0", "embedding")].params, rows[("cuda:0", "embedding")].bytes) == (H, 2 * H)


def test_tied_embeddings_read_whole_as_the_head(tmp_path):
    """Llama-3.2-3B ties embeddings: the GGUF has no output.weight; llama.cpp's -ngl 99 makes a GPU copy (role
    output) and gets rows from token_embd on the CPU; the literal plan reads token_embd whole as the head."""
    path = write_gguf(tmp_path / "l.gguf", "llama-3.2-3b", tensor_type="F16", n_layers=2)
    vocab, h = 128256, 3072
    literal = tokens(str(path))
    assert any("tied" in n for n in literal.notes)
    assert literal.read_per_token - literal.excluding_embeddings == vocab * h  # the head, no separate row
    copy = tokens(str(path), ngl="99")
    assert copy.read_per_token - copy.excluding_embeddings == vocab * h + h  # the copy as head + one row
    assert copy.with_full_embeddings == literal.with_full_embeddings == copy.total_params  # counted once


def test_powerinfer_hybrid_layers_read_cold_rows_on_the_cpu(tmp_path):
    """A split of [1536, 1024, 512, 0] neurons (tests/test_powerinfer.py): per token, with every neuron active, the
    GPU reads its dense tensors, layer 0's moved FFN, the hot rows of layers 1-2 and their buckets; the CPU reads one
    embedding row, the cold rows (layer 1: 512, layer 2: 1024, layer 3: all 1536 of gate, up and down_t, 1,024 bytes
    each), every gpu_idx and layer 0's and 3's buckets."""
    from .test_powerinfer import DENSE_GPU_ALL, FFN, ROW
    from .test_powerinfer_fixture import write_gpu_index, write_powerinfer_model

    model = write_powerinfer_model(tmp_path / "m.powerinfer.gguf")
    write_gpu_index(str(model) + ".generated.gpuidx", [1536, 1024, 512, 0], 1536, 1)
    t = tokens(str(model), runtime="powerinfer", vram_budget=0.03)
    cpu = 512 * 2 + 3 * (512 + 1024 + 1536) * ROW + 4 * 1536 * 4 + 1536 * 4
    gpu = DENSE_GPU_ALL + 3 * FFN + 3 * (1024 + 512) * ROW + 4 * (1024 + 512)
    assert t.bytes_by_device() == {"cuda:0": gpu, "cpu": cpu}
    assert t.read_per_token == 512 + 4 * (4 * 512 * 512 + 2 * 512 + 3 * 1536 * 512 + 128 * 512 + 1536 * 128) + \
        512 + 1000 * 512  # every neuron active: the dense count (gpu_idx and buckets are indices, no parameters)
