"""``gg.checkpoint``: recompute a block in the backward pass instead of storing it.

A checkpointed call is one primitive, made on the fly for the function. Its
implementation runs the function on plain arrays, so nothing inside it is recorded: the
tape keeps only the block's inputs and output. Its VJP rule runs the function again, under
``vjp``, when the backward pass reaches it, and pulls the cotangent through that fresh
recording, which is dropped as soon as the rule returns. The peak memory of a chain of
checkpointed blocks therefore grows with one block's intermediates, not the chain's.

Because the rules call transforms that are written with primitives, the primitive
composes like any other: its JVP runs the function under ``jvp``, its batching rule
checkpoints the vmapped function, ``jit`` records a call of it (and, for a gradient, the
recomputation), and higher derivatives differentiate the recomputation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _backend as backend
from . import _rules as R
from ._backend import dtype_of, shape_of
from ._primitive import Primitive, Traced
from ._pytree import tree_flatten, tree_unflatten
from ._rules import EveryArgument

__all__ = ["checkpoint"]

# (block, cotangent, inputs, gradients, indices not yet taken) of the backward step running
_LAST: tuple | None = None


def checkpoint(fun: Callable) -> Callable:
    """``fun`` with the same values and derivatives, whose intermediates are recomputed
    in the backward pass instead of stored (JAX's ``checkpoint``/``remat``, PyTorch's
    ``torch.utils.checkpoint``).

    Arguments may be containers; the arrays among their leaves are the block's inputs
    (other leaves are passed through as constants). Values to differentiate must be
    arguments, not closed over: the block runs on plain arrays.

    >>> import numpy as np, glassgrad as gg
    >>> block = gg.checkpoint(lambda h, w: np.tanh(h @ w))
    >>> w = np.eye(2) * 0.5
    >>> g = gg.grad(lambda w: np.sum(block(block(np.ones(2), w), w)))(w)
    >>> bool(np.allclose(g, gg.grad(lambda w: np.sum(np.tanh(np.tanh(np.ones(2) @ w) @ w)))(w)))
    True
    """
    name = "checkpoint_" + "".join(c if c.isalnum() else "_"
                                   for c in getattr(fun, "__name__", "fun"))

    @functools.wraps(fun)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        leaves, treedef = tree_flatten((args, kwargs))
        dynamic = [i for i, leaf in enumerate(leaves) if _is_input(leaf)]
        block = _Block(fun, leaves, treedef, dynamic)
        flat = block.primitive(name)(*[leaves[i] for i in dynamic])
        return block.split(flat)

    return wrapped


def _is_input(x: Any) -> bool:
    return isinstance(x, Traced) or backend.is_array(x) or backend.is_foreign_array(x)


class _Block:
    """One checkpointed call: the function of its array inputs with one array output
    (several outputs travel raveled and concatenated, and are split afterwards)."""

    def __init__(self, fun: Callable, leaves: list, treedef: Any, dynamic: list[int]):
        self.fun, self.leaves, self.treedef, self.dynamic = fun, leaves, treedef, dynamic
        self.spec: tuple | None = None  # the output's structure, shapes and dtypes

    def flat_fun(self, *inputs: Any) -> Any:
        """``fun`` on these inputs, its output leaves as one array."""
        leaves = list(self.leaves)
        for i, x in zip(self.dynamic, inputs, strict=True):
            leaves[i] = x
        args, kwargs = tree_unflatten(self.treedef, leaves)
        outs, out_def = tree_flatten(self.fun(*args, **kwargs))
        if not outs:
            raise TypeError("checkpoint: the function returned no arrays")
        dtypes = {np.dtype(dtype_of(o)) for o in outs}
        if len(dtypes) > 1:
            raise TypeError(f"checkpoint: the outputs have several dtypes "
                            f"({sorted(map(str, dtypes))}); give them one dtype, or "
                            "checkpoint them apart")
        if self.spec is None:
            self.spec = (out_def, [shape_of(o) for o in outs])
        if len(outs) == 1:
            return outs[0]
        return R.concatenate(*[R.reshape(o, shape=(-1,)) for o in outs], axis=0)

    def split(self, flat: Any) -> Any:
        out_def, shapes = self.spec
        if len(shapes) == 1:
            return tree_unflatten(out_def, [flat])
        outs, start = [], 0
        for shape in shapes:
            n = math.prod(shape)
            piece = R.getitem(flat, index=(slice(start, start + n),))
            outs.append(R.reshape(piece, shape=shape))
            start += n
        return tree_unflatten(out_def, outs)

    def primitive(self, name: str) -> Primitive:
        flat_fun = self.flat_fun

        def impl(*inputs: Any) -> Any:
            out = flat_fun(*inputs)
            if isinstance(out, Traced):
                raise TypeError(
                    f"{name}: the function closes over a value that a transform traces "
                    "(an argument of an enclosing grad/jvp/vmap, or an eager tensor that "
                    "requires grad); pass it to the checkpointed function as an argument")
            return out

        def gradient(i: int, g: Any, inputs: tuple) -> Any:
            # One recomputation serves every argument of this node's backward step: the
            # gradients wait in one slot (for one node at a time, so the memory they hold
            # is one block's) until the last argument has taken its own.
            global _LAST
            last = _LAST
            if last is None or last[0] is not self or last[1] is not g or any(
                    a is not b for a, b in zip(last[2], inputs, strict=True)):
                grads = _pull(flat_fun, g, inputs)
                last = (self, g, inputs, grads, {k for k, x in enumerate(grads) if x is not None})
            waiting = last[4] - {i}
            _LAST = (*last[:4], waiting) if waiting else None
            return last[3][i]

        def jvp(tangents: list, ans: Any, *inputs: Any) -> Any:
            from ._transforms import jvp as forward

            diff = [i for i, t in enumerate(tangents) if t is not None]
            return forward(_partial(flat_fun, inputs, diff), tuple(inputs[i] for i in diff),
                           tuple(tangents[i] for i in diff))[1]

        def batch(inputs: list, dims: list) -> tuple[Any, int]:
            from ._batching import vmap

            return checkpoint(vmap(flat_fun, in_axes=tuple(dims)))(*inputs), 0

        return Primitive(name, impl,
                         vjps=EveryArgument(lambda i: lambda g, ans, *inputs:
                                            gradient(i, g, inputs)),
                         jvp=jvp, batch=batch)


def _partial(flat_fun: Callable, inputs: tuple, diff: list[int]) -> Callable:
    def f(*diff_inputs: Any) -> Any:
        full = list(inputs)
        for i, x in zip(diff, diff_inputs, strict=True):
            full[i] = x
        return flat_fun(*full)

    return f


def _pull(flat_fun: Callable, g: Any, inputs: tuple) -> list:
    """The gradients of every input (None for non-float ones), recomputing the block."""
    from ._transforms import vjp

    diff = [i for i, x in enumerate(inputs) if np.dtype(dtype_of(x)).kind == "f"]
    grads: list = [None] * len(inputs)
    if diff:
        _, pull = vjp(_partial(flat_fun, inputs, diff), *[inputs[i] for i in diff])
        for i, gi in zip(diff, pull(g), strict=True):
            grads[i] = gi
    return grads
