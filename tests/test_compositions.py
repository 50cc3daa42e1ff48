"""Random compositions of primitives and shapes (hypothesis): first and second order."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import glassgrad as gg

# Smooth on the whole real line, so random compositions stay differentiable.
UNARY = {
    "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "arctan": np.arctan,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "softplus": lambda x: np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0) * 1.0,
    "square": lambda x: x * x * 0.5, "sqrt1p": lambda x: np.sqrt(1.0 + x * x),
    "expm1": lambda x: np.expm1(x * 0.3), "neg": lambda x: -x,
}
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (1.5 + np.sin(b)), "pow": lambda a, b: (1.0 + a * a) ** np.tanh(b),
}
PAIRS = [((), ()), ((3,), (3,)), ((2, 3), (3,)), ((3, 1), (1, 3)), ((), (2, 3)), ((2, 3), (2, 1))]


@st.composite
def programs(draw, depth=4):
    """A random expression over two inputs: a nested tuple tree."""
    def build(d):
        if d == 0 or draw(st.integers(0, 3)) == 0:
            return ("input", draw(st.integers(0, 1)))
        if draw(st.booleans()):
            return ("unary", draw(st.sampled_from(sorted(UNARY))), build(d - 1))
        return ("binary", draw(st.sampled_from(sorted(BINARY))), build(d - 1), build(d - 1))
    return build(depth)


def run(program, inputs):
    kind = program[0]
    if kind == "input":
        return inputs[program[1]]
    if kind == "unary":
        return UNARY[program[1]](run(program[2], inputs))
    return BINARY[program[1]](run(program[2], inputs), run(program[3], inputs))


def scalar_program(program, weights):
    def f(x, y):
        out = run(program, (x, y))
        return np.sum(out * weights[: np.size(out)].reshape(np.shape(out))) + 0.0 * np.sum(x)

    return f


@settings(max_examples=60, deadline=None)
@given(programs(), st.sampled_from(PAIRS), st.integers(0, 2**31))
def test_random_compositions_first_order(program, shapes, seed):
    shape_x, shape_y = shapes
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-1.5, 1.5, size=shape_x), rng.uniform(-1.5, 1.5, size=shape_y)
    weights = rng.normal(size=9)
    f = scalar_program(program, weights)
    gg.check_grad(f, x, y, argnums=(0, 1), rtol=1e-5, atol=1e-7)
    # Forward mode agrees with reverse mode along a random direction.
    tx, ty = rng.normal(size=shape_x), rng.normal(size=shape_y)
    gx, gy = gg.grad(f, argnums=(0, 1))(x, y)
    _, jv = gg.jvp(f, (x, y), (tx, ty))
    np.testing.assert_allclose(jv, np.sum(gx * tx) + np.sum(gy * ty), rtol=1e-9, atol=1e-10)
    # Eager tensors give the same gradient.
    xt, yt = gg.tensor(x, requires_grad=True), gg.tensor(y, requires_grad=True)
    out = f(xt, yt)
    out.backward()
    np.testing.assert_allclose(xt.grad, gx, rtol=1e-12, atol=1e-14)


@settings(max_examples=30, deadline=None)
@given(programs(depth=3), st.sampled_from([(), (3,), (2, 3)]), st.integers(0, 2**31))
def test_random_compositions_second_order(program, shape, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-1.5, 1.5, size=shape), rng.uniform(-1.5, 1.5, size=shape)
    f = scalar_program(program, rng.normal(size=9))
    u = rng.normal(size=shape)

    def directional(x):
        return np.sum(gg.grad(f)(x, y) * u)

    gg.check_grad(directional, x, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gg.hvp(lambda x: f(x, y), (x,), (u,)), gg.grad(directional)(x),
                               rtol=1e-9, atol=1e-10)
