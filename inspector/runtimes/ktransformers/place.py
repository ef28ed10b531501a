"""Replaying a KTransformers optimize-rule YAML on a checkpoint: which module lands where, in which format.

Semantics (kvcache-ai/ktransformers @ 95009ea6, archive/ktransformers/):
- optimize/optimize.py::gen_optimize_config walks the module tree depth-first from the root (name ""). At
  each module the rules are tried in file order; a rule is skipped when its `class` is given and
  isinstance fails, or its `name` is given and re.search(name, module_name) is None. The first rule left
  wins; its `recursive` (default true) decides whether the walk enters the children. A module no rule
  matches gets class "default" with generate_device = prefill_device = "cuda:0".
- optimize.py::inject replaces matched modules (tensor_device_map[module] = the rule's kwargs).
- util/utils.py::load_weights: an injected module loads itself (.load()); other modules load their own
  parameters dequantized to the default dtype on tensor_device_map[module]["generate_device"] ("cuda" when
  the module has no entry, i.e. it was never visited), then recurse.
- Injected ops load their generate op only (InferenceState.GENERATE is the default mode); prefill ops load
  layer by layer during long prefills only (per_layer_prefill_intput_threshold > 0).
Formats and bytes: kt_formats.py.
"""
from __future__ import annotations

from ...errors import RulesError
from ...model import Checkpoint, TensorInfo
from ...formats import storage as fmt
from ...placement.findings import Finding, PlacedPlan
from .checks import default_findings, layer_findings, load_findings, model_findings, model_mismatch, rule_findings
from .data import kt_data
from .rules import read_rules
from .tree import build_tree
from .walk import Placement, State, load, walk
from ...placement.yaml_nodes import Document


def _placed_checkpoint(state: State, checkpoint: Checkpoint) -> tuple[Checkpoint, list[TensorInfo]]:
    dropped_names = {t.name for t in state.tree.dropped}
    by_tensor: dict[str, list[tuple[int | None, Placement]]] = {}
    for (name, expert), placement in state.placements.items():
        by_tensor.setdefault(name, []).append((expert, placement))
    tensors: list[TensorInfo] = []
    not_loaded: list[TensorInfo] = []
    for t in checkpoint.tensors:
        placed = by_tensor.get(t.name)
        if t.name in dropped_names or not placed:
            not_loaded.append(t)
            continue
        if len(placed) == 1 and placed[0][0] is None:
            p = placed[0][1]
            tensors.append(t.with_(device=p.device, dtype=p.dtype, nbytes=p.nbytes))
            continue
        count = max(e for e, _ in placed if e is not None) + 1
        for expert, p in sorted(placed, key=lambda x: -1 if x[0] is None else x[0]):
            tensors.append(TensorInfo(  # one slice per expert; plain constructor: 10k+ of them
                f"{t.name}[{expert}]", t.shape, p.dtype, p.nbytes, t.offset, t.file_index, t.params // count,
                t.role, t.layer, expert, p.device,
            ))
    return checkpoint.with_(tensors=tuple(tensors)), not_loaded


def _notes(state: State, not_loaded: list[TensorInfo]) -> list[str]:
    tree = state.tree
    dense = tree.n_layers - len(tree.moe_layers)
    notes = [
        f"KTransformers optimize rules (local_chat / ktransformers.server injection; kt-kernel+SGLang sets "
        f"placement with --kt-* flags instead), replayed on the {tree.template.name} module tree: "
        f"{tree.n_layers} layers ({dense} dense, {len(tree.moe_layers)} MoE)"
        + (f", {tree.n_experts} experts" if tree.n_experts else ""),
        f"runtime formats: Marlin int4 group 64 (2-byte scales) for KLinearMarlin/KExpertsMarlin, "
        f"{state.dtype} for dequantized weights, GGUF bytes for KExpertsCPU (llamafile, mmap'd)",
    ]
    for device in sorted(state.workspace):
        notes.append(f"Marlin workspaces on {device}: {state.workspace[device]:,} bytes (buffers, not counted)")
    if not_loaded:
        total = sum(t.nbytes for t in not_loaded)
        shown = ", ".join(t.name for t in not_loaded[:3])
        more = f" and {len(not_loaded) - 3} more" if len(not_loaded) > 3 else ""
        notes.append(f"not loaded by KTransformers: {len(not_loaded)} tensor(s), {total:,} bytes ({shown}{more})")
    return notes


def place_ktransformers(doc: Document, checkpoint: Checkpoint, *, gpus: int | None = None
                        ) -> tuple[PlacedPlan | None, list[Finding]]:
    """Replay the rule file `doc` on `checkpoint`: the placed checkpoint and every finding."""
    data = kt_data()
    rules, findings = read_rules(doc, data, gpus)
    if doc.root is None or (not rules and findings):
        return None, findings
    try:
        tree = build_tree(checkpoint, data)
    except RulesError as e:
        findings.append(Finding(doc.path, 0, 0, "error", "unknown-architecture", str(e),
                                "use a checkpoint of a model KTransformers' rules target"))
        return None, findings
    state = State(data, tree, doc.path, rules, fmt.default_dtype(dict(checkpoint.config or {})))
    active = [r for r in rules if r.usable]
    model_mismatch(state)
    walk(state, active)
    load(state, tree.root)
    rule_findings(state, active)
    layer_findings(state, active)
    default_findings(state)
    load_findings(state)
    model_findings(state)
    if tree.dropped:
        names = [t.name for t in tree.dropped]
        mtp = [t for t in tree.dropped if t.role == "mtp"]
        state.add(0, 0, "info", "not-loaded",
                  f"{len(names)} checkpoint tensor(s) are outside the module tree KTransformers builds and are "
                  f"never loaded (e.g. {names[0]})" + (f"; {len(mtp)} of them are the MTP layer" if mtp else ""),
                  "nothing to do" if len(mtp) == len(names) else "check that this GGUF matches the model")
    placed, not_loaded = _placed_checkpoint(state, checkpoint)
    notes = _notes(state, not_loaded)
    return PlacedPlan(placed, "ktransformers", tuple(notes)), findings + state.findings
