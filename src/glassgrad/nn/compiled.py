"""A training step whose forward and backward passes run as one ``gg.jit`` program.

The program is the model's loss and its gradient with respect to every parameter,
traced once per batch shape; the optimizer then updates the parameters in place with
NumPy, exactly as in eager training. The result equals eager training to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .. import _backend as backend
from .._jit import jit
from .._transforms import value_and_grad
from ..optim import Optimizer
from .module import Module, functional_call

__all__ = ["TrainStep"]


class TrainStep:
    """``step(x, y)`` trains ``model`` on one batch and returns the loss as a float.

    >>> import numpy as np, glassgrad as gg
    >>> net = gg.nn.MLP([2, 3, 1], rng=0)
    >>> step = gg.nn.TrainStep(net, gg.nn.squared_error, gg.optim.SGD(net.parameters(), lr=0.1))
    >>> x, y = np.ones((1, 2)), np.zeros((1, 1))
    >>> first, second = step(x, y), step(x, y)
    >>> second < first
    True
    >>> "np.matmul" in step.source(x, y)
    True

    ``backend="numba"`` compiles the program with ``gg.jit``'s Numba backend (the optional
    extra ``fast``): runs of elementwise operations become compiled loops.
    """

    def __init__(self, model: Module, loss: Callable[[Any, Any], Any], optimizer: Optimizer,
                 backend: str = "numpy"):
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        named = list(model.named_parameters())
        self._names = [name for name, _ in named]
        self._params = [param for _, param in named]
        self._program = jit(value_and_grad(self._objective), backend=backend)
        self._runs: dict[tuple, Callable] = {}

    def _objective(self, values: list, x: Any, y: Any) -> Any:
        return self.loss(functional_call(self.model, dict(zip(self._names, values,
                                                             strict=True)), x), y)

    def loss_and_grads(self, x: Any, y: Any) -> tuple[float, list]:
        """The batch loss and the gradient of every parameter, without updating."""
        if backend.is_dask_array(x):  # data-parallel, chunk by chunk on Dask's scheduler
            from .distributed import loss_and_grads

            return loss_and_grads(self.model, self.loss, x, y)
        values = [p._value for p in self._params]
        if not (backend.is_numpy_array(x) and backend.is_numpy_array(y)):
            value, grads = self._program(values, x, y)
            return float(value), grads
        # The parameters keep their shapes and dtypes, so the batch alone picks the
        # program: a cheaper look-up than jit's general signature.
        key = (x.shape, x.dtype.str, y.shape, y.dtype.str)
        run = self._runs.get(key)
        if run is None:
            run = self._runs[key] = self._program.lower(values, x, y).run
        value, *grads = run(*values, x, y)
        return float(value), grads

    def apply(self, grads: list) -> None:
        """Hand the gradients to the parameters and let the optimizer step."""
        for param, g in zip(self._params, grads, strict=True):
            param.grad = g
        self.optimizer.step()

    def __call__(self, x: Any, y: Any) -> float:
        value, grads = self.loss_and_grads(x, y)
        if not math.isfinite(value):
            raise FloatingPointError(f"the loss became {value}; parameters left unchanged")
        self.apply(grads)
        return value

    def source(self, x: Any, y: Any) -> str:
        """The NumPy program that computes the loss and the gradients for such a batch."""
        return self._program.source([p._value for p in self._params], x, y)
