"""The functional transforms (SPEC section 3), their nesting and their errors."""

import math

import numpy as np
import pytest

import glassgrad as gg


def test_grad_of_sin_to_third_order():
    for x in (0.0, 0.3, 2.0):
        assert gg.grad(gg.grad(gg.grad(np.sin)))(x) == pytest.approx(-math.cos(x))


def test_perturbation_confusion_reverse_and_forward():
    def f(x):
        return x * gg.grad(lambda y: x + y)(1.0)

    assert gg.grad(f)(3.0) == 1.0

    def g(x):
        return x * gg.jvp(lambda y: x + y, (1.0,), (1.0,))[1]

    assert gg.jvp(g, (3.0,), (1.0,))[1] == 1.0
    assert gg.grad(g)(3.0) == 1.0
    # Nested derivatives that do depend on x: d/dx [x * d/dy (x*y)] = d/dx x^2 = 2x
    assert gg.grad(lambda x: x * gg.grad(lambda y: x * y)(2.0))(3.0) == pytest.approx(6.0)


def test_argnums_and_containers():
    def f(a, b):
        return np.sum(a["w"] * b[0]) + b[1] ** 2

    a = {"w": np.array([1.0, 2.0])}
    b = (np.array([3.0, 4.0]), 5.0)
    ga = gg.grad(f)(a, b)
    np.testing.assert_allclose(ga["w"], [3.0, 4.0])
    ga, gb = gg.grad(f, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(gb[0], [1.0, 2.0])
    assert gb[1] == 10.0 and isinstance(gb, tuple)
    nested = gg.grad(lambda p: p[0][1] * p[1]["k"][0])([[1.0, 2.0], {"k": [3.0]}])
    assert nested == [[0.0, 3.0], {"k": [2.0]}]


def test_value_and_grad_and_has_aux():
    v, g = gg.value_and_grad(lambda x: x ** 3)(2.0)
    assert (v, g) == (8.0, 12.0)
    (v, aux), g = gg.value_and_grad(lambda x: (x ** 2, {"x": x}), has_aux=True)(3.0)
    assert v == 9.0 and g == 6.0 and aux["x"] == 3.0
    g, aux = gg.grad(lambda x: (np.sum(x), "note"), has_aux=True)(np.ones(2))
    assert aux == "note"
    np.testing.assert_allclose(g, 1.0)


def test_grad_keeps_float32_and_shapes():
    x = np.ones((2, 3), dtype=np.float32)
    g = gg.grad(lambda x: np.sum(np.tanh(x) * 2.0))(x)
    assert g.dtype == np.float32 and g.shape == (2, 3)
    assert isinstance(gg.grad(lambda x: x * x)(2.0), float)


def test_grad_accepts_tensors_using_their_data():
    t = gg.tensor([1.0, 2.0], requires_grad=True)
    np.testing.assert_allclose(gg.grad(lambda x: np.sum(x * x))(t), [2.0, 4.0])


def test_grad_errors():
    with pytest.raises(TypeError, match="jacobian"):
        gg.grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(TypeError, match="integer"):
        gg.grad(lambda x: x * 2)(3)
    with pytest.raises(TypeError, match="integer"):
        gg.grad(lambda x: np.sum(x))(np.arange(3))
    with pytest.raises(ValueError, match="argnums"):
        gg.grad(lambda x: x, argnums=2)(1.0)


def test_constant_function_has_zero_gradient():
    g = gg.grad(lambda x: 3.0)(np.ones(2))
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_vjp_with_container_outputs():
    out, pullback = gg.vjp(lambda x, y: {"s": x * y, "t": (x + y, y)}, np.ones(2), 2.0)
    gx, gy = pullback({"s": np.array([1.0, 2.0]), "t": (np.ones(2), 5.0)})
    np.testing.assert_allclose(gx, [3.0, 5.0])
    assert gy == pytest.approx(3.0 + 2.0 + 5.0)
    with pytest.raises(ValueError, match="shape"):
        pullback({"s": np.ones(3), "t": (np.ones(2), 5.0)})


def test_jvp_true_forward_mode_and_containers():
    out, t = gg.jvp(lambda x: np.sin(x) * x, (np.array([0.5, 1.0]),), (np.ones(2),))
    x = np.array([0.5, 1.0])
    np.testing.assert_allclose(t, np.cos(x) * x + np.sin(x))
    out, t = gg.jvp(lambda p: (p["a"] * 2, p["a"] ** 2), [{"a": 3.0}], [{"a": 1.0}])
    assert t == (2.0, 6.0)
    with pytest.raises(TypeError, match="tuples"):
        gg.jvp(np.sin, 1.0, 1.0)
    with pytest.raises(ValueError, match="shape"):
        gg.jvp(np.sin, (np.ones(2),), (np.ones(3),))


def test_linearize_evaluates_once():
    calls = []

    def f(x):
        calls.append(1)
        return np.sin(x) * x

    x = np.array([0.5, 1.0])
    out, f_jvp = gg.linearize(f, x)
    for v in (np.ones(2), np.array([2.0, -1.0])):
        np.testing.assert_allclose(f_jvp(v), gg.jvp(f, (x,), (v,))[1])
    assert len(calls) == 3  # one for linearize, one per reference jvp


def test_jacobian_modes_agree_and_shapes():
    A = np.random.default_rng(0).normal(size=(3, 4))

    def f(x):
        return np.tanh(A @ x) + np.sum(x ** 2)

    x = np.linspace(-1, 1, 4)
    jr = gg.jacobian(f)(x)
    jf = gg.jacobian(f, mode="forward")(x)
    assert jr.shape == (3, 4)
    np.testing.assert_allclose(jr, jf, rtol=1e-12)
    expected = (1 - np.tanh(A @ x) ** 2)[:, None] * A + 2 * x[None, :]
    np.testing.assert_allclose(jr, expected, rtol=1e-12)
    m = gg.jacobian(lambda m: m * 2.0)(np.ones((2, 3)))
    assert m.shape == (2, 3, 2, 3)
    outs = gg.jacobian(lambda x: {"a": x[0] * x[1], "b": x})(np.array([2.0, 3.0]))
    np.testing.assert_allclose(outs["a"], [3.0, 2.0])
    np.testing.assert_allclose(outs["b"], np.eye(2))
    j0, j1 = gg.jacobian(lambda x, y: x * y, argnums=(0, 1))(np.ones(2), 3.0)
    np.testing.assert_allclose(j0, 3 * np.eye(2))
    np.testing.assert_allclose(j1, [1.0, 1.0])
    with pytest.raises(ValueError, match="mode"):
        gg.jacobian(f, mode="sideways")


def test_hessian_forward_over_reverse_equals_reverse_over_reverse():
    A = np.random.default_rng(1).normal(size=(5, 3))

    def g(x):
        return np.sum(np.log(1 + np.exp(A @ x)))

    x = np.array([0.1, -0.4, 0.3])
    h = gg.hessian(g)(x)
    h_rr = gg.jacobian(gg.grad(g))(x)
    s = 1 / (1 + np.exp(-(A @ x)))
    np.testing.assert_allclose(h, h_rr, rtol=1e-12)
    np.testing.assert_allclose(h, A.T @ np.diag(s * (1 - s)) @ A, rtol=1e-12)
    v = np.array([1.0, 2.0, -1.0])
    np.testing.assert_allclose(gg.hvp(g, (x,), (v,)), h @ v, rtol=1e-12)


def test_nesting_in_every_combination():
    f = lambda x: np.sum(np.sin(x) * x ** 2)  # noqa: E731
    x = np.array([0.3, -0.7])
    hess = np.diag(-np.sin(x) * x ** 2 + 4 * x * np.cos(x) + 2 * np.sin(x))
    v = np.array([1.0, 0.5])
    np.testing.assert_allclose(gg.jvp(gg.grad(f), (x,), (v,))[1], hess @ v)
    np.testing.assert_allclose(gg.grad(lambda x: np.sum(gg.jvp(f, (x,), (v,))[1]))(x),
                               hess @ v)
    np.testing.assert_allclose(gg.jacobian(gg.jacobian(lambda x: np.sum(x ** 3)))(x),
                               np.diag(6 * x))
    np.testing.assert_allclose(gg.jacobian(gg.grad(f), mode="forward")(x), hess)
    third = gg.jacobian(gg.hessian(lambda x: np.sum(x ** 4)))(x)
    assert third.shape == (2, 2, 2)
    assert third[0, 0, 0] == pytest.approx(24 * x[0])


def test_python_control_flow_on_concrete_values():
    def f(x):
        if x > 0:
            return x ** 2
        y = x
        while np.abs(y) < 10:
            y = y * 2
        return y

    assert gg.grad(f)(3.0) == 6.0
    assert gg.grad(f)(-1.0) == 16.0
    assert gg.jvp(f, (-1.0,), (1.0,))[1] == 16.0


def test_concretizing_a_traced_value_raises_with_advice():
    for bad in (lambda x: float(x), lambda x: np.asarray(x), lambda x: np.array([x, x])):
        with pytest.raises(TypeError, match="np.stack"):
            gg.grad(lambda x, bad=bad: np.sum(bad(x)))(1.0)
        with pytest.raises(TypeError, match="np.stack"):
            gg.jvp(bad, (1.0,), (1.0,))
    assert gg.grad(lambda x: np.sum(np.stack([x, x * 2])))(1.0) == 3.0


def test_unsupported_numpy_function_names_itself():
    with pytest.raises(TypeError, match="np.spacing"):
        gg.grad(lambda x: np.spacing(x))(1.0)
    with pytest.raises(TypeError, match="np.convolve"):
        gg.grad(lambda x: np.sum(np.convolve(x, x)))(np.ones(3))
    with pytest.raises(TypeError, match="np.add.accumulate"):
        gg.grad(lambda x: np.sum(np.add.accumulate(x)))(np.ones(3))


# --- issue 9: no silent wrong answers in the transforms -------------------------------------


def test_repeated_argnums_raise_instead_of_leaking_a_tracer():
    f = lambda x, y: x ** 2 * y  # noqa: E731
    for argnums in ((0, 0), (1, -1)):
        with pytest.raises(ValueError, match="more than once"):
            gg.grad(f, argnums=argnums)(3.0, 2.0)
        with pytest.raises(ValueError, match="more than once"):
            gg.jacobian(f, argnums=argnums)(3.0, 2.0)
    assert gg.grad(f, argnums=(1, 0))(3.0, 2.0) == (9.0, 12.0)


def test_a_function_returning_none_raises_in_every_transform():
    def f(x):
        np.sin(x)  # the return statement is missing

    calls = [lambda: gg.grad(f)(1.0), lambda: gg.value_and_grad(f)(1.0),
             lambda: gg.vjp(f, 1.0), lambda: gg.jvp(f, (1.0,), (1.0,)),
             lambda: gg.linearize(f, 1.0), lambda: gg.jacobian(f)(1.0),
             lambda: gg.jacobian(f, mode="forward")(1.0), lambda: gg.hessian(f)(1.0),
             lambda: gg.partial(lambda x: f(x), "x")(x=1.0)]
    for call in calls:
        with pytest.raises(TypeError, match="returned None"):
            call()
    with pytest.raises(TypeError, match="returned None"):
        gg.grad(lambda x: (None, x), has_aux=True)(1.0)


def test_complex_outputs_are_refused_by_grad_not_truncated():
    # As in JAX: grad refuses a complex output (holomorphic=True asks for f'(z)); the
    # Jacobian of a real-to-complex function is complex in both modes; a real input's
    # cotangent is the real part (tests/test_complex.py has the rest).
    c = 1 + 0.2j
    for transform in (gg.grad, gg.value_and_grad):
        with pytest.raises(TypeError, match="real-valued"):
            transform(lambda x: x * c)(1.0)
    for mode in ("reverse", "forward"):
        jac = gg.jacobian(lambda x: x * c, mode=mode)(np.array([1.0, 2.0]))
        np.testing.assert_allclose(jac, c * np.eye(2))
    _, pullback = gg.vjp(lambda x: x * c, np.ones(2))
    np.testing.assert_allclose(pullback(np.ones(2, dtype=complex))[0], [1.0, 1.0])
    with pytest.raises(TypeError, match="complex"):
        gg.grad(lambda z: np.sum(z * z))(np.ones(2, dtype=complex))


def test_float32_stays_float32_in_forward_mode_and_hessians():
    x = np.array([0.3, -0.7, 1.1], dtype=np.float32)
    f = lambda x: np.sum(np.tanh(x) * 2.0)  # noqa: E731
    h = gg.hessian(f)(x)
    assert h.dtype == np.float32
    t = 1 - np.tanh(x.astype(np.float64)) ** 2
    np.testing.assert_allclose(h, np.diag(-4 * np.tanh(x) * t), rtol=1e-5)
    assert gg.hvp(f, (x,), (np.ones(3, np.float32),)).dtype == np.float32
    for mode in ("reverse", "forward"):
        assert gg.jacobian(gg.grad(f), mode=mode)(x).dtype == np.float32
    # a float64 tangent takes its float32 primal's dtype, as the output's tangent does
    _, tangent = gg.jvp(lambda x: np.sin(x) * 2.0, (x,), (np.ones(3),))
    assert tangent.dtype == np.float32
    _, f_jvp = gg.linearize(f, x)
    assert f_jvp(np.ones(3)).dtype == np.float32


def test_transforms_create_arrays_only_through_the_backend():
    import ast
    import inspect

    from glassgrad import _transforms

    creators = {"zeros", "ones", "eye", "asarray", "array", "empty", "full", "zeros_like"}
    calls = [node.func for node in ast.walk(ast.parse(inspect.getsource(_transforms)))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)]
    direct = [f"np.{f.attr}" for f in calls if isinstance(f.value, ast.Name)
              and f.value.id == "np" and f.attr in creators]
    assert direct == [], f"_transforms.py creates arrays with {direct}; use _backend"


def test_missing_gradients_and_tangents_come_from_the_backend(monkeypatch):
    from glassgrad import _backend

    made = []
    zeros = _backend.zeros

    def recording_zeros(shape, dtype, like=None):
        made.append((tuple(shape), np.dtype(dtype)))
        return zeros(shape, dtype, like=like)

    monkeypatch.setattr(_backend, "zeros", recording_zeros)
    x = np.ones(3, dtype=np.float32)
    g = gg.grad(lambda x, y: np.sum(y * 2.0), argnums=0)(x, 1.0)
    assert g.dtype == np.float32 and not g.any()
    assert ((3,), np.dtype(np.float32)) in made
    made.clear()
    _, t = gg.jvp(lambda x: (x, 5.0), (x,), (x,))
    assert made == [((), np.dtype(np.float64))] and t[1] == 0.0
