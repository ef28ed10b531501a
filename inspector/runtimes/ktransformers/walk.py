"""The optimizer's walk and the weight loading, replayed on our module tree (ktransformers.py states the
semantics and their sources): which rule configures each module, and where each tensor ends up in which
runtime format."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from ...formats import storage as fmt
from ...placement.findings import Finding
from .data import KtData
from .rules import EXPERTS_DEFAULTS, LINEAR_DEFAULTS, KtRule, parse_device
from .tree import Module, Param, TensorPart, Tree

DEFAULT_DEVICE = "cuda:0"  # gen_optimize_config(default_device="cuda:0"); local_chat/server never override it
FALLBACK_DEVICE = "cuda"  # utils.py::get_device for a module without a tensor_device_map entry


@dataclass
class Entry:
    """What gen_optimize_config recorded for one module."""

    rule: KtRule | None  # None: no rule matched, the optimizer's default
    cls: str
    kind: str
    kwargs: dict[str, Any]

    @property
    def injected(self) -> bool:
        return self.cls != "default"


@dataclass
class Placement:
    device: str
    dtype: str
    nbytes: int
    module: str


@dataclass
class State:
    data: KtData
    tree: Tree
    path: str
    rules: list[KtRule]
    dtype: str  # the default dtype dequantized weights take
    findings: list[Finding] = field(default_factory=list)
    entries: dict[str, Entry] = field(default_factory=dict)
    hits: dict[int, list[Module]] = field(default_factory=dict)
    wins: dict[int, list[Module]] = field(default_factory=dict)
    placements: dict[tuple[str, int | None], Placement] = field(default_factory=dict)
    workspace: dict[str, int] = field(default_factory=dict)
    fallback_loaded: dict[str, list[Module]] = field(default_factory=dict)  # never visited, loaded on "cuda"
    unmatched_loaded: list[tuple[Module, str]] = field(default_factory=list)
    undequantizable: dict[str, list[str]] = field(default_factory=dict)
    missing: dict[int, list[str]] = field(default_factory=dict)  # rule line (0: none) -> names not found
    per_expert: dict[int, list[str]] = field(default_factory=dict)
    mismatched: set[int] = field(default_factory=set)
    warned_lines: set[tuple[str, int]] = field(default_factory=set)
    _columns: dict[int, int] | None = None

    def add(self, line: int, column: int, severity: str, code: str, message: str, fix: str) -> None:
        self.findings.append(Finding(self.path, line, column, severity, code, message, fix))

    def col(self, line: int) -> int:
        """The column of the rule that starts at `line` (0 for file-level findings)."""
        if self._columns is None:  # one dict, not a scan of every rule per finding
            self._columns = {}
            for r in self.rules:
                self._columns.setdefault(r.line, r.column)
        return self._columns.get(line, 0) if line else 0

    def once(self, code: str, line: int) -> bool:
        if (code, line) in self.warned_lines:
            return False
        self.warned_lines.add((code, line))
        return True


# ---- the walk (gen_optimize_config) ----------------------------------------------------------------
def matches(rule: KtRule, node: Module) -> bool:
    if rule.match_class is not None and rule.match_class not in node.classes:
        return False
    if rule.name_re is not None and not rule.name_re.search(node.path):
        return False
    return rule.match_class is not None or rule.name_re is not None


def walk(state: State, active: list[KtRule]) -> None:
    # `matches` inlined: this loop runs once per (visited module, rule), the product that bounds a replay's time
    tests = [(rule, rule.match_class, rule.name_re.search if rule.name_re is not None else None) for rule in active
             if rule.match_class is not None or rule.name_re is not None]
    stack = [state.tree.root]
    while stack:
        node = stack.pop()
        path, classes = node.path, node.classes
        winner: KtRule | None = None
        for rule, cls, search in tests:
            if (cls is None or cls in classes) and (search is None or search(path)):
                state.hits.setdefault(rule.index, []).append(node)
                if winner is None:
                    winner = rule
        if winner is None:
            state.entries[node.path] = Entry(None, "default", "default",
                                             {"generate_device": DEFAULT_DEVICE, "prefill_device": DEFAULT_DEVICE})
            stack.extend(reversed(node.children))
            continue
        state.wins.setdefault(winner.index, []).append(node)
        state.entries[node.path] = Entry(winner, winner.replace_class, winner.kind, dict(winner.kwargs))
        if winner.recursive:
            stack.extend(reversed(node.children))


# ---- loading (load_weights and the ops' load()) ----------------------------------------------------
FOLDED = "folded"  # a scale consumed while dequantizing its weight: read, not resident


def device_of(state: State, value: Any) -> str:
    """Our name for a device a rule gives; a bad one (already reported) counts as cuda:0."""
    return parse_device(value) or DEFAULT_DEVICE


def _put(state: State, part: TensorPart, device: str, dtype: str, nbytes: int, module: Module) -> None:
    state.placements[part.key] = Placement(device, dtype, nbytes, module.path)


def _check_dequant(state: State, parts: Iterable[TensorPart]) -> None:
    if state.tree.fmt != "gguf":
        return
    for p in parts:
        if p.tensor.dtype not in state.data.dequantizable_types:
            state.undequantizable.setdefault(p.tensor.dtype, []).append(p.name)


def _dequantized(state: State, node: Module, params: Iterable[Param], device: str, line: int) -> None:
    """Parameters loaded by load_cur_state_dict (or an op that dequantizes): default dtype on `device`."""
    width = fmt.DTYPE_BYTES[state.dtype]
    for p in params:
        if not p.parts:
            state.missing.setdefault(line, []).append(p.lookup)
            continue
        if any(part.expert is not None for part in p.parts) and state.tree.fmt == "gguf":
            state.per_expert.setdefault(line, []).append(p.lookup or p.hf_name)
        if p.name == "weight_scale_inv":  # load_dequantized_tensor folds it into the weight (weight_dequant)
            for part in p.parts:
                _put(state, part, device, FOLDED, 0, node)
            continue
        _check_dequant(state, p.parts)
        for part in p.parts:
            _put(state, part, device, state.dtype, width * part.numel, node)


def _split_bytes(total: int, parts: tuple[TensorPart, ...]) -> list[int]:
    """Share a runtime size over the tensors one parameter was built from, by element count."""
    numel = sum(p.numel for p in parts)
    shares = [total * p.numel // numel for p in parts]
    shares[-1] += total - sum(shares)
    return shares


def load(state: State, node: Module) -> None:
    entry = state.entries.get(node.path)
    if entry is not None and entry.injected:
        line = entry.rule.line if entry.rule else 0
        if entry.kind == "linear" and node.is_linear:
            _load_linear(state, node, entry)
            return
        if entry.kind == "experts" and node.experts is not None:
            _load_experts(state, node, entry)
            return
        if entry.kind == "gate" and any(p.name == "weight" for p in node.params):
            _load_gate(state, node, entry)
            return
        if entry.kind in ("linear", "experts", "gate") and line not in state.mismatched:
            state.mismatched.add(line)
            want = {"linear": "a torch.nn.Linear", "experts": "an experts ModuleList",
                    "gate": "a MoE router"}[entry.kind]
            state.add(line, state.col(line), "error", "op-module-mismatch",
                      f"{entry.cls.rsplit('.', 1)[-1]} replaces {node.path} ({node.short_class}), "
                      f"which is not {want}; its constructor fails",
                      "narrow 'match' (add a 'class:' or anchor the name regex)")
    _load_plain(state, node, entry)


def _load_plain(state: State, node: Module, entry: Entry | None) -> None:
    """load_cur_state_dict on the module's own parameters, then its children."""
    own = [p for p in node.params]
    if own:
        if entry is None:
            device = FALLBACK_DEVICE
        elif "generate_device" in entry.kwargs:
            device = entry.kwargs["generate_device"]
        else:
            line = entry.rule.line if entry.rule else 0
            if state.once("missing-generate-device", line):
                state.add(line, state.col(line), "error", "missing-generate-device",
                          f"{node.path} has weights and this rule's kwargs have no generate_device; "
                          "loading raises KeyError('generate_device')",
                          "add generate_device (and prefill_device) to kwargs")
            device = FALLBACK_DEVICE
        line = entry.rule.line if entry is not None and entry.rule else 0
        _dequantized(state, node, own, device_of(state, device), line)
        if entry is None:
            state.fallback_loaded.setdefault(node.path, []).append(node)
        elif entry.rule is None:
            state.unmatched_loaded.append((node, device_of(state, device)))
    for child in node.children:
        load(state, child)


