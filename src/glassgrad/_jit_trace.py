"""Recording a program for ``gg.jit``: ``JitTracer`` values and the ``Program`` they fill.

A ``JitTracer`` carries its concrete value (so shapes, dtypes and Python decisions on
shapes are known) and names a program variable. It is one more interpreter of the rule
table: every operation reaches it as a primitive (``_process``), masks and comparisons
included, and becomes one ``Equation`` of the program. Derivative transforms inside the
function run on top of the tracers as usual, so their backward passes end up in the
program too. A NumPy call with no row in the table is refused (``TypeError``), never
computed on the side and frozen into a constant.
"""

from __future__ import annotations

import linecache
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _backend as backend
from ._array_methods import ArrayMethods
from ._primitive import Primitive, Traced
from ._record import Equation
from ._tensor import Tensor

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))


class ConcretizationError(TypeError):
    """Python control flow or a conversion needed a concrete value inside ``jit``."""


class OuterTracer(Exception):
    """A derivative tracer of an enclosing transform reached the program (through a
    closure): the program cannot be reused for other values of it, so ``jit`` runs the
    Python function instead."""


def user_location() -> str:
    """``file:line: code`` of the innermost frame outside glassgrad and NumPy."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not (path.startswith(_PACKAGE_DIR) or path.startswith(_NUMPY_DIR)):
            code = linecache.getline(path, frame.f_lineno).strip()
            return f"{frame.f_code.co_filename}:{frame.f_lineno}: {code}"
        frame = frame.f_back
    return "<unknown>"


class JitTracer(ArrayMethods):
    """A value inside ``jit``: its concrete value plus the program variable it names."""

    __slots__ = ("value", "var", "program")
    _differentiating = False

    def __init__(self, value: Any, var: str, program: Program, level: int):
        self.value = value
        self.var = var
        self.program = program
        self._level = level

    def _raw(self) -> Any:
        return self.value

    def _process(self, prim: Primitive, args: tuple, params: dict) -> Any:
        return self.program.record_primitive(prim, args, params)

    def _concretize_error(self, what: str) -> ConcretizationError:
        return ConcretizationError(
            f"{what} needs the concrete value of a traced array inside jit, at "
            f"{user_location()}. The program is traced once and reused for other "
            "values, so it cannot depend on them: use np.where for value-dependent "
            "choices, or pass the argument through static_argnums.")

    def __bool__(self) -> bool:
        raise self._concretize_error("Python control flow (if/while/and/or/bool())")

    def backward(self, gradient: Any = None) -> None:
        raise TypeError("inside jit, .backward() cannot run: take derivatives with "
                        "gg.grad or gg.value_and_grad and return them")

    def __repr__(self) -> str:
        return f"JitTracer({self.var}, shape={self.shape}, dtype={self.dtype})"


@dataclass
class Program:
    """The recording: inputs, captured eager tensors and equations."""

    level: int
    inputs: list[str] = field(default_factory=list)
    equations: list[Equation] = field(default_factory=list)
    captured: dict[int, tuple[JitTracer, Tensor]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    counter: int = 0

    def new_tracer(self, value: Any, prefix: str = "v") -> JitTracer:
        self.counter += 1
        return JitTracer(value, f"{prefix}{self.counter}", self, self.level)

    def add_input(self, value: Any) -> JitTracer:
        t = self.new_tracer(value, "a")
        self.inputs.append(t.var)
        return t

    def record_primitive(self, prim: Primitive, args: tuple, params: dict) -> Any:
        if prim.name == "getitem":
            _refuse_traced_mask(params.get("index"))
        args, params = self._bind(args), self._bind(params)
        value = prim.impl(*_values(args), **_values(params))
        if isinstance(value, tuple | list):
            raise ConcretizationError(
                f"np.{prim.name} gives a result whose shape depends on the values "
                f"(at {user_location()}); the program is traced once and reused, so inside "
                "jit use a form of fixed shape (np.where(mask, x, 0), a boolean mask as "
                "weights), or call it outside jit")
        for a in args:
            if isinstance(a, JitTracer) and a.value is value:
                return a  # an identity (sum_to or broadcast_to to the same shape)
        if prim.name == "mul":
            same = _times_ones(args, value)
            if same is not None:
                return same
        out = self.new_tracer(value)
        self.values[out.var] = value
        self.equations.append(Equation((prim, args, params, out.var)))
        return out

    def _bind(self, x: Any) -> Any:
        """Replace eager tensors by captured variables, read afresh at every run."""
        if isinstance(x, tuple | list):
            return type(x)(self._bind(i) for i in x)
        if isinstance(x, dict):
            return {k: self._bind(v) for k, v in x.items()}
        if isinstance(x, Tensor) and x._level == 0:
            return self._capture(x)
        if isinstance(x, Traced) and not isinstance(x, JitTracer):
            raise OuterTracer()
        return x

    def _capture(self, t: Tensor) -> JitTracer:
        if id(t) not in self.captured:
            self.captured[id(t)] = (self.new_tracer(t._value, "t"), t)
        return self.captured[id(t)][0]

    def release(self) -> None:
        """Drop the recording (its tracers point back at it) once it is compiled."""
        self.equations.clear()
        self.values.clear()
        self.captured.clear()


def _times_ones(args: tuple, value: Any) -> JitTracer | None:
    """The traced factor of ``ones * x`` when the product is ``x`` itself, bit for bit.

    (1.0 * x == x for every float, signed zeros and NaN included; the constant must not
    change the result's shape or dtype.)
    """
    if len(args) != 2:
        return None
    for const, other in (args, args[::-1]):
        if (isinstance(other, JitTracer) and not isinstance(const, JitTracer)
                and np.shape(other.value) == np.shape(value)
                and np.result_type(other.value) == np.result_type(value)
                and (backend.is_array(const) or isinstance(const, float | int))
                and not isinstance(const, bool) and np.all(np.asarray(const) == 1)):
            return other
    return None


def _refuse_traced_mask(index: Any) -> None:
    items = index if isinstance(index, tuple) else (index,)
    for i in items:
        if isinstance(i, JitTracer) and np.result_type(i.value).kind == "b":
            raise ConcretizationError(
                f"indexing with a traced boolean mask at {user_location()} gives a "
                "result whose shape depends on the values; inside jit use "
                "np.where(mask, x, 0) instead")


def _values(x: Any) -> Any:
    if isinstance(x, JitTracer):
        return x.value
    if isinstance(x, tuple | list):
        return type(x)(_values(i) for i in x)
    if isinstance(x, dict):
        return {k: _values(v) for k, v in x.items()}
    return x


def values_of(x: Any) -> Any:
    """The concrete values behind the program variables in ``x``."""
    return _values(x)


def tracers_in(x: Any) -> list[str]:
    """The program variables that ``x`` (an argument, or a container of them) uses."""
    if isinstance(x, JitTracer):
        return [x.var]
    if isinstance(x, tuple | list):
        return [v for i in x for v in tracers_in(i)]
    if isinstance(x, dict):
        return [v for i in x.values() for v in tracers_in(i)]
    return []


def inputs_of(eq: Equation) -> list[str]:
    return tracers_in(eq.args) + tracers_in(eq.params)
