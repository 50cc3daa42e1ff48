"""Derivatives as formulas, read off the engine's own graph.

``formula`` records the function with :func:`glassgrad.trace` and replays the recorded
graph on SymPy symbols: forward, each primitive becomes its SymPy counterpart;
backward, cotangents flow from the output to the inputs through a table of local
derivatives that mirrors the engine's rules in ``_rules.py`` (the tests check that the
two agree, primitive by primitive). SymPy never parses the function or differentiates
it: the formula is the engine's reverse pass, written out and then simplified.

SymPy is an optional dependency: ``pip install "glassgrad[symbolic]"``.

>>> import numpy as np
>>> from glassgrad.symbolic import formula
>>> def volume(t, x, y):
...     return 4 * np.pi / 3 * t * x * y
>>> formula(volume, "x")
4*pi*t*y/3
>>> formula(volume, "x", given={"t": lambda x: x})
8*pi*x*y/3

Constants arrive as floats (``4 * np.pi / 3`` is 4.18879...); they are shown in closed
form when a short one matches to the last bit, so the result reads ``4*pi/3``. Python
control flow in the function takes its branches at the sample point ``at`` (by
default 0.6, 0.7, 0.8, ... for the variables in order), so the formula holds where the
function follows those branches.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .graph import Graph, GraphNode, trace

__all__ = ["Derivation", "Term", "derive", "formula", "formula_text", "render",
           "supported_primitives"]

_INSTALL = 'formulas need SymPy: pip install "glassgrad[symbolic]" (or pip install sympy)'
_STYLES = ("plain", "latex", "unicode")


def _sympy() -> Any:
    try:
        import sympy
    except ImportError as err:
        raise ImportError(_INSTALL) from err
    return sympy


# --- the symbolic rule table ------------------------------------------------------------------
# name -> (forward, local derivatives): each derivative d(ans, *args, **params) is the
# partial of the output with respect to one argument, as in _rules.py's `derivatives=`,
# written for SymPy scalars. Conventions at kinks follow the engine (relu' = 0 at 0, ties
# of maximum/minimum share the gradient equally).


def _identity(x: Any, **params: Any) -> Any:
    return x


def _one(ans: Any, x: Any, **params: Any) -> int:
    return 1


# Reductions, reshapes and casts of a single number are the number itself.
_SCALAR_IDENTITIES = ("sum", "mean", "max", "min", "reshape", "transpose", "broadcast_to",
                      "sum_to", "astype", "getitem")


@functools.cache
def _rules(sp: Any) -> dict[str, tuple[Callable, tuple[Callable, ...]]]:
    half = sp.Rational(1, 2)
    rules = {
        "neg": (lambda x: -x, (lambda ans, x: -1,)),
        "exp": (sp.exp, (lambda ans, x: ans,)),
        "log": (sp.log, (lambda ans, x: 1 / x,)),
        "log1p": (lambda x: sp.log(1 + x), (lambda ans, x: 1 / (1 + x),)),
        "expm1": (lambda x: sp.exp(x) - 1, (lambda ans, x: ans + 1,)),
        "sqrt": (sp.sqrt, (lambda ans, x: half / ans,)),
        "sin": (sp.sin, (lambda ans, x: sp.cos(x),)),
        "cos": (sp.cos, (lambda ans, x: -sp.sin(x),)),
        "tan": (sp.tan, (lambda ans, x: 1 + ans * ans,)),
        "arctan": (sp.atan, (lambda ans, x: 1 / (1 + x * x),)),
        "tanh": (sp.tanh, (lambda ans, x: 1 - ans * ans,)),
        "sigmoid": (lambda x, *, a=1: 1 / (1 + sp.exp(-a * x)),
                    (lambda ans, x, *, a=1: a * ans * (1 - ans),)),
        "relu": (lambda x: sp.Max(x, 0), (lambda ans, x: sp.Heaviside(x, 0),)),
        "abs": (sp.Abs, (lambda ans, x: sp.sign(x),)),
        "add": (lambda x, y: x + y, (lambda ans, x, y: 1, lambda ans, x, y: 1)),
        "sub": (lambda x, y: x - y, (lambda ans, x, y: 1, lambda ans, x, y: -1)),
        "mul": (lambda x, y: x * y, (lambda ans, x, y: y, lambda ans, x, y: x)),
        "div": (lambda x, y: x / y, (lambda ans, x, y: 1 / y, lambda ans, x, y: -ans / y)),
        "pow": (lambda x, y: x ** y,
                (lambda ans, x, y: y * x ** (y - 1), lambda ans, x, y: sp.log(x) * ans)),
        "maximum": (sp.Max, (lambda ans, x, y: sp.Heaviside(x - y, half),
                             lambda ans, x, y: sp.Heaviside(y - x, half))),
        "minimum": (sp.Min, (lambda ans, x, y: sp.Heaviside(y - x, half),
                             lambda ans, x, y: sp.Heaviside(x - y, half))),
        "clip": (functools.partial(_clip, sp), (functools.partial(_clip_derivative, sp),)),
    }
    rules.update((name, (_identity, (_one,))) for name in _SCALAR_IDENTITIES)
    return rules


def _clip(sp: Any, x: Any, *, lo: Any = None, hi: Any = None) -> Any:
    x = x if lo is None else sp.Max(x, lo)
    return x if hi is None else sp.Min(x, hi)


def _clip_derivative(sp: Any, ans: Any, x: Any, *, lo: Any = None, hi: Any = None) -> Any:
    # 1 on the closed interval [lo, hi], bounds included, as the engine's mask.
    inside = sp.And(sp.true if lo is None else x >= lo, sp.true if hi is None else x <= hi)
    return sp.Piecewise((1, inside), (0, True))


def supported_primitives() -> frozenset[str]:
    """Names of the primitives ``formula`` can write out (needs SymPy).

    >>> {"mul", "sin", "pow"} <= supported_primitives()
    True
    """
    return frozenset(_rules(_sympy()))


# --- constants ----------------------------------------------------------------------------


def _constant(value: Any, sp: Any) -> Any:
    """A number as SymPy sees it: exact integers, and short closed forms (4*pi/3, 1/10,
    sqrt(2)/2) when they match the float to its precision; otherwise the float."""
    arr = np.asarray(value)
    item = arr.reshape(()).item()
    if isinstance(item, bool | int):
        return sp.Integer(int(item))
    if isinstance(item, complex):
        return sp.Float(item.real) + sp.I * sp.Float(item.imag)
    if not np.isfinite(item):
        return sp.nan if np.isnan(item) else (sp.oo if item > 0 else -sp.oo)
    if item.is_integer() and abs(item) < 2 ** 53:
        return sp.Integer(int(item))
    eps = float(np.finfo(arr.dtype).eps) if arr.dtype.kind == "f" else 2.0 ** -52
    tolerance = None if eps <= 2.0 ** -52 else 4 * eps * abs(item)
    try:
        guess = sp.nsimplify(item, [sp.pi, sp.E], tolerance=tolerance)
    except (ValueError, TypeError, ArithmeticError):  # pragma: no cover - SymPy edge cases
        return sp.Float(item)
    close = abs(float(guess) - item) <= 4 * eps * abs(item)
    return guess if close and _short_form(guess, sp) else sp.Float(item)


def _short_form(expr: Any, sp: Any) -> bool:
    numbers = expr.atoms(sp.Rational)
    return sp.count_ops(expr) <= 6 and all(abs(r.p) <= 10 ** 4 and r.q <= 10 ** 4
                                           for r in numbers)


def _param(value: Any, sp: Any) -> Any:
    if isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_):
        return _constant(value, sp)
    return value


# --- replaying a graph on symbols -------------------------------------------------------------


def _variables(fun: Callable, what: str) -> list[inspect.Parameter]:
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} needs a signature with named parameters") from err
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ValueError(f"{what} must take named scalar parameters (its parameter names "
                             f"are the variables), not *{p.name}")
    return params


def _call_trace(fun: Callable, params: list[inspect.Parameter], point: Mapping) -> Graph:
    args = [point[p.name] for p in params if p.kind != p.KEYWORD_ONLY]
    kwargs = {p.name: point[p.name] for p in params if p.kind == p.KEYWORD_ONLY}
    with np.errstate(all="ignore"):  # a sample point outside the domain is harmless
        return trace(fun, backward=False)(*args, **kwargs)


def _node_expr(node: GraphNode, values: dict[int, Any], sp: Any) -> Any:
    if node.op == "input":
        return sp.Symbol(node.name)
    if node.op == "const":  # non-scalar constants are refused at the node that uses them
        return _constant(node.value, sp) if np.size(node.value) == 1 else None
    rule = _rules(sp).get(node.op)
    if rule is None:
        known = ", ".join(sorted(_rules(sp)))
        raise NotImplementedError(f"formula has no symbolic rule for the primitive "
                                  f"{node.op!r} (supported: {known})")
    args = [values[i] for i in node.inputs]
    if np.size(node.value) != 1 or any(a is None for a in args):
        raise NotImplementedError(f"formula works with scalars, but {node.op!r} (node "
                                  f"%{node.id}) works on arrays of shape {node.shape}")
    params = {k: _param(v, sp) for k, v in node.params.items()}
    return rule[0](*args, **params)


def _replay(graph: Graph, sp: Any) -> tuple[Any, dict[str, Any]]:
    """The output as an expression of the inputs, and its partial derivatives, computed
    by a reverse pass over the graph with the symbolic local derivatives."""
    values: dict[int, Any] = {}
    for node in graph.nodes:
        values[node.id] = _node_expr(node, values, sp)
    if np.size(graph.output.value) != 1:
        raise NotImplementedError(f"formula needs a scalar output, got shape "
                                  f"{graph.output.shape}")
    adjoints: dict[int, Any] = {graph.output.id: sp.Integer(1)}
    for node in reversed(graph.nodes):
        g = adjoints.get(node.id)
        if g is None or node.op in ("input", "const"):
            continue
        derivatives = _rules(sp)[node.op][1]
        args = [values[i] for i in node.inputs]
        params = {k: _param(v, sp) for k, v in node.params.items()}
        for argnum, src in enumerate(node.inputs):
            if graph.nodes[src].op == "const":
                continue
            local = derivatives[argnum](values[node.id], *args, **params)
            adjoints[src] = adjoints.get(src, 0) + g * local
    partials = {n.name: adjoints.get(n.id, sp.Integer(0)) for n in graph.inputs}
    return values[graph.output.id], partials


# --- the chain rule ---------------------------------------------------------------------------


class Term(NamedTuple):
    """One path of the chain rule: ``partial`` (d fun / d name, others fixed) times
    ``derivative`` (d name / d wrt) is ``product``."""

    name: str
    partial: Any
    derivative: Any
    product: Any


@dataclass(frozen=True)
class Derivation:
    """Everything ``derive`` works out, as SymPy expressions.

    ``partial`` is d fun / d wrt with every other variable held fixed; ``total`` the
    total derivative in the independent variables; ``naive`` the partial with the
    dependencies substituted afterwards (what forgetting the chain rule gives);
    ``terms`` one :class:`Term` per variable of ``fun``; ``substitutions`` each
    dependent variable as an expression of the independent ones.
    """

    wrt: str
    function: Any
    partial: Any
    total: Any
    naive: Any
    terms: list[Term]
    substitutions: dict[str, Any]


def derive(fun: Callable, wrt: str, given: Mapping[str, Callable] | None = None, *,
           at: Mapping[str, float] | None = None) -> Derivation:
    """Work out d fun / d ``wrt`` symbolically, partial and total (see :func:`formula`).

    >>> d = derive(lambda t, x: t * x, "x", given={"t": lambda x: x ** 2})
    >>> d.partial, d.total, d.naive
    (t, 3*x**2, x**2)
    """
    sp = _sympy()
    given = dict(given or {})
    f_params = _variables(fun, "fun")
    dep_params = {v: _variables(g, f"given[{v!r}]") for v, g in given.items()}
    order = _dependency_order({v: [p.name for p in ps] for v, ps in dep_params.items()})
    names = list(dict.fromkeys([p.name for p in f_params]
                               + [p.name for ps in dep_params.values() for p in ps]))
    _check_wrt(wrt, names, given)
    point = {n: 0.6 + 0.1 * i for i, n in enumerate(names)} | dict(at or {})
    function, partials = _replay(_call_trace(fun, f_params, point), sp)
    dependencies = {v: _replay(_call_trace(given[v], ps, point), sp)
                    for v, ps in dep_params.items()}
    subs: dict[Any, Any] = {}
    for v in order:  # each dependency resolved before the variables that use it
        subs[sp.Symbol(v)] = dependencies[v][0].xreplace(subs)
    derivative = _derivatives(wrt, dependencies, sp)
    terms = []
    for p in f_params:
        partial, d = partials[p.name], derivative(p.name).xreplace(subs)
        terms.append(Term(p.name, sp.simplify(partial), sp.simplify(d),
                          sp.simplify(partial * d)))
    total = sp.simplify(sp.Add(*[t.product for t in terms]).xreplace(subs))
    partial = partials.get(wrt, sp.Integer(0))
    return Derivation(wrt, function, sp.simplify(partial), total,
                      sp.simplify(partial.xreplace(subs)), terms,
                      {str(k): v for k, v in subs.items()})


def _check_wrt(wrt: str, names: list[str], given: Mapping) -> None:
    if wrt in given:
        raise ValueError(f"{wrt!r} is a dependent variable (it is in `given`); "
                         "differentiate with respect to an independent variable")
    if wrt not in names:
        raise ValueError(f"unknown variable {wrt!r}: the variables are "
                         f"{', '.join(names) or 'none'}")


def _dependency_order(uses: Mapping[str, list[str]]) -> list[str]:
    """Dependent variables, each after the dependent variables its definition uses."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(v: str, path: list[str]) -> None:
        if state.get(v) == "done":
            return
        if state.get(v) == "active":
            cycle = " -> ".join(path[path.index(v):] + [v])
            raise ValueError(f"the dependencies in `given` form a cycle: {cycle}")
        state[v] = "active"
        for u in uses[v]:
            if u in uses:
                visit(u, path + [v])
        state[v] = "done"
        order.append(v)

    for v in uses:
        visit(v, [])
    return order


