"""Rows for the ``scipy.special`` ufuncs (SciPy is the optional extra ``scipy``).

They are ufuncs, so a traced value dispatches to them from the row alone. This module is
imported only when SciPy is importable.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special as sc

from . import _rules as R
from ._primitive import Examples
from ._rules import _SHAPES, _binary, _unary, _uniform, defprimitive

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _polygamma_impl(x, *, n):
    out = sc.polygamma(n, x)  # computed in float64 for n >= 2; keep float32 float32
    dtype = getattr(x, "dtype", None)
    return out.astype(dtype, copy=False) if dtype is not None and dtype.kind == "f" else out


# d/dx polygamma(n, x) = polygamma(n + 1, x): the derivatives of gammaln and digamma.
polygamma = defprimitive(
    "polygamma", _polygamma_impl, elementwise=True,
    derivatives=[lambda ans, x, *, n: polygamma(x, n=n + 1)],
    test=Examples(lambda rng: [((_uniform(rng, s, 0.5, 3.0),), {"n": n})
                               for s, n in zip(_SHAPES, (1, 2, 3), strict=True)]),
)
erf = defprimitive("erf", sc.erf,
                   derivatives=[lambda ans, x: _TWO_OVER_SQRT_PI * R.exp(-(x * x))],
                   test=_unary())
erfc = defprimitive("erfc", sc.erfc,
                    derivatives=[lambda ans, x: -_TWO_OVER_SQRT_PI * R.exp(-(x * x))],
                    test=_unary())
gammaln = defprimitive("gammaln", sc.gammaln, derivatives=[lambda ans, x: digamma(x)],
                       test=_unary(0.3, 4.0))
digamma = defprimitive("digamma", sc.digamma, derivatives=[lambda ans, x: polygamma(x, n=1)],
                       test=_unary(0.3, 4.0), numpy=(sc.psi,))
expit = defprimitive("expit", sc.expit, derivatives=[lambda ans, x: ans * (1.0 - ans)],
                     test=_unary(-4.0, 4.0))
logit = defprimitive("logit", sc.logit, derivatives=[lambda ans, x: 1.0 / (x * (1.0 - x))],
                     test=_unary(0.05, 0.95))


def _xlogy_dx(ans, x, y):
    return R.log(y)


# xlogy(x, y) = x log(y), 0 where x == 0: slope log(y) in x and x / y in y.
xlogy = defprimitive("xlogy", sc.xlogy,
                     derivatives=[_xlogy_dx, lambda ans, x, y: x / y],
                     test=_binary(-2.0, 2.0, 0.3, 3.0))
xlog1py = defprimitive("xlog1py", sc.xlog1py,
                       derivatives=[lambda ans, x, y: R.log1p(y),
                                    lambda ans, x, y: x / (1.0 + y)],
                       test=_binary(-2.0, 2.0, -0.7, 3.0))
ndtr = defprimitive("ndtr", sc.ndtr,
                    derivatives=[lambda ans, x: _INV_SQRT_2PI * R.exp(-0.5 * (x * x))],
                    test=_unary(-3.0, 3.0))
# d log ndtr = pdf / cdf, computed as exp(log pdf - log cdf) so it stays finite far left.
log_ndtr = defprimitive(
    "log_ndtr", sc.log_ndtr,
    derivatives=[lambda ans, x: _INV_SQRT_2PI * R.exp(-0.5 * (x * x) - ans)],
    test=Examples(lambda rng: [((_uniform(rng, s, -3.0, 3.0),), {}) for s in _SHAPES]
                  + [((np.array([-30.0, -8.0, 5.0]),), {})]),
)
