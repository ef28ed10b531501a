"""Reference answers from the real transformers + accelerate, for tests/test_transformers_conformance.py.

Run with an interpreter that has torch (CPU is enough), transformers and accelerate (bitsandbytes for the 4/8-bit
cases, deepspeed for the estimator cases): `HF_PYTHON=/path/to/python`. It never imports ckpt-size.

    python tests/hf_reference.py '{"task": "device_map", "folder": ..., "kind": "auto", "max_memory": {...},
                                   "dtype": "bfloat16", "bnb": {"load_in_4bit": true, ...}}'

prints one JSON object (a JSON list of requests on stdin gives a list of answers). Tasks:
- device_map: the model built on the meta device from the folder's config.json (as from_pretrained builds it,
  dtype and quantizer included) and transformers' own `_get_device_map`; returns the map (as a list of pairs, in
  accelerate's order), and the size of each map entry as transformers counts it;
- bnb_bytes: a tiny random model of the folder's config (real weights) quantized on the CPU by bitsandbytes;
  returns every parameter, buffer and QuantState tensor with its bytes;
- deepspeed: DeepSpeed's estimate_zero2/3_model_states_mem_needs for given numbers;
- lora: PEFT's trainable parameter count for a meta model of the folder's config.
"""
from __future__ import annotations

import json
import logging
import sys
import warnings

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)


def _meta_model(folder: str, dtype_name: str | None, bnb: dict | None):
    import torch
    import transformers
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    dtype = getattr(torch, dtype_name) if dtype_name else None
    major = int(transformers.__version__.split(".")[0])
    quantizer = None
    if bnb:
        from transformers import BitsAndBytesConfig
        from transformers.quantizers import AutoHfQuantizer

        quantizer = AutoHfQuantizer.from_config(BitsAndBytesConfig(**bnb), pre_quantized=False)
    kwargs = {"dtype": dtype} if major >= 5 else {"torch_dtype": dtype}
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, **kwargs)
    if major < 5:
        model.tie_weights()
    return model, quantizer, major, dtype


def device_map(req: dict) -> dict:
    import torch

    model, quantizer, major, dtype = _meta_model(req["folder"], req.get("dtype"), req.get("bnb"))
    max_memory = {(int(k) if k.isdigit() else k): v for k, v in req["max_memory"].items()}
    # from_pretrained replaces the Linear modules under the model dtype as torch's default dtype (5.x: inside its
    # init context; 4.x: _get_dtype sets it), so the new modules' biases take the model dtype
    if dtype is not None:
        torch.set_default_dtype(dtype)
    if major >= 5:
        from transformers.integrations.accelerate import _get_device_map, compute_module_sizes

        if quantizer is not None:
            quantizer.preprocess_model(model=model, dtype=dtype, device_map=req["kind"], checkpoint_files=None)
        dm = _get_device_map(model, req["kind"], dict(max_memory), quantizer)
        sizes, _ = compute_module_sizes(model, quantizer, only_modules=False)
    else:
        from accelerate.utils import compute_module_sizes
        from transformers.modeling_utils import _get_device_map

        if quantizer is not None:
            quantizer.preprocess_model(model=model, device_map=req["kind"], keep_in_fp32_modules=[])
        dm = _get_device_map(model, req["kind"], dict(max_memory), quantizer, dtype, None)
        target = quantizer.adjust_target_dtype(dtype) if quantizer is not None else dtype
        special = quantizer.get_special_dtypes_update(model, dtype) if quantizer is not None else None
        sizes = compute_module_sizes(model, dtype=target, special_dtypes=special)
    torch.set_default_dtype(torch.float32)
    return {"device_map": [[k, v] for k, v in dm.items()], "sizes": {k: float(sizes[k]) for k in dm}}


def bnb_bytes(req: dict) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig
    from transformers.quantizers import AutoHfQuantizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(req["folder"])
    dtype = getattr(torch, req.get("dtype") or "bfloat16")
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    path = req["out"]
    model.save_pretrained(path)
    quantized = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map="cpu",
                                                     quantization_config=BitsAndBytesConfig(**req["bnb"]))
    out = {}
    seen = set()
    for name, p in list(quantized.named_parameters()) + list(quantized.named_buffers()):
        if p.data_ptr() in seen and p.numel():
            continue
        seen.add(p.data_ptr())
        out[name] = [str(p.dtype).removeprefix("torch."), list(p.shape), p.numel() * p.element_size()]
        state = getattr(p, "quant_state", None)
        if state is not None:
            out[name + ".absmax"] = _t(state.absmax)
            out[name + ".quant_map"] = _t(state.code)
            if state.nested:
                out[name + ".nested_absmax"] = _t(state.state2.absmax)
                out[name + ".nested_quant_map"] = _t(state.state2.code)
                out[name + ".nested_offset"] = _t(state.offset)
        scb = getattr(p, "SCB", None)
        if scb is not None:
            out[name.removesuffix(".weight") + ".SCB"] = _t(scb)
    quantized.save_pretrained(req["out"] + "-quantized")
    del AutoHfQuantizer
    return {"tensors": out}


def _t(tensor) -> list:
    return [str(tensor.dtype).removeprefix("torch."), list(tensor.shape), tensor.numel() * tensor.element_size()]


def deepspeed(req: dict) -> dict:
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    out = []
    for case in req["cases"]:
        if case["stage"] == 2:
            out.append(list(estimate_zero2_model_states_mem_needs(case["params"], case["gpus"], case["nodes"],
                                                                  case["cpu_offload"])))
        else:
            out.append(list(estimate_zero3_model_states_mem_needs(
                case["params"], case["largest"], case["gpus"], case["nodes"], case["cpu_offload"],
                case["cpu_offload_params"], case["zero_init"])))
    return {"results": out}


def lora(req: dict) -> dict:
    from accelerate import init_empty_weights
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(req["folder"])
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    peft = get_peft_model(model, LoraConfig(r=req["rank"], target_modules=req.get("targets")))
    trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    return {"trainable": trainable}


TASKS = {"device_map": device_map, "bnb_bytes": bnb_bytes, "deepspeed": deepspeed, "lora": lora}


def answer(request: dict) -> dict:
    try:
        return TASKS[request["task"]](request)
    except Exception as e:  # noqa: BLE001 - the caller compares errors too
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}


if __name__ == "__main__":
    request = json.loads(sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read())
    if isinstance(request, list):  # a batch: one interpreter start for many cases
        print(json.dumps([answer(r) for r in request]))
    else:
        print(json.dumps(answer(request)))
