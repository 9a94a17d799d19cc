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


# ----------------------------------------------------- fit and partial_fit together
@pytest.fixture(scope="module")
def small():
    X, _ = make_vmf_blobs(300, 4, centers=3, kappa=20.0, random_state=0)
    return X


def _estimators():
    return [
        pytest.param(lambda **kw: VMFMixture(3, random_state=0, **kw), id="VMFMixture"),
        pytest.param(lambda **kw: SphericalKMeans(3, random_state=0, **kw), id="SphericalKMeans"),
    ]


@pytest.mark.parametrize("make", _estimators())
def test_partial_fit_after_fit_continues_from_the_fitted_model(small, make):
    X = small
    model = make().fit(X)
    fitted_score = model.score(X)
    model.partial_fit(X[:5])
    # a 5-row batch moves a model fitted on 300 rows little (it used to re-seed from the
    # batch: VMFMixture's mean log-likelihood fell from -0.70 to far below)
    assert model.score(X) >= fitted_score - 0.01 * abs(fitted_score)
    assert model.n_steps_ == 1
    with pytest.raises(ValueError, match="expecting 4 features"):
        model.partial_fit(np.ones((5, 6)))


def test_partial_fit_after_fit_equals_the_weighted_average_of_statistics(small):
    # independent check of the continuation: with a decay of 1 (plain averaging) the
    # running statistics after fit + one batch are the row-weighted mean of the fitted
    # model's statistics, π_k A_d(κ_k) μ_k, and the batch's posterior statistics
    X = small
    model = VMFMixture(3, learning_decay=1.0, random_state=0).fit(X)
    rbar = vmf.mean_resultant_length(model.kappas_, X.shape[1])
    fitted_resultants = (model.weights_ * rbar)[:, None] * model.means_
    batch = X[:30]
    resp = model.predict_proba(batch)
    batch_resultants = resp.T @ batch / len(batch)
    expected = (300 * fitted_resultants + 30 * batch_resultants) / 330
    expected_weights = (300 * model.weights_ + resp.sum(axis=0)) / 330
    model.partial_fit(batch)
    lengths = np.linalg.norm(expected, axis=1)
    np.testing.assert_allclose(model.means_, expected / lengths[:, None], atol=1e-10)
    np.testing.assert_allclose(model.weights_, expected_weights, atol=1e-10)


@pytest.mark.parametrize("make", _estimators())
def test_fit_discards_the_online_state(small, make):
    X = small
    reference = make().fit(X)
    model = make()
    for chunk in np.array_split(np.arange(300), 5):
        model.partial_fit(X[chunk][::-1])
    model.fit(X)
    model.partial_fit(X[:60])
    reference.partial_fit(X[:60])
    # the online history before fit plays no part: same as a fresh fit + the same batch
    attribute = "means_" if hasattr(model, "means_") else "cluster_centers_"
    np.testing.assert_allclose(getattr(model, attribute), getattr(reference, attribute))
    assert model.n_steps_ == 1


@pytest.mark.parametrize("make", _estimators())
def test_a_changed_number_of_components_is_refused_by_name(small, make):
    X = small
    model = make().partial_fit(X[:100])
    name = "n_components" if hasattr(model, "n_components") else "n_clusters"
    model.set_params(**{name: 5})
    with pytest.raises(ValueError, match=f"{name} is now 5"):
        model.partial_fit(X[100:200])
    assert len(model.get_feature_names_out()) == 3  # the fitted model's outputs
    if name == "n_components":
        with pytest.raises(ValueError, match="n_components is now 5"):
            model.set_params(warm_start=True).fit(X)


def test_tied_kappa_keeps_one_entry_per_fitted_component(small):
    model = VMFMixture(3, kappa="tied", random_state=0).partial_fit(small[:100])
    model.set_params(n_components=5)
    with pytest.raises(ValueError, match="n_components"):
        model.partial_fit(small[100:])
    assert model.kappas_.shape == (3,)
    assert model.predict(small).max() <= 2


@pytest.mark.parametrize("offset", [0.0, 10.0, 1e6])
def test_learning_offset_never_freezes_the_first_batch(offset):
    # the first batch points one way, the next twenty another: whatever the offset, the
    # model follows the data (a large offset used to freeze it at the first batch)
    first, _ = make_vmf_blobs(100, 4, centers=1, kappa=50.0, random_state=1)
    later, _ = make_vmf_blobs(2000, 4, centers=1, kappa=50.0, random_state=2)
    model = VMFMixture(1, learning_offset=offset).partial_fit(first)
    for chunk in np.array_split(later, 20):
        model.partial_fit(chunk)
    direction = later.mean(axis=0) / np.linalg.norm(later.mean(axis=0))
    assert model.means_[0] @ direction > 0.99


