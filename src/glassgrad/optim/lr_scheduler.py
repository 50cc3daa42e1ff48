"""Learning-rate schedules: ``StepLR`` and ``CosineAnnealingLR``, as in PyTorch.

A schedule sets ``optimizer.lr``. Make it after the optimizer, train an epoch, then call
``scheduler.step()``: once per epoch, after ``optimizer.step()``, as in PyTorch. The
values follow PyTorch's own (recursive) formulas, so they agree to the last bits.
"""

from __future__ import annotations

import math
from typing import Any

from .optimizers import Optimizer

__all__ = ["CosineAnnealingLR", "LRScheduler", "StepLR"]


class LRScheduler:
    """Base class: ``last_epoch`` counts ``step()`` calls; ``get_last_lr()`` the rate set."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"expected a glassgrad optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            self.base_lr = optimizer.lr
        elif not hasattr(self, "base_lr"):
            raise ValueError("last_epoch other than -1 needs base_lr set (load a state_dict)")
        self.last_epoch = last_epoch
        self.step()

    def step(self) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self._next_lr()
        self._last_lr = self.optimizer.lr

    def get_last_lr(self) -> list[float]:
        return [self._last_lr]

    def _next_lr(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs.

    >>> import glassgrad as gg
    >>> opt = gg.optim.SGD([gg.tensor([0.0], requires_grad=True)], lr=1.0)
    >>> sched = gg.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(opt.lr); sched.step()
    >>> [round(v, 6) for v in lrs]
    [1.0, 1.0, 0.1, 0.1, 0.01]
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"step_size must be a positive int, got {step_size!r}")
        self.step_size, self.gamma = step_size, float(gamma)
        super().__init__(optimizer, last_epoch)

    def _next_lr(self) -> float:
        lr = self.optimizer.lr
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lr
        return lr * self.gamma


class CosineAnnealingLR(LRScheduler):
    """Anneal from the initial rate to ``eta_min`` along half a cosine over ``T_max``
    epochs: ``eta_min + (lr0 - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``.

    >>> import glassgrad as gg
    >>> opt = gg.optim.SGD([gg.tensor([0.0], requires_grad=True)], lr=1.0)
    >>> sched = gg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(opt.lr); sched.step()
    >>> [round(v, 4) for v in lrs]
    [1.0, 0.8536, 0.5, 0.1464, 0.0]
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,  # noqa: N803
                 last_epoch: int = -1) -> None:
        if not T_max >= 1:
            raise ValueError(f"T_max must be >= 1, got {T_max!r}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def _next_lr(self) -> float:
        # PyTorch's recursive form: each rate from the previous one, so that a rate changed
        # by hand between epochs carries on smoothly.
        e, t, lr, base = self.last_epoch, self.T_max, self.optimizer.lr, self.base_lr
        if e == 0:
            return lr
        if (e - 1 - t) % (2 * t) == 0:
            return lr + (base - self.eta_min) * (1 - math.cos(math.pi / t)) / 2
        return ((1 + math.cos(math.pi * e / t)) / (1 + math.cos(math.pi * (e - 1) / t))
                * (lr - self.eta_min) + self.eta_min)
