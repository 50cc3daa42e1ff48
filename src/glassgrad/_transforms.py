"""The functional transforms: grad, value_and_grad, vjp, jvp, linearize, jacobian, hessian.

Each call of a transformed function takes a fresh level, wraps the differentiated
arguments in traced values of that level, runs the user's function, and reads the
derivative off. Levels keep nested transforms apart, so any nesting works.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _backend as backend
from . import _ops
from ._backend import concrete as raw
from ._backend import dtype_of, shape_of
from ._batching import vmap
from ._forward import Dual, push_tangents
from ._primitive import Traced, new_level
from ._pytree import TreeDef, flatten_up_to, leaf_paths, tree_flatten, tree_map, tree_unflatten
from ._rules import astype
from ._tensor import Tensor, backprop, toposort

Argnums = int | Sequence[int]


# --- arguments and outputs -----------------------------------------------------------------


def _as_input(x: Any, what: str) -> Any:
    """A differentiable input value: float arrays, Python floats, tensors' data."""
    if isinstance(x, Tensor) and x._level == 0:
        x = x._raw()
    if isinstance(x, bool | np.bool_):
        raise TypeError(f"{what} is boolean; differentiation needs float inputs")
    if isinstance(x, int | np.integer):
        raise TypeError(f"{what} is the integer {x!r}; differentiation needs float inputs: "
                        "pass 2.0 rather than 2")
    backend.refuse_unkept(x, what)
    if isinstance(x, float | complex | np.generic):  # a scalar: a 0-d array of its library
        x = backend.namespace_of(x).asarray(x)
    dtype = getattr(raw(x), "dtype", None)
    if dtype is None:
        raise TypeError(f"{what} is a {type(x).__name__}; differentiation needs float "
                        "arrays or numbers (containers: tuple, list, dict, namedtuple, None)")
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        raise TypeError(f"{what} is boolean; differentiation needs float inputs")
    if dtype.kind in "iu":
        raise TypeError(f"{what} has an integer dtype; differentiation needs float "
                        "inputs: pass 2.0 rather than 2, or x.astype(float)")
    if dtype.kind not in "fc":
        raise TypeError(f"{what} has dtype {dtype}; differentiation needs float inputs")
    return x


def _leaf_box(value: Any, level: int) -> Tensor:
    t = Tensor._wrap(value, level, None)
    t.requires_grad = True
    return t


def _normalize_argnums(argnums: Argnums, nargs: int) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if not -nargs <= i < nargs:
            raise ValueError(f"argnums {argnums} is out of range for a call with {nargs} "
                             "positional arguments")
    resolved = tuple(i % nargs for i in nums)
    repeated = sorted({i for i in resolved if resolved.count(i) > 1})
    if repeated:
        # JAX has no meaning for this either; one gradient per argument is the only answer.
        raise ValueError(f"argnums {argnums} names argument {repeated[0]} more than once; "
                         "list each argument once")
    return resolved


def _box_args(args: tuple, argnums: tuple[int, ...], level: int) -> tuple[tuple, list]:
    """Replace the differentiated arguments by boxed leaves of ``level``; returns the new
    args, and for each argnum its boxes, tree definition and original leaves."""
    args = list(args)
    boxed = []
    for i in argnums:
        leaves, treedef = tree_flatten(args[i])
        paths = leaf_paths(args[i])
        boxes = [_leaf_box(_as_input(x, f"argument {i}{path}"), level)
                 for x, path in zip(leaves, paths, strict=True)]
        args[i] = tree_unflatten(treedef, boxes)
        boxed.append((boxes, treedef, leaves))
    return tuple(args), boxed


def _gradients(boxed: list, found: dict[int, Any]) -> list[Any]:
    """One gradient tree per boxed argument, from the gradients ``found`` by leaf id."""
    return [tree_unflatten(treedef, [_match_input(found.get(id(b)), o, b._raw())
                                     for b, o in zip(boxes, originals, strict=True)])
            for boxes, treedef, originals in boxed]


def _unbox(x: Any, level: int) -> Any:
    if isinstance(x, Tensor) and x._level in (0, level):
        return x._raw()
    if isinstance(x, Dual) and x._level == level:
        return x.primal
    return x


def _unbox_tree(tree: Any, level: int) -> Any:
    return tree_map(lambda x: _unbox(x, level), tree)


