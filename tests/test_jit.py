"""gg.jit: one program per signature, equal to eager to the last bit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_compositions import PAIRS, programs, scalar_program
from test_rules import bind, cases, differentiable_argnums, primal, re

import glassgrad as gg
from glassgrad._primitive import PRIMITIVES
from glassgrad._pytree import flatten


def assert_same_bits(a, b):
    la, lb = flatten(a)[0], flatten(b)[0]
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("prim, args, params", list(cases()))
def test_jit_equals_eager_for_every_primitive(prim, args, params):
    argnums = differentiable_argnums(prim, args)
    f = bind(prim, args, params, argnums)
    primals = [primal(args[i]) for i in argnums]
    assert_same_bits(gg.jit(f)(*primals), f(*primals))
    w = np.random.default_rng(0).normal(size=np.shape(f(*primals)))
    loss = lambda *xs: np.sum(w * re(f(*xs)))  # noqa: E731
    vg = gg.value_and_grad(loss, argnums=tuple(range(len(primals))))
    assert_same_bits(gg.jit(vg)(*primals), vg(*primals))


@settings(max_examples=40, deadline=None)
@given(programs(), st.sampled_from(PAIRS), st.integers(0, 2**31))
def test_jit_equals_eager_for_random_compositions(program, shapes, seed):
    rng = np.random.default_rng(seed)
    x, y = (rng.uniform(-1.5, 1.5, size=s) for s in shapes)
    f = scalar_program(program, rng.normal(size=9))
    vg = gg.value_and_grad(f, argnums=(0, 1))
    assert_same_bits(gg.jit(vg)(x, y), vg(x, y))
    h = gg.hessian(lambda x: f(x, y))
    assert_same_bits(gg.jit(h)(x), h(x))


def test_one_program_per_signature():
    f = gg.jit(lambda x, y: np.sum(np.sin(x) * y))
    f(np.ones(3), 2.0)
    f(np.zeros(3), 5.0)
    assert f.cache_size() == 1
    f(np.ones(4), 2.0)
    f(np.ones(3, dtype=np.float32), 2.0)
    f(np.ones(3), np.float32(2.0))
    assert f.cache_size() == 4


def test_static_argnums_and_control_flow():
    def f(x, n, mode):
        for _ in range(n):
            x = np.sin(x)
        return x * 2 if mode == "double" else x

    jf = gg.jit(f, static_argnums=(1, 2))
    x = np.linspace(0, 1, 3)
    assert_same_bits(jf(x, 3, "double"), f(x, 3, "double"))
    assert_same_bits(jf(x, 2, "single"), f(x, 2, "single"))
    assert jf.cache_size() == 2


def test_control_flow_on_values_is_refused_naming_the_line():
    def f(x):
        if np.sum(x) > 0:  # the offending line
            return x
        return -x

    with pytest.raises(gg.ConcretizationError) as info:
        gg.jit(f)(np.ones(2))
    message = str(info.value)
    assert "test_jit.py" in message and "if np.sum(x) > 0" in message
    assert "static_argnums" in message and "np.where" in message
    with pytest.raises(TypeError, match="concrete value"):
        gg.jit(lambda x: float(x))(1.0)


def test_jit_composes_with_transforms_both_ways():
    f = lambda x: np.sum(np.tanh(x) ** 3)  # noqa: E731
    x = np.array([0.3, -0.8])
    np.testing.assert_array_equal(gg.grad(gg.jit(f))(x), gg.grad(f)(x))
    np.testing.assert_array_equal(gg.jit(gg.grad(f))(x), gg.grad(f)(x))
    np.testing.assert_array_equal(gg.jit(gg.hessian(f))(x), gg.hessian(f)(x))
    out = gg.jit(lambda x, v: gg.jvp(f, (x,), (v,)))(x, np.ones(2))
    assert_same_bits(out, gg.jvp(f, (x,), (np.ones(2),)))
    np.testing.assert_array_equal(gg.jit(gg.jit(f))(x), f(x))


def test_source_is_lean_and_readable():
    def f(x):
        unused = np.exp(x) * 3.0  # noqa: F841 - dead code
        return np.sin(x) + np.sin(x)

    src = gg.jit(f).source(np.ones(3))
    assert "np.exp" not in src  # dead code removed
    assert src.count("np.sin") == 1  # common sub-expression shared
    assert src.startswith("def jit_f(a1):")
    steps = gg.jit(gg.value_and_grad(lambda x: np.sum(np.tanh(x)))).source(np.ones(3))
    assert "out=" in steps  # buffers reused in the backward pass


def test_eager_tensors_are_read_at_every_call():
    w = gg.tensor(np.array([1.0, 2.0]))
    f = gg.jit(lambda x: np.sum((w * 2.0) * x))
    assert f(np.ones(2)) == 6.0
    w.data[:] = [10.0, 20.0]  # an optimizer step, in place
    assert f(np.ones(2)) == 60.0
    w.data = np.array([1.0, 1.0])  # or a new array
    assert f(np.ones(2)) == 4.0


def test_constant_outputs_are_fresh_and_float32_stays():
    f = gg.jit(lambda x: (np.ones(2) * 3.0, x * np.float32(2.0)))
    a, b = f(np.ones(2, dtype=np.float32))
    a[0] = 0.0
    assert f(np.ones(2, dtype=np.float32))[0][0] == 3.0
    assert b.dtype == np.float32


def test_boolean_mask_indexing_is_refused():
    with pytest.raises(gg.ConcretizationError, match="np.where"):
        gg.jit(lambda x: np.sum(x[x > 0]))(np.ones(3))
    np.testing.assert_array_equal(gg.jit(lambda x: x[np.array([0, 0, 1])])(np.arange(3.0)),
                                  [0.0, 0.0, 1.0])


def test_every_table_primitive_is_covered():
    covered = {c.values[0].name for c in cases()}
    assert covered == {n for n, p in PRIMITIVES.items() if not p.nondifferentiable}


def test_compiled_training_equals_eager_training_to_the_bit():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.normal(size=30)

    def train(jit, optimizer, loss=gg.nn.squared_error, batch_size=1):
        net = gg.nn.MLP([4, 5, 1], rng=1)
        opt = optimizer(net.parameters())
        history = gg.nn.fit(net, X, y, loss, opt, epochs=3, batch_size=batch_size,
                            progress=False, seed=2, jit=jit)
        return history.loss, [p.data for p in net.parameters()]

    for optimizer in (lambda p: gg.optim.SGD(p, lr=0.05, momentum=0.9),
                      lambda p: gg.optim.Adam(p, lr=0.01)):
        assert_same_bits(train(True, optimizer), train(False, optimizer))
    assert_same_bits(train(True, lambda p: gg.optim.SGD(p, lr=0.01), gg.nn.mse_loss, 7),
                     train(False, lambda p: gg.optim.SGD(p, lr=0.01), gg.nn.mse_loss, 7))


def test_train_step_program_reads_like_backprop():
    net = gg.nn.MLP([3, 4, 1], rng=0)
    step = gg.nn.TrainStep(net, gg.nn.squared_error, gg.optim.SGD(net.parameters(), lr=0.1))
    src = step.source(np.ones((1, 3)), np.zeros((1, 1)))
    assert src.count("np.matmul") == 2 + 3  # forward, then two gradients and one delta
    assert "np.logaddexp" in src  # the sigmoid, printed as the NumPy it runs


def test_compiled_classification_with_cross_entropy():
    rng = np.random.default_rng(3)
    X, labels = rng.normal(size=(40, 5)), rng.integers(0, 3, size=40)

    def train(jit):
        net = gg.nn.MLP([5, 8, 3], activation=gg.nn.Tanh(), rng=0)
        opt = gg.optim.Adam(net.parameters(), lr=0.01)
        gg.nn.fit(net, X, labels, gg.nn.cross_entropy, opt, epochs=2, batch_size=8,
                  progress=False, seed=0, jit=jit)
        return [p.data for p in net.parameters()]

    assert_same_bits(train(True), train(False))


def test_large_intermediates_are_released_after_their_last_use():
    import tracemalloc

    x = np.ones((512, 512))

    def f(x):
        for _ in range(6):
            x = np.tanh(x @ x.T * 1e-3)
        return np.sum(x)

    step = gg.jit(gg.value_and_grad(f))
    assert "del " in step.source(x)
    step(x)
    tracemalloc.start()
    step(x)
    _, jit_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    vg = gg.value_and_grad(f)
    tracemalloc.start()
    vg(x)
    _, eager_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert jit_peak < 0.6 * eager_peak  # eager keeps the tape; jit only what is live


def test_a_failing_program_shows_its_own_line_in_the_traceback():
    import traceback

    f = gg.jit(lambda x, y: np.sum(x @ y))
    f(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError) as info:
        f.lower(np.ones((2, 3)), np.ones((3, 2))).run(np.ones((2, 3)), np.ones((4, 2)))
    text = "".join(traceback.format_exception(info.value))
    assert "np.matmul(a1, a2)" in text
