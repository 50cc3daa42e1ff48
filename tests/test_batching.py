"""vmap, the batching interpreter: every primitive of the table against a loop.

The table test walks ``PRIMITIVES`` as tests/test_rules.py does: each primitive's examples
are drawn for several seeds (same shapes and parameters, other values), stacked into a
batch along axis 0, along the last axis, or for the first or last argument only, and ``vmap`` of the
primitive must equal the stacked results of calling it once per example. The rest checks
composition with the other transforms, ``in_axes``/``out_axes`` containers, the errors,
the loop fallback and the vectorised ``jacobian``/``hessian``.
"""

import doctest
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

import glassgrad as gg
from glassgrad._batching import batch_rule, looping_primitives
from glassgrad._primitive import PRIMITIVES, Examples

SEEDS = (0, 1, 2)


# --- examples for the rows that have none (masks, comparisons, index reductions) -------------


def _floats(rng, shapes):
    return [rng.uniform(-2, 2, size=s) for s in shapes]


def _nondiff_examples(prim):
    name, impl = prim.name, prim.impl
    reductions = {"argmax", "argmin", "any", "all", "count_nonzero"}
    if name in reductions:
        def make(rng):
            x = rng.uniform(-2, 2, size=(2, 3, 4))
            if name in ("any", "all", "count_nonzero"):
                x = x > 0
            axes = [None, 1, -1] if name in ("argmax", "argmin") else [None, 1, (0, 2)]
            return ([((x,), {"axis": a}) for a in axes]
                    + [((x,), {"axis": axes[1], "keepdims": True})]
                    + [((x,), {"axis": None, "keepdims": True})])
        return make
    if name == "argsort":
        return lambda rng: [((rng.uniform(size=(3, 4)),), {"axis": a}) for a in (-1, 0, None)]
    if name == "cast":
        return lambda rng: [((x,), {"dtype": np.int64}) for x in _floats(rng, [(), (3,)])]
    if name in ("stop_gradient", "isclose"):
        n = 1 if name == "stop_gradient" else 2
        return lambda rng: [(tuple(_floats(rng, [(2, 3)] * n)), {})]
    if isinstance(impl, np.ufunc) and impl.signature is None:
        bools = name.startswith(("logical", "bitwise")) or name == "invert"

        def make(rng):
            pairs = [((), ()), ((3,), (3,)), ((2, 3), (3,))][: 3 if impl.nin == 2 else 3]
            out = []
            for sx, sy in pairs:
                xs = _floats(rng, [sx, sy][: impl.nin])
                if bools:
                    xs = [x > 0 for x in xs]
                out.append((tuple(xs), {}))
            return out
        return make
    return None


def examples(prim, seed):
    make = prim.test.make_args if prim.test is not None else _nondiff_examples(prim)
    rng = np.random.default_rng(zlib.crc32(prim.name.encode()) + seed)
    return make(rng)


def _batchable(x):
    return isinstance(x, np.ndarray | np.generic) and x.dtype.kind in "fbci"


def cases():
    for name in sorted(PRIMITIVES):
        prim = PRIMITIVES[name]
        if name == "nonzero" or (prim.test is None and _nondiff_examples(prim) is None):
            continue
        for k in range(len(examples(prim, 0))):
            for layout in ("front", "last", "first-only", "last-only"):
                yield pytest.param(prim, k, layout, id=f"{name}-{k}-{layout}")


def _stacked(versions, axis):
    return np.stack(versions, axis=axis if np.ndim(versions[0]) else 0)