def _load_linear(state: State, node: Module, entry: Entry) -> None:
    kw = entry.kwargs
    op = kw.get("generate_op", LINEAR_DEFAULTS["generate_op"])
    device = device_of(state, kw.get("generate_device", LINEAR_DEFAULTS["generate_device"]))
    line = entry.rule.line if entry.rule else 0
    params = {p.name: p for p in node.params}
    weight, bias, scale = params.get("weight"), params.get("bias"), params.get("weight_scale_inv")
    if weight is None or not weight.parts:
        state.missing.setdefault(line, []).append(weight.lookup if weight else f"{node.path}.weight")
        return
    if state.tree.fmt == "gguf" and any(part.expert is not None for part in weight.parts):
        state.per_expert.setdefault(line, []).append(weight.lookup or weight.hf_name)
    info = state.data.linear_ops.get(op, {"format": "marlin"})
    form = info["format"]
    k, n = weight.dims or (weight.numel, 1)
    if form == "marlin":
        bits, group = int(kw.get("num_bits", 4)), int(kw.get("group_size", 64))
        total = fmt.marlin_nbytes(k, n, num_bits=bits, group_size=group, act_order=bool(kw.get("act_order")))
        _check_dequant(state, weight.parts)
        for part, nbytes in zip(weight.parts, _split_bytes(total, weight.parts), strict=True):
            _put(state, part, device, fmt.marlin_dtype(bits, group), nbytes, node)
        state.workspace[device] = state.workspace.get(device, 0) + fmt.marlin_workspace_nbytes(k, n)
    elif form == "stored":
        for part in weight.parts:
            _put(state, part, device, part.tensor.dtype, part.nbytes, node)
    elif form == "fp8":
        first = weight.parts[0].tensor
        if not first.dtype.startswith("F8") or scale is None:
            why = f"is {first.dtype}" if not first.dtype.startswith("F8") else "has no weight_scale_inv"
            if state.once("op-format", line):
                state.add(line, state.col(line), "error", "op-format",
                          f"KLinearFP8 needs FP8 weights with weight_scale_inv (FP8 safetensors), but "
                          f"{first.name} {why}", "use KLinearMarlin for GGUF weights")
        # KLinearFP8.load keeps both as loaded: the FP8 weight and its float32 128x128-block scales
        for part in (*weight.parts, *(scale.parts if scale else ())):
            _put(state, part, device, part.tensor.dtype, part.nbytes, node)
        return
    elif form == "q8":
        total = fmt.q8_nbytes(k, n)
        _check_dequant(state, weight.parts)
        for part, nbytes in zip(weight.parts, _split_bytes(total, weight.parts), strict=True):
            _put(state, part, device, "KT_Q8", nbytes, node)
        if bias is not None and bias.parts:  # KLinearQ8 keeps its bias in float32 (compute_dtype)
            for part in bias.parts:
                _put(state, part, device, "F32", 4 * part.numel, node)
        return
    else:  # dequant: KLinearTorch, KLinearIPEXLLM
        _dequantized(state, node, [weight], device, line)
    if scale is not None:
        _scale_as_bias(state, node, op, form, weight, scale, device, line)
        return
    if bias is not None:
        _dequantized(state, node, [bias], device, line)


