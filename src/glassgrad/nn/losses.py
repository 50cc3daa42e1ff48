"""Losses: the seed's squared error, mean squared error and cross-entropy.

Each loss works on eager tensors, plain arrays and traced values. Predictions and targets
of different shapes raise ``ValueError`` instead of broadcasting: ``(N, 1) - (N,)`` would
silently give an ``(N, N)`` matrix of wrong errors.

``reduction`` tells ``fit`` how a loss scales with the batch: ``"sum"`` over samples (the
seed's ``E``) or ``"mean"``. The squared errors call the primitives directly rather than
the operators: they sit on the per-sample training hot path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _rules as R
from .._ops import log_softmax
from .._primitive import Traced
from .._rules import raw

__all__ = ["cross_entropy", "mse_loss", "squared_error"]


def _target(target: Any) -> Any:
    # Lists and numbers become arrays; tensors and arrays pass through untouched.
    return target if hasattr(target, "shape") else np.asarray(target, dtype=float)


def _check_same_shape(name: str, pred: Any, target: Any) -> None:
    pred_shape, target_shape = np.shape(raw(pred)), np.shape(raw(target))
    if pred_shape != target_shape:
        raise ValueError(f"{name}: prediction has shape {pred_shape} but target has shape "
                         f"{target_shape}; reshape one of them (e.g. y.reshape(-1, 1)) "
                         "rather than rely on broadcasting")


def squared_error(pred: Any, target: Any) -> Any:
    """``0.5 * sum((target - pred)**2)``: the seed's ``E``, summed over every entry.

    >>> import numpy as np, glassgrad as gg
    >>> float(gg.nn.squared_error(np.array([1.0, 2.0]), np.array([0.0, 4.0])))
    2.5
    """
    target = _target(target)
    _check_same_shape("squared_error", pred, target)
    diff = R.sub(pred, target)
    return R.mul(0.5, R.sum_(R.mul(diff, diff), axis=None, keepdims=False))


squared_error.reduction = "sum"  # type: ignore[attr-defined]


def mse_loss(pred: Any, target: Any) -> Any:
    """``mean((target - pred)**2)`` over every entry.

    >>> import numpy as np, glassgrad as gg
    >>> float(gg.nn.mse_loss(np.array([1.0, 2.0]), np.array([0.0, 4.0])))
    2.5
    """
    target = _target(target)
    _check_same_shape("mse_loss", pred, target)
    diff = R.sub(pred, target)
    return R.mean(R.mul(diff, diff), axis=None, keepdims=False)


mse_loss.reduction = "mean"  # type: ignore[attr-defined]


def cross_entropy(logits: Any, labels: Any) -> Any:
    """Mean negative log-likelihood of integer ``labels`` under ``softmax(logits)``.

    ``logits`` has shape ``(N, C)`` and ``labels`` shape ``(N,)`` with values in
    ``0..C-1`` (or ``(C,)`` and one label). Computed with ``log_softmax``, so it stays
    finite for logits as large as 1e4.

    >>> import numpy as np, glassgrad as gg
    >>> round(float(gg.nn.cross_entropy(np.zeros((2, 4)), np.array([0, 3]))), 4)
    1.3863
    """
    labels = raw(labels)
    # Inside gg.jit the labels are recorded, not known: only their shape and dtype are.
    known = not isinstance(labels, Traced)
    if known:
        labels = np.asarray(labels)
    shape = np.shape(raw(logits))
    if len(shape) == 1 and labels.ndim == 0:
        return cross_entropy(logits.reshape(1, -1), labels.reshape(1))
    if len(shape) != 2 or labels.shape != shape[:1]:
        raise ValueError(f"cross_entropy: expected logits (N, C) and labels (N,), got logits "
                         f"{shape} and labels {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"cross_entropy: labels must be integer class indices, got dtype "
                        f"{labels.dtype}; use labels.astype(int)")
    if known and labels.size and (labels.min() < 0 or labels.max() >= shape[1]):
        bad = labels[(labels < 0) | (labels >= shape[1])]
        raise ValueError(f"cross_entropy: labels must lie in 0..{shape[1] - 1} for {shape[1]} "
                         f"classes, got {bad[:5].tolist()}")
    logp = log_softmax(logits, axis=-1)
    return -logp[np.arange(shape[0]), labels].mean()


cross_entropy.reduction = "mean"  # type: ignore[attr-defined]
