"""gg.custom_vjp and gg.custom_jvp (JAX's decorator API), stop_gradient in every mode, and
has_aux on every transform that takes it."""

import functools

import numpy as np
import pytest

import glassgrad as gg


def make_clip_gradient():
    @functools.partial(gg.custom_vjp, nondiff_argnums=(0, 1))
    def clip_gradient(lo, hi, x):
        return x

    def fwd(lo, hi, x):
        return x, None

    def bwd(lo, hi, res, g):
        return (np.clip(g, lo, hi),)

    clip_gradient.defvjp(fwd, bwd)
    return clip_gradient


def test_custom_vjp_replaces_the_gradient_in_every_reverse_interpreter():
    clip = make_clip_gradient()
    f = lambda x: np.sum(3.0 * clip(-1.0, 1.0, x) + clip(-1.0, 1.0, x) ** 2)  # noqa: E731
    x = np.array([0.25, 2.0])
    want = np.clip(3.0, -1, 1) + np.clip(2 * x, -1, 1)
    np.testing.assert_allclose(gg.grad(f)(x), want)
    np.testing.assert_array_equal(gg.jit(gg.grad(f))(x), gg.grad(f)(x))
    t = gg.tensor(x, requires_grad=True)
    f(t).backward()
    np.testing.assert_allclose(t.grad, want)
    np.testing.assert_allclose(f(x), np.sum(3 * x + x ** 2))  # plain arrays: plain function


def test_custom_vjp_with_residuals_containers_and_second_order():
    @gg.custom_vjp
    def f(p, x):
        return {"y": np.sin(p["a"]) * x, "z": x ** 2}

    def fwd(p, x):
        return f(p, x), (np.cos(p["a"]), np.sin(p["a"]), x)

    def bwd(res, g):
        cos_a, sin_a, x = res
        return ({"a": np.sum(g["y"] * cos_a * x)}, g["y"] * sin_a + 2 * x * g["z"])

    f.defvjp(fwd, bwd)

    def loss(a, x):
        out = f({"a": a}, x)
        return np.sum(out["y"] ** 2 + out["z"])

    def plain(a, x):
        return np.sum((np.sin(a) * x) ** 2 + x ** 2)

    a, x = 0.7, np.array([0.5, -1.5])
    for argnums in (0, 1):
        np.testing.assert_allclose(gg.grad(loss, argnums)(a, x), gg.grad(plain, argnums)(a, x))
    # bwd is written with NumPy, so it is differentiable: second order through it.
    np.testing.assert_allclose(gg.jacobian(gg.grad(loss, 1), argnums=1)(a, x),
                               gg.hessian(lambda x: plain(a, x))(x), rtol=1e-10)


def test_forward_mode_through_custom_vjp_names_it_and_points_to_custom_jvp():
    @gg.custom_vjp
    def my_scale(x):
        return 2.0 * x

    my_scale.defvjp(lambda x: (2.0 * x, None), lambda res, g: (2.0 * g,))
    with pytest.raises(TypeError, match=r"my_scale.*custom_jvp"):
        gg.jvp(my_scale, (1.0,), (1.0,))
    with pytest.raises(TypeError, match="custom_jvp"):
        gg.jacobian(my_scale, mode="forward")(np.ones(2))


def test_custom_jvp_gives_forward_and_reverse_mode():
    @gg.custom_jvp
    def log1pexp(x):
        return np.log1p(np.exp(x))

    @log1pexp.defjvp
    def log1pexp_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return log1pexp(x), t * (1.0 - 1.0 / (1.0 + np.exp(x)))

    x = np.array([-2.0, 0.5, 100.0])
    want = 1.0 / (1.0 + np.exp(-x))
    np.testing.assert_allclose(gg.grad(lambda x: np.sum(log1pexp(x)))(x), want)
    np.testing.assert_allclose(gg.jvp(log1pexp, (x,), (np.ones(3),))[1], want)
    np.testing.assert_allclose(gg.jit(gg.grad(lambda x: np.sum(log1pexp(x))))(x), want)
    np.testing.assert_allclose(np.diag(gg.hessian(lambda x: np.sum(log1pexp(x)))(x)),
                               want * (1 - want), atol=1e-12)
    np.testing.assert_allclose(gg.vmap(gg.grad(log1pexp))(x), want)


def test_custom_jvp_defjvps_one_rule_per_argument():
    @gg.custom_jvp
    def f(x, y):
        return np.sin(x) * y

    f.defjvps(lambda t, ans, x, y: np.cos(x) * y * t, lambda t, ans, x, y: np.sin(x) * t)
    x, y = 0.3, 2.0
    assert gg.grad(f, argnums=(0, 1))(x, y) == pytest.approx((np.cos(x) * y, np.sin(x)))
    assert gg.jvp(f, (x, y), (1.0, 1.0))[1] == pytest.approx(np.cos(x) * y + np.sin(x))


def test_stop_gradient_in_every_mode():
    f = lambda x: x * gg.stop_gradient(x)  # noqa: E731
    assert gg.grad(f)(3.0) == 3.0
    assert gg.jvp(f, (3.0,), (1.0,))[1] == 3.0
    assert gg.jit(gg.grad(f))(3.0) == 3.0
    np.testing.assert_array_equal(gg.vmap(gg.grad(f))(np.array([1.0, 2.0])), [1.0, 2.0])
    t = gg.tensor(3.0, requires_grad=True)
    f(t).backward()
    assert t.grad == 3.0


def test_has_aux_on_vjp_jvp_jacobian_hessian():
    f = lambda x: (np.sum(x ** 3), {"n": 1})  # noqa: E731
    x = np.array([1.0, 2.0])
    _, pull, aux = gg.vjp(f, x, has_aux=True)
    assert aux == {"n": 1} and np.allclose(pull(1.0)[0], 3 * x ** 2)
    assert gg.jvp(f, (x,), (np.ones(2),), has_aux=True)[2] == {"n": 1}
    assert gg.jacobian(f, has_aux=True)(x)[1] == {"n": 1}
    h, aux = gg.hessian(f, has_aux=True)(x)
    np.testing.assert_allclose(h, np.diag(6 * x))


def test_custom_functions_under_jit_with_keywords_and_partial_cotangents():
    @gg.custom_jvp
    def div(x, y):
        return x / y

    @div.defjvp
    def div_jvp(primals, tangents):
        (x, y), (x_dot, _) = primals, tangents
        return div(x, y), div(x_dot, y)  # the rule calls the function on a tangent

    # jit records the row as one call (its printed name is an identifier).
    np.testing.assert_allclose(gg.jit(lambda x: div(x, 2.0) * 3.0)(np.ones(2)), [1.5, 1.5])
    assert gg.grad(lambda x: div(x, y=2.0))(1.0) == pytest.approx(0.5)  # keywords
    assert gg.jit(gg.grad(lambda x: div(x, 4.0)))(1.0) == pytest.approx(0.25)

    @gg.custom_vjp
    def f(pair):
        x, y = pair
        return x * y

    f.defvjp(lambda pair: (f(pair), pair), lambda res, g: ((g * res[1], None),))
    gx, gy = gg.grad(f)((2.0, 3.0))
    assert (gx, gy) == (3.0, 0.0)  # None in bwd's result: zeros for that part


def test_nondiff_argnames():
    @functools.partial(gg.custom_vjp, nondiff_argnames=("scale",))
    def scaled(x, scale):
        return x * scale

    scaled.defvjp(lambda x, scale: (x * scale, None), lambda scale, res, g: (g * scale * 10,))
    assert gg.grad(lambda x: scaled(x, scale=2.0))(1.0) == pytest.approx(20.0)
