"""The one protocol every runtime implements, and the value types that cross it.

A runtime is a package under `inspector/runtimes/<name>/` whose `__init__.py` defines `SPEC`, a `RuntimeSpec`:
its name, its options as data (`OptionSpec`, turned into click options by the CLI and into an argv parser for
pasted command lines), and `load`, which imports the implementation lazily (so `ckpt-size --help` does not pay
for it). The implementation satisfies `Runtime`:

    options(values)                          -> the runtime's own options object (validated)
    place(checkpoint, options)               -> Placement: a device for every tensor, as that runtime would load it
    memory(placement, options)               -> MemoryReport: per-device rows (weights, KV cache, state, buffers …)
    search(checkpoint, budgets, options)     -> SearchOutcome: the plan `fit` proposes (a Placement and its command)
    command(placement, options)              -> str: the runtime's own flags that reproduce the plan

The runtime-neutral planner (`inspector.planner`) and the api call only these. No runtime package imports another.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from ..memory.budget import BudgetVerdict
from ..model import Checkpoint
from ..options import OptionSpec

@dataclass(frozen=True)
class RuntimeSpec:
    """What the registry knows of a runtime before importing it."""

    name: str  # registry key and `--runtime` value: "llamacpp"
    title: str  # for people: "llama.cpp"
    summary: str  # one line for help texts
    options: tuple[OptionSpec, ...]
    load: Callable[[], "Runtime"]
    programs: tuple[str, ...] = ()  # program names of pasted command lines ("llama-server", "vllm serve")
    model_flags: tuple[str, ...] = ()  # flags naming the model in a pasted command line ("-m", "--model-path")
    model_positional: bool = False  # the first positional argument is the model (`vllm serve REPO`)
    hub_model_flags: tuple[str, ...] = ()  # flags naming a Hub repo with an optional quant: `-hf owner/repo:Q4_K_M`
    ignored_flags: Mapping[str, bool] = field(default_factory=dict)  # flags with no effect on memory -> take a value
    can_fit: bool = True
    order: int = 100  # registry order: where options are shared, the first runtime declaring them is the default
    placement_file_kinds: tuple[str, ...] = ()  # kinds of --placement files it reads ("ktransformers", "plan")
    always_memory: bool = False  # its memory table is the answer: shown even when no memory option is given
    # the most parallel sequences fit searches (llama.cpp's -np ceiling, LLAMA_MAX_SEQ = 256 in src/llama-cparams.h)
    max_parallel: int = 256
    # what `fit` suggests when nothing fits, in this runtime's own flags
    when_over: str = ("a smaller quant (`inspect --quant-list`), a shorter context (--ctx), fewer sequences "
                      "(--parallel), or more memory (--budget)")

    @classmethod
    def memory_only(cls, name: str, title: str, summary: str, options: tuple[OptionSpec, ...],
                    load: Callable[[], "Runtime"], order: int) -> "RuntimeSpec":
        """A runtime whose answer is its memory table per device (transformers, training): no fit search, the
        table shown without a memory option."""
        return cls(name, title, summary, options, load, can_fit=False, always_memory=True, order=order)


@dataclass(frozen=True)
class Placement:
    """A checkpoint as a runtime loads it.

    `checkpoint` has `device` set on every tensor the runtime loads (None: not loaded) and, where the runtime
    stores a tensor differently from the file (Marlin int4, bf16 dequantization, row splits), the runtime's dtype
    and bytes; `params` stay logical. `source` is the checkpoint before placement: its totals are the file's.
    `summary` is one line saying how devices were chosen; `command` the runtime's flags that reproduce it.
    `detail` carries what the runtime's own memory model needs (llama.cpp: the device of each layer).
    """

    runtime: str
    checkpoint: Checkpoint
    source: Checkpoint
    summary: str
    command: str | None = None
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    detail: Any = None


class MemoryReport(Protocol):
    """A runtime's memory beyond (and including) the weights, per device."""

    notes: tuple[str, ...]

    @property
    def table(self) -> "MemoryTable": ...

    def check(self, budgets: Mapping[str, int]) -> BudgetVerdict: ...

    def as_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Limits:
    """How far the context and the parallel sequences go within the budgets.

    `max_ctx` / `max_parallel` keep the placement as chosen; `replanned_*` re-run the search for each value
    (None when the runtime does not re-plan). Each comes with the command line that reaches it ("" for 0).
    """

    max_ctx: int
    max_parallel: int
    max_ctx_command: str = ""
    max_parallel_command: str = ""
    replanned_max_ctx: int | None = None
    replanned_max_ctx_command: str | None = None
    replanned_max_parallel: int | None = None
    replanned_max_parallel_command: str | None = None
    note: str = ""
    ctx: int = 0  # the context per sequence the parallel limits are at
    parallel: int = 1  # the sequences the context limits are at
    ctx_cap: int | None = None  # the search stopped there (the model's trained context)
    parallel_cap: int = 0  # the search stopped there (the runtime's most sequences)


@dataclass(frozen=True)
class SearchOutcome:
    """What a runtime's search hook proposes for `fit`: the placement, how it was found, and what else it made.

    `artifact` is a file the runtime wants written on request (KTransformers: the rule YAML). `replan` maps
    options with another context or parallelism to the placement the search would choose for them, None when
    no plan meeting the runtime's criterion exists (used for the re-planned limits); None when not offered.
    """

    placement: Placement
    steps: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    all_on_gpu: bool = False
    limits_note: str = ""
    artifact: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    replan: Callable[[Any], Placement | None] | None = None


class RuntimeBase:
    """What every runtime class shares: the spec it is registered with (the registry passes it to `load`)."""

    def __init__(self, spec: RuntimeSpec) -> None:
        self.spec = spec

    def placed_context(self, placement: Placement, options: Any) -> tuple[int, int]:
        """The context per sequence and the sequences a placed plan runs at: the options' (`context`), unless the
        runtime chose them while placing (vLLM's and SGLang's derived length)."""
        return self.context(options)  # type: ignore[attr-defined]  # every runtime has the protocol's context


class Runtime(Protocol):
    """The protocol (see the module docstring)."""

    spec: RuntimeSpec

    def options(self, values: Mapping[str, Any]) -> Any: ...

    def place(self, checkpoint: Checkpoint, options: Any) -> Placement: ...

    def memory(self, placement: Placement, options: Any) -> MemoryReport: ...

    def search(self, checkpoint: Checkpoint, budgets: Mapping[str, int], options: Any) -> SearchOutcome: ...

    def command(self, placement: Placement, options: Any) -> str: ...

    def context(self, options: Any) -> tuple[int, int]: ...

    def placed_context(self, placement: Placement, options: Any) -> tuple[int, int]: ...

    def with_context(self, options: Any, *, ctx: int | None = None, parallel: int | None = None) -> Any: ...

    def trained_context(self, checkpoint: Checkpoint) -> int | None: ...


from ..memory.table import MemoryTable  # noqa: E402  (for the annotation above; memory does not import runtimes)
