"""Regexes written by users, compiled with size checks and matched with bounded work, so no pattern hangs a command.

Every tensor-name pattern a user gives goes through here: llama.cpp `-ot` patterns, `--tensor-type` and
`--tensor-type-file` items, quant recipes, the `name` of KTransformers rules and of plan-file rules.

A backtracking engine (Python's `re`, std::regex, and the `regex` package alike) can take exponential time on a
pattern such as `([a-z0-9_.]+)+!$` or `(a|aa)*$`, and `re` cannot be interrupted from another thread. So:

1. Before compiling: at most `MAX_PATTERN_CHARS` characters, and counted repetitions (`x{1000}`) that unroll to
   at most `MAX_UNROLLED` items (the `regex` engine expands them at compile time: `(?:a{1000}){1000}` takes 20 s
   and 230 MB there).
2. Each pattern gets an upper bound on the backtracking paths it can try on a name of length n, from its parse
   tree: alternatives add, repetitions multiply per possible count, a repeated group that can itself match in
   several ways raises that to the power of its count, an unanchored search tries n + 1 start positions.
3. A name whose bound is at most `FAST_PATHS` is matched by `re` (every pattern without repeated groups or more
   than two unbounded repetitions, on every real tensor name: microseconds). Any other name is matched by the
   `regex` package with a time limit: `GUARD_SECONDS_PER_NAME` per name and `GUARD_SECONDS_TOTAL` for the
   pattern in all. A pattern that runs out is stopped with an error naming it, where it came from and the name
   it was on.

Syntax and error positions are Python's `re` (what KTransformers uses; llama.cpp's std::regex differences are
checked where its flags are read); `regex` matches with its V0 (re-compatible) semantics.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

from .errors import CkptSizeError, UsageError

try:  # the parser `re` itself uses; its tree is what `re` runs
    from re import _compiler as _sre_compiler
    from re import _constants as _c
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_compile as _sre_compiler  # type: ignore[no-redef]
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

MAX_PATTERN_CHARS = 4096
MAX_UNROLLED = 10_000
FAST_PATHS = 1_000_000
GUARD_SECONDS_PER_NAME = 0.25
GUARD_SECONDS_TOTAL = 5.0
_HUGE = 10**30  # "more than any budget": bounds are clamped here so big integers stay small

_SINGLE = {_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN, _c.CATEGORY}
_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT} | ({_c.POSSESSIVE_REPEAT} if hasattr(_c, "POSSESSIVE_REPEAT") else set())
_ATOMIC = getattr(_c, "ATOMIC_GROUP", None)

NESTED_HINT = ("a repeated group that can itself match the same text in several ways, as in (a+)+ or (a|aa)*, "
               "backtracks exponentially; repeat single characters or classes instead, e.g. [a-z0-9_.]+ "
               "rather than ([a-z0-9_.]+)+")


class Located(str):
    """A pattern's text that remembers where it was written (`file:line`), for errors raised long after parsing."""

    where: str

    def __new__(cls, text: str, where: str) -> "Located":
        self = super().__new__(cls, text)
        self.where = where
        return self


def where_of(text: str, default: str) -> str:
    return text.where if isinstance(text, Located) else default


@dataclass(frozen=True)
class PatternProblem:
    """Why a pattern was refused: the message, the character position when `re` gave one, and what to do."""

    message: str
    position: int | None
    hint: str


