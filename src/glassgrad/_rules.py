"""The rule table: every primitive, its NumPy implementation and its derivatives.

Vocabulary in every rule: ``g`` is the incoming cotangent, ``ans`` the primitive's
output, ``x``/``y`` the arguments, ``x_dot`` a tangent. Arrays are positional,
parameters keyword-only. Rules call primitives (never raw ``.data``), so each rule is
itself differentiable and higher-order derivatives come for free.

``defprimitive`` derives what can be derived:

* ``derivatives=(dx, dy, ...)`` for elementwise primitives: each ``d(ans, *args)`` is the
  local partial derivative; the VJP is ``g * d`` (un-broadcast by the engine) and the JVP
  is ``sum(x_dot * d)``.
* ``linear=True``: the JVP is the primitive itself applied to the tangents.
* ``nondifferentiable=True``: the result is a plain array that carries no derivative.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _backend as backend
from . import _batch_rules as B
from ._backend import dtype_of, float_dtype, ndim_of, shape_of, zeros_like
from ._primitive import PRIMITIVES, Examples, Primitive, SourceCall, register

Rule = Callable[..., Any]


def defprimitive(
    name: str,
    impl: Callable[..., Any],
    *,
    vjp: Sequence[Rule | None] | Rule | None = None,
    jvp: Rule | None = None,
    derivatives: Sequence[Rule | None] | None = None,
    linear: bool = False,
    zero_derivative: bool = False,
    nondifferentiable: bool = False,
    test: Examples | None = None,
    traced_params: tuple[str, ...] = (),
    numpy: Callable[..., Any] | Sequence[Callable[..., Any]] = (),
    sympy: Rule | None = None,
    sympy_derivatives: Sequence[Rule] | None = None,
    source: Callable[..., str] | None = None,
    batch: Rule | None = None,
    elementwise: bool = False,
    reduction: bool = False,
) -> Primitive:
    """Declare a primitive once, with its implementation and rules side by side.

    Everything else is derived from this one row: NumPy dispatch (``impl`` itself when it
    is a ufunc, plus the callables in ``numpy``), forward mode, ``jit``'s program line,
    ``formula`` (from ``sympy``), and the table-driven tests (from ``test``).

    * ``derivatives=(dx, dy, ...)`` for elementwise primitives: each ``d(ans, *args)`` is
      the local partial derivative; the VJP is ``g * d`` (un-broadcast by the engine) and
      the JVP is ``sum(x_dot * d)``.
    * ``linear=True``: the JVP is the primitive itself applied to the tangents.
    * ``zero_derivative=True``: piecewise constant (floor, sign): derivative 0 wherever it
      is defined, recorded so that explanations can name it.
    * ``nondifferentiable=True``: the result carries no derivative (comparisons, masks,
      integer casts); every interpreter still sees the call.
    * ``vmap`` derives the batching rule of a row from its family: ``elementwise`` (set by
      ``derivatives``/``zero_derivative`` and for ufuncs without a core signature, or
      given) or ``reduction`` (an ``axis``/``keepdims`` reduction); ``batch=`` is a
      hand-written rule ``batch(args, dims, **params) -> (out, out_dim)`` (see
      ``_batch_rules``). Rows with none run in a loop over the batch.

    Example (a user-defined primitive)::

        >>> import numpy as np, glassgrad as gg
        >>> cube = gg.extend.defprimitive(
        ...     "my_cube", lambda x: x ** 3, derivatives=[lambda ans, x: 3 * x ** 2])
        >>> float(gg.grad(cube)(2.0))
        12.0
    """
    elementwise = (elementwise or derivatives is not None or zero_derivative
                   or (isinstance(impl, np.ufunc) and impl.signature is None))
    if zero_derivative:
        vjp = vjp or EveryArgument(lambda i: lambda g, ans, *args, **params: zeros_like(args[i]))
        if sympy is not None and sympy_derivatives is None:
            sympy_derivatives = [lambda sp, ans, *args, **params: sp.Integer(0)]
        jvp = jvp or (lambda tangents, ans, *args, **params: None)
    if derivatives is not None:
        vjp = vjp or [_elementwise_vjp(d) if d is not None else None for d in derivatives]
        jvp = jvp or _elementwise_jvp(derivatives)
    if linear and jvp is None:
        jvp = _linear_jvp(name)
    if isinstance(vjp, EveryArgument):
        vjps: Any = vjp  # gives the rule of any argument (variadic)
    elif callable(vjp):
        vjps = (vjp,)
    else:
        vjps = tuple(vjp or ())
    numpy = (numpy,) if callable(numpy) else tuple(numpy)
    if isinstance(impl, np.ufunc) and impl not in numpy:
        numpy = (impl, *numpy)
    prim = Primitive(name, impl, vjps, jvp, nondifferentiable, test, traced_params,
                     numpy, elementwise, sympy, tuple(sympy_derivatives)
                     if sympy_derivatives is not None else None, source,
                     batch=batch, reduction=reduction)
    return register(prim)


class EveryArgument:
    """The VJP rules of a primitive of any number of arguments: ``rule_of(i)`` makes the
    rule of argument ``i``."""

    def __init__(self, rule_of: Callable[[int], Rule]):
        self.rule_of = rule_of

    def __getitem__(self, i: int) -> Rule:
        return self.rule_of(i)

    def __len__(self) -> int:  # pragma: no cover - variadic
        return 1 << 30


def _elementwise_vjp(d: Rule) -> Rule:
    def vjp(g, ans, *args, **params):
        return g * d(ans, *args, **params)

    return vjp


def _elementwise_jvp(derivatives: Sequence[Rule | None]) -> Rule:
    def jvp(tangents, ans, *args, **params):
        out = None
        for x_dot, d in zip(tangents, derivatives, strict=False):
            if x_dot is None or d is None:
                continue
            term = x_dot * d(ans, *args, **params)
            out = term if out is None else out + term
        return out

    return jvp


def _linear_jvp(name: str) -> Rule:
    def jvp(tangents, ans, *args, **params):
        filled = [zeros_like(a) if t is None else t for t, a in zip(tangents, args, strict=True)]
        return PRIMITIVES[name](*filled, **params)

    return jvp


# --- helpers used by rules (shapes only; values go through primitives) -------------------


def normalize_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple | list) else (axis,)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def keepdims_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    axes = normalize_axis(axis, len(shape))
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _restore_reduced(g: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """Reshape a reduction's cotangent so that it broadcasts against ``x``."""
    if keepdims:
        return g
    return reshape(g, shape=keepdims_shape(shape_of(x), axis))


