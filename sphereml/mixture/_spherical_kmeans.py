"""Spherical k-means (Dhillon & Modha 2001): k-means with cosine similarity on unit rows."""

from __future__ import annotations

from functools import partial
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

from .._sphere._ops import l2_normalize
from ..utils._concurrency import one_fit_at_a_time
from ..utils._sklearn_compat import Interval, StrOptions, _fit_context
from ._backend import (
    NumpyBackend,
    merge_top_rows,
    one_hot,
    worst_served_rows,
)
from ._dask import is_dask_array, map_method, maps_dask_chunks, validate_dask_data
from ._dispatch import make_backend
from ._validation import (
    check_n_samples,
    drop_zero_rows,
    initial_means,
    validate_online_batch,
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
    zero_rows : {"uniform", "raise"}, default="uniform"
        What a row of zeros means (no direction; e.g. the tf-idf row of an empty
        document): ``"uniform"`` every direction alike, so ``fit`` and ``partial_fit``
        leave it out (a UserWarning counts such rows) and at prediction it gets cosine
        distance 1 to every centre in ``transform`` and label 0 in ``predict`` (every
        centre is equally near; ``labels_`` too); ``"raise"`` a ValueError naming the
        rows, in fits and at prediction.
    random_state : int, RandomState instance or None, default=None

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features), unit rows
    labels_ : ndarray of shape (n_samples,)
    inertia_ : float
        Σ_i w_i (1 - μ_(c_i)ᵀ x_i), the weighted cosine distance to the assigned centres.
    n_iter_ : int
    n_steps_ : int
        Batches seen by :meth:`partial_fit` since the model was seeded or last fitted.
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
        "zero_rows": [StrOptions({"uniform", "raise"})],
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
        zero_rows: str = "uniform",
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

    @one_fit_at_a_time
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Compute spherical k-means clustering.

        Parameters
        ----------
        X : {array-like, sparse matrix} or dask array of shape (n_samples, n_features)
            With a dask array every Lloyd pass runs per chunk on the dask workers and only
            k·(d + 1) statistics per chunk come back; ``labels_`` is then a lazy dask array.
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        if is_dask_array(X):
            X = validate_dask_data(self, X, reset=True)
            if is_dask_array(sample_weight):
                sample_weight = sample_weight.compute()
            sample_weight = validate_sample_weight(sample_weight, np.empty((X.shape[0], 0)))
        X_fit = X
        if not is_dask_array(X):
            X = validate_unit_data(
                self, X, reset=True, normalize=self.normalize, zero_rows=self.zero_rows
            )
            X_fit, sample_weight = drop_zero_rows(X, validate_sample_weight(sample_weight, X))
        check_n_samples(X_fit, self.n_clusters, "n_clusters")
        backend = make_backend(X_fit, sample_weight, None, normalize=self.normalize)
        self._fit_backend(backend, check_random_state(self.random_state))
        self.__dict__.pop("_online_rng", None)
        self.n_steps_ = 0
        if is_dask_array(X):
            self.labels_ = map_method(self, "predict", X, None, np.intp)
        elif X_fit is X:
            self.labels_ = backend.cosines(self.cluster_centers_).argmax(axis=1)
        else:  # rows left out of the fit are labelled as predict labels them
            self.labels_ = self.predict(X)
        return self

    def _fit_backend(self, backend, random_state):
        """Lloyd from ``n_init`` seedings on a backend; sets the centres, inertia, n_iter_
        and the weight each centre was assigned (where ``partial_fit`` continues)."""
        best = None
        for _ in range(self.n_init):
            centers = initial_means(backend, self.n_clusters, self.init, random_state)
            result = self._lloyd(backend, centers)
            if best is None or result[1] < best[1]:
                best = result
        assert best is not None  # n_init >= 1
        self.cluster_centers_, self.inertia_, self.n_iter_, counts = best
        self._center_weights = np.asarray(counts, dtype=np.float64)
        return self

    def _lloyd(self, backend, centers):
        """Lloyd iterations from ``centers``: (centres, inertia, iterations, weight assigned
        to each centre).

        Stops when an update leaves the centres unchanged (no label changed) or the
        inertia's relative decrease falls below ``tol``.
        """
        inertia = np.inf
        for n_iter in range(1, self.max_iter + 1):
            counts, resultants, new_inertia = backend.map_reduce(_assignment_statistics, centers)
            if inertia - new_inertia <= self.tol * max(new_inertia, 1e-300):
                return centers, new_inertia, n_iter, counts
            inertia = new_inertia
            lengths = np.linalg.norm(resultants, axis=1)
            empty = lengths <= 0
            new_centers = resultants / np.where(empty, 1.0, lengths)[:, None]
            if empty.any():  # empty clusters move to the rows worst served by the centres
                worst = backend.map_reduce(
                    worst_served_rows,
                    centers,
                    int(empty.sum()),
                    combine=partial(merge_top_rows, n=int(empty.sum())),
                )
                new_centers[empty] = l2_normalize(backend.take_rows(worst))
            if np.array_equal(new_centers, centers):
                return centers, new_inertia, n_iter, counts
            centers = new_centers
        counts, _, inertia = backend.map_reduce(_assignment_statistics, centers)
        return centers, inertia, self.max_iter, counts

    @one_fit_at_a_time
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the centres with one batch (mini-batch spherical k-means).

        Each row goes to its nearest centre; a centre moves to the normalised weighted
        mean of everything it has been assigned so far, ``μ_k ← Norm(c_k μ_k + s_k)`` with
        c_k the weight it has absorbed and s_k the batch's weighted resultant — a learning
        rate ``w_k / (c_k + w_k)`` per centre, as in scikit-learn's ``MiniBatchKMeans``.
        On an unfitted model the first call seeds the centres from its batch (``init``;
        at least ``n_clusters`` rows); after :meth:`fit` it continues from the fitted
        centres, each weighing the sample weight the fit assigned to it. Dense or CSR
        batches with the number of features of the first; ``n_clusters`` cannot change
        between calls (call :meth:`fit`, which starts over).

        Returns
        -------
        self
        """
        first = not hasattr(self, "cluster_centers_")
        n_fitted = None if first else self.cluster_centers_.shape[0]
        X, sample_weight = validate_online_batch(self, X, sample_weight, "n_clusters", n_fitted)
        if X is None:
            return self
        if first:
            check_n_samples(X, self.n_clusters, "n_clusters")
        if not hasattr(self, "_online_rng"):
            self._online_rng = check_random_state(self.random_state)
        backend = NumpyBackend(X, sample_weight)
        if first:
            self.cluster_centers_ = initial_means(
                backend, self.n_clusters, self.init, self._online_rng
            )
            self._center_weights = np.zeros(self.n_clusters)
            self.n_steps_ = 0
        if not hasattr(self, "_center_weights"):  # e.g. centres set by hand
            self._center_weights = np.zeros(self.n_clusters)
            self.n_steps_ = 0
        centers = self.cluster_centers_.copy()
        labels = backend.cosines(centers).argmax(axis=1)
        counts, resultants, inertia = _assignment_statistics(backend, 0, centers)
        moved = self._center_weights[:, None] * centers + resultants
        norms = np.linalg.norm(moved, axis=1)
        keep = norms > 0  # a centre nothing was ever assigned to stays where it is
        centers[keep] = moved[keep] / norms[keep, None]
        self.cluster_centers_ = centers
        self._center_weights = self._center_weights + counts
        self.n_steps_ += 1
        self.labels_, self.inertia_ = labels, inertia
        return self

    @property
    def _n_features_out(self) -> int:
        """Output features of ``transform``: the fitted centres."""
        return self.cluster_centers_.shape[0]

    def __getstate__(self):
        # a dask fit's labels_ are lazy; a saved model holds them computed
        state = dict(super().__getstate__())  # (object.__getstate__ gives the live dict)
        if is_dask_array(state.get("labels_")):
            state["labels_"] = np.asarray(state["labels_"].compute())
        return state

    def _unit_input(self, X):
        check_is_fitted(self)
        return validate_unit_data(
            self, X, reset=False, normalize=self.normalize, zero_rows=self.zero_rows
        )

    @maps_dask_chunks(None, np.intp)
    def predict(self, X):
        """Index of the centre of highest cosine similarity, shape (n_samples,)."""
        X = self._unit_input(X)
        return np.asarray(X @ self.cluster_centers_.T).argmax(axis=1)

    @maps_dask_chunks("n_clusters", np.float64)
    def transform(self, X):
        """Cosine distance 1 - μ_kᵀx to every centre, shape (n_samples, n_clusters)."""
        X = self._unit_input(X)
        return 1.0 - np.asarray(X @ self.cluster_centers_.T, dtype=np.float64)

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the weighted cosine inertia of X (higher is better; computed, also
        for a dask array)."""
        distances = self.transform(X).min(axis=1)
        if is_dask_array(distances):
            distances = distances.compute()
        return -float(validate_sample_weight(sample_weight, distances[:, None]) @ distances)


def _assignment_statistics(backend, offset, centers):
    """Block function: counts, resultants and weighted inertia Σ w (1 - max cos) of the
    partition by nearest centre."""
    cosines = backend.cosines(centers)
    labels = cosines.argmax(axis=1)
    best_cos = cosines[np.arange(len(labels)), labels]
    counts, resultants = backend.sufficient_statistics(one_hot(labels, centers.shape[0]))
    return counts, resultants, backend.weighted_sum(1.0 - best_cos)
