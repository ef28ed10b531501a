"""KTransformers rule files written by `fit`: a rule file (optimize-rule YAML) that keeps attention, shared experts, norms
and the output head on the GPUs, routed experts on the CPU (KExpertsCPU), and on each GPU as many of its MoE
layers as fit with Marlin experts (KExpertsMarlin, re-quantized to int4 group 64 on the GPU).

The layout follows KTransformers' own multi-GPU rule files (DeepSeek-V3-Chat-multi-gpu-marlin.yaml in
kvcache-ai/ktransformers, archive/ktransformers/optimize/optimize_rules/, copied in ../shared/ktransformers-rules):
decoder layers split into contiguous ranges, one per GPU (here in proportion to the GPU budgets), a
`transfer_map` entry where a range starts, Marlin experts on the first MoE layers of a GPU's range. The search
(search.py) sizes each candidate file by replaying it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

_LINEAR = "ktransformers.operators.linear.KTransformersLinear"
_EXPERTS = "ktransformers.operators.experts.KTransformersExperts"


@dataclass(frozen=True)
class _Template:
    """Per-architecture classes of a rule file (from KTransformers' shipped rule files for that model)."""

    experts_path: str  # the routed experts ModuleList under model.layers.N
    moe_path: str
    moe_class: str | None  # (original class, replacement) for the MoE block
    moe_replace: str | None
    gate_class: str | None  # MoEGate → KMoEGate (DeepSeek); None: the router is a Linear (Marlin)
    gate_replace: str | None
    rope_class: str | None
    rope_replace: str | None
    attention_replace: str | None
    model_replace: str | None
    linear_exclude: str = ""  # a negative look-ahead for Linears that must stay dense


TEMPLATES: dict[str, _Template] = {
    # DeepSeek-V3-Chat(-multi-gpu-marlin).yaml
    "deepseek_v3": _Template(
        "mlp.experts", "mlp", "ktransformers.models.modeling_deepseek_v3.DeepseekV3MoE",
        "ktransformers.operators.experts.KDeepseekV3MoE", "ktransformers.models.modeling_deepseek_v3.MoEGate",
        "ktransformers.operators.gate.KMoEGate", "ktransformers.models.modeling_deepseek_v3.DeepseekV3RotaryEmbedding",
        "ktransformers.operators.RoPE.YarnRotaryEmbeddingV3", "ktransformers.operators.attention.KDeepseekV2Attention",
        "ktransformers.operators.models.KDeepseekV2Model", r"(?!self_attn\.kv_b_proj)"),
    # DeepSeek-V2-Chat.yaml
    "deepseek_v2": _Template(
        "mlp.experts", "mlp", "ktransformers.models.modeling_deepseek.DeepseekV2MoE",
        "ktransformers.operators.experts.KDeepseekV2MoE", "ktransformers.models.modeling_deepseek.MoEGate",
        "ktransformers.operators.gate.KMoEGate", "ktransformers.models.modeling_deepseek.DeepseekV2YarnRotaryEmbedding",
        "ktransformers.operators.RoPE.YarnRotaryEmbedding", "ktransformers.operators.attention.KDeepseekV2Attention",
        "ktransformers.operators.models.KDeepseekV2Model", r"(?!self_attn\.kv_b_proj)"),
    # Qwen2-57B-A14B-Instruct.yaml
    "qwen2_moe": _Template(
        "mlp.experts", "mlp", "ktransformers.models.modeling_qwen2_moe.Qwen2MoeSparseMoeBlock",
        "ktransformers.operators.experts.KQwen2MoeSparseMoeBlock", None, None,
        "ktransformers.models.modeling_qwen2_moe.Qwen2MoeRotaryEmbedding", "ktransformers.operators.RoPE.RotaryEmbedding",
        None, "ktransformers.operators.models.KQwen2MoeModel"),
    "qwen3_moe": _Template(
        "mlp.experts", "mlp", None, None, None, None, None, None, None,
        "ktransformers.operators.models.KQwen2MoeModel"),
    # Mixtral.yaml
    "mixtral": _Template(
        "block_sparse_moe.experts", "block_sparse_moe", "ktransformers.models.modeling_mixtral.MixtralSparseMoeBlock",
        "ktransformers.operators.experts.KMistralSparseMoEBlock", None, None,
        "ktransformers.models.modeling_mixtral.MixtralRotaryEmbedding", "ktransformers.operators.RoPE.RotaryEmbedding",
        None, None),
}


def _alternation(layers: Sequence[int]) -> str:
    return "(" + "|".join(str(i) for i in layers) + ")"


def _q(pattern: str) -> str:
    """A YAML double-quoted scalar for a regex (backslashes doubled)."""
    return '"' + pattern.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rule(lines: list[str], name: str | None, cls: str | None, replace: str, kwargs: Mapping[str, object],
          recursive: bool | None = None) -> None:
    lines.append("- match:")
    if name is not None:
        lines.append(f"    name: {_q(name)}")
    if cls is not None:
        lines.append(f"    class: {cls}")
    lines.append("  replace:")
    lines.append(f'    class: {replace if replace != "default" else chr(34) + "default" + chr(34)}')
    if kwargs:
        lines.append("    kwargs:")
        for key, value in kwargs.items():
            if isinstance(value, dict):
                lines.append(f"      {key}:")
                lines.extend(f'        {k}: "{v}"' for k, v in value.items())
            elif isinstance(value, int):
                lines.append(f"      {key}: {value}")
            else:
                lines.append(f'      {key}: "{value}"')
    if recursive is not None:
        lines.append(f"  recursive: {'True' if recursive else 'False'}")
    lines.append("")


def rule_file(template: _Template, ranges: Sequence[Sequence[int]], marlin: Sequence[Sequence[int]],
              gpus: Sequence[str], moe_layers: frozenset[int]) -> str:
    """The rule file for layer `ranges[g]` on `gpus[g]` and Marlin experts on the layers in `marlin[g]`."""
    lines = ["# Written by `ckpt-size fit --runtime ktransformers`: layers " + "; ".join(
        f"{r[0]}-{r[-1]} on {g}" for r, g in zip(ranges, gpus) if r) + ". Routed experts on the CPU (KExpertsCPU) "
        "except the Marlin layers listed per GPU.", ""]
    _rule(lines, r"^model\.embed_tokens", None, "default", {"generate_device": "cpu", "prefill_device": "cpu"})
    for layers, fast, gpu in zip(ranges, marlin, gpus):
        if not layers:
            continue
        at = _alternation(layers)
        dev = {"generate_device": gpu, "prefill_device": gpu}
        if template.rope_class:
            _rule(lines, rf"^model\.layers\.{at}\.", template.rope_class, template.rope_replace or "default", dev)
        _rule(lines, rf"^model\.layers\.{at}\.{template.linear_exclude}.*$", "torch.nn.Linear", _LINEAR,
              {**dev, "generate_op": "KLinearMarlin", "prefill_op": "KLinearTorch"})
        moe = [i for i in layers if i in moe_layers]
        experts = template.experts_path.replace(".", r"\.")
        if moe and template.moe_class:
            _rule(lines, rf"^model\.layers\.{_alternation(moe)}\.{template.moe_path}$", template.moe_class,
                  template.moe_replace or "default", dev)
        if moe and template.gate_class:
            _rule(lines, rf"^model\.layers\.{_alternation(moe)}\.{template.moe_path}\.gate$", template.gate_class,
                  template.gate_replace or "default", dev)
        if fast:
            _rule(lines, rf"^model\.layers\.{_alternation(fast)}\.{experts}$", None, _EXPERTS,
                  {**dev, "generate_op": "KExpertsMarlin", "prefill_op": "KExpertsTorch"}, recursive=False)
        slow = [i for i in moe if i not in set(fast)]
        if slow:
            _rule(lines, rf"^model\.layers\.{_alternation(slow)}\.{experts}$", None, _EXPERTS,
                  {"prefill_device": gpu, "prefill_op": "KExpertsTorch", "generate_device": "cpu",
                   "generate_op": "KExpertsCPU", "out_device": gpu}, recursive=False)
        if template.attention_replace:
            _rule(lines, rf"^model\.layers\.{at}\.self_attn$", None, template.attention_replace, dev)
        _rule(lines, rf"^model\.layers\.{at}\.", None, "default", dev)
    last = next(g for r, g in reversed(list(zip(ranges, gpus))) if r)
    if template.model_replace:
        kwargs: dict[str, object] = {"per_layer_prefill_intput_threshold": 0}
        transfer = {r[0]: g for r, g in zip(ranges, gpus) if r and r[0] != 0}
        if transfer:
            kwargs["transfer_map"] = transfer
        _rule(lines, r"^model$", None, template.model_replace, kwargs)
    _rule(lines, r"^lm_head", "torch.nn.Linear", _LINEAR, {"generate_device": last, "prefill_device": last,
                                                          "generate_op": "KLinearMarlin", "prefill_op": "KLinearTorch"})
    _rule(lines, r"^model\.norm", None, "default", {"generate_device": last, "prefill_device": last})
    return "\n".join(lines)


def split_layers(n_layers: int, gpus: Sequence[str], budgets: Mapping[str, int]) -> list[list[int]]:
    """Contiguous layer ranges in proportion to the GPU budgets (the largest remainders get the extra layers)."""
    total = sum(budgets[g] for g in gpus)
    shares = [n_layers * budgets[g] / total for g in gpus]
    counts = [int(s) for s in shares]
    for i in sorted(range(len(gpus)), key=lambda i: -(shares[i] - counts[i]))[: n_layers - sum(counts)]:
        counts[i] += 1
    ranges, start = [], 0
    for c in counts:
        ranges.append(list(range(start, start + c)))
        start += c
    return ranges
