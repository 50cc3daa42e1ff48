"""Losses: the seed's squared error, mean squared error, cross-entropy, negative
log-likelihood, binary cross-entropy (on probabilities or logits) and the Huber loss.

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
from .._backend import concrete as raw
from .._ops import log_softmax
from .._primitive import Traced

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
           "huber_loss", "mse_loss", "nll_loss", "squared_error"]


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
    shape = np.shape(raw(logits))
    if len(shape) == 1 and np.ndim(raw(labels)) == 0:
        return cross_entropy(logits.reshape(1, -1), np.reshape(raw(labels), 1))
    labels = _check_labels("cross_entropy", "logits", shape, labels)
    return _pick_mean(log_softmax(logits, axis=-1), labels, shape[0])


def _check_labels(name: str, what: str, shape: tuple[int, ...], labels: Any) -> Any:
    """Integer class labels ``(N,)`` in ``0..C-1`` for scores of ``shape`` ``(N, C)``."""
    labels = raw(labels)
    # Inside gg.jit the labels are recorded, not known: only their shape and dtype are.
    known = not isinstance(labels, Traced)
    if known:
        labels = np.asarray(labels)
    if len(shape) != 2 or labels.shape != shape[:1]:
        raise ValueError(f"{name}: expected {what} (N, C) and labels (N,), got {what} "
                         f"{shape} and labels {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name}: labels must be integer class indices, got dtype "
                        f"{labels.dtype}; use labels.astype(int)")
    if known and labels.size and (labels.min() < 0 or labels.max() >= shape[1]):
        bad = labels[(labels < 0) | (labels >= shape[1])]
        raise ValueError(f"{name}: labels must lie in 0..{shape[1] - 1} for {shape[1]} "
                         f"classes, got {bad[:5].tolist()}")
    return labels


def _pick_mean(logp: Any, labels: Any, n: int) -> Any:
    return -logp[np.arange(n), labels].mean()


cross_entropy.reduction = "mean"  # type: ignore[attr-defined]


def nll_loss(log_probs: Any, labels: Any) -> Any:
    """Mean of ``-log_probs[i, labels[i]]``: the loss for a model that ends in
    ``log_softmax`` (``cross_entropy(z, y) == nll_loss(log_softmax(z), y)``).

    >>> import numpy as np, glassgrad as gg
    >>> float(gg.nn.nll_loss(np.log(np.array([[0.5, 0.5], [0.25, 0.75]])), np.array([0, 1])))
    0.4904146265058631
    """
    shape = np.shape(raw(log_probs))
    labels = _check_labels("nll_loss", "log_probs", shape, labels)
    return _pick_mean(log_probs, labels, shape[0])


nll_loss.reduction = "mean"  # type: ignore[attr-defined]

_LOG_FLOOR = float(np.exp(-100.0))  # PyTorch clamps each log term at -100


def binary_cross_entropy(probs: Any, targets: Any) -> Any:
    """``-mean(t log p + (1 - t) log(1 - p))`` for probabilities ``p`` in [0, 1]; each log
    is clamped at -100 as in PyTorch, so ``p = 0`` or 1 gives a large finite loss.

    Prefer :func:`binary_cross_entropy_with_logits` on the raw scores: it is exact where
    the sigmoid rounds to 0 or 1.

    >>> import numpy as np, glassgrad as gg
    >>> round(float(gg.nn.binary_cross_entropy(np.array([0.9, 0.2]), np.array([1.0, 0.0]))), 6)
    0.164252
    """
    targets = _target(targets)
    _check_same_shape("binary_cross_entropy", probs, targets)
    p = raw(probs)
    if not isinstance(p, Traced) and np.size(p) and (np.min(p) < 0 or np.max(p) > 1):
        raise ValueError("binary_cross_entropy: probs must lie in [0, 1]; for raw scores use "
                         "binary_cross_entropy_with_logits")
    log_p = R.log(R.clip(probs, lo=_LOG_FLOOR, hi=None))
    log_q = R.log(R.clip(R.sub(1.0, probs), lo=_LOG_FLOOR, hi=None))
    terms = R.add(R.mul(targets, log_p), R.mul(R.sub(1.0, targets), log_q))
    return R.neg(R.mean(terms, axis=None, keepdims=False))


binary_cross_entropy.reduction = "mean"  # type: ignore[attr-defined]


def binary_cross_entropy_with_logits(logits: Any, targets: Any) -> Any:
    """``binary_cross_entropy(sigmoid(z), t)`` computed stably from the logits ``z``:
    ``mean(log(1 + exp(z)) - z t)``, with ``logaddexp(0, z)`` for the first term, finite
    for any ``z`` and smooth everywhere (its gradient is ``sigmoid(z) - t``, also at
    ``z = 0``, where a form with ``max(z, 0)`` and ``|z|`` would meet two kinks).

    >>> import numpy as np, glassgrad as gg
    >>> float(gg.nn.binary_cross_entropy_with_logits(np.array([1000.0]), np.array([0.0])))
    1000.0
    >>> float(gg.grad(lambda z: gg.nn.binary_cross_entropy_with_logits(z, np.ones(1)))(
    ...     np.zeros(1))[0])
    -0.5
    """
    targets = _target(targets)
    _check_same_shape("binary_cross_entropy_with_logits", logits, targets)
    terms = R.sub(np.logaddexp(0.0, logits), R.mul(logits, targets))
    return R.mean(terms, axis=None, keepdims=False)


binary_cross_entropy_with_logits.reduction = "mean"  # type: ignore[attr-defined]


def huber_loss(pred: Any, target: Any, delta: float = 1.0) -> Any:
    """Mean over entries of ``0.5 d^2`` where ``|d| <= delta`` and
    ``delta (|d| - 0.5 delta)`` elsewhere, with ``d = pred - target``.

    Written as ``0.5 q^2 + delta (|d| - q)`` with ``q = min(|d|, delta)``: one smooth
    formula, no branches.

    >>> import numpy as np, glassgrad as gg
    >>> float(gg.nn.huber_loss(np.array([0.5, 3.0]), np.array([0.0, 0.0])))
    1.3125
    """
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    target = _target(target)
    _check_same_shape("huber_loss", pred, target)
    a = R.abs_(R.sub(pred, target))
    q = R.minimum(a, float(delta))
    terms = R.add(R.mul(0.5, R.mul(q, q)), R.mul(float(delta), R.sub(a, q)))
    return R.mean(terms, axis=None, keepdims=False)


huber_loss.reduction = "mean"  # type: ignore[attr-defined]
