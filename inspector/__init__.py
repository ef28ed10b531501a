"""ckpt-size: exact bytes per device for GGUF and safetensors checkpoints, read from their headers only.

The library: `load(source)` reads a checkpoint's headers and gives every tensor its role; `inspect(source, …)` places
it as a runtime would and sizes its memory; `fit(source, budgets, …)` finds the plan that fits; `validate(file,
source)` checks a placement file. docs/python.md shows them with their request and result types.
"""
from __future__ import annotations

from .lazy import lazy_exports
from .version import __version__

_EXPORTS = {
    "inspect": ".api", "load": ".api", "fit": ".api", "validate": ".api", "quant_list": ".api",
    "run_inspect": ".api", "run_fit": ".api", "HubOptions": ".api", "QuantRow": ".api",
    "InspectRequest": ".requests", "FitRequest": ".requests",
    "Inspection": ".summary", "Group": ".summary", "QuantInfo": ".summary",
    "FitReport": ".planner", "FitResult": ".planner", "QuantChoice": ".planner",
    "ValidationResult": ".placement", "Finding": ".placement",
    "Checkpoint": ".model", "FileInfo": ".model", "TensorInfo": ".model", "ROLES": ".model",
    "CkptSizeError": ".errors", "UsageError": ".errors", "CheckFailed": ".errors", "FormatError": ".errors",
    "SourceError": ".errors", "RulesError": ".errors", "RemoteError": ".errors",
    "QuantOptions": ".quant", "MemoryOptions": ".memory", "runtime_names": ".runtimes",
}
__all__ = sorted(_EXPORTS) + ["__version__"]
__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
