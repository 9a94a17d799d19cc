"""Scaling out on existing engines: GridSearchCV under joblib's Dask backend, dask-ml
ParallelPostFit over a dask array. Small on purpose (CI has two cores)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
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


# ------------------------------------------------------------------ out-of-core mixtures
@pytest.fixture(scope="module")
def directions():
    data, labels = make_vmf_blobs(2000, 12, centers=4, kappa=25.0, random_state=1)
    # rows of varied length, so the per-chunk normalisation is exercised
    data = data * np.random.default_rng(1).uniform(0.5, 3.0, size=(len(data), 1))
    return data, labels


def test_dask_fit_on_a_cluster_equals_the_in_memory_fit(client, directions):
    da = pytest.importorskip("dask.array")
    data, _ = directions
    init = data[[0, 500, 1000, 1500]]
    chunked = da.from_array(data, chunks=(300, 6))  # uneven row chunks, split columns
    for posterior_type in ("soft", "hard"):
        memory = VMFMixture(4, init=init, posterior_type=posterior_type).fit(data)
        remote = VMFMixture(4, init=init, posterior_type=posterior_type).fit(chunked)
        assert remote.n_iter_ == memory.n_iter_
        assert abs(remote.lower_bound_ - memory.lower_bound_) <= 1e-8 * abs(memory.lower_bound_)
        np.testing.assert_allclose(remote.means_, memory.means_, atol=1e-10)
        np.testing.assert_allclose(remote.kappas_, memory.kappas_, rtol=1e-8)
    # default k-means++ seeding takes the same rows from the chunks as from memory
    memory = SphericalKMeans(4, random_state=0).fit(data)
    remote = SphericalKMeans(4, random_state=0).fit(chunked)
    np.testing.assert_allclose(remote.cluster_centers_, memory.cluster_centers_, atol=1e-10)
    assert remote.inertia_ == pytest.approx(memory.inertia_, rel=1e-10)
    np.testing.assert_array_equal(remote.labels_.compute(), memory.labels_)


def test_dask_fit_on_sparse_chunks_and_lazy_predictions(client, directions):
    da = pytest.importorskip("dask.array")
    sparse = pytest.importorskip("sparse")
    data, _ = directions
    data = np.where(np.abs(data) < 0.3, 0.0, data)
    data = data[np.linalg.norm(data, axis=1) > 0]
    csr = sp.csr_matrix(data)
    memory = VMFMixture(4, random_state=0).fit(csr)
    for chunked in (
        da.from_array(csr, chunks=(400, -1), asarray=False),  # SciPy CSR chunks
        da.from_array(sparse.COO.from_numpy(data), chunks=(400, -1), asarray=False),
    ):
        remote = VMFMixture(4, random_state=0).fit(chunked)
        assert remote.lower_bound_ == pytest.approx(memory.lower_bound_, rel=1e-8)
        labels = remote.predict(chunked)
        assert isinstance(labels, da.Array)
        np.testing.assert_array_equal(labels.compute(), memory.predict(csr))
        np.testing.assert_allclose(
            remote.predict_proba(chunked).compute(), memory.predict_proba(csr), atol=1e-10
        )
        np.testing.assert_allclose(
            remote.score_samples(chunked).compute(), memory.score_samples(csr)
        )
        assert remote.score(chunked) == pytest.approx(memory.score(csr))


def test_dask_fit_validates_on_the_workers(client, directions):
    da = pytest.importorskip("dask.array")
    data, _ = directions
    bad = data.copy()
    bad[1234] = 0.0
    with pytest.raises(ValueError, match=r"zero.*chunk at row 1200"):
        VMFMixture(2, random_state=0).fit(da.from_array(bad, chunks=(300, -1)))
    bad[1234] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        SphericalKMeans(2, random_state=0).fit(da.from_array(bad, chunks=(300, -1)))
    with pytest.raises(ValueError, match="device= is not supported with a dask array"):
        VMFMixture(2, device="cpu").fit(da.from_array(data, chunks=(300, -1)))
    model = VMFMixture(2, random_state=0).fit(da.from_array(data, chunks=(300, -1)))
    with pytest.raises(ValueError, match="12 features"):
        model.predict(da.from_array(data[:, :5], chunks=(300, -1)))
    unknown = da.from_array(data, chunks=(300, -1))
    unknown = unknown[unknown[:, 0] > -2]  # boolean indexing forgets the chunk sizes
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        VMFMixture(2).fit(unknown)


@pytest.mark.parametrize("make", [lambda: VMFMixture(4, random_state=0),
                                  lambda: SphericalKMeans(4, random_state=0)])  # fmt: skip
def test_dask_ml_incremental_streams_the_chunks_through_partial_fit(client, directions, make):
    da = pytest.importorskip("dask.array")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    data, labels = directions
    chunked = da.from_array(data, chunks=(200, -1))
    incremental = wrappers.Incremental(make(), shuffle_blocks=False).fit(chunked)
    assert incremental.estimator_.n_steps_ == 10
    direct = make()
    for block in np.array_split(data, 10):
        direct.partial_fit(block)
    # the fitted estimator predicts over the dask array itself, chunk by chunk
    np.testing.assert_array_equal(
        incremental.estimator_.predict(chunked).compute(), direct.predict(data)
    )


def test_dask_shapes_are_refused_before_any_computation(directions):
    da = pytest.importorskip("dask.array")
    data, _ = directions
    chunked = da.from_array(data, chunks=(300, -1))
    keep = da.from_array(np.arange(12) % 2 == 0, chunks=-1)
    for make in (lambda: VMFMixture(2), lambda: SphericalKMeans(2)):
        model = make()
        with pytest.raises(ValueError, match=r"unknown column chunk sizes.*compute_chunk_sizes"):
            model.fit(chunked[:, keep])  # the column count is unknown until computed
        assert not hasattr(model, "n_features_in_")
        with pytest.raises(ValueError, match="0 sample"):
            model.fit(chunked[:0])
    with pytest.raises(TypeError, match="partial_fit takes in-memory batches"):
        VMFMixture(2).partial_fit(chunked)


def test_a_dask_fitted_model_saves_with_skops(client, directions, tmp_path):
    da = pytest.importorskip("dask.array")
    pytest.importorskip("skops")
    import sphereml

    data, _ = directions
    model = SphericalKMeans(3, random_state=0).fit(da.from_array(data, chunks=(500, -1)))
    sphereml.save(model, tmp_path / "kmeans.skops")
    loaded = sphereml.load(tmp_path / "kmeans.skops")
    np.testing.assert_array_equal(loaded.labels_, model.labels_.compute())
    np.testing.assert_array_equal(loaded.predict(data), model.predict(data))