def _scalar_identity(sp: Any, x: Any, **params: Any) -> Any:
    """The SymPy form of reductions, reshapes and casts of a single number: the number."""
    return x


def _mask_as(mask: Any, like: Any) -> Any:
    """A boolean mask as 0/1 in the float dtype of ``like`` (float32 stays float32)."""
    return astype(mask, dtype=float_dtype(dtype_of(like)))


# --- test-data helpers -------------------------------------------------------------------

_SHAPES = [(), (3,), (2, 3)]


def _uniform(rng, shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, size=shape)


def _unary(low=-2.0, high=2.0, **params):
    def make(rng):
        return [((_uniform(rng, s, low, high),), dict(params)) for s in _SHAPES]

    return Examples(make)


def _binary(low=-2.0, high=2.0, low_y=None, high_y=None):
    low_y = low if low_y is None else low_y
    high_y = high if high_y is None else high_y
    pairs = [((), ()), ((3,), (3,)), ((3, 1), (1, 4)), ((), (2, 3)), ((2, 3), (3,))]

    def make(rng):
        return [
            ((_uniform(rng, sx, low, high), _uniform(rng, sy, low_y, high_y)), {})
            for sx, sy in pairs
        ]

    return Examples(make)


def _away_from_zero(rng, shape, low=0.3, high=2.0):
    return rng.uniform(low, high, size=shape) * rng.choice([-1.0, 1.0], size=shape)


# --- masks, comparisons, casts: no derivative, but every interpreter sees them ----------


def _nondiff(name: str, impl: Callable[..., Any], **kwargs: Any) -> Primitive:
    return defprimitive(name, impl, nondifferentiable=True, **kwargs)


greater = _nondiff("greater", np.greater)
greater_equal = _nondiff("greater_equal", np.greater_equal)
less = _nondiff("less", np.less)
less_equal = _nondiff("less_equal", np.less_equal)
equal = _nondiff("equal", np.equal)
not_equal = _nondiff("not_equal", np.not_equal)
logical_and = _nondiff("logical_and", np.logical_and)
logical_or = _nondiff("logical_or", np.logical_or)
logical_xor = _nondiff("logical_xor", np.logical_xor)
logical_not = _nondiff("logical_not", np.logical_not)
bitwise_and = _nondiff("bitwise_and", np.bitwise_and)
bitwise_or = _nondiff("bitwise_or", np.bitwise_or)
bitwise_xor = _nondiff("bitwise_xor", np.bitwise_xor)
invert = _nondiff("invert", np.invert)
isfinite = _nondiff("isfinite", np.isfinite)
isnan = _nondiff("isnan", np.isnan)
isinf = _nondiff("isinf", np.isinf)
signbit = _nondiff("signbit", np.signbit)


def _cast_impl(x, *, dtype):
    return x.astype(dtype) if hasattr(x, "astype") else np.asarray(x, dtype=dtype)


# An integer or boolean cast carries no derivative (as in JAX); float casts are `astype`.
cast = _nondiff("cast", _cast_impl, elementwise=True)


def _stop_gradient_impl(x):
    return x


