"""A small, safe expression language for the command line.

``glassgrad explain "4*pi/3*t*x*y" --wrt x --given t=x --at x=2,y=3`` needs to turn
user text into something differentiable. The text is parsed with ``ast.parse`` and
then walked with a strict whitelist; nothing is ever evaluated by Python itself
(no ``eval``, ``exec``, ``compile`` or SymPy parsing of the text). The accepted
grammar is:

* numbers (``2``, ``0.5``, ``1e-3``), the constants ``pi`` and ``e``;
* variables: identifiers that do not start with ``_`` and are not function names;
* ``+ - * / **`` and unary ``-``/``+`` with Python's precedence (``-2**2 == -4``);
* calls ``sin cos tan exp log sqrt tanh arctan`` with exactly one argument.

Everything else (attributes, subscripts, strings, comparisons, lambdas, keyword
arguments, ...) is refused with an :class:`ExpressionError` pointing at the culprit.

Evaluation uses NumPy functions and Python operators on the given values, so an
expression works for floats, arrays and any object implementing NumPy's dispatch
protocols (the autodiff tracers).

>>> expr = parse_expression("4*pi/3*t*x*y")
>>> expr.variables
('t', 'x', 'y')
>>> round(float(expr(t=1, x=2, y=3)), 6)
25.132741
"""

from __future__ import annotations

import ast
import inspect
import keyword
import math
import numbers
import operator
import re
import unicodedata
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._primitive import PRIMITIVES

__all__ = [
    "BinaryOp",
    "Call",
    "Constant",
    "Expression",
    "ExpressionError",
    "Node",
    "Number",
    "UnaryOp",
    "Variable",
    "parse_assignments",
    "parse_expression",
    "parse_given",
]

MAX_LENGTH = 1000
MAX_DEPTH = 100
# --given: each definition is evaluated and differentiated at the point, so the work grows
# with their number and total length.
MAX_DEFINITIONS = 200
MAX_GIVEN_LENGTH = 20_000



def functions() -> dict[str, Any]:
    """The functions an expression may call, derived from the rule table: every
    one-argument elementwise row backed by a NumPy ufunc and with a SymPy form, under the
    ufunc's NumPy name (``sin``, ``arctan``, ``log1p``, ...). A row added to the table
    (built in or through ``gg.extend``) is callable here without touching this file.

    >>> {"sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "arctan"} <= set(functions())
    True
    """
    found = {}
    for prim in PRIMITIVES.values():
        impl = prim.impl
        if (prim.elementwise and prim.sympy is not None and isinstance(impl, np.ufunc)
                and impl.nin == 1 and getattr(np, impl.__name__, None) is impl):
            found[impl.__name__] = prim
    return dict(sorted(found.items()))

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "**": operator.pow,
}
_UNARY: dict[str, Callable[[Any], Any]] = {"-": operator.neg, "+": operator.pos}
_AST_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_AST_UNARY = {ast.USub: "-", ast.UAdd: "+"}

# Precedence levels, as in Python: unary minus binds looser than ** on its right.
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "**": 4}
_PREC_UNARY = 3
_PREC_ATOM = 5


class ExpressionError(ValueError):
    """An expression (or ``--at``/``--given`` text) that is refused.

    ``line`` and ``column`` (1-based) locate the offending construct when known.

    >>> try:
    ...     parse_expression("4*np.pi")
    ... except ExpressionError as err:
    ...     print(err.column)
    3
    """

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.line = line
        self.column = column


# --------------------------------------------------------------------------- tree


@dataclass(frozen=True, slots=True)
class Number:
    """A numeric literal, always stored as a finite float."""

    value: float
    prec = _PREC_ATOM

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return self.value

    def __str__(self) -> str:
        return _format_number(self.value)


@dataclass(frozen=True, slots=True)
class Constant:
    """One of the named constants ``pi`` or ``e``."""

    name: str
    prec = _PREC_ATOM

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return CONSTANTS[self.name]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Variable:
    """A free variable, bound at evaluation time."""

    name: str
    prec = _PREC_ATOM

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return env[self.name]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class UnaryOp:
    """``-operand`` or ``+operand``."""

    op: str
    operand: Node
    prec = _PREC_UNARY

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return _UNARY[self.op](self.operand.evaluate(env))

    def __str__(self) -> str:
        return self.op + _wrap(self.operand, _unary_needs_parens(self.operand))