@pytest.mark.parametrize("prim, k, layout", list(cases()))
def test_vmap_of_each_primitive_matches_a_loop(prim, k, layout):
    batch = [examples(prim, s)[k] for s in SEEDS]
    args0, params = batch[0]
    batched = [i for i, a in enumerate(args0) if _batchable(a)]
    if layout == "first-only":
        batched = batched[:1]
    elif layout == "last-only":
        batched = batched[-1:]
    if not batched:
        pytest.skip("no float argument to batch")
    axis = -1 if layout == "last" else 0

    def per_example(b):
        return [batch[b][0][i] if i in batched else args0[i] for i in range(len(args0))]

    expected = np.stack([np.asarray(prim(*per_example(b), **params)) for b in range(len(SEEDS))])
    stacked = [_stacked([batch[b][0][i] for b in range(len(SEEDS))], axis) if i in batched
               else args0[i] for i in range(len(args0))]
    in_axes = tuple((axis if np.ndim(args0[i]) else 0) if i in batched else None
                    for i in range(len(args0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows without a rule loop, with a warning
        got = gg.vmap(lambda *a: prim(*a, **params), in_axes=in_axes)(*stacked)
    got = np.asarray(got)
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    if expected.dtype.kind == "b":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_structural_rows_have_rules_and_families_cover_the_rest():
    for name in ["reshape", "transpose", "broadcast_to", "sum_to", "getitem", "scatter_add",
                 "concatenate", "matmul", "where", "clip", "sum", "mean", "max", "argmax",
                 "add", "mul", "greater", "cast", "astype", "stop_gradient", "tanh"]:
        assert batch_rule(PRIMITIVES[name]) is not None, name
    assert "nonzero" in looping_primitives()


# --- indexing with batched indices ------------------------------------------------------------


@pytest.mark.parametrize("index_of", [
    lambda i: i,                      # x[i]
    lambda i: (slice(None), i),       # x[:, i]
    lambda i: (i, slice(None), 0),    # x[i, :, 0]
    lambda i: (Ellipsis, i),          # x[..., i]
])
def test_gather_with_batched_indices_and_its_gradient(index_of):
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(4, 3, 3, 2))
    idx = rng.integers(0, 2, size=(4, 2))

    def f(x, i):
        return x[index_of(i)]

    expected = np.stack([f(x, i) for x, i in zip(xs, idx, strict=True)])
    np.testing.assert_array_equal(gg.vmap(f)(xs, idx), expected)
    g = gg.vmap(gg.grad(lambda x, i: np.sum(np.sin(f(x, i)))))(xs, idx)
    loop = np.stack([gg.grad(lambda x, i=i: np.sum(np.sin(f(x, i))))(x)
                     for x, i in zip(xs, idx, strict=True)])
    np.testing.assert_allclose(g, loop)


def test_unbatched_index_array_apart_from_another_keeps_numpys_order():
    xs = np.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    f = lambda x: x[np.array([0, 2]), :, np.array([1, 3])]  # noqa: E731 - advanced apart
    np.testing.assert_array_equal(gg.vmap(f)(xs), np.stack([f(x) for x in xs]))
    g = gg.vmap(gg.grad(lambda x: np.sum(f(x) ** 2)))(xs)
    np.testing.assert_allclose(g, np.stack([gg.grad(lambda x: np.sum(f(x) ** 2))(x)
                                            for x in xs]))


def test_boolean_mask_index_and_batched_mask_choice():
    xs = np.random.default_rng(4).normal(size=(3, 5))
    mask = np.array([True, False, True, True, False])
    np.testing.assert_array_equal(gg.vmap(lambda x: x[mask])(xs), xs[:, mask])
    relu = gg.vmap(lambda x: np.where(x > 0, x, 0.0))(xs)
    np.testing.assert_array_equal(relu, np.maximum(xs, 0.0))


# --- composition ------------------------------------------------------------------------------


def _mlp_loss(params, x, y):
    w1, b1, w2, b2 = params
    h = np.tanh(x @ w1 + b1)
    logits = h @ w2 + b2
    return gg.logsumexp(logits) - logits[y]


def _mlp(rng, dtype=np.float64):
    params = [rng.normal(size=(5, 7)) * 0.5, np.zeros(7), rng.normal(size=(7, 3)) * 0.5,
              np.zeros(3)]
    return [p.astype(dtype) for p in params]


def test_per_example_gradients_equal_a_loop_of_gradients():
    rng = np.random.default_rng(5)
    params = _mlp(rng)
    xs, ys = rng.normal(size=(6, 5)), rng.integers(0, 3, size=6)
    per_example = gg.vmap(gg.grad(_mlp_loss), in_axes=(None, 0, 0))(params, xs, ys)
    assert isinstance(per_example, list) and len(per_example) == 4
    for k in range(6):
        g = gg.grad(_mlp_loss)(params, xs[k], ys[k])
        for got, want in zip(per_example, g, strict=True):
            np.testing.assert_allclose(got[k], want, rtol=1e-12, atol=1e-14)


def test_per_example_gradients_keep_float32():
    rng = np.random.default_rng(6)
    params = _mlp(rng, np.float32)
    xs = rng.normal(size=(4, 5)).astype(np.float32)
    ys = rng.integers(0, 3, size=4)
    grads = gg.vmap(gg.grad(_mlp_loss), in_axes=(None, 0, 0))(params, xs, ys)
    assert [g.dtype for g in grads] == [np.float32] * 4
    assert [g.shape for g in grads] == [(4, 5, 7), (4, 7), (4, 7, 3), (4, 3)]


def test_grad_of_a_vmapped_sum():
    xs = np.linspace(-1, 1, 6).reshape(3, 2)
    f = lambda w, x: np.tanh(x @ w) * np.sum(w ** 2)  # noqa: E731
    w = np.array([0.3, -0.7])
    got = gg.grad(lambda w: np.sum(gg.vmap(f, in_axes=(None, 0))(w, xs)))(w)
    want = gg.grad(lambda w: sum(f(w, x) for x in xs))(w)
    np.testing.assert_allclose(got, want)


def test_vmap_of_vmap_and_jacobian_of_vmap():
    xs = np.random.default_rng(7).normal(size=(2, 3, 4))
    f = lambda x: np.sin(x) * np.sum(x)  # noqa: E731
    np.testing.assert_allclose(gg.vmap(gg.vmap(f))(xs),
                               np.stack([np.stack([f(x) for x in row]) for row in xs]))
    np.testing.assert_allclose(gg.vmap(gg.vmap(f), in_axes=1, out_axes=1)(xs),
                               np.stack([np.stack([f(xs[i, j]) for i in range(2)], 0)
                                         for j in range(3)], 1))
    jac = gg.jacobian(gg.vmap(f))(xs[0])
    loop = gg.jacobian(lambda x: np.stack([f(r) for r in x]))(xs[0])
    np.testing.assert_allclose(jac, loop)
    fwd = gg.jacobian(gg.vmap(f), mode="forward")(xs[0])
    np.testing.assert_allclose(fwd, loop)


def test_jvp_vjp_and_hessian_through_vmap_both_ways():
    rng = np.random.default_rng(8)
    xs, ts = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    f = lambda x: np.sum(np.exp(x) * x) ** 2  # noqa: E731
    out, tan = gg.jvp(gg.vmap(f), (xs,), (ts,))
    b_out, b_tan = gg.vmap(lambda x, t: gg.jvp(f, (x,), (t,)))(xs, ts)
    np.testing.assert_allclose(out, b_out)
    np.testing.assert_allclose(tan, b_tan)
    np.testing.assert_allclose(tan, [np.dot(gg.grad(f)(x), t) for x, t in zip(xs, ts, strict=True)])
    _, pull = gg.vjp(gg.vmap(f), xs)
    np.testing.assert_allclose(pull(np.ones(3))[0], gg.vmap(gg.grad(f))(xs))
    hess = gg.vmap(gg.hessian(f))(xs)
    np.testing.assert_allclose(hess, np.stack([gg.hessian(f)(x) for x in xs]))


def test_jit_records_the_batched_program():
    rng = np.random.default_rng(9)
    params = _mlp(rng)
    xs, ys = rng.normal(size=(6, 5)), rng.integers(0, 3, size=6)
    per_example = gg.vmap(gg.grad(_mlp_loss), in_axes=(None, 0, 0))
    compiled = gg.jit(per_example)
    for got, want in zip(compiled(params, xs, ys), per_example(params, xs, ys), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    source = compiled.source(params, xs, ys)
    assert "for " not in source  # the batch is vectorised, not a loop
    assert source.count("\n") < 60
    # and vmap of a jitted function runs the Python function on the batch
    np.testing.assert_allclose(gg.vmap(gg.jit(np.sin))(xs), np.sin(xs))


def test_eager_tensors_through_vmap_record_on_the_tape():
    w = gg.tensor([0.5, -1.0], requires_grad=True)
    xs = np.arange(6.0).reshape(3, 2)
    out = gg.vmap(lambda x: np.sum(np.tanh(x * w)))(xs)
    out.sum().backward()
    expected = gg.grad(lambda w: np.sum(np.tanh(xs * w)))(np.array([0.5, -1.0]))
    np.testing.assert_allclose(w.grad, expected)


# --- in_axes and out_axes -------------------------------------------------------------------


def test_in_axes_and_out_axes_containers():
    rng = np.random.default_rng(10)
    params = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=3)}
    xs = rng.normal(size=(2, 4))  # examples along axis 1

    def f(p, x):
        return {"y": p["w"] @ x + p["b"], "n": np.sum(x ** 2)}

    got = gg.vmap(f, in_axes=({"w": None, "b": None}, 1), out_axes={"y": 1, "n": 0})(params, xs)
    assert got["y"].shape == (3, 4) and got["n"].shape == (4,)
    for k in range(4):
        want = f(params, xs[:, k])
        np.testing.assert_allclose(got["y"][:, k], want["y"])
        np.testing.assert_allclose(got["n"][k], want["n"])
    # a batched leaf inside a container, an unbatched one, negative axes, a list argument
    pair = (rng.normal(size=(4, 2)), 2.0)
    out = gg.vmap(lambda t: t[0] * t[1], in_axes=((-2, None),))(pair)
    np.testing.assert_allclose(out, pair[0] * 2.0)
    # an output that does not depend on the batch is repeated; out_axes=None keeps it once
    same = gg.vmap(lambda x: (x * 2, np.ones(3)), out_axes=(0, None))(np.ones((5, 2)))
    assert same[0].shape == (5, 2) and same[1].shape == (3,)
    repeated = gg.vmap(lambda x: np.ones(3))(np.ones((5, 2)))
    assert repeated.shape == (5, 3) and repeated.flags.writeable
    assert gg.vmap(lambda x, y: x + y)(np.ones(3), y=np.arange(3.0)).tolist() == [1, 2, 3]


def test_in_axes_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="different batch sizes"):
        gg.vmap(lambda x, y: x + y)(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="one entry per argument"):
        gg.vmap(lambda x, y: x + y, in_axes=(0,))(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="out of range"):
        gg.vmap(np.sin, in_axes=1)(np.ones(3))
    with pytest.raises(ValueError, match="at least one batched"):
        gg.vmap(np.sin, in_axes=None)(np.ones(3))
    with pytest.raises(ValueError, match="out_axes is None"):
        gg.vmap(np.sin, out_axes=None)(np.ones(3))
    with pytest.raises(ValueError, match="prefix"):
        gg.vmap(lambda p: p["a"], in_axes=({"b": 0},))({"a": np.ones(3)})


