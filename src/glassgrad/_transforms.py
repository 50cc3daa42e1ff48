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
from ._forward import Dual, push_tangents
from ._primitive import Traced, new_level
from ._pytree import flatten, unflatten
from ._rules import astype, dtype_of, raw, shape_of
from ._tensor import Tensor, backprop, toposort

Argnums = int | Sequence[int]


# --- arguments and outputs -----------------------------------------------------------------


def _as_input(x: Any, what: str) -> Any:
    """A differentiable input value: float arrays, Python floats, tensors' data."""
    if isinstance(x, Tensor) and x._level == 0:
        x = x.data
    if isinstance(x, Traced):
        dtype = dtype_of(raw(x))
    else:
        if isinstance(x, bool) or isinstance(x, np.ndarray) and x.dtype == bool:
            raise TypeError(f"{what} is boolean; differentiation needs float inputs")
        if isinstance(x, int | np.integer) or (
                isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.integer)):
            raise TypeError(f"{what} has an integer dtype; differentiation needs float "
                            "inputs: pass 2.0 rather than 2, or x.astype(float)")
        x = np.asarray(x)
        dtype = x.dtype
    if dtype.kind != "f":
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
    return tuple(i % nargs for i in nums)


def _box_args(args: tuple, argnums: tuple[int, ...], box: Callable[[Any, int], Any]):
    """Replace the differentiated arguments by boxed leaves; returns the new args, and for
    each argnum its boxes, tree definition and original leaves."""
    args = list(args)
    boxed = []
    for i in argnums:
        leaves, treedef = flatten(args[i])
        values = [_as_input(x, f"argument {i}") for x in leaves]
        boxes = [box(v, j) for j, v in enumerate(values)]
        args[i] = unflatten(treedef, boxes)
        boxed.append((boxes, treedef, leaves))
    return tuple(args), boxed


def _unbox(x: Any, level: int) -> Any:
    if isinstance(x, Tensor) and x._level in (0, level):
        return x.data
    if isinstance(x, Dual) and x._level == level:
        return x.primal
    return x


def _match_input(g: Any, original: Any, value: Any) -> Any:
    """Give a gradient the dtype of its input; a Python float input gets a NumPy float."""
    if g is None:
        g = np.zeros(shape_of(value), dtype=dtype_of(raw(value)))
    want = dtype_of(raw(value))
    if dtype_of(raw(g)) != want:
        g = g.astype(want) if not isinstance(g, Traced) else astype(g, dtype=want)
    if isinstance(g, np.ndarray):
        if not g.flags.writeable or g.base is not None:
            g = g.copy()
        if g.ndim == 0 and not isinstance(original, np.ndarray):
            g = g[()]
    return g


def _seed(value: Any) -> Any:
    concrete = raw(value)
    return backend.ones(shape_of(concrete), dtype_of(concrete), like=concrete)


# --- reverse mode --------------------------------------------------------------------------


def value_and_grad(fun: Callable, argnums: Argnums = 0, has_aux: bool = False) -> Callable:
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
        boxed_args, boxed = _box_args(args, nums, lambda v, _: _leaf_box(v, level))
        out = fun(*boxed_args, **kwargs)
        aux = None
        if has_aux:
            if not (isinstance(out, tuple | list) and len(out) == 2):
                raise TypeError("with has_aux=True, the function must return a pair "
                                "(scalar output, auxiliary data)")
            out, aux = out
        _check_scalar_output(out, "grad")
        found = {}
        if isinstance(out, Tensor) and out._level == level:
            found = {id(leaf): g for leaf, g in backprop([(out, _seed(out.data))])}
        grads = [
            unflatten(treedef, [_match_input(found.get(id(b)), o, b.data)
                                for b, o in zip(boxes, originals, strict=True)])
            for boxes, treedef, originals in boxed
        ]
        grad_out = grads[0] if isinstance(argnums, int) else tuple(grads)
        value = _unbox(out, level)
        return ((value, _unbox_tree(aux, level)) if has_aux else value), grad_out

    return wrapped


