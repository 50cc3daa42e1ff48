"""Adding your own primitive: declare its implementation and rules in one call.

The primitive joins the rule table, so the table-driven derivative tests check it like
every built-in one (give it a ``test=Examples(...)`` with valid example inputs).

>>> import numpy as np, glassgrad as gg
>>> softplus = gg.extend.defprimitive(
...     "softplus_example", lambda x: np.logaddexp(0.0, x),
...     derivatives=[lambda ans, x: gg.extend.primitives["sigmoid"](x)])
>>> float(gg.grad(softplus)(0.0))
0.5
"""

from ._primitive import PRIMITIVES as primitives
from ._primitive import Examples, Primitive
from ._rules import defprimitive

__all__ = ["Primitive", "Examples", "defprimitive", "primitives"]
