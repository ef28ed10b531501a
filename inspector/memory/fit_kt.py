"""The KTransformers side of `fit`: a rule file (optimize-rule YAML) that keeps attention, shared experts, norms
and the output head on the GPUs, routed experts on the CPU (KExpertsCPU), and on each GPU as many of its MoE
layers as fit with Marlin experts (KExpertsMarlin, re-quantized to int4 group 64 on the GPU).

The layout follows KTransformers' own multi-GPU rule files (DeepSeek-V3-Chat-multi-gpu-marlin.yaml in
kvcache-ai/ktransformers, archive/ktransformers/optimize/optimize_rules/, copied in ../shared/ktransformers-rules):
decoder layers split into contiguous ranges, one per GPU (here in proportion to the GPU budgets), a
`transfer_map` entry where a range starts, Marlin experts on the first MoE layers of a GPU's range. Every
candidate file is sized by replaying it (inspector.placement.validate, the same code `validate` runs), so the
bytes are KTransformers' (Marlin, bf16 dequantization, mmap'd CPU experts), and the KV cache and buffers come from
the memory plan (llama.cpp's formulas: for MLA the cache KTransformers keeps is the same 576 values per token
per layer; its buffers differ and are an estimate).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import RulesError, UsageError
from ..model import Checkpoint
from ..placement.devices import device_sort_key
from .fit import FitResult, largest_fitting, limit_lines, limits_of
from .hparams import hparams_of
from .plan import MemoryOptions, MemoryPlan, memory_plan

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


def _split_layers(n_layers: int, gpus: Sequence[str], budgets: Mapping[str, int]) -> list[list[int]]:
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


class _KtSearch:
    def __init__(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: MemoryOptions) -> None:
        from ..placement.kt_data import kt_data
        from ..placement.kt_tree import build_tree

        self.checkpoint, self.budgets, self.options = checkpoint, dict(budgets), options
        self.gpus = sorted((d for d in budgets if d.startswith("cuda:")), key=device_sort_key)
        if not self.gpus:
            raise UsageError("KTransformers needs at least one GPU budget (--budget cuda:0=SIZE)")
        try:
            tree = build_tree(checkpoint, kt_data())
        except RulesError as e:
            raise UsageError(f"KTransformers rules cannot be written for this model: {e}") from None
        if tree.template.name not in TEMPLATES:
            raise UsageError(f"no KTransformers rule template for {tree.template.name!r}",
                             hint=f"supported: {', '.join(sorted(TEMPLATES))}")
        self.template = TEMPLATES[tree.template.name]
        self.moe_layers = tree.moe_layers
        self.ranges = _split_layers(tree.n_layers, self.gpus, budgets)
        self.hp = hparams_of(checkpoint)
        self.tmp = tempfile.TemporaryDirectory(prefix="ckpt-size-kt-")

    def text(self, marlin_counts: Sequence[int]) -> str:
        marlin = [[i for i in r if i in self.moe_layers][:k] for r, k in zip(self.ranges, marlin_counts)]
        return rule_file(self.template, self.ranges, marlin, self.gpus, self.moe_layers)

    def place(self, text: str) -> Checkpoint:
        from ..placement.validate import validate_placement

        path = Path(self.tmp.name) / "rules.yaml"
        path.write_text(text, encoding="utf-8")
        result = validate_placement(path, self.checkpoint, gpus=max(int(g.split(":")[1]) for g in self.gpus) + 1)
        errors = [f for f in result.findings if f.severity == "error"]
        if errors or result.placed is None:
            raise UsageError(f"the generated KTransformers rules do not validate: "
                             f"{errors[0].message if errors else 'no placement'}")
        return result.placed.checkpoint

    def plan(self, placed: Checkpoint, options: MemoryOptions) -> MemoryPlan:
        return memory_plan(placed, options, hparams=self.hp, cpu_staging=False)

    def fits(self, counts: Sequence[int], options: MemoryOptions, only: str | None = None) -> bool:
        verdict = self.plan(self.place(self.text(counts)), options).check(self.budgets)
        return all(d.fits for d in verdict.devices if only is None or d.device == only)

    def run(self) -> FitResult:
        steps = []
        counts = [0] * len(self.gpus)
        base_fits = self.fits(counts, self.options)
        if not base_fits:
            steps.append("attention, shared experts and the head do not fit the GPUs even with every routed expert "
                         "on the CPU")
        else:
            for g, dev in enumerate(self.gpus):
                n_moe = sum(1 for i in self.ranges[g] if i in self.moe_layers)

                def ok(k: int, g: int = g, dev: str = dev) -> bool:
                    trial = list(counts)
                    trial[g] = k
                    return self.fits(trial, self.options, only=dev)

                counts[g] = max(0, largest_fitting(0, n_moe, ok))
                steps.append(f"{dev}: layers {self.ranges[g][0]}-{self.ranges[g][-1]}, {counts[g]} of its {n_moe} MoE "
                             "layers with Marlin experts" if self.ranges[g] else f"{dev}: no layers")
        text = self.text(counts)
        placed = self.place(text)
        plan = self.plan(placed, self.options)
        verdict = plan.check(self.budgets)

        def ok_opts(opts: MemoryOptions) -> bool:
            return self.plan(placed, opts).check(self.budgets).fits

        limits = limits_of(self.options, self.hp.n_ctx_train, ok_opts)
        max_ctx, max_par = limits
        ctx_line, par_line = limit_lines(self.options, limits)
        marlin = {dev: c for dev, c in zip(self.gpus, counts)}
        summary = "KTransformers: " + ", ".join(f"{d} {c} Marlin MoE layer(s)" for d, c in marlin.items())
        notes = list(plan.notes) + [
            "KTransformers keeps its own KV cache; it is sized with llama.cpp's formulas (for MLA the same 576 "
            "values per token per layer) and its buffers with llama.cpp's estimate",
        ]
        return FitResult("ktransformers", verdict.fits, plan, verdict, self.options.llama_cpp_flags(), summary,
                         max_ctx, max_par, max_ctx_flags=ctx_line, max_parallel_flags=par_line,
                         limits_note="max_ctx and max_parallel are computed keeping this rule file as it is (the "
                                     "same Marlin layers per GPU); only the context and the sequences change",
                         yaml_text=text, marlin_layers=marlin, steps=tuple(steps), notes=tuple(notes))


def fit_ktransformers(checkpoint: Checkpoint, budgets: Mapping[str, int], options: MemoryOptions) -> FitResult:
    search = _KtSearch(checkpoint, budgets, options)
    try:
        return search.run()
    finally:
        search.tmp.cleanup()