def grad(fun: Callable, argnums: Argnums = 0, has_aux: bool = False) -> Callable:
    """The gradient of a scalar-valued ``fun`` (with ``has_aux``: ``(grad, aux)``).

    >>> import numpy as np, glassgrad as gg
    >>> float(gg.grad(np.sin)(0.0))
    1.0
    >>> float(gg.grad(gg.grad(gg.grad(np.sin)))(0.0))
    -1.0
    """
    vg = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        (value_aux, g) = vg(*args, **kwargs)
        return (g, value_aux[1]) if has_aux else g

    return wrapped


def _check_scalar_output(out: Any, name: str) -> None:
    if isinstance(out, tuple | list | dict):
        raise TypeError(f"{name} needs a function with a scalar output, got a "
                        f"{type(out).__name__}; use gg.jacobian or gg.vjp for containers "
                        "(or has_aux=True for auxiliary data)")
    shape = shape_of(out)
    if shape != ():
        raise TypeError(f"{name} needs a function with a scalar output, got shape {shape}; "
                        "use gg.jacobian for the full derivative or gg.vjp with a cotangent")
    if not np.issubdtype(dtype_of(raw(out)), np.inexact):
        raise TypeError(f"{name} needs a float output, got dtype {dtype_of(raw(out))}")


def _unbox_tree(tree: Any, level: int) -> Any:
    leaves, treedef = flatten(tree)
    return unflatten(treedef, [_unbox(x, level) for x in leaves])


def vjp(fun: Callable, *primals: Any) -> tuple[Any, Callable]:
    """Evaluate ``fun`` and return ``(out, vjp_fn)``; ``vjp_fn(cotangent)`` gives one
    gradient per primal, as a tuple.

    >>> import numpy as np, glassgrad as gg
    >>> out, f_vjp = gg.vjp(lambda x: x * 3.0, np.array([1.0, 2.0]))
    >>> f_vjp(np.array([1.0, 10.0]))
    (array([ 3., 30.]),)
    """
    level = new_level()
    boxed_args, boxed = _box_args(primals, tuple(range(len(primals))),
                                  lambda v, _: _leaf_box(v, level))
    out = fun(*boxed_args)
    out_leaves, out_def = flatten(out)

    def vjp_fn(cotangent: Any) -> tuple:
        ct_leaves, ct_def = flatten(cotangent)
        if ct_def != out_def:
            raise ValueError("the cotangent must have the structure of the output")
        roots = []
        for o, ct in zip(out_leaves, ct_leaves, strict=True):
            if shape_of(ct) != shape_of(o):
                raise ValueError(f"cotangent of shape {shape_of(ct)} does not match the "
                                 f"output of shape {shape_of(o)}")
            if isinstance(o, Tensor) and o._level == level:
                roots.append((o, ct))
        found = {id(leaf): g for leaf, g in backprop(roots)} if roots else {}
        return tuple(
            unflatten(treedef, [_match_input(found.get(id(b)), orig, b.data)
                                for b, orig in zip(boxes, originals, strict=True)])
            for boxes, treedef, originals in boxed)

    return unflatten(out_def, [_unbox(o, level) for o in out_leaves]), vjp_fn


# --- forward mode --------------------------------------------------------------------------


