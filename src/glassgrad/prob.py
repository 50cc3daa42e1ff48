"""The chain rule of probability on small discrete tables.

A :class:`Joint` holds p(x1, ..., xn) as an array with one axis per named variable.
:meth:`Joint.chain_rule` factorises it as p(x1) p(x2 | x1) p(x3 | x1, x2) ... in any
order, and :func:`product` multiplies such factors back into the joint.

>>> joint = Joint([[0.1, 0.2], [0.3, 0.4]], names=("a", "b"))
>>> [str(f) for f in joint.chain_rule()]
['p(a)', 'p(b | a)']
>>> bool(np.allclose(product(joint.chain_rule()).table, joint.table))
True
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Conditional", "Joint", "product"]

# Tables are normalised in float64, so a total this far from 1 is a real error, not rounding.
_TOL = 1e-9

Names = str | Sequence[str]


def _as_names(names: Names) -> tuple[str, ...]:
    """Accept one name or a sequence of names; insist on unique strings."""
    out = (names,) if isinstance(names, str) else tuple(names)
    if not all(isinstance(n, str) for n in out):
        raise ValueError(f"variable names must be strings, got {out!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"variable names must be unique, got {out!r}")
    return out


def _readonly(array: np.ndarray) -> np.ndarray:
    out = np.array(array, dtype=np.float64, copy=True)
    out.flags.writeable = False
    return out


def _check_known(names: Iterable[str], known: Sequence[str]) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown variable(s) {unknown}; known: {list(known)}")


def _index(names: Sequence[str], shape: Sequence[int], assignment: Mapping) -> tuple[int, ...]:
    """Turn ``name=index`` keywords into a full, bounds-checked index tuple."""
    _check_known(assignment, names)
    missing = [n for n in names if n not in assignment]
    if missing:
        raise ValueError(f"every variable needs a value; missing {missing}")
    index = []
    for name, size in zip(names, shape, strict=True):
        value = assignment[name]
        if isinstance(value, bool):
            raise ValueError(f"{name}={value!r}: values are integer indices, not booleans")
        i = operator.index(value)
        if not 0 <= i < size:  # no negative wrap-around: -1 is almost always a bug here
            raise ValueError(f"{name}={i} is out of range 0..{size - 1}")
        index.append(i)
    return tuple(index)


def _of_and_given(of: Names, given: Names) -> tuple[tuple[str, ...], tuple[str, ...]]:
    of, given = _as_names(of), _as_names(given)
    if not of:
        raise ValueError("a conditional needs at least one variable in 'of'")
    overlap = set(of) & set(given)
    if overlap:
        raise ValueError(f"'of' and 'given' overlap in {sorted(overlap)}")
    return of, given


class Conditional:
    """A conditional distribution p(of | given) stored as a table.

    ``table`` has the ``given`` axes first, then the ``of`` axes. For every assignment of
    the ``given`` variables, summing over the ``of`` axes gives 1. Where p(given) = 0 the
    conditional is undefined and the whole row is NaN.

    >>> c = Conditional([[0.25, 0.75], [1.0, 0.0]], of="b", given="a")
    >>> str(c), c.prob(a=0, b=1)
    ('p(b | a)', 0.75)
    """

    def __init__(self, table: ArrayLike, of: Names, given: Names = ()) -> None:
        self._of, self._given = _of_and_given(of, given)
        self._table = _readonly(np.asarray(table))
        if self._table.ndim != len(self.names):
            raise ValueError(f"table has {self._table.ndim} axes but names are {self.names}")
        self._check_rows()

    def _check_rows(self) -> None:
        t = self._table
        if np.isinf(t).any() or (t < 0).any():
            raise ValueError("conditional probabilities must be finite and non-negative")
        rows = t.reshape(math.prod(t.shape[: len(self._given)]), -1)
        undefined = np.isnan(rows).all(axis=1)
        if np.isnan(rows[~undefined]).any():
            raise ValueError("a row of a conditional must be all NaN (undefined) or all numbers")
        totals = rows[~undefined].sum(axis=1)
        if not np.allclose(totals, 1.0, rtol=0.0, atol=_TOL):
            raise ValueError(f"each row must sum to 1; row totals are {totals}")

    @property
    def of(self) -> tuple[str, ...]:
        """The variables whose distribution this is."""
        return self._of

    @property
    def given(self) -> tuple[str, ...]:
        """The conditioning variables (empty for a plain marginal)."""
        return self._given

    @property
    def names(self) -> tuple[str, ...]:
        """Axis names of :attr:`table`: ``given`` then ``of``."""
        return self._given + self._of

    @property
    def table(self) -> np.ndarray:
        """Read-only table, axes ordered as :attr:`names`."""
        return self._table

    @property
    def shape(self) -> tuple[int, ...]:
        return self._table.shape

    def prob(self, **assignment: int) -> float:
        """p(of = ... | given = ...) for integer indices; NaN where p(given) = 0."""
        return float(self._table[_index(self.names, self.shape, assignment)])

    def __str__(self) -> str:
        of = ", ".join(self._of)
        return f"p({of} | {', '.join(self._given)})" if self._given else f"p({of})"

    def __repr__(self) -> str:
        return f"Conditional({self}, shape={self.shape})"


class Joint:
    """A discrete joint distribution p(names...) with one table axis per variable.

    Entries must be finite, non-negative and sum to 1 (within 1e-9).

    >>> joint = Joint([[0.125, 0.375], [0.25, 0.25]], names=("a", "b"))
    >>> joint.prob(a=1, b=0), joint.marginal("b").table.tolist()
    (0.25, [0.375, 0.625])
    """

    def __init__(self, table: ArrayLike, names: Names) -> None:
        self._names = _as_names(names)
        self._table = _readonly(np.asarray(table))
        if self._table.ndim != len(self._names):
            raise ValueError(
                f"table has {self._table.ndim} axes but {len(self._names)} names {self._names}"
            )
        self._check_table()

    def _check_table(self) -> None:
        t = self._table
        if not np.isfinite(t).all():
            raise ValueError("probabilities must be finite")
        if (t < 0).any():
            raise ValueError(f"probabilities must be non-negative; minimum is {t.min()}")
        total = float(t.sum())
        if abs(total - 1.0) > _TOL:
            raise ValueError(f"probabilities must sum to 1; total is {total!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """Variable names, one per axis of :attr:`table`."""
        return self._names

    @property
    def table(self) -> np.ndarray:
        """Read-only probability table."""
        return self._table

    @property
    def shape(self) -> tuple[int, ...]:
        return self._table.shape

    def prob(self, **assignment: int) -> float:
        """p(x1 = i1, ...) for integer indices; every variable must be assigned."""
        return float(self._table[_index(self._names, self.shape, assignment)])

    def _marginal_table(self, names: Names) -> np.ndarray:
        names = _as_names(names)
        _check_known(names, self._names)
        drop = tuple(i for i, n in enumerate(self._names) if n not in names)
        kept = [n for n in self._names if n in names]
        summed = self._table.sum(axis=drop)
        return np.transpose(summed, [kept.index(n) for n in names])

    def marginal(self, *names: str) -> Joint:
        """p(names...) by summing out the other variables; axes follow ``names``.

        >>> Joint([[0.1, 0.2], [0.3, 0.4]], ("a", "b")).marginal("b", "a").shape
        (2, 2)
        """
        return Joint(self._marginal_table(names), names)

    def conditional(self, of: Names, given: Names = ()) -> Conditional:
        """p(of | given) = p(given, of) / p(given); NaN rows where p(given) = 0.

        >>> Joint([[0.125, 0.375], [0.0, 0.5]], ("a", "b")).conditional("b", "a").table.tolist()
        [[0.25, 0.75], [0.0, 1.0]]
        """
        of, given = _of_and_given(of, given)
        both = self._marginal_table(given + of)
        p_given = both.sum(axis=tuple(range(len(given), both.ndim)), keepdims=True)
        table = np.divide(both, p_given, out=np.full(both.shape, np.nan), where=p_given > 0)
        return Conditional(table, of=of, given=given)

    def chain_rule(self, order: Sequence[str] | None = None) -> list[Conditional]:
        """Factors p(x1) p(x2 | x1) p(x3 | x1, x2) ... with variables taken in ``order``.

        >>> joint = Joint(np.full((2, 2, 2), 0.125), ("a", "b", "c"))
        >>> [str(f) for f in joint.chain_rule(["c", "a", "b"])]
        ['p(c)', 'p(a | c)', 'p(b | c, a)']
        """
        order = self._names if order is None else _as_names(order)
        if sorted(order) != sorted(self._names):
            raise ValueError(f"order {order} must be a permutation of {self._names}")
        return [self.conditional(name, order[:i]) for i, name in enumerate(order)]

    @classmethod
    def from_factors(cls, factors: Sequence[Conditional], names: Names | None = None) -> Joint:
        """Multiply factors back into a joint; same as :func:`product`."""
        return product(factors, names)

    @classmethod
    def from_samples(
        cls,
        data: ArrayLike | Mapping[str, ArrayLike],
        names: Names | None = None,
        sizes: Mapping[str, int] | Sequence[int] | None = None,
    ) -> Joint:
        """Empirical joint from integer samples, one row per sample.

        ``data`` is an (n_samples, n_vars) integer array with ``names`` for its columns, or
        a dict of equal-length 1-D integer arrays (``names`` then picks and orders keys).
        Each axis has ``max + 1`` states unless ``sizes`` says more.

        >>> Joint.from_samples([[0, 1], [0, 1], [1, 0], [0, 0]], ("a", "b")).table.tolist()
        [[0.25, 0.5], [0.25, 0.0]]
        """
        names, columns = _sample_columns(data, names)
        shape = _sample_shape(names, columns, sizes)
        counts = np.zeros(shape, dtype=np.int64)
        np.add.at(counts, tuple(columns), 1)
        return cls(counts / columns.shape[1], names)

    def entropy(self, base: float = 2.0) -> float:
        """Shannon entropy -sum p log p, with 0 log 0 = 0 (bits by default).

        >>> Joint(np.full(8, 1 / 8), "x").entropy()
        3.0
        """
        p = self._table[self._table > 0]
        return float(-(p * np.log(p)).sum() / _log_base(base))

    def conditional_entropy(self, of: Names, given: Names, base: float = 2.0) -> float:
        """H(of | given) = -sum p(given, of) log p(of | given).

        >>> Joint([[0.25, 0.25], [0.5, 0.0]], ("a", "b")).conditional_entropy("b", "a")
        0.5
        """
        cond = self.conditional(of, given)
        both = self._marginal_table(cond.names)
        mask = both > 0  # p(of | given) is defined and positive wherever p(given, of) > 0
        return float(-(both[mask] * np.log(cond.table[mask])).sum() / _log_base(base))

    def __str__(self) -> str:
        return f"p({', '.join(self._names)}) with shape {self.shape}"

    def __repr__(self) -> str:
        return f"Joint(names={self._names}, shape={self.shape})"


def _log_base(base: float) -> float:
    if not (base > 0 and base != 1 and math.isfinite(base)):
        raise ValueError(f"entropy base must be positive, finite and not 1; got {base}")
    return math.log(base)


def _sample_columns(
    data: ArrayLike | Mapping[str, ArrayLike], names: Names | None
) -> tuple[tuple[str, ...], np.ndarray]:
    """Normalise sample input to (names, integer array of shape (n_vars, n_samples))."""
    if isinstance(data, Mapping):
        names = _as_names(data.keys() if names is None else names)
        _check_known(names, list(data))
        columns = np.array([np.asarray(data[n]) for n in names])
    else:
        if names is None:
            raise ValueError("names are required when data is an array")
        names = _as_names(names)
        columns = np.asarray(data).T
    if columns.ndim != 2 or columns.shape[0] != len(names):
        raise ValueError(f"expected {len(names)} 1-D columns of samples, got {columns.shape}")
    if columns.dtype.kind not in "iu":
        raise ValueError(f"samples must be integers, got dtype {columns.dtype}")
    if columns.shape[1] == 0 or columns.min() < 0:
        raise ValueError("need at least one sample, and states must be non-negative")
    return names, columns


def _sample_shape(
    names: tuple[str, ...], columns: np.ndarray, sizes: Mapping[str, int] | Sequence[int] | None
) -> tuple[int, ...]:
    """Table shape: observed ``max + 1`` per variable, or the larger ``sizes`` asked for."""
    observed = [int(c.max()) + 1 for c in columns]
    if sizes is None:
        return tuple(observed)
    if isinstance(sizes, Mapping):
        _check_known(sizes, names)
        wanted = [sizes.get(n, k) for n, k in zip(names, observed, strict=True)]
    else:
        wanted = list(sizes)
    if len(wanted) != len(names) or any(w < k for w, k in zip(wanted, observed, strict=True)):
        raise ValueError(f"sizes {wanted} must cover the observed states {observed}")
    return tuple(int(w) for w in wanted)


def _factor_names(factors: Sequence[Conditional]) -> dict[str, int]:
    """Every variable in the factors, in order of first appearance, with its size."""
    sizes: dict[str, int] = {}
    for factor in factors:
        for name, size in zip(factor.names, factor.shape, strict=True):
            if sizes.setdefault(name, size) != size:
                raise ValueError(f"{name} has size {sizes[name]} in one factor, {size} in another")
    return sizes


def _log_factor(factor: Conditional, order: list[str]) -> np.ndarray:
    """log of a factor's table, broadcastable against the axes in ``order``."""
    with np.errstate(divide="ignore"):
        logs = np.log(factor.table)
    # Undefined rows (p(given) = 0) only occur where the joint is 0: let them contribute 0.
    logs = np.where(np.isnan(logs), -np.inf, logs)
    positions = [order.index(n) for n in factor.names]
    logs = np.transpose(logs, np.argsort(positions))
    shape = [factor.shape[factor.names.index(n)] if n in factor.names else 1 for n in order]
    return logs.reshape(shape)


def product(factors: Sequence[Conditional], names: Names | None = None) -> Joint:
    """Multiply conditional factors into a :class:`Joint`.

    The product is a sum of logs followed by one ``exp``, so multiplying many small factors
    never underflows before the final value; where a factor is undefined (NaN because its
    p(given) = 0) the product is 0. Axes follow ``names`` (default: first appearance).

    >>> joint = Joint([[0.1, 0.2], [0.3, 0.4]], ("a", "b"))
    >>> round(product(joint.chain_rule(["b", "a"]), names=joint.names).prob(a=1, b=1), 12)
    0.4
    """
    sizes = _factor_names(factors)
    order = list(sizes) if names is None else list(_as_names(names))
    if sorted(order) != sorted(sizes):
        raise ValueError(f"names {order} must list exactly the factor variables {list(sizes)}")
    log_table = np.zeros([sizes[n] for n in order])
    for factor in factors:
        log_table = log_table + _log_factor(factor, order)
    return Joint(np.exp(log_table), order)
