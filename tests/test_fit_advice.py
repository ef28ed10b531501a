"""What `fit` suggests when nothing fits is said in the runtime's own flags: every flag it names is one that
runtime (or `fit` itself) accepts."""
import re

import pytest

from inspector.planner.advice import fit_advice
from inspector.runtimes import runtime_specs

FIT_FLAGS = {"--budget"}  # fit's own


@pytest.mark.parametrize("spec", [s for s in runtime_specs() if s.can_fit], ids=lambda s: s.name)
def test_every_flag_suggested_is_accepted(spec) -> None:  # type: ignore[no-untyped-def]
    accepted = {flag for option in spec.options for flag in option.flags} | FIT_FLAGS
    suggested = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", spec.when_over)) - {"--quant-list"}
    assert suggested, spec.when_over
    assert suggested <= accepted, f"{spec.name} suggests flags it does not accept: {sorted(suggested - accepted)}"


def test_vllm_is_told_its_own_context_flag() -> None:
    (line,) = fit_advice(None, "vllm")
    assert "--max-model-len" in line and "--ctx" not in line and "--quant-list" not in line
    (line,) = fit_advice(None, "llamacpp")
    assert "--ctx" in line and "--parallel" in line and "--quant-list" in line
