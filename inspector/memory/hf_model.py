"""The nn.Module tree transformers builds for a causal LM, rebuilt from a checkpoint's tensor names.

`AutoModelForCausalLM.from_pretrained` creates the model from config.json (on the meta device), then fills its
parameters from the checkpoint by name. accelerate walks that tree (`named_children()` in definition order) to
make a device map; PEFT walks it to find LoRA targets; DeepSpeed to find its largest layer. We rebuild it:

- every checkpoint tensor `a.b.c.weight` is parameter `weight` of module `a.b.c`; the modules of a path exist
  with their prefixes; children are in definition order (`base_children`, `root_children` of
  rules/transformers.yaml; decoder layers by index; inside a layer, where order never changes a result, by name);
- tensors transformers does not load are set apart: layers past `num_hidden_layers` (MTP), a stored rotary
  `inv_freq` (a non-persistent buffer now), bitsandbytes' serialization-only tensors (`weight_format`, the
  `quant_state.*` JSON blob), the output weight of a model with tied embeddings, names outside the model;
- bitsandbytes quantization state (`weight.absmax`, `weight.quant_map`, `weight.nested_*`, `SCB`) belongs to the
  module's weight (`Module.state`): on the weight's device, but not a parameter;
- transformers 5 loads per-expert MoE weights into one fused experts module (3-D parameters, not nn.Linear);
- modules the checkpoint cannot show exist too: the rotary embedding (float32 buffers only), the tied output
  embedding, other non-persistent buffers of the data file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator, Mapping

from ..model import Checkpoint, TensorInfo
from .hf_arch import ArchSpec, arch_spec, model_type_of

# bitsandbytes: tensors of a serialized quantized Linear that are its weight's quantization state
BNB_STATE = re.compile(r"\.weight\.(?:absmax|quant_map|nested_absmax|nested_quant_map)$|\.SCB$")
# ... and tensors only the loader reads (the QuantState JSON blob, Int8Params' layout byte)
BNB_SERIALIZATION = re.compile(r"\.weight\.quant_state\.bitsandbytes__\w+$|\.weight_format$")
# GPTQ / AWQ QuantLinear: packed weights and their scales are registered buffers
QUANT_LINEAR_BUFFERS = ("qweight", "qzeros", "scales", "g_idx")


@dataclass(eq=False)
class Tensor:
    """A parameter, buffer or bitsandbytes state tensor of the runtime model."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # the checkpoint's dtype (safetensors names), or the buffer's own
    source: TensorInfo | None = None  # the checkpoint tensor (None: made by the model, not loaded)
    kind: str = "param"  # "param", "buffer", "state"
    tied_to: str | None = None  # the parameter this one is (tied embeddings)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(eq=False)
class Module:
    path: str
    kind: str = "module"  # root, base, layers, layer, linear, quant_linear, embedding, experts, module
    params: list[Tensor] = field(default_factory=list)
    buffers: list[Tensor] = field(default_factory=list)
    state: list[Tensor] = field(default_factory=list)  # bitsandbytes quantization state of the weight
    children: list["Module"] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    def child(self, name: str) -> "Module | None":
        full = f"{self.path}.{name}" if self.path else name
        return next((c for c in self.children if c.path == full), None)

    def walk(self) -> Iterator["Module"]:
        """Pre-order, like nn.Module.named_modules()."""
        yield self
        for c in self.children:
            yield from c.walk()

    def tensors(self) -> Iterator[Tensor]:
        """Every parameter, buffer and state tensor in this subtree."""
        for m in self.walk():
            yield from m.params
            yield from m.buffers
            yield from m.state

    @property
    def weight(self) -> Tensor | None:
        return next((p for p in self.params if p.name.endswith(".weight")), None)