def _cast(x: Any, dtype: np.dtype) -> Any:
    """``x`` with ``dtype``, traced values included."""
    if isinstance(x, Traced):
        return astype(x, dtype=dtype)
    if hasattr(x, "astype"):
        return x.astype(dtype)
    return backend.namespace_of(x).asarray(x, dtype=dtype)


def _derivative_dtype(x: Any) -> np.dtype:
    """The dtype of a derivative of ``x``: its own if inexact, else float64."""
    dtype = np.dtype(dtype_of(raw(x)))
    return dtype if dtype.kind in "fc" else np.dtype(np.float64)


def _zeros(x: Any) -> Any:
    """The zero derivative of ``x``: its shape, its float dtype, its array library."""
    return backend.zeros(shape_of(x), _derivative_dtype(x), like=raw(x))


def _match_input(g: Any, original: Any, value: Any) -> Any:
    """Give a gradient the dtype of its input; a Python float input gets a NumPy float."""
    want = np.dtype(dtype_of(raw(value)))
    if g is None:
        g = backend.zeros(shape_of(value), want, like=raw(value))
    have = np.dtype(dtype_of(raw(g)))
    if have.kind == "c" and want.kind != "c":
        # A real input met complex values on the way: its cotangent is the real part (the
        # transpose of the real-to-complex promotion, as in JAX).
        g = _ops.dispatch_table()[np.real](g)
        have = np.dtype(dtype_of(raw(g)))
    if have != want:
        g = _cast(g, want)
    if backend.is_numpy_array(g):
        if not g.flags.writeable or g.base is not None:
            g = g.copy()
        if g.ndim == 0 and not backend.is_numpy_array(original):
            g = g[()]
    return g


def _seed(value: Any) -> Any:
    concrete = raw(value)
    return backend.ones(shape_of(concrete), dtype_of(concrete), like=concrete)


def _split_aux(out: Any, has_aux: bool, name: str) -> tuple[Any, Any]:
    """The output of ``fun`` and its auxiliary data (``None`` without ``has_aux``)."""
    if has_aux:
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise TypeError(f"{name} with has_aux=True needs the function to return a pair "
                            "(output, auxiliary data), a two-element tuple, got "
                            f"{_kind(out)}")
        out, aux = out
    else:
        aux = None
    if out is None:
        raise TypeError(f"{name}: the function returned None, so there is nothing to "
                        "differentiate; is a `return` statement missing?")
    return out, aux


def _kind(x: Any) -> str:
    if isinstance(x, tuple | list):
        return f"a {type(x).__name__} of length {len(x)}"
    return "None" if x is None else f"a {type(x).__name__}"


def _leaves_like(treedef: TreeDef, tree: Any, what: str, like: str) -> list[Any]:
    """The leaves of ``tree``, which must have the structure ``treedef`` of ``like``."""
    try:
        leaves = flatten_up_to(treedef, tree)
    except ValueError as e:
        raise ValueError(f"{what} must have the structure of {like}, {treedef}: {e}") from None
    for leaf in leaves:
        if tree_flatten(leaf)[1].node is not None:
            raise ValueError(f"{what} must have the structure of {like}, {treedef}, but "
                             f"has {_kind(leaf)} where {like} has an array")
    return leaves


# --- reverse mode --------------------------------------------------------------------------


def value_and_grad(fun: Callable, argnums: Argnums = 0, has_aux: bool = False,
                   holomorphic: bool = False) -> Callable:
    """``fun``'s value and its gradient with respect to the ``argnums`` arguments.

    >>> import numpy as np, glassgrad as gg
    >>> value, g = gg.value_and_grad(lambda x: np.sum(x ** 2))(np.array([1.0, 2.0]))
    >>> float(value), g
    (5.0, array([2., 4.]))
    """

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        nums = _normalize_argnums(argnums, len(args))
        level = new_level()
        boxed_args, boxed = _box_args(args, nums, level)
        if holomorphic:
            _check_holomorphic_inputs(boxed, "grad")
        out, aux = _split_aux(fun(*boxed_args, **kwargs), has_aux, "grad")
        _check_scalar_output(out, "grad", holomorphic)
        found = {}
        if isinstance(out, Tensor) and out._level == level:
            found = {id(leaf): g for leaf, g in backprop([(out, _seed(out._raw()))])}
        grads = _gradients(boxed, found)
        grad_out = grads[0] if isinstance(argnums, int) else tuple(grads)
        value = _unbox(out, level)
        return ((value, _unbox_tree(aux, level)) if has_aux else value), grad_out

    return wrapped


