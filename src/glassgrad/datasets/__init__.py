"""Small classic data sets shipped inside the package, so examples run offline.

Each loader reads a gzip-compressed text file from ``glassgrad/datasets/data`` and
returns fresh NumPy arrays, so callers may modify them freely.

>>> from glassgrad.datasets import load_diabetes
>>> X, y = load_diabetes()
>>> X.shape, y.shape
((442, 10), (442,))
"""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["DIABETES_FEATURES", "DIGITS_IMAGE_SHAPE", "load_diabetes", "load_digits"]

#: Column names of the diabetes feature matrix, in order.
DIABETES_FEATURES: tuple[str, ...] = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")

#: Each digits row is an 8x8 image flattened row by row.
DIGITS_IMAGE_SHAPE: tuple[int, int] = (8, 8)


def _load_text(filename: str, delimiter: str | None = None) -> np.ndarray:
    """Parse one bundled ``.csv.gz`` file into a float64 array."""
    resource = resources.files(__package__).joinpath("data", filename)
    # as_file gives a real path even when the package lives inside a zip.
    with resources.as_file(resource) as path:
        return np.loadtxt(path, delimiter=delimiter, dtype=np.float64, ndmin=2)


def load_diabetes() -> tuple[np.ndarray, np.ndarray]:
    """Load the diabetes regression data of Efron, Hastie, Johnstone and Tibshirani (2004).

    Returns ``(X, y)``: ``X`` is float64 of shape (442, 10) holding the raw, unscaled
    measurements named in :data:`DIABETES_FEATURES`; ``y`` is float64 of shape (442,),
    a quantitative measure of disease progression one year after baseline.

    >>> X, y = load_diabetes()
    >>> X[0, :3].tolist(), float(y[0])
    ([59.0, 2.0, 32.1], 151.0)
    """
    X = _load_text("diabetes_data_raw.csv.gz")
    y = _load_text("diabetes_target.csv.gz").ravel()
    return X, y


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Load the 8x8 handwritten digits (UCI optical recognition test set).

    Returns ``(X, y)``: ``X`` is float64 of shape (1797, 64) with pixel counts in 0..16
    (reshape a row to :data:`DIGITS_IMAGE_SHAPE` to view it); ``y`` is int64 labels 0..9.

    >>> X, y = load_digits()
    >>> X.shape, int(X.max()), sorted(set(y.tolist())) == list(range(10))
    ((1797, 64), 16, True)
    """
    data = _load_text("digits.csv.gz", delimiter=",")
    X = np.ascontiguousarray(data[:, :-1])
    y = data[:, -1].astype(np.int64)
    return X, y