@dataclass
class HfModel:
    """The module tree of one checkpoint under one transformers major version."""

    spec: ArchSpec
    root: Module
    config: Mapping
    tied: dict[str, str]  # tied parameter -> the parameter it is (transformers 5's all_tied_weights_keys)
    not_loaded: tuple[TensorInfo, ...]
    notes: tuple[str, ...] = ()

    def modules(self) -> Iterator[Module]:
        return self.root.walk()

    def module(self, path: str) -> Module:
        for m in self.modules():
            if m.path == path:
                return m
        raise KeyError(path)

    def parameters(self) -> list[Tensor]:
        """named_parameters(): pre-order, own parameters first, a tied parameter once (under its first name)."""
        return [p for m in self.modules() for p in m.params if p.tied_to is None]

    def buffers(self) -> list[Tensor]:
        return [b for m in self.modules() for b in m.buffers]

    def layers(self) -> list[Module]:
        """The decoder layers (instances of the no-split class)."""
        try:
            return list(self.module(self.spec.layers_path).children)
        except KeyError:
            return []

    def is_fp32_kept(self, name: str, dtype: str) -> bool:
        """transformers' dtype plan: `_keep_in_fp32_modules` for float16 models, `_strict` for 16-bit ones."""
        keep = list(self.spec.keep_fp32_strict) if dtype in ("F16", "BF16") else []
        keep += list(self.spec.keep_fp32_fp16) if dtype == "F16" else []
        return any(re.search(rf"(?:^|\.){re.escape(k)}(?:\.|$)", name) for k in keep)


def _int(config: Mapping, key: str) -> int | None:
    value = config.get(key)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def rotary_half(config: Mapping, spec: ArchSpec) -> int:
    """Values of one inv_freq buffer: torch.arange(0, dim, 2) over the rotary dimension."""
    heads = _int(config, "num_attention_heads") or 1
    dim = _int(config, spec.rotary_dim)
    if dim is None:
        dim = (_int(config, "hidden_size") or 0) // heads
    factor = config.get(spec.rotary_factor) if spec.rotary_factor else None
    if isinstance(factor, (int, float)) and not isinstance(factor, bool):
        dim = int(dim * factor)
    return (dim + 1) // 2


def is_tied(config: Mapping, spec: ArchSpec) -> bool:
    value = config.get("tie_word_embeddings")
    return spec.tie_default if value is None else bool(value)


