"""Tests for glassgrad.symbolic: derivatives as SymPy expressions, read off the graph."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import glassgrad as gg
from glassgrad._expr import parse_expression
from glassgrad._formula_limits import FormulaTooLarge, Limits
from glassgrad._primitive import PRIMITIVES
from glassgrad.calculus import total
from glassgrad.symbolic import derive, formula, formula_text, render, supported_primitives

sp = pytest.importorskip("sympy")

t, x, y = sp.symbols("t x y")


def volume(t, x, y):
    return 4 * np.pi / 3 * t * x * y


def test_seed_partial_and_total():
    assert sp.simplify(formula(volume, "x") - 4 * sp.pi * t * y / 3) == 0
    assert sp.simplify(formula(volume, "x", given={"t": lambda x: x}) - 8 * sp.pi * x * y / 3) == 0
    assert str(formula(volume, "x")) == "4*pi*t*y/3"  # 4.18879... is recognised as 4*pi/3


def test_derivation_parts_for_the_seed():
    d = derive(volume, "x", given={"t": lambda x: x})
    assert str(d.function) == "4*pi*t*x*y/3"
    assert (str(d.partial), str(d.total), str(d.naive)) == (
        "4*pi*t*y/3", "8*pi*x*y/3", "4*pi*x*y/3")
    assert [(m.name, str(m.derivative)) for m in d.terms] == [("t", "1"), ("x", "1"),
                                                              ("y", "0")]
    assert d.substitutions == {"t": x}


# --- the symbolic rule table agrees with the engine, primitive by primitive ------------------

# name -> (arity, (low, high) per argument, params); points stay off kinks and poles.
_AWAY = "away from zero"
CASES = {
    "neg": (1, [(-2, 2)], {}), "exp": (1, [(-2, 2)], {}), "log": (1, [(0.2, 3)], {}),
    "log1p": (1, [(-0.7, 3)], {}), "expm1": (1, [(-2, 2)], {}), "sqrt": (1, [(0.2, 3)], {}),
    "sin": (1, [(-2, 2)], {}), "cos": (1, [(-2, 2)], {}), "tan": (1, [(-1.2, 1.2)], {}),
    "arctan": (1, [(-3, 3)], {}), "tanh": (1, [(-2, 2)], {}),
    "sigmoid": (1, [(-3, 3)], {"a": 2.5}), "relu": (1, [_AWAY], {}), "abs": (1, [_AWAY], {}),
    "add": (2, [(-2, 2), (-2, 2)], {}), "sub": (2, [(-2, 2), (-2, 2)], {}),
    "mul": (2, [(-2, 2), (-2, 2)], {}), "div": (2, [(-2, 2), _AWAY], {}),
    "pow": (2, [(0.3, 2), (-2, 2)], {}), "maximum": (2, [(-2, 2), (-2, 2)], {}),
    "minimum": (2, [(-2, 2), (-2, 2)], {}), "clip": (1, [(-2, 2)], {"bounds": (-1.0, 1.0)}),
    "sum": (1, [(-2, 2)], {}), "mean": (1, [(-2, 2)], {}), "max": (1, [(-2, 2)], {}),
    "min": (1, [(-2, 2)], {}), "reshape": (1, [(-2, 2)], {"shape": ()}),
    "transpose": (1, [(-2, 2)], {}), "broadcast_to": (1, [(-2, 2)], {"shape": ()}),
    "sum_to": (1, [(-2, 2)], {"shape": ()}), "astype": (1, [(-2, 2)], {"dtype": np.float64}),
    "getitem": (1, [(-2, 2)], {"index": ()}),
    "arcsin": (1, [(-0.9, 0.9)], {}), "arccos": (1, [(-0.9, 0.9)], {}),
    "arcsinh": (1, [(-2, 2)], {}), "arccosh": (1, [(1.2, 3)], {}),
    "arctanh": (1, [(-0.9, 0.9)], {}), "sinh": (1, [(-2, 2)], {}), "cosh": (1, [(-2, 2)], {}),
    "exp2": (1, [(-2, 2)], {}), "log2": (1, [(0.2, 3)], {}), "log10": (1, [(0.2, 3)], {}),
    "fabs": (1, [_AWAY], {}), "sinc": (1, [_AWAY], {}), "deg2rad": (1, [(-90, 90)], {}),
    "rad2deg": (1, [(-2, 2)], {}), "fmax": (2, [(-2, 2), (-2, 2)], {}),
    "fmin": (2, [(-2, 2), (-2, 2)], {}), "arctan2": (2, [_AWAY, _AWAY], {}),
    "hypot": (2, [_AWAY, _AWAY], {}), "logaddexp": (2, [(-2, 2), (-2, 2)], {}),
    "logaddexp2": (2, [(-2, 2), (-2, 2)], {}), "prod": (1, [(-2, 2)], {}),
    "sign": (1, [_AWAY], {}), "floor": (1, [(0.2, 0.8)], {}), "ceil": (1, [(0.2, 0.8)], {}),
    "remainder": (2, [(2.2, 2.8), (1.1, 2.0)], {}),
}


def _sample(rng, domain):
    if domain == _AWAY:
        return float(rng.uniform(0.3, 2.0) * rng.choice([-1.0, 1.0]))
    return float(rng.uniform(*domain))


def _primitive_function(name, arity, params):
    prim = PRIMITIVES[name]
    if "bounds" in params:  # extra arguments that are not differentiated
        return lambda x: prim(x, *params["bounds"])
    if arity == 1:
        return lambda x: prim(x, **params)
    return lambda x, y: prim(x, y, **params)


def test_every_symbolic_rule_is_tested():
    assert set(CASES) == supported_primitives()
    assert supported_primitives() <= set(PRIMITIVES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_symbolic_rule_agrees_with_the_engine(name):
    arity, domains, params = CASES[name]
    fun = _primitive_function(name, arity, params)
    names = ["x", "y"][:arity]
    derivations = [derive(fun, v) for v in names]
    rng = np.random.default_rng(sum(map(ord, name)))
    for _ in range(3):
        point = [_sample(rng, d) for d in domains]
        env = {sp.Symbol(v): sp.Float(p) for v, p in zip(names, point, strict=True)}
        value = complex(derivations[0].function.xreplace(env).evalf())
        want = float(fun(*map(np.float64, point)))
        assert value == pytest.approx(want, rel=1e-10, abs=1e-12)
        for i, d in enumerate(derivations):
            got = complex(d.partial.xreplace(env).evalf())
            want = float(gg.grad(fun, argnums=i)(*point))
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12), (name, i, point)


def test_kink_conventions_match_the_engine():
    for fun, at in [(lambda x: np.maximum(x, 0.0), 0.0), (lambda x: np.abs(x), 0.0),
                    (lambda x: np.maximum(x, 1.0), 1.0), (lambda x: np.clip(x, -1, 1), 1.0)]:
        got = formula(fun, "x").xreplace({x: at})
        assert float(got) == float(gg.grad(fun)(at))


# --- compositions, dependencies and constants ----------------------------------------------


def test_chain_of_functions_agrees_with_grad():
    def h(x, y):
        return np.sin(np.exp(x) * y) ** 2 / (1 + y ** 2) + np.sqrt(x * x + 1.0)

    dx, dy = formula(h, "x"), formula(h, "y")
    for px, py in [(0.3, -1.2), (1.1, 0.4)]:
        gx, gy = gg.grad(h, argnums=(0, 1))(px, py)
        assert float(dx.subs({x: px, y: py})) == pytest.approx(gx, rel=1e-10)
        assert float(dy.subs({x: px, y: py})) == pytest.approx(gy, rel=1e-10)


def test_chained_dependencies_in_any_order():
    d = derive(lambda t, x: t * x, "x", given={"t": lambda u: 2 * u, "u": lambda x: x ** 2})
    assert d.total == 6 * x ** 2 and d.naive == 2 * x ** 2
    assert d.substitutions == {"u": x ** 2, "t": 2 * x ** 2}
    # wrt reached only through a dependency
    assert formula(lambda t, y: t * y, "x", given={"t": lambda x: 3.0 * x}) == 3 * y


def test_total_agrees_with_gg_total():
    def g(t, x, y):
        return np.exp(t) * x + y * np.sin(t)

    given = {"t": lambda x, y: x * y}
    expr = formula(g, "x", given=given)
    want = total(g, "x", given)(x=0.7, y=-0.4)
    assert float(expr.subs({x: 0.7, y: -0.4})) == pytest.approx(want, rel=1e-10)


def test_bad_variables_and_cycles():
    with pytest.raises(ValueError, match="unknown variable 'z'"):
        formula(volume, "z")
    with pytest.raises(ValueError, match="dependent variable"):
        formula(volume, "t", given={"t": lambda x: x})
    with pytest.raises(ValueError, match="cycle: t -> u -> t"):
        formula(lambda t, x: t * x, "x", given={"t": lambda u: u, "u": lambda t: t})
    with pytest.raises(ValueError, match="named scalar parameters"):
        formula(lambda *xs: xs[0], "x")


def test_unsupported_primitives_and_arrays_are_named():
    with pytest.raises(NotImplementedError, match="'where'"):
        formula(lambda x: np.where(x > 0, x, 0.0), "x")
    with pytest.raises(NotImplementedError, match="'mul'.*shape \\(3,\\)"):
        formula(lambda x: np.sum(x * np.ones(3)), "x")
    with pytest.raises(NotImplementedError, match="scalar output"):
        formula(lambda x: x, "x", at={"x": np.ones(2)})


def _times(c):
    return lambda x: c * x * x / 2


def test_constants_in_closed_form_only_when_exact():
    cases = [(0.1, "x/10"), (np.sqrt(2.0), "sqrt(2)*x"), (np.e, "E*x"),
             (0.123456789, "0.123456789*x"), (12345.678, "12345.678*x")]
    for c, text in cases:
        assert str(formula(_times(c), "x")) == text
    c32 = np.float32(4 * np.pi / 3)
    assert str(formula(lambda x: c32 * x, "x", at={"x": np.float32(1.0)})) == "4*pi/3"


def test_control_flow_branches_at_the_sample_point():
    def piecewise(x):
        return x if x > 1 else x ** 2

    assert formula(piecewise, "x") == 2 * x  # traced at the default point 0.6
    assert formula(piecewise, "x", at={"x": 2.0}) == 1


def test_text_styles():
    assert formula_text(volume, "x") == "4*pi*t*y/3"
    assert formula_text(volume, "x", style="latex") == r"\frac{4 \pi t y}{3}"
    assert "π" in formula_text(volume, "x", style="unicode")
    with pytest.raises(ValueError, match="style must be one of"):
        render(x, "html")


def test_missing_sympy_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sympy", None)
    with pytest.raises(ImportError, match=r'pip install "glassgrad\[symbolic\]"'):
        formula(volume, "x")


def test_formulas_of_derivative_functions():
    # the traced graph of a gradient is just more primitives, so higher orders come free
    assert formula(lambda x: gg.grad(np.sin)(x), "x") == -sp.sin(x)
    assert formula(lambda x: gg.grad(gg.grad(lambda z: z ** 3))(x), "x") == 6


# --- limits: every formula is bounded, or refused with a reason -------------------------------


def test_high_powers_of_sums_are_shown_unsimplified():
    d = derive(lambda x: (x + 1) ** 1000, "x")
    assert d.total == 1000 * (x + 1) ** 999
    assert d.notes and "power of degree 999 of a sum" in d.notes[0]


def test_deep_nesting_is_shown_as_built():
    def nested(x):
        for _ in range(30):
            x = np.sin(x)
        return x

    d = derive(nested, "x")
    assert "too large" in d.notes[0] and str(d.total).startswith("cos(x)*cos(sin(x))")


def test_formulas_past_the_limits_are_refused_with_the_reason():
    with pytest.raises(FormulaTooLarge, match="power of degree 123456"):
        derive(lambda x: (x + 1) ** 123456, "x")
    with pytest.raises(FormulaTooLarge, match="degree 1000000"):  # before SymPy builds 9**10**6
        derive(lambda x: ((9 * x) ** 1000) ** 1000, "x")
    with pytest.raises(FormulaTooLarge, match="more than 300 digits"):
        derive(lambda x: (9 * x) ** 9000, "x")
    with pytest.raises(FormulaTooLarge, match="more than 5 symbols"):
        derive(lambda x, y: np.sin(x) * np.cos(y) + x * y, "x", limits=Limits(max_size=5))
    with pytest.raises(NotImplementedError, match="operations replayed"):
        derive(volume, "x", limits=Limits(max_nodes=5))


def test_simplifying_stops_at_its_time_budget():
    d = derive(lambda x: np.sin(x) ** 2 + np.cos(x) ** 2, "x",
               limits=Limits(simplify_seconds=0))
    assert d.notes == ("formulas shown as built, not simplified: simplifying took longer "
                       "than 0 s",)
    assert sp.simplify(d.total) == 0


def test_chained_dependencies_follow_the_dag():
    given = {"a12": lambda x: x}
    for i in range(12):  # 2**12 paths from x to a0, 37 edges
        given[f"a{i}"] = parse_expression(f"b{i} + c{i}").as_function()
        given[f"b{i}"] = parse_expression(f"a{i + 1}").as_function()
        given[f"c{i}"] = parse_expression(f"a{i + 1}").as_function()
    d = derive(lambda a0, x: a0 * x, "x", given=given)
    assert d.total == 2 ** 13 * x and d.substitutions["a0"] == 2 ** 12 * x