def test_online_step_sizes_follow_the_documented_schedule():
    from sphereml.mixture._em import online_step_size

    # equal batches: t-th batch, max(1/t, (t + τ)^-κ)
    for t in range(1, 30):
        expected = max(1 / t, (t + 10.0) ** -0.7)
        assert online_step_size((t - 1) * 7.0, 7.0, 10.0, 0.7) == pytest.approx(expected)
    # a larger offset averages plainly for longer; a smaller decay forgets sooner
    assert online_step_size(99.0, 1.0, 1e6, 0.7) == pytest.approx(1 / 100)
    assert online_step_size(99.0, 1.0, 0.0, 0.51) > online_step_size(99.0, 1.0, 0.0, 0.9)


# ------------------------------------------- random interleavings (state machine)
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

_DATA, _ = make_vmf_blobs(200, 4, centers=3, kappa=20.0, random_state=7)
_UNIFORM = float(vmf.log_normalizer(0.0, 4))


class _OnlineModelMachine(RuleBasedStateMachine):
    """fit, partial_fit, set_params, save/load and predict in any order: a fitted model is
    never lost silently, and every refusal names its cause."""

    make = None  # set by the subclasses
    size_name = ""

    def __init__(self):
        super().__init__()
        self.model = type(self).make()
        self.fitted_k = None  # components of the fitted model, None before any fit
        self.reference = None  # its log-likelihood gain (or -inertia) right after fit

    def _quality(self):
        if isinstance(self.model, VMFMixture):
            return self.model.score(_DATA) - _UNIFORM  # gain over the uniform density
        return self.model.score(_DATA)  # -inertia

    @rule()
    def fit(self):
        self.model.set_params(**{"warm_start": False} if hasattr(self.model, "warm_start") else {})
        self.model.fit(_DATA)
        self.fitted_k = self.model.get_params()[self.size_name]
        self.reference = self._quality()

    @rule(start=st.integers(0, 190), size=st.integers(1, 40))
    def partial_fit(self, start, size):
        batch = _DATA[start : start + size]
        k = self.model.get_params()[self.size_name]
        if self.fitted_k is not None and k != self.fitted_k:
            with pytest.raises(ValueError, match=f"{self.size_name} is now {k}"):
                self.model.partial_fit(batch)
            return
        if self.fitted_k is None and len(batch) < k:
            with pytest.raises(ValueError, match=f"n_samples >= {self.size_name}"):
                self.model.partial_fit(batch)
            return
        self.model.partial_fit(batch)
        if self.fitted_k is None:
            self.fitted_k, self.reference = k, None  # seeded from this batch

    @rule()
    def partial_fit_with_other_features(self):
        if self.fitted_k is None:
            return
        k = self.model.get_params()[self.size_name]
        cause = "features" if k == self.fitted_k else f"{self.size_name} is now"
        with pytest.raises(ValueError, match=cause):
            self.model.partial_fit(np.ones((5, 6)))

    @rule(k=st.integers(2, 4))
    def set_size(self, k):
        self.model.set_params(**{self.size_name: k})

    @rule(how=st.sampled_from(["pickle", "skops"]))
    def round_trip(self, how):
        import pickle

        before = self.model.predict(_DATA) if self.fitted_k is not None else None
        if how == "pickle":
            self.model = pickle.loads(pickle.dumps(self.model))
        else:
            import sphereml

            self.model = sphereml.persistence.loads(sphereml.persistence.dumps(self.model))
        if before is not None:
            np.testing.assert_array_equal(self.model.predict(_DATA), before)

    @rule()
    def predict(self):
        if self.fitted_k is None:
            with pytest.raises(NotFittedError):
                self.model.predict(_DATA)
            return
        labels = self.model.predict(_DATA)
        assert labels.min() >= 0 and labels.max() < self.fitted_k

    @invariant()
    def the_fitted_model_is_whole(self):
        if self.fitted_k is None:
            return
        centres = getattr(self.model, "means_", None)
        if centres is None:
            centres = self.model.cluster_centers_
        assert centres.shape == (self.fitted_k, 4)
        np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 1.0, atol=1e-9)
        assert len(self.model.get_feature_names_out()) == self.fitted_k
        if self.reference is not None:
            # batches of the same data move a fitted model, never throw it away
            quality = self._quality()
            assert quality >= self.reference - 0.5 * abs(self.reference), (quality, self.reference)


class _VMFMixtureMachine(_OnlineModelMachine):
    make = staticmethod(lambda: VMFMixture(3, random_state=0))
    size_name = "n_components"


class _SphericalKMeansMachine(_OnlineModelMachine):
    make = staticmethod(lambda: SphericalKMeans(3, random_state=0))
    size_name = "n_clusters"


_MACHINE_SETTINGS = settings(
    max_examples=25,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestVMFMixtureOnline = _VMFMixtureMachine.TestCase
TestVMFMixtureOnline.settings = _MACHINE_SETTINGS
TestSphericalKMeansOnline = _SphericalKMeansMachine.TestCase
TestSphericalKMeansOnline.settings = _MACHINE_SETTINGS
