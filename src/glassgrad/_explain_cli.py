"""``glassgrad explain``: partial, total and naive derivatives of a typed expression.

    glassgrad explain "4*pi/3*t*x*y" --wrt x --given t=x --at x=2,y=3

The expression is parsed by the safe expression language of ``_expr`` (never ``eval``);
the numbers come from the autodiff engine (``glassgrad.calculus.explain``) and the
formulas, when SymPy is installed, from replaying the engine's graph symbolically
(``glassgrad.symbolic``). The formulas are checked against the numbers at the point.
Bad input exits with status 2 and a one-paragraph message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np

from .calculus import _formatter  # the number style of Explanation and Differential

_EPILOG = """examples:
  glassgrad explain "4*pi/3*t*x*y" --wrt x --given t=x --at x=2,y=3
  glassgrad explain "sin(x)*y" --wrt x --at x=0.5,y=2 --json
  glassgrad explain "x*u" --wrt x --given "u=v**2; v=sin(x)" --latex

Expressions use numbers, variables, + - * / **, parentheses, pi, e and the functions of
the rule table: {functions}.
Formulas need SymPy: pip install "glassgrad[symbolic]".

limits (so that every accepted input finishes within seconds):
  input     an expression has at most {length} characters and {depth} levels of nesting;
            --given holds at most {definitions} definitions of {given_length} characters
            in all. Chained definitions are followed by the chain rule over their
            dependency graph, never path by path.
  formulas  written out only up to {nodes} recorded operations (expression and --given
            together), {size} symbols, numbers and operations, powers of degree {degree}
            and integers of {digits} digits; past that the numbers are shown alone, with a
            note saying why. Formulas are simplified only up to {simplify} symbols, numbers
            and operations, without powers of sums above degree {simplify_degree}, and for
            {seconds:g} s in all; otherwise they are shown as built, with a note.
  numbers   always come from the autodiff engine, whatever the formulas do.
