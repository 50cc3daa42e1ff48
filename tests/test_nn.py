"""Tests for glassgrad.nn: modules, layers, losses and the fit loop."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn, optim
from glassgrad._serialize import load, save


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(2, 3, rng=0)
        self.scale = gg.tensor([1.5], requires_grad=True)
        self.constant = gg.tensor([2.0])  # no grad: a plain attribute, not a parameter
        self.second = nn.Linear(3, 1, rng=1)

    def forward(self, x):
        return self.second(self.first(x) * self.scale)


# --- Module ----------------------------------------------------------------------------


def test_registration_follows_assignment_order():
    names = [name for name, _ in Pair().named_parameters()]
    assert names == ["first.weight", "first.bias", "scale", "second.weight", "second.bias"]


def test_parameters_match_named_parameters_and_skip_non_grad_tensors():
    model = Pair()
    params = list(model.parameters())
    assert [id(p) for p in params] == [id(p) for _, p in model.named_parameters()]
    assert all(p is not model.constant for p in params)


def test_reassigning_a_plain_value_unregisters():
    model = Pair()
    model.scale = 3.0
    assert "scale" not in dict(model.named_parameters())
    del model.second
    assert [n for n, _ in model.named_parameters()] == ["first.weight", "first.bias"]


def test_shared_parameter_listed_once():
    model = Pair()
    model.second.weight = model.first.weight  # shapes do not matter for listing
    params = list(model.parameters())
    assert len(params) == len({id(p) for p in params}) == 4


def test_call_runs_forward_and_zero_grad_clears():
    model = Pair()
    out = model(np.ones((4, 2)))
    assert out.shape == (4, 1)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_train_eval_flags_propagate():
    model = Pair().eval()
    assert not model.training and not model.first.training
    model.train()
    assert model.second.training


def test_subclass_may_assign_before_or_without_super_init():
    class Early(nn.Module):
        def __init__(self):
            self.w = gg.tensor([1.0], requires_grad=True)
            super().__init__()
            self.v = gg.tensor([2.0], requires_grad=True)

    class NoInit(nn.Module):
        def __init__(self):
            self.w = gg.tensor([1.0], requires_grad=True)

    assert [n for n, _ in Early().named_parameters()] == ["w", "v"]
    model = NoInit().eval()
    assert [n for n, _ in model.named_parameters()] == ["w"] and not model.training

def test_state_dict_is_a_copy():
    model = Pair()
    state = model.state_dict()
    state["first.weight"][...] = 0.0
    assert not np.all(model.first.weight.data == 0.0)


def test_state_dict_roundtrip_through_save_and_load(tmp_path):
    a, b = nn.MLP([3, 4, 2], rng=0), nn.MLP([3, 4, 2], rng=1)
    path = tmp_path / "model.gg"
    save(a, path)
    b.load_state_dict(load(path))
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)
    x = np.random.default_rng(2).normal(size=(5, 3))
    np.testing.assert_array_equal(a(x).data, b(x).data)


def test_load_state_dict_copies_in_place_and_keeps_dtype():
    model = nn.Linear(2, 2, dtype=np.float32, rng=0)
    weight_array = model.weight.data
    model.load_state_dict({"weight": np.eye(2), "bias": gg.tensor([1.0, 2.0])})
    assert np.shares_memory(model.weight.data, weight_array) and weight_array.dtype == np.float32
    np.testing.assert_array_equal(weight_array, np.eye(2))
    np.testing.assert_array_equal(model.bias.data, [1.0, 2.0])


def test_load_state_dict_names_missing_unexpected_and_bad_shapes():
    model = nn.Linear(2, 3, rng=0)
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['bias'\].*unexpected keys \['b'\]"):
        model.load_state_dict({"weight": np.zeros((2, 3)), "b": np.zeros(3)})
    with pytest.raises(ValueError, match=r"'weight': model \(2, 3\), state \(3, 2\)"):
        model.load_state_dict({"weight": np.zeros((3, 2)), "bias": np.zeros(3)})
    for name, value in model.state_dict().items():  # nothing was written
        np.testing.assert_array_equal(value, before[name])
    model.load_state_dict({"bias": np.ones(3)}, strict=False)
    np.testing.assert_array_equal(model.bias.data, np.ones(3))


def test_functional_call_substitutes_and_restores():
    layer = nn.Linear(2, 1, rng=0)
    original = layer.weight
    out = nn.functional_call(layer, {"weight": np.array([[1.0], [2.0]]), "bias": np.zeros(1)},
                             np.array([3.0, 4.0]))
    np.testing.assert_allclose(out, [11.0])
    assert layer.weight is original
    with pytest.raises(ValueError, match="unknown parameter names"):
        nn.functional_call(layer, {"nope": np.zeros(1)}, np.zeros(2))


def test_functional_call_is_differentiable_with_grad():
    model = nn.MLP([3, 4, 1], rng=0)
    x, y = np.random.default_rng(0).normal(size=(6, 3)), np.ones((6, 1))

    def loss(params):
        return nn.squared_error(nn.functional_call(model, params, x), y)

    g = gg.grad(loss)(model.state_dict())
    nn.squared_error(model(x), y).backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(g[name], p.grad, rtol=1e-12, err_msg=name)


# --- layers ----------------------------------------------------------------------------


def test_linear_weight_layout_and_forward():
    layer = nn.Linear(3, 2, rng=0)
    W, b = layer.weight.data, layer.bias.data
    assert W.shape == (3, 2) and b.shape == (2,)
    x = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(layer(x).data, x @ W + b)
    batch = np.stack([x, 2 * x])
    out = layer(batch)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out.data, batch @ W + b)


def test_linear_init_range_seed_and_no_bias():
    layer = nn.Linear(16, 8, rng=3)
    bound = 1 / np.sqrt(16)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    np.testing.assert_array_equal(layer.weight.data, nn.Linear(16, 8, rng=3).weight.data)
    plain = nn.Linear(16, 8, bias=False, rng=np.random.default_rng(0))
    assert plain.bias is None and [n for n, _ in plain.named_parameters()] == ["weight"]


def test_linear_float32_and_shape_errors():
    layer = nn.Linear(3, 2, dtype=np.float32, rng=0)
    assert layer.weight.dtype == np.float32
    assert layer(np.ones((1, 3), dtype=np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, 3\).*\(4, 5\)"):
        layer(np.ones((4, 5), dtype=np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Linear(3, 2, dtype=np.int64)
    with pytest.raises(ValueError, match="positive int"):
        nn.Linear(0, 2)


def test_activations():
    s = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(nn.Sigmoid(a=2.0)(gg.tensor(s)).data, 1 / (1 + np.exp(-2 * s)))
    np.testing.assert_allclose(nn.Tanh()(s), np.tanh(s))
    np.testing.assert_allclose(nn.ReLU()(s), [0.0, 0.0, 3.0])


def test_sequential_indexing_and_length():
    net = nn.Sequential(nn.Linear(2, 3, rng=0), nn.Tanh(), nn.Linear(3, 1, rng=1))
    assert len(net) == 3 and isinstance(net[1], nn.Tanh) and isinstance(net[-1], nn.Linear)
    assert len(net[:2]) == 2
    x = np.ones((4, 2))
    np.testing.assert_allclose(net(x).data, net[2](net[1](net[0](x))).data)
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_mlp_is_the_seed_network():
    net = nn.MLP([10, 16, 16, 1], rng=0)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == ["Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"]
    assert [p.shape for p in net.parameters()] == [(10, 16), (16,), (16, 16), (16,), (16, 1), (1,)]
    assert sum(p.size for p in net.parameters()) == 465
    x = np.random.default_rng(0).normal(size=(3, 10))
    p = [q.data for q in net.parameters()]
    sig = lambda s: 1 / (1 + np.exp(-s))  # noqa: E731
    expected = sig(sig(x @ p[0] + p[1]) @ p[2] + p[3]) @ p[4] + p[5]
    np.testing.assert_allclose(net(x).data, expected, rtol=1e-12)


def test_mlp_options():
    net = nn.MLP([2, 3, 2], activation=nn.ReLU(), output_activation=nn.Tanh(),
                 rng=0, dtype=np.float32)
    assert [type(m).__name__ for m in net.layers] == ["Linear", "ReLU", "Linear", "Tanh"]
    assert all(p.dtype == np.float32 for p in net.parameters())
    np.testing.assert_array_equal(nn.MLP([2, 3, 2], rng=5).state_dict()["layers.2.weight"],
                                  nn.MLP([2, 3, 2], rng=5).state_dict()["layers.2.weight"])


# --- losses ----------------------------------------------------------------------------


def test_losses_match_numpy_formulas():
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    t = gg.tensor(pred, requires_grad=True)
    assert np.isclose(nn.squared_error(t, target).item(), 0.5 * np.sum((target - pred) ** 2))
    assert np.isclose(nn.mse_loss(t, gg.tensor(target)).item(), np.mean((target - pred) ** 2))
    logits, labels = rng.normal(size=(4, 3)), np.array([0, 2, 1, 2])
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert np.isclose(nn.cross_entropy(gg.tensor(logits), labels).item(),
                      -logp[np.arange(4), labels].mean())


def test_squared_error_gradient_is_pred_minus_target():
    pred = gg.tensor([[1.0], [2.0]], requires_grad=True)
    nn.squared_error(pred, np.array([[0.5], [3.0]])).backward()
    np.testing.assert_allclose(pred.grad, [[0.5], [-1.0]])


@pytest.mark.parametrize("loss", [nn.squared_error, nn.mse_loss])
def test_shape_mismatch_raises_instead_of_broadcasting(loss):
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
        loss(gg.tensor(np.zeros((4, 1))), np.zeros(4))


def test_cross_entropy_is_stable_for_huge_logits():
    logits = gg.tensor([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], requires_grad=True)
    value = nn.cross_entropy(logits, np.array([1, 1]))
    assert np.isclose(value.item(), 0.5 * 1e4)
    value.backward()
    assert np.all(np.isfinite(logits.grad))
    np.testing.assert_allclose(logits.grad, [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], atol=1e-12)


def test_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(5, 4)), np.array([3, 0, 1, 1, 2])
    analytic = gg.grad(lambda z: nn.cross_entropy(z, labels))(logits)
    numeric = gg.numerical_grad(lambda z: nn.cross_entropy(z, labels), logits)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_cross_entropy_checks_labels():
    logits = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"0\.\.2.*\[3\]"):
        nn.cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match="labels"):
        nn.cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        nn.cross_entropy(logits, np.array([0.0, 1.0]))
    assert np.isclose(float(nn.cross_entropy(np.zeros(3), np.int64(1))), np.log(3))


# --- fit -------------------------------------------------------------------------------


def _regression(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, np.sin(X[:, 0]) + 0.5 * X[:, 1]


def test_fit_decreases_the_loss_and_accepts_1d_targets():
    X, y = _regression()
    net = nn.MLP([3, 8, 1], rng=0)
    history = nn.fit(net, X, y, nn.squared_error, optim.SGD(net.parameters(), lr=0.05),
                     epochs=15, progress=False, seed=0)
    assert len(history.loss) == 15 and history.steps == 15 * len(X)
    assert history.loss[-1] < 0.3 * history.loss[0]
    final = nn.evaluate(net, X, y, nn.squared_error)
    assert final < 0.3 * history.loss[0]


def test_fit_loss_is_the_mean_per_sample_loss():
    X, y = _regression(n=10)
    for loss, scale in ((nn.squared_error, 0.5), (nn.mse_loss, 1.0)):
        net = nn.MLP([3, 1], rng=0)
        expected = scale * np.mean((net(X).data[:, 0] - y) ** 2)
        history = nn.fit(net, X, y, loss, optim.SGD(net.parameters(), lr=0.0), epochs=1,
                         batch_size=4, progress=False, validation=(X, y))
        assert np.isclose(history.loss[0], expected) and np.isclose(history.val_loss[0], expected)


def test_fit_minibatches_with_cross_entropy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    labels = (X[:, 0] + X[:, 1] > 0).astype(int)
    net = nn.MLP([2, 8, 2], activation=nn.Tanh(), rng=0)
    history = nn.fit(net, X, labels, nn.cross_entropy, optim.Adam(net.parameters(), lr=0.05),
                     epochs=20, batch_size=8, progress=False, seed=1)
    assert history.steps == 20 * 8
    assert history.loss[-1] < 0.5 * history.loss[0]


def test_fit_shuffle_is_seeded():
    X, y = _regression(n=20)
    runs = []
    for _ in range(2):
        net = nn.MLP([3, 4, 1], rng=0)
        nn.fit(net, X, y, nn.squared_error, optim.SGD(net.parameters(), lr=0.1), epochs=2,
               progress=False, seed=7)
        runs.append(net.state_dict()["layers.0.weight"])
    np.testing.assert_array_equal(*runs)


def test_fit_progress_false_prints_nothing(capsys):
    X, y = _regression(n=8)
    net = nn.MLP([3, 1], rng=0)
    nn.fit(net, X, y, nn.squared_error, optim.SGD(net.parameters(), lr=0.01), epochs=2,
           progress=False)
    assert capsys.readouterr() == ("", "")


def test_fit_progress_without_a_terminal_prints_plain_lines(capsys):
    X, y = _regression(n=8)
    net = nn.MLP([3, 1], rng=0)
    nn.fit(net, X, y, nn.squared_error, optim.SGD(net.parameters(), lr=0.01), epochs=3)
    out, err = capsys.readouterr()
    assert out == "" and "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3  loss ")


def test_fit_progress_on_a_terminal_uses_a_bar(monkeypatch):
    tqdm = pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    X, y = _regression(n=8)
    net = nn.MLP([3, 1], rng=0)
    nn.fit(net, X, y, nn.squared_error, optim.SGD(net.parameters(), lr=0.01), epochs=2)
    assert tqdm is not None and "\r" in stream.getvalue() and "epoch 2/2" in stream.getvalue()


def test_fit_on_a_terminal_without_tqdm_falls_back_to_lines(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    X, y = _regression(n=8)
    net = nn.MLP([3, 1], rng=0)
    nn.fit(net, X, y, nn.squared_error, optim.SGD(net.parameters(), lr=0.01), epochs=2)
    assert "\r" not in stream.getvalue()
    assert stream.getvalue().splitlines()[1].startswith("epoch 2/2  loss ")


def test_fit_stops_on_nan_naming_epoch_and_step():
    X, y = _regression(n=10)
    y[6] = np.nan
    net = nn.MLP([3, 1], rng=0)
    before = net.state_dict()
    with pytest.raises(FloatingPointError, match="epoch 1, step 7"):
        nn.fit(net, X, y, nn.squared_error, optim.SGD(net.parameters(), lr=0.0), epochs=2,
               shuffle=False, progress=False)
    np.testing.assert_array_equal(net.state_dict()["layers.0.weight"], before["layers.0.weight"])


def test_fit_validates_inputs_once():
    X, y = _regression(n=10)
    net = nn.MLP([3, 1], rng=0)
    opt = optim.SGD(net.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="10 samples but y has 9"):
        nn.fit(net, X, y[:9], nn.squared_error, opt, epochs=1, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        nn.fit(net, X, y, nn.squared_error, opt, epochs=0, progress=False)
    with pytest.raises(ValueError, match=r"shape \(1, 1\).*\(1, 2\)"):
        nn.fit(net, X, np.zeros((10, 2)), nn.squared_error, opt, epochs=1, progress=False)



# --- parameters as a list, buffers, careful loading ---------------------------------------


def test_parameters_is_a_list_and_p_squared_sums():
    net = nn.MLP([2, 16, 16, 1], rng=0)
    params = net.parameters()
    assert isinstance(params, list) and len(params) == 6
    assert list(params) == params and len(list(net.parameters())) == 6  # walks twice
    penalty = sum((p * p).sum() for p in net.parameters())  # micrograd's regulariser
    penalty.backward()
    for p in net.parameters():
        np.testing.assert_allclose(p.grad, 2 * p.data)


def test_load_state_dict_refuses_complex_and_wrong_kinds_before_writing():
    model = nn.Sequential(nn.Linear(2, 2, rng=0), nn.BatchNorm1d(2))
    before = model.state_dict()
    bad = dict(before)
    bad["0.bias"] = np.ones(2)  # fine on its own, but must not be written ...
    bad["0.weight"] = before["0.weight"] + 1j  # ... because this one is refused
    with pytest.raises(ValueError, match="nothing was loaded.*'0.weight'.*complex128"):
        model.load_state_dict(bad)
    bad = dict(before, **{"1.num_batches_tracked": np.array(1.5)})
    with pytest.raises(ValueError, match="num_batches_tracked"):
        model.load_state_dict(bad)
    with pytest.raises(ValueError, match="not numbers"):
        model.load_state_dict(dict(before, **{"0.bias": np.array(["a", "b"])}))
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    model.load_state_dict(dict(before, **{"1.running_mean": np.array([1, 2])}))  # int: fine
    np.testing.assert_array_equal(model[1].running_mean, [1.0, 2.0])


def test_register_buffer():
    m = nn.Module()
    m.register_buffer("steps", np.zeros(3))
    assert list(m.state_dict()) == ["steps"] and m.parameters() == []
    m.steps[...] = 2.0
    assert list(dict(m.named_buffers())["steps"]) == [2.0, 2.0, 2.0]
    m.w = gg.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="already"):
        m.register_buffer("w", np.zeros(1))


def test_save_and_load_a_model_with_buffers(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.BatchNorm2d(2))
    net(np.random.default_rng(0).normal(size=(4, 1, 5, 5)))
    gg.save(net, tmp_path / "net.gg")
    other = nn.Sequential(nn.Conv2d(1, 2, 3, rng=1), nn.BatchNorm2d(2))
    other.load_state_dict(gg.load(tmp_path / "net.gg"))
    np.testing.assert_array_equal(other[1].running_var, net[1].running_var)
    np.testing.assert_array_equal(other[0].weight.data, net[0].weight.data)


# --- CNNs in fit and TrainStep, and gradient monitoring -----------------------------------


def _cnn(seed=0, dtype=np.float64):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=seed, dtype=dtype), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3, rng=seed, dtype=dtype))


def _images(n=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 1, 4, 4))
    return X, (X[:, 0, :2].sum(axis=(1, 2)) > 0).astype(int) + (X[:, 0, 0, 0] > 1)


def test_fit_trains_a_cnn_eagerly_and_compiled_to_the_same_weights():
    X, y = _images()
    nets = [_cnn(), _cnn()]
    histories = [nn.fit(net, X, y, nn.cross_entropy, optim.Adam(net.parameters(), lr=0.05),
                        epochs=5, batch_size=8, seed=1, progress=False, jit=jit)
                 for net, jit in zip(nets, (False, True), strict=True)]
    assert histories[0].loss[-1] < histories[0].loss[0]
    np.testing.assert_allclose(histories[0].loss, histories[1].loss, rtol=1e-12)
    for (name, a), (_, b) in zip(nets[0].named_parameters(), nets[1].named_parameters(),
                                 strict=True):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-10, atol=1e-12, err_msg=name)


def test_trainstep_on_a_float32_cnn():
    X, y = _images()
    net = _cnn(dtype=np.float32)
    step = nn.TrainStep(net, nn.cross_entropy, optim.SGD(net.parameters(), lr=0.1))
    losses = [step(X.astype(np.float32), y) for _ in range(10)]
    assert losses[-1] < losses[0]
    assert all(p.data.dtype == np.float32 for p in net.parameters())


def test_fit_monitor_records_gradient_norms_per_parameter(tmp_path):
    X, y = _images()
    net = _cnn()
    history = nn.fit(net, X, y, nn.cross_entropy, optim.SGD(net.parameters(), lr=0.01),
                     epochs=3, batch_size=8, progress=False, monitor=True)
    assert list(history.grad_norms) == ["0.weight", "0.bias", "4.weight", "4.bias"]
    assert all(len(v) == 3 and all(n > 0 for n in v) for v in history.grad_norms.values())
    assert history.warnings == []
    # with lr 0 and one full batch, the record is that batch's gradient norm
    ref = _cnn()
    history = nn.fit(ref, X, y, nn.cross_entropy, optim.SGD(ref.parameters(), lr=0.0),
                     epochs=1, batch_size=24, shuffle=False, progress=False, monitor=True)
    first = _cnn()
    nn.cross_entropy(first(X), y).backward()
    assert history.grad_norms["4.bias"][0] == pytest.approx(np.linalg.norm(first[4].bias.grad))
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    history.plot_grad_norms(tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_fit_monitor_reports_vanishing_and_exploding_gradients():
    X, y = _regression(n=16)

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(3, 1, rng=0)
            self.idle = gg.tensor([1.0], requires_grad=True)

        def forward(self, x):
            return self.used(x) + 0.0 * self.idle

    net = Unused()
    with pytest.warns(nn.GradientWarning, match="vanishing.*'idle'"):
        history = nn.fit(net, X, y, nn.mse_loss, optim.SGD(net.parameters(), lr=0.01),
                         epochs=2, batch_size=4, progress=False, monitor=True)
    assert len(history.warnings) == 1 and "'idle'" in history.warnings[0]
    net = nn.MLP([3, 1], rng=0)
    with pytest.warns(nn.GradientWarning) as caught:
        history = nn.fit(net, X * 10, y, nn.mse_loss, optim.SGD(net.parameters(), lr=0.3),
                         epochs=6, batch_size=16, progress=False, monitor=True)
    assert any("exploding" in str(w.message) and "'layers.0.weight'" in str(w.message)
               for w in caught)
    assert len(history.warnings) == len(caught) and history.warnings[0].startswith("exploding")
    with pytest.raises(ValueError, match="monitor=True"):
        nn.History().plot_grad_norms()


def test_fit_progress_in_a_notebook_uses_tqdm_auto(monkeypatch):
    pytest.importorskip("tqdm")
    import importlib

    fit_module = importlib.import_module("glassgrad.nn.fit")

    seen = {}

    class FakeBar:
        def __init__(self, **kwargs):
            seen.update(kwargs)
            self.total, self.n = kwargs["total"], 0

        def update(self, n):
            self.n += n

        def set_postfix_str(self, text):
            seen["postfix"] = text

        def close(self):
            seen["closed"] = True

    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    monkeypatch.setattr(fit_module, "_in_notebook", lambda: True)
    X, y = _regression(n=8)
    net = nn.MLP([3, 1], rng=0)
    nn.fit(net, X, y, nn.squared_error, optim.SGD(net.parameters(), lr=0.01), epochs=2)
    assert seen["total"] == 16 and seen["closed"] and "epoch 2/2" in seen["postfix"]
