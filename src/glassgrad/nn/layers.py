"""Layers: ``Linear``, the activations, ``Sequential``, ``MLP`` (the seed's network),
``Flatten``, ``Dropout``, ``Embedding``, ``GELU`` and ``Softmax``.

Layers work on eager tensors, on plain arrays and on the traced values of a transform,
so a network is also an ordinary differentiable function (see ``functional_call``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _backend as backend
from .. import _rules as R
from .._ops import softmax
from .._primitive import Traced
from .._tensor import Tensor
from ._primitives import normal_cdf
from .module import Module

__all__ = ["GELU", "MLP", "Dropout", "Embedding", "Flatten", "Linear", "ReLU", "Sequential",
           "Sigmoid", "Softmax", "Tanh"]

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


class GELU(Module):
    """``x * Phi(x)``, with ``Phi`` the standard normal CDF (PyTorch's exact default);
    ``approximate="tanh"`` gives ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    >>> import numpy as np, glassgrad as gg
    >>> gg.nn.GELU()(np.array([-1.0, 0.0, 1.0])).round(6)
    array([-0.158655,  0.      ,  0.841345])
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Any) -> Any:
        if self.approximate == "none":
            return R.mul(x, normal_cdf(x))
        inner = R.mul(np.sqrt(2.0 / np.pi), R.add(x, R.mul(0.044715, R.mul(x, R.mul(x, x)))))
        return R.mul(R.mul(0.5, x), R.add(1.0, R.tanh(inner)))

    def extra_repr(self) -> str:
        return "" if self.approximate == "none" else f"approximate={self.approximate!r}"


class Softmax(Module):
    """``exp(x) / sum(exp(x))`` along ``axis`` (``dim=`` is accepted too), computed stably.

    >>> import numpy as np, glassgrad as gg
    >>> gg.nn.Softmax()(np.array([[0.0, 0.0]]))
    array([[0.5, 0.5]])
    """

    def __init__(self, axis: int = -1, *, dim: int | None = None) -> None:
        super().__init__()
        self.axis = int(axis if dim is None else dim)

    def forward(self, x: Any) -> Any:
        return softmax(x, axis=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Flatten(Module):
    """Merge axes ``start_dim..end_dim`` into one: ``(N, C, H, W) -> (N, C*H*W)`` by default.

    >>> import numpy as np, glassgrad as gg
    >>> gg.nn.Flatten()(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x: Any) -> Any:
        shape = backend.shape_of(x)
        start, end = self.start_dim % len(shape), self.end_dim % len(shape)
        merged = int(np.prod(shape[start:end + 1]))
        return R.reshape(x, shape=(*shape[:start], merged, *shape[end + 1:]))

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Zero each entry with probability ``p`` and scale the rest by ``1/(1-p)`` while
    training (after ``.train()``, the default); the identity after ``.eval()``.

    The masks come from ``np.random.default_rng(rng)``. Inside ``gg.jit`` (and so in
    ``TrainStep`` or ``fit(jit=True)``) a training-mode dropout raises ``TypeError``: the
    program would replay one mask forever.

    >>> import numpy as np, glassgrad as gg
    >>> drop = gg.nn.Dropout(0.5, rng=0)
    >>> y = drop(np.ones(1000))
    >>> sorted(set(y.tolist())), bool(abs(y.mean() - 1) < 0.1)
    ([0.0, 2.0], True)
    >>> drop.eval()(np.ones(3))
    array([1., 1., 1.])
    """

    def __init__(self, p: float = 0.5, rng: RNG = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must lie in [0, 1], got {p}")
        self.p = float(p)
        self._rng = np.random.default_rng(rng)

    def forward(self, x: Any) -> Any:
        if not self.training or self.p == 0.0:
            return x
        if isinstance(backend.concrete(x), Traced):
            raise TypeError("Dropout in training mode inside gg.jit (TrainStep, fit(jit=True)) "
                            "or gg.vmap would replay one random mask at every step or share it "
                            "across examples; train it eagerly, or call .eval() on the model "
                            "to compile it without dropout")
        dtype = backend.dtype_of(x)
        keep = self._rng.random(backend.shape_of(x)) >= self.p
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        return R.mul(x, (keep * scale).astype(dtype))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Embedding(Module):
    """A lookup table: integer indices of any shape pick rows of ``weight``
    ``(num_embeddings, embedding_dim)``, initialised from N(0, 1) as in PyTorch.

    The gradient adds up over repeated indices. ``padding_idx``'s row starts at zero and
    gets no gradient, as in PyTorch.

    >>> import numpy as np, glassgrad as gg
    >>> emb = gg.nn.Embedding(10, 3, rng=0)
    >>> emb(np.array([[1, 2], [4, 1]])).shape
    (2, 2, 3)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 rng: RNG = None, dtype: Any = np.float64) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        w = np.random.default_rng(rng).standard_normal((num_embeddings, embedding_dim))
        if padding_idx is not None:
            w[padding_idx] = 0.0
        self.weight = Tensor(w.astype(_float_dtype(dtype)), requires_grad=True)

    def forward(self, indices: Any) -> Any:
        idx = indices.data if isinstance(indices, Tensor) else indices
        if not isinstance(backend.concrete(idx), Traced):  # inside gg.jit only the dtype is known
            idx = np.asarray(idx)
            if idx.size and (idx.min() < -self.num_embeddings
                             or idx.max() >= self.num_embeddings):
                raise IndexError(f"Embedding indices must lie in 0..{self.num_embeddings - 1}, "
                                 f"got values from {idx.min()} to {idx.max()}")
        if not np.issubdtype(backend.dtype_of(idx), np.integer):
            raise TypeError(f"Embedding expects integer indices, got dtype {backend.dtype_of(idx)}")
        out = R.getitem(self.weight, index=idx)
        if self.padding_idx is not None:
            # the padding row is a constant: its entries are replaced, so it gets no gradient
            keep = R.not_equal(R.remainder(idx, self.num_embeddings), self.padding_idx)
            out = R.where(R.reshape(keep, shape=(*backend.shape_of(idx), 1)), out, 0.0)
        return out

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


def _float_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"parameters must be float32 or float64, got dtype {dtype}")
    return dtype
