"""``fit``: the training loop, with a progress display and a ``History`` of losses.

Everything that can be checked is checked once, before the loop, so a step does only
what it must: slice a batch, forward, ``backward()``, ``optimizer.step()``. With
``monitor=True`` it also records each parameter's gradient norm and reports vanishing and
exploding gradients, naming the parameter.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _backend as backend
from .._mode import no_grad
from .._tensor import Tensor
from ..optim import Optimizer
from .module import Module

__all__ = ["GradientWarning", "History", "fit"]

VANISHING = 1e-7  # a gradient norm below this fraction of the parameter's norm
EXPLODING = 1e3  # a gradient norm this many times its first epoch's

Loss = Callable[[Any, Any], Any]


class GradientWarning(UserWarning):
    """A vanishing or exploding gradient seen by ``fit(..., monitor=True)``."""


@dataclass
class History:
    """What ``fit`` recorded, one value per epoch.

    ``loss[e]`` is the mean loss per training sample over epoch ``e``, accumulated while
    the epoch trained (as Keras reports it): for a loss with ``reduction == "sum"`` (like
    ``squared_error``) the epoch's batch losses summed and divided by N; otherwise (a
    mean over the batch) the batch losses averaged with the batch sizes as weights. With
    ``batch_size=1`` both are the plain mean of the per-sample losses.
    ``val_loss[e]`` is the same per-sample loss on the validation set after epoch ``e``
    (empty without validation data). ``steps`` counts optimizer steps.

    With ``monitor=True``: ``grad_norms[name][e]`` is the mean over epoch ``e``'s steps
    of the parameter's gradient norm, and ``warnings`` lists each vanishing or exploding
    gradient found (also issued as a :class:`GradientWarning`).
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    steps: int = 0
    grad_norms: dict[str, list[float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def plot_grad_norms(self, target: Any = None) -> Any:
        """Plot ``grad_norms`` (log scale, one line per parameter) with matplotlib.

        ``target`` is a file path (the figure is saved there), a matplotlib ``Axes`` to
        draw on, or ``None`` (a new figure). Returns the ``Axes``.
        """
        if not self.grad_norms:
            raise ValueError("no gradient norms were recorded: train with fit(..., monitor=True)")
        import matplotlib.pyplot as plt

        is_path = isinstance(target, str | os.PathLike)
        fig, ax = plt.subplots(figsize=(7, 4)) if target is None or is_path else (None, target)
        for name, norms in self.grad_norms.items():
            epochs = np.arange(1, len(norms) + 1)
            ax.plot(epochs, np.maximum(norms, np.finfo(float).tiny), marker=".", label=name)
        ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel="gradient norm (mean over the epoch's steps)",
               title="gradient norm per parameter")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize="small", ncol=2)
        if is_path:
            fig.tight_layout()
            fig.savefig(target, dpi=100)
            plt.close(fig)
        return ax


