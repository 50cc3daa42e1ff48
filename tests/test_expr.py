"""Tests for the command-line expression language (glassgrad._expr)."""

from __future__ import annotations

import ast
import builtins
import contextlib
import inspect
import math
import sys
from collections.abc import Iterator
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glassgrad._expr import (
    BinaryOp,
    Call,
    Expression,
    ExpressionError,
    Number,
    UnaryOp,
    Variable,
    parse_assignments,
    parse_expression,
    parse_given,
)

FUZZ = settings(max_examples=200, deadline=None)


# ------------------------------------------------------------------ evaluation


def test_seed_example() -> None:
    expr = parse_expression("4*pi/3*t*x*y")
    assert expr.variables == ("t", "x", "y")
    assert expr(t=1, x=2, y=3) == pytest.approx(8 * math.pi)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2**3**2", 512.0),
        ("-2**2", -4.0),
        ("(-2)**2", 4.0),
        ("2**-1", 0.5),
        ("1 - 2 - 3", -4.0),
        ("8 / 4 / 2", 1.0),
        ("2 + 3*4", 14.0),
        ("(2 + 3)*4", 20.0),
        ("+3 - -2", 5.0),
        ("e", math.e),
        ("pi", math.pi),
        ("1e-3*1_000", 1.0),
    ],
)
def test_precedence_and_literals(text: str, expected: float) -> None:
    assert parse_expression(text)() == pytest.approx(expected)