# The identity with no derivative at any level: each derivative level unwraps its value
# and calls it again one level down, so every level sees a constant.
stop_gradient = _nondiff("stop_gradient", _stop_gradient_impl, elementwise=True)


def _index_reduction(func):
    def impl(x, *, axis=None, keepdims=False):
        return func(x, axis=axis, keepdims=keepdims)

    return impl


argmax = _nondiff("argmax", _index_reduction(np.argmax), batch=B.flat_axis("argmax"))
argmin = _nondiff("argmin", _index_reduction(np.argmin), batch=B.flat_axis("argmin"))


def _argsort_impl(x, *, axis=-1, kind=None, stable=None):
    return np.argsort(x, axis=axis, kind=kind, stable=stable)


argsort = _nondiff("argsort", _argsort_impl, batch=B.flat_axis("argsort"))


def _boolean_reduction(func):
    def impl(x, *, axis=None, keepdims=False):
        return func(x, axis=axis, keepdims=keepdims)

    return impl


any_ = _nondiff("any", _boolean_reduction(np.any), reduction=True)
all_ = _nondiff("all", _boolean_reduction(np.all), reduction=True)


def _count_nonzero_impl(x, *, axis=None, keepdims=False):
    return np.count_nonzero(x, axis=axis, keepdims=keepdims)


count_nonzero = _nondiff("count_nonzero", _count_nonzero_impl, reduction=True)


def _isclose_impl(x, y, *, rtol=1e-05, atol=1e-08, equal_nan=False):
    return np.isclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan)


isclose = _nondiff("isclose", _isclose_impl, elementwise=True)


def _nonzero_impl(x):
    return np.nonzero(x)


# Its result's shape depends on the values: fine in derivative transforms (the indices
# are concrete there), refused by jit.
nonzero = _nondiff("nonzero", _nonzero_impl)

# --- piecewise constant: derivative 0 wherever it is defined (as in JAX) -----------------


def _zero_test(low=-2.0, high=2.0):
    # Away from the jumps, so that finite differences see the flat pieces.
    def make(rng):
        return [((np.round(_uniform(rng, s, low, high)) + rng.uniform(0.2, 0.4, size=s),), {})
                for s in _SHAPES]

    return Examples(make)


sign = defprimitive("sign", np.sign, zero_derivative=True, test=_zero_test(),
                    sympy=lambda sp, x: sp.sign(x))
floor = defprimitive("floor", np.floor, zero_derivative=True, test=_zero_test(),
                     sympy=lambda sp, x: sp.floor(x))
ceil = defprimitive("ceil", np.ceil, zero_derivative=True, test=_zero_test(),
                    sympy=lambda sp, x: sp.ceiling(x))
rint = defprimitive("rint", np.rint, zero_derivative=True, test=_zero_test())
trunc = defprimitive("trunc", np.trunc, zero_derivative=True, test=_zero_test())


def _round_impl(x, *, decimals=0):
    return np.round(x, decimals)


round_ = defprimitive("round", _round_impl, zero_derivative=True, test=_zero_test())

# --- elementwise, one argument -----------------------------------------------------------

neg = defprimitive("neg", np.negative, vjp=[lambda g, ans, x: neg(g)], linear=True,
                   test=_unary(), sympy=lambda sp, x: -x)
exp = defprimitive("exp", np.exp, derivatives=[lambda ans, x: ans], test=_unary(),
                   sympy=lambda sp, x: sp.exp(x))
log = defprimitive("log", np.log, vjp=[lambda g, ans, x: g / x],
                   derivatives=[lambda ans, x: 1.0 / x], test=_unary(0.2, 3.0),
                   sympy=lambda sp, x: sp.log(x))
log1p = defprimitive("log1p", np.log1p, derivatives=[lambda ans, x: 1.0 / (1.0 + x)],
                     test=_unary(-0.7, 3.0), sympy=lambda sp, x: sp.log(1 + x))
expm1 = defprimitive("expm1", np.expm1, derivatives=[lambda ans, x: ans + 1.0],
                     test=_unary(), sympy=lambda sp, x: sp.exp(x) - 1)
# d sqrt = 1 / (2 sqrt x): infinite at 0, as in PyTorch and JAX (docs/conventions.md).
sqrt = defprimitive("sqrt", np.sqrt, derivatives=[lambda ans, x: 0.5 / ans],
                    test=_unary(0.2, 3.0), sympy=lambda sp, x: sp.sqrt(x))
sin = defprimitive("sin", np.sin, derivatives=[lambda ans, x: cos(x)], test=_unary(),
                   sympy=lambda sp, x: sp.sin(x))
cos = defprimitive("cos", np.cos, derivatives=[lambda ans, x: neg(sin(x))], test=_unary(),
                   sympy=lambda sp, x: sp.cos(x))
