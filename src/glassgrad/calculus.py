"""Partial, total and differential views of a function of named variables.

A function's variables are its parameter names. :func:`partial` holds every other
variable fixed; :func:`total` lets some variables depend on others (``given``) and
follows every path with the chain rule; :func:`differential` gives the linear change
``df = Σ ∂f/∂v dv``; :func:`explain` walks through the chain rule term by term and shows
what the classic mistake (substituting after taking the partial) would have given.

>>> import numpy as np
>>> def f(t, x, y):  # the volume of an ellipsoid with half-axes t, x, y
...     return 4 * np.pi / 3 * t * x * y
>>> round(partial(f, "x")(t=1, x=2, y=3), 4)  # 4π/3 · t · y
12.5664
>>> round(total(f, "x", given={"t": lambda x: x})(x=2, y=3), 4)  # 8π/3 · x · y
50.2655
>>> print(differential(f)(t=1, x=2, y=3))
df = 25.13 dt + 12.57 dx + 8.38 dy

Values may be Python numbers (ints become floats) or float arrays. Derivatives are
shaped like :func:`glassgrad.jacobian`'s, ``out.shape + in.shape``: a float for scalars,
the gradient for a scalar function of an array variable. Scalar results come back as
Python floats, so they print plainly; the returned derivative functions have the
variables as parameters, so they compose (``partial(partial(f, "x"), "y")``) and nest
inside the other transforms.
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._backend import concrete as raw
from ._backend import dtype_of, shape_of
from ._primitive import Traced
from ._transforms import jacobian, jvp, vjp
from ._variables import (
    Term,
    check_wrt,
    count_paths,
    dependency_order,
    first_paths,
    moved_by,
    signature_parameters,
)

__all__ = ["Differential", "Explanation", "Term", "differential", "explain", "partial", "total"]

Given = Mapping[str, Callable[..., Any]]

_VARIABLE_KINDS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


# --- variables and points ------------------------------------------------------------------


def _parameters(fun: Callable, what: str) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The variable names of ``fun`` (its positional parameters) and their defaults."""
    params = signature_parameters(fun, what)
    for p in params:
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is p.empty:
            raise ValueError(f"{what} has a keyword-only parameter {p.name!r} without a "
                             "default; keyword-only parameters are constants, give it one")
    names = tuple(p.name for p in params if p.kind in _VARIABLE_KINDS)
    defaults = {p.name: p.default for p in params
                if p.kind in _VARIABLE_KINDS and p.default is not p.empty}
    return names, defaults


def _as_value(name: str, x: Any) -> Any:
    """A point value as the engine wants it: float arrays, float scalars, traced values."""
    if isinstance(x, Traced):  # inside an enclosing transform: keep the trace intact
        return x
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf":  # bool, complex, strings, objects
        raise TypeError(f"{name}={x!r}: a variable's value must be a real number or a "
                        "float array")
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.float64)
    return arr[()] if arr.ndim == 0 else arr


def _plain(x: Any) -> Any:
    """A result for people: Python floats for concrete scalars, arrays otherwise."""
    if isinstance(x, Traced):
        return x
    arr = np.asarray(x)
    return float(arr) if arr.ndim == 0 else arr