@dataclass(frozen=True, slots=True)
class BinaryOp:
    """``left op right`` for ``op`` in ``+ - * / **``."""

    op: str
    left: Node
    right: Node

    @property
    def prec(self) -> int:
        return _PREC[self.op]

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        left, right = self.left.evaluate(env), self.right.evaluate(env)
        if isinstance(left, numbers.Real) and isinstance(right, numbers.Real):
            # Plain numbers follow NumPy's IEEE rules (1/0 -> inf, (-8)**(1/3) -> nan)
            # instead of raising or going complex, matching what arrays would do.
            left = np.float64(left)
        return _BINARY[self.op](left, right)

    def __str__(self) -> str:
        left = _wrap(self.left, _left_needs_parens(self.op, self.left))
        right = _wrap(self.right, _right_needs_parens(self.op, self.right))
        sep = f" {self.op} " if self.prec == 1 else self.op
        return left + sep + right


@dataclass(frozen=True, slots=True)
class Call:
    """A call of one of the whitelisted functions on one argument."""

    func: str
    arg: Node
    prec = _PREC_ATOM

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return functions()[self.func].impl(self.arg.evaluate(env))

    def __str__(self) -> str:
        return f"{self.func}({self.arg})"


Node = Number | Constant | Variable | UnaryOp | BinaryOp | Call


def _format_number(value: float) -> str:
    # Integral values print without ".0" so "2*x" stays "2*x"; repr round-trips the rest.
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _wrap(node: Node, parens: bool) -> str:
    return f"({node})" if parens else str(node)


def _unary_needs_parens(operand: Node) -> bool:
    # "-(-x)" reads better than "--x"; both parse to the same tree.
    return operand.prec < _PREC_UNARY or isinstance(operand, UnaryOp)


def _left_needs_parens(op: str, left: Node) -> bool:
    # ** is right-associative, so a left operand of equal (or unary) precedence needs parens.
    return left.prec < _PREC[op] or (op == "**" and left.prec <= _PREC[op])


def _right_needs_parens(op: str, right: Node) -> bool:
    if op == "**":  # 2**-x is valid and means 2**(-x)
        return right.prec < _PREC_UNARY
    # Left-associative operators keep explicit grouping on the right (x - (y - z)).
    return right.prec <= _PREC[op]


# ------------------------------------------------------------------------- parser


_REFUSED: dict[type, str] = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "subscripts are not allowed",
    ast.Slice: "slices are not allowed",
    ast.Lambda: "lambda expressions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "boolean operators (and/or) are not allowed",
    ast.IfExp: "conditional expressions are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.List: "lists are not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.Starred: "starred arguments are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}
_OPERATOR_TEXT = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.Invert: "~",
    ast.Not: "not",
}


