"""Containers (SPEC section 3): tuples, lists, dicts, namedtuples and None, flattened by
gg.tree_flatten and kept intact, type included, through every transform."""

from collections import OrderedDict, namedtuple
from typing import NamedTuple

import numpy as np
import pytest

import glassgrad as gg
from glassgrad._primitive import Traced

Params = namedtuple("Params", "w b")


class Pair(NamedTuple):
    first: float
    second: float


def _rng() -> np.random.Generator:
    return np.random.default_rng(20240609)


def _assert_no_tracers(tree) -> None:
    for leaf in gg.tree_flatten(tree)[0]:
        assert not isinstance(leaf, Traced | gg.Tensor), f"leaked {leaf!r}"


def _assert_same(a, b) -> None:
    """Same structure (namedtuple types included) and close leaves."""
    la, da = gg.tree_flatten(a)
    lb, db = gg.tree_flatten(b)
    assert da == db, f"{da} != {db}"
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)


# --- tree_flatten, tree_unflatten, tree_map ------------------------------------------------


def test_flatten_round_trip_keeps_every_container_type():
    tree = {"p": Params(np.ones(2), 3.0), "q": [Pair(1.0, 2.0), None, (4.0,)], "r": None}
    leaves, treedef = gg.tree_flatten(tree)
    assert len(leaves) == 5 == treedef.num_leaves
    back = gg.tree_unflatten(treedef, leaves)
    assert type(back["p"]) is Params and type(back["q"][0]) is Pair
    assert back["q"][1] is None and back["r"] is None and type(back["q"][2]) is tuple
    _assert_same(back, tree)


def test_none_is_an_empty_container():
    assert gg.tree_flatten(None) == ([], gg.tree_flatten(None)[1])
    assert gg.tree_flatten(None)[1].num_leaves == 0
    assert gg.tree_unflatten(gg.tree_flatten(None)[1], []) is None
    assert gg.tree_map(lambda x: x + 1, (1, None, [None])) == (2, None, [None])


def test_treedefs_are_hashable_and_compare_by_structure():
    d1 = gg.tree_flatten(Params(1.0, [2.0]))[1]
    d2 = gg.tree_flatten(Params(np.ones(3), ["x"]))[1]
    assert d1 == d2 and hash(d1) == hash(d2) and len({d1, d2}) == 1
    # A plain tuple, another namedtuple with the same fields, a list: all different.
    others = [(1.0, [2.0]), Pair(1.0, [2.0]), [1.0, [2.0]], Params(1.0, (2.0,))]
    for other in others:
        assert gg.tree_flatten(other)[1] != d1
    assert gg.tree_flatten({"a": 1, "b": 2})[1] != gg.tree_flatten({"a": 1, "c": 2})[1]


def test_unflatten_checks_the_number_of_leaves():
    _, treedef = gg.tree_flatten((1.0, 2.0))
    with pytest.raises(ValueError, match="2 leaves, got 3"):
        gg.tree_unflatten(treedef, [1, 2, 3])
    assert gg.tree_unflatten(treedef, iter([1, 2])) == (1, 2)
    assert gg.tree_unflatten(gg.tree_flatten(5.0)[1], (7.0,)) == 7.0


def test_tree_map_with_several_trees_and_prefixes():
    a = {"w": np.arange(3.0), "p": Params(1.0, 2.0)}
    b = {"p": Params(10.0, 20.0), "w": np.ones(3)}  # another key order
    out = gg.tree_map(lambda x, y: x + y, a, b)
    assert type(out["p"]) is Params and out["p"] == (11.0, 22.0)
    np.testing.assert_allclose(out["w"], [1.0, 2.0, 3.0])
    # A leaf of the first tree may face a whole subtree of the others, as in JAX.
    assert gg.tree_map(lambda x, y: (x, y), (1, 2), ([3], {"k": 4})) == ((1, [3]), (2, {"k": 4}))
    with pytest.raises(ValueError, match="Params"):
        gg.tree_map(lambda x, y: x, Params(1, 2), (1, 2))
    with pytest.raises(ValueError, match="length"):
        gg.tree_map(lambda x, y: x, [1, 2], [1, 2, 3])


def test_is_leaf_keeps_subtrees_whole():
    leaves, treedef = gg.tree_flatten([Params(1, 2), (3, 4)], is_leaf=lambda x: type(x) is Params)
    assert leaves == [Params(1, 2), 3, 4] and treedef.num_leaves == 3


def test_ordered_dict_flattens_as_a_dict():
    leaves, _ = gg.tree_flatten(OrderedDict([("b", 1.0), ("a", 2.0)]))
    assert leaves == [1.0, 2.0]


# --- namedtuples and None through the transforms -------------------------------------------


def _loss(p: Params, x: np.ndarray) -> np.ndarray:
    return np.sum(np.tanh(p.w * x + p.b) ** 2)


def _loss_grad(p: Params, x: np.ndarray) -> Params:
    t = np.tanh(p.w * x + p.b)
    d = 2 * t * (1 - t ** 2)
    return Params(d * x, np.sum(d))