def _bind(names: Sequence[str], defaults: Mapping[str, Any], args: tuple,
          kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Map positional and keyword values onto ``names``, naming every problem."""
    if len(args) > len(names):
        raise ValueError(f"got {len(args)} positional values for the variables {list(names)}")
    point = dict(zip(names, args, strict=False))
    twice = [n for n in kwargs if n in point]
    if twice:
        raise ValueError(f"variable(s) {twice} given both by position and by name")
    point.update(kwargs)
    unknown = [n for n in point if n not in names]
    if unknown:
        raise ValueError(f"unknown variable(s) {unknown}; the variables are {list(names)}")
    missing = [n for n in names if n not in point and n not in defaults]
    if missing:
        raise ValueError(f"missing value(s) for {missing}; the variables are {list(names)}")
    return {n: _as_value(n, point[n] if n in point else defaults[n]) for n in names}


def _named_function(names: Sequence[str], defaults: Mapping[str, Any],
                    body: Callable[[dict[str, Any]], Any], name: str) -> Callable[..., Any]:
    """A function of the variables ``names`` whose signature says so, so it composes."""

    def function(*args: Any, **kwargs: Any) -> Any:
        return body(_bind(names, defaults, args, kwargs))

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    function.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, kind, default=defaults.get(n, inspect.Parameter.empty))
         for n in names])
    function.__name__ = function.__qualname__ = name
    return function


# --- dependencies between variables --------------------------------------------------------


@dataclass(frozen=True)
class _System:
    """``fun``'s variables and the dependencies among them, resolved once."""

    fun: Callable
    variables: tuple[str, ...]
    given: Mapping[str, Callable]
    params: Mapping[str, tuple[str, ...]]  # dependent -> the names its function reads
    order: tuple[str, ...]  # dependents, each after those it uses
    independents: tuple[str, ...]
    defaults: Mapping[str, Any]

    @classmethod
    def build(cls, fun: Callable, given: Given | None) -> _System:
        variables, defaults = _parameters(fun, "fun")
        if not variables:
            raise ValueError("fun has no positional parameters, so it has no variables")
        given = dict(given or {})
        params = {}
        for dep, g in given.items():
            if not callable(g):
                raise TypeError(f"given[{dep!r}] must be a function of other variables, e.g. "
                                f"lambda x: 2 * x; got {g!r}")
            params[dep], g_defaults = _parameters(g, f"given[{dep!r}]")
            defaults = {**g_defaults, **defaults}
        _check_used(variables, params)
        order = dependency_order(params)
        extra = [p for dep in order for p in params[dep] if p not in variables + order]
        independents = tuple(v for v in variables if v not in given) + tuple(dict.fromkeys(extra))
        return cls(fun, variables, given, params, order, independents,
                   {n: d for n, d in defaults.items() if n in independents})

    def check_wrt(self, wrt: str) -> int:
        check_wrt(wrt, self.independents, self.given)
        return self.independents.index(wrt)

    def evaluate(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """Every variable's value: the point's, then each dependent's in order."""
        env = dict(point)
        for dep in self.order:
            env[dep] = _as_value(dep, self.given[dep](*[env[p] for p in self.params[dep]]))
        return env

    def composed(self) -> Callable[..., Any]:
        """The independents -> f function to differentiate."""

        def g(*values: Any) -> Any:
            env = self.evaluate(dict(zip(self.independents, values, strict=True)))
            return self.fun(*[env[v] for v in self.variables])

        return g

    def missed_paths(self, wrt: str) -> tuple[int, list[tuple[str, ...]], tuple[str, ...]]:
        """The paths wrt -> dependent -> ... -> f that a partial derivative ignores: how
        many, the first few, and the variables of f they pass through (held fixed).

        They are counted over the dependency DAG, never listed in full: a chain of 25
        levels where each uses the two below has over 100,000 of them."""
        ends = set(self.variables) & set(self.order)
        count = count_paths(wrt, self.order, self.params, ends)
        shown = first_paths(wrt, self.order, self.params, ends, limit=_PATHS_SHOWN)
        moved = moved_by(wrt, self.order, self.params)
        held = tuple(d for d in self.order if d in moved and d in ends)
        return count, [p + ("f",) for p in shown], held


# Missed paths listed in an explanation; beyond these they are counted.
_PATHS_SHOWN = 5


def _check_used(variables: tuple[str, ...], params: Mapping[str, tuple[str, ...]]) -> None:
    used = set(variables).union(*params.values())
    unused = [d for d in params if d not in used]
    if unused:
        raise ValueError(f"given defines {unused}, which neither fun (variables "
                         f"{list(variables)}) nor another given function uses")


# --- derivatives ---------------------------------------------------------------------------


def _ones(x: Any) -> np.ndarray:
    return np.ones(shape_of(x), dtype=dtype_of(raw(x)))


def _derivative(g: Callable, args: Sequence[Any], i: int) -> tuple[Any, Any]:
    """``g(*args)`` and its derivative with respect to ``args[i]``, shaped like
    ``jacobian``'s: ``out.shape + args[i].shape``."""
    args = tuple(args)
    if shape_of(args[i]) == ():  # forward mode: one sweep, whatever the output's shape
        tangents = tuple(_ones(a) if j == i else 0 * _ones(a) for j, a in enumerate(args))
        return jvp(g, args, tangents)
    out, pullback = vjp(g, *args)
    if shape_of(out) == ():  # reverse mode: one sweep for a scalar function
        return out, pullback(_ones(out))[i]
    return out, jacobian(g, argnums=i)(*args)


def _identity(x: Any) -> Any:
    """dx/dx, shaped ``x.shape + x.shape``."""
    size = math.prod(shape_of(x))
    return 1.0 if shape_of(x) == () else np.eye(size).reshape(shape_of(x) * 2)


def _contract(partial: Any, derivative: Any, ndim: int) -> Any:
    """∂f/∂v · dv/dw, summed over v's ``ndim`` axes, shaped ``out.shape + w.shape``."""
    if ndim == 0 and (shape_of(partial) == () or shape_of(derivative) == ()):
        return partial * derivative  # stays traceable, and is the outer product here
    return np.tensordot(partial, derivative, axes=ndim)


# --- the public functions ------------------------------------------------------------------


def partial(fun: Callable[..., Any], wrt: str) -> Callable[..., Any]:
    """∂fun/∂wrt as a function of fun's variables, every other variable held fixed.

    The result is shaped ``out.shape + wrt.shape``, as :func:`glassgrad.jacobian`'s: a
    float when both are scalars, the gradient of a scalar ``fun`` of an array variable.

    >>> import numpy as np
    >>> f = lambda t, x, y: 4 * np.pi / 3 * t * x * y
    >>> partial(f, "x")(t=1, x=2, y=3) == 4 * np.pi / 3 * 1 * 3
    True
    >>> partial(lambda x: np.sum(x ** 2), "x")(x=np.array([1.0, 2.0]))
    array([2., 4.])
    """
    system = _System.build(fun, None)
    i = system.check_wrt(wrt)

    def body(point: dict[str, Any]) -> Any:
        return _plain(_derivative(fun, list(point.values()), i)[1])

    return _named_function(system.variables, system.defaults, body, f"partial_{wrt}")


def total(fun: Callable[..., Any], wrt: str, given: Given | None = None) -> Callable[..., Any]:
    """df/dwrt = Σ_v ∂f/∂v · dv/dwrt, where ``given`` says how variables depend on others.

    ``given`` maps a dependent variable to a function of other variables, matched by
    parameter name: ``{"t": lambda x: x}`` says t = x. Dependencies may chain; the
    returned function takes only the independent variables.

    >>> import numpy as np
    >>> f = lambda t, x, y: 4 * np.pi / 3 * t * x * y
    >>> df_dx = total(f, "x", given={"t": lambda x: x})
    >>> bool(np.isclose(df_dx(x=2, y=3), 8 * np.pi / 3 * 2 * 3))
    True
    """
    system = _System.build(fun, given)
    i = system.check_wrt(wrt)

    def body(point: dict[str, Any]) -> Any:
        return _plain(_derivative(system.composed(), list(point.values()), i)[1])

    return _named_function(system.independents, system.defaults, body, f"total_{wrt}")


def differential(fun: Callable[..., Any]) -> Callable[..., Differential]:
    """The differential df = Σ_v ∂f/∂v dv at a point: call it with small changes.

    >>> import numpy as np
    >>> d = differential(lambda t, x, y: 4 * np.pi / 3 * t * x * y)(t=1, x=2, y=3)
    >>> print(d)
    df = 25.13 dt + 12.57 dx + 8.38 dy
    >>> round(d(x=0.01), 6)  # only x changes
    0.125664
    """
    system = _System.build(fun, None)

    def body(point: dict[str, Any]) -> Differential:
        values = list(point.values())
        partials = {v: _plain(_derivative(fun, values, i)[1])
                    for i, v in enumerate(system.variables)}
        plain = {v: _plain(x) for v, x in point.items()}
        return Differential(partials, plain, _plain(fun(*values)))

    return _named_function(system.variables, system.defaults, body, "differential")


def explain(fun: Callable[..., Any], wrt: str,
            given: Given | None = None) -> Callable[..., Explanation]:
    """Walk through df/dwrt = Σ_v ∂f/∂v · dv/dwrt at a point, term by term.

    >>> import numpy as np
    >>> f = lambda t, x, y: 4 * np.pi / 3 * t * x * y
    >>> e = explain(f, "x", given={"t": lambda x: x})(x=2, y=3)
    >>> [t.name for t in e.terms], round(e.value / e.naive_value, 6)
    (['t', 'x', 'y'], 2.0)
    """
    system = _System.build(fun, given)
    i = system.check_wrt(wrt)

    def body(point: dict[str, Any]) -> Explanation:
        return _explanation(system, wrt, i, point)

    return _named_function(system.independents, system.defaults, body, f"explain_{wrt}")


def _explanation(system: _System, wrt: str, i: int, point: dict[str, Any]) -> Explanation:
    env = system.evaluate(point)
    f_args = [env[v] for v in system.variables]
    f_value, value = _derivative(system.composed(), list(point.values()), i)
    partials = _partials(system.fun, f_args, range(len(f_args)))
    moves = _chain_derivatives(system, env, wrt)
    terms = [_term(v, partials[k], moves(v), len(shape_of(env[v])))
             for k, v in enumerate(system.variables)]
    if wrt in system.variables:
        naive = partials[system.variables.index(wrt)]
    else:  # f does not read wrt itself: holding the rest fixed, nothing changes
        naive = np.zeros(shape_of(f_value) + shape_of(point[wrt]))
    count, paths, held = system.missed_paths(wrt)
    return Explanation(
        wrt=wrt, point={k: _plain(x) for k, x in point.items()},
        values={k: _plain(x) for k, x in env.items()},
        given={d: system.params[d] for d in system.order},
        function_value=_plain(f_value), value=_plain(value),
        terms=terms, naive_value=_plain(naive), missed_paths=paths,
        missed_path_count=count, held=held)


def _partials(g: Callable, args: Sequence[Any], which: Sequence[int]) -> dict[int, Any]:
    """∂g/∂args[k] for each k in ``which``: one reverse sweep when ``g`` is scalar."""
    args = list(args)
    if len(which) > 1:
        out, pullback = vjp(g, *args)
        if shape_of(out) == ():
            grads = pullback(_ones(out))
            return {k: grads[k] for k in which}
    return {k: _derivative(g, args, k)[1] for k in which}


def _chain_derivatives(system: _System, env: dict[str, Any],
                       wrt: str) -> Callable[[str], Any]:
    """v -> dv/dwrt, by the chain rule over the dependency DAG in topological order.

    d(dep)/dwrt = Σ_p ∂dep/∂p · dp/dwrt over the names p that dep reads: one engine
    derivative per dependent that wrt moves, so the work grows with the edges of the
    DAG, not with the (possibly exponentially many) paths through it."""
    moved = moved_by(wrt, system.order, system.params)
    found = {wrt: _identity(env[wrt])}
    for dep in (d for d in system.order if d in moved):
        names = system.params[dep]
        reached = [k for k, p in enumerate(names) if p in found]
        local = _partials(system.given[dep], [env[p] for p in names], reached)
        found[dep] = functools.reduce(operator.add, (
            _contract(local[k], found[names[k]], len(shape_of(env[names[k]])))
            for k in reached))

    def derivative(v: str) -> Any:  # a variable wrt does not move has derivative 0
        return found[v] if v in found else np.zeros(shape_of(env[v]) + shape_of(env[wrt]))

    return derivative


def _term(v: str, partial_v: Any, derivative: Any, ndim: int) -> Term:
    product = _contract(partial_v, derivative, ndim)
    return Term(v, _plain(partial_v), _plain(derivative), _plain(product))


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Differential:
    """df = Σ_v ∂f/∂v dv at :attr:`point`; call it with changes ``d(x=0.01)``.

    >>> d = Differential({"x": 2.0, "y": -0.5}, {"x": 1.0, "y": 1.0}, 2.0)
    >>> print(d)
    df = 2 dx - 0.5 dy
    >>> d(x=0.1, y=0.2)
    0.1
    """

    partials: dict[str, Any]
    point: dict[str, Any]
    function_value: Any

    def __call__(self, **changes: Any) -> Any:
        unknown = [n for n in changes if n not in self.partials]
        if unknown:
            raise ValueError(f"unknown variable(s) {unknown}; the variables are "
                             f"{list(self.partials)}")
        total_change: Any = 0.0
        for name, change in changes.items():
            change = _as_value(name, change)
            if shape_of(change) != shape_of(self.point[name]):
                raise ValueError(f"the change d{name} has shape {shape_of(change)}, but "
                                 f"{name} has shape {shape_of(self.point[name])}")
            total_change = total_change + _contract(self.partials[name], change,
                                                    len(shape_of(change)))
        return _plain(total_change)

    def __str__(self) -> str:
        fmt = _formatter(self.partials.values())
        parts = [(c, f"d{v}" if np.ndim(self.point[v]) == 0 else f"· d{v}")
                 for v, c in self.partials.items()]
        return "df = " + _signed_sum(parts, fmt)

    def __repr__(self) -> str:
        return f"<Differential {self}>"

    def _repr_latex_(self) -> str:
        fmt = _formatter(self.partials.values())
        parts = [(c, rf"\mathrm{{d}}{_latex_name(v)}") for v, c in self.partials.items()]
        return r"$\mathrm{d}f = " + _signed_sum(parts, fmt, latex=True) + "$"

    def to_dict(self) -> dict[str, Any]:
        """Plain floats and lists, ready for ``json.dumps``."""
        return {"partials": _jsonable(self.partials), "point": _jsonable(self.point),
                "function_value": _jsonable(self.function_value)}


@dataclass(frozen=True, eq=False)
class Explanation:
    """The chain rule df/dwrt = Σ_v ∂f/∂v · dv/dwrt at one point, term by term.

    ``value`` is the total derivative (the partial one when nothing is given);
    ``naive_value`` is ∂f/∂wrt with the dependents substituted afterwards, the classic
    mistake; ``missed_paths`` are the routes wrt -> dependent -> f that it ignores (the
    first few of them: ``missed_path_count`` says how many there are) and ``held`` the
    variables of f on those routes, which the naive partial holds fixed.

    >>> e = explain(lambda t, x: t * x, "x", given={"t": lambda x: x})(x=3)
    >>> e.value, e.naive_value, e.missed_paths
    (6.0, 3.0, [('x', 't', 'f')])
    >>> [(term.name, term.product) for term in e.terms]
    [('t', 3.0), ('x', 3.0)]
    """

    wrt: str
    point: dict[str, Any]  # the independent variables
    values: dict[str, Any]  # every variable, dependents computed
    given: dict[str, tuple[str, ...]]  # dependent -> the variables it is computed from
    function_value: Any
    value: Any
    terms: list[Term]
    naive_value: Any
    missed_paths: list[tuple[str, ...]] = field(default_factory=list)
    missed_path_count: int = 0
    held: tuple[str, ...] = ()

    @property
    def partial_value(self) -> Any:
        """∂f/∂wrt at the point: the naive value under its proper name."""
        return self.naive_value

    def __str__(self) -> str:
        return "\n".join(_explain_lines(self))

    def __repr__(self) -> str:
        return f"<Explanation {_d(self)} = {_formatter([self.value])(self.value)}>"

    def _repr_latex_(self) -> str:
        return _explain_latex(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain floats and lists, ready for ``json.dumps``."""
        return {
            "wrt": self.wrt, "point": _jsonable(self.point), "values": _jsonable(self.values),
            "given": {d: list(p) for d, p in self.given.items()},
            "function_value": _jsonable(self.function_value), "value": _jsonable(self.value),
            "naive_value": _jsonable(self.naive_value),
            "terms": [_jsonable(t._asdict()) for t in self.terms],
            "missed_paths": [list(p) for p in self.missed_paths],
            "missed_path_count": self.missed_path_count, "held": list(self.held),
        }


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, str):
        return x
    arr = np.asarray(x, dtype=float)
    return float(arr) if arr.ndim == 0 else arr.tolist()


# --- formatting ----------------------------------------------------------------------------

# Numbers in one line share their decimals: enough for this many significant digits in the
# largest, so columns of coefficients line up and small ones are not blown up.
_DIGITS = 4


def _formatter(values: Any) -> Callable[[Any], str]:
    scalars = [abs(float(v)) for v in values if np.ndim(v) == 0 and np.isfinite(v)]
    biggest = max(scalars, default=0.0)
    if biggest and not 1e-4 <= biggest < 1e6:
        return lambda x: _format_any(x, lambda s: f"{s:.{_DIGITS}g}")
    decimals = max(0, _DIGITS - 1 - math.floor(math.log10(biggest))) if biggest else 2
    return lambda x: _format_any(x, lambda s: _fixed(s, decimals))


def _fixed(x: float, decimals: int) -> str:
    text = f"{x:.{decimals}f}"
    if float(text) == 0 and x != 0:  # too small for the shared decimals: keep it visible
        return f"{x:.{_DIGITS}g}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "") else text


def _format_any(x: Any, scalar: Callable[[float], str]) -> str:
    if np.ndim(x) == 0:
        return scalar(float(x))
    text = np.array2string(np.asarray(x), separator=", ", max_line_width=10**6,
                           formatter={"float_kind": lambda s: f"{s:.{_DIGITS}g}"})
    return " ".join(text.split())  # a Jacobian on one line, so it fits in a sentence


def _signed_sum(parts: list[tuple[Any, str]], fmt: Callable[[Any], str],
                latex: bool = False) -> str:
    """``a dx + b dy - c dz`` with the signs of scalar coefficients pulled out."""
    gap = r"\," if latex else " "
    out = []
    for k, (coef, symbol) in enumerate(parts):
        negative = np.ndim(coef) == 0 and coef < 0
        text = fmt(-coef if negative else coef) + gap + symbol
        sign = "-" if negative else "+"
        out.append((f"-{text}" if negative else text) if k == 0 else f" {sign} {text}")
    return "".join(out)


def _d(e: Explanation) -> str:
    return f"df/d{e.wrt}" if e.given else f"∂f/∂{e.wrt}"


def _explain_lines(e: Explanation) -> list[str]:
    fmt = _formatter([e.value, e.naive_value] + [x for t in e.terms for x in t[1:]])
    show = _formatter(e.values.values())
    at = ", ".join(f"{k} = {show(v)}" for k, v in e.point.items())
    lines = [f"{'Total' if e.given else 'Partial'} derivative {_d(e)} at {at}"]
    if e.given:
        lines.append("where " + ", ".join(f"{d} = {d}({', '.join(p)}) = {show(e.values[d])}"
                                          for d, p in e.given.items()))
    lines.append(f"f = {_formatter([e.function_value])(e.function_value)}")
    lines.append(f"Chain rule: df/d{e.wrt} = Σ_v ∂f/∂v · dv/d{e.wrt}, one term per variable:")
    for t in e.terms:
        lines.append(f"  {t.name}:  ∂f/∂{t.name} · d{t.name}/d{e.wrt} = {fmt(t.partial)} · "
                     f"{fmt(t.derivative)} = {fmt(t.product)}")
    products = " + ".join(fmt(t.product) for t in e.terms)
    lines.append(f"Sum:  df/d{e.wrt} = {products} = {fmt(e.value)}")
    return lines + _naive_lines(e, fmt)


def _naive_lines(e: Explanation, fmt: Callable[[Any], str]) -> list[str]:
    if not e.given:
        return ["Nothing depends on anything else, so every other variable stays fixed and "
                f"the total derivative is the partial one: ∂f/∂{e.wrt} = {fmt(e.value)}."]
    subs = ", ".join(f"{d} = {d}({', '.join(p)})" for d, p in e.given.items())
    lines = [f"Naive: take ∂f/∂{e.wrt} first, then substitute {subs}: "
             f"∂f/∂{e.wrt} = {fmt(e.naive_value)}"]
    if not e.missed_paths:
        return lines + [f"No given variable depends on {e.wrt}, so here both agree."]
    gap = np.asarray(e.value) - np.asarray(e.naive_value)
    return lines + [f"It differs by {fmt(gap)}: holding {', '.join(e.held)} fixed misses "
                    + _paths_text(e.missed_paths, e.missed_path_count) + "."]


def _paths_text(shown: list[tuple[str, ...]], count: int) -> str:
    """``the paths a -> b, a -> c`` or, when only some are listed, how many and which.

    >>> _paths_text([("x", "t", "f")], 1)
    'the path x -> t -> f'
    >>> _paths_text([("x", "t", "f"), ("x", "u", "f")], 7)
    '7 paths, among them x -> t -> f, x -> u -> f'
    """
    listed = ", ".join(" -> ".join(p) for p in shown)
    if count > len(shown):
        return f"{count} paths, among them {listed}"
    return f"the path{'s' if count > 1 else ''} {listed}"


_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "kappa",
          "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "phi", "chi", "psi",
          "omega"}


def _latex_name(name: str) -> str:
    if name in _GREEK:
        return "\\" + name
    escaped = name.replace("_", r"\_")
    return escaped if len(name) == 1 else rf"\mathit{{{escaped}}}"


def _explain_latex(e: Explanation) -> str:
    fmt = _formatter([e.value, e.naive_value] + [x for t in e.terms for x in t[1:]])
    w = _latex_name(e.wrt)
    d_or_partial = "d" if e.given else r"\partial "
    symbols = " + ".join(rf"\frac{{\partial f}}{{\partial {_latex_name(t.name)}}}"
                         rf"\frac{{d{_latex_name(t.name)}}}{{d{w}}}" for t in e.terms)
    numbers = " + ".join(rf"{fmt(t.partial)} \cdot {fmt(t.derivative)}" for t in e.terms)
    rows = [rf"\frac{{{d_or_partial}f}}{{{d_or_partial}{w}}} &= {symbols}",
            rf"&= {numbers}", rf"&= {fmt(e.value)}"]
    if e.given:
        rows.append(rf"\text{{naive: }} \frac{{\partial f}}{{\partial {w}}} "
                    rf"&= {fmt(e.naive_value)}")
    return "$$\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}$$"
