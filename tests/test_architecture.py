"""The layout the project promises (docs/architecture.md), checked on the code itself: imports flow one way
(sources -> formats -> roles -> quant -> runtimes -> fit -> api -> report -> cli), no runtime package imports
another, and no module is over 500 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "inspector"
MAX_LINES = 500

# Lower layers never import higher ones. Equal ranks may import each other (inside one package).
LAYERS = {
    "errors": 0, "version": 0, "lazy": 0, "model": 0, "units": 0, "datafiles": 0, "devices": 0, "monotone": 0, "options": 0, "rules": 0,
    "patterns": 0,
    "sources": 1,
    "formats": 2,
    "roles": 3,
    "quant": 4, "convert": 4,
    "memory": 5, "placement": 5,
    "runtimes": 6,
    "planner": 7, "requests": 7, "summary": 7, "activity": 7,
    "api": 8,
    "report": 9,
    "cli": 10, "__main__": 10, "__init__": 10,
}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def dotted(path: Path) -> str:
    return ".".join(("inspector",) + path.relative_to(PACKAGE).with_suffix("").parts)


def top(name: str) -> str:
    """`inspector.runtimes.llamacpp.place` -> `runtimes`."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported(path: Path) -> set[str]:
    """Every inspector module a file imports, lazily imported ones included, as absolute dotted names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = dotted(path).rsplit(".", 1)[0] if path.name != "__init__.py" else dotted(path).removesuffix(".__init__")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("inspector"):
                found.add(name)
                found.update(f"{name}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("inspector"))
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path: Path) -> None:
    me = dotted(path)
    rank = LAYERS[top(me)]
    upward = sorted(n for n in imported(path) if LAYERS.get(top(n), -1) > rank)
    assert not upward, f"{me} (layer {top(me)}) imports higher layers: {upward}"


@pytest.mark.parametrize("path", [p for p in modules() if p.parent.parent.name == "runtimes"],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_runtime_imports_another(path: Path) -> None:
    mine = path.parent.name
    others = sorted(n for n in imported(path) if n.startswith("inspector.runtimes.")
                    and n.split(".")[2] not in (mine, "base") and len(n.split(".")) > 3)
    assert not others, f"runtime {mine} imports another runtime: {others}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines (at most {MAX_LINES})"


def test_every_top_level_module_has_a_layer() -> None:
    names = {top(dotted(p)) for p in modules()}
    assert names <= set(LAYERS), sorted(names - set(LAYERS))
