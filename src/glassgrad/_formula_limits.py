"""Budgets that keep :func:`glassgrad.symbolic.derive` small and quick.

A derivative can be cheap to compute and costly to write out: ``(x+1)**1000`` has a
two-term derivative, but SymPy's ``simplify`` expands it into a thousand terms; ``sin``
nested 30 deep has a derivative of 30 factors that ``simplify`` never finishes; a chain
of ``given`` definitions that each use the two below shares its subexpressions, but
written out as a tree it doubles at every level. So:

* a formula is built only while it stays within :attr:`Limits.max_size` (counted as a
  tree, the way it would print) and its powers within :attr:`Limits.max_exponent` and
  its integers within :attr:`Limits.max_digits`; past that, :class:`FormulaTooLarge`
  (a ``NotImplementedError``, as for any formula that cannot be written) says why;
* ``simplify`` runs only on formulas of at most :attr:`Limits.simplify_size`, without
  powers of sums above :attr:`Limits.simplify_exponent`, and for at most
  :attr:`Limits.simplify_seconds` in all; otherwise the formula is kept as built and a
  note says why.

Sizes are counted over the expression's DAG (each shared subexpression once, its tree
size remembered), so counting never costs more than building.

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> expression_size((x + 1) ** 3 * sp.sin(x), {}, Limits())
8
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FormulaTooLarge", "Limits", "Simplifier", "check_graph", "expression_size",
           "substitute"]


class FormulaTooLarge(NotImplementedError):
    """A formula past the limits of :class:`Limits`; the numbers are still available."""


@dataclass(frozen=True)
class Limits:
    """How large a formula may grow, and how much effort simplifying it may take."""

    max_size: int = 2000  # symbols, numbers and operations, counted as a printed tree
    max_nodes: int = 600  # recorded operations replayed on symbols, all functions together
    max_exponent: int = 10_000  # largest power of a variable (degree) written out
    max_digits: int = 300  # largest integer written out
    simplify_size: int = 150  # larger formulas are shown as built
    simplify_exponent: int = 16  # simplify expands powers of sums: (x+1)**1000 is too much
    simplify_seconds: float = 1.0  # for all the simplifications of one derivation


Memo = dict[int, tuple[Any, int]]  # id(node) -> (node, its size as a tree)


def expression_size(expr: Any, memo: Memo, limits: Limits) -> int:
    """The size of ``expr`` as a tree, checking every new node against ``limits``.

    Shared subexpressions are visited once (``memo`` remembers them across calls);
    sizes stop growing just past ``limits.max_size``, where :class:`FormulaTooLarge`
    is raised."""
    stack = [expr]
    while stack:
        node = stack[-1]
        if id(node) in memo:
            stack.pop()
            continue
        pending = [a for a in node.args if id(a) not in memo]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        _check_node(node, limits)
        size = 1 + sum(memo[id(a)][1] for a in node.args)
        if size > limits.max_size:
            raise FormulaTooLarge(f"the formula is too large to write out: it would have more "
                                  f"than {limits.max_size} symbols, numbers and operations")
        memo[id(node)] = (node, size)
    return memo[id(expr)][1]


def _check_node(node: Any, limits: Limits) -> None:
    if node.is_Pow and node.exp.is_Number and abs(node.exp) > limits.max_exponent:
        raise FormulaTooLarge(f"the formula is too large to write out: it has a power of "
                              f"degree {_short(node.exp)}, above the limit of "
                              f"{limits.max_exponent}")
    if node.is_Rational and max(abs(node.p), node.q).bit_length() > 3.33 * limits.max_digits:
        raise FormulaTooLarge(f"the formula is too large to write out: it has a number with "
                              f"more than {limits.max_digits} digits")


def _short(number: Any) -> str:
    """A degree for a message: ``123456`` rather than ``123456.0``, ``1.1e+12`` when long."""
    value = float(number)
    if value.is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.3g}"


def substitute(expr: Any, mapping: Mapping[Any, Any], cache: dict[int, tuple[Any, Any]],
               memo: Memo, limits: Limits) -> Any:
    """``expr.xreplace(mapping)`` for symbol keys, rebuilding each shared subexpression
    once (``cache`` remembers them across calls) and checking each new node's size."""
    stack = [expr]
    while stack:
        node = stack[-1]
        if id(node) in cache:
            stack.pop()
            continue
        pending = [a for a in node.args if id(a) not in cache]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        cache[id(node)] = (node, _rebuilt(node, mapping, cache, memo, limits))
    return cache[id(expr)][1]


