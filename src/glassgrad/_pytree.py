"""Containers of arrays (tuples, lists, dicts, nested) flattened to leaves and back."""

from __future__ import annotations

from typing import Any

# A tree definition is a nested tuple: ("leaf",), ("tuple", children), ("list", children),
# or ("dict", keys, children). Plain tuples keep it hashable for caching.
LEAF = ("leaf",)


def flatten(tree: Any) -> tuple[list[Any], tuple]:
    leaves: list[Any] = []
    return leaves, _flatten_into(tree, leaves)


def _flatten_into(tree: Any, leaves: list[Any]) -> tuple:
    if isinstance(tree, tuple) and not hasattr(tree, "_fields"):
        return ("tuple", tuple(_flatten_into(t, leaves) for t in tree))
    if isinstance(tree, list):
        return ("list", tuple(_flatten_into(t, leaves) for t in tree))
    if isinstance(tree, dict):
        keys = tuple(tree)
        return ("dict", keys, tuple(_flatten_into(tree[k], leaves) for k in keys))
    leaves.append(tree)
    return LEAF


def unflatten(treedef: tuple, leaves: list[Any]) -> Any:
    it = iter(leaves)
    out = _build(treedef, it)
    return out


def _build(treedef: tuple, it) -> Any:
    kind = treedef[0]
    if kind == "leaf":
        return next(it)
    if kind == "dict":
        return {k: _build(d, it) for k, d in zip(treedef[1], treedef[2], strict=True)}
    children = [_build(d, it) for d in treedef[1]]
    return tuple(children) if kind == "tuple" else children


def num_leaves(treedef: tuple) -> int:
    kind = treedef[0]
    if kind == "leaf":
        return 1
    children = treedef[2] if kind == "dict" else treedef[1]
    return sum(num_leaves(c) for c in children)