tan = defprimitive("tan", np.tan, derivatives=[lambda ans, x: 1.0 + ans * ans],
                   test=_unary(-1.2, 1.2), sympy=lambda sp, x: sp.tan(x))
arctan = defprimitive("arctan", np.arctan, derivatives=[lambda ans, x: 1.0 / (1.0 + x * x)],
                      test=_unary(-3.0, 3.0), sympy=lambda sp, x: sp.atan(x))
tanh = defprimitive("tanh", np.tanh, derivatives=[lambda ans, x: 1.0 - ans * ans],
                    test=_unary(), sympy=lambda sp, x: sp.tanh(x))


def _sigmoid_impl(x, *, a=1.0):
    # 1/(1+exp(-s)) written as exp(-log(1+exp(-s))): logaddexp never overflows, so this is
    # stable for any |a*x|, in four ufunc calls.
    s = x if a == 1.0 else np.multiply(x, a)
    return np.exp(-np.logaddexp(0.0, -s))


def _sigmoid_source(call: SourceCall) -> str:
    x = call.args[0]
    if call.raw_params.get("a", 1.0) != 1.0:
        x = f"np.multiply({x}, {call.params['a']})"
    return f"np.exp(np.negative(np.logaddexp(0.0, np.negative({x}))))"


sigmoid = defprimitive(
    "sigmoid", _sigmoid_impl,
    derivatives=[lambda ans, x, *, a=1.0: ans * (1.0 - ans) if a == 1.0
                 else a * (ans * (1.0 - ans))],
    test=Examples(lambda rng: [((_uniform(rng, s, -3, 3),), {"a": a})
                               for s in _SHAPES for a in (1.0, 2.5)]),
    sympy=lambda sp, x, *, a=1: 1 / (1 + sp.exp(-a * x)),
    source=_sigmoid_source,
)


def _relu_impl(x):
    return np.maximum(x, 0)


# relu and abs have a kink at 0; glassgrad takes the derivative there to be 0.
# The mask reads the output (ans > 0 exactly where x > 0), so the tape can let the input go.
relu = defprimitive("relu", _relu_impl, derivatives=[lambda ans, x: _mask_as(greater(ans, 0), ans)],
                    test=Examples(lambda rng: [((_away_from_zero(rng, s),), {})
                                               for s in _SHAPES]),
                    sympy=lambda sp, x: sp.Max(x, 0),
                    sympy_derivatives=[lambda sp, ans, x: sp.Heaviside(x, 0)])
abs_ = defprimitive("abs", np.abs, derivatives=[lambda ans, x: sign(x)],
                    test=Examples(lambda rng: [((_away_from_zero(rng, s),), {})
                                               for s in _SHAPES]),
                    sympy=lambda sp, x: sp.Abs(x),
                    sympy_derivatives=[lambda sp, ans, x: sp.sign(x)])

# --- elementwise, two arguments ------------------------------------------------------------

add = defprimitive("add", np.add, vjp=[lambda g, ans, x, y: g, lambda g, ans, x, y: g],
                   linear=True, test=_binary(), sympy=lambda sp, x, y: x + y)
sub = defprimitive("sub", np.subtract,
                   vjp=[lambda g, ans, x, y: g, lambda g, ans, x, y: neg(g)],
                   linear=True, test=_binary(), sympy=lambda sp, x, y: x - y)
mul = defprimitive("mul", np.multiply,
                   derivatives=[lambda ans, x, y: y, lambda ans, x, y: x], test=_binary(),
                   sympy=lambda sp, x, y: x * y)
div = defprimitive(
    "div", np.true_divide,
    vjp=[lambda g, ans, x, y: g / y, lambda g, ans, x, y: neg(g) * ans / y],
    derivatives=[lambda ans, x, y: 1.0 / y, lambda ans, x, y: neg(ans) / y],
    test=Examples(lambda rng: [((_uniform(rng, sx), _away_from_zero(rng, sy)), {})
                               for sx, sy in [((), ()), ((3, 1), (1, 4)), ((2, 3), ())]]),
    numpy=np.divide, sympy=lambda sp, x, y: x / y,
)


def _away_from_jumps(rng):
    # x / y at least 0.2 away from an integer, so finite differences see one piece.
    y = _away_from_zero(rng, (2, 3), 0.5, 2.0)
    x = y * (np.round(_uniform(rng, (2, 3), -3, 3)) + rng.uniform(0.2, 0.8, size=(2, 3)))
    return [((x, y), {}), ((x[0], 1.5), {})]


floor_divide = defprimitive("floor_divide", np.floor_divide, zero_derivative=True,
                            test=Examples(_away_from_jumps))
# x mod y = x - y floor(x / y): slope 1 in x and -floor(x / y) in y between the jumps.
remainder = defprimitive(
    "remainder", np.remainder,
    derivatives=[lambda ans, x, y: 1.0, lambda ans, x, y: neg(floor(x / y))],
    numpy=np.mod, test=Examples(_away_from_jumps),
    sympy=lambda sp, x, y: sp.Mod(x, y),
    sympy_derivatives=[lambda sp, ans, x, y: sp.Integer(1),
                       lambda sp, ans, x, y: -sp.floor(x / y)],
)


