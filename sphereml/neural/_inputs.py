"""Checks of the raw inputs of the neural estimators that NumPy reports badly: values that
float32 training would lose, and labels that are missing or of mixed types."""

from __future__ import annotations

import warnings
from numbers import Real

import numpy as np
from sklearn.exceptions import DataConversionWarning

__all__ = ["FLOAT32_MAX", "check_object_labels", "num_samples", "warn_feature_scale"]

FLOAT32_MAX = float(np.finfo(np.float32).max)
# features above this magnitude get a scaling hint (the networks train best near 1)
_LARGE_FEATURE = 1e4


def warn_feature_scale(X: np.ndarray) -> None:
    lost = (X != 0) & (X.astype(np.float32) == 0)
    if lost.any():
        warnings.warn(
            f"{int(lost.any(axis=0).sum())} feature(s) have non-zero values below float32's "
            f"smallest number ({np.finfo(np.float32).smallest_subnormal:.3g}) that training "
            "rounds to zero; rescale the features (e.g. StandardScaler)",
            DataConversionWarning,
            stacklevel=4,
        )
    largest = float(np.max(np.abs(X)))
    if largest > _LARGE_FEATURE:
        warnings.warn(
            f"features reach magnitude {largest:.3g}; the network trains best on features "
            "of order 1: scale them first (e.g. make_pipeline(StandardScaler(), ...))",
            UserWarning,
            stacklevel=4,
        )


def check_object_labels(y: np.ndarray) -> None:
    """Missing and mixed-type labels, which ``np.unique`` reports only as a comparison error."""
    missing = [i for i, v in enumerate(y) if v is None or (isinstance(v, float) and v != v)]
    if missing:
        raise ValueError(
            f"y has {len(missing)} missing label(s) (None or NaN), e.g. at index {missing[0]}; "
            "drop those samples or give them a class"
        )
    kinds = {"str" if isinstance(v, str) else "number" if isinstance(v, Real) else
             type(v).__name__ for v in y}  # fmt: skip
    if len(kinds) > 1:
        raise TypeError(
            f"y mixes label types ({', '.join(sorted(kinds))}); use labels of one type, "
            "e.g. all strings"
        )


def num_samples(X) -> int:
    """Rows of an array, sparse matrix, list of texts or other array-like."""
    if hasattr(X, "shape") and len(X.shape):
        return X.shape[0]
    if hasattr(X, "__len__"):
        return len(X)
    array = np.asarray(X)  # array-likes with __array__ only (e.g. sklearn's _NotAnArray)
    return array.shape[0] if array.ndim else 1
