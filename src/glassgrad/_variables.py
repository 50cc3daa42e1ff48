"""Named variables and the dependencies among them, shared by ``calculus`` and ``symbolic``.

Both views of a function of named variables (the engine's numbers in ``calculus``, the
SymPy formulas in ``symbolic``) read variable names off signatures, order the ``given``
dependencies so each comes after those it uses, refuse a ``wrt`` that is not an
independent variable, and report a chain-rule :class:`Term` per variable. That
machinery lives here once.

The dependencies form a DAG (dependent -> the names its function reads). Everything
here walks it in topological order and never enumerates paths through it: a chain of
25 levels with two uses each has over 100,000 paths but only 50 edges.

>>> uses = {"t": ("u",), "u": ("x",)}
>>> dependency_order(uses)
('u', 't')
>>> count_paths("x", ("u", "t"), uses, ends={"t", "u"})
2
>>> first_paths("x", ("u", "t"), uses, ends={"t", "u"}, limit=5)
[('x', 'u'), ('x', 'u', 't')]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = ["Term", "check_wrt", "count_paths", "dependency_order", "first_paths",
           "moved_by", "signature_parameters"]


class Term(NamedTuple):
    """One chain-rule term: ∂f/∂v (``partial``, the others fixed) times dv/dwrt
    (``derivative``) is ``product``; ``name`` is the variable v.

    >>> Term("t", 2.0, 3.0, 6.0).product
    6.0
    """

    name: str
    partial: Any
    derivative: Any
    product: Any


def signature_parameters(fun: Callable, what: str) -> list[inspect.Parameter]:
    """The parameters of ``fun``, whose names are the variables; ``what`` names ``fun``
    in the error when the signature cannot be read.

    >>> [p.name for p in signature_parameters(lambda t, x: t * x, "fun")]
    ['t', 'x']
    """
    try:
        return list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot read the parameter names of {what}: it needs a signature "
                         "with named parameters; wrap it in a function, e.g. "
                         "lambda x: np.sin(x)") from exc


def check_wrt(wrt: str, independents: Sequence[str], dependents: Collection[str]) -> None:
    """Refuse a ``wrt`` that is given as a function of others, or is no variable at all.

    >>> check_wrt("t", ["x"], {"t"})
    Traceback (most recent call last):
    ...
    ValueError: 't' is given as a function of other variables (a dependent variable); \
differentiate with respect to one of ['x']
    """
    if wrt in dependents:
        raise ValueError(f"{wrt!r} is given as a function of other variables (a dependent "
                         f"variable); differentiate with respect to one of "
                         f"{list(independents)}")
    if wrt not in independents:
        raise ValueError(f"unknown variable {wrt!r}; the variables are {list(independents)}")


def dependency_order(uses: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """Dependents ordered so that each comes after the dependents it uses.

    ``uses`` maps a dependent to the names its function reads. The order is the
    post-order of a depth-first walk in the order of ``uses`` (so it does not depend on
    hashing); the walk keeps its own stack, so chains of any length fit. A cycle raises
    ``ValueError`` naming it.

    >>> dependency_order({"t": ("u",), "u": ("t",)})
    Traceback (most recent call last):
    ...
    ValueError: the given dependencies form a cycle: t -> u -> t
    """
    order: list[str] = []
    state: dict[str, str] = {}  # "active" while on the walk's path, then "done"
    for root in uses:
        if root in state:
            continue
        path, stack = [root], [iter(uses[root])]
        state[root] = "active"
        while stack:
            step = next((u for u in stack[-1] if u in uses and state.get(u) != "done"), None)
            if step is None:  # every dependent this one uses is placed: place it
                stack.pop()
                state[path[-1]] = "done"
                order.append(path.pop())
            elif state.get(step) == "active":
                cycle = path[path.index(step):] + [step]
                raise ValueError(f"the given dependencies form a cycle: {' -> '.join(cycle)}")
            else:
                state[step] = "active"
                path.append(step)
                stack.append(iter(uses[step]))
    return tuple(order)


def moved_by(wrt: str, order: Sequence[str], uses: Mapping[str, Sequence[str]]) -> set[str]:
    """The dependents whose value changes when ``wrt`` does (a path leads from it).

    >>> sorted(moved_by("x", ("u", "t", "s"), {"u": ("x",), "t": ("u",), "s": ("y",)}))
    ['t', 'u']
    """
    moved = {wrt}
    for d in order:
        if any(p in moved for p in uses[d]):
            moved.add(d)
    return moved - {wrt}


def count_paths(wrt: str, order: Sequence[str], uses: Mapping[str, Sequence[str]],
                ends: Collection[str]) -> int:
    """How many paths wrt -> dependent -> ... -> e there are, for every e in ``ends``,
    counted by the number of paths into each dependent, in topological order."""
    into: dict[str, int] = {wrt: 1}
    for d in order:
        into[d] = sum(into.get(p, 0) for p in uses[d])
    return sum(into[d] for d in order if d in ends)


def first_paths(wrt: str, order: Sequence[str], uses: Mapping[str, Sequence[str]],
                ends: Collection[str], limit: int) -> list[tuple[str, ...]]:
    """The first ``limit`` paths wrt -> dependent -> ... -> e (e in ``ends``), in the
    order of a depth-first walk that follows users in topological order.

    Branches that reach no end are never entered, so every step of the walk leads to
    a path that is kept: the work is at most ``limit`` times the longest path.
    """
    users: dict[str, list[str]] = {n: [] for n in (wrt, *order)}
    for d in order:
        for p in uses[d]:
            if p in users:
                users[p].append(d)
    reaches = set()
    for d in reversed(order):
        if d in ends or any(u in reaches for u in users[d]):
            reaches.add(d)
    found: list[tuple[str, ...]] = []
    stack = [(wrt,)]
    while stack and len(found) < limit:
        path = stack.pop()
        if len(path) > 1 and path[-1] in ends:
            found.append(path)
        stack.extend(path + (u,) for u in reversed(users[path[-1]]) if u in reaches)
    return found
