"""The HF module tree KTransformers' optimizer walks, rebuilt from a checkpoint's tensors.

KTransformers builds the model from config.json with its own models/modeling_*.py on the meta device, walks
that module tree with the rules, and finds each parameter's weights by translating its HF name to a GGUF name
(util/custom_gguf.py::translate_name_to_gguf). We do the same in reverse: pick the tree template of the
checkpoint's architecture (rules/ktransformers.yaml), size it from the tensors (layer count, dense vs MoE
layers, expert count), and attach to every parameter the checkpoint tensors the loader would read for it.
Per-expert modules inside an experts ModuleList are built only when something asks for them (a DeepSeek-V3
tree has 74,240 of them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ...errors import FormatError, RulesError
from ...model import Checkpoint, TensorInfo
from .data import KtData, ModuleTemplate, TreeTemplate

_LAYER = re.compile(r"\{L\}")
# The walk builds four modules per expert per MoE layer, from the count a stacked tensor's last dimension gives: a
# corrupt one (10^9 experts) would build billions. Real models have at most a few hundred (llama.cpp's
# LLAMA_MAX_EXPERTS is 512, src/llama-hparams.h).
MAX_EXPERTS = 4096


@dataclass(frozen=True)
class TensorPart:
    """A checkpoint tensor, or expert `expert` of a stacked [E, …] expert tensor holding `experts` slices."""

    tensor: TensorInfo
    expert: int | None = None
    experts: int = 1

    @property
    def numel(self) -> int:
        return self.tensor.params // self.experts

    @property
    def nbytes(self) -> int:
        return self.tensor.nbytes // self.experts

    @property
    def key(self) -> tuple[str, int | None]:
        return (self.tensor.name, self.expert)

    @property
    def name(self) -> str:
        return self.tensor.name if self.expert is None else f"{self.tensor.name}[{self.expert}]"


@dataclass(frozen=True)
class Param:
    """One nn.Parameter of a module and the tensors that fill it (none: the loader cannot find it)."""

    name: str
    hf_name: str
    lookup: str  # the name the loader looks for (GGUF name for GGUF checkpoints); "" for per-expert ones
    parts: tuple[TensorPart, ...]
    dims: tuple[int, int] | None  # (in_features, out_features) of a Linear weight

    @property
    def numel(self) -> int:
        return sum(p.numel for p in self.parts)


@dataclass
class Module:
    path: str
    cls: str
    classes: frozenset[str]
    layer: int | None
    params: tuple[Param, ...] = ()
    experts: dict[str, tuple[TensorPart, ...]] | None = None  # experts ModuleList: projection -> tensors
    n_experts: int = 0
    expert_scales: tuple[TensorPart, ...] = ()  # FP8 per-expert weight_scale_inv tensors (safetensors)
    _children: list["Module"] = field(default_factory=list)
    _factory: Callable[[], list["Module"]] | None = None

    @property
    def children(self) -> list["Module"]:
        if self._factory is not None:
            self._children = self._factory()
            self._factory = None
        return self._children

    @property
    def short_class(self) -> str:
        return self.cls.rsplit(".", 1)[-1]

    @property
    def is_linear(self) -> bool:
        return "torch.nn.Linear" in self.classes

    @property
    def is_embedding(self) -> bool:
        return "torch.nn.Embedding" in self.classes


@dataclass
class Tree:
    template: TreeTemplate
    root: Module
    n_layers: int
    moe_layers: frozenset[int]
    n_experts: int
    dropped: tuple[TensorInfo, ...]  # checkpoint tensors outside the tree (MTP layers, unknown names)
    fmt: str
    _layer_names: dict[int, list[tuple[str, frozenset[str], bool]]] = field(default_factory=dict)

    def walk_all(self) -> Iterator[Module]:
        """Every module, per-expert ones included (built on the way)."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def layer_names(self, layer: int) -> list[tuple[str, frozenset[str], bool]]:
        """(module name, classes, exists in this model) for every template under `model.layers.{L}`, as if
        layer `layer` existed with every kind of module; `{E}` is expert 0."""
        cached = self._layer_names.get(layer)
        if cached is None:
            cached = [
                (t.path.replace("{L}", str(layer)).replace("{E}", "0"), self.template.classes[t.cls],
                 layer < self.n_layers and _layer_has(t, layer in self.moe_layers))
                for t in self.template.modules if "{L}" in t.path
            ]
            self._layer_names[layer] = cached
        return cached