def _scale_as_bias(state: State, node: Module, op: str, form: str, weight: Param, scale: Param, device: str,
                   line: int) -> None:
    """An FP8 weight through an op other than KLinearFP8: KLinearBase.load_weight (operators/linear.py) returns
    (weight, weight_scale_inv) from a SafeTensorLoader, and KLinearTorch / KLinearMarlin .load take the pair as
    (weight, bias): the weight is used unscaled and the scale becomes a bias (cast to the default dtype by
    KLinearTorch, kept float32 by KLinearMarlin)."""
    if state.once("fp8-scale-as-bias", line):
        state.add(line, state.col(line), "error", "fp8-scale-as-bias",
                  f"{op} loads the FP8 weight {weight.parts[0].tensor.name} without its block scales: "
                  f"KLinearBase.load_weight returns (weight, weight_scale_inv) and {op} takes the scale for a "
                  "bias, so the outputs are wrong", "use generate_op: KLinearFP8 for FP8 safetensors weights")
    for part in scale.parts:
        if form in ("marlin", "stored", "fp8"):
            _put(state, part, device, part.tensor.dtype, part.nbytes, node)
        else:
            _put(state, part, device, state.dtype, fmt.DTYPE_BYTES[state.dtype] * part.numel, node)


def _load_experts(state: State, node: Module, entry: Entry) -> None:
    kw = entry.kwargs
    op = kw.get("generate_op", EXPERTS_DEFAULTS["generate_op"])
    device = device_of(state, kw.get("generate_device", EXPERTS_DEFAULTS["generate_device"]))
    backend = kw.get("backend", "llamafile")
    line = entry.rule.line if entry.rule else 0
    form = state.data.expert_ops.get(op, {"format": "cpu_experts"})["format"]
    assert node.experts is not None
    if _fp8_experts(state, node, op, device, line):
        return
    for proj, parts in node.experts.items():
        if not parts:
            state.missing.setdefault(line, []).append(state.data.translate(f"{node.path}.ffn_{proj}_exps.weight"))
            continue
        for part in parts:
            t = part.tensor
            if len(t.shape) < 2:  # raw GGUF bytes merged into safetensors (merge_safetensor_gguf.py)
                _merged_experts(state, node, part, form, backend, device, line)
                continue
            per = t.shape[-1] if len(t.shape) == 3 else 1  # experts in this tensor
            k, n = t.shape[0], t.shape[1]
            if form == "cpu_experts" and backend in ("AMXInt8", "AMXBF16"):
                if t.dtype != "BF16":
                    if state.once("amx-needs-bf16", line):
                        state.add(line, state.col(line), "error", "amx-needs-bf16",
                                  f"backend {backend} needs BF16 expert tensors (it asserts gate_type == BF16); "
                                  f"{t.name} is {t.dtype}",
                                  "use a BF16 GGUF for the experts, or backend: llamafile")
                if backend == "AMXInt8":
                    _put(state, part, device, "AMX_INT8", per * fmt.amx_int8_nbytes(n, k), node)
                else:
                    _put(state, part, device, "BF16", 2 * part.numel, node)
            elif form == "cpu_experts":
                _put(state, part, device, t.dtype, part.nbytes, node)
            elif form == "marlin":
                _check_dequant(state, [part])
                _put(state, part, device, fmt.marlin_dtype(), per * fmt.marlin_nbytes(k, n), node)
                state.workspace[device] = state.workspace.get(device, 0) + per * fmt.marlin_workspace_nbytes(k, n)
            else:  # KExpertsTorch: dequantized stacks
                _check_dequant(state, [part])
                _put(state, part, device, state.dtype, fmt.DTYPE_BYTES[state.dtype] * part.numel, node)
    if form == "marlin" and state.once("marlin-cuda-graph", line):
        state.add(line, state.col(line), "warning", "marlin-cuda-graph",
                  "KExpertsMarlin experts on the GPU do not work with CUDA graphs "
                  "(\"operation not permitted when stream is capturing\", ktransformers issue #434)",
                  "run with --use_cuda_graph False")
    if form == "cpu_experts":
        check_out_device(state, node, entry)