class UserPattern:
    """A user's compiled pattern; `search(name)` is True when it matches anywhere in `name` (re.search)."""

    __slots__ = ("pattern", "where", "_error", "_re", "_tree", "_anchored", "_fast_max", "_slow_min", "_guarded",
                 "_spent")

    def __init__(self, pattern: str, where: str, error: type[CkptSizeError], compiled: re.Pattern[str],
                 tree: Any) -> None:
        self.pattern = pattern
        self.where = where
        self._error = error
        self._re = compiled
        self._tree = tree
        self._anchored = _anchored(tree)
        # The bound grows with the name's length: names up to _fast_max characters are known to be within
        # FAST_PATHS, names from _slow_min on are known to be beyond it; lengths between are computed once.
        self._fast_max = -1
        self._slow_min = 1 << 62
        self._guarded: Any = None  # the `regex` compilation, made on first need
        self._spent = 0.0

    def __repr__(self) -> str:
        return f"UserPattern({self.pattern!r})"

    def search(self, name: str) -> bool:
        if len(name) <= self._fast_max or self._is_fast(len(name)):
            return self._re.search(name) is not None
        return self._guarded_search(name)

    def select(self, names: Iterable[str]) -> list[int]:
        """The positions of the names this pattern matches: `search` over many names, less overhead per name."""
        names = names if isinstance(names, list) else list(names)
        fast_search = self._re.search
        longest = max(map(len, names), default=0)
        if longest <= self._fast_max or self._is_fast(longest):  # the common case: one comprehension
            return [i for i, name in enumerate(names) if fast_search(name) is not None]
        out = []
        for i, name in enumerate(names):
            if len(name) <= self._fast_max or self._is_fast(len(name)):
                if fast_search(name) is not None:
                    out.append(i)
            elif self._guarded_search(name):
                out.append(i)
        return out

    def _is_fast(self, n: int) -> bool:
        if n >= self._slow_min:
            return False
        if self.paths(n) <= FAST_PATHS:
            self._fast_max = n
            return True
        self._slow_min = n
        return False

    def paths(self, n: int) -> int:
        """An upper bound on the backtracking paths a search of a name of `n` characters can try."""
        starts = 1 if self._anchored else n + 1
        return min(_HUGE, starts * _paths(self._tree, n))

    def _guarded_search(self, name: str) -> bool:
        if self._guarded is None:
            self._guarded = self._compile_guarded()
        left = GUARD_SECONDS_TOTAL - self._spent
        if left <= 0:
            raise self._slow(name, f"{GUARD_SECONDS_TOTAL:g} s in all")
        start = time.perf_counter()
        try:
            return self._guarded.search(name, timeout=min(GUARD_SECONDS_PER_NAME, left)) is not None
        except TimeoutError:
            per_name = left > GUARD_SECONDS_PER_NAME
            raise self._slow(name, f"{GUARD_SECONDS_PER_NAME:g} s" if per_name else f"{GUARD_SECONDS_TOTAL:g} s in all") from None
        finally:
            self._spent += time.perf_counter() - start

    def _compile_guarded(self) -> Any:
        try:
            import regex  # ~40 ms to import: only for the rare pattern that needs it
        except ImportError:  # pragma: no cover - a dependency of ckpt-size
            raise self._error(f"{self.where}: regex {_short(self.pattern)} needs the `regex` package to be matched "
                              "with a time limit", hint="pip install regex") from None
        try:
            return regex.compile(self.pattern, regex.V0)
        except Exception as e:  # noqa: BLE001 - syntax `re` accepts and `regex` does not: say so, typed
            raise self._error(f"{self.where}: regex {_short(self.pattern)} cannot be matched with a time limit "
                              f"({e})", hint="simplify the regex") from None

    def _slow(self, name: str, limit: str) -> CkptSizeError:
        shown = name if len(name) <= 80 else name[:77] + "..."
        return self._error(f"{self.where}: regex {_short(self.pattern)} was stopped after {limit} on the "
                           f"{len(name):,}-character tensor name {shown!r}", hint=_diagnose(self._tree))


def compile_pattern(pattern: str, where: str, *, error: type[CkptSizeError] = UsageError) -> UserPattern:
    """`pattern` compiled for tensor-name searches; `where` (an option or file:line:column) names it in errors.

    Raises:
        error: the pattern is invalid, too long, or unrolls to too many items (the module's first two rules).
    """
    result = try_compile(pattern, where, error=error)
    if isinstance(result, PatternProblem):
        at = f" at position {result.position}" if result.position is not None else ""
        raise error(f"{where}: {result.message}{at}", hint=result.hint)
    return result


def try_compile(pattern: str, where: str, *, error: type[CkptSizeError] = UsageError) -> UserPattern | PatternProblem:
    """Like `compile_pattern`, but a refused pattern is returned as a `PatternProblem` (for findings at a
    file position) instead of raised."""
    analysed = _analyse(pattern)
    if isinstance(analysed, PatternProblem):
        return analysed
    return UserPattern(pattern, where, error, *analysed)


