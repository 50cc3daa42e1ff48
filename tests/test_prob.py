"""Tests for the chain rule of probability on discrete tables."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glassgrad.prob import Conditional, Joint, product

RNG = np.random.default_rng(0)


def _random_joint(shape: tuple[int, ...], names: tuple[str, ...]) -> Joint:
    table = RNG.random(shape)
    return Joint(table / table.sum(), names)


@pytest.fixture
def joint3() -> Joint:
    return _random_joint((2, 3, 4), ("x1", "x2", "x3"))


@pytest.mark.parametrize("order", list(itertools.permutations(("x1", "x2", "x3"))))
def test_every_order_reproduces_the_joint(joint3: Joint, order: tuple[str, ...]) -> None:
    factors = joint3.chain_rule(order)
    assert [f.of for f in factors] == [(n,) for n in order]
    assert [f.given for f in factors] == [order[:i] for i in range(3)]
    rebuilt = product(factors, names=joint3.names)
    assert rebuilt.names == joint3.names
    np.testing.assert_allclose(rebuilt.table, joint3.table, rtol=1e-12, atol=0)
    # Without names the axes follow the chain order.
    np.testing.assert_allclose(
        Joint.from_factors(factors).table, joint3.marginal(*order).table, rtol=1e-12
    )


def test_chain_rule_by_hand() -> None:
    table = np.array([[0.1, 0.3], [0.2, 0.4]])
    first, second = Joint(table, ("a", "b")).chain_rule()
    np.testing.assert_allclose(first.table, [0.4, 0.6])
    np.testing.assert_allclose(second.table, [[0.25, 0.75], [1 / 3, 2 / 3]])
    assert first.prob(a=1) == pytest.approx(0.6)
    assert second.prob(a=1, b=0) == pytest.approx(1 / 3)
    assert (str(first), str(second)) == ("p(a)", "p(b | a)")


@st.composite
def joints_and_orders(draw: st.DrawFn) -> tuple[Joint, list[str]]:
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=4)))
    size = int(np.prod(shape))
    # Zeros exercise the undefined (NaN) conditionals; mixed scales exercise rounding.
    values = st.sampled_from([0.0, 1e-3, 0.5, 1.0, 7.0])
    weights = draw(st.lists(values, min_size=size, max_size=size).filter(lambda w: sum(w) > 0))
    names = tuple(f"v{i}" for i in range(len(shape)))
    table = np.array(weights).reshape(shape)
    order = draw(st.permutations(names))
    return Joint(table / table.sum(), names), list(order)


@settings(max_examples=150, deadline=None)
@given(joints_and_orders())
def test_random_tables_and_orders(case: tuple[Joint, list[str]]) -> None:
    joint, order = case
    factors = joint.chain_rule(order)
    rebuilt = product(factors, names=joint.names)
    np.testing.assert_allclose(rebuilt.table, joint.table, rtol=1e-12, atol=1e-300)
    for factor in factors:
        _assert_rows_sum_to_one(factor)


def _assert_rows_sum_to_one(c: Conditional) -> None:
    totals = c.table.sum(axis=tuple(range(len(c.given), c.table.ndim)))
    defined = ~np.isnan(totals)
    np.testing.assert_allclose(totals[defined], 1.0, rtol=0, atol=1e-12)


def test_marginals(joint3: Joint) -> None:
    t = joint3.table
    np.testing.assert_allclose(joint3.marginal("x2").table, t.sum(axis=(0, 2)))
    np.testing.assert_allclose(joint3.marginal("x3", "x1").table, t.sum(axis=1).T)
    assert joint3.marginal("x3", "x1").names == ("x3", "x1")
    assert joint3.marginal("x3", "x1").shape == (4, 2)
    assert joint3.marginal().table == pytest.approx(1.0)


def test_conditional_rows_and_layout(joint3: Joint) -> None:
    c = joint3.conditional(["x3", "x1"], given="x2")
    assert (c.of, c.given, c.names) == (("x3", "x1"), ("x2",), ("x2", "x3", "x1"))
    assert c.shape == (3, 4, 2)
    _assert_rows_sum_to_one(c)
    expected = joint3.prob(x1=1, x2=2, x3=0) / joint3.marginal("x2").prob(x2=2)
    assert c.prob(x1=1, x2=2, x3=0) == pytest.approx(expected, rel=1e-12)
    assert str(c) == "p(x3, x1 | x2)"


def test_conditional_undefined_where_given_has_zero_probability() -> None:
    joint = Joint([[0.5, 0.5], [0.0, 0.0]], ("a", "b"))
    c = joint.conditional("b", "a")
    np.testing.assert_array_equal(c.table[0], [0.5, 0.5])
    assert np.isnan(c.table[1]).all()
    assert np.isnan(c.prob(a=1, b=0))
    np.testing.assert_array_equal(product(joint.chain_rule()).table, joint.table)


def test_tiny_probabilities_survive_in_log_space() -> None:
    table = np.full((3, 3, 3, 3), 1e-200)
    table[0, 0, 0, 0] = 1.0 - 80e-200  # == 1.0 in float64, so the total is exactly 1
    joint = Joint(table, ("a", "b", "c", "d"))
    for order in (["a", "b", "c", "d"], ["d", "b", "a", "c"]):
        rebuilt = product(joint.chain_rule(order), names=joint.names)
        np.testing.assert_allclose(rebuilt.table, table, rtol=1e-10, atol=0)
        assert rebuilt.prob(a=2, b=1, c=0, d=2) == pytest.approx(1e-200, rel=1e-10)


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        Joint([-0.1, 1.1], "a")
    with pytest.raises(ValueError, match="total is 0.9"):
        Joint([0.4, 0.5], "a")
    with pytest.raises(ValueError, match="finite"):
        Joint([np.nan, 1.0], "a")
    with pytest.raises(ValueError, match="axes"):
        Joint([[0.5, 0.5]], "a")
    with pytest.raises(ValueError, match="unique"):
        Joint([[0.5, 0.5]], ("a", "a"))


def test_lookup_errors(joint3: Joint) -> None:
    with pytest.raises(ValueError, match="missing"):
        joint3.prob(x1=0, x2=0)
    with pytest.raises(ValueError, match="unknown"):
        joint3.prob(x1=0, x2=0, x3=0, y=0)
    with pytest.raises(ValueError, match="out of range"):
        joint3.prob(x1=2, x2=0, x3=0)
    with pytest.raises(ValueError, match="out of range"):
        joint3.prob(x1=-1, x2=0, x3=0)
    with pytest.raises(ValueError, match="unknown"):
        joint3.marginal("y")
    with pytest.raises(ValueError, match="overlap"):
        joint3.conditional(["x1", "x2"], given=["x2"])
    with pytest.raises(ValueError, match="permutation"):
        joint3.chain_rule(["x1", "x2"])


def test_table_is_read_only(joint3: Joint) -> None:
    with pytest.raises(ValueError):
        joint3.table[0, 0, 0] = 1.0
    source = np.array([0.5, 0.5])
    joint = Joint(source, "a")
    source[0] = 9.0  # the joint holds its own copy
    assert joint.prob(a=0) == 0.5


def test_from_samples_array_and_dict() -> None:
    data = np.array([[0, 1], [0, 1], [1, 0], [0, 0], [2, 1]])
    joint = Joint.from_samples(data, ("a", "b"))
    np.testing.assert_allclose(joint.table, [[0.2, 0.4], [0.2, 0.0], [0.0, 0.2]])
    by_dict = Joint.from_samples({"b": data[:, 1], "a": data[:, 0]}, names=("a", "b"))
    np.testing.assert_array_equal(by_dict.table, joint.table)
    padded = Joint.from_samples(data, ("a", "b"), sizes={"b": 3})
    assert padded.shape == (3, 3) and padded.prob(a=0, b=2) == 0.0
    with pytest.raises(ValueError, match="integers"):
        Joint.from_samples(data.astype(float), ("a", "b"))
    with pytest.raises(ValueError, match="cover"):
        Joint.from_samples(data, ("a", "b"), sizes=[2, 2])


def test_entropy() -> None:
    assert Joint(np.full((2, 2, 2), 1 / 8), ("a", "b", "c")).entropy() == pytest.approx(3.0)
    assert Joint(np.full(8, 1 / 8), "x").entropy(base=np.e) == pytest.approx(np.log(8))
    assert Joint([1.0, 0.0], "x").entropy() == 0.0
    joint = Joint([[0.25, 0.25], [0.5, 0.0]], ("a", "b"))
    assert joint.conditional_entropy("b", "a") == pytest.approx(0.5)
    # H(a, b) = H(a) + H(b | a)
    h = joint.marginal("a").entropy() + joint.conditional_entropy("b", "a")
    assert joint.entropy() == pytest.approx(h)


def test_repr_and_str(joint3: Joint) -> None:
    assert repr(joint3) == "Joint(names=('x1', 'x2', 'x3'), shape=(2, 3, 4))"
    assert str(joint3) == "p(x1, x2, x3) with shape (2, 3, 4)"
    assert str(joint3.conditional("x1")) == "p(x1)"
