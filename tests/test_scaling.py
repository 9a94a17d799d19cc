"""Scaling out on existing engines: GridSearchCV under joblib's Dask backend, dask-ml
ParallelPostFit over a dask array. Small on purpose (CI has two cores)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from sphereml import (
    NDMClassifier,
    NGPTTextClassifier,
    SphericalClassifier,
    SphericalKMeans,
    VMFMixture,
)
from sphereml.datasets import make_vmf_blobs

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")

X, Y = make_vmf_blobs(120, 4, centers=3, kappa=20.0, random_state=0)
TEXTS = ["good movie", "bad movie", "fine film", "awful film", "great plot", "dull plot"] * 6
YT = [1, 0, 1, 0, 1, 0] * 6

SEARCHES = {
    "VMFMixture": (VMFMixture(random_state=0), {"n_components": [2, 3]}, X, None),
    "SphericalKMeans": (SphericalKMeans(random_state=0), {"n_clusters": [2, 3]}, X, None),
    "SphericalClassifier": (
        SphericalClassifier(max_epochs=5, random_state=0),
        {"kappa_init": [1.0, 10.0]},
        X,
        Y,
    ),
    "NDMClassifier": (
        NDMClassifier(latent_dim=2, max_epochs=5, random_state=0),
        {"lr": [0.01, 0.1]},
        X,
        Y,
    ),
    "NGPTTextClassifier": (
        NGPTTextClassifier(
            d_model=8, n_layers=1, n_heads=2, max_length=6, max_epochs=2, random_state=0
        ),  # fmt: skip
        {"lr": [0.002, 0.02]},
        np.array(TEXTS, dtype=object),
        YT,
    ),
}


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.parametrize("name", list(SEARCHES))
def test_grid_search_on_a_dask_cluster_equals_the_local_one(client, name):
    estimator, grid, data, target = SEARCHES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        local = GridSearchCV(estimator, grid, cv=2, n_jobs=1).fit(data, target)
        with joblib.parallel_backend("dask"):
            remote = GridSearchCV(estimator, grid, cv=2, n_jobs=2).fit(data, target)
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"], rtol=1e-6
    )


def test_parallel_post_fit_predicts_over_a_dask_array(client):
    dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")
    da = pytest.importorskip("dask.array")
    # ParallelPostFit infers output types by predicting on a row of zeros, which has no
    # direction: zero_rows="uniform" answers it with the class priors instead of raising
    clf = SphericalClassifier(max_epochs=5, zero_rows="uniform", random_state=0).fit(X, Y)
    wrapped = dask_ml_wrappers.ParallelPostFit(clf)
    chunks = da.from_array(X, chunks=(30, X.shape[1]))
    np.testing.assert_array_equal(wrapped.predict(chunks).compute(), clf.predict(X))
    np.testing.assert_allclose(wrapped.predict_proba(chunks).compute(), clf.predict_proba(X))


def test_grid_search_under_rays_joblib_backend():
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    estimator, grid, data, target = SEARCHES["SphericalClassifier"]
    local = GridSearchCV(estimator, grid, cv=2, n_jobs=1).fit(data, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        register_ray()
        with joblib.parallel_backend("ray"):
            remote = GridSearchCV(estimator, grid, cv=2, n_jobs=2).fit(data, target)
    finally:
        ray.shutdown()
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"], rtol=1e-6
    )
