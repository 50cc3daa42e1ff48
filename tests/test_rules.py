"""Every primitive of the rule table, checked against finite differences.

The test walks ``PRIMITIVES`` itself, so a primitive added later (built in or through
``gg.extend``) is checked without anyone writing a test for it: VJP and JVP against
central differences, the adjoint identity <w, J v> = <J^T w, v>, second order (the
rules are differentiable), and float32 staying float32.
"""

import zlib

import numpy as np
import pytest

import glassgrad as gg
from glassgrad._primitive import PRIMITIVES, Examples

try:  # the scipy.special rows join the table once SciPy is imported
    import scipy.special  # noqa: F401

    from glassgrad import _ops

    _ops._scipy_rows()
except ImportError:  # pragma: no cover - SciPy absent
    pass

BUILT_IN = sorted(PRIMITIVES)


def _default_spec(rng):
    # User primitives registered without examples get smooth positive inputs.
    return [((rng.uniform(0.5, 1.5, size=s),), {}) for s in [(), (3,)]]


def examples(prim):
    spec = prim.test or Examples(_default_spec)
    # A stable digest of the name (Python's hash() is salted per process), so a failing
    # case replays with the same inputs.
    rng = np.random.default_rng(zlib.crc32(prim.name.encode()))
    return spec.make_args(rng)


def differentiable_argnums(prim, args):
    out = []
    for i, a in enumerate(args):
        rule = prim.vjps[i] if i < len(prim.vjps) else None
        if rule is not None and np.asarray(a).dtype.kind in "fc":
            out.append(i)
    return out


def bind(prim, args, params, argnums):
    def f(*diff):
        full = list(args)
        for i, d in zip(argnums, diff, strict=True):
            full[i] = d
        return prim(*full, **params)

    return f


def primal(a, dtype=float):
    """An example argument as a primal: float, or complex where the example is complex."""
    a = np.asarray(a)
    return a.astype(np.result_type(dtype, np.complex64) if a.dtype.kind == "c" else dtype)


def re(out):
    """The real part of a complex output (the losses below are real); real outputs as they
    are. Works on traced values too."""
    return np.real(out) if np.iscomplexobj(out) else out


def numeric_grad(loss, primals, j, eps=1e-6):
    """Central differences of a real ``loss``; for a complex primal, JAX's convention
    df/dx - i df/dy."""
    p = primals[j]
    if p.dtype.kind != "c":
        return gg.numerical_grad(lambda x: loss(*_replace(primals, j, x)), p)
    out = np.zeros(p.shape, dtype=p.dtype)
    for k in np.ndindex(p.shape):
        for step, part in ((1.0, 1.0), (1j, -1j)):
            up, down = p.copy(), p.copy()
            up[k] += eps * step
            down[k] -= eps * step
            slope = (loss(*_replace(primals, j, up)) - loss(*_replace(primals, j, down)))
            out[k] += part * slope / (2 * eps)
    return out


def _tangent(rng, p):
    t = rng.normal(size=np.shape(p))
    return t + 1j * rng.normal(size=np.shape(p)) if np.iscomplexobj(p) else t


def numeric_jvp(f, primals, tangents, eps=1e-6):
    up = f(*[p + eps * t for p, t in zip(primals, tangents, strict=True)])
    down = f(*[p - eps * t for p, t in zip(primals, tangents, strict=True)])
    return (np.asarray(up) - np.asarray(down)) / (2 * eps)


def cases():
    for name in sorted(PRIMITIVES):
        prim = PRIMITIVES[name]
        if prim.nondifferentiable:
            continue
        for k, (args, params) in enumerate(examples(prim)):
            yield pytest.param(prim, args, params, id=f"{name}-{k}")


def test_every_built_in_primitive_declares_examples():
    missing = [n for n in BUILT_IN
               if not PRIMITIVES[n].nondifferentiable and PRIMITIVES[n].test is None]
    assert missing == []


def test_the_table_is_not_empty():
    assert {"add", "mul", "matmul", "getitem", "sum", "sigmoid", "where"} <= set(PRIMITIVES)


@pytest.mark.parametrize("prim, args, params", list(cases()))
def test_vjp_matches_finite_differences(prim, args, params):
    argnums = differentiable_argnums(prim, args)
    f = bind(prim, args, params, argnums)
    primals = [primal(args[i]) for i in argnums]
    out, pullback = gg.vjp(f, *primals)
    rng = np.random.default_rng(0)
    w = rng.normal(size=np.shape(out))
    grads = pullback(w)
    for j, p in enumerate(primals):
        numeric = numeric_grad(lambda *xs: np.sum(w * re(f(*xs))), primals, j)
        np.testing.assert_allclose(grads[j], numeric, rtol=1e-6, atol=1e-7)
        assert np.shape(grads[j]) == np.shape(p)


def _replace(seq, j, value):
    out = list(seq)
    out[j] = value
    return out


