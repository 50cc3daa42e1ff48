"""Tests for partial, total and differential derivatives of functions of named variables."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import glassgrad as gg
from glassgrad._expr import parse_expression
from glassgrad.calculus import (
    Differential,
    Explanation,
    Term,
    differential,
    explain,
    partial,
    total,
)

PI = np.pi


def f(t, x, y):
    """The ellipsoid volume of the seed article."""
    return 4 * np.pi / 3 * t * x * y


T_IS_X = {"t": lambda x: x}


# --- the seed's numbers ----------------------------------------------------------------------


def test_partial_holds_the_other_variables_fixed() -> None:
    assert partial(f, "x")(t=1, x=2, y=3) == pytest.approx(4 * PI / 3 * 1 * 3, rel=1e-15)
    assert partial(f, "t")(t=1, x=2, y=3) == pytest.approx(4 * PI / 3 * 2 * 3)
    assert partial(f, "y")(t=1, x=2, y=3) == pytest.approx(4 * PI / 3 * 1 * 2)


def test_total_with_t_equal_to_x_doubles_the_partial() -> None:
    df_dx = total(f, "x", given=T_IS_X)(x=2, y=3)
    assert df_dx == pytest.approx(8 * PI / 3 * 2 * 3)
    naive = partial(f, "x")(t=2, x=2, y=3)  # substitute t = x after differentiating
    assert naive == pytest.approx(df_dx / 2)


def test_substituting_before_differentiating_agrees_with_the_total() -> None:
    def f2(x, y):
        return 4 * np.pi / 3 * x**2 * y

    assert partial(f2, "x")(x=2, y=3) == pytest.approx(total(f, "x", given=T_IS_X)(x=2, y=3))


def test_the_differential_of_the_ellipsoid() -> None:
    d = differential(f)(t=1, x=2, y=3)
    assert isinstance(d, Differential)
    assert str(d) == "df = 25.13 dt + 12.57 dx + 8.38 dy"
    assert d.partials == pytest.approx({"t": 8 * PI, "x": 4 * PI, "y": 8 * PI / 3})
    assert all(type(v) is float for v in d.partials.values())
    assert d.point == {"t": 1.0, "x": 2.0, "y": 3.0}
    assert d.function_value == pytest.approx(8 * PI)
    dp = {"t": 1e-3, "x": -2e-3, "y": 5e-4}
    assert d(**dp) == pytest.approx(sum(d.partials[k] * v for k, v in dp.items()))
    assert d(x=0.01) == pytest.approx(4 * PI * 0.01)  # a variable left out does not change
    assert d() == 0.0


def test_the_differential_predicts_small_changes() -> None:
    d = differential(f)(t=1.0, x=2.0, y=3.0)
    dp = {"t": 1e-4, "x": 2e-4, "y": -1e-4}
    change = f(1.0 + dp["t"], 2.0 + dp["x"], 3.0 + dp["y"]) - f(1.0, 2.0, 3.0)
    assert d(**dp) == pytest.approx(change, rel=1e-3)


def test_differential_strings() -> None:
    d = differential(lambda x, y: 2 * x - y / 2)(x=1.0, y=1.0)
    assert str(d) == "df = 2 dx - 0.5 dy"
    assert str(differential(lambda x, y: -3 * x + 0 * y)(x=1, y=1)) == "df = -3 dx + 0 dy"
    assert str(differential(lambda x: 1.23456e-3 * x)(x=1)) == "df = 0.001235 dx"
    tiny = differential(lambda x, y: 100 * x + 1e-5 * y)(x=1, y=1)
    assert str(tiny) == "df = 100 dx + 1e-05 dy"  # never rounded away to 0
    assert d._repr_latex_() == r"$\mathrm{d}f = 2\,\mathrm{d}x - 0.5\,\mathrm{d}y$"
    assert repr(d) == "<Differential df = 2 dx - 0.5 dy>"


def test_ints_are_accepted_and_become_floats() -> None:
    assert partial(lambda x: x**3, "x")(x=2) == 12.0
    assert type(partial(lambda x: x**3, "x")(x=2)) is float
    assert partial(lambda x: np.sum(x**2), "x")(x=np.array([1, 2])).dtype == np.float64


def test_positional_values_and_defaults() -> None:
    assert partial(f, "x")(1, 2, 3) == pytest.approx(4 * PI)

    def g(x, a=2.0, *, scale=10.0):
        return scale * a * x**2

    assert partial(g, "x")(x=1.0) == pytest.approx(40.0)
    assert partial(g, "a")(x=1.0, a=3.0) == pytest.approx(10.0)
    assert list(differential(g)(x=1.0).partials) == ["x", "a"]  # keyword-only: a constant


# --- chains of dependencies ------------------------------------------------------------------


def _chain(x, y):
    t = x**2
    u = 3 * t + x
    return 4 * np.pi / 3 * t * x * y + u * y


def test_chained_dependencies_in_either_order() -> None:
    def h(t, u, x, y):
        return 4 * np.pi / 3 * t * x * y + u * y

    deps = {"t": lambda x: x**2, "u": lambda t, x: 3 * t + x}
    reverse = dict(reversed(list(deps.items())))
    expected = gg.grad(_chain)(2.0, 3.0)
    for given_ in (deps, reverse):
        assert total(h, "x", given=given_)(x=2, y=3) == pytest.approx(expected)
        assert total(h, "y", given=given_)(x=2, y=3) == pytest.approx(_chain(2.0, 1.0))


def test_intermediate_variables_and_new_independents() -> None:
    # x = r cos θ, y = r sin θ: df/dr of f = x y is 2 r sin θ cos θ
    polar = {"x": lambda r, th: r * np.cos(th), "y": lambda r, th: r * np.sin(th)}
    assert total(lambda x, y: x * y, "r", polar)(r=2, th=0.5) == pytest.approx(
        2 * 2 * np.sin(0.5) * np.cos(0.5))
    # u is used only by the function for t: t = u², u = x + 1
    steps = {"t": lambda u: u**2, "u": lambda x: x + 1}
    assert total(f, "x", steps)(x=2, y=3) == pytest.approx(
        gg.grad(lambda x: f((x + 1) ** 2, x, 3.0))(2.0))


def test_a_cycle_raises_and_names_it() -> None:
    with pytest.raises(ValueError, match="cycle: (t -> u -> t|u -> t -> u)"):
        total(lambda t, u, x: t * u * x, "x", {"t": lambda u: u, "u": lambda t: t})
    with pytest.raises(ValueError, match="cycle: t -> t"):
        total(f, "x", {"t": lambda t: 2 * t})


def test_given_parameters_must_be_known() -> None:
    with pytest.raises(ValueError, match=r"missing value\(s\) for \['s'\]"):
        total(f, "x", {"t": lambda s: s})(x=2, y=3)
    with pytest.raises(ValueError, match="z"):
        total(f, "x", {"z": lambda x: x})
    with pytest.raises(TypeError, match="given"):
        total(f, "x", {"t": 2.0})


def test_wrt_must_be_an_independent_variable() -> None:
    with pytest.raises(ValueError, match="'t' is given as a function"):
        total(f, "t", T_IS_X)
    with pytest.raises(ValueError, match="unknown variable 'z'"):
        total(f, "z", T_IS_X)


def test_total_without_dependencies_is_the_partial() -> None:
    assert total(f, "x", {})(t=1, x=2, y=3) == partial(f, "x")(t=1, x=2, y=3)
    assert total(f, "x")(t=1, x=2, y=3) == partial(f, "x")(t=1, x=2, y=3)


# --- errors ----------------------------------------------------------------------------------


def test_point_errors_name_the_variables() -> None:
    df_dx = partial(f, "x")
    with pytest.raises(ValueError, match=r"unknown variable 'z'"):
        partial(f, "z")
    with pytest.raises(ValueError, match=r"missing value\(s\) for \['y'\]"):
        df_dx(t=1, x=2)
    with pytest.raises(ValueError, match=r"unknown variable\(s\) \['q'\]"):
        df_dx(t=1, x=2, y=3, q=4)
    with pytest.raises(ValueError, match=r"unknown variable\(s\) \['t'\]"):
        total(f, "x", T_IS_X)(t=2, x=2, y=3)  # t is computed, not given
    with pytest.raises(ValueError, match=r"\['x'\] given both"):
        df_dx(1, 2, 3, x=2)
    with pytest.raises(ValueError, match="positional values"):
        df_dx(1, 2, 3, 4)
    with pytest.raises(TypeError, match="real number"):
        df_dx(t=1, x="2", y=3)
    with pytest.raises(ValueError, match=r"unknown variable\(s\) \['q'\]"):
        differential(f)(t=1, x=2, y=3)(q=0.1)
    with pytest.raises(ValueError, match="shape"):
        differential(lambda x: np.sum(x))(x=np.ones(2))(x=np.ones(3))


def test_functions_without_named_variables_are_refused() -> None:
    with pytest.raises(ValueError, match="no positional parameters"):
        partial(lambda *args: 1.0, "x")
    with pytest.raises(ValueError, match="keyword-only"):
        partial(lambda x, *, k: x * k, "x")


# --- explanations ----------------------------------------------------------------------------


def test_explain_the_factor_of_two() -> None:
    e = explain(f, "x", given=T_IS_X)(x=2, y=3)
    assert isinstance(e, Explanation)
    assert e.value == pytest.approx(8 * PI / 3 * 2 * 3)
    assert e.naive_value == pytest.approx(e.value / 2)
    assert e.partial_value == e.naive_value
    assert e.function_value == pytest.approx(f(2.0, 2.0, 3.0))
    assert [t.name for t in e.terms] == ["t", "x", "y"]
    assert all(isinstance(t, Term) for t in e.terms)
    assert e.terms[0] == pytest.approx(("t", 8 * PI, 1.0, 8 * PI))
    assert e.terms[2].derivative == 0.0 and e.terms[2].product == 0.0
    assert sum(t.product for t in e.terms) == pytest.approx(e.value)
    assert e.missed_paths == [("x", "t", "f")]
    assert e.point == {"x": 2.0, "y": 3.0} and e.values["t"] == 2.0


def test_explain_text_walks_through_the_chain_rule() -> None:
    text = str(explain(f, "x", given=T_IS_X)(x=2, y=3))
    for line in ["Total derivative df/dx at x = 2, y = 3", "where t = t(x) = 2",
                 "t:  ∂f/∂t · dt/dx = 25.13 · 1 = 25.13",
                 "x:  ∂f/∂x · dx/dx = 25.13 · 1 = 25.13",
                 "y:  ∂f/∂y · dy/dx = 16.76 · 0 = 0",
                 "Sum:  df/dx = 25.13 + 25.13 + 0 = 50.27",
                 "∂f/∂x = 25.13",
                 "holding t fixed misses the path x -> t -> f"]:
        assert line in text


def test_explain_without_given_is_the_partial() -> None:
    e = explain(f, "x")(t=1, x=2, y=3)
    assert e.value == e.naive_value == pytest.approx(4 * PI)
    assert [t.derivative for t in e.terms] == [0.0, 1.0, 0.0]
    assert e.missed_paths == [] and "∂f/∂x = 12.57" in str(e)


def test_explain_chained_and_unrelated_dependencies() -> None:
    deps = {"t": lambda u: u**2, "u": lambda x: x + 1}
    e = explain(lambda t, u, x, y: t * x * y + u, "x", deps)(x=2, y=3)
    assert sorted(e.missed_paths) == [("x", "u", "f"), ("x", "u", "t", "f")]
    assert sum(t.product for t in e.terms) == pytest.approx(e.value)
    assert "holding u, t fixed misses the paths x -> u -> f, x -> u -> t -> f" in str(e)
    unrelated = explain(f, "x", {"t": lambda y: 2 * y})(x=2, y=3)
    assert unrelated.value == unrelated.naive_value and "both agree" in str(unrelated)


def test_explain_latex_and_json() -> None:
    e = explain(f, "x", given=T_IS_X)(x=2, y=3)
    latex = e._repr_latex_()
    assert latex.startswith("$$\\begin{aligned}") and latex.endswith("\\end{aligned}$$")
    assert r"\frac{\partial f}{\partial t}\frac{dt}{dx}" in latex and "50.27" in latex
    data = json.loads(json.dumps(e.to_dict()))
    assert data["value"] == pytest.approx(16 * PI) and data["given"] == {"t": ["x"]}
    assert data["terms"][0] == {"name": "t", "partial": pytest.approx(8 * PI),
                                "derivative": 1.0, "product": pytest.approx(8 * PI)}
    assert json.loads(json.dumps(differential(f)(t=1, x=2, y=3).to_dict()))["point"]["y"] == 3


# --- arrays ----------------------------------------------------------------------------------


X = np.array([1.0, 2.0, -0.5])
Y = np.array([3.0, 4.0, 0.25])


def _g(x, y):
    return np.sum(x**2 * y)


def test_partials_of_a_scalar_function_of_arrays_are_gradients() -> None:
    np.testing.assert_allclose(partial(_g, "x")(x=X, y=Y), 2 * X * Y)
    np.testing.assert_allclose(partial(_g, "y")(x=X, y=Y), X**2)


def test_total_and_explain_with_arrays() -> None:
    given_ = {"y": lambda x: np.sin(x)}
    expected = gg.grad(lambda x: _g(x, np.sin(x)))(X)
    np.testing.assert_allclose(total(_g, "x", given_)(x=X), expected)
    e = explain(_g, "x", given_)(x=X)
    np.testing.assert_allclose(e.terms[1].derivative, np.diag(np.cos(X)))  # dy/dx: Jacobian
    np.testing.assert_allclose(e.terms[0].product + e.terms[1].product, e.value)
    np.testing.assert_allclose(e.naive_value, 2 * X * np.sin(X))
    assert "[[" in str(e)
    json.dumps(e.to_dict())


def test_array_valued_functions_follow_the_jacobian_layout() -> None:
    def h(a, x):
        return a * x**2

    np.testing.assert_allclose(partial(h, "a")(a=2.0, x=X), X**2)  # out.shape
    np.testing.assert_allclose(partial(h, "x")(a=2.0, x=X), np.diag(4 * X))  # out + in
    d = differential(h)(a=2.0, x=X)
    dx = np.array([1e-3, 0.0, 2e-3])
    np.testing.assert_allclose(d(a=0.1, x=dx), 0.1 * X**2 + 4 * X * dx)
    assert str(d).startswith("df = [1, 4, 0.25] da + [[")


def test_a_scalar_dependent_of_an_array_in_an_array_valued_function() -> None:
    e = explain(lambda x, s: x * s, "x", {"s": lambda x: np.sum(x)})(x=X)
    expected = np.diag(np.full(3, X.sum())) + np.outer(X, np.ones(3))
    np.testing.assert_allclose(e.value, expected)
    np.testing.assert_allclose(e.terms[0].product + e.terms[1].product, expected)
    np.testing.assert_allclose(e.terms[1].derivative, np.ones(3))  # ds/dx, a gradient


def test_the_differential_of_array_variables() -> None:
    d = differential(_g)(x=X, y=Y)
    dx, dy = 1e-6 * np.array([1.0, -2.0, 3.0]), 1e-6 * np.array([0.5, 0.5, -1.0])
    assert d(x=dx, y=dy) == pytest.approx(_g(X + dx, Y + dy) - _g(X, Y), rel=1e-4)
    assert str(d) == "df = [6, 16, -0.25] · dx + [1, 4, 0.25] · dy"


# --- composition with the engine -------------------------------------------------------------


def test_derivatives_compose_and_nest() -> None:
    assert partial(partial(f, "x"), "y")(t=1, x=2, y=3) == pytest.approx(4 * PI / 3)
    assert gg.grad(lambda x: partial(f, "y")(t=1.0, x=x, y=3.0))(2.0) == pytest.approx(
        4 * PI / 3)
    d2 = gg.grad(lambda x: total(f, "x", T_IS_X)(x=x, y=3.0))(2.0)
    assert d2 == pytest.approx(8 * PI / 3 * 3)
    assert total(partial(f, "y"), "x", T_IS_X)(x=2, y=3) == pytest.approx(8 * PI / 3 * 2)


# --- properties ------------------------------------------------------------------------------

coef = st.floats(-2, 2, allow_nan=False)
power = st.integers(0, 3)
value = st.floats(-1.5, 1.5, allow_nan=False)
monomial = st.tuples(coef, power, power, power)


def _poly(terms, wobble):
    """Σ c t^a x^b y^c + wobble · sin(t x): polynomial-ish in three variables."""

    def fun(t, x, y):
        out = wobble * np.sin(t * x)
        for c, a, b, k in terms:
            out = out + c * t**a * x**b * y**k
        return out

    return fun


@settings(max_examples=60, deadline=None)
@given(st.lists(monomial, min_size=1, max_size=4), coef,
       st.tuples(coef, coef, coef), value, value)
def test_total_is_the_derivative_of_the_substituted_function(terms, wobble, p, x, y) -> None:
    fun = _poly(terms, wobble)

    def t_of(x):
        return p[0] + p[1] * x + p[2] * x**2

    def substituted(x, y):
        return fun(t_of(x), x, y)

    result = total(fun, "x", given={"t": t_of})(x=x, y=y)
    assert result == pytest.approx(gg.grad(substituted)(x, y), rel=1e-9, abs=1e-9)
    h = 1e-6
    numeric = (substituted(x + h, y) - substituted(x - h, y)) / (2 * h)
    assert result == pytest.approx(numeric, rel=1e-5, abs=1e-5)
    e = explain(fun, "x", given={"t": t_of})(x=x, y=y)
    assert math.fsum(t.product for t in e.terms) == pytest.approx(result, rel=1e-9, abs=1e-9)
    naive = partial(fun, "x")(t=t_of(x), x=x, y=y)
    assert e.naive_value == pytest.approx(naive, rel=1e-12, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(monomial, min_size=1, max_size=4), coef, value, value, value)
def test_partials_match_finite_differences(terms, wobble, t, x, y) -> None:
    fun = _poly(terms, wobble)
    d = differential(fun)(t=t, x=x, y=y)
    h = 1e-6
    point = {"t": t, "x": x, "y": y}
    for name in point:
        up, down = dict(point), dict(point)
        up[name] += h
        down[name] -= h
        numeric = (fun(**up) - fun(**down)) / (2 * h)
        assert d.partials[name] == pytest.approx(numeric, rel=1e-5, abs=1e-5)
        assert partial(fun, name)(**point) == d.partials[name]


# --- chained dependencies: the DAG, never its paths ------------------------------------------


def _function(text: str):
    """A function whose parameters are the variables of ``text`` (parsed, never eval'd)."""
    return parse_expression(text).as_function()


def _diamonds(levels: int) -> dict:
    """a_i = b_i + c_i with b_i = c_i = a_(i+1), and a_levels = x: 2**levels paths x -> a_0."""
    given = {f"a{levels}": lambda x: x}
    for i in range(levels):
        given[f"a{i}"] = _function(f"b{i} + c{i}")
        given[f"b{i}"] = _function(f"a{i + 1}")
        given[f"c{i}"] = _function(f"a{i + 1}")
    return given


def test_exponentially_many_paths_are_counted_not_listed() -> None:
    import tracemalloc

    tracemalloc.start()
    e = explain(lambda a0: a0, "x", _diamonds(25))(x=2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert e.value == 2.0 ** 25 and e.naive_value == 0.0
    assert e.missed_path_count == 2 ** 25 and len(e.missed_paths) == 5
    assert e.missed_paths[0] == ("x", "a25", "b24", "a24", "b23", "a23") + e.missed_paths[0][6:]
    assert e.held == ("a0",)
    assert "holding a0 fixed misses 33554432 paths, among them x -> a25 -> b24" in str(e)
    assert json.loads(json.dumps(e.to_dict()))["missed_path_count"] == 2 ** 25
    assert peak < 50e6  # enumerating the paths took gigabytes


def test_long_chains_need_no_recursion() -> None:
    chain = {f"a{i}": _function(f"1.001 * a{i + 1}") for i in range(1500)}
    chain["a1500"] = lambda x: x
    assert total(lambda a0: a0, "x", chain)(x=1.0) == pytest.approx(1.001 ** 1500)
    e = explain(lambda a0, a1: a0 + a1, "x", chain)(x=1.0)
    assert e.missed_path_count == 2 and e.held == ("a1", "a0")
    assert e.terms[0].derivative == pytest.approx(1.001 ** 1500)