def test_python_control_flow_on_a_batched_value_names_the_line():
    def f(x):
        if np.sum(x) > 0:  # the line the error names
            return x
        return -x

    with pytest.raises(TypeError, match=r"test_batching\.py:\d+: if np\.sum\(x\) > 0"):
        gg.vmap(f)(np.ones((3, 2)))
    with pytest.raises(TypeError, match="inside vmap"):
        gg.vmap(lambda x: float(x))(np.ones(3))
    with pytest.raises(TypeError, match="vmap"):  # under grad inside vmap too
        gg.vmap(gg.grad(lambda x: x if x > 0 else -x))(np.ones(3))


# --- the loop fallback ------------------------------------------------------------------------


def test_a_primitive_without_a_rule_loops_with_one_warning():
    name = "test_batching_reverse"
    calls = []

    def impl(x):
        calls.append(np.shape(x))
        return x[::-1].copy()

    rev = gg.extend.defprimitive(name, impl, vjp=[lambda g, ans, x: rev(g)], linear=True,
                                 test=Examples(lambda rng: [((rng.normal(size=3),), {})]))
    try:
        assert name in looping_primitives()
        xs = np.arange(12.0).reshape(4, 3)
        with pytest.warns(UserWarning, match=f"'{name}' has no batching rule") as record:
            out = gg.vmap(lambda x: rev(x) * 2.0)(xs)
        assert record[0].filename == __file__  # the warning names the user's line
        np.testing.assert_array_equal(out, xs[:, ::-1] * 2.0)
        assert calls == [(3,)] * 4
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warned once per primitive, not per call
            g = gg.vmap(gg.grad(lambda x: np.sum(rev(x) * np.arange(3.0))))(xs)
        np.testing.assert_array_equal(g, np.tile([2.0, 1.0, 0.0], (4, 1)))
    finally:
        PRIMITIVES.pop(name)