def _merged_experts(state: State, node: Module, part: TensorPart, form: str, backend: str, device: str,
                    line: int) -> None:
    """Stacked experts merged into safetensors as their GGUF bytes (a 1-D uint8 tensor plus a .ggml_type scalar):
    KExpertsCPU (llamafile) uses the bytes as they are; the other ops need the GGUF shape, which the merged file
    does not keep, so they are sized as stored and flagged."""
    if form != "cpu_experts" or backend in ("AMXInt8", "AMXBF16"):
        if state.once("merged-experts", line):
            state.add(line, state.col(line), "warning", "merged-experts",
                      f"{node.path}: the experts are raw GGUF bytes merged into safetensors; only KExpertsCPU with "
                      "the llamafile backend is sized exactly here (others as stored)",
                      "use generate_op: KExpertsCPU for merged GGUF experts")
    _put(state, part, device, part.tensor.dtype, part.nbytes, node)


def _fp8_experts(state: State, node: Module, op: str, device: str, line: int) -> bool:
    """FP8 per-expert weights in safetensors: SafeTensorLoader.load_experts (util/custom_loader.py) stacks the raw
    tensors and maps only float32/float16/bfloat16 to a ggml type, so every expert op stops on them. KTransformers'
    FP8 rule files take the experts from a GGUF merged in (merge_safetensor_gguf.py). Sized as read: stored bytes,
    scales included."""
    parts = [p for ps in (node.experts or {}).values() for p in ps]
    if state.tree.fmt == "gguf" or not any(p.tensor.dtype.startswith("F8") for p in parts):
        return False
    if state.once("fp8-experts", line):
        state.add(line, state.col(line), "error", "fp8-experts",
                  f"{op} cannot load the FP8 expert weights of {node.path} from safetensors: "
                  "SafeTensorLoader.load_experts accepts float32, float16 and bfloat16 only (ValueError)",
                  "merge GGUF experts into the FP8 checkpoint (KTransformers' merge_safetensor_gguf.py), as its "
                  "*-fp8-linear-ggml-experts rule files expect")
    for part in (*parts, *node.expert_scales):
        _put(state, part, device, part.tensor.dtype, part.nbytes, node)
    return True


def _load_gate(state: State, node: Module, entry: Entry) -> None:
    device = device_of(state, entry.kwargs.get("generate_device", "cuda"))
    line = entry.rule.line if entry.rule else 0
    _dequantized(state, node, node.params, device, line)


def check_out_device(state: State, node: Module, entry: Entry) -> None:
    parent_path = node.path.rsplit(".", 1)[0]
    parent = state.entries.get(parent_path)
    want = device_of(state, (parent.kwargs.get("generate_device", "cuda") if parent else FALLBACK_DEVICE))
    out = device_of(state, entry.kwargs.get("out_device", "cuda"))
    line = entry.rule.line if entry.rule else 0
    if out != want and state.once("out-device", line):
        state.add(*(entry.rule.where("out_device") if entry.rule else (0, 0)), "warning", "out-device",
                  f"KExpertsCPU returns results on {out} but {parent_path} runs on {want} "
                  f"(first at {node.path}); every token pays an extra copy",
                  f"set out_device: \"{want}\"")