@lru_cache(maxsize=4096)  # a plan file's patterns are checked by the schema, then compiled for matching
def _analyse(pattern: str) -> tuple[re.Pattern[str], Any] | PatternProblem:
    """The compiled pattern and its parse tree, or why it is refused."""
    if len(pattern) > MAX_PATTERN_CHARS:
        return PatternProblem(f"regex of {len(pattern):,} characters is longer than the {MAX_PATTERN_CHARS:,} "
                              f"allowed: {_short(pattern)}", None, "split it into several rules or shorten it")
    try:
        tree = _sre_parse.parse(pattern)
        if _unrolled(tree) > MAX_UNROLLED:
            return PatternProblem(f"regex {_short(pattern)} repeats counted items to more than {MAX_UNROLLED:,} "
                                  "in all", None, "use a shorter count, or + and * instead of large {m,n} counts")
        return _compile_tree(pattern, tree), tree
    except re.error as e:
        return PatternProblem(f"invalid regex {_short(pattern)}: {e.msg}", e.pos, "fix the regex")
    except (RecursionError, OverflowError) as e:
        what = "nests groups too deeply" if isinstance(e, RecursionError) else str(e)
        return PatternProblem(f"invalid regex {_short(pattern)}: {what}", None, "simplify the regex")


def _compile_tree(pattern: str, tree: Any) -> re.Pattern[str]:
    """re.compile without parsing the pattern a second time (re's cache holds only 512 patterns)."""
    if _sre_compiler is not None:
        try:
            return _sre_compiler.compile(tree)
        except (TypeError, AttributeError):  # pragma: no cover - a Python whose compiler wants a string
            pass
    return re.compile(pattern)  # pragma: no cover


class PatternSet:
    """Which names at least one of many patterns matches, in one search per name: a prefilter for checks that
    would otherwise search every (pattern, name) pair when few pairs match.

    Patterns that start with ^ are joined as ^(?:a|b|…) and tried at the first character only; other patterns
    as (?:a)|(?:b)|…; a search of an alternation succeeds exactly when one of its alternatives' searches would.
    Patterns with back-references, named groups or global flags are kept apart (joining would renumber or
    clash them) and searched one by one.
    """

    def __init__(self, patterns: Iterable[UserPattern]) -> None:
        self.members = list(patterns)
        anchored, floating, self._apart = [], [], []
        for p in self.members:
            if not _joinable(p):
                self._apart.append(p)
            elif p._anchored and p.pattern.startswith("^"):
                anchored.append(p.pattern[1:])
            else:
                floating.append(p.pattern)
        self._joined = [j for j in (_joined("^(?:" + "|".join(anchored) + ")") if anchored else None,
                                    _joined("|".join(f"(?:{x})" for x in floating)) if floating else None) if j]

    def select(self, names: Iterable[str]) -> list[int]:
        """The positions of the names some pattern matches."""
        names = list(names)
        hit = bytearray(len(names))
        for pattern in self._joined + self._apart:
            try:
                found = pattern.select(names)
            except CkptSizeError:  # name the member at fault, not the joined pattern
                found = [i for i, name in enumerate(names) if any(p.search(name) for p in self.members)]
            for i in found:
                hit[i] = 1
        return [i for i, h in enumerate(hit) if h]


def _joinable(p: UserPattern) -> bool:
    state = p._tree.state
    return not state.groupdict and not (state.flags & ~re.UNICODE) and not _has_op(p._tree, _BACKREFS)


def _joined(text: str) -> UserPattern:
    """A pattern built from patterns already checked one by one: no length limit, the same bound and guard."""
    tree = _sre_parse.parse(text)
    return UserPattern(text, "the joined rule patterns", UsageError, re.compile(text), tree)


_BACKREFS = {_c.GROUPREF, _c.GROUPREF_EXISTS} | ({_c.GROUPREF_IGNORE} if hasattr(_c, "GROUPREF_IGNORE") else set())


def _has_op(items: Any, ops: set[Any]) -> bool:
    for op, av in items:
        if op in ops:
            return True
        children = (av[2],) if op in _REPEATS else av[1] if op is _c.BRANCH else (av[-1],) if op is _c.SUBPATTERN \
            else (av[1],) if op in (_c.ASSERT, _c.ASSERT_NOT) else (av,) if op is _ATOMIC else ()
        if any(_has_op(child, ops) for child in children):
            return True
    return False