def fit(model: Module, X: Any, y: Any, loss: Loss, optimizer: Optimizer, epochs: int,
        batch_size: int = 1, shuffle: bool = True, progress: bool = True,
        seed: int | np.random.Generator | None = None,
        validation: tuple[Any, Any] | None = None, jit: bool = False,
        monitor: bool = False) -> History:
    """Train ``model`` on ``(X, y)`` with mini-batches; returns the ``History``.

    ``loss(pred, target)`` returns a scalar tensor. ``y`` of shape (N,) is accepted for a
    model with one output column. ``batch_size=1`` feeds each sample as a (1, features)
    batch (per-sample SGD). Shuffling draws from ``np.random.default_rng(seed)``. Progress
    goes to stderr: with tqdm installed, ``tqdm.auto``'s bar (a widget in Jupyter, text on
    a terminal); plain lines elsewhere; nothing with ``progress=False``. A NaN or Inf loss
    raises ``FloatingPointError``.
    With ``jit=True`` each step's forward and backward passes run as one compiled NumPy
    program (``gg.nn.TrainStep``); the result is the same to the last bit, only faster.
    ``X`` may have any number of axes after the samples', e.g. ``(N, C, H, W)`` images.
    A Dask array ``X`` (chunked along the samples) trains data-parallel on the active
    Dask scheduler, chunk by chunk (``gg.nn.distributed``; docs/scaling.md).
    With ``monitor=True`` the ``History`` holds each parameter's gradient norm per epoch,
    and a vanishing gradient (below 1e-7 of the parameter's norm) or an exploding one (not
    finite, or a thousand times its first epoch's) is reported naming the parameter.

    >>> import numpy as np, glassgrad as gg
    >>> X = np.linspace(-1, 1, 20).reshape(-1, 1); y = 3 * X[:, 0]
    >>> net = gg.nn.MLP([1, 1], rng=0)
    >>> opt = gg.optim.SGD(net.parameters(), lr=0.1)
    >>> h = gg.nn.fit(net, X, y, gg.nn.squared_error, opt, epochs=30, progress=False)
    >>> h.loss[-1] < 1e-3 < h.loss[0]
    True
    """
    if backend.is_dask_array(X):  # data-parallel on Dask's scheduler
        from .distributed import fit as fit_dask

        return fit_dask(model, X, y, loss, optimizer, epochs, batch_size, shuffle, seed)
    X, y = _prepare(model, X, y, "X", "y")
    if validation is not None:
        validation = _prepare(model, *validation, "validation X", "validation y")
    epochs, batch_size = _positive_int(epochs, "epochs"), _positive_int(batch_size, "batch_size")
    per_sample = _per_sample_scale(loss)
    rng = np.random.default_rng(seed)
    n = len(X)
    starts = range(0, n, batch_size)
    history = History()
    display = _Progress(progress, epochs, len(starts))
    watch = _Monitor(model, history) if monitor else None
    train_step = _compiled_step(model, loss, optimizer) if jit else _eager_step(
        model, loss, optimizer)
    model.train()
    try:
        for epoch in range(1, epochs + 1):
            Xe, ye = (X, y) if not shuffle else _shuffled(X, y, rng)
            total = 0.0
            for step, start in enumerate(starts, 1):
                xb, yb = Xe[start:start + batch_size], ye[start:start + batch_size]
                v, update = train_step(xb, yb)
                if not math.isfinite(v):
                    raise FloatingPointError(
                        f"the loss became {v} at epoch {epoch}, step {step} (samples "
                        f"{start}..{start + len(xb) - 1} of the epoch's order): try a "
                        "smaller learning rate, scale the inputs, or run the step inside "
                        "gg.detect_anomaly() to find the operation")
                update()
                if watch is not None:
                    watch.step()
                total += v * per_sample(len(xb))
                display.step(step)
            history.steps += len(starts)
            history.loss.append(total / n)
            if watch is not None:
                watch.epoch(epoch)
            if validation is not None:
                history.val_loss.append(evaluate(model, *validation, loss))
            display.epoch(epoch, history)
    finally:
        display.close()
    return history


def _eager_step(model: Module, loss: Loss, optimizer: Optimizer):
    """A step in two halves: the loss first (checked by the caller), then the update."""
    def step(xb, yb):
        value = loss(model(xb), yb)

        def update():
            optimizer.zero_grad()
            value.backward()
            optimizer.step()

        return value.item(), update

    return step


def _compiled_step(model: Module, loss: Loss, optimizer: Optimizer):
    from .compiled import TrainStep

    train = TrainStep(model, loss, optimizer)

    def step(xb, yb):
        value, grads = train.loss_and_grads(xb, yb)
        return value, lambda: train.apply(grads)

    return step


def evaluate(model: Module, X: Any, y: Any, loss: Loss) -> float:
    """The mean loss per sample of ``model`` on ``(X, y)``, without recording a graph."""
    X, y = _prepare(model, X, y, "X", "y")
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            value = float(loss(model(X), y).item())
    finally:
        model.train(was_training)
    return value * _per_sample_scale(loss)(len(X)) / len(X)


# --- checks done once, before the loop -----------------------------------------------


def _prepare(model: Module, X: Any, y: Any, x_name: str, y_name: str):
    """Arrays in the model's dtype, ``y`` reshaped to (N, 1) for a one-output model."""
    dtype = next((p.dtype for p in model.parameters()), np.dtype(np.float64))
    X = np.asarray(X.data if isinstance(X, Tensor) else X, dtype=dtype)
    y = np.asarray(y.data if isinstance(y, Tensor) else y)
    if X.ndim < 2 or len(X) == 0:
        raise ValueError(f"{x_name} must have shape (N, features) or (N, C, ...) with N > 0, "
                         f"got {X.shape}")
    if len(y) != len(X):
        raise ValueError(f"{x_name} has {len(X)} samples but {y_name} has {len(y)}")
    with no_grad():
        out_shape = np.shape(model(X[:1]).data)
    if y.ndim == 1 and out_shape == (1, 1):
        y = y.reshape(-1, 1)
    if np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.bool_):
        y = y.astype(dtype)
    return X, y