"""


def _epilog() -> str:
    from ._expr import MAX_DEFINITIONS, MAX_DEPTH, MAX_GIVEN_LENGTH, MAX_LENGTH, functions
    from ._formula_limits import Limits

    limits = Limits()
    return _EPILOG.format(
        functions=" ".join(functions()), length=MAX_LENGTH, depth=MAX_DEPTH,
        definitions=MAX_DEFINITIONS,
        given_length=MAX_GIVEN_LENGTH,
        nodes=limits.max_nodes, size=limits.max_size, degree=limits.max_exponent,
        digits=limits.max_digits, simplify=limits.simplify_size,
        simplify_degree=limits.simplify_exponent, seconds=limits.simplify_seconds)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``explain`` command on an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "explain", help="partial vs total derivative of an expression, step by step",
        description="Differentiate an expression: the partial derivative (other variables "
                    "fixed), the total derivative (following --given dependencies by the "
                    "chain rule) and the naive result of substituting after the partial.",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("expression", help='the function, e.g. "4*pi/3*t*x*y"')
    parser.add_argument("--wrt", required=True, metavar="NAME",
                        help="the variable to differentiate with respect to")
    parser.add_argument("--given", action="append", default=[], metavar="NAME=EXPR",
                        help='dependencies, e.g. "t=x" or "t=x*y; u=2*x" (repeatable)')
    parser.add_argument("--at", action="append", default=[], metavar="NAME=VALUE",
                        help='the point: values of the independent variables, e.g. "x=2,y=3" '
                             "(without it, only the formulas are shown)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--latex", action="store_true", help="write formulas as LaTeX")
    parser.set_defaults(run=run, explain_parser=parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``glassgrad explain``; bad input exits with status 2 and a message."""
    parser: argparse.ArgumentParser = args.explain_parser
    try:
        result = _explain(args)
    except (ValueError, TypeError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(json.dumps(_finite(result), indent=2) if args.json else _text(result))
    return 0


# --- the work -------------------------------------------------------------------------------


def _explain(args: argparse.Namespace) -> dict[str, Any]:
    from ._expr import parse_assignments, parse_expression, parse_given
    from .calculus import explain

    expr = parse_expression(args.expression)
    given = parse_given("; ".join(args.given))
    point = parse_assignments(",".join(args.at))
    fun = expr.as_function()
    given_funs = {name: e.as_function() for name, e in given.items()}
    explaining = explain(fun, args.wrt, given_funs or None)  # checks --wrt and --given
    _check_point(point, given, args.at)
    result = {"expression": str(expr), "variables": list(expr.variables), "wrt": args.wrt,
              "given": {name: str(e) for name, e in given.items()},
              "at": point if args.at else None}
    numbers = _evaluate(explaining, point) if args.at else None
    result.update(_numbers(numbers))
    formulas, derivation = _formulas(fun, args.wrt, given_funs, point, args.latex)
    result.update(formulas)
    if numbers is not None and derivation is not None:
        result["formulas_match"] = _formulas_match(derivation, numbers)
    return result


def _evaluate(explaining: Any, point: dict[str, float]) -> Any:
    try:
        with np.errstate(all="ignore"):  # log(0) and friends give inf or nan, shown as such
            return explaining(**point)
    except ValueError as err:  # missing or unknown variables
        raise ValueError(f"--at: {err}") from None


def _check_point(point: dict[str, float], given: dict, at: list[str]) -> None:
    dependent = [name for name in point if name in given]
    if dependent:
        name = dependent[0]
        raise ValueError(f"--at: {name!r} is a dependent variable (--given {name}="
                         f"{given[name]}); give values of the independent variables only")
    if not at and not _has_sympy():
        raise ValueError('without SymPy there are no formulas to show: give --at (e.g. '
                         '--at x=2,y=3) or pip install "glassgrad[symbolic]"')


def _has_sympy() -> bool:
    try:
        import sympy  # noqa: F401
    except ImportError:
        return False
    return True


def _numbers(e: Any) -> dict[str, Any]:
    if e is None:
        return {"values": None, "function_value": None, "partial": None, "total": None,
                "naive": None, "terms": None}
    return {
        "values": {k: _float(v) for k, v in e.values.items()},
        "function_value": _float(e.function_value),
        "partial": _float(e.partial_value), "total": _float(e.value),
        "naive": _float(e.naive_value),
        "terms": [{"name": t.name, "partial": _float(t.partial),
                   "derivative": _float(t.derivative), "product": _float(t.product)}
                  for t in e.terms],
    }


def _float(x: Any) -> float:
    return float(np.asarray(x))


def _finite(x: Any) -> Any:
    """``x`` with inf and nan as null: JSON has no such numbers."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _formulas(fun: Any, wrt: str, given: dict, point: dict,
              latex: bool) -> tuple[dict[str, Any], Any]:
    from .symbolic import derive, render

    try:
        d = derive(fun, wrt, given or None, at=point)
    except ImportError:  # SymPy is optional
        return {"formulas": None, "style": None, "notes": [], "note": 'install SymPy for formulas: '
                'pip install "glassgrad[symbolic]"'}, None
    except NotImplementedError as err:  # the numbers are still worth showing
        return {"formulas": None, "style": None, "notes": [],
                "note": f"no formulas: {err}"}, None
    style = "latex" if latex else "plain"
    return {"notes": list(d.notes), "formulas": {
        "function": render(d.function, style), "partial": render(d.partial, style),
        "total": render(d.total, style), "naive": render(d.naive, style),
        "substitutions": {k: render(v, style) for k, v in d.substitutions.items()},
        "terms": [{"name": t.name, "partial": render(t.partial, style),
                   "derivative": render(t.derivative, style),
                   "product": render(t.product, style)} for t in d.terms],
    }, "style": style, "note": None}, d


def _formulas_match(d: Any, e: Any) -> bool:
    """The glass-box check: the formulas, evaluated at the point, give the engine's numbers."""
    import sympy

    env = {sympy.Symbol(k): sympy.Float(v) for k, v in e.values.items()}
    pairs = [(d.partial, e.partial_value), (d.total, e.value), (d.naive, e.naive_value)]
    for expr, value in pairs:
        if not math.isfinite(value):  # a pole or outside the domain: nothing to compare
            continue
        # The formulas are SymPy objects built from the trace; no text is ever parsed.
        got = complex(expr.xreplace(env).evalf() if isinstance(expr, sympy.Basic)
                      else expr)
        if not np.isclose(got, value, rtol=1e-9, atol=1e-12):
            return False
    return True


# --- output ---------------------------------------------------------------------------------


def _text(result: dict[str, Any]) -> str:
    f = result["formulas"]
    numbers = [result[k] for k in ("partial", "total", "naive") if result[k] is not None]
    numbers += [x for t in result["terms"] or [] for x in (t["partial"], t["product"])]
    fmt = _formatter([x for x in numbers if math.isfinite(x)])
    w, given = result["wrt"], ", ".join(f"{k} = {v}" for k, v in result["given"].items())
    lines = [f"f({', '.join(result['variables'])}) = "
             + (f["function"] if f else result["expression"])]
    if result["given"]:
        lines.append(f"given: {given}")
    if result["at"] is not None:
        lines.append("at:    " + _point_text(result))
    lines.append("")
    rows = [("partial", f"∂f/∂{w}", "partial", "other variables held fixed")]
    if result["given"]:
        rows += [("total", f"df/d{w}", "total", "chain rule through the dependencies"),
                 ("naive", f"∂f/∂{w}, then {given}", "naive",
                  "what substituting after the partial gives")]
    else:
        rows.append(("total", f"df/d{w}", "total", "nothing is given: equals the partial"))
    for label, name, key, why in rows:
        lines.append(f"{label:<8} {name} = {_value(result, key, fmt)}   ({why})")
    lines += _chain_lines(result, fmt) + _footer(result)
    return "\n".join(lines)


def _point_text(result: dict[str, Any]) -> str:
    values = result["values"]
    show = _formatter([v for v in values.values() if math.isfinite(v)])
    text = ", ".join(f"{k} = {_show(values[k], show)}" for k in result["at"])
    dependent = ", ".join(f"{k} = {_show(values[k], show)}" for k in result["given"])
    return f"{text}  (so {dependent})" if dependent else text


def _value(result: dict[str, Any], key: str, fmt: Any) -> str:
    parts = []
    if result["formulas"]:
        parts.append(result["formulas"][key])
    if result["at"] is not None:
        parts.append(_show(result[key], fmt))
    return " = ".join(parts)


def _show(x: float, fmt: Any) -> str:
    return fmt(x) if math.isfinite(x) else str(x)


def _chain_lines(result: dict[str, Any], fmt: Any) -> list[str]:
    if not result["given"]:
        return []
    w = result["wrt"]
    lines = ["", f"chain rule: df/d{w} = Σ_v ∂f/∂v · dv/d{w}"]
    symbolic = result["formulas"]["terms"] if result["formulas"] else None
    for i, name in enumerate(result["variables"]):
        head = f"  {name}:  ∂f/∂{name} · d{name}/d{w}"
        if symbolic:
            s = symbolic[i]
            head += f" = ({s['partial']}) · ({s['derivative']})"
            if not result["terms"]:
                head += f" = {s['product']}"
        if result["terms"]:
            t = result["terms"][i]
            head += (f" = {_show(t['partial'], fmt)} · {_show(t['derivative'], fmt)}"
                     f" = {_show(t['product'], fmt)}")
        lines.append(head)
    return lines


def _footer(result: dict[str, Any]) -> list[str]:
    lines = []
    if result.get("note") and result["at"] is not None:  # no SymPy, or past the limits
        lines.append(f"note: numbers only; {result['note']}")
    elif result.get("note"):
        lines.append(f"note: {result['note']}; give --at (e.g. --at x=2) for the numbers")
    lines += [f"note: {note}" for note in result.get("notes") or []]  # left unsimplified
    if result.get("formulas_match") is False:
        lines.append("warning: the formulas evaluated at the point differ from the autodiff "
                     "numbers; please report this")
    return [""] + lines if lines else []