def _point():
    rng = _rng()
    return Params(rng.normal(size=3), 0.3), rng.normal(size=3)


def test_grad_of_a_namedtuple_argument_is_that_namedtuple():
    p, x = _point()
    g = gg.grad(_loss)(p, x)
    assert type(g) is Params
    _assert_same(g, _loss_grad(p, x))
    (value, aux), g2 = gg.value_and_grad(lambda p: (_loss(p, x), p), has_aux=True)(p)
    _assert_same(g2, g)
    assert type(aux) is Params
    _assert_no_tracers(aux)


def test_grad_with_none_in_and_around_the_arguments():
    p, x = _point()
    g = gg.grad(lambda tree: _loss(tree[0], x))((p, None, {"skip": None}))
    assert g[1] is None and g[2] == {"skip": None}
    _assert_same(g[0], _loss_grad(p, x))
    gp, gnone = gg.grad(lambda p, unused: _loss(p, x), argnums=(0, 1))(p, None)
    assert gnone is None and type(gp) is Params


def test_vjp_namedtuple_in_and_out_no_leaked_tracers():
    p, x = _point()

    def f(p):
        return Pair(p.w * x, np.sum(p.w) * p.b)

    out, pullback = gg.vjp(f, p)
    assert type(out) is Pair
    _assert_no_tracers(out)
    np.testing.assert_allclose(out.first, p.w * x)
    (g,) = pullback(Pair(np.ones(3), 1.0))
    assert type(g) is Params
    _assert_same(g, Params(x + p.b, float(np.sum(p.w))))
    with pytest.raises(ValueError, match="structure"):
        pullback((np.ones(3), 1.0))  # a plain tuple is not a Pair


def test_jvp_namedtuple_in_and_out():
    p, x = _point()
    v = Params(np.ones(3), 0.5)
    out, t = gg.jvp(lambda p: Pair(p.w * x, p.b ** 2), (p,), (v,))
    assert type(out) is Pair and type(t) is Pair
    _assert_no_tracers((out, t))
    _assert_same(t, Pair(x, 2 * p.b * 0.5))
    with pytest.raises(ValueError, match="structure"):
        gg.jvp(lambda p: p.b, (p,), ((np.ones(3), 0.5),))


def test_linearize_namedtuple_out_no_leaked_tracers():
    p, x = _point()
    out, f_jvp = gg.linearize(lambda p: Pair(p.w * x, p.b ** 2), p)
    assert type(out) is Pair
    _assert_no_tracers(out)
    t = f_jvp(Params(np.ones(3), 0.5))
    assert type(t) is Pair
    _assert_same(t, Pair(x, 2 * p.b * 0.5))


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_jacobian_of_namedtuples_in_and_out(mode):
    p, x = _point()
    jac = gg.jacobian(lambda p: Pair(p.w * x, p.b * 2.0), mode=mode)(p)
    assert type(jac) is Pair and type(jac.first) is Params and type(jac.second) is Params
    np.testing.assert_allclose(jac.first.w, np.diag(x))
    np.testing.assert_allclose(jac.first.b, np.zeros(3))
    np.testing.assert_allclose(jac.second.w, np.zeros(3))
    assert jac.second.b == pytest.approx(2.0)


def test_hessian_of_a_namedtuple_argument():
    p, x = _point()
    h = gg.hessian(_loss)(p, x)
    assert type(h) is Params and type(h.w) is Params
    h_rr = gg.jacobian(gg.grad(_loss))(p, x)
    _assert_same(h, h_rr)
    # the w-w block against finite differences of the known gradient
    eps = 1e-6
    fd = np.stack([(_loss_grad(Params(p.w + eps * e, p.b), x).w
                    - _loss_grad(Params(p.w - eps * e, p.b), x).w) / (2 * eps)
                   for e in np.eye(3)], axis=-1)
    np.testing.assert_allclose(h.w.w, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_has_aux_namedtuple_everywhere_no_leaked_tracers(mode):
    p, x = _point()

    def f(p):
        y = p.w * x
        return np.sum(y ** 2), Pair(y, p)

    _, aux = gg.grad(f, has_aux=True)(p)
    _, _, aux_vjp = gg.vjp(f, p, has_aux=True)
    _, _, aux_jvp = gg.jvp(f, (p,), (p,), has_aux=True)
    _, _, aux_lin = gg.linearize(f, p, has_aux=True)
    _, aux_jac = gg.jacobian(f, mode=mode, has_aux=True)(p)
    _, aux_hess = gg.hessian(f, has_aux=True)(p)
    for a in (aux, aux_vjp, aux_jvp, aux_lin, aux_jac, aux_hess):
        assert type(a) is Pair and type(a.second) is Params
        _assert_no_tracers(a)
        np.testing.assert_allclose(a.first, p.w * x)
        np.testing.assert_allclose(a.second.w, p.w)


def test_trace_names_namedtuple_fields_and_skips_none():
    p, x = _point()
    g = gg.trace(lambda p, x, unused: _loss(p, x))(p, x, None)
    assert [n.name for n in g.inputs] == ["p.w", "p.b", "x"]
