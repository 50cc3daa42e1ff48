"""Forward mode: dual numbers that carry a tangent through every primitive.

``Dual`` is true forward mode: one sweep computes the value and its directional
derivative together, with each primitive's JVP rule from the same table as its VJP.
``push_tangents`` replays a recorded reverse-mode graph forward instead, which is how
``linearize`` evaluates the function once and then pushes any number of tangents.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._array_methods import ArrayMethods
from ._backend import shape_of, zeros_like
from ._mode import MODE
from ._primitive import Primitive
from ._rules import broadcast_to


class Dual(ArrayMethods):
    """A value paired with its tangent, owned by one forward-mode level."""

    __slots__ = ("primal", "tangent")

    def __init__(self, primal: Any, tangent: Any, level: int):
        self.primal = primal
        self.tangent = tangent
        self._level = level

    def _raw(self) -> Any:
        return self.primal

    @property
    def shape(self) -> tuple[int, ...]:
        return getattr(self.primal, "shape", ())

    @property
    def dtype(self) -> np.dtype:
        primal = self.primal
        return primal.dtype if hasattr(primal, "dtype") else np.result_type(primal)

    def _process(self, prim: Primitive, args: tuple, params: dict) -> Dual:
        level = self._level
        primals = list(args)
        tangents: list[Any] = [None] * len(args)
        for i, a in enumerate(args):
            if type(a) is Dual and a._level == level:
                primals[i] = a.primal
                tangents[i] = a.tangent
        if prim.nondifferentiable:  # no derivative: the value one level down is the result
            return prim(*primals, **params)
        ans = prim(*primals, **params)
        return Dual(ans, apply_jvp(prim, tangents, ans, primals, params), level)

    def _concretize_error(self, what: str) -> TypeError:
        return TypeError(
            f"{what} of a traced value inside jvp would cut the graph: the result would "
            "carry no derivative. Build arrays with np.stack or np.concatenate instead of "
            "np.array([...]), and read values from the output of jvp.")

    def __repr__(self) -> str:
        return f"Dual(level={self._level}, shape={self.shape}, dtype={self.dtype})"


def apply_jvp(prim: Primitive, tangents: list, ans: Any, args: list, params: dict) -> Any:
    """The output tangent of ``prim``, shaped like its output."""
    if prim.jvp is None:
        raise NotImplementedError(f"primitive '{prim.name}' has no JVP rule, so forward "
                                  "mode cannot go through it")
    out = prim.jvp(tangents, ans, *args, **params)
    if out is None:
        return zeros_like(ans)
    if shape_of(out) != shape_of(ans):
        out = broadcast_to(out, shape=shape_of(ans))
    if MODE.get().anomaly:
        from ._tensor import _check_finite

        _check_finite(out, prim.name, "forward (tangent)")
    return out


def push_tangents(order: list, leaf_tangents: dict[int, Any]) -> dict[int, Any]:
    """Tangents of every tensor in ``order`` (parents first), given those of the leaves."""
    tangents = dict(leaf_tangents)
    for t in order:
        node = t._node
        if node is None:
            continue
        ts: list[Any] = [None] * len(node.args)
        for i, parent in node.parents:
            ts[i] = tangents.get(id(parent))
        if all(x is None for x in ts):
            continue
        tangents[id(t)] = apply_jvp(node.prim, ts, node.ans, node.args, node.params)
    return tangents
