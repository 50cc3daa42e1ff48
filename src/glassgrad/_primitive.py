"""Primitives and how a call to one is routed to the right level of tracing.

A primitive is one NumPy-level operation together with its derivative rules. Calling it
(``bind``) on plain arrays just runs the NumPy implementation. When an argument is a
traced value, the primitive hands itself to the trace of the *highest* level among its
arguments; that trace unwraps its own values, calls the primitive again on the values one
level down, and wraps the result. Nested transforms therefore never confuse each other's
perturbations: each one only ever sees its own level.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# Levels of transforms grow monotonically, so an inner transform always outranks the
# transforms that enclose it. Level 0 is the eager tape of ``Tensor``.
_level_counter = itertools.count(1)


def new_level() -> int:
    """A fresh level, higher than every level handed out before."""
    return next(_level_counter)


class Traced:
    """Base of every traced value. ``_level`` says which transform owns it.

    ``_differentiating`` is False for values that record a program (``jit``) rather than
    derivatives: they are never unwrapped to a concrete value.
    """

    __slots__ = ("_level",)
    _differentiating = True

    def _raw(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _process(self, prim: Primitive, args: tuple, params: dict) -> Any:  # pragma: no cover
        raise NotImplementedError


class SourceCall(NamedTuple):
    """What a primitive's ``source`` column gets to print one call as ``jit`` source:
    ``args`` and ``params`` already printed, and the concrete ``values`` of the arguments
    and ``raw_params`` (for decisions on shapes and types)."""

    args: list[str]
    params: dict[str, str]
    values: list[Any]
    raw_params: dict[str, Any]


@dataclass(frozen=True)
class Examples:
    """How the table-driven tests exercise a primitive.

    ``make_args(rng)`` returns a list of ``(args, params)`` examples with valid inputs;
    ``smooth`` is False for primitives whose numeric derivative is only checked away from
    kinks (the examples must then stay away from them).
    """

    make_args: Callable[[Any], list[tuple[tuple, dict]]]
    second_order: bool = True


@dataclass(eq=False)
class Primitive:
    """One operation: its implementation and its rules, side by side, and everything the
    other interpreters need to know about it (the row of the rule table).

    * ``impl(*args, **params)`` computes the result on plain arrays.
    * ``vjps[i](g, ans, *args, **params)`` pulls the cotangent ``g`` of the output back to
      argument ``i``; ``None`` marks an argument that is never differentiated (an index, a
      condition). The engine un-broadcasts the result to the argument's shape.
    * ``jvp(tangents, ans, *args, **params)`` pushes tangents forward; ``tangents[i]`` is
      ``None`` for an argument with a zero tangent.
    * ``nondifferentiable``: the result carries no derivative (a comparison, a mask, an
      integer cast). It still goes to the interpreter that owns its arguments, so ``jit``
      records it and derivative levels unwrap their values and call it one level down.
    * ``numpy``: the NumPy ufuncs and functions that dispatch to this primitive on a
      traced value (derived from ``impl`` when it is a ufunc).
    * ``sympy(sp, *args, **params)``: the same operation on SymPy expressions, for
      ``formula`` and the ``explain`` command; ``sympy_derivatives`` where the engine's
      convention at a kink differs from what SymPy would say.
    * ``source(args, params)``: how ``jit`` prints a call (default: the ufunc's name, or a
      call of the implementation).

    Rules are written with primitives, never with raw ``.data``, so they are
    differentiable themselves and higher derivatives need no extra code.
    """

    name: str
    impl: Callable[..., Any]
    vjps: Sequence[Callable[..., Any] | None] = ()
    jvp: Callable[..., Any] | None = None
    nondifferentiable: bool = False
    test: Examples | None = field(default=None, repr=False)
    # Parameters that may hold traced values (an index array inside jit); rarely set.
    traced_params: tuple[str, ...] = ()
    numpy: tuple[Callable[..., Any], ...] = ()
    elementwise: bool = False
    sympy: Callable[..., Any] | None = field(default=None, repr=False)
    sympy_derivatives: tuple[Callable[..., Any], ...] | None = field(default=None, repr=False)
    source: Callable[..., str] | None = field(default=None, repr=False)
    # ``vmap``: ``batch(args, dims, **params) -> (out, out_dim)``, where ``dims[i]`` is the
    # batch axis of ``args[i]`` (None: not batched). Rows without one get it from their
    # family: ``elementwise`` rows broadcast, ``reduction`` rows (``axis``/``keepdims``
    # parameters) shift the axis; the rest run in a loop over the batch.
    batch: Callable[..., Any] | None = field(default=None, repr=False)
    reduction: bool = False

    def __call__(self, *args: Any, **params: Any) -> Any:
        top = None
        for a in args:
            if isinstance(a, Traced) and (top is None or a._level > top._level):
                top = a
        if self.traced_params:
            found = _first_traced([params.get(name) for name in self.traced_params])
            if found is not None and (top is None or found._level > top._level):
                top = found
        if top is None:
            return self.impl(*args, **params)
        return top._process(self, args, params)

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def _first_traced(x: Any) -> Traced | None:
    if isinstance(x, Traced):
        return x
    if isinstance(x, tuple | list):
        for item in x:
            found = _first_traced(item)
            if found is not None:
                return found
    return None


class _Registry(dict):
    """The rule table: a dict that counts its changes, so that everything derived from
    the rows (NumPy's dispatch table) knows when to rebuild, however it was changed."""

    version = 0

    def _changed(self) -> None:
        _Registry.version += 1

    def __setitem__(self, key: str, value: Primitive) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def pop(self, *args: Any) -> Any:
        self._changed()
        return super().pop(*args)

    def popitem(self) -> Any:
        self._changed()
        return super().popitem()

    def clear(self) -> None:
        super().clear()
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._changed()
        return super().setdefault(key, default)


# The rule table: every primitive registered here is walked by the derivative tests.
PRIMITIVES: dict[str, Primitive] = _Registry()


def registry_version() -> int:
    """Grows with every change of the table, so tables derived from the rows rebuild."""
    return _Registry.version


def register(prim: Primitive) -> Primitive:
    if prim.name in PRIMITIVES:
        raise ValueError(f"a primitive named {prim.name!r} is already registered; pick "
                         "another name, or remove the old one first with "
                         f"gg.extend.primitives.pop({prim.name!r})")
    PRIMITIVES[prim.name] = prim
    return prim
