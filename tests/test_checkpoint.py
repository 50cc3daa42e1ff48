"""gg.checkpoint: the same values and derivatives, intermediates recomputed in the backward
pass (so the peak memory of a chain of blocks grows with one block, not the chain), and
composition with every transform."""

import tracemalloc

import numpy as np
import pytest

import glassgrad as gg


def block(h, w):
    for _ in range(6):
        h = np.tanh(h @ w)
    return h


def chain(blk, n=20):
    def loss(w, x):
        h = x
        for _ in range(n):
            h = blk(h, w)
        return np.sum(h ** 2)

    return loss


RNG = np.random.default_rng(0)
W = RNG.normal(size=(4, 4)) / 2
X = RNG.normal(size=(3, 4))


def test_values_and_every_derivative_match_the_plain_function():
    plain, ckpt = chain(block, 3), chain(gg.checkpoint(block), 3)
    assert ckpt(W, X) == pytest.approx(plain(W, X), rel=1e-14)
    np.testing.assert_allclose(gg.grad(ckpt)(W, X), gg.grad(plain)(W, X), rtol=1e-12)
    np.testing.assert_allclose(gg.grad(ckpt, argnums=1)(W, X),
                               gg.grad(plain, argnums=1)(W, X), rtol=1e-12)
    t = RNG.normal(size=W.shape)
    np.testing.assert_allclose(gg.jvp(lambda w: ckpt(w, X), (W,), (t,))[1],
                               gg.jvp(lambda w: plain(w, X), (W,), (t,))[1], rtol=1e-12)
    np.testing.assert_allclose(gg.hessian(ckpt)(W, X), gg.hessian(plain)(W, X), rtol=1e-10)
    for mode in ("reverse", "forward"):
        np.testing.assert_allclose(gg.jacobian(gg.checkpoint(block), mode=mode)(X, W),
                                   gg.jacobian(block, mode=mode)(X, W), rtol=1e-12)


def test_vmap_and_jit_through_checkpoint():
    ckpt = chain(gg.checkpoint(block), 2)
    plain = chain(block, 2)
    ws = np.stack([W, W * 0.5, -W])
    np.testing.assert_allclose(gg.vmap(gg.grad(ckpt), in_axes=(0, None))(ws, X),
                               np.stack([gg.grad(plain)(w, X) for w in ws]), rtol=1e-12)
    np.testing.assert_allclose(gg.grad(lambda w: np.sum(gg.vmap(ckpt, in_axes=(0, None))(w, X)))
                               (ws), np.stack([gg.grad(plain)(w, X) for w in ws]), rtol=1e-12)
    compiled = gg.jit(gg.value_and_grad(ckpt))
    value, g = compiled(W, X)
    assert value == pytest.approx(plain(W, X), rel=1e-14)
    np.testing.assert_allclose(g, gg.grad(plain)(W, X), rtol=1e-12)


def test_the_block_is_recomputed_in_the_backward_pass_once():
    calls = [0]

    def counted(h, w):
        calls[0] += 1
        return block(h, w)

    ckpt = gg.checkpoint(counted)
    ckpt(X, W)
    assert calls[0] == 1
    calls[0] = 0
    gg.grad(lambda w, x: np.sum(ckpt(x, w)), argnums=(0, 1))(W, X)  # two arguments
    assert calls[0] == 2  # the forward pass, then one recomputation for both gradients


def test_containers_kwargs_constants_and_eager_tensors():
    def f(p, x, *, scale, label):
        assert label == "static"
        return {"a": np.tanh(x @ p["w"]) * scale, "b": np.sum(p["w"] ** 2)}

    ckpt = gg.checkpoint(f)
    loss = lambda w, fn: np.sum(fn({"w": w}, X, scale=2.0, label="static")["a"]) + fn(  # noqa: E731
        {"w": w}, X, scale=2.0, label="static")["b"]
    np.testing.assert_allclose(gg.grad(lambda w: loss(w, ckpt))(W),
                               gg.grad(lambda w: loss(w, f))(W), rtol=1e-12)
    w = gg.tensor(W, requires_grad=True)
    np.sum(gg.checkpoint(block)(X, w)).backward()
    np.testing.assert_allclose(w.grad, gg.grad(lambda w: np.sum(block(X, w)))(W), rtol=1e-12)


def test_closures_over_traced_values_are_refused():
    with pytest.raises(TypeError, match="pass it to the checkpointed function as an argument"):
        gg.grad(lambda w: np.sum(gg.checkpoint(lambda x: x * w)(X)))(2.0)


def _peak(fn):
    fn()  # warm up
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_peak_memory_of_grad_through_20_checkpointed_blocks_is_at_most_a_fifth():
    rng = np.random.default_rng(1)
    w, x = rng.normal(size=(64, 64)) / 8, rng.normal(size=(64, 64))
    plain = _peak(lambda: gg.grad(chain(block))(w, x))
    ckpt = _peak(lambda: gg.grad(chain(gg.checkpoint(block)))(w, x))
    assert ckpt <= plain / 5, (ckpt, plain)
    np.testing.assert_allclose(gg.grad(chain(gg.checkpoint(block)))(w, x),
                               gg.grad(chain(block))(w, x), rtol=1e-12)