@pytest.mark.parametrize("prim, args, params", list(cases()))
def test_jvp_matches_finite_differences_and_vjp(prim, args, params):
    if prim.jvp is None:
        pytest.fail(f"primitive {prim.name} has no JVP rule")
    argnums = differentiable_argnums(prim, args)
    f = bind(prim, args, params, argnums)
    primals = tuple(primal(args[i]) for i in argnums)
    rng = np.random.default_rng(1)
    tangents = tuple(_tangent(rng, p) for p in primals)
    out, out_tangent = gg.jvp(f, primals, tangents)
    np.testing.assert_allclose(out, prim(*args, **params))
    np.testing.assert_allclose(out_tangent, numeric_jvp(f, primals, tangents),
                               rtol=1e-6, atol=1e-7)
    # The adjoint identity ties the two rules together: <w, J v> = <J^T w, v> (real parts,
    # which is what JAX's convention keeps for complex values).
    w = rng.normal(size=np.shape(out))
    _, pullback = gg.vjp(f, *primals)
    lhs = np.real(np.sum(w * out_tangent))
    rhs = np.real(sum(np.sum(g * t) for g, t in zip(pullback(w), tangents, strict=True)))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("prim, args, params", list(cases()))
def test_second_order_reverse_and_forward_over_reverse(prim, args, params):
    spec = prim.test
    if spec is not None and not spec.second_order:
        pytest.skip("declared first-order only")
    argnums = differentiable_argnums(prim, args)
    f = bind(prim, args, params, argnums)
    primals = tuple(primal(args[i]) for i in argnums)
    rng = np.random.default_rng(2)
    w = rng.normal(size=np.shape(f(*primals)))
    u = tuple(_tangent(rng, p) for p in primals)

    def directional_grad(*xs):
        # <u, grad <w, f>(xs)>: its gradient is a Hessian-vector product.
        gs = gg.grad(lambda *ys: np.sum(w * re(f(*ys))), argnums=tuple(range(len(xs))))(*xs)
        return np.real(sum(np.sum(g * ui) for g, ui in zip(gs, u, strict=True)))

    for j in range(len(primals)):
        analytic = gg.grad(directional_grad, argnums=j)(*primals)
        numeric = numeric_grad(directional_grad, primals, j)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)
    if any(np.iscomplexobj(p) for p in primals):
        return  # forward over reverse of a non-holomorphic gradient: not the same product
    # Forward over reverse gives the same Hessian-vector product.
    hv = gg.hvp(lambda *ys: np.sum(w * re(f(*ys))), primals, u)
    hv = hv if isinstance(hv, tuple) else (hv,)
    g_rev = [gg.grad(lambda *ys: directional_grad(*ys), argnums=j)(*primals)
             for j in range(len(primals))]
    for a, b in zip(hv, g_rev, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("prim, args, params", list(cases()))
def test_float32_stays_float32(prim, args, params):
    argnums = differentiable_argnums(prim, args)
    if "dtype" in params:
        pytest.skip("the primitive sets its own dtype")
    args32 = [primal(a, np.float32) if i in argnums else a for i, a in enumerate(args)]
    f = bind(prim, args32, params, argnums)
    primals = [args32[i] for i in argnums]
    out, pullback = gg.vjp(f, *primals)
    assert np.asarray(out).dtype in (np.float32, np.complex64)
    for g, p in zip(pullback(np.ones(np.shape(out), dtype=np.float32)), primals, strict=True):
        assert g.dtype == p.dtype
    # Eager backward casts nothing at the end, so a rule that promotes shows here.
    leaves = [gg.tensor(p, requires_grad=True) for p in primals]
    out = bind(prim, args32, params, argnums)(*leaves)
    out.backward(np.ones(out.shape, dtype=np.float32))
    for leaf in leaves:
        assert leaf.grad.dtype == leaf.dtype, prim.name


def test_a_user_primitive_joins_the_table_and_its_check():
    name = "test_user_cube"
    if name not in PRIMITIVES:
        gg.extend.defprimitive(name, lambda x: x ** 3,
                               derivatives=[lambda ans, x: 3.0 * x * x])
    prim = PRIMITIVES[name]
    assert [c.values[0] for c in cases()].count(prim) >= 1
    assert gg.grad(prim)(2.0) == pytest.approx(12.0)
    assert gg.jvp(prim, (2.0,), (1.0,))[1] == pytest.approx(12.0)


def test_a_wrong_rule_is_caught():
    # The checking machinery must be able to fail: a deliberately wrong rule.
    name = "test_wrong_square"
    if name not in PRIMITIVES:
        gg.extend.defprimitive(name, lambda x: x * x, derivatives=[lambda ans, x: 3.0 * x])
    prim = PRIMITIVES[name]
    with pytest.raises(AssertionError):
        test_vjp_matches_finite_differences(prim, (np.array([0.7, 1.1]),), {})
    PRIMITIVES.pop(name)
