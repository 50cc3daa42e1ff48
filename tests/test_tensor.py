"""Eager tensors (SPEC section 1) and the classic reverse-mode traps."""

import gc
import sys
import warnings
import weakref

import numpy as np
import pytest

import glassgrad as gg


def test_construction_and_dtypes():
    assert gg.tensor(1.5).dtype == np.float64
    assert gg.tensor([1, 2]).dtype == np.int64
    assert gg.tensor(np.ones(3, dtype=np.float32)).dtype == np.float32
    assert gg.tensor([[1.0, 2.0]], dtype=np.float32).dtype == np.float32
    t = gg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert (t.shape, t.ndim, t.size, t.T.shape) == ((2, 3), 2, 6, (3, 2))
    assert t.grad is None and t.requires_grad
    with pytest.raises(TypeError, match="floating-point"):
        gg.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="dtype"):
        gg.tensor(["a"])


def test_backward_accumulates_and_leaf_used_twice():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 5.0])
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad, [5.0, 7.0])
    x.zero_grad()
    assert x.grad is None
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])
    x.grad = None
    x.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0, 1.0])


def test_non_scalar_backward_needs_gradient():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    with pytest.raises(ValueError, match="non-scalar"):
        y.backward()
    y.backward(np.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad, [3.0, 30.0])
    with pytest.raises(ValueError, match="shape"):
        (x * 3.0).backward(np.ones(3))


def test_operators_with_scalars_and_arrays_on_both_sides():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    a = np.array([3.0, 4.0])
    exprs = [x + 1, 1 + x, x - a, a - x, x * a, a * x, x / a, a / x, x ** 2, 2 ** x, -x,
             a @ x, x @ a]
    for e in exprs:
        assert isinstance(e, gg.Tensor)
    y = (a - x) * (a / x) + 2 ** x
    y.sum().backward()
    expected = -(a / x.data) + (a - x.data) * (-a / x.data ** 2) + np.log(2) * 2 ** x.data
    np.testing.assert_allclose(x.grad, expected)


def test_broadcasting_gradient_reduced_to_operand_shape():
    a = gg.tensor(np.ones((3, 1)), requires_grad=True)
    b = gg.tensor(np.ones((1, 4)), requires_grad=True)
    s = gg.tensor(2.0, requires_grad=True)
    (a * b * s).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (1, 4) and s.grad.shape == ()
    np.testing.assert_allclose(a.grad, 8.0)
    np.testing.assert_allclose(b.grad, 6.0)
    assert s.grad == 12.0


def test_comparisons_give_plain_boolean_arrays_and_hash_by_identity():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    for result in (x == 1.0, x < 2.0, x >= 1.0, x != x):
        assert type(result) is np.ndarray and result.dtype == bool
    assert len({x, x, gg.tensor([1.0, 2.0])}) == 2
    d = {x: 1}
    assert d[x] == 1


def test_indexing_slices_masks_and_repeated_indices():
    x = gg.tensor(np.arange(5.0), requires_grad=True)
    y = x[np.array([0, 0, 3])].sum() + x[1:3].sum() + x[x > 3.5].sum() + x[-1]
    y.backward()
    np.testing.assert_allclose(x.grad, [2.0, 1.0, 1.0, 1.0, 2.0])
    m = gg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    m[:, 1].sum().backward()
    np.testing.assert_allclose(m.grad, [[0, 1, 0], [0, 1, 0]])


def test_methods():
    x = gg.tensor(np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]]), requires_grad=True)
    assert x.sum(axis=0).shape == (3,)
    assert x.mean(axis=1, keepdims=True).shape == (2, 1)
    assert x.max().item() == 4.0 and x.min().item() == -2.0
    assert x.reshape(3, 2).shape == (3, 2) and x.reshape((6,)).shape == (6,)
    assert x.transpose().shape == (3, 2) and x.transpose(1, 0).shape == (3, 2)
    for name in ("exp", "tanh", "relu", "abs", "sigmoid"):
        assert getattr(x, name)().shape == (2, 3)
    assert x.abs().log().shape == (2, 3) and x.abs().sqrt().shape == (2, 3)
    np.testing.assert_allclose(x.clip(-1.0, 1.0).data, np.clip(x.data, -1, 1))


def test_max_min_ties_share_the_gradient():
    x = gg.tensor([1.0, 3.0, 3.0, 2.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad, [0, 0.5, 0.5, 0])
    assert x.grad.sum() == 1.0
    y = gg.tensor([[2.0, 2.0, 2.0], [1.0, 5.0, 1.0]], requires_grad=True)
    (y.min(axis=1) * np.array([3.0, 6.0])).sum().backward()
    np.testing.assert_allclose(y.grad, [[1, 1, 1], [3, 0, 3]])
    np.testing.assert_allclose(y.grad.sum(axis=1), [3.0, 6.0])


def test_sigmoid_is_stable_at_large_inputs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = gg.tensor([-1000.0, 0.0, 1000.0], requires_grad=True)
        out = s.sigmoid(a=2.0)
        out.sum().backward()
    np.testing.assert_allclose(out.data, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(s.grad, [0.0, 0.5, 0.0])
    assert np.all(np.isfinite(s.grad))


def test_no_grad_records_nothing():
    x = gg.tensor(2.0, requires_grad=True)
    with gg.no_grad():
        y = x * 3
        with gg.enable_grad():
            z = x * 3
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad


def test_numpy_conversions_follow_pytorch():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="detach"):
        np.asarray(x)
    with pytest.raises(TypeError, match="detach"):
        x.numpy()
    assert isinstance(x.detach().numpy(), np.ndarray)
    np.testing.assert_allclose(np.asarray(x.detach()), [1.0, 2.0])
    s = x.sum()
    assert s.item() == 3.0 and float(s) == 3.0 and type(s.item()) is float


def test_long_chain_does_not_hit_the_recursion_limit():
    x = gg.tensor(0.5, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    assert 100_000 > sys.getrecursionlimit()
    y.backward()
    assert x.grad == 1.0


def test_graph_is_freed_without_the_cycle_collector():
    gc.disable()
    try:
        x = gg.tensor(np.ones(3), requires_grad=True)
        y = (x * 2.0).sin().sum()
        ref = weakref.ref(y)
        mid = weakref.ref(y._node.parents[0][1])
        y.backward()
        del y
        assert ref() is None and mid() is None
    finally:
        gc.enable()


def test_gradients_are_not_aliased_and_writable():
    x = gg.tensor(np.ones(3), requires_grad=True)
    w = gg.tensor(np.ones(3), requires_grad=True)
    (x + w).sum().backward()
    assert x.grad is not w.grad
    x.grad *= 2.0  # writable, and w.grad is untouched
    np.testing.assert_allclose(w.grad, 1.0)


def test_inputs_are_not_mutated():
    data = np.array([1.0, 2.0, 3.0])
    copy = data.copy()
    x = gg.tensor(data, requires_grad=True)
    (x[np.array([0, 0])] * x[1:]).sum().backward()
    gg.grad(lambda v: np.sum(v[np.array([0, 0, 2])] ** 2))(data)
    np.testing.assert_array_equal(data, copy)


def test_repr():
    assert "requires_grad=True" in repr(gg.tensor([1.0], requires_grad=True))


def test_shape_errors_name_the_shapes():
    a = gg.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 3\)"):
        a @ a
    with pytest.raises(ValueError, match="broadcast"):
        a + np.ones(4)
    with pytest.raises(ValueError, match="reshape"):
        a.reshape(4, 2)
