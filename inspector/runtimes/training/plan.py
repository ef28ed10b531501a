"""A training setup applied to a checkpoint: which parameters train (full, LoRA, QLoRA), what each GPU and host holds
(states.py), the activations of a micro-batch and the communication buffers (estimates), DeepSpeed's own estimate.

QLoRA (peft/utils/other.py `prepare_model_for_kbit_training` on a bitsandbytes 4-bit model): every nn.Linear but
the output embedding is NF4 with double quantization (inspector/memory/bnb.py sizes), every other parameter is cast
to float32 and frozen, gradient checkpointing is turned on; the adapters train in float32. Under DeepSpeed the
engine casts the model to bf16 (its `bf16.enabled`), so there the frozen non-quantized parameters are bf16.

Activations per GPU (estimate; inspector/memory/train.py has the per-layer formula): micro-batch x seq-len tokens
through every decoder layer (with gradient checkpointing: each layer's input plus one layer rebuilt), the logits
(bf16 and the fp32 copy the loss takes), and for LoRA the r-wide output of every lora_A (2 B per value).

Buffers per GPU (estimate): the model's own buffers (exact: RoPE frequencies, float32); ZeRO-1/2/3 the gradient
reduce bucket (contiguous_gradients: reduce_bucket_size values, DeepSpeed's default 5e8, 16-bit); ZeRO-3 also its
estimator's 4 x largest layer (the gathered 16-bit parameters and gradients of the largest module); FSDP the gathered
units in the compute dtype (FULL_SHARD/HYBRID_SHARD: the root unit with embeddings and head, plus the largest
decoder layer twice, for prefetching; SHARD_GRAD_OP: every parameter) and one unit's unsharded gradients; DDP on
several GPUs the gradient buckets (a second copy of the gradients: gradient_as_bucket_view is off by default);
QLoRA the dequantized copy of the largest 4-bit weight during its matmul.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import UsageError
from ...memory.bnb import BnbConfig, converted_modules, linear_dims, quantized_weight
from ...memory.hf_model import HfModel, Module, build_model
from ...memory.hparams import hparams_of
from ...memory.train import ACT, activation_bytes_per_token_layer
from ...model import Checkpoint
from .deepspeed import Estimate, estimate
from .lora import Adapter, lora_adapters
from .options import TrainingOptions
from .states import States, per_param, shard_degree, sharded, trainable_states

QLORA = BnbConfig(4, "nf4", True)  # the QLoRA paper's recipe: NF4, double quantization
REDUCE_BUCKET = 500_000_000  # DeepSpeed zero config reduce_bucket_size default (values)
GATHERED = "gathered largest layer (DeepSpeed: 4 x largest)"
WIDTH = {"F32": 4, "BF16": 2, "F16": 2, "F64": 8, "I64": 8, "I32": 4, "U8": 1, "I8": 1}


@dataclass
class WeightItem:
    """One tensor as a rank holds it: the part of the model it is, its bytes on that rank, where."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    params: int
    where: str  # "gpu", "cpu", "nvme"
    source: str | None  # checkpoint tensor name (None: an adapter or a buffer the model makes)
    trainable: bool = False
    kind: str = "param"  # "param" or "buffer" (the model's buffers: on every GPU, in the buffers part)


@dataclass
class TrainPlan:
    options: TrainingOptions
    model: HfModel
    total_params: int  # every parameter once (tied ones once), as DeepSpeed's model_to_params counts
    trainable: int
    largest_layer_params: int
    weights: list[WeightItem]
    states: States
    activations: int
    buffers: dict[str, int]
    targets: tuple[str, ...] = ()
    adapters: list[Adapter] = field(default_factory=list)
    deepspeed: Estimate | None = None
    notes: list[str] = field(default_factory=list)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def largest_layer_params(model: HfModel) -> int:
    """DeepSpeed's largest layer: the most parameters one module owns directly (tied ones included)."""
    return max((sum(p.numel for p in m.params) for m in model.modules()), default=0)


