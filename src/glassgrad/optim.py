"""Optimizers: ``SGD`` (with momentum and weight decay) and ``Adam``.

``step()`` reads each parameter's ``.grad`` and updates ``.data`` in place with NumPy; a
parameter whose gradient is ``None`` is skipped. Per-parameter scratch buffers are made
once, so a step allocates nothing: it sits on the hot path of per-sample training.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ._tensor import Tensor

__all__ = ["SGD", "Adam", "Optimizer"]


class Optimizer:
    """Base class: holds the parameters and clears their gradients."""

    def __init__(self, params: Iterable[Tensor]) -> None:
        self.params: list[Tensor] = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        seen: set[int] = set()
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"parameter {i} is not a tensor with requires_grad=True "
                                f"(got {type(p).__name__}); pass model.parameters()")
            if id(p) in seen:
                raise ValueError(f"parameter {i} appears twice; it would be updated twice")
            seen.add(id(p))
        self._scratch = [np.empty_like(p.data) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _check_nonnegative(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0.0:
            raise ValueError(f"{name} must be >= 0, got {value}")


class SGD(Optimizer):
    """Stochastic gradient descent: ``p -= lr * g``.

    With ``weight_decay`` the gradient is ``g + weight_decay * p`` (an L2 penalty); with
    ``momentum`` a velocity ``v = momentum * v + g`` replaces ``g`` (PyTorch's convention).

    >>> import glassgrad as gg
    >>> w = gg.tensor([1.0, 2.0], requires_grad=True)
    >>> opt = gg.optim.SGD([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w.data
    array([0.8, 1.6])
    """

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params)
        _check_nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self._velocity = [np.zeros_like(p.data) for p in self.params] if momentum else None

    def step(self) -> None:
        lr, momentum, decay = self.lr, self.momentum, self.weight_decay
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            buf = self._scratch[i]
            if decay:
                np.multiply(p.data, decay, out=buf)
                buf += g
                g = buf
            if momentum:
                v = self._velocity[i]
                v *= momentum
                v += g
                g = v
            np.multiply(g, lr, out=buf)
            p.data -= buf


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction:

    ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g**2``,
    ``p -= lr * (m / (1-b1**t)) / (sqrt(v / (1-b2**t)) + eps)``, where ``t`` counts the
    steps this parameter has taken. ``weight_decay`` adds ``weight_decay * p`` to ``g``
    (L2, as ``torch.optim.Adam``; not AdamW's decoupled decay).

    >>> import glassgrad as gg
    >>> w = gg.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = gg.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w.data.round(6)
    array([ 0.9, -0.9])
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params)
        _check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        self.lr, self.eps, self.weight_decay = float(lr), float(eps), float(weight_decay)
        self.betas = (float(betas[0]), float(betas[1]))
        self._m = [np.zeros_like(p.data) for p in self.params]
        self._v = [np.zeros_like(p.data) for p in self.params]
        self._t = [0] * len(self.params)

    def step(self) -> None:
        lr, eps, decay = self.lr, self.eps, self.weight_decay
        b1, b2 = self.betas
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            buf, m, v = self._scratch[i], self._m[i], self._v[i]
            if decay:
                g = g + decay * p.data
            self._t[i] = t = self._t[i] + 1
            m *= b1
            np.multiply(g, 1.0 - b1, out=buf)
            m += buf
            v *= b2
            np.multiply(g, g, out=buf)
            buf *= 1.0 - b2
            v += buf
            # p -= (lr / c1) * m / (sqrt(v) / sqrt(c2) + eps), as in the paper's Algorithm 1
            np.sqrt(v, out=buf)
            buf /= np.sqrt(1.0 - b2**t)
            buf += eps
            np.divide(m, buf, out=buf)
            buf *= lr / (1.0 - b1**t)
            p.data -= buf
