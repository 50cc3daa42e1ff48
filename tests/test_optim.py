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


def test_a_single_tensor_is_refused():
    with pytest.raises(TypeError, match="iterable of tensors"):
        optim.SGD(_param(), lr=0.1)


def test_adamw_decays_the_weights_not_the_gradient():
    p = _param()
    optim.AdamW([p], lr=0.01, weight_decay=0.1).step()
    m, v = 0.1 * G, 0.001 * G**2
    shrunk = W0 * (1 - 0.01 * 0.1)
    np.testing.assert_allclose(p.data, shrunk - 0.01 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8))
    assert optim.AdamW([_param()]).weight_decay == 1e-2


def test_rmsprop_two_steps_plain_and_centered_with_momentum():
    p = _param()
    opt = optim.RMSprop([p], lr=0.01, alpha=0.9)
    opt.step()
    v = 0.1 * G**2
    w1 = W0 - 0.01 * G / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(p.data, w1)
    opt.step()
    v = 0.9 * v + 0.1 * G**2
    np.testing.assert_allclose(p.data, w1 - 0.01 * G / (np.sqrt(v) + 1e-8))
    q = _param()
    optim.RMSprop([q], lr=0.01, alpha=0.9, centered=True, momentum=0.5,
                  weight_decay=0.1).step()
    g = G + 0.1 * W0
    v, mean = 0.1 * g**2, 0.1 * g
    np.testing.assert_allclose(q.data, W0 - 0.01 * g / (np.sqrt(v - mean**2) + 1e-8))


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.1),
                                  lambda ps: optim.AdamW(ps, lr=0.1),
                                  lambda ps: optim.RMSprop(ps, lr=0.1, centered=True)])
def test_state_dict_roundtrip_continues_identically(make, tmp_path):
    a = _param()
    opt_a = make([a])
    for _ in range(2):
        opt_a.step()
    state = opt_a.state_dict()
    assert state["param_groups"][0]["params"] == [0] and 0 in state["state"]
    gg.save({"weights": {"w": a}, "optimizer": opt_a}, tmp_path / "ck.gg")
    loaded = gg.load(tmp_path / "ck.gg")
    b = _param()
    b.data[...] = loaded["weights"]["w"]
    opt_b = make([b])
    opt_b.load_state_dict(loaded["optimizer"])
    opt_a.step()
    opt_b.step()
    np.testing.assert_array_equal(a.data, b.data)
    state["state"][0]["step"] = 99  # a deep copy: the optimizer is unaffected
    assert opt_a.state[0]["step"] != 99


def test_optimizer_load_state_dict_checks_before_changing():
    p = _param()
    opt = optim.Adam([p], lr=0.1)
    opt.step()
    good = opt.state_dict()
    bad = opt.state_dict()
    bad["param_groups"][0]["lr"] = 0.5
    bad["state"][0]["exp_avg"] = np.zeros(3)
    with pytest.raises(ValueError, match="exp_avg"):
        opt.load_state_dict(bad)
    assert opt.lr == 0.1  # nothing changed
    bad["state"][0]["exp_avg"] = good["state"][0]["exp_avg"] * 1j
    with pytest.raises(ValueError, match="complex"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="for 1 parameters, this optimizer has 2"):
        optim.Adam([_param(), _param()]).load_state_dict(good)


def test_step_lr_and_cosine_annealing_values():
    opt = optim.SGD([_param()], lr=0.5)
    sched = optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    seen = []
    for _ in range(7):
        seen.append(opt.lr)
        sched.step()
    np.testing.assert_allclose(seen, [0.5] * 3 + [0.25] * 3 + [0.125])
    opt = optim.SGD([_param()], lr=1.0)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5, eta_min=0.1)
    seen = []
    for _ in range(12):
        seen.append(opt.lr)
        sched.step()
    epochs = np.arange(12)
    np.testing.assert_allclose(seen, 0.1 + 0.9 * (1 + np.cos(np.pi * epochs / 5)) / 2,
                               atol=1e-12)
    assert sched.get_last_lr() == [opt.lr]


# --- PyTorch, step for step ----------------------------------------------------------