def _pow_dx(ans, x, y):
    # d/dx x**y = y x**(y-1), taken to be 0 where y == 0 (x**0 is the constant 1).
    if isinstance(y, int | float):
        if y == 0:
            return zeros_like(x)
        return y * x if y == 2 else y * power(x, y - 1)
    return where(equal(y, 0), 0.0, y * power(x, y - 1))


def _pow_dy(ans, x, y):
    # d/dy x**y = log(x) x**y; 0 at x == 0 (0**y is flat for y > 0), NaN for x < 0.
    positive = greater(x, 0)
    safe_x = where(positive, x, 1.0)
    nan = float_dtype(dtype_of(ans)).type(np.nan)  # a scalar: device arrays take it
    at_or_below_zero = where(equal(x, 0), 0.0, nan)
    return where(positive, log(safe_x) * ans, at_or_below_zero)


power = defprimitive(
    "pow", np.power, derivatives=[_pow_dx, _pow_dy],
    test=_binary(0.3, 2.0, -2.0, 2.0),
    sympy=lambda sp, x, y: x ** y,
    sympy_derivatives=[lambda sp, ans, x, y: y * x ** (y - 1),
                       lambda sp, ans, x, y: sp.log(x) * ans],
)


def _share_ties(first_wins, wrt):
    def d(ans, x, y):
        # Ties share the gradient equally: 1 where this argument wins, 1/2 where tied.
        like = (x, y)[wrt]
        half = float_dtype(dtype_of(like)).type(0.5)  # a scalar: device arrays take it
        return _mask_as(first_wins(x, y), like) + _mask_as(equal(x, y), like) * half

    return d


# Ties share the gradient equally (0.5 each), as in PyTorch and JAX.
maximum = defprimitive(
    "maximum", np.maximum,
    derivatives=[_share_ties(greater, 0), _share_ties(less, 1)],
    test=_binary(), sympy=lambda sp, x, y: sp.Max(x, y),
    sympy_derivatives=[lambda sp, ans, x, y: sp.Heaviside(x - y, sp.Rational(1, 2)),
                       lambda sp, ans, x, y: sp.Heaviside(y - x, sp.Rational(1, 2))],
)
minimum = defprimitive(
    "minimum", np.minimum,
    derivatives=[_share_ties(less, 0), _share_ties(greater, 1)],
    test=_binary(), sympy=lambda sp, x, y: sp.Min(x, y),
    sympy_derivatives=[lambda sp, ans, x, y: sp.Heaviside(y - x, sp.Rational(1, 2)),
                       lambda sp, ans, x, y: sp.Heaviside(x - y, sp.Rational(1, 2))],
)


def _where_test(rng):
    out = []
    for s in [(), (3,), (2, 3)]:
        cond = rng.uniform(size=s) > 0.5
        out.append(((cond, _uniform(rng, s), _uniform(rng, s)), {}))
    out.append(((rng.uniform(size=(3, 1)) > 0.5, _uniform(rng, (1, 4)), _uniform(rng, ())), {}))
    return out


def _where_impl(c, x, y):
    return np.where(c, x, y)


# The unused branch gets an exact zero cotangent (not g * 0), so a NaN cotangent in the
# unused branch can only come from that branch's own local derivative.
where = defprimitive(
    "where", _where_impl,
    vjp=[None,
         lambda g, ans, c, x, y: where(c, g, 0.0),
         lambda g, ans, c, x, y: where(c, 0.0, g)],
    jvp=lambda t, ans, c, x, y: where(c, 0.0 if t[1] is None else t[1],
                                      0.0 if t[2] is None else t[2]),
    test=Examples(_where_test), elementwise=True,
    source=lambda call: f"np.where({', '.join(call.args)})",
)


def _clip_impl(x, lo, hi):
    return np.clip(x, lo, hi)


def _clip_dx(ans, x, lo, hi):
    # Gradient 1 on the closed interval [lo, hi], including its bounds (as PyTorch).
    inside = None if lo is None else greater_equal(x, lo)
    if hi is not None:
        below = less_equal(x, hi)
        inside = below if inside is None else logical_and(inside, below)
    return 1.0 if inside is None else _mask_as(inside, x)


def _clip_dlo(ans, x, lo, hi):
    # np.clip is minimum(maximum(x, lo), hi): lo shows where x is below it (and lo <= hi).
    below = less(x, lo)
    return _mask_as(below if hi is None else logical_and(below, less_equal(lo, hi)), x)


def _clip_dhi(ans, x, lo, hi):
    return _mask_as(greater(x if lo is None else maximum(x, lo), hi), x)


