"""Tests for the bundled data sets."""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np

from glassgrad.datasets import DIABETES_FEATURES, DIGITS_IMAGE_SHAPE, load_diabetes, load_digits


def _first_line(filename: str) -> str:
    path = resources.files("glassgrad.datasets").joinpath("data", filename)
    with gzip.open(path.open("rb"), "rt") as handle:
        return handle.readline()


def test_diabetes_shapes_and_dtypes() -> None:
    X, y = load_diabetes()
    assert X.shape == (442, 10) and X.dtype == np.float64
    assert y.shape == (442,) and y.dtype == np.float64
    assert len(DIABETES_FEATURES) == X.shape[1]
    assert DIABETES_FEATURES[:4] == ("age", "sex", "bmi", "bp")


def test_diabetes_known_values() -> None:
    X, y = load_diabetes()
    expected = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87]
    np.testing.assert_allclose(X[0], expected, rtol=0, atol=1e-12)
    assert y[0] == 151.0
    np.testing.assert_allclose(X[-1], [36, 1, 19.6, 71, 250, 133.2, 97, 3, 4.5951, 92])
    assert y[-1] == 57.0
    # Raw (unscaled) data: sex is coded 1/2 and the target spans 25..346.
    assert set(np.unique(X[:, 1]).tolist()) == {1.0, 2.0}
    assert (y.min(), y.max()) == (25.0, 346.0)


def test_diabetes_matches_file() -> None:
    X, _ = load_diabetes()
    first = [float(v) for v in _first_line("diabetes_data_raw.csv.gz").split()]
    np.testing.assert_array_equal(X[0], first)


def test_digits_shapes_dtypes_and_counts() -> None:
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 16.0
    assert np.array_equal(X, np.round(X))
    counts = np.bincount(y, minlength=10)
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert X[0].reshape(DIGITS_IMAGE_SHAPE).shape == (8, 8)


def test_digits_matches_file() -> None:
    X, y = load_digits()
    first = [float(v) for v in _first_line("digits.csv.gz").split(",")]
    np.testing.assert_array_equal(X[0], first[:-1])
    assert y[0] == int(first[-1]) == 0


def test_fresh_arrays_each_call() -> None:
    X, y = load_diabetes()
    X[:] = -1.0
    y[:] = -1.0
    X2, y2 = load_diabetes()
    assert X2[0, 0] == 59.0 and y2[0] == 151.0
    D, t = load_digits()
    D[:] = 99.0
    t[:] = 7
    D2, t2 = load_digits()
    assert D2.max() == 16.0 and np.bincount(t2).tolist()[0] == 178
