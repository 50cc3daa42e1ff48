"""Optional cross-checks against PyTorch and JAX; skipped when they are not installed.

The required suite never needs them (they are not in any extra); with them installed
these tests hold glassgrad's derivatives to theirs on the same functions.
"""

import numpy as np
import pytest

import glassgrad as gg

RNG = np.random.default_rng(7)
W1, W2 = RNG.normal(size=(4, 5)), RNG.normal(size=(5, 3))
X = RNG.normal(size=(6, 4))


def loss(np_like, w1, w2, x):
    h = np_like.tanh(x @ w1)
    return np_like.sum(np_like.log(1 + np_like.exp(h @ w2)) * h[:, :3] ** 2)


def test_gradients_and_hessian_match_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    ours = gg.grad(lambda a, b: loss(np, a, b, X), argnums=(0, 1))(W1, W2)
    theirs = jax.grad(lambda a, b: loss(jnp, a, b, X), argnums=(0, 1))(W1, W2)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-10, atol=1e-12)
    f = lambda v: np.sum(np.sin(v) * v ** 3)  # noqa: E731
    v = RNG.normal(size=4)
    np.testing.assert_allclose(gg.hessian(f)(v),
                               np.asarray(jax.hessian(lambda v: jnp.sum(jnp.sin(v) * v ** 3))(v)),
                               rtol=1e-10)


def test_network_gradients_match_pytorch():
    torch = pytest.importorskip("torch")
    net = gg.nn.MLP([4, 5, 1], rng=0)
    y = RNG.normal(size=(6, 1))
    gg.nn.squared_error(net(X), y).backward()
    layers = [net.layers[0], net.layers[2]]
    tw = [torch.tensor(layer.weight.data, requires_grad=True) for layer in layers]
    tb = [torch.tensor(layer.bias.data, requires_grad=True) for layer in layers]
    h = torch.sigmoid(torch.tensor(X) @ tw[0] + tb[0])
    out = h @ tw[1] + tb[1]
    (0.5 * ((torch.tensor(y) - out) ** 2).sum()).backward()
    for layer, w, b in zip(layers, tw, tb, strict=True):
        np.testing.assert_allclose(layer.weight.grad, w.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(layer.bias.grad, b.grad.numpy(), rtol=1e-10)
