"""The clean-up passes of a ``jit`` program: shared sub-expressions, dead code, buffers.

Every pass reads the program's equations and returns what it decided; none of them
changes a value. Constants need no pass: operations on constants alone were already
evaluated while tracing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._jit_trace import inputs_of, tracers_in
from ._record import Equation


def share_common_subexpressions(equations: list[Equation], renderer: Any
                                ) -> tuple[list[Equation], dict[str, str]]:
    """Drop equations that repeat an earlier call with the same inputs (primitives are
    pure functions); returns the kept equations and the renaming of the dropped ones."""
    rename: dict[str, str] = {}
    seen: dict[str, str] = {}
    kept = []
    for eq in equations:
        key = eq.prim.name + ":" + renderer.call(eq, rename)
        if key in seen:
            rename[eq.out] = seen[key]
            continue
        seen[key] = eq.out
        kept.append(eq)
    return kept, rename


def remove_dead_code(equations: list[Equation], outputs: set[str],
                     rename: dict[str, str]) -> list[Equation]:
    live = set(outputs)
    kept = []
    for eq in reversed(equations):
        if eq.out in live:
            kept.append(eq)
            live.update(rename.get(v, v) for v in inputs_of(eq))
    return kept[::-1]


def reusable_buffers(equations: list[Equation], fresh: list[bool], outputs: set[str],
                     values: dict[str, Any], rename: dict[str, str]) -> dict[int, str]:
    """For each equation index, an input buffer it may overwrite with ``out=``.

    Safe when the input is a fresh ufunc result, used only by ufuncs (so no view of it
    exists), dead after this equation, not returned, and of the output's shape and dtype.
    """
    fresh_vars = {eq.out for eq, f in zip(equations, fresh, strict=True) if f}
    last_use: dict[str, int] = {}
    only_ufuncs: dict[str, bool] = {}
    for i, eq in enumerate(equations):
        for v in (rename.get(n, n) for n in inputs_of(eq)):
            last_use[v] = i
            only_ufuncs[v] = only_ufuncs.get(v, True) and fresh[i]
    reuse = {}
    for i, eq in enumerate(equations):
        if not fresh[i] or type(values[eq.out]) is not np.ndarray:
            continue
        out_value = values[eq.out]
        for v in (rename.get(n, n) for n in tracers_in(eq.args)):
            buf = values.get(v)
            if (v in fresh_vars and v not in outputs and last_use.get(v) == i
                    and only_ufuncs[v] and type(buf) is np.ndarray
                    and buf.shape == out_value.shape and buf.dtype == out_value.dtype):
                reuse[i] = v
                break
    return reuse


def dead_after(equations: list[Equation], rename: dict[str, str],
               keep: set[str]) -> dict[int, list[str]]:
    """For each line, the variables used there for the last time (outputs excepted)."""
    last_use: dict[str, int] = {}
    for i, eq in enumerate(equations):
        for v in inputs_of(eq):
            last_use[rename.get(v, v)] = i
    dead: dict[int, list[str]] = {}
    for v, i in last_use.items():
        if v not in keep:
            dead.setdefault(i, []).append(v)
    return {i: sorted(vs, key=lambda v: (v[0], int(v[1:]))) for i, vs in dead.items()}