@pytest.mark.parametrize("name", ["sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "arctan"])
def test_each_function_matches_numpy(name: str) -> None:
    x = np.array([0.25, 0.5, 2.0])
    np.testing.assert_allclose(parse_expression(f"{name}(x)")(x=x), getattr(np, name)(x))


def test_ints_become_floats() -> None:
    assert parse_expression("3").tree == Number(3.0)
    assert isinstance(parse_expression("3").tree.value, float)
    assert parse_expression("x/2")(x=3) == 1.5
    # Int arrays work with negative literal powers because literals are floats.
    np.testing.assert_allclose(parse_expression("x**-1")(x=np.array([1, 2, 4])), [1, 0.5, 0.25])


def test_plain_numbers_follow_ieee_rules() -> None:
    with np.errstate(all="ignore"):
        assert parse_expression("1/x")(x=0.0) == math.inf
        assert math.isnan(parse_expression("x**(1/3)")(x=-8.0))
        assert parse_expression("2**10**10")() == math.inf  # no hang, no OverflowError


class Sym:
    """A stand-in for an autodiff tracer: records every operation applied to it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Sym:
        return Sym(f"{ufunc.__name__}({', '.join(map(_show, inputs))})")

    def _op(self, other: Any, symbol: str, reflected: bool = False) -> Sym:
        a, b = (_show(other), self.text) if reflected else (self.text, _show(other))
        return Sym(f"({a}{symbol}{b})")

    def __add__(self, other: Any) -> Sym:
        return self._op(other, "+")

    def __rmul__(self, other: Any) -> Sym:
        return self._op(other, "*", reflected=True)

    def __pow__(self, other: Any) -> Sym:
        return self._op(other, "**")

    def __neg__(self) -> Sym:
        return Sym(f"-{self.text}")


def _show(value: Any) -> str:
    return value.text if isinstance(value, Sym) else repr(value)


def test_values_pass_through_unconverted() -> None:
    result = parse_expression("2*sin(x)**2 + -y")(x=Sym("x"), y=Sym("y"))
    assert isinstance(result, Sym)
    assert result.text == "((2.0*(sin(x)**2.0))+-y)"


def test_missing_and_unknown_variables() -> None:
    expr = parse_expression("x*y")
    with pytest.raises(ExpressionError, match="missing .*y"):
        expr(x=1)
    with pytest.raises(ExpressionError, match="unknown .*z"):
        expr(x=1, y=2, z=3)


def test_as_function_signature() -> None:
    fn = parse_expression("y*x + z").as_function()
    assert list(inspect.signature(fn).parameters) == ["y", "x", "z"]
    assert fn(2, 3, z=1) == 7
    assert fn(x=3, y=2, z=0) == 6
    with pytest.raises(TypeError):
        fn(1, 2, 3, 4)
    assert parse_expression("self + values")(self=1, values=2) == 3


def test_str_is_canonical_and_round_trips() -> None:
    expr = parse_expression("((x)) - (y - z) + (-2)**2 + 2**-x*3.5/(a/b) + --x")
    assert str(expr) == "x - (y - z) + (-2)**2 + 2**-x*3.5/(a/b) + -(-x)"
    assert parse_expression(str(expr)) == expr
    assert parse_expression("x+1") == parse_expression(" x + 1 ")


def test_tree_nodes_are_immutable() -> None:
    tree = parse_expression("-sin(x) + 1").tree
    assert tree == BinaryOp("+", UnaryOp("-", Call("sin", Variable("x"))), Number(1.0))
    with pytest.raises(AttributeError):
        tree.op = "-"  # type: ignore[misc]


def test_to_sympy_builds_the_same_expression() -> None:
    sympy = pytest.importorskip("sympy")
    t, x, y = sympy.symbols("t x y")
    seed = parse_expression("4*pi/3*t*x*y").to_sympy()
    assert seed == sympy.Rational(4, 3) * sympy.pi * t * x * y
    got = parse_expression("arctan(x) - exp(e*y)/sqrt(x)").to_sympy()
    assert sympy.simplify(got - (sympy.atan(x) - sympy.exp(sympy.E * y) / sympy.sqrt(x))) == 0
    assert r"\pi" in parse_expression("pi*x").to_latex()


def test_to_latex_without_sympy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sympy", None)  # makes "import sympy" fail
    latex = parse_expression("sqrt(x)/(2*pi) - sin(x)**2").to_latex()
    assert latex == r"\frac{\sqrt{x}}{2 \cdot \pi} - {\sin\left(x\right)}^{2}"


# -------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4*np.pi", "attribute access"),
        ("x[0]", "subscripts"),
        ("lambda: 1", "lambda"),
        ("[i for i in x]", "comprehensions"),
        ("'abc'", "strings"),
        ("b'abc'", "bytes"),
        ("x < 1", "comparisons"),
        ("x and y", "boolean operators"),
        ("x if y else 1", "conditional"),
        ("(x := 1)", "assignment"),
        ("(1, 2)", "tuples"),
        ("1j", "complex"),
        ("True", "booleans"),
        ("None", "None"),
        ("open('x')", "unknown function 'open'"),
        ("f(x)", "unknown function 'f'"),
        ("pi(2)", "constant, not a function"),
        ("(x + 1)(x)", "only plain function names"),
        ("x.sin(1)", "only plain function names"),
        ("sin(x=1)", "keyword arguments"),
        ("sin(*x)", "starred"),
        ("sin(x, y)", "exactly one argument"),
        ("sin()", "exactly one argument"),
        ("_x + 1", "beginning with '_'"),
        ("__x__", "beginning with '_'"),
        ("_f(1)", "beginning with '_'"),
        ("sin + 1", "'sin' is a function"),
        ("x // 2", "'//'"),
        ("x % 2", "'%'"),
        ("x ^ 2", "use \\*\\* for powers"),
        ("~x", "'~'"),
        ("not x", "'not'"),
        ("x +", "syntax error"),
        ("1" * 400, "too large"),
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 1001, "too long"),
        ("-" * 150 + "x", "nested too deeply"),
        ("sin(" * 150 + "x" + ")" * 150, "nested too deeply"),
        ("(" * 300 + "x" + ")" * 300, "syntax error|nested"),
        ("x\x00", "null bytes"),
        ("\ud800", "cannot be parsed"),
    ],
)
def test_refusals(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse_expression(text)


def test_error_points_at_the_offending_construct() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression("4*np.pi")
    assert (info.value.line, info.value.column) == (1, 3)
    assert str(info.value) == "expression:1:3: attribute access is not allowed\n  4*np.pi\n    ^"


def test_caret_accounts_for_leading_blanks_and_unicode() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression("  é*x.y")
    assert info.value.column == 5
    assert str(info.value).splitlines()[-1] == "      ^"


PAYLOADS = [
    "__import__('os').system('echo pwned')",
    "().__class__.__bases__[0].__subclasses__()",
    "open('x')",
    "eval('1')",
    "exec('x=1')",
    "compile('1', '', 'eval')",
    "getattr(x, 'y')",
    "__builtins__",
    "sin.__globals__",
    "exp(x).__class__",
]


@contextlib.contextmanager
def no_code_execution() -> Iterator[None]:
    """Fail loudly if anything but AST-only parsing of the text is attempted."""
    real_compile, real_import = builtins.compile, builtins.__import__

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("code execution attempted")

    def parser_import(name: str, *args: Any, **kwargs: Any) -> Any:
        # CPython's parser imports unicodedata itself to normalise non-ASCII names.
        if name != "unicodedata":
            raise AssertionError(f"import of {name!r} attempted")
        return real_import(name, *args, **kwargs)

    def ast_only(source: Any, filename: Any, mode: str, flags: int = 0, *a: Any, **k: Any) -> Any:
        assert flags & ast.PyCF_ONLY_AST, "compile() asked for code, not an AST"
        return real_compile(source, filename, mode, flags, *a, **k)

    with contextlib.ExitStack() as stack:
        for name in ("eval", "exec"):
            stack.enter_context(mock.patch.object(builtins, name, forbidden))
        stack.enter_context(mock.patch.object(builtins, "__import__", parser_import))
        stack.enter_context(mock.patch.object(builtins, "compile", ast_only))
        yield


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_are_refused(payload: str) -> None:
    with no_code_execution(), pytest.raises(ExpressionError):
        parse_expression(payload)


ALPHABET = "xy012.e+-*/()^_,'[] sinotaqrpxlgh=:\n\t\\"


@FUZZ
@given(st.text(max_size=60) | st.text(alphabet=ALPHABET, max_size=60))
def test_random_text_only_raises_expression_error(text: str) -> None:
    with no_code_execution():
        try:
            expr = parse_expression(text)
        except ExpressionError:
            return
    assert parse_expression(str(expr)) == expr


# -------------------------------------------------- grammar-driven fuzzing


NAMES = ("x", "y", "z")
VALUES = {"x": 0.75, "y": 1.5, "z": 2.0}
REF_FUNCTIONS = ("sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "arctan")
REF_BINARY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a**b,
}

leaves = st.one_of(
    st.integers(0, 10**6).map(lambda n: ("num", n)),
    st.floats(0, 1e3, allow_nan=False).map(lambda v: ("num", v)),
    st.sampled_from(NAMES).map(lambda n: ("var", n)),
    st.sampled_from(("pi", "e")).map(lambda n: ("const", n)),
)


def _extend(children: st.SearchStrategy[tuple]) -> st.SearchStrategy[tuple]:
    return st.one_of(
        st.tuples(st.just("unary"), st.sampled_from("-+"), children),
        st.tuples(st.just("bin"), st.sampled_from(sorted(REF_BINARY)), children, children),
        st.tuples(st.just("call"), st.sampled_from(REF_FUNCTIONS), children),
    )


trees = st.recursive(leaves, _extend, max_leaves=20)


def render(tree: tuple) -> str:
    """Fully parenthesised source text, so the generator needs no precedence rules."""
    match tree:
        case ("num", value):
            return repr(value)
        case ("var" | "const", name):
            return name
        case ("unary", op, child):
            return f"({op}{render(child)})"
        case ("bin", op, left, right):
            return f"({render(left)} {op} {render(right)})"
        case ("call", func, child):
            return f"{func}({render(child)})"
    raise AssertionError(tree)


def reference(tree: tuple) -> np.float64:
    """Direct evaluation of the generated tree, in float64 like the parser's evaluator."""
    match tree:
        case ("num", value):
            return np.float64(value)
        case ("var", name):
            return np.float64(VALUES[name])
        case ("const", name):
            return np.float64(math.pi if name == "pi" else math.e)
        case ("unary", op, child):
            return -reference(child) if op == "-" else reference(child)
        case ("bin", op, left, right):
            return REF_BINARY[op](reference(left), reference(right))
        case ("call", func, child):
            return getattr(np, func)(reference(child))
    raise AssertionError(tree)


def _same(a: Any, b: Any) -> bool:
    return bool(a == b or (np.isnan(a) and np.isnan(b)))


@FUZZ
@given(trees)
def test_generated_expressions_match_reference(tree: tuple) -> None:
    text = render(tree)
    expr = parse_expression(text)
    assert set(expr.variables) <= set(NAMES)
    values = {name: VALUES[name] for name in expr.variables}
    with np.errstate(all="ignore"):
        expected = reference(tree)
        assert _same(expr(**values), expected), text
        canonical = parse_expression(str(expr))
        assert canonical == expr
        assert _same(canonical(**values), expected)


# ----------------------------------------------------------- --at and --given


def test_parse_assignments() -> None:
    assert parse_assignments("x=2,y=3") == {"x": 2.0, "y": 3.0}
    assert parse_assignments(" x = -1.5e-3 ; y=+4 ") == {"x": -0.0015, "y": 4.0}
    assert parse_assignments("") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x=nan", "finite"),
        ("x=inf", "finite"),
        ("x=1e999", "finite"),
        ("x=abc", "not a number"),
        ("x=2*3", "not a number"),
        ("x", "NAME=VALUE"),
        ("x=", "NAME=VALUE"),
        ("=2", "NAME=VALUE"),
        ("x=1,,y=2", "NAME=VALUE"),
        ("_x=1", "beginning with '_'"),
        ("1x=1", "not a valid variable name"),
        ("lambda=1", "not a valid variable name"),
        ("pi=3", "reserved"),
        ("sin=3", "reserved"),
        ("x=1,x=2", "twice"),
    ],
)
def test_parse_assignments_refusals(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse_assignments(text)


def test_parse_given() -> None:
    given_ = parse_given("t=x*y;u=2*x")
    assert {k: str(v) for k, v in given_.items()} == {"t": "x*y", "u": "2*x"}
    assert all(isinstance(v, Expression) for v in given_.values())
    assert list(parse_given("t=sin(x), u=y")) == ["t", "u"]
    assert parse_given(" ") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("t=sin(x,y)", "exactly one argument"),
        ("t=x.y", "--given t: .*attribute access"),
        ("t=x;t=y", "twice"),
        ("t", "NAME=VALUE"),
        ("_t=x", "beginning with '_'"),
        ("e=x", "reserved"),
    ],
)
def test_parse_given_refusals(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse_given(text)


def test_a_lone_carriage_return_starts_a_line() -> None:
    with pytest.raises(ExpressionError, match="expression:2:1: names beginning with '_'"):
        parse_expression("\r_")


def test_given_is_bounded() -> None:
    many = "; ".join(f"a{i}=x" for i in range(201))
    with pytest.raises(ExpressionError, match="201 definitions; the limit is 200"):
        parse_given(many)
    with pytest.raises(ExpressionError, match="characters in all; the limit is 20000"):
        parse_given("; ".join(["a=" + "x+" * 400 + "x"] * 30))
