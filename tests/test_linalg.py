"""numpy.linalg and einsum on traced values: NumPy's values, derivatives against finite
differences (the rows are also walked by tests/test_rules.py), and the documented
behaviour at degenerate points (docs/conventions.md)."""

import numpy as np
import pytest

import glassgrad as gg

rng = np.random.default_rng(11)
M = rng.uniform(-1, 1, size=(4, 4)) + 3 * np.eye(4)
TALL = rng.uniform(-1, 1, size=(5, 3))
WIDE = rng.uniform(-1, 1, size=(2, 3, 5))
SYM = M + M.T
SPD = M @ M.T + np.eye(4)
BATCH = rng.uniform(-1, 1, size=(2, 3, 3)) + 2 * np.eye(3)
VEC = rng.uniform(-1, 1, size=5)

CASES = {
    "inv": (np.linalg.inv, [BATCH]),
    "det": (np.linalg.det, [BATCH]),
    "slogdet": (lambda a: np.linalg.slogdet(a)[1] * np.linalg.slogdet(a).sign, [-M]),
    "solve_vec": (np.linalg.solve, [M, VEC[:4]]),
    "solve_mat": (np.linalg.solve, [BATCH, BATCH[:, :, :2]]),
    "cholesky": (lambda a: np.linalg.cholesky(a @ a.T + np.eye(4)), [M]),
    "eigh": (lambda a: np.linalg.eigh(a)[0], [SYM]),
    "eigh_vectors": (lambda a: np.abs(np.linalg.eigh(a).eigenvectors), [SYM]),
    "eigvalsh": (np.linalg.eigvalsh, [SYM]),
    "svd_tall": (lambda a: np.linalg.svd(a, full_matrices=False)[0] ** 2, [TALL]),
    "svd_wide": (lambda a: sum(np.sum(p ** 2 * 0.3) for p in np.linalg.svd(a, False)), [WIDE]),
    "svd_values": (lambda a: np.linalg.svd(a, compute_uv=False), [WIDE]),
    "qr": (lambda a: np.linalg.qr(a)[0] * 2 + np.linalg.qr(a, mode="r")[:1], [TALL]),
    "pinv": (np.linalg.pinv, [WIDE]),
    "matrix_power": (lambda a: np.linalg.matrix_power(a, 5), [M / 3]),
    "matrix_power_neg": (lambda a: np.linalg.matrix_power(a, -2), [M]),
    "norm": (np.linalg.norm, [VEC]),
    "norm_p": (lambda x: np.linalg.norm(x, ord=3), [VEC]),
    "norm_1_inf": (lambda x: np.linalg.norm(x, 1) + np.linalg.norm(x, np.inf), [VEC]),
    "norm_axis": (lambda x: np.linalg.norm(x, axis=1, keepdims=True), [TALL]),
    "norm_fro": (lambda x: np.linalg.norm(x, "fro"), [TALL]),
    "norm_nuc": (lambda x: np.linalg.norm(x, "nuc"), [TALL]),
    "norm_2": (lambda x: np.linalg.norm(x, 2, axis=(1, 2)), [WIDE]),
    "norm_mat_1": (lambda x: np.linalg.norm(x, 1) - np.linalg.norm(x, -np.inf), [M]),
    "einsum_matmul": (lambda a, b: np.einsum("ij,jk", a, b), [M, TALL[:4]]),
    "einsum_ellipsis": (lambda a, b: np.einsum("...ij,...jk->...ik", a, b), [BATCH, BATCH]),
    "einsum_trace": (lambda a: np.einsum("ii", a), [M]),
    "einsum_diag": (lambda a: np.einsum("ii->i", a), [M]),
    "einsum_three": (lambda a, b, c: np.einsum("ij,jk,k->i", a, b, c), [M, M, VEC[:4]]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_linalg_matches_numpy_and_finite_differences(name):
    f, args = CASES[name]
    want = f(*args)
    np.testing.assert_allclose(gg.jit(f)(*args), want, rtol=1e-10, atol=1e-12)
    w = np.random.default_rng(3).normal(size=np.shape(want))

    def loss(*xs):
        return np.sum(w * f(*xs))

    argnums = tuple(range(len(args)))
    grads = gg.grad(loss, argnums=argnums)(*args)
    for j in argnums:
        numeric = gg.numerical_grad(loss, *args, argnums=j)
        np.testing.assert_allclose(grads[j], numeric, rtol=1e-5, atol=1e-6)
    tangents = tuple(np.random.default_rng(4).normal(size=np.shape(a)) for a in args)
    _, t_out = gg.jvp(f, args, tangents)
    np.testing.assert_allclose(np.sum(w * t_out),
                               sum(np.sum(g * t) for g, t in zip(grads, tangents, strict=True)),
                               rtol=1e-8)
    vg = gg.value_and_grad(loss, argnums=argnums)
    (v1, g1), (v2, g2) = gg.jit(vg)(*args), vg(*args)
    assert np.array_equal(v1, v2)
    assert all(np.array_equal(a, b) for a, b in zip(g1, g2, strict=True))


def test_second_order_through_a_decomposition():
    f = lambda a: np.linalg.slogdet(a)[1]  # noqa: E731
    h = gg.hessian(f)(M)
    numeric = np.stack([gg.numerical_grad(lambda a, i=i, j=j: gg.grad(f)(a)[i, j], M)
                        for i in range(4) for j in range(4)]).reshape(4, 4, 4, 4)
    np.testing.assert_allclose(h, numeric, rtol=1e-5, atol=1e-6)


def test_eigenvalues_at_a_repeated_eigenvalue_are_finite_and_vectors_are_nan():
    a = np.diag([1.0, 1.0, 2.0])
    g = gg.grad(lambda a: np.sum(np.linalg.eigh(a)[0] * np.array([1.0, 2.0, 3.0])))(a)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(gg.grad(lambda a: np.sum(np.linalg.eigvalsh(a)))(a), np.eye(3))
    g = gg.grad(lambda a: np.sum(np.linalg.eigh(a)[1][:, 0] * np.array([1.0, 2.0, 3.0])))(a)
    assert np.isnan(g).any()


def test_singular_values_alone_are_finite_at_repeats_and_norm_at_zero_is_zero():
    g = gg.grad(lambda a: np.linalg.norm(a, "nuc"))(np.eye(3))
    np.testing.assert_allclose(g, np.eye(3))
    np.testing.assert_array_equal(gg.grad(np.linalg.norm)(np.zeros(3)), np.zeros(3))
    # det of a singular matrix: its rule inverts the matrix, which NumPy refuses (as in
    # HIPS autograd; JAX and PyTorch return the adjugate), documented.
    with pytest.raises(np.linalg.LinAlgError):
        gg.grad(lambda a: np.linalg.det(a))(np.array([[1.0, 2.0], [2.0, 4.0]]))


def test_symmetric_decompositions_differentiate_the_triangle_numpy_reads():
    # NumPy reads the lower triangle only: the gradient lives there (upper part 0), and
    # gg.check_grad of plain NumPy code agrees; symmetrised, it is the peers' gradient.
    f = lambda a: np.sum(np.linalg.cholesky(a) ** 2) + np.sum(np.linalg.eigvalsh(a) ** 3)  # noqa: E731
    g = gg.grad(f)(SPD)
    np.testing.assert_array_equal(np.triu(g, 1), 0.0)
    gg.check_grad(f, SPD)
    sym = gg.grad(lambda b: f((b + b.T) / 2))(SPD)
    np.testing.assert_allclose(sym, (g + g.T) / 2, rtol=1e-10)
    g_upper = gg.grad(lambda a: np.sum(np.linalg.eigvalsh(a, UPLO="U") ** 3))(SPD)
    np.testing.assert_array_equal(np.tril(g_upper, -1), 0.0)


def test_unsupported_forms_raise_type_error():
    with pytest.raises(TypeError, match="full_matrices"):
        gg.grad(lambda a: np.sum(np.linalg.svd(a)[0]))(TALL)
    with pytest.raises(TypeError, match="qr"):
        gg.grad(lambda a: np.sum(np.linalg.qr(a)[1]))(TALL.T)
    with pytest.raises(TypeError, match="complex"):
        gg.grad(lambda a: np.sum(np.abs(np.linalg.qr(a)[1])))(M + 1j)


def test_einsum_interleaved_form_and_complex_norms():
    g = gg.grad(lambda a: np.sum(np.einsum(a, [0, 1], [1]) ** 2))(M)
    np.testing.assert_allclose(g, gg.grad(lambda a: np.sum(np.sum(a, axis=0) ** 2))(M))
    z = VEC + 1j * VEC[::-1]
    assert np.allclose(gg.grad(np.linalg.norm)(z), z.conj() / np.linalg.norm(z))


def test_tensor_backward_through_linalg():
    t = gg.tensor(SPD, requires_grad=True)
    (np.linalg.slogdet(t)[1] + np.sum(np.linalg.solve(t, np.ones(4)))).backward()
    want = gg.grad(lambda a: np.linalg.slogdet(a)[1] + np.sum(np.linalg.solve(a, np.ones(4))))
    np.testing.assert_allclose(t.grad, want(SPD))


@pytest.mark.parametrize("name, f, x", [
    ("eigh", lambda a: np.sum(np.linalg.eigh(a)[0] * np.arange(4.0))
     + np.sum(np.abs(np.linalg.eigh(a, "U")[1]) ** 3), M + 1j * M.T),
    ("eigvalsh", lambda a: np.sum(np.linalg.eigvalsh(a) ** 3), M + 2j * M),
    ("svd", lambda a: sum(np.sum(np.abs(p) ** 3) for p in np.linalg.svd(a, False)),
     TALL + 1j * TALL[::-1]),
    ("svd_wide", lambda a: sum(np.sum(np.abs(p) ** 3) for p in np.linalg.svd(a, False)),
     WIDE + 0.5j),
    ("nuclear", lambda a: np.linalg.norm(a, "nuc"), TALL - 1j * TALL),
    ("cholesky", lambda a: np.sum(np.abs(np.linalg.cholesky(a @ a.conj().T + 4 * np.eye(4)))),
     M + 1j * M.T),
])
def test_complex_matrices_gradient_of_a_real_loss(name, f, x):
    # Directional derivatives along random complex directions: Re(sum(g * v)) in JAX's
    # convention (grad = df/dx - i df/dy).
    if name == "cholesky":
        with pytest.raises(TypeError, match="complex"):
            gg.grad(f)(x)
        return
    g = gg.grad(f)(x)
    rng = np.random.default_rng(9)
    for _ in range(3):
        v = rng.normal(size=x.shape) + 1j * rng.normal(size=x.shape)
        numeric = (f(x + 1e-6 * v) - f(x - 1e-6 * v)) / 2e-6
        assert np.real(np.sum(g * v)) == pytest.approx(numeric, rel=1e-5, abs=1e-6)
        assert gg.jvp(f, (x,), (v,))[1] == pytest.approx(numeric, rel=1e-5, abs=1e-6)
