"""The expression language of `rules/hf_architectures.yaml`: a small, safe subset of Python over config.json values.

An expression is parsed once with `ast` and checked against a whitelist of node types and functions; evaluation
walks the tree itself (no `eval`). Names are config keys (a missing key is None), `a.b` reads a key of a mapping,
and a value that cannot be computed (a missing key in arithmetic, a bad index) raises `Unavailable`, which the
table's users read as "the converter would not write this" (values) or "false" (conditions).

Besides literals, arithmetic (+ - * / // %), comparisons, and/or/not and `x if c else y`, the language has list
comprehensions (`[f(x) for x in xs if c]`, one or more `for`s) and indexing (`xs[i]`): the converter builds
per-layer arrays this way (head_count_kv of hybrid models, sliding-window patterns). Iteration is bounded by
MAX_ITEMS, so a hostile config cannot make a table expression allocate without limit.
"""
from __future__ import annotations

import ast
import math
from collections import ChainMap
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from ..errors import RulesError

MAX_ITEMS = 1 << 16  # longest range or iterable an expression may walk (layers, layer_types entries)


class Unavailable(Exception):
    """An expression needed a value the config does not have (or one of the wrong kind)."""


class Record(dict):
    """A config mapping whose attribute access reads a key (None when absent)."""

    def __getattr__(self, key: str) -> Any:
        return self.get(key)


def _first(*values: Any) -> Any:
    """The first argument that is not None (the converter's `find_hparam` over several spellings)."""
    return next((v for v in values if v is not None), None)


def _pad4(values: Any) -> Any:
    if not isinstance(values, (list, tuple)):
        return None
    return (list(values) + [0, 0, 0, 0])[:4]


def _range(*args: Any) -> range:
    if not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        raise TypeError("range() needs integers")
    r = range(*args)
    if len(r) > MAX_ITEMS:
        raise ValueError(f"range of {len(r)} items is over the limit of {MAX_ITEMS}")
    return r


def _str_fn(fn: Callable[[str], str]) -> Callable[[Any], Any]:
    return lambda s: fn(s) if isinstance(s, str) else None


def _normal_icdf(p: Any) -> float:
    """torch.distributions.Normal(0, 1).icdf(p): -inf at 0, inf at 1 (Gemma 3n's activation sparsity scales)."""
    from statistics import NormalDist

    p = float(p)
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return NormalDist().inv_cdf(p)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "first": _first,
    "len": len,
    "min": min,
    "max": max,
    "int": int,
    "float": float,
    "lower": _str_fn(str.lower),
    "upper": _str_fn(str.upper),
    "sqrt": math.sqrt,
    "log": math.log,
    "normal_icdf": _normal_icdf,
    "pad4": _pad4,
    "range": _range,
    "enumerate": enumerate,
    "is_str": lambda x: isinstance(x, str),
    "is_int": _is_int,
}
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_ALLOWED_NODES = (
    ast.Expression, ast.Constant, ast.Name, ast.Load, ast.Store, ast.BinOp, ast.UnaryOp, ast.USub, ast.Not,
    ast.BoolOp, ast.And, ast.Or, ast.Compare, ast.IfExp, ast.Call, ast.Attribute, ast.Tuple, ast.List,
    ast.ListComp, ast.comprehension, ast.Subscript, *_BINOPS, *_COMPARE,
)
_CONSTANTS = {"None": None, "True": True, "False": False}


@dataclass(frozen=True)
class Expr:
    """A compiled expression from the table."""

    text: str
    tree: ast.Expression = field(compare=False, repr=False)

    @staticmethod
    def parse(value: Any, where: str) -> "Expr":
        """Compile `value` (a string, or a number written as is).

        Raises:
            RulesError: a syntax error, a node or function outside the language.
        """
        text = value if isinstance(value, str) else repr(value)
        try:
            tree = ast.parse(f"(\n{text}\n)", mode="eval")  # parenthesized: YAML folding may add newlines
        except SyntaxError as e:
            raise RulesError(f"{where}: invalid expression {text!r}: {e.msg}") from None
        for node in ast.walk(tree):
            _check_node(node, text, where)
        return Expr(text, tree)

    def value(self, names: Mapping[str, Any]) -> Any:
        """The value, or raise Unavailable when a needed config value is missing or of the wrong kind."""
        try:
            return _eval(self.tree.body, names)
        except (TypeError, ZeroDivisionError, ValueError, KeyError, IndexError, OverflowError) as e:
            raise Unavailable(str(e)) from None

    def holds(self, names: Mapping[str, Any]) -> bool:
        """The value as a condition: false when it cannot be computed."""
        try:
            return bool(self.value(names))
        except Unavailable:
            return False

    def get(self, names: Mapping[str, Any]) -> Any:
        """The value, or None when it cannot be computed."""
        try:
            return self.value(names)
        except Unavailable:
            return None