def _positive_int(value: Any, name: str) -> int:
    if not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _per_sample_scale(loss: Loss) -> Callable[[int], float]:
    """What a batch loss is multiplied by to give the batch's summed per-sample loss."""
    if getattr(loss, "reduction", "mean") == "sum":
        return lambda batch: 1.0
    return float


def _shuffled(X: np.ndarray, y: np.ndarray, rng: np.random.Generator):
    # One gather per epoch; the steps then take cheap contiguous slices.
    order = rng.permutation(len(X))
    return X[order], y[order]


# --- progress ------------------------------------------------------------------------


class _Progress:
    """A tqdm bar on a terminal, plain lines (no carriage returns) elsewhere, or nothing."""

    def __init__(self, enabled: bool, epochs: int, steps_per_epoch: int) -> None:
        self.epochs = epochs
        self.bar = None
        self.lines = False
        self.stride = max(1, steps_per_epoch // 50)  # bar updates cost; batch them
        self.every = max(1, epochs // 50)
        if not enabled:
            return
        stream = sys.stderr
        if getattr(stream, "isatty", lambda: False)() or _in_notebook():
            try:  # tqdm.auto: a widget in Jupyter, text on a terminal
                import tqdm as _package  # noqa: F401 - fails first if tqdm is absent
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=epochs * steps_per_epoch, unit="step", file=stream,
                                desc="training", dynamic_ncols=True, leave=True)
                return
        self.lines = True

    def step(self, step: int) -> None:
        if self.bar is not None and step % self.stride == 0:
            self.bar.update(self.stride)

    def epoch(self, epoch: int, history: History) -> None:
        text = f"loss {history.loss[-1]:.4f}"
        if history.val_loss:
            text += f"  val_loss {history.val_loss[-1]:.4f}"
        if self.bar is not None:
            self.bar.n = epoch * (self.bar.total // self.epochs)  # count any remainder
            self.bar.set_postfix_str(f"epoch {epoch}/{self.epochs}  {text}")
        elif self.lines and (epoch % self.every == 0 or epoch in (1, self.epochs)):
            print(f"epoch {epoch}/{self.epochs}  {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"  # Jupyter's kernel


class _Monitor:
    """Gradient norms per parameter, averaged over an epoch, and the warnings they raise."""

    def __init__(self, model: Module, history: History) -> None:
        self.named = list(model.named_parameters())
        self.history = history
        self.sums = np.zeros(len(self.named))
        self.count = 0
        self.first: dict[str, float] = {}
        self.reported: set[tuple[str, str]] = set()
        for name, _ in self.named:
            history.grad_norms[name] = []

    def step(self) -> None:
        for i, (_, p) in enumerate(self.named):
            if p.grad is not None:
                self.sums[i] += float(np.sqrt(np.sum(np.abs(p.grad) ** 2)))
        self.count += 1

    def epoch(self, epoch: int) -> None:
        for i, (name, p) in enumerate(self.named):
            norm = self.sums[i] / max(self.count, 1)
            self.history.grad_norms[name].append(norm)
            self._check(name, norm, float(np.sqrt(np.sum(np.abs(p.data) ** 2))), epoch)
        self.sums[:] = 0.0
        self.count = 0

    def _check(self, name: str, norm: float, param_norm: float, epoch: int) -> None:
        if name not in self.first and math.isfinite(norm) and norm > 0:
            self.first[name] = norm
        first = self.first.get(name)
        if not math.isfinite(norm):
            self._report(name, "exploding", f"gradient of {name!r} is {norm} at epoch {epoch}")
        elif first and norm > EXPLODING * first:
            self._report(name, "exploding", f"gradient norm of {name!r} grew from {first:.3g} "
                         f"to {norm:.3g} by epoch {epoch} (more than {EXPLODING:g}x): lower the "
                         "learning rate or clip gradients (gg.nn.clip_grad_norm_)")
        elif norm < VANISHING * param_norm:
            self._report(name, "vanishing", f"gradient norm of {name!r} is {norm:.3g} at epoch "
                         f"{epoch}, below {VANISHING:g} of the parameter's norm "
                         f"{param_norm:.3g}: it has stopped learning (saturated activations? "
                         "dead ReLUs? an unused parameter?)")

    def _report(self, name: str, kind: str, text: str) -> None:
        if (name, kind) in self.reported:
            return
        self.reported.add((name, kind))
        self.history.warnings.append(f"{kind}: {text}")
        warnings.warn(f"{kind} gradient: {text}", GradientWarning, stacklevel=5)