def jvp(fun: Callable, primals: Sequence, tangents: Sequence) -> tuple[Any, Any]:
    """Forward mode: ``fun(*primals)`` and its derivative along ``tangents``, in one sweep.

    >>> import numpy as np, glassgrad as gg
    >>> gg.jvp(np.sin, (0.0,), (2.0,))
    (np.float64(0.0), np.float64(2.0))
    """
    primals, tangents = _check_primals_tangents(primals, tangents)
    level = new_level()
    flat_tangents = [flatten(t)[0] for t in tangents]

    args = []
    for i, (p, t_list) in enumerate(zip(primals, flat_tangents, strict=True)):
        leaves, treedef = flatten(p)
        duals = []
        for j, (x, t) in enumerate(zip(leaves, t_list, strict=True)):
            x = _as_input(x, f"primal {i}")
            t = raw(t) if isinstance(t, Tensor) and t._level == 0 else t
            if shape_of(t) != shape_of(x):
                raise ValueError(f"tangent {i} leaf {j} has shape {shape_of(t)}, but its "
                                 f"primal has shape {shape_of(x)}")
            duals.append(Dual(x, t, level))
        args.append(unflatten(treedef, duals))
    out = fun(*args)
    out_leaves, out_def = flatten(out)
    values, out_tangents = [], []
    for o in out_leaves:
        if isinstance(o, Dual) and o._level == level:
            values.append(o.primal)
            out_tangents.append(o.tangent)
        else:
            o = _unbox(o, level)
            values.append(o)
            out_tangents.append(np.zeros(shape_of(o), dtype=dtype_of(raw(o))))
    return unflatten(out_def, values), unflatten(out_def, out_tangents)


def _check_primals_tangents(primals, tangents):
    if not isinstance(primals, tuple | list) or not isinstance(tangents, tuple | list):
        raise TypeError("jvp takes primals and tangents as tuples (or lists), e.g. "
                        "jvp(f, (x,), (v,))")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp got {len(primals)} primals but {len(tangents)} tangents")
    for i, (p, t) in enumerate(zip(primals, tangents, strict=True)):
        if flatten(p)[1] != flatten(t)[1]:
            raise ValueError(f"tangent {i} must have the same structure as primal {i}")
    return tuple(primals), tuple(tangents)


def linearize(fun: Callable, *primals: Any) -> tuple[Any, Callable]:
    """Evaluate ``fun`` once and return ``(out, jvp_fn)``; ``jvp_fn(*tangents)`` pushes
    tangents through the recorded computation without evaluating ``fun`` again.

    >>> import numpy as np, glassgrad as gg
    >>> out, f_jvp = gg.linearize(np.sin, 0.0)
    >>> float(f_jvp(1.0)), float(f_jvp(3.0))
    (1.0, 3.0)
    """
    level = new_level()
    boxed_args, boxed = _box_args(primals, tuple(range(len(primals))),
                                  lambda v, _: _leaf_box(v, level))
    out = fun(*boxed_args)
    out_leaves, out_def = flatten(out)
    roots = [o for o in out_leaves if isinstance(o, Tensor) and o._level == level]
    order = toposort(roots)

    def jvp_fn(*tangents: Any) -> Any:
        if len(tangents) != len(primals):
            raise ValueError(f"linearized function takes {len(primals)} tangents, got "
                             f"{len(tangents)}")
        leaf_tangents = {}
        for (boxes, treedef, _), t in zip(boxed, tangents, strict=True):
            t_leaves, t_def = flatten(t)
            if t_def != treedef:
                raise ValueError("each tangent must have the structure of its primal")
            for b, tl in zip(boxes, t_leaves, strict=True):
                if tl is not None:
                    if shape_of(tl) != shape_of(b.data):
                        raise ValueError(f"tangent of shape {shape_of(tl)} does not match "
                                         f"the primal of shape {shape_of(b.data)}")
                    leaf_tangents[id(b)] = tl
        found = push_tangents(order, leaf_tangents)
        result = []
        for o in out_leaves:
            t = found.get(id(o)) if isinstance(o, Tensor) else None
            if t is None:
                t = np.zeros(shape_of(o), dtype=dtype_of(raw(o)))
            result.append(t)
        return unflatten(out_def, result)

    return unflatten(out_def, [_unbox(o, level) for o in out_leaves]), jvp_fn


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