def grad(fun: Callable, argnums: Argnums = 0, has_aux: bool = False,
         holomorphic: bool = False) -> Callable:
    """The gradient of a scalar-valued ``fun`` (with ``has_aux``: ``(grad, aux)``).

    Arguments may be containers (tuples, lists, dicts, namedtuples, ``None``); each
    gradient has the structure, shape and float dtype of its argument.

    >>> import numpy as np, glassgrad as gg
    >>> float(gg.grad(np.sin)(0.0))
    1.0
    >>> float(gg.grad(gg.grad(gg.grad(np.sin)))(0.0))
    -1.0
    >>> gg.grad(lambda p: p["w"] * p["b"])({"w": 2.0, "b": 3.0})
    {'w': np.float64(3.0), 'b': np.float64(2.0)}
    """
    vg = value_and_grad(fun, argnums, has_aux, holomorphic)

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        (value_aux, g) = vg(*args, **kwargs)
        return (g, value_aux[1]) if has_aux else g

    return wrapped


def _check_scalar_output(out: Any, name: str, holomorphic: bool = False) -> None:
    if isinstance(out, tuple | list | dict):
        raise TypeError(f"Gradient only defined for scalar-output functions. {name} needs "
                        f"a function with a scalar output, got {_kind(out)}; use "
                        "gg.jacobian or gg.vjp for containers (or has_aux=True for "
                        "auxiliary data)")
    shape = shape_of(out)
    if shape != ():
        raise TypeError(f"Gradient only defined for scalar-output functions. {name} needs "
                        f"a function with a scalar output, got shape {shape}; use "
                        "gg.jacobian for the full derivative or gg.vjp with a cotangent")
    dtype = np.dtype(dtype_of(raw(out)))
    if holomorphic and dtype.kind != "c":
        raise TypeError(f"{name} with holomorphic=True requires outputs with complex dtype, "
                        f"but got {dtype.name}")
    if dtype.kind == "c" and not holomorphic:
        # JAX's wording, so that code and tests ported from JAX read the same error.
        raise TypeError(f"{name} requires real-valued outputs (output dtype that is a "
                        f"sub-dtype of np.floating), but got {dtype.name}. For holomorphic "
                        "differentiation (the complex derivative f'(z)), pass "
                        "holomorphic=True. Otherwise differentiate a real quantity (np.abs, "
                        "np.real, ...) or use gg.vjp or gg.jacobian")
    if dtype.kind not in "fc":
        raise TypeError(f"{name} needs a float output, got dtype {dtype}")


def _check_holomorphic_inputs(boxed: list, name: str) -> None:
    for boxes, _, _ in boxed:
        for b in boxes:
            if np.dtype(dtype_of(b._raw())).kind != "c":
                raise TypeError(f"{name} with holomorphic=True requires inputs with complex "
                                f"dtype, but got {np.dtype(dtype_of(b._raw())).name}; pass "
                                "x + 0j")


