"""Layers: ``Linear``, the activations, ``Sequential`` and ``MLP`` (the seed's network).

Layers work on eager tensors, on plain arrays and on the traced values of a transform,
so a network is also an ordinary differentiable function (see ``functional_call``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _rules as R
from .._tensor import Tensor
from .module import Module

__all__ = ["MLP", "Linear", "ReLU", "Sequential", "Sigmoid", "Tanh"]

RNG = None | int | np.random.Generator


class Linear(Module):
    """An affine layer ``y = x @ weight + bias``.

    Weight layout: ``weight`` has shape ``(in_features, out_features)`` and ``bias`` shape
    ``(out_features,)``, so a batch ``x`` of shape ``(batch, in_features)`` gives
    ``(batch, out_features)`` and a single sample of shape ``(in_features,)`` gives
    ``(out_features,)``. (PyTorch stores the transpose and computes ``x @ W.T``.)
    Both start uniform in ``[-1/sqrt(in_features), 1/sqrt(in_features)]``, drawn from
    ``np.random.default_rng(rng)``; ``rng`` may be ``None``, an int seed or a ``Generator``.

    >>> import numpy as np, glassgrad as gg
    >>> layer = gg.nn.Linear(3, 2, rng=0)
    >>> layer.weight.shape, layer.bias.shape
    ((3, 2), (2,))
    >>> layer(np.ones((5, 3))).shape, layer(np.ones(3)).shape
    ((5, 2), (2,))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: RNG = None, dtype: Any = np.float64) -> None:
        super().__init__()
        for what, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, int | np.integer) or n < 1:
                raise ValueError(f"Linear: {what} must be a positive int, got {n!r}")
        dtype = _float_dtype(dtype)
        self.in_features, self.out_features = int(in_features), int(out_features)
        gen = np.random.default_rng(rng)
        bound = 1.0 / np.sqrt(in_features)
        w = gen.uniform(-bound, bound, (in_features, out_features)).astype(dtype)
        self.weight = Tensor(w, requires_grad=True)
        b = gen.uniform(-bound, bound, out_features).astype(dtype) if bias else None
        self.bias = None if b is None else Tensor(b, requires_grad=True)

    def forward(self, x: Any) -> Any:
        # The primitives directly, not the operators: the weight is known to be 2-d, so the
        # checks of the general ``@`` (a few µs per call) would be wasted on the hot path.
        try:
            out = R.matmul(x, self.weight)
        except ValueError as err:
            raise ValueError(f"{self!r} expects inputs of shape (batch, {self.in_features}) "
                             f"or ({self.in_features},), got shape {np.shape(x)}") from err
        return out if self.bias is None else R.add(out, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Sigmoid(Module):
    """``1 / (1 + exp(-a * s))``, elementwise; its derivative is ``a * phi * (1 - phi)``.

    >>> import numpy as np, glassgrad as gg
    >>> gg.nn.Sigmoid(a=2.0)(np.array([0.0]))
    array([0.5])
    """

    def __init__(self, a: float = 1.0) -> None:
        super().__init__()
        self.a = float(a)

    def forward(self, x: Any) -> Any:
        return R.sigmoid(x, a=self.a)

    def extra_repr(self) -> str:
        return f"a={self.a}"


class Tanh(Module):
    """Elementwise ``tanh``.

    >>> import numpy as np, glassgrad as gg
    >>> gg.nn.Tanh()(np.array([0.0]))
    array([0.])
    """

    def forward(self, x: Any) -> Any:
        return R.tanh(x)


class ReLU(Module):
    """Elementwise ``max(x, 0)``.

    >>> import numpy as np, glassgrad as gg
    >>> gg.nn.ReLU()(np.array([-1.0, 2.0]))
    array([0., 2.])
    """

    def forward(self, x: Any) -> Any:
        return R.relu(x)


class Sequential(Module):
    """Layers applied one after the other; registered under the names ``"0"``, ``"1"``, ...

    >>> import glassgrad as gg
    >>> net = gg.nn.Sequential(gg.nn.Linear(2, 3, rng=0), gg.nn.Tanh())
    >>> len(net), type(net[0]).__name__, [n for n, _ in net.named_parameters()]
    (2, 'Linear', ['0.weight', '0.bias'])
    """

    def __init__(self, *layers: Callable[[Any], Any]) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not callable(layer):
                raise TypeError(f"Sequential: layer {i} is a {type(layer).__name__}, "
                                "not a module or callable")
            setattr(self, str(i), layer)
        self._layers = tuple(layers)

    def forward(self, x: Any) -> Any:
        for layer in self._layers:
            x = layer(x)
        return x

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return Sequential(*self._layers[index])
        return self._layers[index]

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)


_SIGMOID = Sigmoid()  # the default activation; stateless, so one shared instance is safe


class MLP(Module):
    """A fully connected network: ``Linear`` layers of the given ``sizes``, ``activation``
    after each hidden one and ``output_activation`` (if any) after the last.

    ``MLP([10, 16, 16, 1])`` is the seed's network: two sigmoid hidden layers of 16 units
    and a linear output. Activations hold no state, so sharing one instance is fine;
    ``activation=None`` gives a purely linear stack.
    Parameters are named ``layers.0.weight``, ``layers.0.bias``, ``layers.2.weight``, ...

    >>> import numpy as np, glassgrad as gg
    >>> net = gg.nn.MLP([10, 16, 16, 1], rng=0)
    >>> net(np.zeros((4, 10))).shape, sum(p.size for p in net.parameters())
    ((4, 1), 465)
    """

    def __init__(self, sizes: Sequence[int], activation: Callable[[Any], Any] | None = _SIGMOID,
                 output_activation: Callable[[Any], Any] | None = None, rng: RNG = None,
                 dtype: Any = np.float64) -> None:
        super().__init__()
        sizes = [int(n) for n in sizes]
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least an input and an output size, got {sizes}")
        gen = np.random.default_rng(rng)  # one stream, so a seed fixes every layer
        layers: list[Callable[[Any], Any]] = []
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
            layers.append(Linear(n_in, n_out, rng=gen, dtype=dtype))
            if i < len(sizes) - 2 and activation is not None:
                layers.append(activation)
        if output_activation is not None:
            layers.append(output_activation)
        self.sizes = tuple(sizes)
        self.layers = Sequential(*layers)

    def forward(self, x: Any) -> Any:
        return self.layers(x)


def _float_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"parameters must be float32 or float64, got dtype {dtype}")
    return dtype
