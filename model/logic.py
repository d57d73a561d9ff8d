"""Rules that run twice: with Python values at run time, and as Z3 terms in proofs.

A safety rule is written once, as a plain function over ints and bools using the helpers below
instead of Python's `and`/`or`/`not`/`if` (which cannot be overloaded). Comparison and arithmetic
operators (`<`, `==`, `+`) already work on both Python ints and Z3 terms, so they are used as is.

    def is_surround_vote(s1, t1, s2, t2):
        return And(s1 < s2, t2 < t1)

    is_surround_vote(1, 9, 2, 5)            -> True            (runtime)
    is_surround_vote(Int('a'), ...)          -> And(a < c, ...) (proofs/)

When every argument is a Python value the helpers return Python values and never import z3; as soon
as one argument is a Z3 expression they build the Z3 term. z3 is imported lazily, on first need.
"""

from __future__ import annotations

from typing import Any

_PLAIN = frozenset({bool, int, bytes, str, type(None)})


def is_symbolic(x: object) -> bool:
    """True for a Z3 expression (without importing z3 at module load)."""
    kind = type(x)
    return kind not in _PLAIN and kind.__module__.startswith("z3")


def _any_symbolic(args: tuple[Any, ...]) -> bool:
    for a in args:
        kind = type(a)
        if kind is not bool and kind not in _PLAIN and kind.__module__.startswith("z3"):
            return True
    return False


def _z3() -> Any:
    import z3

    return z3


def And(*args: Any) -> Any:
    if _any_symbolic(args):
        return _z3().And(*args)
    return all(args)


def Or(*args: Any) -> Any:
    if _any_symbolic(args):
        return _z3().Or(*args)
    return any(args)


def Not(a: Any) -> Any:
    if is_symbolic(a):
        return _z3().Not(a)
    return not a


def Implies(a: Any, b: Any) -> Any:
    if is_symbolic(a) or is_symbolic(b):
        return _z3().Implies(a, b)
    return (not a) or bool(b)


def If[T](cond: Any, then: T, otherwise: T) -> T:
    """`then if cond else otherwise`, both branches evaluated (they must be pure)."""
    if is_symbolic(cond) or is_symbolic(then) or is_symbolic(otherwise):
        return _z3().If(cond, then, otherwise)  # type: ignore[no-any-return]
    return then if cond else otherwise


def Sum(*args: Any) -> Any:
    """Sum of ints or Z3 integer terms; bools count as 0/1 (Python and Z3 alike)."""
    if _any_symbolic(args):
        z3 = _z3()
        terms = [z3.If(a, 1, 0) if z3.is_bool(a) else a for a in args]
        return z3.Sum(*terms) if terms else z3.IntVal(0)
    return sum(int(a) for a in args)


def Max(a: Any, b: Any) -> Any:
    return If(a >= b, a, b)


def Min(a: Any, b: Any) -> Any:
    return If(a <= b, a, b)


def CeilDiv(a: Any, b: int) -> Any:
    """ceil(a / b) for a >= 0 and a positive literal b; Z3 `/` on Ints is floor division."""
    assert b > 0
    return (a + b - 1) / b if is_symbolic(a) else -(-a // b)


def FloorDiv(a: Any, b: int) -> Any:
    """floor(a / b) for a >= 0 and a positive literal b."""
    assert b > 0
    return a / b if is_symbolic(a) else a // b


def AllOf(items: Any, pred: Any) -> Any:
    """`pred` holds for every item. `items` is a Python sequence, or a symbolic collection (an object
    with `.forall(pred)`, e.g. an array of unbounded length in proofs/) that builds a quantifier."""
    if hasattr(items, "forall"):
        return items.forall(pred)
    return And(*[pred(x) for x in items])


def AnyOf(items: Any, pred: Any) -> Any:
    """`pred` holds for some item (see AllOf)."""
    if hasattr(items, "exists"):
        return items.exists(pred)
    return Or(*[pred(x) for x in items])
