"""Checking derivatives: finite differences, gradient checks, anomaly detection."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _backend as backend
from ._mode import anomaly_mode
from ._pytree import flatten, unflatten
from ._tensor import Tensor
from ._transforms import Argnums, _normalize_argnums, grad


class GradientCheckError(AssertionError):
    """Autodiff and finite differences disagree; the message names the worst entry.

    When autodiff gave 0, NaN or infinity where finite differences did not, the message
    includes ``gg.why``'s report and ``.diagnosis`` holds it (else ``None``).
    """

    diagnosis: Any = None


@dataclass(frozen=True)
class GradCheckReport:
    """What ``check_grad`` compared: the worst absolute and relative errors."""

    max_abs_error: float
    max_rel_error: float
    analytic: Any
    numeric: Any

    def __str__(self) -> str:
        return (f"gradient check passed: max abs error {self.max_abs_error:.3g}, "
                f"max rel error {self.max_rel_error:.3g}")


def _default_eps(dtype: np.dtype, method: str) -> float:
    # Balances truncation error against round-off: eps**(1/3) central, eps**(1/2) forward.
    machine = np.finfo(dtype).eps
    return float(machine ** (1 / 3) if method == "central" else machine ** 0.5)


def numerical_grad(fun: Callable, *args: Any, argnums: Argnums = 0, eps: float | None = None,
                   method: str = "central") -> Any:
    """The gradient of a scalar ``fun`` by finite differences, shaped like ``grad``'s.

    >>> import numpy as np, glassgrad as gg
    >>> g = gg.numerical_grad(lambda x: np.sum(x ** 2), np.array([1.0, 2.0]))
    >>> np.round(g, 6)
    array([2., 4.])
    """
    if method not in ("central", "forward"):
        raise ValueError(f"method must be 'central' or 'forward', got {method!r}")
    nums = _normalize_argnums(argnums, len(args))
    args = list(args)
    results = []
    for i in nums:
        leaves, treedef = flatten(args[i])
        arrays = [_float_array(x) for x in leaves]
        grads = []
        for m, x in enumerate(arrays):
            step = _default_eps(x.dtype, method) if eps is None else eps

            def f_at(value, m=m, i=i, treedef=treedef, arrays=arrays):
                trial = list(arrays)
                trial[m] = value
                call = list(args)
                call[i] = unflatten(treedef, trial)
                return _scalar(fun(*call))

            grads.append(_differences(f_at, x, step, method))
        tree = unflatten(treedef, [g[()] if np.ndim(g) == 0 and not backend.is_numpy_array(o)
                                   else g for g, o in zip(grads, leaves, strict=True)])
        results.append(tree)
    return results[0] if isinstance(argnums, int) else tuple(results)


def _untensor(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _float_array(x: Any) -> np.ndarray:
    x = np.asarray(_untensor(x))
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


def _scalar(value: Any) -> float:
    value = np.asarray(_untensor(value))
    if value.size != 1:
        raise TypeError(f"numerical_grad needs a scalar output, got shape {value.shape}")
    return float(value.reshape(()))


def _differences(f_at: Callable, x: np.ndarray, eps: float, method: str) -> np.ndarray:
    g = np.zeros(x.shape, dtype=x.dtype)
    flat = g.reshape(-1)
    base = None if method == "central" else f_at(x)
    for k in range(x.size):
        # The step scales with |x| so large inputs are not lost in round-off.
        h = eps * max(1.0, abs(float(x.reshape(-1)[k])))
        up = x.copy()
        up.reshape(-1)[k] += h
        if method == "central":
            down = x.copy()
            down.reshape(-1)[k] -= h
            flat[k] = (f_at(up) - f_at(down)) / (up.reshape(-1)[k] - down.reshape(-1)[k])
        else:
            flat[k] = (f_at(up) - base) / (up.reshape(-1)[k] - x.reshape(-1)[k])
    return g


def check_grad(fun: Callable, *args: Any, argnums: Argnums = 0, rtol: float = 1e-5,
               atol: float = 1e-8) -> GradCheckReport:
    """Compare ``grad(fun)`` with central differences (computed in float64).

    Returns a report when they agree; raises ``GradientCheckError`` naming the worst
    entry otherwise.

    >>> import numpy as np, glassgrad as gg
    >>> report = gg.check_grad(lambda x: np.sum(np.sin(x)), np.array([0.1, 0.2]))
    >>> report.max_abs_error < 1e-8
    True
    """
    analytic = grad(fun, argnums=argnums)(*args)
    wide = [_to_float64(a) for a in args]
    numeric = numerical_grad(fun, *wide, argnums=argnums)
    a_leaves, n_leaves = flatten(analytic)[0], flatten(numeric)[0]
    max_abs = max_rel = 0.0
    for position, (a, n) in enumerate(zip(a_leaves, n_leaves, strict=True)):
        # An eager gradient may itself be on the tape (it depends on parameters): compare
        # its values.
        a, n = np.asarray(_untensor(a), dtype=np.float64), np.asarray(n, dtype=np.float64)
        err = np.abs(a - n)
        rel = err / np.maximum(np.abs(n), np.finfo(np.float64).tiny)
        bad = ~(err <= atol + rtol * np.abs(n))
        if np.any(bad):
            worst = np.unravel_index(int(np.argmax(np.where(bad, err, -1))), a.shape)
            where = f"leaf {position}, " if len(a_leaves) > 1 else ""
            message = (
                f"gradient check failed at {where}index {tuple(int(i) for i in worst)}: "
                f"autodiff {a[worst]:.10g}, finite differences {n[worst]:.10g}, "
                f"abs error {err[worst]:.3g}, rel error {rel[worst]:.3g} "
                f"(rtol={rtol}, atol={atol}; {int(bad.sum())} of {a.size} entries off)")
            diagnosis = None
            if np.any(bad & ((a == 0) | ~np.isfinite(a))):
                diagnosis = _diagnose(fun, args, argnums)
                message += ("\n" + str(diagnosis) if diagnosis else
                            "\nautodiff gives 0, NaN or inf there: gg.why(fun)(*args) "
                            "says why")
            error = GradientCheckError(message)
            error.diagnosis = diagnosis
            raise error
        if a.size:
            max_abs = max(max_abs, float(err.max()))
            max_rel = max(max_rel, float(np.where(err > 0, rel, 0.0).max()))
    return GradCheckReport(max_abs, max_rel, analytic, numeric)


def _diagnose(fun: Callable, args: tuple, argnums: Argnums) -> Any:
    """``gg.why``'s report for a failed check, or None if it cannot be made."""
    from .why import why

    try:
        return why(fun, argnums=argnums)(*args)
    except Exception:  # noqa: BLE001 - the check's own message must survive
        return None


def _to_float64(tree: Any) -> Any:
    leaves, treedef = flatten(tree)
    out = []
    for x in leaves:
        x = _untensor(x)
        if backend.is_numpy_array(x) and np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
        out.append(x)
    return unflatten(treedef, out)


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise ``FloatingPointError`` at the first operation whose forward or backward
    pass produces NaN or Inf, naming it; the message ends with how to ask ``gg.why``
    which elements are affected and why.

    >>> import numpy as np, glassgrad as gg
    >>> with gg.detect_anomaly():
    ...     gg.grad(lambda x: np.sum(np.sqrt(x)))(np.array([0.0, 1.0]))
    Traceback (most recent call last):
    ...
    FloatingPointError: the backward pass of 'sqrt' produced Inf. ... gg.why(f)(*args) ...
    """
    try:
        with anomaly_mode(), np.errstate(divide="ignore", invalid="ignore"):
            yield
    except FloatingPointError as err:
        text = str(err)
        if WHY_HINT not in text:
            err.args = (f"{text} {WHY_HINT}", *err.args[1:])
        raise


WHY_HINT = ("To see which elements of the gradient are affected, the operation, its input "
            "values and the fix: gg.why(f)(*args) (outside detect_anomaly).")
