"""Tests for glassgrad.optim: one step of each optimizer against its formula."""

from __future__ import annotations

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import optim

W0 = np.array([[1.0, -2.0], [0.5, 3.0]])
G = np.array([[0.1, 0.2], [-0.3, 0.4]])


def _param(grad=G, dtype=np.float64):
    p = gg.tensor(W0, requires_grad=True, dtype=dtype)
    p.grad = np.array(grad, dtype=dtype)
    return p


def test_sgd_step():
    p = _param()
    data = p.data
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, W0 - 0.1 * G)
    assert np.shares_memory(p.data, data)  # updated in place
    np.testing.assert_array_equal(p.grad, G)  # the gradient is left alone


def test_sgd_weight_decay():
    p = _param()
    optim.SGD([p], lr=0.1, weight_decay=0.01).step()
    np.testing.assert_allclose(p.data, W0 - 0.1 * (G + 0.01 * W0))


def test_sgd_momentum_two_steps():
    p = _param()
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    w1 = W0 - 0.1 * G
    np.testing.assert_allclose(p.data, w1)
    p.grad = 2 * G
    opt.step()
    v2 = 0.9 * G + 2 * G
    np.testing.assert_allclose(p.data, w1 - 0.1 * v2)


def test_adam_first_two_steps():
    p = _param()
    opt = optim.Adam([p], lr=0.01, betas=(0.8, 0.9), eps=1e-6)
    opt.step()
    m, v = 0.2 * G, 0.1 * G**2
    w1 = W0 - 0.01 * (m / 0.2) / (np.sqrt(v / 0.1) + 1e-6)
    np.testing.assert_allclose(p.data, w1, rtol=1e-12)
    g2 = np.array([[0.5, -0.1], [0.0, 0.2]])
    p.grad = g2.copy()
    opt.step()
    m = 0.8 * m + 0.2 * g2
    v = 0.9 * v + 0.1 * g2**2
    w2 = w1 - 0.01 * (m / (1 - 0.8**2)) / (np.sqrt(v / (1 - 0.9**2)) + 1e-6)
    np.testing.assert_allclose(p.data, w2, rtol=1e-12)


def test_adam_weight_decay_is_l2_on_the_gradient():
    p = _param()
    optim.Adam([p], lr=0.01, weight_decay=0.1).step()
    g = G + 0.1 * W0
    m, v = 0.1 * g, 0.001 * g**2
    np.testing.assert_allclose(p.data, W0 - 0.01 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8))


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.5),
                                  lambda ps: optim.Adam(ps)])
def test_params_without_grad_are_skipped_and_zero_grad_clears(make):
    moved, idle = _param(), _param()
    idle.grad = None
    opt = make([moved, idle])
    opt.step()
    np.testing.assert_array_equal(idle.data, W0)
    assert not np.allclose(moved.data, W0)
    opt.zero_grad()
    assert moved.grad is None and idle.grad is None


def test_float32_parameters_stay_float32():
    p = _param(dtype=np.float32)
    data = p.data
    optim.Adam([p], lr=0.1).step()
    optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1).step()
    assert np.shares_memory(p.data, data) and p.data.dtype == np.float32


def test_sgd_on_a_model_reduces_a_quadratic():
    w = gg.tensor([3.0, -4.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    for _ in range(50):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
    np.testing.assert_allclose(w.data, np.array([3.0, -4.0]) * 0.8**50)


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="requires_grad"):
        optim.SGD([gg.tensor([1.0])], lr=0.1)
    p = _param()
    with pytest.raises(ValueError, match="twice"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(0.9, 1.0))