def _shard(o: TrainingOptions, nbytes: int, part: str = "weights") -> int:
    n = shard_degree(o) if sharded(o, part) else 1
    return -(-nbytes // n)


def build_plan(checkpoint: Checkpoint, o: TrainingOptions) -> TrainPlan:
    if checkpoint.format != "safetensors":
        raise UsageError("training memory is sized from a Hugging Face checkpoint (safetensors + config.json)",
                         hint="point at the model's folder or Hub repo")
    model = build_model(checkpoint, o.transformers_version)
    if (checkpoint.config or {}).get("quantization_config"):
        raise UsageError(f"{checkpoint.source} is already quantized; ckpt-size sizes training from the "
                         "unquantized checkpoint", hint="point at the original model (QLoRA: --method qlora)")
    params = model.parameters()
    total = sum(p.numel for p in params)
    weights, trainable_numels, targets, lora = _weights(model, o)
    states = States()
    trainable_states(o, trainable_numels, adapter=o.method != "full", states=states)
    for where in ("gpu", "cpu", "nvme"):
        getattr(states, where).pop("weights", None)  # weights come from the per-tensor items
    for w in weights:
        if w.kind == "param":
            states.add(w.where, "weights", w.nbytes)
    plan = TrainPlan(o, model, total, sum(trainable_numels), largest_layer_params(model), weights, states,
                     _activations(checkpoint, o, lora), {}, targets, lora, notes=list(model.notes))
    plan.buffers = _buffers(plan)
    if o.estimator == "deepspeed":
        assert o.zero in (2, 3)
        plan.deepspeed = estimate(o.zero, total, plan.largest_layer_params, o.gpus, o.nodes,
                                  bool(o.offload_optimizer), bool(o.offload_params))
    return plan


def _weights(model: HfModel, o: TrainingOptions
             ) -> tuple[list[WeightItem], list[int], tuple[str, ...], list[Adapter]]:
    """Every parameter and buffer as rank 0 holds it, the trainable sizes, LoRA targets and adapters."""
    items: list[WeightItem] = []
    targets: tuple[str, ...] = ()
    lora: list[Adapter] = []
    quantized: set[str] = set()
    if o.method == "qlora":
        quantized = {m.path for m in converted_modules(model, QLORA)}
    if o.method in ("lora", "qlora"):
        targets, lora = lora_adapters(model, o.lora_targets, o.lora_rank)
    full = o.method == "full"
    table = per_param(o)
    weights_where = o.offload_params or "gpu"
    frozen_bytes = 4 if o.precision == "fp32" or (o.method == "qlora" and o.engine != "deepspeed") else 2
    for m in model.modules():
        if m.path in quantized:
            items += _quantized(m, model, o, weights_where)
            params = [p for p in m.params if p is not m.weight and p.tied_to is None]
        else:
            params = [p for p in m.params if p.tied_to is None]
        for p in params:
            per = table.weights if full else frozen_bytes
            nbytes = int(per * p.numel)
            items.append(WeightItem(p.name, _dtype(int(per)), p.shape, _shard(o, nbytes), _logical(p), weights_where,
                                    p.name, full))
        for b in m.buffers:  # buffers are neither sharded nor offloaded
            nbytes = _numel(b.shape) * WIDTH.get(b.dtype, 4)
            items.append(WeightItem(b.name, b.dtype, b.shape, nbytes, 0, "gpu", b.name if b.source else None,
                                    kind="buffer"))
    adapter_table = per_param(o, adapter=True)
    for a in lora:
        nbytes = int(adapter_table.weights * a.params)
        items.append(WeightItem(a.name, _dtype(int(adapter_table.weights)), a.shape, _shard(o, nbytes), a.params,
                                weights_where, None, True))
    trainable = [p.numel for p in model.parameters()] if full else [a.params for a in lora]
    return items, trainable, targets, lora


def _logical(p) -> int:  # type: ignore[no-untyped-def]
    return p.source.params if p.source is not None else p.numel


def _dtype(width: int) -> str:
    return {2: "BF16", 4: "F32"}.get(width, "BF16")


def _quantized(m: Module, model: HfModel, o: TrainingOptions, where: str) -> list[WeightItem]:
    out_f, in_f = linear_dims(m, model.spec.conv1d)
    w = m.weight
    assert w is not None
    return [WeightItem(m.path + s.suffix, s.dtype, s.shape, _shard(o, s.nbytes), s.params if s.suffix == ".weight"
                       else 0, where, w.name) for s in quantized_weight(out_f, in_f, QLORA)]


def _activations(checkpoint: Checkpoint, o: TrainingOptions, lora: list[Adapter]) -> int:
    hp = hparams_of(checkpoint)
    tokens = o.micro_batch * o.seq_len
    per_layer = activation_bytes_per_token_layer(hp, o.seq_len, o.flash_attn)
    lora_a = [a for a in lora if ".lora_A." in a.name or ".lora_embedding_A." in a.name]
    lora_per_token = sum(ACT * a.shape[0] for a in lora_a)  # lora_A's r outputs, saved for lora_B's backward
    layers = max(hp.n_layer, 1)
    if o.checkpointing:
        body = tokens * (ACT * hp.n_embd * hp.n_layer + per_layer) + tokens * lora_per_token // layers
    else:
        body = tokens * per_layer * hp.n_layer + tokens * lora_per_token
    logits = tokens * (hp.n_vocab or 0) * (ACT + 4)
    return body + logits


def _buffers(plan: TrainPlan) -> dict[str, int]:
    o, model = plan.options, plan.model
    out: dict[str, int] = {}
    own = sum(w.nbytes for w in plan.weights if w.kind == "buffer")
    if own:
        out["model buffers"] = own  # exact: the model's own buffers (RoPE frequencies …), on every GPU
    if o.engine == "deepspeed" and o.zero:
        out["reduce bucket"] = 2 * REDUCE_BUCKET  # contiguous_gradients: torch.empty(reduce_bucket_size), 16-bit
    if o.engine == "deepspeed" and o.zero == 3:
        out[GATHERED] = 4 * plan.largest_layer_params
    elif o.engine == "fsdp":
        compute = 4 if o.precision == "fp32" else 2
        layer = max((sum(p.numel for p in l.tensors() if p.kind == "param") for l in model.layers()), default=0)
        root = plan.total_params - sum(p.numel for l in model.layers() for p in l.tensors() if p.kind == "param")
        if o.fsdp == "shard_grad_op":
            out["unsharded parameters"] = compute * plan.total_params
        elif o.fsdp in ("full_shard", "hybrid_shard"):
            out["gathered units (root + 2 layers)"] = compute * (root + 2 * layer)
        if o.method == "full" and o.fsdp != "no_shard":
            out["unsharded gradients of one unit"] = compute * layer
    if o.engine == "ddp" and o.world > 1:
        out["DDP gradient buckets"] = int(per_param(o, o.method != "full").grads16 * plan.trainable)
    if o.method == "qlora":
        sizes = [linear_dims(m, model.spec.conv1d) for m in converted_modules(model, QLORA)]
        out["dequantized 4-bit weight"] = 2 * max((a * b for a, b in sizes), default=0)
    return out
