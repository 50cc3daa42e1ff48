"""Containers of arrays ("trees") flattened to a list of leaves and a structure, and back.

A tree is a tuple, a list, a dict, a namedtuple or ``None``, nested to any depth; anything
else is a leaf. Namedtuples keep their type, and ``None`` is an empty container (it has
no leaves), as in JAX. Dicts keep their insertion order. The structure (``TreeDef``) is
immutable and hashable, so ``jit`` can cache on it.

>>> import glassgrad as gg
>>> leaves, treedef = gg.tree_flatten({"w": [1.0, 2.0], "b": (3.0, None)})
>>> leaves
[1.0, 2.0, 3.0]
>>> treedef
PyTreeDef({'w': [*, *], 'b': (*, None)})
>>> gg.tree_unflatten(treedef, [x * 10 for x in leaves])
{'w': [10.0, 20.0], 'b': (30.0, None)}
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TreeDef", "tree_flatten", "tree_map", "tree_unflatten"]


@dataclass(frozen=True)
class TreeDef:
    """The structure of a tree: its node type, what rebuilding it needs, and its children.

    ``node`` is ``None`` for a leaf, else the container type (``tuple``, ``list``,
    ``dict``, a namedtuple class or ``type(None)``); ``keys`` holds a dict's keys.
    Tree definitions compare equal exactly when the trees have the same structure.

    >>> import glassgrad as gg
    >>> gg.tree_flatten((1.0, [2.0]))[1].num_leaves
    2
    """

    node: type | None
    keys: tuple = ()
    children: tuple[TreeDef, ...] = ()
    num_leaves: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        count = 1 if self.node is None else sum(c.num_leaves for c in self.children)
        object.__setattr__(self, "num_leaves", count)  # counted once: jit unflattens per call

    def __repr__(self) -> str:
        return f"PyTreeDef({self._show()})"

    def _show(self) -> str:
        node, parts = self.node, [c._show() for c in self.children]
        if node is None:
            return "*"
        if node is type(None):
            return "None"
        if node is dict:
            return "{" + ", ".join(f"{k!r}: {p}" for k, p in zip(self.keys, parts,
                                                                 strict=True)) + "}"
        if node is list:
            return "[" + ", ".join(parts) + "]"
        if node is tuple:
            return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        fields = ", ".join(f"{k}={p}" for k, p in zip(self.keys, parts, strict=True))
        return f"{node.__name__}({fields})"


LEAF = TreeDef(None)
_NONE = TreeDef(type(None))


def is_namedtuple(x: Any) -> bool:
    """True for instances of classes made by ``collections.namedtuple`` or ``NamedTuple``."""
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def tree_flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None
                 ) -> tuple[list[Any], TreeDef]:
    """The leaves of ``tree`` in order, and its structure, as ``jax.tree_util.tree_flatten``.

    ``is_leaf(x)``, when given, marks subtrees to keep whole as leaves.

    >>> import glassgrad as gg
    >>> from collections import namedtuple
    >>> Params = namedtuple("Params", "w b")
    >>> gg.tree_flatten([Params(1.0, 2.0), None, {"k": 3.0}])
    ([1.0, 2.0, 3.0], PyTreeDef([Params(w=*, b=*), None, {'k': *}]))
    >>> gg.tree_flatten((1.0, (2.0, 3.0)), is_leaf=lambda x: x == (2.0, 3.0))[0]
    [1.0, (2.0, 3.0)]
    """
    leaves: list[Any] = []
    return leaves, _flatten_into(tree, leaves, is_leaf)


def _flatten_into(tree: Any, leaves: list[Any], is_leaf: Callable[[Any], bool] | None
                  ) -> TreeDef:
    if is_leaf is not None and is_leaf(tree):
        leaves.append(tree)
        return LEAF
    node = _node_of(tree)
    if node is None:
        leaves.append(tree)
        return LEAF
    if node is type(None):
        return _NONE
    keys, children = _keys_children(node, tree)
    return TreeDef(node, keys, tuple(_flatten_into(c, leaves, is_leaf) for c in children))


def _node_of(x: Any) -> type | None:
    """The container type ``x`` is flattened as; ``None`` for a leaf."""
    if x is None:
        return type(None)
    if isinstance(x, tuple):
        return type(x) if is_namedtuple(x) else tuple
    if isinstance(x, list):
        return list
    if isinstance(x, dict):
        return dict
    return None


def _keys_children(node: type, x: Any) -> tuple[tuple, list[Any]]:
    if node is dict:
        return tuple(x), list(x.values())
    keys = tuple(node._fields) if node not in (tuple, list) else ()
    return keys, list(x)


def tree_unflatten(treedef: TreeDef, leaves: Any) -> Any:
    """The tree of structure ``treedef`` holding ``leaves`` (the inverse of ``tree_flatten``).

    >>> import glassgrad as gg
    >>> _, treedef = gg.tree_flatten({"a": 0.0, "b": [0.0, None]})
    >>> gg.tree_unflatten(treedef, [1.0, 2.0])
    {'a': 1.0, 'b': [2.0, None]}
    """
    if not isinstance(leaves, list | tuple):
        leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"{treedef} has {treedef.num_leaves} leaves, got {len(leaves)}")
    if treedef.node is None:  # the common case of jit's outputs, kept fast
        return leaves[0]
    return _build(treedef, iter(leaves))


def _build(treedef: TreeDef, it: Iterator[Any]) -> Any:
    node = treedef.node
    if node is None:
        return next(it)
    if node is type(None):
        return None
    children = [_build(c, it) for c in treedef.children]
    if node is dict:
        return dict(zip(treedef.keys, children, strict=True))
    if node is list:
        return children
    if node is tuple:
        return tuple(children)
    return node(*children)  # a namedtuple


def tree_map(f: Callable[..., Any], tree: Any, *rest: Any,
             is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """Apply ``f`` to every leaf of ``tree`` (and the matching leaves of ``rest``).

    Each tree of ``rest`` has the structure of ``tree``, or has ``tree``'s structure as a
    prefix: then ``f`` gets the whole subtree where ``tree`` has a leaf, as in JAX.

    >>> import numpy as np, glassgrad as gg
    >>> params = {"w": np.array([1.0, 2.0]), "b": 0.5}
    >>> grads = {"w": np.array([0.1, 0.2]), "b": 1.0}
    >>> gg.tree_map(lambda p, g: p - 0.5 * g, params, grads)
    {'w': array([0.95, 1.9 ]), 'b': 0.0}
    """
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = [flatten_up_to(treedef, r) for r in rest]
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others, strict=True)])


def flatten_up_to(treedef: TreeDef, tree: Any) -> list[Any]:
    """The subtrees of ``tree`` where ``treedef`` has its leaves; ``tree`` must have
    ``treedef``'s structure down to them.

    >>> from glassgrad._pytree import flatten_up_to, tree_flatten
    >>> flatten_up_to(tree_flatten((0, 0))[1], ([1, 2], {"k": 3}))
    [[1, 2], {'k': 3}]
    """
    out: list[Any] = []
    _up_to(treedef, tree, out)
    return out


def _up_to(treedef: TreeDef, tree: Any, out: list[Any]) -> None:
    node = treedef.node
    if node is None:
        out.append(tree)
        return
    got = _node_of(tree)
    if got is not node:
        name = "a leaf" if got is None else got.__name__
        raise ValueError(f"expected {node.__name__}, got {name} ({tree!r:.60})")
    keys, children = _keys_children(node, tree)
    if node is dict and set(keys) != set(treedef.keys):
        raise ValueError(f"expected a dict with keys {list(treedef.keys)}, got {list(keys)}")
    if node is dict:
        children = [tree[k] for k in treedef.keys]
    elif len(children) != len(treedef.children):
        raise ValueError(f"expected a {node.__name__} of length {len(treedef.children)}, "
                         f"got length {len(children)}")
    for c, t in zip(treedef.children, children, strict=True):
        _up_to(c, t, out)


def leaf_paths(tree: Any) -> list[str]:
    """Index suffixes of the leaves, in ``tree_flatten``'s order: ``[0]``, ``['w']`` and
    ``.w`` for a namedtuple's field.

    >>> from collections import namedtuple
    >>> P = namedtuple("P", "w b")
    >>> leaf_paths({"p": P(1.0, [2.0, 3.0]), "q": None})
    ["['p'].w", "['p'].b[0]", "['p'].b[1]"]
    """
    if tree is None:
        return []
    if is_namedtuple(tree):
        items: Any = ((f".{k}", v) for k, v in zip(type(tree)._fields, tree, strict=True))
    elif isinstance(tree, tuple | list):
        items = ((f"[{i}]", v) for i, v in enumerate(tree))
    elif isinstance(tree, dict):
        items = ((f"[{k!r}]", v) for k, v in tree.items())
    else:
        return [""]
    return [key + rest for key, v in items for rest in leaf_paths(v)]


# The names the rest of the package has always imported.
flatten = tree_flatten
unflatten = tree_unflatten


def num_leaves(treedef: TreeDef) -> int:
    """How many leaves a tree of structure ``treedef`` has."""
    return treedef.num_leaves
