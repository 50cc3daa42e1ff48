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
from typing import Any

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
    """One differentiable operation: its implementation and its rules, side by side.

    * ``impl(*args, **params)`` computes the result on plain arrays.
    * ``vjps[i](g, ans, *args, **params)`` pulls the cotangent ``g`` of the output back to
      argument ``i``; ``None`` marks an argument that is never differentiated (an index, a
      condition). The engine un-broadcasts the result to the argument's shape.
    * ``jvp(tangents, ans, *args, **params)`` pushes tangents forward; ``tangents[i]`` is
      ``None`` for an argument with a zero tangent.

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

    def __call__(self, *args: Any, **params: Any) -> Any:
        top = None
        for a in args:
            if isinstance(a, Traced) and (top is None or a._level > top._level):
                top = a
        if top is None and self.traced_params:
            top = _first_traced([params.get(name) for name in self.traced_params])
        if top is None:
            return self.impl(*args, **params)
        if self.nondifferentiable:  # a mask or a sign: computed on the concrete values
            return self.impl(*[_concrete(a) for a in args], **params)
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


def _concrete(x: Any) -> Any:
    while isinstance(x, Traced) and x._differentiating:
        x = x._raw()
    return x


# The rule table: every primitive registered here is walked by the derivative tests.
PRIMITIVES: dict[str, Primitive] = {}


def register(prim: Primitive) -> Primitive:
    if prim.name in PRIMITIVES:
        raise ValueError(f"a primitive named {prim.name!r} is already registered; pick "
                         "another name, or remove the old one first with "
                         f"gg.extend.primitives.pop({prim.name!r})")
    PRIMITIVES[prim.name] = prim
    return prim
