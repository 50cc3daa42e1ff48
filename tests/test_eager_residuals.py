"""The eager tape keeps only what the VJP rules read (PyTorch's saved tensors).

Each primitive's residuals are derived from its rules (``_tensor.residuals``); a large
intermediate is held by the tape through a hollow stand-in, so it is freed as soon as the
user's code and the rules no longer need it. Gradients do not change by a bit.
"""

import gc
import weakref

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import _tensor
from glassgrad._primitive import PRIMITIVES

BIG = (128, 256)  # 256 KiB of float64: above the tape's hollow threshold


@pytest.mark.parametrize("name, reads_ans, args", [
    ("add", False, set()), ("sub", False, set()), ("neg", False, set()),
    ("mul", False, {0, 1}), ("sin", False, {0}), ("tanh", True, set()),
    ("exp", True, set()), ("matmul", False, {0, 1}), ("div", True, {1}),
])
def test_residuals_are_read_from_the_rules(name, reads_ans, args):
    assert _tensor.residuals(PRIMITIVES[name]) == (reads_ans, frozenset(args))


def test_rules_made_on_demand_keep_everything():
    assert _tensor.residuals(PRIMITIVES["concatenate"]) == (True, None)


def test_an_explicit_saves_column_wins():
    class Row:
        saves = (True, (1,))
        vjps = ()

    assert _tensor.residuals(Row()) == (True, frozenset({1}))


def test_a_large_intermediate_no_rule_reads_is_freed():
    x = gg.tensor(np.random.default_rng(0).standard_normal(BIG), requires_grad=True)
    p = x * 2.0                      # mul reads x and the constant, not its output
    ref = weakref.ref(p._value)
    loss = (p + 1.0).sum()           # add reads neither argument
    del p
    gc.collect()
    assert ref() is None
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.full(BIG, 2.0))


def test_a_large_intermediate_a_rule_reads_is_kept():
    x = gg.tensor(np.random.default_rng(1).standard_normal(BIG), requires_grad=True)
    t = np.tanh(x)                   # tanh's rule reads its output
    ref = weakref.ref(t._value)
    loss = (t * 3.0).sum()
    del t
    gc.collect()
    assert ref() is not None
    loss.backward()
    np.testing.assert_allclose(x.grad, 3.0 * (1.0 - np.tanh(x.data) ** 2), rtol=1e-15)


def _net(params, x):
    w1, b1, w2 = params
    z = x @ w1 + b1
    h = np.maximum(z, 0.0)
    return np.sum(np.tanh(h @ w2) * z[:, :3])  # z used twice, once after the layer


def test_eager_gradients_equal_the_transform_to_the_bit():
    rng = np.random.default_rng(2)
    values = [rng.standard_normal((64, 300)), rng.standard_normal(300),
              rng.standard_normal((300, 3))]
    x = rng.standard_normal((400, 64))
    expected = gg.grad(_net)(values, x)  # a transform's tape keeps every residual
    params = [gg.tensor(v, requires_grad=True) for v in values]
    _net(params, x).backward()
    for p, g in zip(params, expected, strict=True):
        np.testing.assert_array_equal(p.grad, g)


def test_backward_from_a_large_intermediate():
    x = gg.tensor(np.ones(BIG), requires_grad=True)
    z = x * 3.0 + 1.0
    y = z * 2.0
    z.backward(np.ones(BIG))
    np.testing.assert_array_equal(x.grad, np.full(BIG, 3.0))
    x.grad = None
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(BIG, 6.0))


def test_versions_are_checked_only_for_what_the_rules_read():
    x = gg.tensor(np.ones(3), requires_grad=True)
    w = gg.tensor(np.ones(3))
    loss = (x + w).sum()   # add reads neither argument: changing w cannot matter
    with gg.no_grad():
        w.data[0] = 5.0
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.ones(3))
    loss = (x * w).sum()   # mul reads w for x's gradient
    with gg.no_grad():
        w.data[0] = 7.0
    with pytest.raises(RuntimeError, match="'mul'"):
        loss.backward()
