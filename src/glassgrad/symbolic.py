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

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._formula_limits import Limits, Memo, Simplifier, check_graph, expression_size, substitute
from ._variables import Term, check_wrt, dependency_order, moved_by, signature_parameters
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


# --- the symbolic forms come from the rule table -----------------------------------------------
# Each row may carry ``sympy(sp, *args, **params)``, the operation on SymPy scalars, and
# ``sympy_derivatives`` where the engine's convention at a kink (relu' = 0 at 0, ties of
# maximum/minimum share the gradient equally) is not what SymPy would say. Everywhere
# else the local derivative is the derivative of the row's own form, taken on fresh
# symbols and substituted: the formula is the engine's reverse pass, written out.


def _symbolic_rows() -> dict[str, Any]:
    from ._primitive import PRIMITIVES

    return {name: prim for name, prim in PRIMITIVES.items() if prim.sympy is not None}


def _forward(prim: Any, args: list[Any], params: dict[str, Any], sp: Any) -> Any:
    return prim.sympy(sp, *args, **params)


def _local_derivative(prim: Any, i: int, ans: Any, args: list[Any], params: dict[str, Any],
                      sp: Any) -> Any:
    if prim.sympy_derivatives is not None and i < len(prim.sympy_derivatives):
        return prim.sympy_derivatives[i](sp, ans, *args, **params)
    try:
        key = (prim, i, len(args), tuple(sorted(params.items())))
        dummies, derivative = _DERIVATIVE_FORMS.get(key) or _DERIVATIVE_FORMS.setdefault(
            key, _derivative_form(prim, i, len(args), params, sp))
    except TypeError:  # unhashable parameters: no caching
        dummies, derivative = _derivative_form(prim, i, len(args), params, sp)
    return derivative.xreplace(dict(zip(dummies, args, strict=True)))


# (row, argument, arity, parameters) -> the derivative on fresh symbols: SymPy's diff runs
# once per form, and each node of a formula only substitutes its own arguments.
_DERIVATIVE_FORMS: dict[tuple, tuple[list[Any], Any]] = {}


def _derivative_form(prim: Any, i: int, nargs: int, params: dict[str, Any], sp: Any
                     ) -> tuple[list[Any], Any]:
    """d prim / d argument i, on fresh symbols standing for the arguments."""
    dummies = [sp.Dummy(f"a{k}") for k in range(nargs)]
    return dummies, sp.diff(prim.sympy(sp, *dummies, **params), dummies[i])


def supported_primitives() -> frozenset[str]:
    """Names of the primitives ``formula`` can write out (needs SymPy).

    >>> {"mul", "sin", "pow"} <= supported_primitives()
    True
    """
    return frozenset(_symbolic_rows())


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
    params = signature_parameters(fun, what)
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
    prim = _symbolic_rows().get(node.op)
    if prim is None:
        known = ", ".join(sorted(_symbolic_rows()))
        raise NotImplementedError(f"formula has no symbolic rule for the primitive "
                                  f"{node.op!r} (supported: {known})")
    args = [values[i] for i in node.inputs]
    if np.size(node.value) != 1 or any(a is None for a in args):
        raise NotImplementedError(f"formula works with scalars, but {node.op!r} (node "
                                  f"%{node.id}) works on arrays of shape {node.shape}")
    return _forward(prim, args, _params(node.params, sp), sp)


def _params(params: Mapping[str, Any], sp: Any) -> dict[str, Any]:
    return {k: _param(v, sp) for k, v in params.items()}


def _replay(graph: Graph, sp: Any) -> tuple[Any, dict[str, Any]]:
    """The output as an expression of the inputs, and its partial derivatives.

    Forward, each node becomes its row's SymPy form; backward, the engine's own backward
    loop runs over the recorded tape, pulling SymPy cotangents through each node with
    the symbolic local derivatives instead of the numeric VJP rules.
    """
    from ._tensor import backprop

    values: dict[int, Any] = {}
    for node in graph.nodes:
        values[node.id] = _node_expr(node, values, sp)
    if np.size(graph.output.value) != 1:
        raise NotImplementedError(f"formula needs a scalar output, got shape "
                                  f"{graph.output.shape}")
    out, node_of = graph.tape
    if out is None:  # the output does not depend on the inputs
        return values[graph.output.id], {n.name: sp.Integer(0) for n in graph.inputs}

    def pull(t: Any, i: int, g: Any) -> Any:
        node = graph.nodes[node_of[id(t)]]
        prim = _symbolic_rows()[node.op]
        args = [values[k] for k in node.inputs]
        local = _local_derivative(prim, i, values[node.id], args, _params(node.params, sp), sp)
        return g * local

    leaves = dict(((id(leaf), g) for leaf, g in backprop([(out, sp.Integer(1))], pull=pull)))
    partials = {n.name: sp.Integer(0) for n in graph.inputs}
    for leaf_id, g in leaves.items():
        partials[graph.nodes[node_of[leaf_id]].name] = g
    return values[graph.output.id], partials


