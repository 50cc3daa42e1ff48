"""glassgrad: glass-box automatic differentiation for machine-learning people.

>>> import numpy as np, glassgrad as gg
>>> float(gg.grad(lambda x: np.sin(x) * x)(0.0))
0.0
"""

from . import datasets, extend, nn, optim, prob
from ._batching import vmap
from ._checkpoint import checkpoint
from ._checks import GradCheckReport, GradientCheckError, check_grad, detect_anomaly, numerical_grad
from ._custom import custom_jvp, custom_vjp
from ._jit import ConcretizationError, jit
from ._mode import enable_grad, no_grad
from ._ops import log_softmax, logsumexp, softmax, stop_gradient
from ._pytree import tree_flatten, tree_map, tree_unflatten
from ._serialize import load, save
from ._tensor import Tensor, tensor
from ._transforms import grad, hessian, hvp, jacobian, jvp, linearize, value_and_grad, vjp
from .calculus import Differential, Explanation, Term, differential, explain, partial, total
from .graph import Graph, trace
from .symbolic import formula, formula_text
from .why import Cause, Diagnosis, why

__version__ = "0.1.0"

__all__ = [
    "Differential", "Explanation", "Term", "differential", "explain", "partial", "total",
    "datasets", "load", "nn", "optim", "prob", "save",
    "ConcretizationError", "jit", "Graph", "trace", "formula", "formula_text",
    "Cause", "Diagnosis", "why",
    "GradCheckReport", "GradientCheckError", "Tensor", "check_grad", "detect_anomaly",
    "enable_grad", "extend", "grad", "hessian", "hvp", "jacobian", "jvp", "linearize",
    "log_softmax", "logsumexp", "no_grad", "numerical_grad", "softmax", "tensor",
    "value_and_grad", "vjp", "stop_gradient", "tree_flatten", "tree_map", "tree_unflatten",
    "vmap", "checkpoint", "custom_vjp", "custom_jvp",
]
