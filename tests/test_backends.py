"""SPEC §11 over array backends: NumPy, Dask, a strict stand-in for a device library, and
CuPy where it is installed with a GPU.

Every backend-sensitive check runs on each backend and must give the backend's own array
type back, with the values NumPy gives on the same data: the rule table's VJP and JVP
(for every primitive a backend's library implements; the rest are listed with the
reason), every transform, ``jit``, ``trace`` and an nn training step. The strict stand-in
(``tests/strict_array.py``) refuses any implicit conversion to NumPy, as CuPy does, so a
hidden host conversion fails here without a GPU.
"""

import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import _backend as backend
from glassgrad._primitive import PRIMITIVES, Examples

sys.path.insert(0, str(Path(__file__).parent))
from strict_array import StrictArray, strict  # noqa: E402
from test_rules import bind  # noqa: E402


def _cupy():
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:  # not installed, or no GPU / driver
        return None
    return None


class Backend:
    def __init__(self, name, to, kind):
        self.name, self.to, self.kind = name, to, kind

    def host(self, x):
        return backend.to_numpy(x)

    def __repr__(self):
        return self.name


def _dask_backend():
    da = pytest.importorskip("dask.array")

    def to(x):
        x = np.asarray(x)
        chunks = tuple(max(1, (n + 1) // 2) for n in x.shape)  # several chunks per axis
        return da.from_array(x, chunks=chunks)

    return Backend("dask", to, da.Array)


def _make(name):
    if name == "numpy":
        return Backend("numpy", np.asarray, (np.ndarray, np.generic))
    if name == "dask":
        return _dask_backend()
    if name == "strict":
        return Backend("strict", strict, StrictArray)
    cupy = _cupy()
    if cupy is None:
        pytest.skip("CuPy with a GPU is not available")
    return Backend("cupy", cupy.asarray, cupy.ndarray)


NAMES = ["numpy", "dask", "strict", "cupy"]


@pytest.fixture(params=NAMES)
def xp(request):
    yield from _backend_fixture(request.param)


@pytest.fixture(params=NAMES[1:])  # NumPy itself: tests/test_rules.py
def other_xp(request):
    yield from _backend_fixture(request.param)


def _backend_fixture(name):
    b = _make(name)
    if b.name == "dask":
        import dask
        with dask.config.set(scheduler="synchronous"):  # one thread: fast and seeded
            yield b
    else:
        yield b


# --- the rule table ------------------------------------------------------------------------

# Primitives a backend cannot run, and why. Each must fail loudly (an exception, or Dask's
# warning that it computed NumPy's function on the host), never give a wrong-typed or
# silently converted answer. Names ending in "-k" list one example of a primitive.
_DASK_LINALG = ("dask.array.linalg has no such function for chunked matrices (Dask falls "
                "back to computing NumPy's on the host, with a warning)")
_DASK_FFT = "dask.array.fft transforms only along axes held in one chunk"
# The linear-algebra and FFT rows build their constant masks and weights with NumPy
# (np.eye, np.tril, np.full in _rules_linalg.py/_rules_fft.py): open, to route through
# _backend so that CuPy (and the stand-in) get them on the device.
_NUMPY_CONSTANT = "its rule builds a constant with NumPy (np.eye/np.tril/np.ones), not _backend"
_SCIPY = "scipy.special.polygamma (digamma's derivative) computes on NumPy arrays only"
_SCIPY_ROWS = ["digamma", "polygamma"] if "polygamma" in PRIMITIVES else []  # SciPy absent
UNSUPPORTED = {
    "dask": {
        **dict.fromkeys(["cholesky", "det", "eigh", "eigvalsh", "inv", "slogdet", "pinv",
                         "qr", "solve", "svd", "svdvals"], _DASK_LINALG),
        **dict.fromkeys(["fftn", "irfftn", "rfftn"], _DASK_FFT),
        "getitem-3": "a boolean mask gives a Dask array of unknown (nan) shape",
        "reshape-0": "Dask reshapes only along chunk boundaries it can merge",
        "nan_to_num": "dask's nan_to_num lacks NumPy's nan/posinf/neginf keywords",
        **dict.fromkeys(_SCIPY_ROWS[1:], _SCIPY),
    },
    "strict": {**dict.fromkeys(["cholesky", "eigh", "eigvalsh", "einsum-1", "einsum-2",
                                "einsum-3", "einsum-4", "einsum-7", "irfftn-3", "pinv", "qr",
                                "svd", "svdvals"], _NUMPY_CONSTANT),
               **dict.fromkeys(_SCIPY_ROWS, _SCIPY)},
}
UNSUPPORTED["cupy"] = UNSUPPORTED["strict"]


def _examples(prim):
    rng = np.random.default_rng(zlib.crc32(prim.name.encode()))
    return (prim.test or Examples(lambda r: [])).make_args(rng)


def _cases():
    for name in sorted(PRIMITIVES):
        prim = PRIMITIVES[name]
        if prim.nondifferentiable or name.startswith("test_"):
            continue
        for k in range(len(_examples(prim))):
            yield pytest.param(name, k, id=f"{name}-{k}")


def _argnums(prim, args):
    return [i for i, a in enumerate(args)
            if i < len(prim.vjps) and prim.vjps[i] is not None
            and np.asarray(a).dtype.kind == "f"]


def _convert(args, to):
    return [to(a) if isinstance(a, np.ndarray | np.generic) else a for a in args]


def _close(got, want, xp):
    assert isinstance(got, xp.kind), f"{type(got).__name__} is not a {xp.name} array"
    np.testing.assert_allclose(xp.host(got), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name, k", list(_cases()))
def test_rule_table_vjp_and_jvp_on_each_backend(other_xp, name, k):
    xp = other_xp
    prim = PRIMITIVES[name]
    args, params = _examples(prim)[k]
    if any(np.iscomplexobj(a) for a in args):
        pytest.skip("complex examples are checked on NumPy by tests/test_rules.py")
    table = UNSUPPORTED.get(xp.name, {})
    reason = table.get(name, table.get(f"{name}-{k}"))
    argnums = _argnums(prim, args)
    rng = np.random.default_rng(k)
    primals = [np.asarray(args[i], dtype=float) for i in argnums]
    ref_out, ref_pull = gg.vjp(bind(prim, args, params, argnums), *primals)
    w = rng.normal(size=np.shape(ref_out))
    tangents = [rng.normal(size=np.shape(p)) for p in primals]
    ref_grads = ref_pull(w)
    ref_t = gg.jvp(bind(prim, args, params, argnums), primals, tangents)[1]

    dev_args = _convert(list(args), xp.to)
    f = bind(prim, dev_args, params, argnums)
    dev_primals = [xp.to(p) for p in primals]
    if reason is not None:
        _fails_loudly(lambda: (gg.vjp(f, *dev_primals)[1](xp.to(w)),
                               gg.jvp(f, tuple(dev_primals), tuple(map(xp.to, tangents)))), xp)
        return
    out, pull = gg.vjp(f, *dev_primals)
    _close(out, ref_out, xp)
    for g, want in zip(pull(xp.to(w)), ref_grads, strict=True):
        _close(g, want, xp)
    out, t = gg.jvp(f, tuple(dev_primals), tuple(xp.to(t) for t in tangents))
    _close(t, ref_t, xp)


def _fails_loudly(run, xp):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            results = run()
        except Exception:
            return
    leaves = [x for r in results for x in (r if isinstance(r, tuple) else (r,))]
    assert caught or not all(isinstance(x, xp.kind) for x in leaves), \
        "listed as unsupported but it works: remove it from UNSUPPORTED"


def test_the_unsupported_lists_name_real_primitives():
    for names in UNSUPPORTED.values():
        assert {n.rsplit("-", 1)[0] if n[-1].isdigit() else n for n in names} <= set(PRIMITIVES)


# --- the transforms, trace and jit ---------------------------------------------------------

RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 3))
W = RNG.normal(size=3)
V = RNG.normal(size=3)


def _f(w, x):
    return np.mean(np.tanh(x @ w) ** 2) + 0.5 * np.sum(np.maximum(w, 0.0) ** 3)


def _g(w, x):
    return np.sin(x @ w) * 2.0


def test_every_transform_keeps_the_array_type(xp):
    w, v, x = xp.to(W), xp.to(V), xp.to(X)
    ct = xp.to(RNG.normal(size=12))
    checks = {
        "grad": (gg.grad(_f)(w, x), gg.grad(_f)(W, X)),
        "value_and_grad": (gg.value_and_grad(_f)(w, x)[1], gg.value_and_grad(_f)(W, X)[1]),
        "vjp": (gg.vjp(lambda w: _g(w, x), w)[1](ct)[0],
                gg.vjp(lambda w: _g(w, X), W)[1](xp.host(ct))[0]),
        "jvp": (gg.jvp(lambda w: _g(w, x), (w,), (v,))[1],
                gg.jvp(lambda w: _g(w, X), (W,), (V,))[1]),
        "linearize": (gg.linearize(lambda w: _g(w, x), w)[1](v),
                      gg.linearize(lambda w: _g(w, X), W)[1](V)),
        "jacobian": (gg.jacobian(lambda w: _g(w, x))(w), gg.jacobian(lambda w: _g(w, X))(W)),
        "jacobian forward": (gg.jacobian(lambda w: _g(w, x), mode="forward")(w),
                             gg.jacobian(lambda w: _g(w, X), mode="forward")(W)),
        "hessian": (gg.hessian(_f)(w, x), gg.hessian(_f)(W, X)),
        "hvp": (gg.hvp(lambda w: _f(w, x), (w,), (v,)), gg.hvp(lambda w: _f(w, X), (W,), (V,))),
    }
    for name, (got, want) in checks.items():
        assert isinstance(got, xp.kind), name
        np.testing.assert_allclose(xp.host(got), want, rtol=1e-10, err_msg=name)


def test_tensor_operations_and_backward(xp):
    t = gg.tensor(xp.to(W), requires_grad=True)
    loss = _f(t, xp.to(X))
    loss.backward()
    assert isinstance(t.grad, xp.kind)
    np.testing.assert_allclose(xp.host(t.grad), gg.grad(_f)(W, X), rtol=1e-12)
    assert isinstance((t * 2.0 + 1.0)._value, xp.kind)


def test_gradient_of_indexing_with_repeats(xp):
    def f(w):
        return np.sum(w[np.array([0, 0, 2])] ** 2)

    for transform in (gg.grad(f), gg.jit(gg.grad(f))):  # jit: scatter-add in the program
        g = transform(xp.to(W))
        assert isinstance(g, xp.kind)
        np.testing.assert_allclose(xp.host(g), gg.grad(f)(W), rtol=1e-12)


def test_jit_runs_the_arrays_own_library_and_is_never_frozen(xp):
    step = gg.jit(gg.value_and_grad(_f))
    for seed in (1, 2):  # the second call must not return the first call's answer
        w = np.random.default_rng(seed).normal(size=3)
        value, g = step(xp.to(w), xp.to(X))
        want_value, want_g = gg.value_and_grad(_f)(w, X)
        assert isinstance(g, xp.kind)
        np.testing.assert_allclose(xp.host(g), want_g, rtol=1e-12)
        np.testing.assert_allclose(float(xp.host(value)), want_value, rtol=1e-12)
    assert step.cache_size() == 1


def test_trace_has_the_arrays_as_inputs(xp):
    graph = gg.trace(lambda w: _f(w, xp.to(X)))(xp.to(W))
    inputs = [n for n in graph.nodes if n.op == "input"]
    assert len(inputs) == 1
    np.testing.assert_allclose(xp.host(inputs[0].grad), gg.grad(_f)(W, X), rtol=1e-12)


def test_nn_mlp_gradients_and_step(xp):
    # The parameters live where the data lives (on the device for CuPy); with Dask data
    # they stay NumPy and the gradients come back as lazy Dask arrays (the data-parallel
    # training of Dask arrays goes through fit and TrainStep: tests/test_dask.py).
    x, y = RNG.normal(size=(16, 4)), RNG.normal(size=(16, 1))
    on_device = xp.name not in ("numpy", "dask")
    results = []
    for data in ((x, y), (xp.to(x), xp.to(y))):
        net = gg.nn.MLP([4, 5, 1], rng=0)
        if data[0] is not x and on_device:
            for p in net.parameters():
                p.data = xp.to(p.data)
        loss = gg.nn.mse_loss(net(data[0]), data[1])
        loss.backward()
        grads = [p.grad for p in net.parameters()]
        if data[0] is not x:
            assert all(isinstance(g, xp.kind) for g in grads)
        results.append([backend.to_numpy(g) for g in grads])
        if xp.name != "dask":
            gg.optim.SGD(net.parameters(), lr=0.1).step()
            assert all(isinstance(p._value, type(data[0])) for p in net.parameters())
            results[-1] += [backend.to_numpy(p._value) for p in net.parameters()]
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12)


def test_an_array_type_that_cannot_be_kept_is_refused_by_name():
    class Opaque:  # array-like, but none of NumPy's protocols
        shape, dtype = (3,), np.dtype(float)

        def __array__(self, dtype=None, copy=None):
            return np.ones(3)

    with pytest.raises(TypeError, match="Opaque"):
        gg.grad(lambda w: np.sum(w * w))(Opaque())
    with pytest.raises(TypeError, match="Opaque"):
        gg.jit(lambda w: w * 2.0)(Opaque())
    with pytest.raises(TypeError, match="Opaque"):
        gg.trace(lambda w: w * 2.0)(Opaque())
    with pytest.raises(TypeError, match="Opaque"):
        gg.tensor(Opaque())


def test_the_strict_stand_in_refuses_implicit_conversion():
    s = strict(np.ones(3))
    with pytest.raises(TypeError, match="implicit conversion"):
        np.asarray(s)
    with pytest.raises(TypeError, match="NumPy array"):
        np.add(s, np.ones(3))
    assert isinstance(np.add(s, 1.0), StrictArray)
    np.testing.assert_array_equal(s.get(), np.ones(3))
