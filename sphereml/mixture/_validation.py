"""Validation and initialisation shared by the spherical mixture and k-means estimators."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import kmeans_plusplus
from sklearn.utils.validation import validate_data

from .._sphere._ops import l2_normalize
from ..utils._sklearn_compat import _check_sample_weight

# k-means++ seeding looks at this many rows at most (a uniform subsample beyond), so that
# seeding stays O(k · 100k · d) on data sets of millions of rows.
KMEANS_PP_MAX_ROWS = 100_000
# Rows whose norm differs from 1 by more than this are rejected when normalize=False.
UNIT_NORM_TOL = 1e-3
# Sample weights beyond this are divided by their maximum (their squares would overflow).
_MAX_SAMPLE_WEIGHT = 1e100


def validate_unit_data(estimator, X, *, reset: bool, normalize: bool, zero_rows: str = "raise"):
    """Validate X (dense float or CSR) and put its rows on the unit sphere.

    One place for every input rule: 2-D, at least 2 features (S^0 has no geometry), finite,
    float32/float64 kept, no zero rows (they have no direction; ``zero_rows="uniform"``
    or ``"keep"`` leaves them as zero rows, which fits drop with :func:`drop_zero_rows`), and with
    ``normalize=False`` rows that already have unit norm.
    """
    X = validate_data(
        estimator,
        X,
        accept_sparse="csr",
        dtype=[np.float64, np.float32],
        # On new data the feature-count check against n_features_in_ says more.
        ensure_min_features=2 if reset else 1,
        reset=reset,
    )
    zero_rows = normalize_mode(zero_rows)
    if normalize:
        return l2_normalize(X, zero_rows=zero_rows)
    norms = row_norms(X)
    off = np.abs(norms - 1.0) > UNIT_NORM_TOL
    if zero_rows == "keep":
        off &= norms > 0
    bad = np.flatnonzero(off)
    if bad.size:
        raise ValueError(
            f"normalize=False but {bad.size} row(s) do not have unit norm (e.g. row {bad[0]} "
            f"has norm {norms[bad[0]]:.6g}). Pass normalize=True or L2-normalise the rows."
        )
    return X


def normalize_mode(zero_rows: str) -> str:
    """The l2_normalize mode of an estimator's ``zero_rows`` setting: ``"uniform"`` keeps
    zero rows as zeros (fits leave them out, predictions score them), ``"raise"`` refuses
    them."""
    return "keep" if zero_rows in ("uniform", "keep") else "raise"


def row_norms(X) -> np.ndarray:
    """Euclidean norm of each row of a dense array or CSR matrix, shape (n_samples,)."""
    if sp.issparse(X):
        return np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    return np.linalg.norm(X, axis=1)


def validate_sample_weight(sample_weight, X) -> np.ndarray:
    """Finite, non-negative float64 weights of positive, finite total, shape (n_samples,)."""
    sample_weight = _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    if not np.all(np.isfinite(sample_weight)):
        raise ValueError("sample_weight contains NaN or infinity.")
    total = sample_weight.sum()
    if total <= 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs positive weight.")
    if not np.isfinite(total):
        raise ValueError(
            f"sample_weight sums to infinity (largest weight {sample_weight.max():.3g}); "
            "only their ratios matter for the fit: divide them by their maximum"
        )
    largest = sample_weight.max()
    if largest > _MAX_SAMPLE_WEIGHT:
        # only ratios matter; weighted sums of squares of such weights would overflow
        sample_weight = sample_weight / largest
    return sample_weight


def drop_zero_rows(X, sample_weight: np.ndarray, *, allow_empty: bool = False):
    """The rows of ``X`` that have a direction, and their weights.

    Rows of zeros (kept by ``zero_rows="uniform"``; e.g. the tf-idf rows of empty
    documents) say nothing about any direction, so a fit leaves them out, with a
    ``UserWarning`` that counts them. With no row left, a ValueError, or ``(None, None)``
    when ``allow_empty`` (an online batch that changes nothing).
    """
    zero = row_norms(X) == 0
    if not zero.any():
        return X, sample_weight
    keep = np.flatnonzero(~zero)
    if keep.size == 0 or sample_weight[keep].sum() <= 0:
        if allow_empty:
            warnings.warn(
                f"all {X.shape[0]} rows of the batch are zeros or have zero weight; it "
                "changes nothing",
                UserWarning,
                stacklevel=3,
            )
            return None, None
        raise ValueError(
            f"all {X.shape[0]} rows are zeros (no direction) or have zero weight; there is "
            "nothing to fit"
        )
    warnings.warn(
        f"{zero.sum()} of {X.shape[0]} rows are zeros (no direction) and are left out of the "
        "fit (zero_rows='uniform')",
        UserWarning,
        stacklevel=3,
    )
    return X[keep], sample_weight[keep]


def check_online_batch(estimator, X, size_name: str, n_fitted: int | None) -> None:
    """What ``partial_fit`` refuses before looking at the batch: a dask array (its
    chunks go one by one through ``dask_ml.wrappers.Incremental``), and a component
    count ``size_name`` changed since the model was fitted (``n_fitted`` components)."""
    if n_fitted is not None and getattr(estimator, size_name) != n_fitted:
        now = getattr(estimator, size_name)
        raise ValueError(
            f"partial_fit continues the fitted model of {n_fitted} components, but "
            f"{size_name} is now {now}; call fit (with warm_start=False) to fit {now}, or "
            f"set {size_name}={n_fitted}."
        )
    if type(X).__module__.startswith("dask.array"):
        raise TypeError(
            "partial_fit takes in-memory batches (NumPy or SciPy sparse); to fit a dask "
            "array call fit, or pass its chunks one by one (dask_ml.wrappers.Incremental)"
        )


def validate_online_batch(
    estimator, X, sample_weight, size_name: str, n_fitted: int | None
) -> tuple:
    """A ``partial_fit`` batch checked (:func:`check_online_batch`), on the sphere, with
    validated weights and its zero rows dropped: ``(X, sample_weight)``, or
    ``(None, None)`` for a batch of a fitted model with nothing to learn from."""
    check_online_batch(estimator, X, size_name, n_fitted)
    first = n_fitted is None
    X = validate_unit_data(
        estimator, X, reset=first, normalize=estimator.normalize, zero_rows=estimator.zero_rows
    )
    return drop_zero_rows(X, validate_sample_weight(sample_weight, X), allow_empty=not first)


def check_n_samples(X, n_components: int, what: str = "n_components") -> None:
    if X.shape[0] < n_components:
        raise ValueError(
            f"Expected n_samples >= {what}, but got {what}={n_components} and "
            f"n_samples={X.shape[0]}."
        )


def initial_means(backend, n_components: int, init, random_state):
    """Unit-norm initial mean directions, (n_components, n_features) float64.

    init : "k-means++" (sklearn's seeding on the unit rows, where squared Euclidean distance
    is 2 - 2 cos), "random" (distinct rows drawn with probability ∝ sample_weight), or an
    array of initial directions (normalised here). ``backend`` holds the validated unit
    rows and weights; only the rows the seeding looks at are taken from it.
    """
    n_samples, n_features = backend.n_samples, backend.X.shape[1]
    sample_weight = backend.sample_weight_numpy()
    if isinstance(init, str):
        if init == "k-means++":
            rows = np.arange(n_samples)
            if n_samples > KMEANS_PP_MAX_ROWS:
                rows = np.sort(random_state.choice(n_samples, KMEANS_PP_MAX_ROWS, replace=False))
            centers, _ = kmeans_plusplus(
                backend.take_rows(rows, dense=False),
                n_components,
                sample_weight=sample_weight[rows],
                random_state=random_state,
            )
            return np.asarray(centers, dtype=np.float64)
        if init == "random":
            p = sample_weight / sample_weight.sum()
            n_positive = np.count_nonzero(p)
            rows = random_state.choice(
                n_samples, n_components, replace=n_positive < n_components, p=p
            )
            return backend.take_rows(np.asarray(rows))
        raise ValueError(f"Unknown init {init!r}.")
    try:
        means = np.asarray(init, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"init must be a string or a numeric array; got {init!r}") from error
    if means.shape != (n_components, n_features):
        raise ValueError(
            f"init array must have shape (n_components, n_features) = "
            f"({n_components}, {n_features}); got {means.shape}."
        )
    if not np.all(np.isfinite(means)):
        raise ValueError("init array contains NaN or infinity; give finite directions.")
    zero = np.flatnonzero(~np.any(means != 0, axis=1))
    if zero.size:
        raise ValueError(
            f"init array has {zero.size} row(s) of zeros (rows {zero.tolist()}), which have "
            "no direction; give every initial mean a direction."
        )
    return l2_normalize(means)