def _rebuilt(node: Any, mapping: Mapping[Any, Any], cache: dict[int, tuple[Any, Any]],
             memo: Memo, limits: Limits) -> Any:
    if not node.args:
        return mapping.get(node, node) if node.is_Symbol else node
    args = [cache[id(a)][1] for a in node.args]
    if all(new is old for new, old in zip(args, node.args, strict=True)):
        return node
    new = node.func(*args)
    expression_size(new, memo, limits)  # refuse it before anything is built on it
    return new


def check_graph(nodes: list[Any], limits: Limits, replayed: int = 0) -> None:
    """Refuse a recorded graph that is too long to replay on symbols (with ``replayed``
    nodes already replayed for the same formula), or whose powers would make SymPy
    build huge numbers.

    Replaying costs about a millisecond per operation (SymPy builds and differentiates
    each one), so the number of operations is bounded before anything starts.

    SymPy evaluates ``(3*x)**10**9`` as ``3**10**9 * x**10**9`` the moment it is built,
    so the degree of every node (a power of a variable, roughly) is bounded from the
    graph before any SymPy object exists: constants have degree 0, variables and other
    functions 1, sums the larger degree, products the sum, ``b**n`` n times b's."""
    if replayed + len(nodes) > limits.max_nodes:
        raise FormulaTooLarge(f"the formula is too large to write out: it needs more than "
                              f"{limits.max_nodes} operations replayed on symbols")
    degree: dict[int, float] = {}
    for node in nodes:
        degree[node.id] = d = _degree(node, nodes, degree)
        if d > limits.max_exponent:
            raise FormulaTooLarge(f"the formula is too large to write out: it has a power "
                                  f"of degree {_short(d)}, above the limit of "
                                  f"{limits.max_exponent}")


def _degree(node: Any, nodes: list[Any], degree: Mapping[int, float]) -> float:
    inputs = [degree[i] for i in node.inputs]
    if node.op == "const":
        return 0.0
    if node.op == "pow" and nodes[node.inputs[1]].op == "const":
        exponent = float(np.abs(np.asarray(nodes[node.inputs[1]].value)).max(initial=0.0))
        return max(inputs[0], 1.0) * exponent
    if node.op in ("mul", "div"):
        return sum(inputs)
    return max(inputs, default=1.0)


@dataclass
class Simplifier:
    """``sympy.simplify`` within the :class:`Limits`, keeping notes of what was skipped."""

    sp: Any
    limits: Limits
    notes: list[str] = field(default_factory=list)
    spent: float = 0.0

    def __call__(self, expr: Any) -> Any:
        why = self._why_not(expr)
        if why:
            self._note(f"formulas shown as built, not simplified: {why}")
            return expr
        left = self.limits.simplify_seconds - self.spent
        start = time.perf_counter()
        try:
            return _within(left, lambda: self.sp.simplify(expr))
        except _OutOfTime:
            self._note("formulas shown as built: simplifying took longer than "
                       f"{self.limits.simplify_seconds:g} s")
            return expr
        finally:
            self.spent += time.perf_counter() - start

    def _why_not(self, expr: Any) -> str | None:
        if self.spent >= self.limits.simplify_seconds:
            return f"simplifying took longer than {self.limits.simplify_seconds:g} s"
        size = expression_size(expr, {}, self.limits)
        if size > self.limits.simplify_size:
            return (f"they are too large ({size} symbols, numbers and operations; "
                    f"simplified up to {self.limits.simplify_size})")
        powers = [p.exp for p in expr.atoms(self.sp.Pow)
                  if not p.base.is_Atom and p.exp.is_Number
                  and abs(p.exp) > self.limits.simplify_exponent]
        if powers:
            return (f"a power of degree {_short(max(powers, key=abs))} of a sum would be "
                    f"expanded (simplified up to degree {self.limits.simplify_exponent})")
        return None

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


class _OutOfTime(Exception):
    pass


def _within(seconds: float, work: Callable[[], Any]) -> Any:
    """``work()``, interrupted after ``seconds`` where a timer can be set: on the main
    thread of a Unix process with no timer of its own running. Elsewhere it runs to the
    end (the size limits still keep it bounded)."""
    if seconds <= 0:
        raise _OutOfTime
    usable = (hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0))
    if not usable:
        return work()

    def interrupt(signum: int, frame: Any) -> None:
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return work()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