# ---- the bounds, over re's parse tree ----------------------------------------------------------------------
def _anchored(tree: Any) -> bool:
    """Whether the pattern starts with ^ or \\A (and no MULTILINE), so a search tries one start position."""
    if tree.state.flags & re.MULTILINE or not tree.data:
        return False
    op, av = tree.data[0]
    return op is _c.AT and av in (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING)


def _mul(a: int, b: int) -> int:
    return min(_HUGE, a * b)


def _paths(items: Any, n: int) -> int:
    """Backtracking paths of a sequence: the product of its items'."""
    total = 1
    for op, av in items:
        total = _mul(total, _item_paths(op, av, n))
        if total >= _HUGE:
            break
    return total


def _item_paths(op: Any, av: Any, n: int) -> int:
    if op in _SINGLE or op is _c.AT or op is _c.GROUPREF:
        return 1
    if op is _c.BRANCH:
        return min(_HUGE, sum(_paths(alt, n) for alt in av[1]))
    if op is _c.SUBPATTERN:
        return _paths(av[-1], n)
    if op in _REPEATS:
        lo, hi, body = av
        return _repeat_paths(lo, hi, _paths(body, n), _min_width(body), n)
    if op is _c.GROUPREF_EXISTS:
        return min(_HUGE, _paths(av[1], n) + (_paths(av[2], n) if av[2] else 1))
    if op in (_c.ASSERT, _c.ASSERT_NOT):  # lookarounds: counted as if they multiplied, to stay an upper bound
        return _paths(av[1], n)
    if op is _ATOMIC:
        return _paths(av, n)
    return _HUGE  # an operator this bound does not know: never take the fast path


def _repeat_paths(lo: int, hi: int, body: int, width: int, n: int) -> int:
    """A repetition can stop after any count from lo to hi, each iteration choosing one of `body` ways."""
    most = n // width if width else n + 1  # an iteration consumes at least `width` characters (sre stops on empty)
    if hi is not _c.MAXREPEAT:
        most = min(most, hi)
    if most < lo:
        return 1  # cannot match: tried once and abandoned
    if body == 1:
        return most - lo + 1
    if most * body.bit_length() > 110:  # body ** most is beyond _HUGE
        return _HUGE
    return min(_HUGE, sum(body**j for j in range(lo, most + 1)))


def _min_width(items: Any) -> int:
    try:
        return int(items.getwidth()[0]) if hasattr(items, "getwidth") else 0
    except (OverflowError, TypeError):  # pragma: no cover - defensive
        return 0


def _unrolled(items: Any) -> int:
    """Items after expanding counted repetitions (x{5} = 5 items)."""
    total = 0
    for op, av in items:
        if op in _REPEATS:
            lo, hi, body = av
            count = max(1, lo if hi is _c.MAXREPEAT else hi)
            total += _mul(count, _unrolled(body))
        elif op is _c.BRANCH:
            total += sum(_unrolled(alt) for alt in av[1])
        elif op is _c.SUBPATTERN:
            total += _unrolled(av[-1])
        elif op is _c.GROUPREF_EXISTS:
            total += _unrolled(av[1]) + (_unrolled(av[2]) if av[2] else 0)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            total += _unrolled(av[1])
        elif op is _ATOMIC:
            total += _unrolled(av)
        else:
            total += 1
        if total > MAX_UNROLLED:
            break
    return total


def _diagnose(tree: Any) -> str:
    """What to change, naming the construct that makes the pattern slow when it is a repeated group."""
    if _has_ambiguous_repeat(tree):
        return NESTED_HINT
    return ("the pattern backtracks over many ways to split the name (several .* or + in a row); "
            "anchor it with ^ and $ or use fewer unbounded repetitions")


def _has_ambiguous_repeat(items: Any) -> bool:
    for op, av in items:
        if op in _REPEATS:
            lo, hi, body = av
            if (hi is _c.MAXREPEAT or hi > 1) and _paths(body, 64) > 1:
                return True
            if _has_ambiguous_repeat(body):
                return True
        elif op is _c.BRANCH and any(_has_ambiguous_repeat(alt) for alt in av[1]):
            return True
        elif op is _c.SUBPATTERN and _has_ambiguous_repeat(av[-1]):
            return True
    return False


def _short(pattern: str) -> str:
    """The pattern as the user wrote it, in quotes (repr would double every backslash), cut at 120 characters."""
    return f"'{pattern}'" if len(pattern) <= 120 else f"'{pattern[:117]}...'"
