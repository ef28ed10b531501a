"""The training runtime: trainable parameters (PEFT LoRA), model states per GPU and host under DeepSpeed ZeRO and FSDP,
QLoRA's 4-bit base, DeepSpeed's own estimators.

Hand-derived from Llama-3.2-3B's shapes (hidden 3,072, 24 / 8 heads of 128, intermediate 8,192, vocabulary
128,256, 28 layers, tied embeddings): P = 3,212,749,824 parameters (embed 394,002,432 + 28 x 100,669,440 + norm
3,072); the largest module is the embedding (394,002,432 parameters).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.generate import write_safetensors
from inspector import inspect
from inspector.cli import main
from inspector.errors import UsageError
from inspector.runtimes.training import deepspeed as ds
from inspector.runtimes.training.states import largest_sub_group

P = 3_212_749_824
EMBED = 394_002_432
LAYER = 100_669_440


def _train(folder: Path, **options: object):  # type: ignore[no-untyped-def]
    return inspect(str(folder), runtime="training", **options)


def test_parameter_count(llama_3b: Path) -> None:
    assert EMBED + 28 * LAYER + 3_072 == P
    assert _train(llama_3b).memory.plan.total_params == P
    assert _train(llama_3b).memory.plan.largest_layer_params == EMBED


# --- LoRA ---------------------------------------------------------------------------------------------------------
def test_lora_trainable_params(llama_3b: Path) -> None:
    """PEFT's default for llama: q_proj, v_proj; r x (in + out) each:
    q 8 x (3,072 + 3,072) = 49,152; v 8 x (3,072 + 1,024) = 32,768; x 28 layers = 2,293,760."""
    assert _train(llama_3b, method="lora").memory.plan.trainable == 28 * (49_152 + 32_768) == 2_293_760
    # all-linear, r = 16: q, o 16 x 6,144; k, v 16 x 4,096; gate, up, down 16 x 11,264 (lm_head excluded)
    per_layer = 2 * 16 * 6_144 + 2 * 16 * 4_096 + 3 * 16 * 11_264
    result = _train(llama_3b, method="lora", lora_rank=16, lora_targets="all-linear")
    assert result.memory.plan.trainable == 28 * per_layer == 24_313_856
    # explicit names, and a regex (one string: re.fullmatch on the whole module name)
    assert _train(llama_3b, method="lora", lora_targets="o_proj").memory.plan.trainable == 28 * 8 * 6_144
    regex = _train(llama_3b, method="lora", lora_targets=r"model\.layers\.0\.self_attn\.(q|k)_proj")
    assert regex.memory.plan.trainable == 8 * 6_144 + 8 * 4_096
    # adapters are float32 (PEFT's autocast_adapter_dtype): weights 4 + grads 4 + AdamW 8 bytes each, one GPU
    row = result.memory.table.rows["cuda:0"]
    assert (row["gradients"], row["optimizer"]) == (4 * 24_313_856, 8 * 24_313_856)
    # the frozen base stays bf16: 2 P, plus the adapters' 4 bytes
    assert row["weights"] == 2 * P + 4 * 24_313_856


def test_lora_refusals(tmp_path: Path, llama_3b: Path) -> None:
    write_safetensors(tmp_path, "qwen3-moe", n_layers=2)
    with pytest.raises(UsageError, match="no default LoRA target_modules"):
        _train(tmp_path, method="lora")  # PEFT has no default for qwen3_moe
    with pytest.raises(UsageError, match="match no module"):
        _train(llama_3b, method="lora", lora_targets="c_attn")
    with pytest.raises(UsageError, match="not an nn.Linear"):
        _train(llama_3b, method="lora", lora_targets="mlp")
    # one regex: PEFT's re.fullmatch, through the bounded user-pattern module; errors point into it as written
    with pytest.raises(UsageError, match=r"invalid regex 'q_proj\(': .* at position 6"):
        _train(llama_3b, method="lora", lora_targets="q_proj(")
    with pytest.raises(UsageError, match="match no module"):
        _train(llama_3b, method="lora", lora_targets=r"q_pro.")  # fullmatch: a search would match



def test_qlora_4bit_base(llama_3b: Path) -> None:
    """QLoRA: every Linear NF4 with double quantization (per layer 51,936,732 B: see test_transformers_runtime),
    the embedding and norms float32 (prepare_model_for_kbit_training), adapters float32."""
    row = _train(llama_3b, method="qlora").memory.table.rows["cuda:0"]
    norms = (28 * 2 + 1) * 3_072 * 4
    assert row["weights"] == 28 * 51_936_732 + 2 * 788_004_864 + norms + 4 * 2_293_760 == 3_040_113_680
    assert (row["gradients"], row["optimizer"]) == (4 * 2_293_760, 8 * 2_293_760)


# --- DeepSpeed ZeRO -------------------------------------------------------------------------------------------------
def test_zero3_model_states_and_deepspeeds_formula(llama_3b: Path) -> None:
    """8 GPUs, ZeRO-3, no offload. DeepSpeed's estimate: 4 x largest layer + int(18 x P / 8)
    = 1,576,009,728 + 7,228,687,104 = 8,804,696,832. Ours: every state partitioned (all sizes divide by 8):
    16-bit weights 2 P/8, the 16-bit gradient partition DeepSpeed keeps (grad_partitions_flat_buffer) 2 P/8 and the
    fp32 gradients of the optimizer step 4 P/8, fp32 master 4 P/8, AdamW 8 P/8 = 20 P/8 = 8,031,874,560, plus the
    same gathered layer: 2 P/8 more than DeepSpeed's formula."""
    result = _train(llama_3b, gpus=8, zero="3", estimator="deepspeed")
    estimate = result.memory.plan.deepspeed
    assert estimate.gpu == 4 * EMBED + 18 * P // 8 == 8_804_696_832
    assert estimate.largest_layer_memory == 4 * EMBED
    assert estimate.cpu == int(EMBED * 4 * 8 * 1.5)  # zero_init: largest layer x 4 x GPUs x 1.5
    row = result.memory.table.rows["cuda:0"]
    assert (row["weights"], row["gradients"], row["optimizer"]) == (2 * P // 8, 6 * P // 8, 12 * P // 8)
    assert result.memory.model_states_gpu == 20 * P // 8 == estimate.gpu - 4 * EMBED + 2 * P // 8
    assert result.memory.plan.buffers["gathered largest layer (DeepSpeed: 4 x largest)"] == 4 * EMBED
    assert set(result.memory.table.rows) == {f"cuda:{i}" for i in range(8)}


def test_zero2_and_offload(llama_3b: Path) -> None:
    """ZeRO-2 on 8 GPUs: 2 P + 18 P / 8 per GPU, DeepSpeed's formula exactly (one flat partition of P / 8).
    With offload_optimizer cpu: the GPU keeps the 2 P weights (DeepSpeed: gpu = 2 P); each host keeps its 8 GPUs'
    fp32 gradients, master and AdamW: 8 x 16 P / 8 = 16 P."""
    plain = _train(llama_3b, gpus=8, zero="2", estimator="deepspeed")
    assert plain.memory.model_states_gpu == 2 * P + 18 * P // 8 == plain.memory.plan.deepspeed.gpu
    off = _train(llama_3b, gpus=8, zero="2", offload_optimizer="cpu", estimator="deepspeed")
    assert off.memory.model_states_gpu == 2 * P == off.memory.plan.deepspeed.gpu
    assert off.memory.table.total("cpu") == 16 * P
    assert off.memory.plan.deepspeed.cpu == int(P * max(4 * 8, 16) * 1.5)  # DeepSpeed adds its 1.5 buffer factor


def test_zero3_offload_params_and_nvme_on_two_nodes(llama_3b: Path) -> None:
    """2 nodes x 8 GPUs, ZeRO-3, params to cpu, optimizer to nvme: per rank P / 16 = 200,796,864 values.
    Host: 8 ranks x (weights 2 + 16-bit grads 2 + fp32 grads 4) x P/16 on the cpu, 8 x 12 x P/16 on nvme.
    The GPU holds no model states, only the gathered layer (DeepSpeed: gpu = 4 x largest layer)."""
    result = _train(llama_3b, gpus=8, nodes=2, zero="3", offload_params="cpu", offload_optimizer="nvme")
    per_rank = P // 16
    assert result.memory.model_states_gpu == 0
    assert result.memory.table.total("cpu") == 8 * 8 * per_rank
    assert result.memory.table.total("nvme") == 8 * 12 * per_rank
    assert ds.zero3(P, EMBED, 8, 2, True, True, True)[1] == 4 * EMBED


def test_zero3_fp32_gradients_one_sub_group_at_a_time() -> None:
    # partitions of 6e8 join a sub-group until it reaches 1e9: [6e8 + 6e8], [6e8 + 6e8], [6e8] -> 1.2e9
    assert largest_sub_group([600_000_000] * 5) == 1_200_000_000
    assert largest_sub_group([10, 20, 30]) == 60


def test_fsdp_full_shard(llama_3b: Path) -> None:
    """FSDP, mixed precision: fp32 sharded weights 4 P/8, fp32 gradients 4 P/8, AdamW 8 P/8; the gathered bf16
    units: root (embedding + final norm: 394,005,504) + 2 layers = 595,344,384 values x 2 B."""
    result = _train(llama_3b, gpus=8, fsdp="full_shard")
    row = result.memory.table.rows["cuda:0"]
    assert (row["weights"], row["gradients"], row["optimizer"]) == (4 * P // 8, 4 * P // 8, 8 * P // 8)
    assert result.memory.plan.buffers["gathered units (root + 2 layers)"] == 2 * (EMBED + 3_072 + 2 * LAYER)
    hybrid = _train(llama_3b, gpus=4, nodes=2, fsdp="hybrid_shard")  # shards within a node only: P/4
    assert hybrid.memory.table.rows["cuda:0"]["weights"] == 4 * P // 4


def test_one_gpu_mixed_precision_matches_train(llama_3b: Path) -> None:
    """One GPU, full fine-tune, mixed AdamW: 16 B per parameter, the --train arithmetic (memory/train.py)."""
    result = _train(llama_3b)
    assert result.memory.model_states_gpu == 16 * P
    single = inspect(str(llama_3b), train=__import__("inspector.memory.train", fromlist=["TrainOptions"]).TrainOptions())
    assert single.train.static == 16 * P
    assert result.memory.table.rows["cuda:0"]["activations"] == single.train.total - single.train.static


def test_refusals(llama_3b: Path) -> None:
    cases = [dict(zero="3", fsdp="full_shard"), dict(offload_optimizer="cpu"), dict(fsdp="full_shard",
             offload_optimizer="cpu"), dict(zero="2", offload_params="cpu"), dict(zero="2", offload_optimizer="nvme"),
             dict(zero="3", precision="bf16"), dict(zero="1", estimator="deepspeed"), dict(lora_rank=4)]
    for case in cases:
        with pytest.raises(UsageError):
            _train(llama_3b, **case)


# --- DeepSpeed's estimator, printed ----------------------------------------------------------------------------------
def test_deepspeed_all_cold_text() -> None:
    """Llama-2-7B-sized numbers (P = 6,738,415,616, largest 131,072,000): ZeRO-2 on 1 x 8:
    offload: gpu 2P = 13,476,831,232 B = 12.55 GiB; cpu P x 32 x 1.5 = 323,443,949,568 B = 301.23 GiB;
    no offload: 2P + int(18P/8) = 28,638,266,368 B = 26.67 GiB."""
    assert ds.zero2(6_738_415_616, 8, 1, True) == (323_443_949_568, 13_476_831_232)
    assert ds.zero2(6_738_415_616, 8, 1, False)[1] == 28_638_266_368
    assert ds.zero2_all_cold(6_738_415_616, 8, 1)[-2:] == [
        "  301.23GB |  12.55GB | offload_optimizer=OffloadDeviceEnum.cpu",
        "  301.23GB |  26.67GB | offload_optimizer=none"]
    lines = ds.zero3_all_cold(6_738_415_616, 131_072_000, 8, 2)
    assert lines[2] == "SW: Model with 6738M total params, 131M largest layer params."
    assert [line.split("|")[1].strip() for line in lines[4:]] == ["0.49GB", "0.49GB", "1.27GB", "1.27GB",
                                                                   "7.55GB", "7.55GB"]
    assert lines[4].startswith("   84.72GB") and lines[8].startswith("    5.86GB")


def test_cli_tables_and_json(llama_3b: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["inspect", str(llama_3b), "--method", "lora", "--gpus", "8", "--zero", "3", "--estimator", "deepspeed",
              "--format", "json"])
    assert e.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["memory"]["params"]["trainable"] == 2_293_760
    assert doc["memory"]["deepspeed"]["gpu_per_gpu"] == 4 * EMBED + 18 * P // 8
    assert set(doc["memory"]["devices"]) == {f"cuda:{i}" for i in range(8)}
    with pytest.raises(SystemExit):
        main(["inspect", str(llama_3b), "--zero", "2", "--gpus", "8", "--estimator", "deepspeed"])
    out = capsys.readouterr().out
    assert "  per CPU  |  per GPU |   Options" in out and "DeepSpeed per GPU" in out
    # --train keeps its meaning: one device, the literal plan; --micro-batch there does not select this runtime
    with pytest.raises(SystemExit) as e:
        main(["inspect", str(llama_3b), "--train", "--micro-batch", "2", "--format", "json"])
    assert json.loads(capsys.readouterr().out)["train"]["activations"] > 0 and e.value.code == 0


def test_printed_flags_round_trip(llama_3b: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The flags line of a training plan, pasted back after the model, gives the same rows."""
    first = _train(llama_3b, method="lora", gpus=4, nodes=2, zero="3", offload_optimizer="cpu", lora_rank=32,
                   micro_batch=2, seq_len=1024, gradient_checkpointing=True)
    with pytest.raises(SystemExit) as e:
        main(["inspect", str(llama_3b), *first.flags_line.split(), "--format", "json"])
    assert e.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["memory"]["devices"] == {d: first.memory.table.row_dict(d) for d in first.memory.table.devices}
