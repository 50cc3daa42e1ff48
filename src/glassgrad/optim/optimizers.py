"""The optimizers and their shared base class, with ``state_dict``/``load_state_dict``.

State follows ``torch.optim``'s layout, so a reader of one reads the other:
``{"state": {index: {"step": int, "exp_avg": array, ...}}, "param_groups": [{"lr": ...,
"params": [0, 1, ...]}]}``, with a parameter's state created at its first step.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np

from .._tensor import Tensor

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop"]


class Optimizer:
    """Base class: holds the parameters, their per-parameter state and the settings.

    Subclasses name their settings in ``_settings`` and implement ``_update(i, p, g)``.
    """

    _settings: tuple[str, ...] = ("lr",)

    def __init__(self, params: Iterable[Tensor]) -> None:
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__} expects an iterable of tensors, got a single "
                            "Tensor; pass [tensor] or model.parameters()")
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
        self.state: dict[int, dict[str, Any]] = {}
        self._scratch = [np.empty_like(p._value) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @property
    def param_groups(self) -> list[MutableMapping[str, Any]]:
        """PyTorch's view of the settings: ``opt.param_groups[0]["lr"] = 0.01`` sets
        ``opt.lr``. glassgrad optimizers have one group, holding every parameter."""
        return [_Group(self)]

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self._update(i, p, p.grad)

    def _update(self, i: int, p: Tensor, g: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def _buffers(self, i: int, *names: str) -> dict[str, Any]:
        """Parameter ``i``'s state, created (zeros, step 0) at its first step."""
        state = self.state.get(i)
        if state is None:
            zeros = {name: np.zeros_like(self.params[i]._value) for name in names}
            state = self.state[i] = {"step": 0, **zeros}
        return state

    # --- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A deep copy of the settings and the per-parameter state, in torch's layout."""
        group = {name: copy.deepcopy(getattr(self, name)) for name in self._settings}
        group["params"] = list(range(len(self.params)))
        return {"state": copy.deepcopy(self.state), "param_groups": [group]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (or ``gg.load`` read back).

        Everything is checked before anything changes: the number of parameters, each
        buffer's shape and kind (no complex into real), the settings' names.
        """
        groups, raw_state = state_dict.get("param_groups"), state_dict.get("state")
        if not isinstance(groups, list | tuple) or len(groups) != 1 or raw_state is None:
            raise ValueError("load_state_dict: expected {'state': ..., 'param_groups': [one "
                             "group]} as state_dict() returns")
        group = dict(groups[0])
        if len(group.get("params", ())) != len(self.params):
            raise ValueError(f"load_state_dict: the state is for {len(group.get('params', ()))} "
                             f"parameters, this optimizer has {len(self.params)}")
        missing = [name for name in self._settings if name not in group]
        if missing:
            raise ValueError(f"load_state_dict: settings {missing} are missing")
        state = {int(i): self._checked_state(int(i), entry) for i, entry in raw_state.items()}
        for name in self._settings:
            value = group[name]
            setattr(self, name, tuple(float(v) for v in value)
                    if isinstance(value, list | tuple) else type(getattr(self, name))(value))
        self.state = state

    def _checked_state(self, i: int, entry: Mapping[str, Any]) -> dict[str, Any]:
        if not 0 <= i < len(self.params):
            raise ValueError(f"load_state_dict: state for parameter {i}, but there are "
                             f"{len(self.params)}")
        param, out = self.params[i]._value, {}
        for name, value in entry.items():
            if name == "step":
                out[name] = int(np.asarray(value))
                continue
            array = np.asarray(value)
            if array.shape != param.shape or not np.can_cast(array.dtype, param.dtype,
                                                             casting="same_kind"):
                raise ValueError(f"load_state_dict: {name!r} of parameter {i} is {array.dtype} "
                                 f"{array.shape}, the parameter is {param.dtype} {param.shape}")
            out[name] = array.astype(param.dtype, copy=True)
        return out

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._settings)
        return f"{type(self).__name__}({len(self.params)} parameters, {settings})"


class _Group(MutableMapping):
    """The single parameter group of an optimizer, reading and writing its settings."""

    def __init__(self, optimizer: Optimizer) -> None:
        self._opt = optimizer

    def __getitem__(self, key: str) -> Any:
        if key == "params":
            return self._opt.params
        if key not in self._opt._settings:
            raise KeyError(key)
        return getattr(self._opt, key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self._opt._settings:
            raise KeyError(f"{type(self._opt).__name__} has no setting {key!r}")
        setattr(self._opt, key, value)

    def __delitem__(self, key: str) -> None:
        raise TypeError("settings cannot be deleted")

    def __iter__(self) -> Iterator[str]:
        return iter((*self._opt._settings, "params"))

    def __len__(self) -> int:
        return len(self._opt._settings) + 1


def _subtract(p: Tensor, step: np.ndarray) -> None:
    """``p.data -= step`` in the parameter's own memory.

    The engine counts the write (``_written``), so a backward pass through a graph that
    saved the old value raises.
    """
    data = p._written()
    data -= step


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

    _settings = ("lr", "momentum", "weight_decay")

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params)
        _check_nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)

    def step(self) -> None:
        if self.momentum or self.weight_decay:
            return super().step()
        lr = self.lr  # plain SGD: the per-sample hot path, without the general machinery
        for p, buf in zip(self.params, self._scratch, strict=True):
            if p.grad is not None:
                np.multiply(p.grad, lr, out=buf)
                _subtract(p, buf)
        return None

    def _update(self, i: int, p: Tensor, g: np.ndarray) -> None:
        buf = self._scratch[i]
        if self.weight_decay:
            np.multiply(p._value, self.weight_decay, out=buf)
            buf += g
            g = buf
        if self.momentum:
            state = self._buffers(i, "momentum_buffer")
            v = state["momentum_buffer"]
            if state["step"]:
                v *= self.momentum
                v += g
            else:
                v[...] = g  # PyTorch starts the velocity at the first gradient
            state["step"] += 1
            g = v
        np.multiply(g, self.lr, out=buf)
        _subtract(p, buf)


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction:

    ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g**2``,
    ``p -= lr * (m / (1-b1**t)) / (sqrt(v / (1-b2**t)) + eps)``, where ``t`` counts the
    steps this parameter has taken. ``weight_decay`` adds ``weight_decay * p`` to ``g``
    (L2, as ``torch.optim.Adam``; for decoupled decay use :class:`AdamW`).

    >>> import glassgrad as gg
    >>> w = gg.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = gg.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w.data.round(6)
    array([ 0.9, -0.9])
    """

    _settings = ("lr", "betas", "eps", "weight_decay")
    _decoupled = False

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params)
        _check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        self.lr, self.eps, self.weight_decay = float(lr), float(eps), float(weight_decay)
        self.betas = (float(betas[0]), float(betas[1]))

    def _update(self, i: int, p: Tensor, g: np.ndarray) -> None:
        lr, eps, decay = self.lr, self.eps, self.weight_decay
        b1, b2 = self.betas
        state = self._buffers(i, "exp_avg", "exp_avg_sq")
        buf, m, v = self._scratch[i], state["exp_avg"], state["exp_avg_sq"]
        if decay and self._decoupled:
            data = p._written()  # AdamW: shrink the weights, not the gradient
            data *= 1.0 - lr * decay
        elif decay:
            g = g + decay * p._value
        state["step"] = t = state["step"] + 1
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
        _subtract(p, buf)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019), as
    ``torch.optim.AdamW``: each step first shrinks ``p *= 1 - lr * weight_decay``, then
    takes the Adam step on the plain gradient.

    >>> import glassgrad as gg
    >>> w = gg.tensor([1.0], requires_grad=True)
    >>> opt = gg.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> (w * w).sum().backward(); opt.step()
    >>> w.data.round(6)
    array([0.85])
    """

    _decoupled = True

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``: ``v = alpha*v + (1-alpha)*g**2`` and
    ``p -= lr * g / (sqrt(v) + eps)``.

    ``centered`` divides by an estimate of the standard deviation instead
    (``sqrt(v - mean(g)**2)``); ``momentum`` keeps a velocity of the scaled steps;
    ``weight_decay`` adds ``weight_decay * p`` to the gradient.

    >>> import glassgrad as gg
    >>> w = gg.tensor([1.0], requires_grad=True)
    >>> opt = gg.optim.RMSprop([w], lr=0.01)
    >>> (w * w).sum().backward(); opt.step()
    >>> w.data.round(4)
    array([0.9])
    """

    _settings = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        super().__init__(params)
        _check_nonnegative(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                           momentum=momentum)
        self.lr, self.alpha, self.eps = float(lr), float(alpha), float(eps)
        self.weight_decay, self.momentum, self.centered = (float(weight_decay), float(momentum),
                                                           bool(centered))

    def _update(self, i: int, p: Tensor, g: np.ndarray) -> None:
        names = ["square_avg"] + ["momentum_buffer"] * bool(self.momentum)
        state = self._buffers(i, *names, *(["grad_avg"] if self.centered else []))
        state["step"] += 1
        if self.weight_decay:
            g = g + self.weight_decay * p._value
        v, buf, alpha = state["square_avg"], self._scratch[i], self.alpha
        v *= alpha
        np.multiply(g, g, out=buf)
        buf *= 1.0 - alpha
        v += buf
        if self.centered:
            mean = state["grad_avg"]
            mean *= alpha
            mean += (1.0 - alpha) * g
            np.sqrt(v - mean * mean, out=buf)
        else:
            np.sqrt(v, out=buf)
        buf += self.eps
        np.divide(g, buf, out=buf)
        if self.momentum:
            velocity = state["momentum_buffer"]
            velocity *= self.momentum
            velocity += buf
            buf[...] = velocity
        buf *= self.lr
        _subtract(p, buf)