def _layer_has(t: ModuleTemplate, moe: bool) -> bool:
    return t.layers == "all" or (t.layers == "moe") == moe


def choose_template(checkpoint: Checkpoint, data: KtData) -> TreeTemplate:
    """The tree KTransformers would build for this checkpoint.

    Raises:
        RulesError: no KTransformers model class we know fits the checkpoint.
    """
    names = [t.name for t in checkpoint.tensors]
    if checkpoint.format == "gguf":
        arch = checkpoint.architecture
        meta = checkpoint.metadata or {}
        candidates = [t for t in data.trees if t.gguf_architecture == arch]
        for t in candidates:  # the ones with a tell-tale tensor or metadata first
            if t.gguf_requires is not None and any(t.gguf_requires.search(n) for n in names):
                return t
            if t.gguf_metadata and all(meta.get(f"{arch}.{k}") == v for k, v in t.gguf_metadata):
                return t
        plain = [t for t in candidates if t.gguf_requires is None and not t.gguf_metadata]
        if plain:
            return plain[0]
    else:
        archs = list((checkpoint.config or {}).get("architectures") or ())
        for t in data.trees:
            if any(a in t.hf_architectures for a in archs):
                return t
    known = ", ".join(sorted({t.hf_architectures[0] for t in data.trees}))
    raise RulesError(
        f"{checkpoint.source}: no KTransformers module tree for architecture "
        f"{checkpoint.architecture or (checkpoint.config or {}).get('architectures')!r}",
        hint=f"ckpt-size replays KTransformers rules for {known}",
    )


def _n_layers(checkpoint: Checkpoint) -> int:
    meta = checkpoint.metadata or {}
    arch = checkpoint.architecture
    if checkpoint.format == "gguf" and f"{arch}.block_count" in meta:
        return int(meta[f"{arch}.block_count"]) - int(meta.get(f"{arch}.nextn_predict_layers", 0) or 0)
    config = checkpoint.config or {}
    if "num_hidden_layers" in config:
        return int(config["num_hidden_layers"])
    layers = [t.layer for t in checkpoint.tensors if t.layer is not None and t.role != "mtp"]
    return max(layers) + 1 if layers else 0