class _Walker:
    """Converts a parsed ``ast`` tree into :data:`Node` objects, refusing anything else."""

    def __init__(self, text: str, shift: int):
        self.lines = _source_lines(text)
        self.shift = shift  # leading blanks stripped from line 1 before parsing
        self.variables: dict[str, None] = {}  # ordered set, by first appearance

    def error(self, node: ast.AST, message: str) -> ExpressionError:
        line = getattr(node, "lineno", 1)
        source = self.lines[line - 1].encode()
        # col_offset counts UTF-8 bytes; the caret needs characters.
        col = len(source[: node.col_offset].decode(errors="ignore"))
        return _positioned(self.lines, line, col + (self.shift if line == 1 else 0), message)

    def convert(self, node: ast.AST, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.error(node, f"expression is nested too deeply (limit {MAX_DEPTH})")
        handler = self._HANDLERS.get(type(node))
        if handler is None:
            raise self.error(node, _refusal(node))
        return handler(self, node, depth)

    def constant(self, node: ast.Constant, depth: int) -> Node:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(node, _refusal(node))
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise self.error(node, "numeric literal is too large")
        return Number(number)

    def name(self, node: ast.Name, depth: int) -> Node:
        name = node.id
        if name.startswith("_"):
            raise self.error(node, f"names beginning with '_' are not allowed: {name!r}")
        if name in functions():
            raise self.error(node, f"{name!r} is a function; call it as {name}(...)")
        if name in CONSTANTS:
            return Constant(name)
        self.variables.setdefault(name)
        return Variable(name)

    def unary(self, node: ast.UnaryOp, depth: int) -> Node:
        op = _AST_UNARY.get(type(node.op))
        if op is None:
            raise self.error(node, _operator_refusal(node.op))
        return UnaryOp(op, self.convert(node.operand, depth + 1))

    def binary(self, node: ast.BinOp, depth: int) -> Node:
        op = _AST_BINARY.get(type(node.op))
        if op is None:
            raise self.error(node, _operator_refusal(node.op))
        left = self.convert(node.left, depth + 1)
        return BinaryOp(op, left, self.convert(node.right, depth + 1))

    def call(self, node: ast.Call, depth: int) -> Node:
        func = node.func
        if not isinstance(func, ast.Name):
            raise self.error(func, "only plain function names can be called")
        if func.id.startswith("_"):
            raise self.error(func, f"names beginning with '_' are not allowed: {func.id!r}")
        if func.id in CONSTANTS:
            raise self.error(func, f"{func.id!r} is a constant, not a function")
        if func.id not in functions():
            known = ", ".join(functions())
            raise self.error(func, f"unknown function {func.id!r} (known: {known})")
        if node.keywords:
            raise self.error(node.keywords[0], "keyword arguments are not allowed")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.error(arg, _REFUSED[ast.Starred])
        if len(node.args) != 1:
            raise self.error(node, f"{func.id}() takes exactly one argument")
        return Call(func.id, self.convert(node.args[0], depth + 1))

    _HANDLERS: dict[type, Callable[[_Walker, Any, int], Node]] = {
        ast.Constant: constant,
        ast.Name: name,
        ast.UnaryOp: unary,
        ast.BinOp: binary,
        ast.Call: call,
    }


def _refusal(node: ast.AST) -> str:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, str):
            return "strings are not allowed"
        if isinstance(value, bytes):
            return "bytes literals are not allowed"
        if isinstance(value, bool):
            return "booleans are not allowed"
        if isinstance(value, complex):
            return "complex numbers are not allowed"
        return f"{value!r} is not allowed"
    return _REFUSED.get(type(node), f"{type(node).__name__} expressions are not allowed")


def _operator_refusal(op: ast.AST) -> str:
    if isinstance(op, ast.BitXor):
        return "operator '^' is not allowed (use ** for powers)"
    return f"operator {_OPERATOR_TEXT.get(type(op), type(op).__name__)!r} is not allowed"


def _positioned(lines: list[str], line: int, col: int, message: str) -> ExpressionError:
    """An error whose message shows ``line`` with a caret under 0-based column ``col``."""
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    col = max(0, min(col, len(source)))
    # Keep tabs so the caret lines up under tab-indented text.
    pad = "".join(c if c == "\t" else " " for c in source[:col])
    text = f"expression:{line}:{col + 1}: {message}\n  {source}\n  {pad}^"
    return ExpressionError(text, line=line, column=col + 1)


def _source_lines(text: str) -> list[str]:
    """``text`` split where Python's parser starts a new line: at \\n, \\r\\n and a lone \\r.

    >>> _source_lines("a\\rb\\r\\nc")
    ['a', 'b', 'c']
    """
    return re.split(r"\r\n|\r|\n", text)


