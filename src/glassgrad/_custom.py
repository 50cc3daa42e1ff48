"""``custom_vjp`` and ``custom_jvp``: your own derivative rule for a whole function, with
JAX's decorator API.

Each decorated function becomes rows of the rule table, made with ``defprimitive`` the
first time it is called (one row per output leaf): the row's implementation runs the
function on plain arrays, and its rules call yours. Every interpreter therefore sees it:
reverse mode, forward mode, ``jit`` (which records one call of the function) and
``vmap`` (which loops over the batch).

* ``custom_vjp``: ``f.defvjp(fwd, bwd)``; ``fwd(*args) -> (out, residuals)`` and
  ``bwd(residuals, g) -> one cotangent per positional argument``. The backward pass runs
  ``fwd`` again for its residuals (the forward pass ran the plain function). Forward mode
  through it raises ``TypeError`` naming it: give it a ``custom_jvp`` instead.
* ``custom_jvp``: ``f.defjvp(rule)`` with ``rule(primals, tangents) -> (out, t_out)``, or
  ``f.defjvps(*rules)`` with one ``rule(t, ans, *args)`` per argument. Reverse mode
  transposes your rule by differentiating it in the tangents (it is linear in them), so
  one rule gives both modes, as in JAX.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any

from ._backend import concrete, dtype_of, shape_of, zeros_like
from ._primitive import Primitive
from ._pytree import tree_flatten, tree_unflatten

_names = itertools.count(1)


def _split_static(args: tuple, nondiff_argnums: tuple[int, ...]) -> tuple[tuple, tuple]:
    static = tuple(args[i] for i in nondiff_argnums)
    dynamic = tuple(a for i, a in enumerate(args) if i not in nondiff_argnums)
    return static, dynamic


def _merge(static: tuple, dynamic: Sequence, nondiff_argnums: tuple[int, ...]) -> list:
    out, s, d = [], iter(static), iter(dynamic)
    for i in range(len(static) + len(dynamic)):
        out.append(next(s) if i in nondiff_argnums else next(d))
    return out


class _Custom:
    """What the two decorators share: flattening arguments, making the rows, calling."""

    kind = "custom"

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = (),
                 nondiff_argnames: Sequence[str] = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        try:
            self._signature: inspect.Signature | None = inspect.signature(fun)
        except (TypeError, ValueError):  # pragma: no cover - builtins
            self._signature = None
        names = list(self._signature.parameters) if self._signature else []
        by_name = tuple(names.index(n) for n in nondiff_argnames)
        self.nondiff_argnums = tuple(sorted(set(nondiff_argnums) | set(by_name)))
        self._rows: dict[int, Primitive] = {}
        self._out_trees: dict[tuple, Any] = {}
        self._plain = 0  # > 0 while a custom_jvp rule is being transposed
        # A name that is also an identifier (jit prints the row as a call of it).
        qualname = re.sub(r"\W+", "_", getattr(fun, "__qualname__", "f")).strip("_")
        self._name = f"{self.kind}_{qualname}_{next(_names)}"

    def _run(self, leaves, in_tree, static):
        args = _merge(static, tree_unflatten(in_tree, list(leaves)), self.nondiff_argnums)
        return self.fun(*args)

    def _row(self, k: int) -> Primitive:
        row = self._rows.get(k)
        if row is None:
            from ._rules import EveryArgument, defprimitive

            def impl(*leaves, in_tree, static, out_index):
                out_leaves, _ = tree_flatten(self._run(leaves, in_tree, static))
                return out_leaves[out_index]

            row = defprimitive(f"{self._name}_{k}", impl,
                               vjp=EveryArgument(self._vjp_rule), jvp=self._jvp_rule)
            self._rows[k] = row
        return row

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:  # keyword arguments become positional, as JAX resolves them
            if self._signature is None:  # pragma: no cover
                raise TypeError(f"{self.__name__} takes positional arguments only")
            bound = self._signature.bind(*args, **kwargs)
            bound.apply_defaults()
            args = bound.args
        if self._plain:
            return self.fun(*args)
        static, dynamic = _split_static(args, self.nondiff_argnums)
        leaves, in_tree = tree_flatten(dynamic)
        if not any(_is_traced(x) for x in leaves):
            return self.fun(*args)
        # The structure of the output, from one run on the values behind the tracers,
        # remembered per signature.
        key = (repr(in_tree), repr(static),
               tuple((shape_of(x), str(dtype_of(x))) for x in leaves))
        out_tree = self._out_trees.get(key)
        if out_tree is None:
            out = self._run([concrete(x) for x in leaves], in_tree, static)
            out_tree = self._out_trees[key] = tree_flatten(out)[1]
        n = out_tree.num_leaves
        results = [self._row(k)(*leaves, in_tree=in_tree, static=static, out_index=k)
                   for k in range(n)]
        return tree_unflatten(out_tree, results)

    def _vjp_rule(self, i: int) -> Callable:  # pragma: no cover - abstract
        raise NotImplementedError

    def _jvp_rule(self, tangents, ans, *leaves, in_tree, static, out_index):  # pragma: no cover
        raise NotImplementedError


def _is_traced(x: Any) -> bool:
    from ._primitive import Traced

    return isinstance(x, Traced)


def _one_hot_cotangent(out: Any, out_index: int, g: Any) -> Any:
    leaves, tree = tree_flatten(out)
    return tree_unflatten(tree, [g if k == out_index else zeros_like(leaf)
                                 for k, leaf in enumerate(leaves)])


class custom_vjp(_Custom):  # noqa: N801 - JAX's name
    """A function with your own VJP, as ``jax.custom_vjp``.

    >>> import numpy as np, glassgrad as gg
    >>> @gg.custom_vjp
    ... def clip_gradient(x):
    ...     return x
    >>> clip_gradient.defvjp(lambda x: (x, None), lambda res, g: (np.clip(g, -1.0, 1.0),))
    >>> float(gg.grad(lambda x: 5.0 * clip_gradient(x))(2.0))
    1.0
    """

    kind = "custom_vjp"

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = (),
                 nondiff_argnames: Sequence[str] = ()):
        super().__init__(fun, nondiff_argnums, nondiff_argnames)
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        self.fwd, self.bwd = fwd, bwd

    def _vjp_rule(self, i: int) -> Callable:
        def rule(g, ans, *leaves, in_tree, static, out_index):
            if self.fwd is None or self.bwd is None:
                raise TypeError(f"custom_vjp function {self.__name__} has no rule: call "
                                f"{self.__name__}.defvjp(fwd, bwd) first")
            args = _merge(static, tree_unflatten(in_tree, list(leaves)), self.nondiff_argnums)
            out, residuals = self.fwd(*args)
            cts = self.bwd(*static, residuals, _one_hot_cotangent(out, out_index, g))
            if not isinstance(cts, tuple | list):
                raise TypeError(f"the bwd rule of {self.__name__} must return a tuple with "
                                f"one cotangent per argument, got {type(cts).__name__}")
            flat = _flatten_like(cts, tree_unflatten(in_tree, list(leaves)), self.__name__)
            return zeros_like(leaves[i]) if flat[i] is None else flat[i]

        return rule

    def _jvp_rule(self, tangents, ans, *leaves, in_tree, static, out_index):
        raise TypeError(f"forward mode (jvp, jacobian(mode='forward'), hessian) cannot go "
                        f"through {self.__name__}: it is a custom_vjp function, which "
                        "defines reverse mode only; use gg.custom_jvp to give it a rule "
                        "that works in both modes")


def _flatten_like(cts: Sequence, dynamic: Sequence, name: str) -> list:
    """The cotangents returned by bwd, one per leaf of the arguments; None (for a whole
    argument or any part of one) stands for zeros."""
    if len(cts) != len(dynamic):
        raise TypeError(f"the bwd rule of {name} returned {len(cts)} cotangents for "
                        f"{len(dynamic)} arguments")
    out: list = []
    for ct, arg in zip(cts, dynamic, strict=True):
        _match(ct, arg, out, name)
    return out


def _match(ct: Any, arg: Any, out: list, name: str) -> None:
    leaves, tree = tree_flatten(arg)
    if ct is None:
        out.extend([None] * len(leaves))
    elif tree.node is None:
        out.append(ct)
    elif isinstance(arg, dict):
        if not isinstance(ct, dict) or set(ct) != set(arg):
            raise TypeError(f"the bwd rule of {name} returned {type(ct).__name__} where the "
                            f"argument is a dict with keys {sorted(arg)}")
        for key in arg:  # the order tree_flatten uses: the dict's own
            _match(ct[key], arg[key], out, name)
    else:
        if not isinstance(ct, tuple | list) or len(ct) != len(arg):
            raise TypeError(f"the bwd rule of {name} returned a cotangent of structure "
                            f"{type(ct).__name__} for an argument of structure {tree}")
        for c, a in zip(ct, arg, strict=True):
            _match(c, a, out, name)


class custom_jvp(_Custom):  # noqa: N801 - JAX's name
    """A function with your own JVP rule, used by forward and reverse mode (as
    ``jax.custom_jvp``).

    >>> import numpy as np, glassgrad as gg
    >>> @gg.custom_jvp
    ... def log1pexp(x):
    ...     return np.log1p(np.exp(x))
    >>> @log1pexp.defjvp
    ... def log1pexp_jvp(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return log1pexp(x), t * (1.0 - 1.0 / (1.0 + np.exp(x)))
    >>> float(gg.grad(log1pexp)(100.0))
    1.0
    """

    kind = "custom_jvp"

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = (),
                 nondiff_argnames: Sequence[str] = ()):
        super().__init__(fun, nondiff_argnums, nondiff_argnames)
        self.rule: Callable | None = None

    def defjvp(self, rule: Callable) -> Callable:
        self.rule = rule
        return rule

    def defjvps(self, *rules: Callable | None) -> None:
        """One rule per positional argument, ``rule(t, ans, *args)`` (None: no derivative)."""

        def rule(primals, tangents):
            ans = self.fun(*primals)
            out = None
            for r, t in zip(rules, tangents, strict=False):
                if r is None:
                    continue
                term = r(t, ans, *primals)
                out = term if out is None else out + term
            return ans, (zeros_like(ans) if out is None else out)

        self.rule = rule

    def _tangent_out(self, tangents, leaves, in_tree, static, out_index):
        if self.rule is None:
            raise TypeError(f"custom_jvp function {self.__name__} has no rule: decorate one "
                            f"with @{self.__name__}.defjvp")
        primals = tuple(tree_unflatten(in_tree, list(leaves)))
        ts = tuple(tree_unflatten(in_tree, [zeros_like(x) if t is None else t
                                             for t, x in zip(tangents, leaves, strict=True)]))
        if self.nondiff_argnums:
            _, t_out = self.rule(*static, primals, ts)
        else:
            _, t_out = self.rule(primals, ts)
        return tree_flatten(t_out)[0][out_index]

    def _jvp_rule(self, tangents, ans, *leaves, in_tree, static, out_index):
        return self._tangent_out(list(tangents), leaves, in_tree, static, out_index)

    def _vjp_rule(self, i: int) -> Callable:
        def rule(g, ans, *leaves, in_tree, static, out_index):
            # The rule is linear in the tangents: its transpose is its gradient in them.
            from ._transforms import vjp

            def push(t_i):
                ts = [None] * len(leaves)
                ts[i] = t_i
                return self._tangent_out(ts, leaves, in_tree, static, out_index)

            # While the rule runs for its transpose, calls of this function inside it run
            # the plain function (linear in the tangent there), not the row again.
            self._plain += 1
            try:
                _, pull = vjp(push, zeros_like(leaves[i]))
            finally:
                self._plain -= 1
            return pull(g)[0]

        return rule