class _Builder:
    def __init__(self, checkpoint: Checkpoint, data: KtData, template: TreeTemplate) -> None:
        self.checkpoint = checkpoint
        self.data = data
        self.template = template
        self.gguf = checkpoint.format == "gguf"
        self.by_name = {t.name: t for t in checkpoint.tensors}
        self.used: set[str] = set()
        self.n_layers = _n_layers(checkpoint)
        self.moe_layers = frozenset(
            t.layer for t in checkpoint.tensors
            if t.role == "routed_experts" and t.layer is not None and t.layer < self.n_layers
        )
        self.expert_templates = [t for t in template.modules if "{E}" in t.path]
        self.n_experts = 0

    def lookup(self, hf_name: str) -> str:
        """The name the loader reads: the GGUF name for GGUF files. SafeTensorLoader.load_tensor
        (util/custom_loader.py) tries translate_name_to_gguf(key) first, then the HF name, so a safetensors
        checkpoint may hold either (merge_safetensor_gguf.py writes GGUF names; a Hugging Face repo, HF names)."""
        translated = self.data.translate(hf_name)
        if self.gguf or translated in self.by_name:
            return translated
        return hf_name

    # ---- parameters ----------------------------------------------------------------------------------------
    def param(self, path: str, name: str) -> Param | None:
        hf = f"{path}.{name}"
        key = self.lookup(hf)
        tensor = self.by_name.get(key)
        parts: tuple[TensorPart, ...] = ()
        if tensor is not None:
            parts = (TensorPart(tensor),)
        else:
            for whole, pieces in self.data.split_parameters:
                if hf.endswith(whole):
                    found = [self.by_name.get(self.lookup(hf.replace(whole, piece))) for piece in pieces]
                    if all(found):
                        parts = tuple(TensorPart(t) for t in found if t is not None)
        if not parts:
            return None
        self.used.update(p.tensor.name for p in parts)
        return Param(name, hf, key, parts, self.dims(parts))

    def dims(self, parts: tuple[TensorPart, ...]) -> tuple[int, int] | None:
        first = parts[0].tensor
        if len(first.shape) < 2:
            return None
        if len(parts) > 1:  # kv_b_proj from attn_k_b + attn_v_b: in_features = ne0 of attn_v_b (kv_lora_rank)
            last = parts[-1].tensor
            k = last.shape[0] if self.gguf else last.shape[-1]
            return k, sum(p.numel for p in parts) // k
        if self.gguf:  # ne order: ne0 = in_features, ne1 = out_features
            return first.shape[0], first.shape[1]
        return first.shape[-1], first.shape[-2]

    # ---- modules -------------------------------------------------------------------------------------------
    def build(self) -> Tree:
        nodes: dict[str, Module] = {}
        root: Module | None = None
        for t in self.template.modules:
            if "{E}" in t.path:
                continue
            layers: list[int | None] = [None]
            if "{L}" in t.path:
                layers = [i for i in range(self.n_layers) if _layer_has(t, i in self.moe_layers)]
            for layer in layers:
                path = t.path if layer is None else t.path.replace("{L}", str(layer))
                node = self.module(t, path, layer)
                if node is None:
                    continue
                nodes[path] = node
                if path == "":
                    root = node
                else:
                    parent = nodes.get(path.rsplit(".", 1)[0] if "." in path else "")
                    if parent is None:
                        raise RulesError(f"rules/ktransformers.yaml: tree {self.template.name}: "
                                         f"{t.path!r} comes before its parent")
                    parent._children.append(node)
        if root is None:
            raise RulesError(f"rules/ktransformers.yaml: tree {self.template.name} has no root module")
        dropped = tuple(t for t in self.checkpoint.tensors if t.name not in self.used)
        return Tree(self.template, root, self.n_layers, self.moe_layers, self.n_experts, dropped,
                    self.checkpoint.format)

    def module(self, t: ModuleTemplate, path: str, layer: int | None) -> Module | None:
        params = []
        for name, optional in t.params:
            p = self.param(path, name)
            if p is None:
                if optional:
                    continue
                hf = f"{path}.{name}"
                p = Param(name, hf, self.lookup(hf), (), None)  # missing: the loader raises on it
            params.append(p)
        if t.optional and not any(p.parts for p in params) and not self.has_descendant(t, path):
            return None
        params.extend(self.scales(params))
        node = Module(path, t.cls, self.template.classes[t.cls], layer, tuple(params))
        if t.experts is not None:
            self.attach_experts(node, t)
        return node

    def scales(self, params: list[Param]) -> list[Param]:
        """FP8 block scales beside a weight (`.weight_scale_inv`, DeepSeek-V3/R1 FP8 safetensors): KLinearBase.
        load_weight returns (weight, scale) for them, and load_dequantized_tensor folds them into the weight."""
        out = []
        for p in params:
            if p.name != "weight" or not p.parts or not p.lookup.endswith("weight"):
                continue
            scale = self.by_name.get(p.lookup + "_scale_inv")
            if scale is not None:
                self.used.add(scale.name)
                out.append(Param("weight_scale_inv", p.hf_name + "_scale_inv", scale.name, (TensorPart(scale),), None))
        return out

    def has_descendant(self, t: ModuleTemplate, path: str) -> bool:
        """Does the checkpoint hold a parameter of a module below this (optional, parameterless) one?"""
        for other in self.template.modules:
            if other.path.startswith(t.path + ".") and "{E}" not in other.path:
                sub = path + other.path[len(t.path):]
                if any(self.lookup(f"{sub}.{name}") in self.by_name for name, _ in other.params):
                    return True
        return False

    def attach_experts(self, node: Module, t: ModuleTemplate) -> None:
        projections: dict[str, tuple[TensorPart, ...]] = {}
        count = 0
        for proj, attr in t.experts or ():
            # stacked GGUF experts, also inside merged safetensors (SafeTensorLoader.load_experts' "hybrid" branch)
            stacked = self.by_name.get(self.lookup(f"{node.path}.ffn_{proj}_exps.weight"))
            if stacked is not None:
                count = stacked.shape[-1] if len(stacked.shape) == 3 else 1
                if count > MAX_EXPERTS:
                    raise FormatError(stacked.name, f"stacks {count:,} experts; no model has more than a few hundred "
                                      f"(ckpt-size models at most {MAX_EXPERTS:,})", hint="the file is corrupt")
                projections[proj] = (TensorPart(stacked),)
                continue
            singles: list[TensorPart] = []
            while True:  # per-expert tensors: blk.N.ffn_gate.E.weight (GGUF) or ….experts.E.w1.weight (HF)
                i = len(singles)
                name = self.lookup(f"{node.path}.ffn_{proj}.{i}.weight") if self.gguf \
                    else f"{node.path}.{i}.{attr}.weight"
                tensor = self.by_name.get(name)
                if tensor is None:
                    break
                singles.append(TensorPart(tensor))
                scale = None if self.gguf else self.by_name.get(name + "_scale_inv")
                if scale is not None:  # FP8 experts: their scales are read with them (and refused, walk.py)
                    self.used.add(scale.name)
                    node.expert_scales += (TensorPart(scale),)
            projections[proj] = tuple(singles)
            count = max(count, len(singles))
        for parts in projections.values():
            self.used.update(p.tensor.name for p in parts)
        node.experts = projections
        node.n_experts = count
        self.n_experts = max(self.n_experts, count)
        node._factory = lambda: self.expert_children(node, t)

    def expert_children(self, node: Module, experts_t: ModuleTemplate) -> list[Module]:
        proj_of = {attr: proj for proj, attr in experts_t.experts or ()}
        prefix = experts_t.path + ".{E}"
        mlp_t = next(t for t in self.expert_templates if t.path == prefix)
        subs = []  # (suffix, template, tensors of its projection)
        for t in self.expert_templates:
            if t.path.startswith(prefix + "."):
                suffix = t.path[len(prefix):]
                parts = (node.experts or {}).get(proj_of.get(suffix.lstrip("."), ""), ())
                subs.append((suffix, t, parts))
        stacked = node.n_experts > 1
        children = []
        for e in range(node.n_experts):
            expert_path = f"{node.path}.{e}"
            expert = Module(expert_path, mlp_t.cls, self.template.classes[mlp_t.cls], node.layer)
            for suffix, t, parts in subs:
                path = expert_path + suffix
                params = []
                for name, _ in t.params:
                    hf = f"{path}.{name}"
                    mine: tuple[TensorPart, ...] = ()
                    if len(parts) == 1 and stacked and parts[0].tensor.shape[-1] == node.n_experts:
                        mine = (TensorPart(parts[0].tensor, e, node.n_experts),)
                    elif e < len(parts):
                        mine = (parts[e],)
                    dims = None
                    if mine:
                        shape = mine[0].tensor.shape
                        dims = (shape[0], shape[1]) if self.gguf else (shape[-1], shape[-2])
                    params.append(Param(name, hf, "", mine, dims))  # lookup: translated on demand
                expert._children.append(Module(path, t.cls, self.template.classes[t.cls], node.layer, tuple(params)))
            children.append(expert)
        return children


def build_tree(checkpoint: Checkpoint, data: KtData) -> Tree:
    """The module tree of `checkpoint` as KTransformers would build it."""
    return _Builder(checkpoint, data, choose_template(checkpoint, data)).build()
