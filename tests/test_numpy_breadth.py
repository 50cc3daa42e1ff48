"""NumPy functions composed from primitives: values equal NumPy's, derivatives match
finite differences in reverse and forward mode, jit gives eager's bits, and tensors work.

The rows of the table are checked by tests/test_rules.py; this file checks the
composites (functions that normalise their arguments and call several primitives).
"""

import numpy as np
import pytest

import glassgrad as gg

rng = np.random.default_rng(7)
A = rng.uniform(-2, 2, size=(3, 4))
B = rng.uniform(-2, 2, size=(4, 2))
V = rng.uniform(-2, 2, size=(5,))
T3 = rng.uniform(-2, 2, size=(2, 3, 4))
Z = np.array([[1.5, 0.0, -2.0], [0.0, 0.0, 3.0]])  # zeros for prod/cumprod
HOLES = np.array([False, True, False, False])  # where NaN (or inf) is put in
DISTINCT = rng.permutation(12).reshape(3, 4) * 0.37 - 2.0  # no ties for sort/median

CASES = {
    "prod": (lambda x: np.prod(x, axis=1), [Z]),
    "prod_all": (lambda x: np.prod(x), [A]),
    "cumsum": (lambda x: np.cumsum(x, axis=0), [A]),
    "cumsum_flat": (lambda x: np.cumsum(x), [A]),
    "cumprod": (lambda x: np.cumprod(x, axis=1), [Z]),
    "var": (lambda x: np.var(x, axis=0), [A]),
    "std_ddof": (lambda x: np.std(x, axis=1, ddof=1, keepdims=True), [A]),
    "ptp": (lambda x: np.ptp(x, axis=1), [DISTINCT]),
    "average": (lambda x, w: np.average(x, axis=1, weights=w), [A, np.abs(V[:4]) + 0.5]),
    "median_odd": (lambda x: np.median(x, axis=0), [DISTINCT]),
    "median_even": (lambda x: np.median(x, axis=1), [DISTINCT]),
    "median_all": (lambda x: np.median(x), [DISTINCT]),
    "nansum": (lambda x: np.nansum(np.where(HOLES, np.nan, x)), [A]),
    "nanmean": (lambda x: np.nanmean(np.where(HOLES, np.nan, x), axis=1), [A]),
    "nanmax": (lambda x: np.nanmax(np.where(HOLES, np.nan, x), axis=1), [DISTINCT]),
    "nanmin": (lambda x: np.nanmin(np.where(HOLES, np.nan, x)), [DISTINCT]),
    "diff": (lambda x: np.diff(x, n=2, axis=1), [A]),
    "diff_prepend": (lambda x: np.diff(x, prepend=0.5), [V]),
    "float_power": (lambda x, y: np.float_power(x, y), [np.abs(V) + 0.3, V]),
    "true_divide": (lambda x, y: np.true_divide(x, y), [V, np.abs(V) + 0.5]),
    "atleast": (lambda x: np.atleast_3d(x) * np.atleast_2d(x)[..., None], [V]),
    "moveaxis": (lambda x: np.moveaxis(x, [0, 1], [-1, 0]), [T3]),
    "rollaxis": (lambda x: np.rollaxis(x, 2, 0), [T3]),
    "dstack": (lambda x, y: np.dstack([x, y]), [A, A * 2]),
    "column_stack": (lambda x, y: np.column_stack([x, y]), [V, V[::-1]]),
    "append": (lambda x, y: np.append(x, y), [A, V]),
    "append_axis": (lambda x, y: np.append(x, y, axis=0), [A, A[:1]]),
    "split": (lambda x: np.split(x, 2, axis=1)[1] * 2, [A]),
    "array_split": (lambda x: np.concatenate(np.array_split(x, 3)[::-1]), [V]),
    "hsplit": (lambda x: np.hsplit(x, [1, 3])[1], [A]),
    "vsplit": (lambda x: np.vsplit(x, 3)[2], [A]),
    "dsplit": (lambda x: np.dsplit(x, [1])[1], [T3]),
    "tile": (lambda x: np.tile(x, (2, 1, 3)), [A]),
    "repeat": (lambda x: np.repeat(x, [1, 0, 3], axis=0), [A]),
    "repeat_flat": (lambda x: np.repeat(x, 2), [A]),
    "pad_constant": (lambda x: np.pad(x, ((1, 2), (0, 1)), constant_values=0.5), [A]),
    "pad_reflect": (lambda x: np.pad(x, 2, mode="reflect"), [A]),
    "pad_edge": (lambda x: np.pad(x, (1, 3), mode="edge"), [V]),
    "pad_wrap": (lambda x: np.pad(x, 2, mode="wrap"), [V]),
    "roll": (lambda x: np.roll(x, (1, -2), axis=(0, 1)), [A]),
    "roll_flat": (lambda x: np.roll(x, 5), [A]),
    "flip": (lambda x: np.flip(x, axis=(0, 2)) + np.flipud(x) + np.fliplr(x), [T3]),
    "rot90": (lambda x: np.concatenate([np.rot90(x, k).ravel() for k in range(-1, 4)]), [A]),
    "take": (lambda x: np.take(x, [0, 2, 2], axis=1), [A]),
    "take_flat": (lambda x: np.take(x, [[0, 11], [3, 3]]), [A]),
    "take_along_axis": (lambda x: np.take_along_axis(x, np.array([[0, 0, 3]] * 3), 1), [A]),
    "select": (lambda x: np.select([x > 1, x < -1], [x ** 2, x * 3], 0.5), [A]),
    "sort": (lambda x: np.sort(x, axis=1), [DISTINCT]),
    "sort_flat": (lambda x: np.sort(x, axis=None), [DISTINCT]),
    "partition": (lambda x: np.partition(x, 2, axis=1)[:, 2], [DISTINCT]),
    "linspace": (lambda a, b: np.linspace(a, b, 5), [np.array(0.3), np.array(2.1)]),
    "linspace_arrays": (lambda a, b: np.linspace(a, b, 4, endpoint=False, axis=1),
                        [V[:2], V[2:4]]),
    "diag_vec": (lambda x: np.diag(x, k=1), [V]),
    "diag_mat": (lambda x: np.diag(x, k=-1), [A]),
    "diagonal": (lambda x: np.diagonal(x, offset=1, axis1=2, axis2=1), [T3]),
    "trace": (lambda x: np.trace(x), [A]),
    "triu_tril": (lambda x: np.triu(x, 1) - np.tril(x, -1) * 2, [A]),
    "kron": (lambda x, y: np.kron(x, y), [A[:2, :2], B]),
    "cross": (lambda x, y: np.cross(x, y), [A[:, :3], A[:, 1:]]),
    "dot_nd": (lambda x, y: np.dot(x, y), [T3, B]),
    "vdot": (lambda x, y: np.vdot(x, y), [A, A * 0.5 + 1]),
    "inner": (lambda x, y: np.inner(x, y), [T3, A]),
    "outer": (lambda x, y: np.outer(x, y), [V, B]),
    "tensordot": (lambda x, y: np.tensordot(x, y, axes=([1, 2], [0, 1])), [T3, A]),
    "tensordot_int": (lambda x, y: np.tensordot(x, y, 1), [A, B]),
    "nan_to_num": (lambda x: np.nan_to_num(np.where(HOLES, np.inf, x), posinf=9.0), [A]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_composite_matches_numpy_and_finite_differences(name):
    f, args = CASES[name]
    with np.errstate(all="ignore"):
        want = f(*args)
    argnums = tuple(range(len(args)))
    out = gg.jit(f)(*args)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    w = np.random.default_rng(1).normal(size=np.shape(want))

    def loss(*xs):
        return np.sum(w * f(*xs))

    grads = gg.grad(loss, argnums=argnums)(*args)
    for j in argnums:
        numeric = gg.numerical_grad(loss, *args, argnums=j)
        np.testing.assert_allclose(grads[j], numeric, rtol=1e-6, atol=1e-7)
    tangents = tuple(np.random.default_rng(2).normal(size=np.shape(a)) for a in args)
    _, t_out = gg.jvp(f, args, tangents)
    np.testing.assert_allclose(np.sum(w * t_out),
                               sum(np.sum(g * t) for g, t in zip(grads, tangents, strict=True)),
                               rtol=1e-9, atol=1e-10)
    # Compiled gradient equals eager to the bit; eager tensors give the same gradient.
    vg = gg.value_and_grad(loss, argnums=argnums)
    (v1, g1), (v2, g2) = gg.jit(vg)(*args), vg(*args)
    assert np.array_equal(v1, v2) and all(np.array_equal(a, b) for a, b in zip(g1, g2, strict=True))
    leaves = [gg.tensor(a, requires_grad=True) for a in args]
    loss(*leaves).backward()
    for leaf, g in zip(leaves, grads, strict=True):
        np.testing.assert_allclose(leaf.grad, g, rtol=1e-12, atol=1e-12)


def test_prod_at_zeros_is_the_product_of_the_others():
    x = np.array([2.0, 0.0, 3.0])
    np.testing.assert_array_equal(gg.grad(np.prod)(x), [0.0, 6.0, 0.0])
    np.testing.assert_array_equal(gg.grad(np.prod)(np.array([0.0, 0.0, 3.0])), [0.0, 0.0, 0.0])
    # Second order stays exact: d^2 prod / dx0 dx1 = x2 even with two zeros.
    h = gg.hessian(np.prod)(np.array([0.0, 0.0, 3.0]))
    np.testing.assert_array_equal(h, [[0.0, 3.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_sort_ties_send_each_output_to_one_input():
    g = gg.grad(lambda x: np.sort(x)[-1])(np.array([1.0, 3.0, 3.0]))
    assert g.sum() == 1.0 and set(g) == {0.0, 1.0}


def test_split_returns_lists_and_unsupported_functions_name_themselves():
    parts = gg.grad(lambda x: np.sum(np.split(x, 3)[0] * np.split(x, 3)[2]))(np.arange(6.0))
    np.testing.assert_array_equal(parts, [4.0, 5.0, 0.0, 0.0, 0.0, 1.0])
    with pytest.raises(TypeError, match="np.pad"):
        gg.grad(lambda x: np.sum(np.pad(x, 1, mode="maximum")))(np.ones(3))