def test_value_dependent_shapes_are_refused():
    with pytest.raises(TypeError, match="depends on the values"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gg.vmap(lambda x: np.nonzero(x))(np.eye(3))


# --- vectorised jacobian and hessian ------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda f: gg.jacobian(f), lambda f: gg.jacobian(f, mode="forward"),
    lambda f: gg.hessian(lambda x: np.sum(f(x) ** 2)),
])
def test_jacobian_and_hessian_run_the_function_a_constant_number_of_times(make):
    counts = {}
    calls = [0]

    def f(x):
        calls[0] += 1
        return np.tanh(x) * np.sum(x)

    for n in (3, 30):
        calls[0] = 0
        make(f)(np.linspace(-1, 1, n))
        counts[n] = calls[0]
    assert counts[3] == counts[30] == 1


def test_jacobian_values_and_dtypes_after_vectorising():
    x32 = np.linspace(-1, 1, 4).astype(np.float32)
    f = lambda x: np.sin(x) * np.sum(x)  # noqa: E731
    want = np.diag(np.cos(x32.astype(float)) * np.sum(x32.astype(float))) + np.sin(
        x32.astype(float))[:, None]
    for mode in ("reverse", "forward"):
        jac = gg.jacobian(f, mode=mode)(x32)
        assert jac.dtype == np.float32 and jac.flags.writeable
        np.testing.assert_allclose(jac, want, rtol=1e-5)
    hess = gg.hessian(lambda x: np.sum(x ** 3))(x32)
    assert hess.dtype == np.float32
    np.testing.assert_allclose(hess, np.diag(6 * x32), rtol=1e-6)
    assert gg.jacobian(lambda x: x[:0])(np.ones(3)).shape == (0, 3)
    assert gg.jacobian(lambda x: x * 2, mode="forward")(np.ones((0,))).shape == (0, 0)


# --- the documentation ---------------------------------------------------------------------------


def test_the_page_names_every_row_that_loops():
    text = (Path(__file__).resolve().parent.parent / "docs" / "vmap.md").read_text()
    section = text[text.index("## What loops"):text.index("## `gg.checkpoint`")]
    missing = [name for name in looping_primitives() if f"`{name}`" not in section]
    assert missing == [], ("give these rows a batching rule (batch= or a family flag), or "
                           "list them under 'What loops' in docs/vmap.md")


def test_vmap_page_runs():
    page = Path(__file__).resolve().parent.parent / "docs" / "vmap.md"
    result = doctest.testfile(str(page), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
