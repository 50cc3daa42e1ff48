"""Training utilities: ``clip_grad_norm_``."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .._tensor import Tensor

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(params: Iterable[Tensor] | Tensor, max_norm: float,
                    norm_type: float = 2.0) -> float:
    """Scale the gradients of ``params`` in place so that their joint norm is at most
    ``max_norm``; returns the norm they had before (as ``torch.nn.utils.clip_grad_norm_``).

    The norm is taken over all gradients together, as if concatenated; parameters without
    a gradient are skipped. ``norm_type`` may be any p >= 1 or ``float("inf")``.

    >>> import numpy as np, glassgrad as gg
    >>> w = gg.tensor([0.0, 0.0], requires_grad=True)
    >>> w.grad = np.array([3.0, 4.0])
    >>> gg.nn.clip_grad_norm_([w], max_norm=1.0)
    5.0
    >>> w.grad.round(6)
    array([0.6, 0.8])
    """
    params = [params] if isinstance(params, Tensor) else list(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    p = float(norm_type)
    if p == math.inf:
        total = max(float(np.max(np.abs(g))) if np.size(g) else 0.0 for g in grads)
    else:
        total = float(sum(np.sum(np.abs(g) ** p) for g in grads) ** (1.0 / p))
    # the 1e-6 keeps a zero norm finite, as PyTorch's does
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef  # in place, so views of the gradient see it too
    return total