def _torch_pair(torch, make_gg, make_torch, steps=5):
    """Train the same weights on the same gradients; returns both weight histories."""
    rng = np.random.default_rng(0)
    w_gg = gg.tensor(W0.copy(), requires_grad=True)
    w_t = torch.tensor(W0.copy(), requires_grad=True)
    opt_gg, opt_t = make_gg([w_gg]), make_torch([w_t])
    for _ in range(steps):
        g = rng.normal(size=W0.shape)
        w_gg.grad = g.copy()
        w_t.grad = torch.tensor(g)
        opt_gg.step()
        opt_t.step()
        np.testing.assert_allclose(w_gg.data, w_t.detach().numpy(), rtol=1e-12, atol=1e-14)
    return opt_gg, opt_t


def test_optimizers_match_torch_step_for_step():
    torch = pytest.importorskip("torch")
    cases = [
        (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
         lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01)),
        (lambda p: optim.Adam(p, lr=0.01, weight_decay=0.1),
         lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1)),
        (lambda p: optim.AdamW(p, lr=0.01), lambda p: torch.optim.AdamW(p, lr=0.01)),
        (lambda p: optim.RMSprop(p), lambda p: torch.optim.RMSprop(p)),
        (lambda p: optim.RMSprop(p, momentum=0.5, centered=True, weight_decay=0.1),
         lambda p: torch.optim.RMSprop(p, momentum=0.5, centered=True, weight_decay=0.1)),
    ]
    for make_gg, make_torch in cases:
        opt_gg, opt_t = _torch_pair(torch, make_gg, make_torch)
        ours, theirs = opt_gg.state_dict()["state"][0], opt_t.state_dict()["state"][0]
        assert set(theirs) <= set(ours)  # the same names (torch's SGD counts no steps)
        for name, value in theirs.items():
            np.testing.assert_allclose(np.asarray(ours[name]), np.asarray(value), rtol=1e-12,
                                       err_msg=name)


def test_schedules_match_torch():
    torch = pytest.importorskip("torch")
    for make_gg, make_torch in [
        (lambda o: optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.3),
         lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.3)),
        (lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=4, eta_min=0.01),
         lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=4, eta_min=0.01)),
    ]:
        opt_gg = optim.SGD([_param()], lr=0.2)
        opt_t = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
        s_gg, s_t = make_gg(opt_gg), make_torch(opt_t)
        for _ in range(11):
            assert opt_gg.lr == pytest.approx(opt_t.param_groups[0]["lr"], rel=1e-14, abs=1e-16)
            opt_t.step()
            s_gg.step()
            s_t.step()


def test_clip_grad_norm_matches_its_formula_and_torch():
    a, b = _param(), _param(grad=[[3.0, 0.0], [0.0, 4.0]])
    before = float(np.sqrt(np.sum(G**2) + 25.0))
    total = gg.nn.clip_grad_norm_([a, b], max_norm=1.0)
    assert total == pytest.approx(before)
    assert np.sqrt(np.sum(a.grad**2) + np.sum(b.grad**2)) == pytest.approx(1.0, rel=1e-5)
    assert gg.nn.clip_grad_norm_([a, b], max_norm=10.0) == pytest.approx(1.0, rel=1e-5)
    assert gg.nn.clip_grad_norm_([a], 1.0, norm_type=float("inf")) == pytest.approx(
        np.abs(a.grad).max())
    torch = pytest.importorskip("torch")
    t = torch.tensor(W0, requires_grad=True)
    t.grad = torch.tensor(G * 10)
    c = _param(grad=G * 10)
    assert gg.nn.clip_grad_norm_([c], 0.5) == pytest.approx(
        float(torch.nn.utils.clip_grad_norm_([t], 0.5)))
    np.testing.assert_allclose(c.grad, t.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1),
                                  lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps), lambda ps: optim.AdamW(ps),
                                  lambda ps: optim.RMSprop(ps)])
def test_a_step_is_an_in_place_change_that_backward_notices(make):
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    opt = make([w])
    data = w.data
    (w * w).sum().backward()
    stale = (w * w).sum()  # saved the old w
    opt.step()
    assert np.shares_memory(w.data, data)
    with pytest.raises(RuntimeError, match="in place"):
        stale.backward()


def test_param_groups_read_and_write_the_settings():
    p = _param()
    opt = optim.Adam([p], lr=0.1)
    group = opt.param_groups[0]
    assert group["lr"] == 0.1 and group["params"] == [p] and "betas" in dict(group)
    group["lr"] = 0.01
    assert opt.lr == 0.01
    with pytest.raises(KeyError):
        group["momentum"] = 0.9
