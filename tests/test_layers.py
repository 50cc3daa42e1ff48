"""Tests for the layers beyond the seed's MLP: convolution, pooling, normalisation,
dropout, embeddings, GELU and softmax, and the losses added with them.

Each is checked against a plain NumPy reference written independently (loops over the
kernel, textbook formulas), its gradients against finite differences, and, where PyTorch
is installed, against PyTorch with the same weights.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn

RNG = np.random.default_rng(1234)


def _values(t):
    return np.asarray(getattr(t, "data", t))


def _plain(layer):
    """``layer`` as a function of its input alone, its parameters as plain arrays (so no
    eager tensor takes part when check_grad evaluates it at shifted inputs)."""
    params = {name: p.data.copy() for name, p in layer.named_parameters()}
    return lambda x: nn.functional_call(layer, params, x)


# --- NumPy references ------------------------------------------------------------------


def conv_reference(x, w, b, stride, padding):
    """Cross-correlation by a loop over kernel offsets; any number of spatial axes."""
    d = w.ndim - 2
    pads = [(0, 0), (0, 0)] + [(p, p) for p in padding]
    xp = np.pad(x, pads)
    out_sp = [(xp.shape[2 + i] - w.shape[2 + i]) // stride[i] + 1 for i in range(d)]
    out = np.zeros((x.shape[0], w.shape[0], *out_sp))
    for offset in np.ndindex(*w.shape[2:]):
        window = xp[(slice(None), slice(None)) + tuple(
            slice(o, o + s * (n - 1) + 1, s)
            for o, s, n in zip(offset, stride, out_sp, strict=True))]
        out += np.einsum("nc...,oc->no...", window, w[(slice(None), slice(None), *offset)])
    return out + b.reshape(1, -1, *[1] * d)


def pool_reference(x, k, s, reduce, pad_value=0.0, padding=(0, 0)):
    xp = np.pad(x, [(0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2],
                constant_values=pad_value)
    oh, ow = (xp.shape[2] - k[0]) // s[0] + 1, (xp.shape[3] - k[1]) // s[1] + 1
    out = np.empty(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            block = xp[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
            out[:, :, i, j] = reduce(block, axis=(2, 3))
    return out


# --- convolution ----------------------------------------------------------------------


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (1, 1), (2, 1), ((2, 1), (0, 2))])
def test_conv2d_matches_the_reference(stride, padding):
    conv = nn.Conv2d(3, 4, (3, 2), stride=stride, padding=padding, rng=0)
    x = RNG.normal(size=(2, 3, 7, 6))
    expected = conv_reference(x, conv.weight.data, conv.bias.data, conv.stride, conv.padding)
    np.testing.assert_allclose(_values(conv(x)), expected, rtol=1e-12, atol=1e-12)


def test_conv1d_matches_the_reference_and_accepts_unbatched_input():
    conv = nn.Conv1d(2, 5, 3, stride=2, padding=1, rng=0)
    x = RNG.normal(size=(4, 2, 9))
    expected = conv_reference(x, conv.weight.data, conv.bias.data, (2,), (1,))
    np.testing.assert_allclose(_values(conv(x)), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_values(conv(x[0])), expected[0], rtol=1e-12, atol=1e-12)


def test_conv_layout_init_and_errors():
    conv = nn.Conv2d(2, 8, 3, rng=0)
    assert conv.weight.shape == (8, 2, 3, 3) and conv.bias.shape == (8,)
    bound = 1 / math.sqrt(2 * 9)  # PyTorch's kaiming_uniform(a=sqrt(5)) bound
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.weight.data).max() > 0.8 * bound
    assert nn.Conv2d(2, 8, 3, bias=False).bias is None
    single = nn.Conv2d(1, 1, 3, dtype=np.float32)
    assert single(np.ones((1, 1, 4, 4), np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="C = 2"):
        conv(np.ones((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(1, 1, 0)


def test_conv2d_gradients_match_finite_differences():
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, rng=0)
    x = RNG.normal(size=(2, 2, 5, 4))
    gg.check_grad(lambda x: (_plain(conv)(x) ** 2).sum(), x)
    gg.check_grad(lambda p: (nn.functional_call(conv, p, x) ** 2).sum(), conv.state_dict())


def test_conv1d_gradients_match_finite_differences():
    conv = nn.Conv1d(2, 3, 2, stride=1, padding=1, rng=0)
    gg.check_grad(lambda x: (_plain(conv)(x) ** 2).sum(), RNG.normal(size=(2, 2, 5)))


def test_conv_second_derivatives():
    conv = _plain(nn.Conv2d(1, 2, 2, rng=0))
    x = RNG.normal(size=(1, 1, 3, 3))
    hvp = gg.hvp(lambda x: (conv(x) ** 3).sum(), (x,), (np.ones_like(x),))
    h = gg.hessian(lambda x: (conv(x) ** 3).sum())(x)
    np.testing.assert_allclose(hvp, h.reshape(9, 9).sum(axis=1).reshape(x.shape), atol=1e-10)


# --- pooling --------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "s", "p"),
                         [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), 0), (2, None, 1)])
def test_pools_match_the_reference(k, s, p):
    x = RNG.normal(size=(2, 3, 7, 6))
    maxpool, avgpool = nn.MaxPool2d(k, s, padding=p), nn.AvgPool2d(k, s, padding=p)
    kk, ss, pp = maxpool.kernel_size, maxpool.stride, maxpool.padding
    np.testing.assert_allclose(_values(maxpool(x)),
                               pool_reference(x, kk, ss, np.max, -np.inf, pp))
    np.testing.assert_allclose(_values(avgpool(x)), pool_reference(x, kk, ss, np.mean, 0.0, pp))


def test_pool_gradients_match_finite_differences():
    x = RNG.normal(size=(2, 2, 5, 5))  # odd size: the last row and column are dropped
    gg.check_grad(lambda x: (nn.MaxPool2d(2)(x) ** 2).sum(), x)
    gg.check_grad(lambda x: (nn.MaxPool2d(3, 2, padding=1)(x) ** 2).sum(), x)
    gg.check_grad(lambda x: (nn.AvgPool2d(3, 1, padding=1)(x) ** 2).sum(), x)
    gg.check_grad(lambda x: (nn.AvgPool2d(2)(x) ** 2).sum(), x)


def test_maxpool_sends_the_gradient_to_the_maximum():
    x = gg.tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True)
    nn.MaxPool2d(2)(x).sum().backward()
    expected = np.zeros((4, 4))
    expected[1::2, 1::2] = 1.0
    np.testing.assert_array_equal(x.grad[0, 0], expected)


def test_flatten():
    assert nn.Flatten()(np.zeros((2, 3, 4))).shape == (2, 12)
    assert nn.Flatten(0, 1)(np.zeros((2, 3, 4))).shape == (6, 4)


# --- normalisation --------------------------------------------------------------------


def test_batchnorm2d_training_and_running_statistics():
    bn = nn.BatchNorm2d(3)
    bn.weight.data[...] = [1.0, 2.0, 0.5]
    bn.bias.data[...] = [0.0, 1.0, -1.0]
    x = RNG.normal(2.0, 3.0, size=(4, 3, 5, 5))
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    scale, shift = np.array([1.0, 2.0, 0.5])[:, None, None], np.array([0.0, 1.0, -1.0])
    expected = ((x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5) * scale
                + shift[:, None, None])
    np.testing.assert_allclose(_values(bn(x)), expected, rtol=1e-10, atol=1e-12)
    n = 4 * 5 * 5
    np.testing.assert_allclose(bn.running_mean, 0.1 * mean)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * var * n / (n - 1))  # unbiased
    assert int(bn.num_batches_tracked) == 1
    bn.eval()
    y = _values(bn(x))
    scale = np.array([1.0, 2.0, 0.5]) / np.sqrt(bn.running_var + 1e-5)
    np.testing.assert_allclose(
        y, (x - bn.running_mean[:, None, None]) * scale[:, None, None]
        + np.array([0.0, 1.0, -1.0])[:, None, None])
    np.testing.assert_allclose(bn.running_mean, 0.1 * mean)  # eval leaves them alone


def test_batchnorm_state_dict_holds_buffers_and_loads_them():
    bn = nn.BatchNorm1d(2)
    bn(RNG.normal(size=(8, 2)))
    state = bn.state_dict()
    assert list(state) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert [name for name, _ in bn.named_parameters()] == ["weight", "bias"]
    fresh = nn.BatchNorm1d(2)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.running_var, bn.running_var)
    assert int(fresh.num_batches_tracked) == 1
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    assert "1.running_mean" in net.state_dict()


def test_batchnorm1d_three_axes_and_errors():
    bn = nn.BatchNorm1d(3, affine=False, momentum=None)
    x = RNG.normal(size=(4, 3, 6))
    mean, var = x.mean(axis=(0, 2), keepdims=True), x.var(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(_values(bn(x)), (x - mean) / np.sqrt(var + 1e-5), atol=1e-12)
    np.testing.assert_allclose(bn.running_mean, mean.ravel())  # momentum=None: the average
    with pytest.raises(ValueError, match="3 channels"):
        bn(np.ones((4, 2)))
    with pytest.raises(ValueError, match="more than one value"):
        nn.BatchNorm1d(3)(np.ones((1, 3)))


def test_norm_gradients_match_finite_differences():
    x = RNG.normal(size=(3, 2, 2, 2))
    bn = _plain(nn.BatchNorm2d(2))
    w = RNG.normal(size=x.shape)
    gg.check_grad(lambda x: (bn(x) * w).sum(), x)
    ln = nn.LayerNorm((2, 2))
    gg.check_grad(lambda x: (_plain(ln)(x) * w).sum(), x)
    gg.check_grad(lambda p: (nn.functional_call(ln, p, x) * w).sum(),
                  {"weight": RNG.normal(size=(2, 2)), "bias": RNG.normal(size=(2, 2))})


def test_layernorm_matches_the_formula():
    ln = nn.LayerNorm(4)
    ln.weight.data[...] = [1.0, 2.0, 3.0, 4.0]
    x = RNG.normal(size=(3, 5, 4))
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(_values(ln(x)), (x - mean) / np.sqrt(var + 1e-5) * [1, 2, 3, 4],
                               atol=1e-12)
    with pytest.raises(ValueError, match="ending in"):
        ln(np.ones((2, 3)))
    assert "running_mean" not in ln.state_dict()


# --- dropout, embedding, activations --------------------------------------------------


def test_dropout_train_and_eval():
    drop = nn.Dropout(0.25, rng=0)
    x = np.ones((200, 50))
    y = _values(drop(x))
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.02
    drop.eval()
    assert drop(x) is x
    drop.train()
    assert not np.array_equal(_values(drop(x)), _values(drop(x)))  # a fresh mask each call
    assert np.all(_values(nn.Dropout(1.0)(x)) == 0)
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


def test_dropout_gradient_is_the_mask():
    drop = nn.Dropout(0.5, rng=3)
    x = gg.tensor(np.ones((4, 6)), requires_grad=True)
    y = drop(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)


def test_dropout_and_batchnorm_refuse_to_be_compiled_in_training_mode():
    net = nn.Sequential(nn.Linear(3, 4, rng=0), nn.Dropout(0.5))
    step = nn.TrainStep(net, nn.mse_loss, gg.optim.SGD(net.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="Dropout"):
        step(np.ones((2, 3)), np.ones((2, 4)))
    net.eval()
    step(np.ones((2, 3)), np.ones((2, 4)))  # the identity compiles fine
    bn_net = nn.Sequential(nn.Linear(3, 4, rng=0), nn.BatchNorm1d(4))
    step = nn.TrainStep(bn_net, nn.mse_loss, gg.optim.SGD(bn_net.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="BatchNorm1d"):
        step(np.ones((2, 3)), np.ones((2, 4)))


def test_embedding_lookup_gradient_and_padding():
    emb = nn.Embedding(5, 3, rng=0)
    idx = np.array([[0, 2], [2, 4]])
    out = emb(idx)
    np.testing.assert_array_equal(out.data, emb.weight.data[idx])
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [1, 0, 2, 0, 1])  # repeats add up
    padded = nn.Embedding(5, 3, padding_idx=0, rng=0)
    assert np.all(padded.weight.data[0] == 0)
    padded(np.array([0, 1, 0])).sum().backward()
    assert np.all(padded.weight.grad[0] == 0) and np.all(padded.weight.grad[1] == 1)
    with pytest.raises(IndexError, match="0..4"):
        emb(np.array([5]))
    with pytest.raises(TypeError, match="integer"):
        emb(np.array([0.5]))


def test_gelu_exact_and_tanh():
    x = np.linspace(-6, 6, 41)
    erf = np.vectorize(math.erf)
    np.testing.assert_allclose(_values(nn.GELU()(x)), 0.5 * x * (1 + erf(x / math.sqrt(2))),
                               rtol=1e-14, atol=1e-15)
    tanh = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(_values(nn.GELU("tanh")(x)), tanh, rtol=1e-14)
    gg.check_grad(lambda x: nn.GELU()(x).sum(), RNG.normal(size=(3, 4)))
    gg.check_grad(lambda x: nn.GELU("tanh")(x).sum(), RNG.normal(size=(3, 4)))
    gelu_grad = gg.grad(lambda x: nn.GELU()(x).sum())
    gg.check_grad(lambda x: gelu_grad(x).sum(), RNG.normal(size=(4,)))


def test_normal_cdf_without_scipy_agrees_with_math_erf():
    from glassgrad.nn._primitives import _erf

    z = np.concatenate([np.linspace(-8, 8, 801), [0.0, 1e-300, -2.9999, 3.0, 3.0001]])
    np.testing.assert_allclose(_erf(z), [math.erf(v) for v in z], rtol=2e-15, atol=2e-16)


def test_softmax_layer():
    x = RNG.normal(size=(3, 4))
    e = np.exp(x - x.max(axis=0))
    np.testing.assert_allclose(_values(nn.Softmax(axis=0)(x)), e / e.sum(axis=0))
    np.testing.assert_allclose(_values(nn.Softmax(dim=1)(x)).sum(axis=1), 1.0)


# --- losses ---------------------------------------------------------------------------


def test_nll_loss_is_cross_entropy_after_log_softmax():
    z, labels = RNG.normal(size=(5, 3)), np.array([0, 2, 1, 1, 0])
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert math.isclose(float(nn.nll_loss(logp, labels)), -logp[np.arange(5), labels].mean())
    assert math.isclose(float(nn.nll_loss(gg.log_softmax(z), labels)),
                        float(nn.cross_entropy(z, labels)))
    with pytest.raises(ValueError, match="0..2"):
        nn.nll_loss(logp, np.array([0, 1, 2, 3, 0]))
    with pytest.raises(TypeError, match="integer"):
        nn.nll_loss(logp, labels.astype(float))


def test_binary_cross_entropy_and_with_logits():
    z, t = RNG.normal(size=(4, 3)) * 3, (RNG.uniform(size=(4, 3)) > 0.5).astype(float)
    p = 1 / (1 + np.exp(-z))
    expected = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert math.isclose(float(nn.binary_cross_entropy(p, t)), expected, rel_tol=1e-12)
    assert math.isclose(float(nn.binary_cross_entropy_with_logits(z, t)), expected,
                        rel_tol=1e-12)
    gg.check_grad(lambda z: nn.binary_cross_entropy_with_logits(z, t), z)
    gg.check_grad(lambda p: nn.binary_cross_entropy(p, t), p)
    # saturated: the logits form stays exact, the probability form clamps at 100 per term
    assert float(nn.binary_cross_entropy_with_logits(np.array([-800.0]), np.array([1.0]))) == 800
    assert float(nn.binary_cross_entropy(np.array([0.0]), np.array([1.0]))) == 100
    with pytest.raises(ValueError, match="shape"):
        nn.binary_cross_entropy(p, t[:, 0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nn.binary_cross_entropy(z, t)


def test_huber_loss():
    pred, target = np.array([0.5, -3.0, 1.0, 2.0]), np.array([0.0, 0.0, 1.0, 0.5])
    d = np.abs(pred - target)
    expected = np.mean(np.where(d <= 1.5, 0.5 * d ** 2, 1.5 * (d - 0.75)))
    assert math.isclose(float(nn.huber_loss(pred, target, delta=1.5)), expected)
    gg.check_grad(lambda p: nn.huber_loss(p, target), RNG.normal(size=4) * 3)
    with pytest.raises(ValueError, match="delta"):
        nn.huber_loss(pred, target, delta=0.0)


# --- PyTorch, with the same weights ---------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # layers made here compare in float64
    yield torch
    torch.set_default_dtype(before)


def _grads_match(gg_layer, torch_layer, x, torch, atol=1e-10):
    """Same output and same gradients of sum(out * w) for the input and every parameter."""
    xt = gg.tensor(x, requires_grad=True)
    out = gg_layer(xt)  # once: a training batch norm updates its statistics per call
    w = RNG.normal(size=out.shape)
    (out * w).sum().backward()
    xtt = torch.tensor(x, requires_grad=True)
    tout = torch_layer(xtt)
    (tout * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(_values(out), tout.detach().numpy(), atol=atol)
    np.testing.assert_allclose(xt.grad, xtt.grad.numpy(), atol=atol)
    for name, p in gg_layer.named_parameters():
        tp = dict(torch_layer.named_parameters())[name]
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), atol=atol, err_msg=name)


def _copy_weights(gg_layer, torch_layer, torch):
    with torch.no_grad():
        for name, p in gg_layer.named_parameters():
            dict(torch_layer.named_parameters())[name].copy_(torch.tensor(p.data))


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (2, 1)])
def test_conv_against_torch(torch, stride, padding):
    for make, tmake, shape in [(nn.Conv2d, torch.nn.Conv2d, (2, 3, 7, 6)),
                               (nn.Conv1d, torch.nn.Conv1d, (2, 3, 9))]:
        layer = make(3, 4, 3, stride=stride, padding=padding, rng=0)
        tlayer = tmake(3, 4, 3, stride=stride, padding=padding)
        _copy_weights(layer, tlayer, torch)
        _grads_match(layer, tlayer, RNG.normal(size=shape), torch)


def test_pools_against_torch(torch):
    x = RNG.normal(size=(2, 3, 7, 6))
    for k, s, p in [(2, None, 0), (3, 2, 1)]:
        _grads_match(nn.MaxPool2d(k, s, padding=p), torch.nn.MaxPool2d(k, s, padding=p), x,
                     torch)
        _grads_match(nn.AvgPool2d(k, s, padding=p), torch.nn.AvgPool2d(k, s, padding=p), x,
                     torch)


def test_norms_against_torch(torch):
    for layer, tlayer, shape in [(nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3), (4, 3, 5, 5)),
                                 (nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3), (6, 3)),
                                 (nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3), (6, 3, 4)),
                                 (nn.LayerNorm((3, 4)), torch.nn.LayerNorm((3, 4)), (2, 3, 4))]:
        for p in layer.parameters():
            p.data[...] = RNG.normal(size=p.shape)
        _copy_weights(layer, tlayer, torch)
        for _ in range(2):
            _grads_match(layer, tlayer, RNG.normal(size=shape), torch)
            for p in layer.parameters():
                p.grad = None
            tlayer.zero_grad()
        for name, buf in layer.named_buffers():
            np.testing.assert_allclose(buf, dict(tlayer.named_buffers())[name].numpy(),
                                       err_msg=name)
        layer.eval()
        tlayer.eval()
        _grads_match(layer, tlayer, RNG.normal(size=shape), torch)


def test_activations_embedding_and_losses_against_torch(torch):
    F = torch.nn.functional
    x = RNG.normal(size=(4, 5)) * 3
    _grads_match(nn.GELU(), torch.nn.GELU(), x, torch, atol=1e-14)
    _grads_match(nn.GELU("tanh"), torch.nn.GELU(approximate="tanh"), x, torch, atol=1e-14)
    _grads_match(nn.Softmax(axis=0), torch.nn.Softmax(dim=0), x, torch)
    emb = nn.Embedding(6, 3, rng=0)
    temb = torch.nn.Embedding(6, 3)
    _copy_weights(emb, temb, torch)
    idx = np.array([[1, 5, 1], [0, 2, 2]])
    np.testing.assert_allclose(emb(idx).data, temb(torch.tensor(idx)).detach().numpy())
    t = (RNG.uniform(size=(4, 5)) > 0.5).astype(float)
    p = 1 / (1 + np.exp(-x))
    labels = np.array([0, 4, 2, 2])
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    cases = [(nn.binary_cross_entropy, F.binary_cross_entropy, p, t),
             (nn.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, x, t),
             (nn.huber_loss, F.huber_loss, x, t), (nn.nll_loss, F.nll_loss, logp, labels)]
    for ours, theirs, a, b in cases:
        at = torch.tensor(a, requires_grad=True)
        expected = theirs(at, torch.tensor(b))
        expected.backward()
        ag = gg.tensor(a, requires_grad=True)
        value = ours(ag, b)
        value.backward()
        assert math.isclose(value.item(), expected.item(), rel_tol=1e-12), ours.__name__
        np.testing.assert_allclose(ag.grad, at.grad.numpy(), atol=1e-14, err_msg=ours.__name__)


def test_embedding_layernorm_gelu_train_the_same_eagerly_and_compiled():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(7, 4, rng=0)
            self.norm = nn.LayerNorm(4)
            self.fc = nn.Linear(4, 3, rng=1)
            self.act = nn.GELU()

        def forward(self, idx):
            return self.fc(self.act(self.norm(self.emb(idx))))

    idx, labels = np.array([0, 3, 3, 6, 1]), np.array([2, 0, 0, 1, 2])
    nets = [Tiny(), Tiny()]
    for net, compiled in zip(nets, (False, True), strict=True):
        opt = gg.optim.AdamW(net.parameters(), lr=0.05)
        if compiled:
            step = nn.TrainStep(net, nn.cross_entropy, opt)
        for _ in range(3):
            if compiled:
                step(idx, labels)
            else:
                opt.zero_grad()
                nn.cross_entropy(net(idx), labels).backward()
                opt.step()
    for (name, a), (_, b) in zip(nets[0].named_parameters(), nets[1].named_parameters(),
                                 strict=True):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)


def test_vmap_of_a_convolution_network_matches_a_loop():
    if not hasattr(gg, "vmap"):
        pytest.skip("this glassgrad has no vmap")
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(12, 1, rng=2))
    params = {name: p.data.copy() for name, p in net.named_parameters()}

    def loss(params, x):  # one example, (C, H, W)
        return nn.functional_call(net, params, x[None]).sum() ** 2

    xs = RNG.normal(size=(5, 2, 4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no primitive may fall back to a loop
        per_example = gg.vmap(gg.grad(loss), in_axes=(None, 0))(params, xs)
    for i, x in enumerate(xs):
        one = gg.grad(loss)(params, x)
        for name in params:
            np.testing.assert_allclose(per_example[name][i], one[name], rtol=1e-10,
                                       atol=1e-12, err_msg=name)