def vjp(fun: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """Evaluate ``fun`` and return ``(out, vjp_fn)`` (with ``has_aux``:
    ``(out, vjp_fn, aux)``); ``vjp_fn(cotangent)`` gives one gradient per primal, as a
    tuple. The cotangent has the structure and shapes of ``out``.

    >>> import numpy as np, glassgrad as gg
    >>> out, f_vjp = gg.vjp(lambda x: x * 3.0, np.array([1.0, 2.0]))
    >>> f_vjp(np.array([1.0, 10.0]))
    (array([ 3., 30.]),)
    >>> out, f_vjp, aux = gg.vjp(lambda x: (x * 3.0, {"x": x}), np.ones(1), has_aux=True)
    >>> f_vjp(np.ones(1)), aux
    ((array([3.]),), {'x': array([1.])})
    """
    level = new_level()
    boxed_args, boxed = _box_args(primals, tuple(range(len(primals))), level)
    out, aux = _split_aux(fun(*boxed_args), has_aux, "vjp")
    out_leaves, out_def = tree_flatten(out)

    def vjp_fn(cotangent: Any) -> tuple:
        ct_leaves = _leaves_like(out_def, cotangent, "the cotangent", "the output")
        roots = []
        for o, ct in zip(out_leaves, ct_leaves, strict=True):
            if isinstance(ct, Tensor) and ct._level == 0:
                ct = ct._raw()
            if shape_of(ct) != shape_of(o):
                raise ValueError(f"cotangent of shape {shape_of(ct)} does not match the "
                                 f"output of shape {shape_of(o)}")
            if isinstance(o, Tensor) and o._level == level:
                roots.append((o, ct))
        found = {id(leaf): g for leaf, g in backprop(roots)} if roots else {}
        return tuple(_gradients(boxed, found))

    value = tree_unflatten(out_def, [_unbox(o, level) for o in out_leaves])
    if has_aux:
        return value, vjp_fn, _unbox_tree(aux, level)
    return value, vjp_fn


# --- forward mode --------------------------------------------------------------------------


def _dual_input(x: Any, t: Any, what: str) -> tuple[Any, Any]:
    """A primal leaf and its tangent, checked: same shape, and the primal's dtype."""
    x = _as_input(x, what.replace("tangent", "primal"))
    if isinstance(t, Tensor) and t._level == 0:
        t = t._raw()
    if shape_of(t) != shape_of(x):
        raise ValueError(f"{what} has shape {shape_of(t)}, but its primal has shape "
                         f"{shape_of(x)}")
    want, have = np.dtype(dtype_of(raw(x))), np.dtype(dtype_of(raw(t)))
    if have.kind not in ("fiuc" if want.kind == "c" else "fiu"):
        raise TypeError(f"{what} has dtype {have}; tangents of {want} primals are "
                        f"{'complex' if want.kind == 'c' else 'real'}")
    return x, (t if have == want else _cast(t, want))


def _tangent_out(t: Any, primal: Any) -> Any:
    """An output tangent with its output's float dtype (a float32 output has a float32
    tangent, whatever the dtype of the constants it met)."""
    if t is None:
        return _zeros(primal)
    want = _derivative_dtype(primal)
    return t if np.dtype(dtype_of(raw(t))) == want else _cast(t, want)


def jvp(fun: Callable, primals: Sequence, tangents: Sequence, has_aux: bool = False) -> tuple:
    """Forward mode: ``fun(*primals)`` and its derivative along ``tangents``, in one sweep:
    ``(out, tangent_out)``, or ``(out, tangent_out, aux)`` with ``has_aux``.

    Each tangent has the structure and shapes of its primal; it takes the primal's dtype.

    >>> import numpy as np, glassgrad as gg
    >>> gg.jvp(np.sin, (0.0,), (2.0,))
    (np.float64(0.0), np.float64(2.0))
    >>> gg.jvp(lambda x: (x ** 2, "note"), (3.0,), (1.0,), has_aux=True)
    (np.float64(9.0), np.float64(6.0), 'note')
    """
    primals, tangents = _check_primals_tangents(primals, tangents)
    level = new_level()
    args = []
    for i, (p, t) in enumerate(zip(primals, tangents, strict=True)):
        leaves, treedef = tree_flatten(p)
        t_leaves = _leaves_like(treedef, t, f"tangent {i}", f"primal {i}")
        duals = []
        for x, tl, path in zip(leaves, t_leaves, leaf_paths(p), strict=True):
            x, tl = _dual_input(x, tl, f"tangent {i}{path}")
            duals.append(Dual(x, tl, level))
        args.append(tree_unflatten(treedef, duals))
    out, aux = _split_aux(fun(*args), has_aux, "jvp")
    out_leaves, out_def = tree_flatten(out)
    values, out_tangents = [], []
    for o in out_leaves:
        if isinstance(o, Dual) and o._level == level:
            values.append(o.primal)
            out_tangents.append(_tangent_out(o.tangent, o.primal))
        else:
            o = _unbox(o, level)
            values.append(o)
            out_tangents.append(_zeros(o))
    result = (tree_unflatten(out_def, values), tree_unflatten(out_def, out_tangents))
    return result + (_unbox_tree(aux, level),) if has_aux else result


def _check_primals_tangents(primals: Any, tangents: Any) -> tuple[tuple, tuple]:
    if not isinstance(primals, tuple | list) or not isinstance(tangents, tuple | list):
        raise TypeError("jvp takes primals and tangents as tuples (or lists), e.g. "
                        "jvp(f, (x,), (v,))")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp got {len(primals)} primals but {len(tangents)} tangents")
    return tuple(primals), tuple(tangents)


class _Linearized:
    """``fun`` evaluated once on boxed primals, ready to push tangents through its graph."""

    def __init__(self, fun: Callable, primals: tuple, has_aux: bool, name: str):
        level = new_level()
        boxed_args, self.boxed = _box_args(primals, tuple(range(len(primals))), level)
        out, aux = _split_aux(fun(*boxed_args), has_aux, name)
        self.out_leaves, self.out_def = tree_flatten(out)
        roots = [o for o in self.out_leaves if isinstance(o, Tensor) and o._level == level]
        self.order = toposort(roots)
        self.values = [_unbox(o, level) for o in self.out_leaves]
        self.aux = _unbox_tree(aux, level)

    def push(self, leaf_tangents: dict[int, Any]) -> list[Any]:
        """The output leaves' tangents, given tangents of some input boxes (by id)."""
        found = push_tangents(self.order, leaf_tangents)
        return [_tangent_out(found.get(id(o)) if isinstance(o, Tensor) else None, v)
                for o, v in zip(self.out_leaves, self.values, strict=True)]


def linearize(fun: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """Evaluate ``fun`` once and return ``(out, jvp_fn)`` (with ``has_aux``:
    ``(out, jvp_fn, aux)``); ``jvp_fn(*tangents)`` pushes tangents through the recorded
    computation without evaluating ``fun`` again.

    >>> import numpy as np, glassgrad as gg
    >>> out, f_jvp = gg.linearize(np.sin, 0.0)
    >>> float(f_jvp(1.0)), float(f_jvp(3.0))
    (1.0, 3.0)
    """
    lin = _Linearized(fun, primals, has_aux, "linearize")

    def jvp_fn(*tangents: Any) -> Any:
        if len(tangents) != len(primals):
            raise ValueError(f"linearized function takes {len(primals)} tangents, got "
                             f"{len(tangents)}")
        leaf_tangents = {}
        for i, ((boxes, treedef, _), t) in enumerate(zip(lin.boxed, tangents, strict=True)):
            t_leaves = _leaves_like(treedef, t, f"tangent {i}", f"primal {i}")
            paths = leaf_paths(tree_unflatten(treedef, boxes))
            for b, tl, path in zip(boxes, t_leaves, paths, strict=True):
                leaf_tangents[id(b)] = _dual_input(b._raw(), tl, f"tangent {i}{path}")[1]
        return tree_unflatten(lin.out_def, lin.push(leaf_tangents))

    out = tree_unflatten(lin.out_def, lin.values)
    return (out, jvp_fn, lin.aux) if has_aux else (out, jvp_fn)


def hvp(fun: Callable, primals: Sequence, tangents: Sequence) -> Any:
    """Hessian-vector product (forward over reverse), never forming the Hessian.

    >>> import numpy as np, glassgrad as gg
    >>> gg.hvp(lambda x: np.sum(x ** 3), (np.array([1.0, 2.0]),), (np.array([1.0, 0.0]),))
    array([6., 0.])
    """
    primals, tangents = _check_primals_tangents(primals, tangents)
    argnums = 0 if len(primals) == 1 else tuple(range(len(primals)))
    _, out_tangent = jvp(grad(fun, argnums=argnums), primals, tangents)
    return out_tangent


# --- Jacobians and Hessians ----------------------------------------------------------------


def jacobian(fun: Callable, argnums: Argnums = 0, mode: str = "reverse",
             has_aux: bool = False, holomorphic: bool = False) -> Callable:
    """The full Jacobian, shaped ``out.shape + in.shape`` for each output and input
    (with ``has_aux``: ``(jacobian, aux)``).

    ``mode="reverse"`` pulls every row back in one batched backward pass (best for few
    outputs); ``mode="forward"`` pushes every column through a single recorded
    evaluation in one batched forward sweep (best for few inputs). Either way ``fun``
    runs once: the unit vectors travel together through ``vmap``. A real-to-complex
    function has a complex Jacobian in both modes; ``holomorphic=True`` gives the complex
    derivative f'(z) of a holomorphic function of complex inputs (as in JAX).

    >>> import numpy as np, glassgrad as gg
    >>> gg.jacobian(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    >>> jac, aux = gg.jacobian(lambda x: (x * 2.0, "note"), has_aux=True)(np.ones(1))
    >>> jac, aux
    (array([[2.]]), 'note')
    """
    if mode not in ("reverse", "forward"):
        raise ValueError(f"mode must be 'reverse' or 'forward', got {mode!r}")

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        nums = _normalize_argnums(argnums, len(args))

        def partial_fun(*diff_args):
            full = list(args)
            for i, a in zip(nums, diff_args, strict=True):
                full[i] = a
            return fun(*full, **kwargs)

        diff_args = tuple(args[i] for i in nums)
        _check_jacobian_inputs(diff_args, holomorphic, mode)
        build = _jacobian_reverse if mode == "reverse" else _jacobian_forward
        out_def, in_defs, blocks, aux = build(partial_fun, diff_args, has_aux, holomorphic)
        per_output = []
        for row in blocks:  # one row per output leaf
            per_arg = [tree_unflatten(d, cols) for d, cols in zip(in_defs, row, strict=True)]
            per_output.append(per_arg[0] if isinstance(argnums, int) else tuple(per_arg))
        jac = tree_unflatten(out_def, per_output)
        return (jac, aux) if has_aux else jac

    return wrapped


def _in_leaves(diff_args: tuple) -> tuple[list, list]:
    flat = [tree_flatten(a) for a in diff_args]
    return [leaves for leaves, _ in flat], [d for _, d in flat]


def _basis(x: Any) -> Any:
    """All unit vectors of ``x``'s space, stacked along a new first axis, with its float
    dtype and array library: pushed through a transform at once by ``vmap``."""
    return backend.basis(shape_of(x), _derivative_dtype(x), like=raw(x))


def _jacobian_name(mode: str) -> str:
    return "jacrev" if mode == "reverse" else "jacfwd"


def _kind_of(x: Any) -> str:
    x = x._raw() if isinstance(x, Tensor) and x._level == 0 else x
    dtype = getattr(raw(x), "dtype", None)
    return (np.dtype(dtype) if dtype is not None else np.result_type(x)).kind


def _check_jacobian_inputs(diff_args: tuple, holomorphic: bool, mode: str) -> None:
    """JAX's rules: holomorphic=True needs complex inputs; forward mode needs real inputs
    otherwise; reverse mode takes complex inputs of a real-valued function (its rows are
    then gradients in JAX's convention)."""
    name = _jacobian_name(mode)
    for x, path in zip(tree_flatten(diff_args)[0], leaf_paths(diff_args), strict=True):
        kind = _kind_of(x)
        if holomorphic and kind != "c":
            raise TypeError(f"{name} with holomorphic=True requires inputs with complex "
                            f"dtype, but got {np.result_type(raw(x)).name} (argument{path} "
                            "of gg.jacobian); pass x + 0j")
        if kind == "c" and not holomorphic and mode == "forward":
            raise TypeError(f"{name} requires real-valued inputs (input dtype that is a "
                            f"sub-dtype of np.floating), but got complex (argument{path} of "
                            "gg.jacobian(mode='forward')). For a holomorphic function pass "
                            "holomorphic=True; for a real-valued one use mode='reverse'")


def _check_jacobian_outputs(out_leaves: list, out: Any, holomorphic: bool, mode: str,
                            complex_inputs: bool) -> None:
    name = _jacobian_name(mode)
    for o, path in zip(out_leaves, leaf_paths(out), strict=True):
        kind = np.dtype(dtype_of(raw(o))).kind
        if holomorphic and kind != "c":
            raise TypeError(f"{name} with holomorphic=True requires outputs with complex "
                            f"dtype, but got {np.dtype(dtype_of(raw(o))).name} "
                            f"(output{path})")
        if kind == "c" and complex_inputs and not holomorphic:
            raise TypeError(f"{name} requires real-valued outputs (output dtype that is a "
                            f"sub-dtype of np.floating), but got "
                            f"{np.dtype(dtype_of(raw(o))).name} (output{path}) of complex "
                            "inputs. For holomorphic differentiation, pass holomorphic=True; "
                            "otherwise use gg.vjp")


def _jacobian_reverse(fun: Callable, diff_args: tuple, has_aux: bool,
                      holomorphic: bool = False) -> tuple:
    out, pullback, *aux = vjp(fun, *diff_args, has_aux=has_aux)
    out_leaves, out_def = tree_flatten(out)
    complex_inputs = any(_kind_of(x) == "c" for x in tree_flatten(diff_args)[0])
    _check_jacobian_outputs(out_leaves, out, holomorphic, "reverse", complex_inputs)
    in_leaves, in_defs = _in_leaves(diff_args)
    zeros = [_zeros(o) for o in out_leaves]
    blocks = []
    for j, o in enumerate(out_leaves):
        def pull_row(e: Any, j: int = j) -> list:
            grads = pullback(tree_unflatten(out_def, zeros[:j] + [e] + zeros[j + 1:]))
            return [tree_flatten(g)[0] for g in grads]

        # One backward pass for all the rows: the cotangents are a batch of unit vectors.
        rows = _batched(pull_row, _basis(o), in_leaves, 0)
        if np.dtype(dtype_of(raw(o))).kind == "c" and not holomorphic:
            # Real inputs, complex output: a pull of e gives d(real part), a pull of -i e
            # d(imaginary part); the row is their complex sum.
            imag_rows = _batched(pull_row, _basis(o) * -1j, in_leaves, 0)
            rows = [[r + 1j * i for r, i in zip(ra, ia, strict=True)]
                    for ra, ia in zip(rows, imag_rows, strict=True)]
        blocks.append([[_block(rows[a][m], o, x) for m, x in enumerate(leaves)]
                       for a, leaves in enumerate(in_leaves)])
    return out_def, in_defs, blocks, (aux[0] if has_aux else None)


def _jacobian_forward(fun: Callable, diff_args: tuple, has_aux: bool,
                      holomorphic: bool = False) -> tuple:
    lin = _Linearized(fun, diff_args, has_aux, "jacobian")
    _check_jacobian_outputs(lin.values, tree_unflatten(lin.out_def, lin.values), holomorphic,
                            "forward", False)
    in_leaves, in_defs = _in_leaves(diff_args)
    # columns[a][m][j]: the tangents of output leaf j for every unit vector of input leaf
    # (a, m), pushed through the recorded evaluation in one batched forward sweep.
    columns = [[_batched(lambda e, b=b: lin.push({id(b): e}), _basis(b._raw()),
                         lin.values, -1) for b in boxes]
               for boxes, _, _ in lin.boxed]
    blocks = [[[_block(columns[a][m][j], o, x) for m, x in enumerate(leaves)]
               for a, leaves in enumerate(in_leaves)]
              for j, o in enumerate(lin.values)]
    return lin.out_def, in_defs, blocks, lin.aux


def _batched(fun: Callable, basis: Any, likes: list, axis: int) -> list:
    """``vmap(fun)(basis)`` with the batch along ``axis``; for an empty basis, zeros shaped
    like each leaf of ``likes`` (the structure of ``fun``'s result) with an empty batch
    axis."""
    if shape_of(basis)[0] == 0:
        def empty(x: Any) -> Any:
            shape = (0, *shape_of(x)) if axis == 0 else (*shape_of(x), 0)
            return backend.zeros(shape, _derivative_dtype(x), like=raw(x))

        return tree_map(empty, likes)
    return vmap(fun, out_axes=axis)(basis)


def _block(stacked: Any, out: Any, x: Any) -> Any:
    """A Jacobian block, shaped ``out.shape + in.shape``, as an array of its own."""
    block = _ops.reshape(stacked, shape_of(out) + shape_of(x))
    if backend.is_numpy_array(block) and not block.flags.writeable:
        block = block.copy()
    return block


def hessian(fun: Callable, argnums: Argnums = 0, has_aux: bool = False) -> Callable:
    """The Hessian, shaped ``in.shape + in.shape`` (forward over reverse); with
    ``has_aux``: ``(hessian, aux)``. It keeps the input's float dtype.

    >>> import numpy as np, glassgrad as gg
    >>> gg.hessian(lambda x: np.sum(x ** 3))(np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return jacobian(grad(fun, argnums, has_aux=has_aux), argnums, mode="forward",
                    has_aux=has_aux)
