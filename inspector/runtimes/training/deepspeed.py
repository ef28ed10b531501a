"""DeepSpeed's own memory estimators, reproduced formula for formula (facts only) from DeepSpeed 0.19
(deepspeedai/DeepSpeed, unchanged in the 0.19.8 wheel):

- deepspeed/runtime/zero/stage_1_and_2.py `estimate_zero2_model_states_mem_needs(total_params,
  num_gpus_per_node=1, num_nodes=1, cpu_offload=True, additional_buffer_factor=1.5)` -> (cpu_mem, gpu_mem):
  total_gpus = nodes x gpus; offload: gpu = 2P, cpu = P x max(4 x total_gpus, 16) x factor;
  no offload: gpu = 2P + int(18P / total_gpus) ("2 = params_16bit, 18 = 2_grads_16bit + 4_grads_32bit +
  4_params_32bit + 8_optimizer_states_32bit"), cpu = P x 4 x gpus x factor.
- deepspeed/runtime/zero/stage3.py `estimate_zero3_model_states_mem_needs(total_params, largest_layer_params,
  num_gpus_per_node=1, num_nodes=1, cpu_offload=True, cpu_offload_params=True, zero_init=True,
  additional_buffer_factor=1.5)` -> (cpu_mem, gpu_mem, largest_layer_memory): LLM = 4 x largest layer params,
  gpus_factor = 1 / nodes;
  offload optimizer and params: gpu = LLM; cpu = P x 18 x gpus_factor x factor (zero_init) or
    P x max(4 x gpus, 18 x gpus_factor) x factor;
  offload optimizer only: gpu = LLM + int(2P / total_gpus); cpu = P x 16 x gpus_factor x factor or
    P x max(4 x gpus, 16 x gpus_factor) x factor;
  no offload: gpu = LLM + int(18P / total_gpus); cpu = largest x 4 x gpus x factor (zero_init) or
    P x 4 x gpus x factor.
- `model_to_params(model)`: P = parameters counted once (tied ones too); largest layer = the most parameters one
  module owns directly (`m.parameters(recurse=False)`).
- `*_all_cold` print the table below; "GB" there are 2^30 bytes.
The arithmetic is Python's, in the same order (floats where DeepSpeed has them), then int() as DeepSpeed does.
"""
from __future__ import annotations

from dataclasses import dataclass

FACTOR = 1.5  # additional_buffer_factor's default


def zero2(total_params: int, gpus: int = 1, nodes: int = 1, cpu_offload: bool = True,
          factor: float = FACTOR) -> tuple[int, int]:
    total_gpus = nodes * gpus
    if cpu_offload:
        gpu_mem = 2 * total_params
        cpu_mem = total_params * max(4 * total_gpus, 16) * factor
    else:
        gpu_mem = 2 * total_params + int(18 * total_params / total_gpus)
        cpu_mem = total_params * 4 * gpus * factor
    return int(cpu_mem), int(gpu_mem)


def zero3(total_params: int, largest: int, gpus: int = 1, nodes: int = 1, cpu_offload: bool = True,
          cpu_offload_params: bool = True, zero_init: bool = True, factor: float = FACTOR) -> tuple[int, int, int]:
    total_gpus = nodes * gpus
    gpus_factor = 1 / nodes
    llm = 4 * largest
    if cpu_offload:
        if cpu_offload_params:
            gpu_mem = llm
            cpu_mem = total_params * 18 * gpus_factor * factor if zero_init else \
                total_params * max(4 * gpus, 18 * gpus_factor) * factor
        else:
            gpu_mem = llm + int(2 * total_params / total_gpus)
            cpu_mem = total_params * 16 * gpus_factor * factor if zero_init else \
                total_params * max(4 * gpus, 16 * gpus_factor) * factor
    else:
        gpu_mem = llm + int(18 * total_params / total_gpus)
        cpu_mem = largest * 4 * gpus * factor if zero_init else total_params * 4 * gpus * factor
    return int(cpu_mem), int(gpu_mem), llm


def _header(total_params: int, gpus: int, nodes: int) -> list[str]:
    return ["Estimated memory needed for params, optim states and gradients for a:",
            f"HW: Setup with {nodes} {'nodes' if nodes > 1 else 'node'}, {gpus} {'GPUs' if gpus > 1 else 'GPU'} "
            "per node."]


# DeepSpeed prints f'{OffloadDeviceEnum.cpu:4}': on Python >= 3.11 a (str, Enum) member formats as its name
CPU = "OffloadDeviceEnum.cpu"


def zero2_all_cold(total_params: int, gpus: int = 1, nodes: int = 1) -> list[str]:
    """The lines `estimate_zero2_model_states_mem_needs_all_cold` prints."""
    lines = _header(total_params, gpus, nodes) + [f"SW: Model with {int(total_params / 1e6)}M total params.",
                                                  "  per CPU  |  per GPU |   Options"]
    for offload in (True, False):
        cpu, gpu = zero2(total_params, gpus, nodes, offload)
        lines.append(f" {cpu / 2**30:7.2f}GB | {gpu / 2**30:6.2f}GB | offload_optimizer={CPU if offload else 'none'}")
    return lines


def zero3_all_cold(total_params: int, largest: int, gpus: int = 1, nodes: int = 1) -> list[str]:
    """The lines `estimate_zero3_model_states_mem_needs_all_cold` prints."""
    lines = _header(total_params, gpus, nodes) + [
        f"SW: Model with {int(total_params / 1e6)}M total params, {int(largest / 1e6)}M largest layer params.",
        "  per CPU  |  per GPU |   Options"]
    for offload in (True, False):
        for offload_params in (True, False):
            if not offload and offload_params:
                continue
            for init in (True, False):
                cpu, gpu, _ = zero3(total_params, largest, gpus, nodes, offload, offload_params, init)
                options = (f"offload_param={CPU if offload_params else 'none'}, "
                           f"offload_optimizer={CPU if offload else 'none'}, zero_init={1 if init else 0}")
                lines.append(f" {cpu / 2**30:7.2f}GB | {gpu / 2**30:6.2f}GB | {options}")
    return lines


@dataclass(frozen=True)
class Estimate:
    """DeepSpeed's estimate for one setting, and the call that gives it."""

    call: str
    cpu: int  # per node
    gpu: int  # per GPU
    largest_layer_memory: int | None
    table: tuple[str, ...]


def estimate(stage: int, total_params: int, largest: int, gpus: int, nodes: int, offload_optimizer: bool,
             offload_params: bool) -> Estimate:
    """The estimator of `stage` (2 or 3) for this setting (zero_init=True, DeepSpeed's and HF's default)."""
    if stage == 2:
        cpu, gpu = zero2(total_params, gpus, nodes, offload_optimizer)
        call = (f"estimate_zero2_model_states_mem_needs(total_params={total_params}, num_gpus_per_node={gpus}, "
                f"num_nodes={nodes}, cpu_offload={offload_optimizer})")
        return Estimate(call, cpu, gpu, None, tuple(zero2_all_cold(total_params, gpus, nodes)))
    cpu, gpu, llm = zero3(total_params, largest, gpus, nodes, offload_optimizer, offload_params, True)
    call = (f"estimate_zero3_model_states_mem_needs(total_params={total_params}, largest_layer_params={largest}, "
            f"num_gpus_per_node={gpus}, num_nodes={nodes}, cpu_offload={offload_optimizer}, "
            f"cpu_offload_params={offload_params}, zero_init=True)")
    return Estimate(call, cpu, gpu, llm, tuple(zero3_all_cold(total_params, largest, gpus, nodes)))
