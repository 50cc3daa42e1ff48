"""``gg.jit(fun, backend="numba")``: fused elementwise runs agree with the NumPy program.

Kernels are cached on disk by their source, so only the first run of this file compiles.
"""

import hashlib
import os

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import _jit_numba
from glassgrad._primitive import PRIMITIVES
from glassgrad._record import Equation

pytest.importorskip("numba")


def _chain(x):
    for _ in range(5):
        x = np.tanh(np.sin(x) * 1.01 + 0.1)
    return np.sum(x)


def _flat(tree):
    from glassgrad._pytree import tree_flatten

    return tree_flatten(tree)[0]


def _agree(fun, args, rtol=1e-12):
    fast = gg.jit(fun, backend="numba")
    plain = gg.jit(fun)
    for x, y in zip(_flat(fast(*args)), _flat(plain(*args)), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_allclose(x, y, rtol=rtol, atol=0)
    return fast, plain


def test_chain_fuses_into_few_loops_and_agrees():
    x = np.random.default_rng(0).uniform(-1, 1, 10)
    fast, plain = _agree(gg.value_and_grad(_chain), (x,))
    kernels = fast.kernels(x)
    assert kernels.count("@numba.njit") == 2  # forward run, backward run
    # The readable program is the NumPy one; the loops are shown beside it.
    assert fast.source(x) == plain.source(x)
    assert "np.sum" not in kernels.split("# nk0")[1] and "nk1(" in kernels


def test_float32_mlp_with_broadcast_bias_and_relu():
    rng = np.random.default_rng(1)
    params = [rng.standard_normal((6, 5)).astype(np.float32),
              rng.standard_normal(5).astype(np.float32),
              rng.standard_normal((5, 3)).astype(np.float32)]
    x = rng.standard_normal((4, 6)).astype(np.float32)

    def loss(p, x):
        h = np.maximum(x @ p[0] + p[1], 0.0)
        return np.mean(np.tanh(h @ p[2]) ** 2)

    fast, _ = _agree(gg.value_and_grad(loss), (params, x), rtol=1e-5)
    assert "@numba.njit" in fast.kernels(params, x)


def test_sigmoid_from_its_source_column_and_relu_from_its_implementation():
    x = np.random.default_rng(2).standard_normal((3, 4))
    fast, _ = _agree(gg.grad(lambda x: np.sum(x.sigmoid() * (x - 0.1).relu())), (x,))
    kernels = fast.kernels(x)
    assert "np.logaddexp" in kernels and "gg_relu(" in kernels


def _eq(name, *args, **params):
    return Equation((PRIMITIVES[name], args, params, "v1"))


def test_scalar_form_is_read_from_the_row():
    assert _jit_numba.scalar_form(_eq("add", 1, 2), ["a", "b"], "f8") == ("(a + b)", None)
    assert _jit_numba.scalar_form(_eq("exp", 1), ["a"], "f8") == ("math.exp(a)", None)
    assert _jit_numba.scalar_form(_eq("maximum", 1, 2), ["a", "b"], "f8") == (
        "np.maximum(a, b)", None)  # NaN-propagating, unlike max()
    code, helper = _jit_numba.scalar_form(_eq("sigmoid", 1, a=1.0), ["a"], "f8")
    assert "np.logaddexp" in code and helper is None
    assert _jit_numba.scalar_form(_eq("relu", 1), ["a"], "f8") == ("gg_relu(a)", "gg_relu")
    assert _jit_numba.scalar_form(_eq("astype", 1, dtype=np.float32), ["a"], "f4") == (
        "np.float32(a)", None)
    for name in ("matmul", "sum", "reshape", "getitem"):
        if name in PRIMITIVES:
            assert _jit_numba.scalar_form(_eq(name, 1), ["a"], "f8") is None


def _elementwise_rows():
    for name, prim in sorted(PRIMITIVES.items()):
        if prim.test is None or name.startswith("my_"):
            continue
        if prim.elementwise or (isinstance(prim.impl, np.ufunc) and prim.impl.nin <= 2):
            yield name


@pytest.mark.parametrize("name", list(_elementwise_rows()))
def test_every_elementwise_row_agrees_inside_a_loop(name):
    prim = PRIMITIVES[name]
    rng = np.random.default_rng(3)
    examples = prim.test.make_args(rng)
    args, params = max(examples, key=lambda e: max(np.ndim(a) for a in e[0]))
    if not any(np.ndim(a) for a in args):
        pytest.skip("no array example")
    args = tuple(np.asarray(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else a
                 for a in args)

    def f(*xs):  # a run of three lines: the primitive and two after it
        return prim(*xs, **params) * 2.0 + 1.0

    fast, _ = _agree(f, args)
    if isinstance(prim.impl, np.ufunc) and prim.impl.__name__ in _jit_numba.NUMBA_UFUNCS:
        assert "@numba.njit" in fast.kernels(*args)  # fused, not fallen back


def test_fallback_to_numpy_above_the_measured_size(monkeypatch):
    monkeypatch.setattr(_jit_numba, "MAX_FUSED_SIZE", 8)
    monkeypatch.setattr(_jit_numba, "MAX_FUSED_SIZE_LIBM", 8)
    x = np.linspace(-1, 1, 10)
    fast = gg.jit(gg.value_and_grad(_chain), backend="numba")
    assert fast.kernels(x) == ""
    v, g = fast(x)
    v0, g0 = gg.jit(gg.value_and_grad(_chain))(x)
    assert v == v0 and np.array_equal(g, g0)  # the NumPy program itself


def test_transcendental_lines_stay_numpy_above_their_own_threshold():
    assert _jit_numba.max_size(_eq("sin", 1)) == _jit_numba.MAX_FUSED_SIZE_LIBM
    assert _jit_numba.max_size(_eq("mul", 1, 2)) == _jit_numba.MAX_FUSED_SIZE
    assert _jit_numba.MAX_FUSED_SIZE_LIBM < _jit_numba.MAX_FUSED_SIZE
    x = np.linspace(-1, 1, 2 * _jit_numba.MAX_FUSED_SIZE_LIBM)
    fast, _ = _agree(lambda x: np.sin(x * 2.0 + 1.0) * 3.0 - 1.0, (x,))
    kernels = fast.kernels(x)
    assert kernels.count("@numba.njit") == 2 and "np.sin(" not in kernels.split("# nk0")[1]


def test_kernels_are_cached_on_disk_named_by_their_source(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSGRAD_CACHE_DIR", str(tmp_path))
    x = np.linspace(-1, 1, 7)
    fast = gg.jit(lambda x: np.exp(np.cos(x) * 3.0 - 1.0), backend="numba")
    fast(x)
    files = [f for f in os.listdir(tmp_path / "numba") if f.endswith(".py")]
    assert len(files) == 1
    text = (tmp_path / "numba" / files[0]).read_text()
    assert files[0] == f"gg_kernel_{hashlib.sha256(text.encode()).hexdigest()[:20]}.py"
    assert "cache=True" in text


def test_captured_tensors_are_read_at_every_call():
    w = gg.tensor(np.ones(4))
    f = gg.jit(lambda x: np.tanh(x * w + 1.0) * 2.0, backend="numba")
    x = np.arange(4.0)
    a = f(x)
    with gg.no_grad():
        w.data[...] = 2.0
    np.testing.assert_allclose(f(x), np.tanh(x * 2.0 + 1.0) * 2.0, rtol=1e-12)
    assert not np.allclose(a, f(x))


def test_train_step_with_the_numba_program_trains_like_numpy():
    from glassgrad import nn, optim

    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((8, 5)), rng.standard_normal((8, 1))
    finals = []
    for backend in ("numpy", "numba"):
        model = nn.MLP([5, 6, 1], rng=0)
        step = nn.TrainStep(model, nn.squared_error, optim.SGD(model.parameters(), lr=0.1))
        step._program = gg.jit(gg.value_and_grad(step._objective), backend=backend)
        for _ in range(3):
            step(x, y)
        finals.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*finals, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend"):
        gg.jit(np.sin, backend="cuda")


def test_special_values_follow_numpy():
    x = np.array([0.0, -0.0, 1.0, np.nan, np.inf, -np.inf, 800.0, -1.5])
    y = np.array([0.0, 0.0, 0.0, 1.0, np.inf, 2.0, 1.0, 0.0])

    def f(x, y):
        q = x / y * 2.0 - 1.0
        return np.exp(q) + np.maximum(q, x) - np.tanh(x) * (x > y)

    with np.errstate(all="ignore"):
        fast, plain = gg.jit(f, backend="numba"), gg.jit(f)
        a, b = fast(x, y), plain(x, y)
    assert "@numba.njit" in fast.kernels(x, y)
    np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("x_shape", [(16,), (1, 16), (4, 1)])
def test_a_later_loop_broadcasts_the_rows_an_earlier_loop_kept(x_shape):
    def f(x, m):
        a = np.sin(x) * 2.0          # one loop of x's shape; a and b are rows of one array
        b = np.cos(x) + 1.0
        return (m * a + b) * 3.0 - 1.0   # a loop of m's shape reads them, broadcast

    x = np.random.default_rng(5).uniform(-1, 1, x_shape)
    m = np.arange(64.0).reshape(4, 16)
    fast, _ = _agree(f, (x, m))
    assert fast.kernels(x, m).count("@numba.njit") == 2


def test_an_unwritable_cache_leaves_the_numpy_program(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("GLASSGRAD_CACHE_DIR", str(blocker))
    x = np.linspace(-1, 1, 5)
    fast, _ = _agree(lambda x: np.exp(np.sin(x) * 1.7 + 0.3) * 2.5, (x,))
    assert fast.kernels(x) == ""
