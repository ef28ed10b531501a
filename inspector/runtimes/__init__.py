"""The runtime registry: every package under `inspector/runtimes/` that defines `SPEC`, plus runtimes named in
the environment variable CKPT_SIZE_RUNTIMES (comma-separated module names, each defining `SPEC`) and any
registered with `register()`. A new runtime touches no other file (docs/adding-a-runtime.md).

Only the specs (names and options as data) are imported here; an implementation is imported when first used.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from .base import Runtime, RuntimeSpec

_SPECS: dict[str, "RuntimeSpec"] = {}
_LOADED: dict[str, "Runtime"] = {}
_DISCOVERED = False
PLUGINS_ENV = "CKPT_SIZE_RUNTIMES"


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    modules = [f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if m.ispkg]
    modules += [name.strip() for name in os.environ.get(PLUGINS_ENV, "").split(",") if name.strip()]
    for module in modules:
        spec = getattr(importlib.import_module(module), "SPEC", None)
        if spec is not None:
            register(spec)


def register(spec: "RuntimeSpec") -> None:
    """Add a runtime (or replace one of the same name)."""
    _SPECS[spec.name] = spec
    _LOADED.pop(spec.name, None)


def unregister(name: str) -> None:
    _SPECS.pop(name, None)
    _LOADED.pop(name, None)


def runtime_specs() -> tuple["RuntimeSpec", ...]:
    """Every known runtime, in registry order."""
    _discover()
    return tuple(sorted(_SPECS.values(), key=lambda s: (s.order, s.name)))


def runtime_names() -> tuple[str, ...]:
    """The names `--runtime` takes, in registry order ("literal", "llamacpp", "ktransformers", …)."""
    return tuple(s.name for s in runtime_specs())


def get_spec(name: str) -> "RuntimeSpec":
    _discover()
    if name not in _SPECS:
        raise UsageError(f"unknown runtime {name!r}", hint=f"use one of {', '.join(runtime_names())}")
    return _SPECS[name]


def get_runtime(name: str) -> "Runtime":
    """The implementation of a runtime, imported on first use."""
    spec = get_spec(name)
    if name not in _LOADED:
        _LOADED[name] = spec.load()
    return _LOADED[name]


__all__ = ["PLUGINS_ENV", "get_runtime", "get_spec", "register", "runtime_names", "runtime_specs", "unregister"]