def _derivatives(wrt: str, dependencies: Mapping[str, tuple[Any, dict]], sp: Any) -> Callable:
    """d v / d wrt for any variable v, by the chain rule through the dependencies."""

    @functools.cache
    def d(v: str) -> Any:
        if v == wrt:
            return sp.Integer(1)
        if v not in dependencies:
            return sp.Integer(0)
        return sp.Add(*[p * d(u) for u, p in dependencies[v][1].items()])

    return d


# --- the public face ------------------------------------------------------------------------


def formula(fun: Callable, wrt: str, given: Mapping[str, Callable] | None = None, *,
            at: Mapping[str, float] | None = None) -> Any:
    """The derivative of ``fun`` with respect to ``wrt`` as a simplified SymPy expression.

    ``fun``'s parameter names are the symbols. Without ``given`` this is the partial
    derivative; with ``given`` (a dependent variable's name -> a function of other
    variables, matched by its parameter names, as in ``gg.total``) it is the total
    derivative, written in the independent variables. ``at`` picks the point the
    functions are traced at (only Python control flow depends on it). Use
    ``sympy.latex`` or ``sympy.pretty`` on the result, or :func:`formula_text`.

    >>> import numpy as np
    >>> formula(lambda x: x * np.log(x), "x")
    log(x) + 1
    """
    return derive(fun, wrt, given, at=at).total


def formula_text(fun: Callable, wrt: str, given: Mapping[str, Callable] | None = None, *,
                 style: str = "plain", at: Mapping[str, float] | None = None) -> str:
    """:func:`formula` as text: ``style`` is "plain", "latex" or "unicode".

    >>> formula_text(lambda x, y: x ** 2 * y, "x", style="latex")
    '2 x y'
    """
    return render(formula(fun, wrt, given, at=at), style)


def render(expr: Any, style: str = "plain") -> str:
    """A SymPy expression as "plain" text, "latex" or "unicode" (pretty-printed)."""
    if style not in _STYLES:
        raise ValueError(f"style must be one of {', '.join(_STYLES)}, got {style!r}")
    sp = _sympy()
    if style == "latex":
        return sp.latex(expr)
    if style == "unicode":
        return sp.pretty(expr, use_unicode=True)
    return str(expr)
