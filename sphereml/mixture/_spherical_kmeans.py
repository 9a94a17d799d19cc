"""Spherical k-means (Dhillon & Modha 2001): k-means with cosine similarity on unit rows."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..sphere._ops import l2_normalize
from ..utils._sklearn_compat import Interval, StrOptions, _fit_context
from ._backend import NumpyBackend, one_hot
from ._base import (
    check_n_samples,
    initial_means,
    normalize_mode,
    validate_sample_weight,
    validate_unit_data,
)


class SphericalKMeans(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator
):
    """Spherical k-means: clusters of directions, centres are unit vectors.

    Lloyd iterations that assign each (L2-normalised) row to the centre of highest cosine
    similarity and set each centre to the normalised sum of its rows, which maximises
    Σ_i w_i μ_(c_i)ᵀ x_i. It is the κ → ∞, equal-weight limit of
    :class:`VMFMixture` with hard posteriors. Sparse CSR input stays sparse.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"k-means++", "random"} or array of shape (n_clusters, n_features), \
            default="k-means++"
        As in :class:`VMFMixture`.
    n_init : int, default=1
        Runs with different seeds; the one with the lowest inertia is kept.
    max_iter : int, default=300
    tol : float, default=1e-6
        Stop when the relative decrease of the inertia falls below ``tol`` (or no label
        changes).
    normalize : bool, default=True
        L2-normalise rows on entry; with False rows must already be unit (checked).
    zero_rows : {"raise", "uniform"}, default="raise"
        What a row of zeros (no direction; e.g. the tf-idf row of an empty document) gets
        at prediction time: ``"raise"`` a ValueError naming the rows; ``"uniform"``
        cosine distance 1 to every centre in ``transform`` and label 0 in ``predict``
        (every centre is equally near). ``fit`` always refuses zero rows.
    random_state : int, RandomState instance or None, default=None

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features), unit rows
    labels_ : ndarray of shape (n_samples,)
    inertia_ : float
        Σ_i w_i (1 - μ_(c_i)ᵀ x_i), the weighted cosine distance to the assigned centres.
    n_iter_ : int
    n_steps_ : int
        Batches seen by :meth:`partial_fit` (only after it is used).
    n_features_in_ : int
    feature_names_in_ : ndarray of str, only when X has string feature names

    Examples
    --------
    >>> from sphereml import SphericalKMeans
    >>> from sphereml.datasets import make_vmf_blobs
    >>> X, y = make_vmf_blobs(n_samples=300, n_features=4, centers=3, kappa=80, random_state=0)
    >>> SphericalKMeans(n_clusters=3, random_state=0).fit(X).cluster_centers_.shape
    (3, 4)
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"k-means++", "random"}), "array-like"],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "normalize": ["boolean"],
        "zero_rows": [StrOptions({"raise", "uniform"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init="k-means++",
        n_init: int = 1,
        max_iter: int = 300,
        tol: float = 1e-6,
        normalize: bool = True,
        zero_rows: str = "raise",
        random_state=None,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.normalize = normalize
        self.zero_rows = zero_rows
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Compute spherical k-means clustering.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        X = validate_unit_data(self, X, reset=True, normalize=self.normalize)
        check_n_samples(X, self.n_clusters, "n_clusters")
        sample_weight = validate_sample_weight(sample_weight, X)
        random_state = check_random_state(self.random_state)
        backend = NumpyBackend(X, sample_weight)
        best = None
        for _ in range(self.n_init):
            centers = initial_means(X, self.n_clusters, self.init, sample_weight, random_state)
            result = self._lloyd(backend, centers)
            if best is None or result[1] < best[1]:
                best = result
        assert best is not None  # n_init >= 1
        self.cluster_centers_, self.inertia_, self.labels_, self.n_iter_ = best
        self._n_features_out = self.n_clusters
        return self

    def _lloyd(self, backend, centers):
        labels, inertia = None, np.inf
        for n_iter in range(1, self.max_iter + 1):
            new_labels, best_cos, new_inertia = _assign(backend, centers)
            if labels is not None and (
                np.array_equal(new_labels, labels)
                or inertia - new_inertia <= self.tol * max(new_inertia, 1e-300)
            ):
                return centers, new_inertia, new_labels, n_iter
            labels, inertia = new_labels, new_inertia
            _, resultants = backend.sufficient_statistics(one_hot(labels, self.n_clusters))
            lengths = np.linalg.norm(resultants, axis=1)
            empty = lengths <= 0
            centers = resultants / np.where(empty, 1.0, lengths)[:, None]
            # Empty clusters move to the rows worst served by the current centres.
            worst = np.argsort(best_cos)
            for slot, k in enumerate(np.flatnonzero(empty)):
                centers[k] = l2_normalize(backend.row(int(worst[slot]))[None, :])[0]
        labels, _, inertia = _assign(backend, centers)
        return centers, inertia, labels, self.max_iter

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the centres with one batch (mini-batch spherical k-means).

        Each row goes to its nearest centre; a centre moves to the normalised weighted
        mean of everything it has been assigned so far, ``μ_k ← Norm(c_k μ_k + s_k)`` with
        c_k the weight it has absorbed and s_k the batch's weighted resultant — a learning
        rate ``w_k / (c_k + w_k)`` per centre, as in scikit-learn's ``MiniBatchKMeans``.
        The first call seeds the centres from its batch (``init``; at least
        ``n_clusters`` rows). Dense or CSR batches.

        Returns
        -------
        self
        """
        first = not hasattr(self, "_center_weights")
        X = validate_unit_data(self, X, reset=first, normalize=self.normalize)
        sample_weight = validate_sample_weight(sample_weight, X)
        if first:
            check_n_samples(X, self.n_clusters, "n_clusters")
            self._online_rng = check_random_state(self.random_state)
            self.cluster_centers_ = initial_means(
                X, self.n_clusters, self.init, sample_weight, self._online_rng
            )
            self._center_weights = np.zeros(self.n_clusters)
            self.n_steps_ = 0
        backend = NumpyBackend(X, sample_weight)
        labels, _, inertia = _assign(backend, self.cluster_centers_)
        counts, resultants = backend.sufficient_statistics(one_hot(labels, self.n_clusters))
        moved = self._center_weights[:, None] * self.cluster_centers_ + resultants
        norms = np.linalg.norm(moved, axis=1)
        keep = norms > 0  # a centre nothing was ever assigned to stays where it is
        self.cluster_centers_[keep] = moved[keep] / norms[keep, None]
        self._center_weights += counts
        self.n_steps_ += 1
        self.labels_, self.inertia_ = labels, inertia
        self._n_features_out = self.n_clusters
        return self

    def _unit_input(self, X):
        check_is_fitted(self)
        return validate_unit_data(
            self, X, reset=False, normalize=self.normalize, zero_rows=normalize_mode(self.zero_rows)
        )

    def predict(self, X):
        """Index of the centre of highest cosine similarity, shape (n_samples,)."""
        X = self._unit_input(X)
        return np.asarray(X @ self.cluster_centers_.T).argmax(axis=1)

    def transform(self, X):
        """Cosine distance 1 - μ_kᵀx to every centre, shape (n_samples, n_clusters)."""
        X = self._unit_input(X)
        return 1.0 - np.asarray(X @ self.cluster_centers_.T, dtype=np.float64)

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the weighted cosine inertia of X (higher is better)."""
        distances = self.transform(X).min(axis=1)
        return -float(validate_sample_weight(sample_weight, distances[:, None]) @ distances)


def _assign(backend, centers):
    """Nearest centre by cosine: labels, their cosines, and the weighted inertia."""
    cosines = backend.cosines(centers)
    labels = cosines.argmax(axis=1)
    best_cos = cosines[np.arange(len(labels)), labels]
    return labels, best_cos, float(backend.sample_weight @ (1.0 - best_cos))
