"""partial_fit: online EM for VMFMixture, mini-batch spherical k-means."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import normalized_mutual_info_score

from sphereml import SphericalKMeans, VMFMixture, vmf
from sphereml.datasets import make_vmf_blobs


@pytest.fixture(scope="module", params=[0, 1])
def blobs(request):
    X, y = make_vmf_blobs(3000, 20, centers=5, kappa=30.0, random_state=request.param)
    return X, y, request.param


def stream(model, X, n_chunks=10, passes=3):
    for _ in range(passes):
        for chunk in np.array_split(np.arange(X.shape[0]), n_chunks):
            model.partial_fit(X[chunk])
    return model


def test_online_em_reaches_batch_em(blobs):
    X, y, seed = blobs
    full = VMFMixture(5, random_state=seed).fit(X)
    online = stream(VMFMixture(5, random_state=seed), X)
    uniform = float(vmf.log_normalizer(0.0, X.shape[1]))
    # the online fit recovers ≥ 98 % of the batch fit's log-likelihood gain over uniform
    gain = (online.score(X) - uniform) / (full.score(X) - uniform)
    assert gain >= 0.98
    assert normalized_mutual_info_score(y, online.predict(X)) >= 0.97 * (
        normalized_mutual_info_score(y, full.predict(X))
    )
    assert online.n_steps_ == 30
    np.testing.assert_allclose(online.weights_.sum(), 1.0)


def test_mini_batch_kmeans_reaches_lloyd(blobs):
    X, y, seed = blobs
    full = SphericalKMeans(5, random_state=seed).fit(X)
    online = stream(SphericalKMeans(5, random_state=seed), X)
    assert normalized_mutual_info_score(y, online.predict(X)) >= 0.97 * (
        normalized_mutual_info_score(y, full.predict(X))
    )
    np.testing.assert_allclose(np.linalg.norm(online.cluster_centers_, axis=1), 1.0)


@pytest.mark.parametrize("make", [lambda: VMFMixture(3, random_state=0),
                                  lambda: SphericalKMeans(3, random_state=0)])  # fmt: skip
def test_sparse_batches_equal_dense_batches(make):
    X, _ = make_vmf_blobs(600, 8, centers=3, kappa=20.0, random_state=3)
    X = np.where(np.abs(X) < 0.2, 0.0, X)  # some structural zeros
    X = X[np.linalg.norm(X, axis=1) > 0]
    dense, sparse = stream(make(), X, passes=1), stream(make(), sp.csr_matrix(X), passes=1)
    attribute = "means_" if hasattr(dense, "means_") else "cluster_centers_"
    np.testing.assert_allclose(getattr(sparse, attribute), getattr(dense, attribute), atol=1e-10)


def test_later_batches_must_match_the_first(blobs):
    X, _, _ = blobs
    model = VMFMixture(3, random_state=0).partial_fit(X[:100])
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:100, :5])
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        VMFMixture(3).partial_fit(X[:2])