def _clip_test(rng):
    x = np.array([-1.7, -0.6, 0.2, 0.9, 1.5])
    return [((x, -1.0, 1.0), {}), ((_uniform(rng, (2, 3)), -0.4, None), {}),
            ((x, np.array([-1.0, -1.0, 0.5, 0.5, 2.0]), np.array(1.2)), {}),
            ((x, np.array(-1.0), np.array([-0.5, 0.5, 1.2, 1.3, 1.0])), {})]


clip = defprimitive(
    "clip", _clip_impl,
    derivatives=[_clip_dx, _clip_dlo, _clip_dhi],
    test=Examples(_clip_test),
    sympy=lambda sp, x, lo, hi: _sympy_clip(sp, x, lo, hi),
    sympy_derivatives=[lambda sp, ans, x, lo, hi: sp.Piecewise(
        (1, sp.And(sp.true if lo is None else x >= lo, sp.true if hi is None else x <= hi)),
        (0, True))],
    source=lambda call: f"np.clip({', '.join(call.args)})",
)


def _sympy_clip(sp, x, lo, hi):
    x = x if lo is None else sp.Max(x, lo)
    return x if hi is None else sp.Min(x, hi)


# --- reductions ----------------------------------------------------------------------------


def _reduce_test(rng):
    x = _uniform(rng, (2, 3, 4))
    return [((x,), {"axis": None, "keepdims": False}), ((x,), {"axis": 1, "keepdims": False}),
            ((x,), {"axis": (0, 2), "keepdims": True}), ((_uniform(rng, ()),), {})]


def _method_source(name: str, extra: Callable[[dict[str, str]], str] | None = None):
    """Print ``np.<name>(x, ...)`` as the array method ``x.<name>(...)`` it calls.

    NumPy's function forms reach the same C routine through a Python wrapper; the method
    skips the wrapper and gives the same bits. Python numbers have no such methods.
    """
    extra = extra or (lambda p: f"axis={p.get('axis', 'None')}, "
                                f"keepdims={p.get('keepdims', 'False')}")

    def source(call: SourceCall) -> str:
        if backend.is_array(call.values[0]):
            return f"{call.args[0]}.{name}({extra(call.params)})"
        return f"np.{name}({call.args[0]}, {extra(call.params)})"

    return source


def _sum_impl(x, *, axis=None, keepdims=False):
    return np.sum(x, axis=axis, keepdims=keepdims)


sum_ = defprimitive(
    "sum", _sum_impl,
    vjp=[lambda g, ans, x, *, axis=None, keepdims=False:
         broadcast_to(_restore_reduced(g, x, axis, keepdims), shape=shape_of(x))],
    linear=True, test=Examples(_reduce_test), source=_method_source("sum"),
    sympy=_scalar_identity, reduction=True,
)


def _mean_impl(x, *, axis=None, keepdims=False):
    return np.mean(x, axis=axis, keepdims=keepdims)


def _count(x, axis) -> int:
    shape = shape_of(x)
    return int(np.prod([shape[a] for a in normalize_axis(axis, len(shape))]))


mean = defprimitive(
    "mean", _mean_impl,
    # Divide before broadcasting: one division per output, and the cotangent stays a
    # broadcast view (a lazy Dask broadcast rather than a constant as long as the data).
    vjp=[lambda g, ans, x, *, axis=None, keepdims=False:
         broadcast_to(_restore_reduced(g, x, axis, keepdims) / _count(x, axis),
                      shape=shape_of(x))],
    linear=True, test=Examples(_reduce_test), source=_method_source("mean"),
    sympy=_scalar_identity, reduction=True,
)


def _extremum_weights(ans, x, axis, keepdims):
    # Ties share the gradient equally: each maximal entry gets 1/count.
    ans_k = reshape(ans, shape=keepdims_shape(shape_of(x), axis))
    mask = _mask_as(equal(x, ans_k), x)
    return mask / sum_(mask, axis=axis, keepdims=True)


def _extremum(name, impl):
    def vjp(g, ans, x, *, axis=None, keepdims=False):
        return _restore_reduced(g, x, axis, keepdims) * _extremum_weights(ans, x, axis, keepdims)

    def jvp(tangents, ans, x, *, axis=None, keepdims=False):
        w = _extremum_weights(ans, x, axis, keepdims)
        return sum_(tangents[0] * w, axis=axis, keepdims=keepdims)

    def run(x, *, axis=None, keepdims=False):
        return impl(x, axis=axis, keepdims=keepdims)

    return defprimitive(name, run, vjp=[vjp], jvp=jvp, test=Examples(_reduce_test),
                        source=_method_source(name), sympy=_scalar_identity, reduction=True)


max_ = _extremum("max", np.max)
min_ = _extremum("min", np.min)

# --- shapes and indexing -------------------------------------------------------------------


def _reshape_impl(x, *, shape):
    return np.reshape(x, shape)


