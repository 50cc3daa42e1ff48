"""Data-parallel training on Dask arrays, run by Dask's own scheduler.

``gg.nn.fit`` and ``gg.nn.TrainStep`` come here when the data is a Dask array chunked
along the samples. Each step is one Dask graph:

- the model, with its current parameters, is one key of the graph, so it travels to
  each worker once per step (not once per chunk);
- one task per chunk computes that chunk's loss and gradients with NumPy on the worker
  that holds (or generates) the chunk, weighted by its share of the samples;
- the per-chunk results are summed pairwise in a fixed binary tree (chunk 0 + chunk 1,
  chunk 2 + chunk 3, ...), so the sum, and therefore the trained parameters, do not
  depend on which worker finishes first;
- the optimizer then updates the parameters on the client, with NumPy, as in eager
  training.

The graph runs on whatever scheduler is active: a ``dask.distributed.Client`` (a
``LocalCluster`` or any cluster by address), or Dask's threads without one. Data is
never gathered on the client: only one loss and one gradient per parameter come back.
The parameters equal those of the same training on NumPy arrays up to rounding (the sum
is taken in another order).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _backend as backend
from .._transforms import value_and_grad
from ..optim import Optimizer
from .module import Module, functional_call

__all__ = ["fit", "loss_and_grads", "step_graph"]

Loss = Callable[[Any, Any], Any]


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError:  # pragma: no cover - dask arrays imply dask
        raise ImportError("training on Dask arrays needs dask: pip install "
                          "'glassgrad[dask]'") from None
    return dask, da


def _aligned(X: Any, y: Any) -> tuple[Any, Any]:
    """``X`` chunked along the samples only, and ``y`` with the same sample chunks."""
    _, da = _dask()
    if not backend.is_dask_array(X):
        raise TypeError(f"X must be a Dask array here, got {type(X).__name__}")
    if backend.ndim_of(X) < 2:
        raise ValueError(f"X must have shape (N, features, ...), got {X.shape}")
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
    y = y if backend.is_dask_array(y) else da.from_array(np.asarray(y), chunks=X.chunks[0])
    X = X.rechunk({i: -1 for i in range(1, X.ndim)})
    y = y.rechunk({0: X.chunks[0], **{i: -1 for i in range(1, y.ndim)}})
    return X, y


def _chunk(model: Module, loss: Loss, xb: np.ndarray, yb: np.ndarray, total: int):
    """One chunk's share of the loss and of each gradient (weights n_chunk / N for a mean
    loss, 1 for a summed one), computed with NumPy on the worker."""
    from .fit import _per_sample_scale, _prepare

    model = copy.deepcopy(model)  # tasks on one worker's threads share the shipped model
    xb, yb = _prepare(model, xb, yb, "X", "y")
    names = [name for name, _ in model.named_parameters()]
    values = [p._value for _, p in model.named_parameters()]

    def objective(values: list) -> Any:
        return loss(functional_call(model, dict(zip(names, values, strict=True)), xb), yb)

    value, grads = value_and_grad(objective)(values)
    scale = _per_sample_scale(loss)
    weight = scale(len(xb)) / scale(total)
    return float(value) * weight, [np.asarray(g) * weight for g in grads]


def _add(a: tuple, b: tuple) -> tuple:
    return a[0] + b[0], [x + y for x, y in zip(a[1], b[1], strict=True)]


def step_graph(model: Module, loss: Loss, X: Any, y: Any) -> Any:
    """The step as a ``dask.delayed`` value, not yet computed: ``(loss, [gradients])``.

    The model (with its parameters) is a single key that every chunk's task reads.
    """
    dask, _ = _dask()
    X, y = _aligned(X, y)
    shipped = dask.delayed(model, pure=False)  # one key: sent to each worker once
    chunk = dask.delayed(_chunk, pure=True)
    xs = X.to_delayed().reshape(-1)
    ys = y.to_delayed().reshape(-1)
    level = [chunk(shipped, loss, xb, yb, len(X)) for xb, yb in zip(xs, ys, strict=True)]
    add = dask.delayed(_add, pure=True)
    while len(level) > 1:  # a fixed binary tree: the same sum whoever finishes first
        level = [add(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


def loss_and_grads(model: Module, loss: Loss, X: Any, y: Any) -> tuple[float, list]:
    """The loss over all of ``(X, y)`` and the gradient of each parameter, computed chunk
    by chunk on the active Dask scheduler; the parameters are not changed."""
    dask, _ = _dask()
    (value, grads), = dask.compute(step_graph(model, loss, X, y))
    params = model.parameters()
    return value, [g.astype(p.dtype, copy=False) for g, p in zip(grads, params, strict=True)]


def fit(model: Module, X: Any, y: Any, loss: Loss, optimizer: Optimizer, epochs: int,
        batch_size: int | None = None, shuffle: bool = False,
        seed: int | np.random.Generator | None = None) -> Any:
    """``gg.nn.fit`` for Dask arrays: each step is data-parallel over the batch's chunks.

    ``batch_size=None`` (or at least N) is full-batch gradient descent: one step per
    epoch over every chunk, the data never in one place. A smaller batch takes the
    samples ``[start, start + batch_size)`` of the epoch's order, still chunk by chunk;
    ``shuffle=True`` permutes the samples lazily with ``np.random.default_rng(seed)``,
    the same order as ``fit`` on NumPy arrays (a Dask shuffle moves data between
    workers: prefer full batches or pre-shuffled data when the data is large).
    """
    from .fit import History, _per_sample_scale, _positive_int

    X, y = _aligned(X, y)
    n = len(X)
    epochs = _positive_int(epochs, "epochs")
    batch_size = n if batch_size is None else min(_positive_int(batch_size, "batch_size"), n)
    per_sample = _per_sample_scale(loss)
    rng = np.random.default_rng(seed)
    history = History()
    starts = range(0, n, batch_size)
    model.train()
    for epoch in range(1, epochs + 1):
        Xe, ye = X, y
        if shuffle:
            order = rng.permutation(n)
            Xe, ye = X[order], y[order]
        total = 0.0
        for step, start in enumerate(starts, 1):
            xb, yb = Xe[start:start + batch_size], ye[start:start + batch_size]
            value, grads = loss_and_grads(model, loss, xb, yb)
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"the loss became {value} at epoch {epoch}, step {step}: try a smaller "
                    "learning rate or scale the inputs")
            optimizer.zero_grad()
            for p, g in zip(optimizer.params, _in_order(model, optimizer, grads),
                            strict=True):
                p.grad = g
            optimizer.step()
            total += value * per_sample(len(xb))
        history.steps += len(starts)
        history.loss.append(total / n)
    return history


def _in_order(model: Module, optimizer: Optimizer, grads: list) -> list:
    """The gradients in the optimizer's order of parameters (the model's, usually)."""
    by_id = {id(p): g for p, g in zip(model.parameters(), grads, strict=True)}
    missing = [i for i, p in enumerate(optimizer.params) if id(p) not in by_id]
    if missing:
        raise ValueError(f"the optimizer's parameters {missing} are not the model's")
    return [by_id[id(p)] for p in optimizer.params]