class _Builder:
    def __init__(self, checkpoint: Checkpoint, spec: ArchSpec) -> None:
        self.checkpoint = checkpoint
        self.spec = spec
        self.config = dict(checkpoint.config or {})
        self.nodes: dict[str, Module] = {"": Module("", "root")}
        self.not_loaded: list[TensorInfo] = []
        self.notes: list[str] = []
        self.n_layers = _int(self.config, "num_hidden_layers")
        self.layer_re = re.compile(rf"^{re.escape(spec.layers_path)}\.(\d+)(?:\.|$)")
        self.fused = re.compile(spec.fused_match) if spec.fused_match else None
        self.buffer_res = [re.compile(p) for p in spec.checkpoint_buffers]
        self.tied = is_tied(self.config, spec)

    def node(self, path: str) -> Module:
        if path not in self.nodes:
            parent = self.node(path.rsplit(".", 1)[0] if "." in path else "")
            self.nodes[path] = Module(path)
            parent.children.append(self.nodes[path])
        return self.nodes[path]

    def skip_reason(self, t: TensorInfo) -> str | None:
        name, spec = t.name, self.spec
        top = name.split(".", 1)[0]
        if top not in spec.root_children:
            return "outside the model"
        m = self.layer_re.match(name)
        if m and self.n_layers is not None and int(m.group(1)) >= self.n_layers:
            return "past num_hidden_layers"
        if BNB_SERIALIZATION.search(name) or name.endswith(".rotary_emb.inv_freq"):
            return "read by the loader only"
        if self.tied and name == f"{spec.output}.weight":
            return "tied to the input embedding"
        return None

    def add(self, t: TensorInfo) -> None:
        name = t.name
        layer = self.layer_re.match(name)
        rel = name[layer.end():] if layer else ""
        if BNB_STATE.search(name):
            owner = re.sub(r"\.(?:weight\.\w+|SCB)$", "", name)
            self.node(owner).state.append(Tensor(name, t.shape, t.dtype, t, "state"))
            return
        if layer and self.fused is not None and self.fused.fullmatch(rel):
            fused = self.node(f"{layer.group(0).rstrip('.')}.{self.spec.fused_module}")
            fused.kind = "experts"
            fused.params.append(Tensor(name, t.shape, t.dtype, t))
            return
        path, _, local = name.rpartition(".")
        kind = "param"
        if local in QUANT_LINEAR_BUFFERS or (layer and any(r.fullmatch(rel) for r in self.buffer_res)):
            kind = "buffer"
        node = self.node(path)
        (node.buffers if kind == "buffer" else node.params).append(Tensor(name, t.shape, t.dtype, t, kind))

    def synthetic(self) -> None:
        spec, config = self.spec, self.config
        if spec.rotary_module and spec.rotary_module in spec.base_children:
            rotary = self.node(f"{spec.base}.{spec.rotary_module}")
            half = rotary_half(config, spec)
            rotary.buffers.extend(Tensor(f"{rotary.path}.{b}", (half,), "F32", kind="buffer")
                                  for b in spec.rotary_buffers)
        for extra in spec.extra_buffers:
            numel = rotary_half(config, spec) if extra.numel == "rotary_half" else int(extra.numel)
            paths = [extra.path.replace("{L}", l.path) for l in self.layer_nodes()] if "{L}" in extra.path \
                else [extra.path]
            for full in paths:
                owner, _, _ = full.rpartition(".")
                self.node(owner).buffers.append(Tensor(full, (numel,) if numel != 1 else (), extra.dtype,
                                                       kind="buffer"))
        embed = next((self.nodes.get(f"{spec.base}.{e}") for e in spec.embeddings
                      if f"{spec.base}.{e}" in self.nodes), None)
        head_path = spec.output
        if embed is not None and embed.weight is not None and head_path not in self.nodes:
            w = embed.weight
            head = self.node(head_path)
            if self.tied:
                head.params.append(Tensor(f"{head_path}.weight", w.shape, w.dtype, tied_to=w.name))
            else:
                head.params.append(Tensor(f"{head_path}.weight", w.shape, w.dtype))
                self.notes.append(f"the checkpoint has no {head_path}.weight and the embeddings are not tied: "
                                  "transformers creates it (initialized, not loaded)")

    def layer_nodes(self) -> list[Module]:
        layers = self.nodes.get(self.spec.layers_path)
        return list(layers.children) if layers else []

    def order(self) -> None:
        spec = self.spec
        for node in self.nodes.values():
            names = spec.root_children if node.path == "" else spec.base_children if node.path == spec.base else ()
            rank = {n: i for i, n in enumerate(names)}
            if node.path == spec.layers_path:
                node.children.sort(key=lambda c: int(c.name) if c.name.isdigit() else 1 << 30)
            elif rank:
                first = {id(c): i for i, c in enumerate(node.children)}
                node.children.sort(key=lambda c: (rank.get(c.name, len(rank)), first[id(c)]))
            else:
                node.children.sort(key=lambda c: c.name)

    def kinds(self) -> None:
        spec = self.spec
        layers = self.nodes.get(spec.layers_path)
        for node in self.nodes.values():
            if node.kind in ("root", "experts"):
                continue
            if node.path == spec.base:
                node.kind = "base"
            elif layers is not None and node is layers:
                node.kind = "layers"
            elif layers is not None and any(node is c for c in layers.children):
                node.kind = "layer"
            elif node.path in {f"{spec.base}.{e}" for e in spec.embeddings}:
                node.kind = "embedding"
            elif any(b.name.endswith(".qweight") for b in node.buffers):
                node.kind = "quant_linear"
            elif node.weight is not None and len(node.weight.shape) == 2 and not self.not_linear(node.path):
                node.kind = "linear"

    def not_linear(self, path: str) -> bool:
        layer = self.layer_re.match(path + ".")
        rel = path[layer.end():] if layer else ""
        return bool(layer) and rel in self.spec.not_linear

    def build(self) -> HfModel:
        for t in self.checkpoint.tensors:
            reason = self.skip_reason(t)
            if reason is not None:
                self.not_loaded.append(t)
            else:
                self.add(t)
        self.synthetic()
        self.order()
        self.kinds()
        tied = {f"{self.spec.output}.weight": p.tied_to for m in self.nodes.values() for p in m.params if p.tied_to}
        skipped = [t for t in self.not_loaded if self.skip_reason(t) == "outside the model"]
        if skipped:
            self.notes.append(f"{len(skipped)} tensor(s) outside {', '.join(self.spec.root_children)} are not "
                              f"loaded (e.g. {skipped[0].name})")
        return HfModel(self.spec, self.nodes[""], self.config, tied, tuple(self.not_loaded), tuple(self.notes))


def build_model(checkpoint: Checkpoint, version: int = 5) -> HfModel:
    """The module tree transformers `version` (4 or 5) builds for this safetensors checkpoint.

    Raises:
        UsageError: no config.json, or a model type rules/transformers.yaml does not describe.
    """
    spec = arch_spec(model_type_of(checkpoint.config, checkpoint.source), version)
    return _Builder(checkpoint, spec).build()
