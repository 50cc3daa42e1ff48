"""``gg.jit``: trace a function once per signature into straight-line NumPy source.

The function runs once on ``JitTracer`` values (``_jit_trace``), which record every
primitive they take part in; derivative transforms inside it run as usual on top of the
tracers, so their forward *and* backward passes end up in the program. The program is
cleaned up (``_jit_passes``) and printed as Python source, one line per primitive, which
is what runs (``_jit_printer``): ``jitted.source(*args)`` shows it.

Programs are cached per signature, at most ``CACHE_SIZE`` per jitted function (the least
recently used goes first).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _backend as backend
from ._jit_printer import BACKENDS, Compiled, compile_program
from ._jit_trace import ConcretizationError, JitTracer, OuterTracer, Program
from ._mode import recording
from ._primitive import Traced, new_level
from ._pytree import flatten, unflatten
from ._tensor import Tensor

__all__ = ["CACHE_SIZE", "ConcretizationError", "jit"]

CACHE_SIZE = 256  # programs kept per jitted function

# --- the transform -------------------------------------------------------------------------

_is_numpy_array = backend.is_numpy_array  # `jit` has a parameter named backend

_TRACED = object()  # marks a call that jit cannot compile (an outer transform is active)


def _describe(leaf: Any) -> Any:
    """The part of a leaf that the compiled program depends on; ``_TRACED`` if none."""
    if isinstance(leaf, Tensor) and leaf._level == 0:
        return _TRACED if leaf.requires_grad else ("a", leaf.shape, leaf.dtype.str)
    if isinstance(leaf, Traced):
        return _TRACED
    if backend.is_numpy_array(leaf):
        return ("a", leaf.shape, leaf.dtype.str)
    if isinstance(leaf, np.generic):
        return ("g", leaf.dtype.str)
    if isinstance(leaf, float | int | complex) and not isinstance(leaf, bool):
        return ("py", type(leaf).__name__)
    if backend.is_foreign_array(leaf):
        return ("foreign", type(leaf), tuple(leaf.shape), np.dtype(leaf.dtype).str)
    if hasattr(leaf, "__array__") or hasattr(leaf, "__array_interface__"):
        raise TypeError(f"jit cannot take a {type(leaf).__name__} as an argument: it is "
                        "neither a NumPy array nor an array type that keeps NumPy's "
                        "protocols; pass np.asarray(x), or mark it static")
    return None  # static: the value itself goes into the signature


def jit(fun: Callable, static_argnums: int | Sequence[int] = (),
        backend: str = "numpy") -> Callable:
    """Trace ``fun`` once per input signature into a flat NumPy program, then run that.

    The signature is the container structure, the shapes and dtypes of arrays, and the
    values of static arguments (``static_argnums``) and of non-numeric leaves. Python
    control flow on array values is refused while tracing, naming the line.

    ``backend="numba"`` (the optional extra ``fast``) runs each run of elementwise lines
    as one compiled loop; ``jitted.kernels(*args)`` shows them (docs/jit.md).

    >>> import numpy as np, glassgrad as gg
    >>> step = gg.jit(gg.value_and_grad(lambda x: np.sum(np.tanh(x) ** 2)))
    >>> value, g = step(np.array([0.5, -1.0]))
    >>> print(step.source(np.array([0.5, -1.0])).splitlines()[1])
        v2 = np.tanh(a1)
    """
    static = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    kind = backend
    if kind not in BACKENDS:
        raise ValueError(f"jit: unknown backend {kind!r}; choose one of {BACKENDS}")
    if kind == "numba":
        try:
            import numba  # noqa: F401
        except ImportError:
            raise ImportError("gg.jit(..., backend='numba') needs numba: pip install "
                              "'glassgrad[fast]' (or pip install numba)") from None
    cache: OrderedDict[Any, Compiled] = OrderedDict()

    def compiled_for(args: tuple, kwargs: dict) -> tuple[Compiled | None, list]:
        key, values = _signature(args, kwargs, static)
        if key is None:
            return None, values
        compiled = cache.get(key)
        if compiled is None:
            try:
                compiled = _trace_call(fun, args, kwargs, static, kind)
            except OuterTracer:  # closes over a value an outer transform differentiates
                return None, values
            cache[key] = compiled
            if len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        return compiled, values

    @functools.wraps(fun)
    def jitted(*args: Any, **kwargs: Any) -> Any:
        compiled, values = compiled_for(args, kwargs)
        if compiled is None:  # differentiated from outside: run the Python function
            return fun(*args, **kwargs)
        outs = compiled.run(*values)
        if compiled.any_scalar:
            outs = [o[()] if scalar and _is_numpy_array(o) else o
                    for o, scalar in zip(outs, compiled.scalar_outputs, strict=True)]
        return unflatten(compiled.out_def, outs)

    def source(*args: Any, **kwargs: Any) -> str:
        """The Python source that runs for arguments like these."""
        compiled, _ = compiled_for(args, kwargs)
        if compiled is None:
            raise TypeError("these arguments (or values the function closes over) are traced "
                            "by an outer transform; jit runs the Python function for them "
                            "and has no program to show")
        return compiled.source

    def lower(*args: Any, **kwargs: Any) -> Compiled:
        """The compiled program for arguments like these (``.run``, ``.source``)."""
        compiled, _ = compiled_for(args, kwargs)
        if compiled is None:
            raise TypeError("these arguments are traced by an outer transform")
        return compiled

    def kernels(*args: Any, **kwargs: Any) -> str:
        """backend="numba": the program that runs (a call per fused run) and the source
        of each fused loop; empty when nothing was fused."""
        return lower(*args, **kwargs).kernels

    jitted.source = source  # type: ignore[attr-defined]
    jitted.kernels = kernels  # type: ignore[attr-defined]
    jitted.lower = lower  # type: ignore[attr-defined]
    jitted.cache_size = lambda: len(cache)  # type: ignore[attr-defined]
    return jitted


def _signature(args: tuple, kwargs: dict, static: tuple[int, ...]) -> tuple[Any, list]:
    """The cache key of a call and its dynamic leaf values, in one pass over the arguments.

    The key is ``None`` when an argument is traced by an outer transform.
    """
    parts: list[Any] = []
    values: list[Any] = []
    n = len(args)
    for i, arg in enumerate(args):
        if i in static or i - n in static:
            parts.append(("static", arg))
        elif not _walk(arg, parts, values):
            return None, values
    for name, arg in kwargs.items():
        parts.append(name)
        if not _walk(arg, parts, values):
            return None, values
    key = tuple(parts)
    try:
        hash(key)
    except TypeError:
        raise TypeError("jit: a static argument (or a non-array leaf) must be hashable") from None
    return key, values


def _walk(x: Any, parts: list, values: list) -> bool:
    """Describe ``x`` into ``parts`` and collect its dynamic leaves, in ``flatten`` order."""
    kind = type(x)
    if kind is np.ndarray:
        parts.append(("a", x.shape, x.dtype.str))
        values.append(x)
    elif kind is tuple or kind is list or isinstance(x, tuple):  # namedtuples too
        parts.append((kind, len(x)))
        return all(_walk(item, parts, values) for item in x)
    elif isinstance(x, dict):
        parts.append((kind, tuple(x)))
        return all(_walk(item, parts, values) for item in x.values())
    elif x is None:
        parts.append(None)  # an empty container
    else:
        d = _describe(x)
        if d is _TRACED:
            return False
        parts.append(("static", x) if d is None else d)
        if d is not None:
            values.append(_input_value(x))
    return True


def _trace_call(fun: Callable, args: tuple, kwargs: dict, static: tuple[int, ...],
                backend: str = "numpy") -> Compiled:
    n = len(args)
    marked = [_Static(a) if (i in static or i - n in static) else a for i, a in enumerate(args)]
    leaves, treedef = flatten((tuple(marked), kwargs))
    dynamic = [i for i, leaf in enumerate(leaves)
               if not isinstance(leaf, _Static) and _describe(leaf) is not None]
    leaves = [leaf.value if isinstance(leaf, _Static) else leaf for leaf in leaves]
    return _trace(fun, leaves, treedef, dynamic, getattr(fun, "__name__", "fun"), backend)


@dataclass(frozen=True)
class _Static:
    """Wraps a static argument so that flattening keeps it whole."""

    value: Any


def _input_value(leaf: Any) -> Any:
    return leaf._value if isinstance(leaf, Tensor) else leaf


def _trace(fun: Callable, leaves: list, treedef: tuple, dynamic: list[int],
           name: str, backend: str = "numpy") -> Compiled:
    program = Program(level=new_level())
    traced = list(leaves)
    for i in dynamic:
        traced[i] = program.add_input(_input_value(leaves[i]))
    args, kwargs = unflatten(treedef, traced)
    with recording(program):
        out = fun(*args, **kwargs)
    out_leaves, out_def = flatten(out)
    for o in out_leaves:
        if isinstance(o, Traced) and not isinstance(o, JitTracer):
            raise OuterTracer()  # a value of an enclosing transform, through a closure
    safe_name = "".join(c if c.isalnum() else "_" for c in name) or "fun"
    try:
        return compile_program(program, out_leaves, out_def, f"jit_{safe_name}", backend)
    finally:
        program.release()