reshape = defprimitive(
    "reshape", _reshape_impl,
    vjp=[lambda g, ans, x, *, shape: reshape(g, shape=shape_of(x))], linear=True,
    test=Examples(lambda rng: [((_uniform(rng, (2, 3)),), {"shape": (3, 2)}),
                               ((_uniform(rng, (6,)),), {"shape": (2, -1)})]),
    source=_method_source("reshape", lambda p: p["shape"]),
    sympy=_scalar_identity, batch=B.reshape,
)


def _transpose_impl(x, *, axes=None):
    return np.transpose(x, axes)


def _inverse_axes(axes, ndim):
    return None if axes is None else tuple(int(i) for i in np.argsort(axes))


def _transpose_source(call: SourceCall) -> str:
    value, axes = call.values[0], call.raw_params.get("axes")
    if backend.is_numpy_array(value) and (
            axes is None or tuple(axes) == tuple(range(value.ndim))[::-1]):
        return f"{call.args[0]}.T"  # the same view, without a call
    return _method_source("transpose", lambda p: p.get("axes", "None"))(call)


transpose = defprimitive(
    "transpose", _transpose_impl,
    vjp=[lambda g, ans, x, *, axes=None:
         transpose(g, axes=_inverse_axes(axes, ndim_of(x)))], linear=True,
    test=Examples(lambda rng: [((_uniform(rng, (2, 3)),), {}),
                               ((_uniform(rng, (2, 3, 4)),), {"axes": (1, 2, 0)})]),
    source=_transpose_source,
    sympy=_scalar_identity, batch=B.transpose,
)


def _broadcast_to_impl(x, *, shape):
    return np.broadcast_to(x, shape)


def _summed_axes(x_shape: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    lead = len(x_shape) - len(shape)
    return tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x_shape[lead + i] != 1)


def sum_to_impl(x, *, shape):
    """Sum ``x`` down to ``shape``: the transpose of NumPy broadcasting."""
    x_shape = shape_of(x)
    if x_shape == tuple(shape):
        return x
    out = np.sum(x, axis=_summed_axes(x_shape, tuple(shape)), keepdims=True)
    return np.reshape(out, shape)


def _sum_to_source(call: SourceCall) -> str:
    # The reduction axes are fixed by the traced shapes; the same calls as sum_to_impl.
    axes = _summed_axes(shape_of(call.values[0]), tuple(call.raw_params["shape"]))
    summed = _method_source("sum", lambda p: f"axis={axes!r}, keepdims=True")(call)
    return f"{summed}.reshape({call.params['shape']})"


broadcast_to = defprimitive(
    "broadcast_to", _broadcast_to_impl,
    vjp=[lambda g, ans, x, *, shape: sum_to(g, shape=shape_of(x))], linear=True,
    test=Examples(lambda rng: [((_uniform(rng, (3, 1)),), {"shape": (2, 3, 4)}),
                               ((_uniform(rng, ()),), {"shape": (2,)})]),
    source=lambda call: f"np.broadcast_to({call.args[0]}, {call.params['shape']})",
    sympy=_scalar_identity, batch=B.broadcast_to,
)
sum_to = defprimitive(
    "sum_to", sum_to_impl,
    vjp=[lambda g, ans, x, *, shape: broadcast_to(g, shape=shape_of(x))], linear=True,
    test=Examples(lambda rng: [((_uniform(rng, (2, 3, 4)),), {"shape": (3, 1)}),
                               ((_uniform(rng, (2, 3)),), {"shape": ()})]),
    source=_sum_to_source,
    sympy=_scalar_identity, batch=B.sum_to,
)


def _astype_impl(x, *, dtype):
    if hasattr(x, "astype"):
        return x.astype(dtype, copy=False)
    return np.asarray(x, dtype=dtype)


astype = defprimitive(
    "astype", _astype_impl,
    vjp=[lambda g, ans, x, *, dtype: astype(g, dtype=dtype_of(x))], linear=True,
    test=Examples(lambda rng: [((_uniform(rng, (3,)),), {"dtype": np.float64})]),
    sympy=_scalar_identity, elementwise=True,
)


def _getitem_impl(x, *, index):
    return x[index]