def _parse_ast(text: str) -> tuple[ast.expr, int]:
    """``ast.parse`` in eval mode, converting every failure to :class:`ExpressionError`."""
    stripped = text.lstrip(" \t")
    shift = len(text) - len(stripped)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for odd escapes in strings
            return ast.parse(stripped, mode="eval").body, shift
    except SyntaxError as err:
        line = err.lineno or 1
        col = (err.offset or 1) - 1 + (shift if line == 1 else 0)
        raise _positioned(_source_lines(text), line, col, f"syntax error: {err.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError("expression is nested too deeply or too large") from None
    except ValueError as err:  # e.g. null bytes or lone surrogates
        raise ExpressionError(f"expression cannot be parsed: {err}") from None


def parse_expression(text: str) -> Expression:
    """Parse ``text`` into an :class:`Expression`, refusing anything outside the grammar.

    >>> str(parse_expression("x*(y+1) - sin(x)**2"))
    'x*(y + 1) - sin(x)**2'
    """
    if not isinstance(text, str):
        raise TypeError(f"expression must be a str, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is too long ({len(text)} characters; the limit is {MAX_LENGTH})"
        )
    if not text.strip():
        raise ExpressionError("expression is empty")
    body, shift = _parse_ast(text)
    walker = _Walker(text, shift)
    tree = walker.convert(body, 1)
    return Expression(text, tree, tuple(walker.variables))


# --------------------------------------------------------------------- expression


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its source ``text``, ``tree`` and free ``variables``.

    Equality compares trees, so ``x+1`` equals ``x + 1``.

    >>> f = parse_expression("x**2 + y").as_function()
    >>> float(f(3, y=1))
    10.0
    """

    text: str = field(compare=False)
    tree: Node
    variables: tuple[str, ...] = field(compare=False)

    def __call__(self, /, **values: Any) -> Any:
        """Evaluate with ``values`` bound to the variables (all of them, no others)."""
        missing = [name for name in self.variables if name not in values]
        if missing:
            raise ExpressionError(f"missing value for variable(s): {', '.join(missing)}")
        unknown = [name for name in values if name not in self.variables]
        if unknown:
            uses = ", ".join(self.variables) or "no variables"
            raise ExpressionError(
                f"unknown variable(s): {', '.join(unknown)} (the expression uses {uses})"
            )
        return self.tree.evaluate(values)

    def as_function(self) -> Callable[..., Any]:
        """A function whose parameters are exactly :attr:`variables`, in order.

        >>> import inspect
        >>> list(inspect.signature(parse_expression("y*x").as_function()).parameters)
        ['y', 'x']
        """
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        signature = inspect.Signature([inspect.Parameter(n, kind) for n in self.variables])

        def function(*args: Any, **kwargs: Any) -> Any:
            # Binding through the signature gives Python's usual TypeErrors for bad calls.
            return self(**signature.bind(*args, **kwargs).arguments)

        function.__signature__ = signature  # type: ignore[attr-defined]
        function.__name__ = function.__qualname__ = "expression"
        function.__doc__ = str(self)
        return function

    def to_sympy(self) -> Any:
        """The expression as a SymPy object, built node by node (requires sympy).

        >>> str(parse_expression("4*pi/3*x").to_sympy())
        '4*pi*x/3'
        """
        import sympy

        return _to_sympy(self.tree, sympy)

    def to_latex(self) -> str:
        r"""LaTeX source: ``sympy.latex`` when SymPy is installed, else a plain rendering.

        >>> parse_expression("x**2").to_latex()
        'x^{2}'
        """
        try:
            import sympy
        except ImportError:
            return _to_latex(self.tree)
        return sympy.latex(_to_sympy(self.tree, sympy))

    def __str__(self) -> str:
        return str(self.tree)

    def __repr__(self) -> str:
        return f"parse_expression({str(self)!r})"


def _to_sympy(node: Node, sp: Any) -> Any:
    match node:
        case Number(value=value):
            return sp.Integer(int(value)) if value.is_integer() else sp.Float(value)
        case Constant(name="pi"):
            return sp.pi
        case Constant():
            return sp.E
        case Variable(name=name):
            return sp.Symbol(name)
        case UnaryOp(op=op, operand=operand):
            inner = _to_sympy(operand, sp)
            return -inner if op == "-" else inner
        case BinaryOp(op=op, left=left, right=right):
            return _BINARY[op](_to_sympy(left, sp), _to_sympy(right, sp))
        case Call(func=func, arg=arg):
            return functions()[func].sympy(sp, _to_sympy(arg, sp))
    raise TypeError(f"not an expression node: {node!r}")


def _to_latex(node: Node) -> str:
    """A dependency-free LaTeX rendering; the parenthesisation matches ``__str__``."""
    match node:
        case Constant(name="pi"):
            return r"\pi"
        case UnaryOp(op=op, operand=operand):
            return op + _latex_wrap(operand, _unary_needs_parens(operand))
        case BinaryOp(op="/", left=left, right=right):
            return rf"\frac{{{_to_latex(left)}}}{{{_to_latex(right)}}}"
        case BinaryOp(op="**", left=left, right=right):
            base = _latex_wrap(left, _left_needs_parens("**", left))
            return f"{{{base}}}^{{{_to_latex(right)}}}"
        case BinaryOp(op=op, left=left, right=right):
            sep = {"+": " + ", "-": " - ", "*": r" \cdot "}[op]
            lhs = _latex_wrap(left, _left_needs_parens(op, left))
            return lhs + sep + _latex_wrap(right, _right_needs_parens(op, right))
        case Call(func="sqrt", arg=arg):
            return rf"\sqrt{{{_to_latex(arg)}}}"
        case Call(func=func, arg=arg):
            name = rf"\{func}" if func in _LATEX_COMMANDS else rf"\operatorname{{{func}}}"
            return rf"{name}\left({_to_latex(arg)}\right)"
    return str(node)  # numbers, variables and e print as in text


# Function names that are LaTeX commands; every other function is an \operatorname.
_LATEX_COMMANDS = frozenset({"sin", "cos", "tan", "exp", "log", "tanh", "arctan", "sinh",
                             "cosh", "arcsin", "arccos"})


def _latex_wrap(node: Node, parens: bool) -> str:
    inner = _to_latex(node)
    return rf"\left({inner}\right)" if parens else inner


# -------------------------------------------------------------- --at and --given


def _check_name(raw: str, what: str) -> str:
    # Same normalisation as Python identifiers, so "--at" names match expression names.
    name = unicodedata.normalize("NFKC", raw.strip())
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ExpressionError(f"{what}: {raw.strip()!r} is not a valid variable name")
    if name.startswith("_"):
        raise ExpressionError(f"{what}: names beginning with '_' are not allowed: {name!r}")
    if name in functions() or name in CONSTANTS:
        raise ExpressionError(f"{what}: {name!r} is reserved and cannot be a variable")
    return name


def _split_item(item: str, what: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ExpressionError(f"{what}: expected NAME=VALUE, got {item.strip()!r}")
    return _check_name(name, what), value.strip()


def _split_top_level(text: str) -> list[str]:
    """Split on ';' anywhere and on ',' outside parentheses."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ";" or (char == "," and depth <= 0):
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def parse_assignments(text: str) -> dict[str, float]:
    """Parse ``--at`` text such as ``"x=2,y=3"`` into ``{"x": 2.0, "y": 3.0}``.

    Items are separated by ``,`` or ``;``. Values must be finite decimal numbers
    (``nan`` and ``inf`` are refused: a derivative "at infinity" is not a point).
    Empty text gives an empty dict.

    >>> parse_assignments("x=2, y=-1.5e-3")
    {'x': 2.0, 'y': -0.0015}
    """
    result: dict[str, float] = {}
    if not text.strip():
        return result
    for item in text.replace(";", ",").split(","):
        name, raw = _split_item(item, "--at")
        try:
            value = float(raw)
        except ValueError:
            raise ExpressionError(f"--at: value of {name!r} is not a number: {raw!r}") from None
        if not math.isfinite(value):
            raise ExpressionError(f"--at: value of {name!r} must be finite, got {raw!r}")
        if name in result:
            raise ExpressionError(f"--at: {name!r} is given twice")
        result[name] = value
    return result


def parse_given(text: str) -> dict[str, Expression]:
    """Parse ``--given`` text such as ``"t=x*y;u=2*x"`` into expressions.

    Definitions are separated by ``;``, or by ``,`` outside parentheses, so a comma
    never splits a function call. Empty text gives an empty dict.

    >>> {name: str(expr) for name, expr in parse_given("t=x*y, u=sin(x)").items()}
    {'t': 'x*y', 'u': 'sin(x)'}
    """
    result: dict[str, Expression] = {}
    if not text.strip():
        return result
    if len(text) > MAX_GIVEN_LENGTH:
        raise ExpressionError(f"--given: {len(text)} characters in all; the limit is "
                              f"{MAX_GIVEN_LENGTH}")
    items = _split_top_level(text)
    if len(items) > MAX_DEFINITIONS:
        raise ExpressionError(f"--given: {len(items)} definitions; the limit is "
                              f"{MAX_DEFINITIONS}")
    for item in items:
        name, source = _split_item(item, "--given")
        if name in result:
            raise ExpressionError(f"--given: {name!r} is defined twice")
        try:
            result[name] = parse_expression(source)
        except ExpressionError as err:
            raise ExpressionError(f"--given {name}: {err}", err.line, err.column) from None
    return result