def jacobian(fun: Callable, argnums: Argnums = 0, mode: str = "reverse") -> Callable:
    """The full Jacobian, shaped ``out.shape + in.shape`` for each output and input.

    ``mode="reverse"`` builds it row by row (one backward pass per output element, best
    for few outputs); ``mode="forward"`` column by column (one tangent per input element
    through a single recorded evaluation, best for few inputs).

    >>> import numpy as np, glassgrad as gg
    >>> gg.jacobian(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
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
        build = _jacobian_reverse if mode == "reverse" else _jacobian_forward
        out_def, in_defs, blocks = build(partial_fun, diff_args)
        per_output = []
        for row in blocks:  # one row per output leaf
            per_arg = [unflatten(d, cols) for d, cols in zip(in_defs, row, strict=True)]
            per_output.append(per_arg[0] if isinstance(argnums, int) else tuple(per_arg))
        return unflatten(out_def, per_output)

    return wrapped


def _in_leaves(diff_args):
    flat = [flatten(a) for a in diff_args]
    return [leaves for leaves, _ in flat], [d for _, d in flat]


def _jacobian_reverse(fun, diff_args):
    out, pullback = vjp(fun, *diff_args)
    out_leaves, out_def = flatten(out)
    in_leaves, in_defs = _in_leaves(diff_args)
    blocks = []
    for j, o in enumerate(out_leaves):
        rows = []
        for k in range(int(np.prod(shape_of(o)))):
            ct = [np.zeros(shape_of(x), dtype=dtype_of(raw(x))) for x in out_leaves]
            ct[j].reshape(-1)[k] = 1.0
            grads = pullback(unflatten(out_def, ct))
            rows.append([flatten(g)[0] for g in grads])
        blocks.append(_row_blocks(o, in_leaves, lambda a, m, rows=rows: [r[a][m] for r in rows],
                                  0))
    return out_def, in_defs, blocks


def _jacobian_forward(fun, diff_args):
    out, push = linearize(fun, *diff_args)
    out_leaves, out_def = flatten(out)
    in_leaves, in_defs = _in_leaves(diff_args)
    # columns[a][m] is the list of output tangents for each element of input leaf (a, m)
    columns = []
    for a, leaves in enumerate(in_leaves):
        per_leaf = []
        for m, x in enumerate(leaves):
            cols = []
            for k in range(int(np.prod(shape_of(x)))):
                tangents = [unflatten(d, [None] * len(ls))
                            for d, ls in zip(in_defs, in_leaves, strict=True)]
                basis = np.zeros(shape_of(x), dtype=dtype_of(raw(_as_input(x, "input"))))
                basis.reshape(-1)[k] = 1.0
                t_leaves = [None] * len(leaves)
                t_leaves[m] = basis
                tangents[a] = unflatten(in_defs[a], t_leaves)
                cols.append(flatten(push(*tangents))[0])
            per_leaf.append(cols)
        columns.append(per_leaf)
    blocks = [_row_blocks(o, in_leaves, lambda a, m, j=j: [c[j] for c in columns[a][m]], -1)
              for j, o in enumerate(out_leaves)]
    return out_def, in_defs, blocks


def _row_blocks(out: Any, in_leaves: list, items: Callable, axis: int) -> list:
    """The Jacobian blocks of one output leaf, shaped ``out.shape + in.shape``: rows
    (reverse mode, ``axis=0``) or columns (forward mode, ``axis=-1``) stacked."""
    return [[_ops.reshape(_stack(items(a, m), shape_of(out if axis else x), axis),
                          shape_of(out) + shape_of(x))
             for m, x in enumerate(leaves)]
            for a, leaves in enumerate(in_leaves)]


def _stack(items: list, item_shape: tuple, axis: int = 0) -> Any:
    if not items:
        return np.zeros((0,) + item_shape)
    if any(isinstance(i, Traced) for i in items):
        return _ops.stack(items, axis=axis)
    return np.stack([np.asarray(i) for i in items], axis=axis)


def hessian(fun: Callable, argnums: Argnums = 0) -> Callable:
    """The Hessian, shaped ``in.shape + in.shape`` (forward over reverse).

    >>> import numpy as np, glassgrad as gg
    >>> gg.hessian(lambda x: np.sum(x ** 3))(np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return jacobian(grad(fun, argnums), argnums, mode="forward")
