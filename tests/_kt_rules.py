"""KTransformers optimize rules as YAML text, laid out as ktransformers' own rule files are (one key a line, two
spaces an indent), so that the line and column numbers `validate` reports can be counted on the text by hand.

`kt_rule(r"^lm_head$", LINEAR, generate_op="KLinearFP8")` is

    - match:
        name: "^lm_head$"
      replace:
        class: ktransformers.operators.linear.KTransformersLinear
        kwargs:
          generate_op: "KLinearFP8"

Names are regexes as Python writes them (raw strings): their backslashes are doubled inside the YAML quotes.
"""
from __future__ import annotations

EXPERTS_CLASS = "ktransformers.operators.experts.KTransformersExperts"
LINEAR = "ktransformers.operators.linear.KTransformersLinear"
ATTENTION = "ktransformers.operators.attention.KDeepseekV2Attention"
KT_MODEL = "ktransformers.operators.models.KDeepseekV2Model"


def kt_rule(name: str | None, replace_class: str | None = None, *, match_class: str | None = None,
            recursive: bool | None = None, **kwargs: object) -> str:
    """One rule: `match` (name, class), `replace` (class, kwargs in the order given), then `recursive`."""
    lines = ["- match:"]
    if name is not None:
        lines.append(f"    name: {_scalar(name)}")
    if match_class is not None:
        lines.append(f"    class: {match_class}")
    lines.append("  replace:")
    if replace_class is not None:
        lines.append(f"    class: {_scalar(replace_class) if replace_class == 'default' else replace_class}")
    if kwargs:
        lines.append("    kwargs:")
        lines += _mapping(kwargs, indent=6)
    if recursive is not None:
        lines.append(f"  recursive: {recursive}")
    return "\n".join(lines) + "\n"


def _mapping(values: dict, indent: int) -> list[str]:
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            lines.append(f"{' ' * indent}{key}:")
            lines += [f"{' ' * (indent + 2)}{_scalar(k)}: {_scalar(v)}" for k, v in value.items()]
        else:
            lines.append(f"{' ' * indent}{key}: {_scalar(value)}")
    return lines


def _scalar(value: object) -> str:
    """Strings in double quotes (a backslash doubled), numbers and booleans bare."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\") + '"'
    return str(value)


# the valid two-rule file most `validate` tests edit: 16 lines, everything else stays on cuda:0 by default
EMBED = kt_rule(r"^model\.embed_tokens$", "default", generate_device="cpu", prefill_device="cpu")
EXPERTS = kt_rule(r"^model\.layers\..*\.mlp\.experts$", EXPERTS_CLASS, generate_device="cpu",
                  generate_op="KExpertsCPU", out_device="cuda:0", recursive=False)
BASE = EMBED + EXPERTS
