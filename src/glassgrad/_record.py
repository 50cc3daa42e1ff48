"""The one record of a computation: an equation ``(prim, args, params, out)``.

The eager tape, ``linearize``, ``trace``'s drawing, ``formula``, ``why`` and ``jit``'s
program all read the same kind of record. The tape's ``Node`` is an equation that also
remembers where cotangents go (``parents``) and which eager arrays it read (``saved``);
``jit``'s program is a list of plain equations whose arguments are program variables.
"""

from __future__ import annotations

from operator import itemgetter


class Equation(tuple):
    """``prim`` applied to ``args`` (values or variables) with ``params`` gave ``out``.

    A tuple, because one is built for every recorded operation.
    """

    __slots__ = ()
    prim = property(itemgetter(0))
    args = property(itemgetter(1))
    params = property(itemgetter(2))
    out = property(itemgetter(3))

    def __repr__(self) -> str:
        return f"Equation({self.prim.name}, {len(self.args)} args, {self.params})"


class Node(Equation):
    """An equation of the eager tape: ``(prim, args, params, ans, parents, saved)``.

    ``args`` are the argument values one level down (constants included), ``ans`` the
    output value, ``parents`` the ``(argnum, Tensor)`` pairs that receive cotangents, and
    ``saved`` the ``(version cell, version)`` pairs of the eager arrays the rules will
    read, checked before the backward pass reads them.
    """

    __slots__ = ()
    ans = property(itemgetter(3))
    parents = property(itemgetter(4))
    saved = property(itemgetter(5))