def is_basic_index(index: Any) -> bool:
    """True for ints, slices, None and Ellipsis: such an index never repeats an entry."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, int | slice | np.integer) or i is None or i is Ellipsis
               for i in items)


def _scatter_add_impl(g, *, shape, index):
    return backend.scatter_add(shape, index, g, repeats=not is_basic_index(index))


def _getitem_test(rng):
    x = _uniform(rng, (4, 3))
    return [((x,), {"index": 1}), ((x,), {"index": (slice(1, 3), slice(None, None, 2))}),
            ((x,), {"index": (np.array([0, 2, 0, 0]),)}),
            ((x,), {"index": x > 0}), ((x,), {"index": (Ellipsis, None, 1)})]


getitem = defprimitive(
    "getitem", _getitem_impl,
    vjp=[lambda g, ans, x, *, index: scatter_add(g, shape=shape_of(x), index=index)],
    linear=True, test=Examples(_getitem_test), traced_params=("index",),
    source=lambda call: f"{call.args[0]}[{call.params['index']}]",
    sympy=_scalar_identity, batch=B.getitem,
)
scatter_add = defprimitive(
    "scatter_add", _scatter_add_impl,
    vjp=[lambda g, ans, x, *, shape, index: getitem(g, index=index)], linear=True,
    traced_params=("index",), batch=B.scatter_add,
    test=Examples(lambda rng: [((_uniform(rng, (5, 3)),),
                                {"shape": (4, 3), "index": (np.array([0, 2, 0, 3, 2]),)}),
                               ((_uniform(rng, (2,)),), {"shape": (4,), "index": slice(1, 3)})]),
)


def _concatenate_impl(*xs, axis=0):
    return np.concatenate(xs, axis=axis)


def _concat_vjp(i):
    def vjp(g, ans, *xs, axis=0):
        start = sum(shape_of(x)[axis] for x in xs[:i])
        index = (slice(None),) * (axis % ndim_of(ans)) + (
            slice(start, start + shape_of(xs[i])[axis]),)
        return getitem(g, index=index)

    return vjp


concatenate = defprimitive(
    "concatenate", _concatenate_impl, vjp=EveryArgument(_concat_vjp), linear=True,
    batch=B.concatenate,
    test=Examples(lambda rng: [((_uniform(rng, (2, 3)), _uniform(rng, (1, 3))), {"axis": 0}),
                               ((_uniform(rng, (2, 1)), _uniform(rng, (2, 3)),
                                 _uniform(rng, (2, 2))), {"axis": -1})]),
)

# --- linear algebra ------------------------------------------------------------------------


def _swap_last(x):
    axes = tuple(range(ndim_of(x) - 2)) + (ndim_of(x) - 1, ndim_of(x) - 2)
    return transpose(x, axes=axes)


def _matmul_vjp_x(g, ans, x, y):
    x_nd, y_nd = ndim_of(x), ndim_of(y)
    if x_nd == 2 and y_nd == 2:  # the common case, with nothing to un-broadcast
        return matmul(g, y.T)
    if x_nd == 1 and y_nd == 1:
        return g * y
    if y_nd == 1:  # (..., n, k) @ (k,) -> (..., n)
        return sum_to(reshape(g, shape=shape_of(g) + (1,)) * y, shape=shape_of(x))
    if x_nd == 1:  # (k,) @ (..., k, m) -> (..., m)
        gx = matmul(reshape(g, shape=shape_of(g)[:-1] + (1, shape_of(g)[-1])), _swap_last(y))
        return sum_to(reshape(gx, shape=shape_of(gx)[:-2] + shape_of(x)), shape=shape_of(x))
    return sum_to(matmul(g, _swap_last(y)), shape=shape_of(x))


def _matmul_vjp_y(g, ans, x, y):
    x_nd, y_nd = ndim_of(x), ndim_of(y)
    if x_nd == 2 and y_nd == 2:
        return matmul(x.T, g)
    if x_nd == 1 and y_nd == 1:
        return g * x
    if x_nd == 1:  # (k,) @ (..., k, m): dy = outer(x, g)
        return sum_to(reshape(x, shape=shape_of(x) + (1,))
                      * reshape(g, shape=shape_of(g)[:-1] + (1, shape_of(g)[-1])),
                      shape=shape_of(y))
    if y_nd == 1:  # (..., n, k) @ (k,): dy = x^T g
        gy = matmul(_swap_last(x), reshape(g, shape=shape_of(g) + (1,)))
        return sum_to(reshape(gy, shape=shape_of(gy)[:-1]), shape=shape_of(y))
    return sum_to(matmul(_swap_last(x), g), shape=shape_of(y))


def _matmul_jvp(tangents, ans, x, y):
    x_dot, y_dot = tangents
    out = None if x_dot is None else matmul(x_dot, y)
    if y_dot is not None:
        term = matmul(x, y_dot)
        out = term if out is None else out + term
    return out


def _matmul_test(rng):
    pairs = [((3,), (3,)), ((2, 3), (3, 4)), ((2, 3), (3,)), ((3,), (3, 4)),
             ((2, 2, 3), (3, 4)), ((5, 1, 2, 3), (4, 3, 2)), ((3,), (2, 3, 4))]
    return [((_uniform(rng, sx), _uniform(rng, sy)), {}) for sx, sy in pairs]


matmul = defprimitive("matmul", np.matmul, vjp=[_matmul_vjp_x, _matmul_vjp_y],
                      jvp=_matmul_jvp, test=Examples(_matmul_test), batch=B.matmul)