def _check_node(node: ast.AST, text: str, where: str) -> None:
    if not isinstance(node, _ALLOWED_NODES):
        raise RulesError(f"{where}: expression {text!r} uses {type(node).__name__}, which is not allowed")
    if isinstance(node, ast.Call) and (not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS
                                       or node.keywords):
        raise RulesError(f"{where}: expression {text!r} calls an unknown function")
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        raise RulesError(f"{where}: expression {text!r} uses a slice, which is not allowed")
    if isinstance(node, ast.comprehension) and node.is_async:
        raise RulesError(f"{where}: expression {text!r} uses an async comprehension")


def _wrap(value: Any) -> Any:
    return Record(value) if isinstance(value, dict) and not isinstance(value, Record) else value


def _eval(node: ast.AST, names: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return _CONSTANTS[node.id] if node.id in _CONSTANTS else _wrap(names.get(node.id))
    if isinstance(node, ast.Attribute):
        base = _eval(node.value, names)
        return _wrap(base.get(node.attr) if isinstance(base, Mapping) else None)
    if isinstance(node, ast.Tuple):
        return tuple(_eval(e, names) for e in node.elts)
    if isinstance(node, ast.List):
        return [_eval(e, names) for e in node.elts]
    if isinstance(node, ast.BinOp):
        return _binop(node, names)
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, names)
        if isinstance(node.op, ast.Not):
            return not operand
        if operand is None:
            raise TypeError("missing operand")
        return -operand
    if isinstance(node, ast.BoolOp):
        return _boolop(node, names)
    if isinstance(node, ast.Compare):
        return _compare(node, names)
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, names) else node.orelse, names)
    if isinstance(node, ast.Call):
        return FUNCTIONS[node.func.id](*(_eval(a, names) for a in node.args))  # type: ignore[attr-defined]
    if isinstance(node, ast.Subscript):
        return _wrap(_eval(node.value, names)[_eval(node.slice, names)])
    if isinstance(node, ast.ListComp):
        return [_eval(node.elt, scope) for scope in _scopes(node.generators, names)]
    raise TypeError(f"unsupported expression node {type(node).__name__}")


def _binop(node: ast.BinOp, names: Mapping[str, Any]) -> Any:
    left, right = _eval(node.left, names), _eval(node.right, names)
    if left is None or right is None:
        raise TypeError("missing operand")
    return _BINOPS[type(node.op)](left, right)


def _boolop(node: ast.BoolOp, names: Mapping[str, Any]) -> Any:
    result: Any = None
    for value_node in node.values:
        result = _eval(value_node, names)
        if isinstance(node.op, ast.And) and not result or isinstance(node.op, ast.Or) and result:
            return result
    return result


def _compare(node: ast.Compare, names: Mapping[str, Any]) -> bool:
    left = _eval(node.left, names)
    for op, right_node in zip(node.ops, node.comparators):
        right = _eval(right_node, names)
        if not _COMPARE[type(op)](left, right):
            return False
        left = right
    return True


def _scopes(generators: list[ast.comprehension], names: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The name bindings of a comprehension's `for ... in ... if ...` clauses, outermost first."""
    if not generators:
        yield names
        return
    gen, rest = generators[0], generators[1:]
    items = _eval(gen.iter, names)
    if items is None or isinstance(items, Mapping):
        raise TypeError("a comprehension needs a list, a string or a range")
    items = list(items) if not isinstance(items, (list, tuple, str, range)) else items
    if len(items) > MAX_ITEMS:
        raise ValueError(f"iterating over {len(items)} items is over the limit of {MAX_ITEMS}")
    for item in items:
        scope = ChainMap(_bind(gen.target, item), names)
        if all(_eval(cond, scope) for cond in gen.ifs):
            yield from _scopes(rest, scope)


def _bind(target: ast.AST, item: Any) -> dict[str, Any]:
    if isinstance(target, ast.Name):
        return {target.id: item}
    if isinstance(target, ast.Tuple) and all(isinstance(t, ast.Name) for t in target.elts):
        values = tuple(item)
        if len(values) != len(target.elts):
            raise ValueError("cannot unpack")
        return {t.id: v for t, v in zip(target.elts, values)}  # type: ignore[attr-defined]
    raise TypeError("a comprehension binds names or a tuple of names")