# --- the chain rule ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Derivation:
    """Everything ``derive`` works out, as SymPy expressions.

    ``partial`` is d fun / d wrt with every other variable held fixed; ``total`` the
    total derivative in the independent variables; ``naive`` the partial with the
    dependencies substituted afterwards (what forgetting the chain rule gives);
    ``terms`` one :class:`Term` per variable of ``fun``; ``substitutions`` each
    dependent variable as an expression of the independent ones; ``notes`` what the
    limits left undone (formulas shown as built rather than simplified).
    """

    wrt: str
    function: Any
    partial: Any
    total: Any
    naive: Any
    terms: list[Term]
    substitutions: dict[str, Any]
    notes: tuple[str, ...] = ()


def derive(fun: Callable, wrt: str, given: Mapping[str, Callable] | None = None, *,
           at: Mapping[str, float] | None = None, limits: Limits | None = None) -> Derivation:
    """Work out d fun / d ``wrt`` symbolically, partial and total (see :func:`formula`).

    ``limits`` bounds the work (:class:`glassgrad._formula_limits.Limits`): a formula
    too large to write out raises ``FormulaTooLarge`` (a ``NotImplementedError``); one
    too large to simplify is kept as built, and ``notes`` says so.

    >>> d = derive(lambda t, x: t * x, "x", given={"t": lambda x: x ** 2})
    >>> d.partial, d.total, d.naive
    (t, 3*x**2, x**2)
    >>> derive(lambda x: (x + 1) ** 100, "x").notes  # doctest: +ELLIPSIS
    ('formulas shown as built, not simplified: a power of degree 99 of a sum ...',)
    """
    sp, limits = _sympy(), limits or Limits()
    given = dict(given or {})
    f_params = _variables(fun, "fun")
    dep_params = {v: _variables(g, f"given[{v!r}]") for v, g in given.items()}
    uses = {v: [p.name for p in ps] for v, ps in dep_params.items()}
    order = dependency_order(uses)
    names = list(dict.fromkeys([p.name for p in f_params]
                               + [p.name for ps in dep_params.values() for p in ps]))
    check_wrt(wrt, [n for n in names if n not in given], given)
    point = {n: 0.6 + 0.1 * i for i, n in enumerate(names)} | dict(at or {})
    graphs = {"": _call_trace(fun, f_params, point)}
    graphs.update((v, _call_trace(given[v], ps, point)) for v, ps in dep_params.items())
    replayed = _replay_within(graphs, sp, limits)
    function, partials = replayed.pop("")
    dependencies = replayed
    written = _Writer(sp, limits)
    for v in order:  # each dependency resolved before the variables that use it
        written.define(sp.Symbol(v), dependencies[v][0])
    derivative = _derivatives(wrt, order, uses, dependencies, sp)
    simplify = Simplifier(sp, limits)
    terms = []
    for p in f_params:
        partial, d = partials[p.name], written(derivative(p.name))
        terms.append(Term(p.name, simplify(partial), simplify(d),
                          simplify(written.checked(partial * d))))
    total = simplify(written(sp.Add(*[t.product for t in terms])))
    partial = partials.get(wrt, sp.Integer(0))
    return Derivation(wrt, function, simplify(partial), total, simplify(written(partial)),
                      terms, written.substitutions(), tuple(simplify.notes))


def _replay_within(graphs: dict[str, Graph], sp: Any,
                   limits: Limits) -> dict[str, tuple[Any, dict[str, Any]]]:
    """:func:`_replay` of each graph, refused before any starts when together they are
    too long or their powers too high, and after each ends when its results are too
    large."""
    replayed = 0
    for graph in graphs.values():
        check_graph(graph.nodes, limits, replayed)
        replayed += len(graph.nodes)
    results = {}
    for name, graph in graphs.items():
        results[name] = value, partials = _replay(graph, sp)
        memo: Memo = {}
        for expr in (value, *partials.values()):
            expression_size(expr, memo, limits)
    return results


class _Writer:
    """Expressions in the dependents' symbols rewritten in the independent ones, each
    shared subexpression once, within the size limits."""

    def __init__(self, sp: Any, limits: Limits) -> None:
        self.sp, self.limits = sp, limits
        self.mapping: dict[Any, Any] = {}
        self.cache: dict[int, tuple[Any, Any]] = {}
        self.memo: Memo = {}

    def define(self, symbol: Any, expr: Any) -> None:
        self.mapping[symbol] = self(expr)
        self.cache.clear()  # a new symbol is defined: rewrite again from scratch

    def __call__(self, expr: Any) -> Any:
        return substitute(expr, self.mapping, self.cache, self.memo, self.limits)

    def checked(self, expr: Any) -> Any:
        expression_size(expr, self.memo, self.limits)
        return expr

    def substitutions(self) -> dict[str, Any]:
        return {str(k): v for k, v in self.mapping.items()}


def _derivatives(wrt: str, order: tuple[str, ...], uses: Mapping[str, list[str]],
                 dependencies: Mapping[str, tuple[Any, dict]], sp: Any) -> Callable:
    """v -> d v / d wrt, by the chain rule over the dependencies in topological order:
    d v / d wrt = Σ_u ∂v/∂u · d u / d wrt, once per dependent (never per path)."""
    moved = moved_by(wrt, order, uses)
    found = {wrt: sp.Integer(1)}
    for v in (d for d in order if d in moved):
        found[v] = sp.Add(*[p * found[u] for u, p in dependencies[v][1].items()
                            if u in found])
    return lambda v: found.get(v, sp.Integer(0))


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
