"""VMFMixture and SphericalKMeans: sklearn conformance, statistics and bad input."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from property_inputs import ESTIMATOR_SETTINGS, clear_error_or, data
from scipy.optimize import linear_sum_assignment
from scipy.stats import vonmises_fisher
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from sphereml import (
    SphericalClassifier,
    SphericalKMeans,
    VMFMixture,
    vmf,
)
from sphereml.datasets import make_vmf_blobs

# k-means++ draws its seeds from a weighted sample differently than from a repeated one,
# so the fits start from different points. With a fixed init the equivalence holds
# exactly and is tested in test_sample_weight_equals_repetition.
_SEEDING = (
    "randomised k-means++ seeding consumes randomness differently for weights than for "
    "repeated rows; exact weight/repeat equivalence with a fixed init is tested in "
    "test_sample_weight_equals_repetition"
)
_COMMON_XFAIL = {
    "check_sample_weight_equivalence_on_dense_data": _SEEDING,
    "check_sample_weight_equivalence_on_sparse_data": _SEEDING,
}
# sklearn's sparse-container check reads classifier tags from any estimator that has
# predict_proba; a mixture is not a classifier and has none (AttributeError on None).
# Sparse fits and predictions are tested in test_sparse_equals_dense_and_float32_close.
_CLASSIFIER_TAGS = (
    "the check reads classifier_tags.multi_class of every estimator with predict_proba; a "
    "density estimator has no classifier tags"
)
EXPECTED_FAILED_CHECKS = {
    "VMFMixture": {
        **_COMMON_XFAIL,
        "check_estimator_sparse_array": _CLASSIFIER_TAGS,
        "check_estimator_sparse_matrix": _CLASSIFIER_TAGS,
    },
    "SphericalKMeans": dict(_COMMON_XFAIL),
}


@parametrize_with_checks(
    [VMFMixture(n_components=2, random_state=0), SphericalKMeans(n_clusters=3, random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[type(est).__name__],
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def angle_deg(a, b):
    return np.degrees(
        2 * np.arctan2(np.linalg.norm(a - b, axis=-1), np.linalg.norm(a + b, axis=-1))
    )


@pytest.fixture(scope="module")
def recovery_data():
    """5 components, d=50, κ in [20, 400], unequal weights, 10k points, drawn by SciPy."""
    rng = np.random.default_rng(1)
    d, k, n = 50, 5, 10_000
    mus = rng.standard_normal((k, d))
    mus /= np.linalg.norm(mus, axis=1, keepdims=True)
    kappas = np.array([20.0, 50.0, 100.0, 200.0, 400.0])
    weights = np.array([0.1, 0.15, 0.2, 0.25, 0.3])
    counts = rng.multinomial(n, weights)
    X = np.vstack(
        [vonmises_fisher(mus[j], kappas[j]).rvs(counts[j], random_state=rng) for j in range(k)]
    )
    y = np.repeat(np.arange(k), counts)
    return X, y, mus, kappas, weights


def test_parameter_recovery_against_oracle(recovery_data):
    X, y, mus, kappas, weights = recovery_data
    d, k = X.shape[1], len(kappas)
    # The oracle knows the labels: sample mean direction and the exact κ MLE per class.
    resultants = np.array([X[y == j].sum(axis=0) for j in range(k)])
    counts = np.bincount(y)
    lengths = np.linalg.norm(resultants, axis=1)
    oracle_angle = angle_deg(resultants / lengths[:, None], mus)
    oracle_kappa_err = np.abs(vmf.estimate_kappa(lengths / counts, d) / kappas - 1)

    model = VMFMixture(n_components=k, n_init=3, random_state=0).fit(X)
    assert model.converged_
    _, order = linear_sum_assignment(-mus @ model.means_.T)
    fit_angle = angle_deg(model.means_[order], mus)
    fit_kappa_err = np.abs(model.kappas_[order] / kappas - 1)
    assert np.all(fit_angle <= oracle_angle + 0.5), (fit_angle, oracle_angle)
    assert np.all(fit_kappa_err <= oracle_kappa_err + 0.03), (fit_kappa_err, oracle_kappa_err)
    np.testing.assert_allclose(model.weights_[order], weights, atol=0.02)
    assert model.weights_.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(np.linalg.norm(model.means_, axis=1), 1.0)


def test_score_samples_is_the_mixture_density(recovery_data):
    X = recovery_data[0][:200]
    model = VMFMixture(n_components=3, random_state=0).fit(recovery_data[0])
    ref = np.log(
        sum(
            w * vonmises_fisher(m, k).pdf(X)
            for w, m, k in zip(model.weights_, model.means_, model.kappas_, strict=True)
        )
    )
    np.testing.assert_allclose(model.score_samples(X), ref, rtol=1e-9)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # predict is the MAP with weights and κ, not the nearest mean.
    joint = (
        np.log(model.weights_)
        + vmf.log_normalizer(model.kappas_, X.shape[1])
        + model.kappas_ * (X @ model.means_.T)
    )
    np.testing.assert_array_equal(model.predict(X), joint.argmax(axis=1))
    np.testing.assert_array_equal(model.predict(X), proba.argmax(axis=1))
    assert model.score(X) == pytest.approx(model.score_samples(X).mean())


def test_map_differs_from_nearest_mean_when_kappas_differ():
    # A broad and a sharp component: points between them belong to the broad one.
    means = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    X = np.vstack(
        [
            vmf.sample_vmf(means[0], 2.0, 500, random_state=0),
            vmf.sample_vmf(means[1], 500.0, 500, random_state=1),
        ]
    )
    model = VMFMixture(2, init=means, random_state=0).fit(X)
    x = np.array([[0.6, 0.8, 0.0]])  # closer (in angle) to the sharp mean
    sharp = np.argmax(model.kappas_)
    assert (x @ model.means_.T).argmax() == sharp
    assert model.predict(x)[0] != sharp


@pytest.mark.parametrize("posterior_type", ["soft", "hard", "stochastic"])
@pytest.mark.parametrize("kappa", ["free", "tied", 30.0])
def test_posterior_and_kappa_options(posterior_type, kappa):
    X, y = make_vmf_blobs(600, 5, centers=3, kappa=60.0, random_state=0)
    model = VMFMixture(3, posterior_type=posterior_type, kappa=kappa, n_init=2, random_state=0)
    labels = model.fit_predict(X)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(y, labels) > 0.9
    if kappa == "tied":
        assert np.ptp(model.kappas_) == 0
    if kappa == 30.0:
        np.testing.assert_array_equal(model.kappas_, 30.0)
    assert np.isfinite(model.lower_bound_)


def test_fit_predict_equals_predict_and_bic_aic():
    X, _ = make_vmf_blobs(500, 4, centers=3, kappa=40.0, random_state=2)
    model = VMFMixture(3, random_state=0)
    np.testing.assert_array_equal(model.fit_predict(X), model.predict(X))
    n_params = 3 * (4 - 1) + 3 + 2
    assert model.bic(X) == pytest.approx(-2 * model.score(X) * 500 + n_params * np.log(500))
    assert model.aic(X) == pytest.approx(-2 * model.score(X) * 500 + 2 * n_params)
    # BIC prefers the true number of components over too few.
    assert VMFMixture(3, random_state=0).fit(X).bic(X) < VMFMixture(1).fit(X).bic(X)


def test_sample_weight_equals_repetition():
    X, _ = make_vmf_blobs(300, 4, centers=2, kappa=20.0, random_state=3)
    w = np.random.default_rng(0).integers(0, 3, size=len(X))
    init = X[[0, 1]]
    weighted = VMFMixture(2, init=init, tol=0, max_iter=30).fit(X, sample_weight=w)
    repeated = VMFMixture(2, init=init, tol=0, max_iter=30).fit(np.repeat(X, w, axis=0))
    # Equal up to the rounding of different summation orders, over 30 EM iterations.
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(weighted.kappas_, repeated.kappas_, rtol=1e-7)
    np.testing.assert_allclose(weighted.weights_, repeated.weights_, rtol=1e-8)


def test_sparse_equals_dense_and_float32_close():
    rng = np.random.default_rng(0)
    dense = rng.random((400, 60)) * (rng.random((400, 60)) < 0.1)
    dense[:, 0] += 0.01  # no zero rows
    init = dense[:4]
    a = VMFMixture(4, init=init, random_state=0).fit(dense)
    b = VMFMixture(4, init=init, random_state=0).fit(sp.csr_matrix(dense))
    np.testing.assert_allclose(a.means_, b.means_, atol=1e-10)
    np.testing.assert_allclose(a.kappas_, b.kappas_, rtol=1e-8)
    c = VMFMixture(4, init=init, random_state=0).fit(dense.astype(np.float32))
    np.testing.assert_allclose(a.kappas_, c.kappas_, rtol=1e-3)
    np.testing.assert_array_equal(a.predict(dense), b.predict(sp.csr_matrix(dense)))
    km_dense = SphericalKMeans(4, init=init).fit(dense)
    km_sparse = SphericalKMeans(4, init=init).fit(sp.csr_matrix(dense))
    np.testing.assert_allclose(km_dense.cluster_centers_, km_sparse.cluster_centers_, atol=1e-10)
    assert km_dense.inertia_ == pytest.approx(km_sparse.inertia_)


def test_torch_device_matches_numpy_on_cpu():
    pytest.importorskip("torch")
    X, _ = make_vmf_blobs(800, 16, centers=4, kappa=50.0, random_state=4)
    for posterior_type in ["soft", "hard"]:
        a = VMFMixture(4, posterior_type=posterior_type, random_state=0).fit(X)
        b = VMFMixture(4, posterior_type=posterior_type, random_state=0, device="cpu").fit(X)
        np.testing.assert_allclose(a.means_, b.means_, atol=1e-9)
        np.testing.assert_allclose(a.kappas_, b.kappas_, rtol=1e-9)
        assert a.n_iter_ == b.n_iter_
        assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=1e-12)
    c = VMFMixture(4, random_state=0, device="cpu").fit(X.astype(np.float32))
    np.testing.assert_allclose(a.kappas_, c.kappas_, rtol=1e-3)
    with pytest.raises(TypeError, match="Sparse input"):
        VMFMixture(2, device="cpu").fit(sp.csr_matrix(X))


def test_extreme_kappa_and_dimension_give_finite_likelihoods():
    for d, kappa in [(10**5, 1e5), (3, 1e5), (10**5, 10.0)]:
        mu = np.zeros(d)
        mu[0] = 1.0
        X = vmf.sample_vmf(mu, kappa, 50, random_state=0)
        model = VMFMixture(1, random_state=0).fit(X)
        assert np.all(np.isfinite(model.score_samples(X)))
        # One component: the fit is the closed-form MLE of the sample (with 50 points in
        # d = 1e5 that MLE is far above κ = 10, a property of the data, not of the fit).
        rbar = np.linalg.norm(X.sum(axis=0)) / len(X)
        assert model.kappas_[0] == pytest.approx(vmf.estimate_kappa(rbar, d), rel=1e-8)
    # Identical points: r̄ = 1 has no finite MLE; κ is capped and everything stays finite.
    X = np.tile([[0.0, 1.0, 0.0]], (10, 1))
    model = VMFMixture(1).fit(X)
    assert np.isfinite(model.kappas_).all() and np.isfinite(model.score(X))


def test_collapsed_component_is_reseeded():
    X, _ = make_vmf_blobs(400, 3, centers=2, kappa=100.0, random_state=5)
    # Two initial means on the same point: one of them gets no data.
    init = np.vstack([X[0], X[0], -X[0]])
    model = VMFMixture(3, init=init, posterior_type="hard", random_state=0).fit(X)
    assert np.all(model.weights_ > 1e-4)
    assert len(np.unique(model.predict(X))) >= 2


def test_warm_start_continues_and_verbose_prints(capsys):
    X, _ = make_vmf_blobs(300, 4, centers=2, kappa=30.0, random_state=6)
    model = VMFMixture(2, max_iter=2, warm_start=True, random_state=0, verbose=1)
    with pytest.warns(ConvergenceWarning):
        model.fit(X)
    first = model.lower_bound_
    model.set_params(max_iter=200)
    model.fit(X)
    assert model.lower_bound_ >= first - 1e-9
    assert "log-likelihood" in capsys.readouterr().out


def test_sample_draws_from_the_fitted_model():
    X, _ = make_vmf_blobs(
        2000, 5, centers=2, kappa=[20.0, 200.0], weights=[0.3, 0.7], random_state=7
    )
    model = VMFMixture(2, random_state=0).fit(X)
    Xs, ys = model.sample(5000)
    assert Xs.shape == (5000, 5) and ys.shape == (5000,)
    np.testing.assert_allclose(np.bincount(ys) / 5000, model.weights_, atol=0.03)
    refit = VMFMixture(2, random_state=0).fit(Xs)
    np.testing.assert_allclose(np.sort(refit.kappas_), np.sort(model.kappas_), rtol=0.15)


def test_init_options_and_spherical_kmeans_basics():
    X, y = make_vmf_blobs(600, 6, centers=3, kappa=80.0, random_state=8)
    for init in ["k-means++", "random", "spherical-k-means"]:
        assert VMFMixture(3, init=init, n_init=2, random_state=0).fit(X).converged_
    km = SphericalKMeans(3, n_init=3, random_state=0).fit(X)
    np.testing.assert_allclose(np.linalg.norm(km.cluster_centers_, axis=1), 1.0)
    dist = km.transform(X)
    np.testing.assert_allclose(dist, 1 - X @ km.cluster_centers_.T, atol=1e-12)
    np.testing.assert_array_equal(km.predict(X), dist.argmin(axis=1))
    assert km.inertia_ == pytest.approx(dist.min(axis=1).sum())
    assert km.score(X) == pytest.approx(-km.inertia_)


def test_clone_and_pickle_round_trip():
    X, _ = make_vmf_blobs(300, 4, centers=2, kappa=30.0, random_state=9)
    for est in [VMFMixture(2, random_state=0), SphericalKMeans(2, random_state=0)]:
        fitted = est.fit(X)
        again = pickle.loads(pickle.dumps(fitted))
        np.testing.assert_array_equal(fitted.predict(X), again.predict(X))
        assert clone(est).get_params() == est.get_params()


# ------------------------------------------------------------------------- bad input
BAD_INPUTS = [
    (np.array([[1.0, np.nan], [1.0, 2.0], [0.5, 0.1]]), ValueError, "NaN"),
    (np.array([[1.0, np.inf], [1.0, 2.0], [0.5, 0.1]]), ValueError, "infinity"),
    (np.array([1.0, 2.0, 3.0]), ValueError, "2D array"),
    (np.array([[1.0], [2.0], [3.0]]), ValueError, r"1 feature\(s\)"),
    (np.array([[1.0, 2.0]]), ValueError, "n_samples >= "),
    (np.array([["a", "b"], ["c", "d"], ["e", "f"]]), ValueError, "convert"),
]


@pytest.mark.parametrize("Estimator", [VMFMixture, SphericalKMeans])
@pytest.mark.parametrize("X,error,match", BAD_INPUTS)
def test_bad_input_raises_clear_error(Estimator, X, error, match):
    with pytest.raises(error, match=match):
        Estimator(2).fit(X)


@pytest.mark.parametrize("Estimator", [VMFMixture, SphericalKMeans])
def test_wrong_feature_count_and_unfitted(Estimator):
    X, _ = make_vmf_blobs(100, 4, centers=2, random_state=0)

    with pytest.raises(NotFittedError):
        Estimator(2).predict(X)
    model = Estimator(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="expecting 4 features"):
        model.predict(X[:, :3])
    with pytest.raises(ValueError, match="zero norm"):
        model.set_params(zero_rows="raise").predict(np.zeros((1, 4)))


def test_normalize_false_checks_unit_rows_and_bad_params():
    X, _ = make_vmf_blobs(100, 4, centers=2, random_state=0)
    VMFMixture(2, normalize=False).fit(X)
    with pytest.raises(ValueError, match="unit norm"):
        VMFMixture(2, normalize=False).fit(3 * X)
    with pytest.raises(ValueError, match="init array"):
        VMFMixture(3, init=X[:2]).fit(X)
    with pytest.raises(ValueError, match="posterior_type"):
        VMFMixture(2, posterior_type="fuzzy").fit(X)
    with pytest.raises(ValueError, match="[Ss]ample.weight"):
        VMFMixture(2).fit(X, sample_weight=np.zeros(len(X)))
    with pytest.raises(ValueError, match="sample_weight|negative"):
        VMFMixture(2).fit(X, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError):
        VMFMixture(2).fit(X, sample_weight=np.ones(3))


def vm_uniform_log_density(d):
    # the uniform density on S^(d-1) is 1 / area, area(S²) = 4π
    return -np.log(4 * np.pi) if d == 3 else None


def test_mixture_with_huge_fixed_kappa_samples(blobs):
    X, _ = blobs
    Xs, _ = VMFMixture(3, kappa=1e30, random_state=0).fit(X).sample(5)
    assert np.isfinite(Xs).all() and Xs.shape == (5, 3)


def test_mixture_weights_and_scores_are_validated(blobs):
    X, _ = blobs
    km = SphericalKMeans(3, random_state=0).fit(X)
    w = np.ones(len(X))
    w[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        km.score(X, sample_weight=w)
    for est in (SphericalKMeans(3, random_state=0), VMFMixture(3, random_state=0)):
        with pytest.raises(ValueError, match="sums to infinity"):
            est.fit(X, sample_weight=np.full(len(X), 1e308))
    vm = VMFMixture(3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="non-zero|sums to zero"):
        vm.score(X, sample_weight=np.zeros(len(X)))
    assert vm.bic(X.tolist()) == pytest.approx(vm.bic(X))
    assert vm.aic(X.tolist()) == pytest.approx(vm.aic(X))


def test_zero_rows_refused_by_name_when_strict(blobs):
    X, y = blobs
    Xz = np.vstack([X[:2], np.zeros((1, 3))])
    for est in (VMFMixture(3, zero_rows="raise"), SphericalKMeans(3, zero_rows="raise")):
        with pytest.raises(ValueError, match="zero norm"):
            est.fit(np.vstack([X, Xz]))
        with pytest.raises(ValueError, match="zero norm"):
            est.fit(X).predict(Xz)
    with pytest.raises(ValueError, match="zero norm"):
        SphericalClassifier((), zero_rows="raise").fit(np.vstack([X, Xz]), np.r_[y, y[:3]])


@pytest.mark.parametrize("Estimator", [VMFMixture, SphericalKMeans])
def test_mixtures_leave_zero_rows_out_of_the_fit(blobs, Estimator):
    X, _ = blobs
    with_zeros = np.vstack([X[:50], np.zeros((4, 3)), X[50:]])
    reference = Estimator(3, random_state=0).fit(X)
    with pytest.warns(UserWarning, match=f"4 of {len(X) + 4} rows are zeros"):
        model = Estimator(3, random_state=0).fit(with_zeros)
    centres = model.means_ if Estimator is VMFMixture else model.cluster_centers_
    expected = reference.means_ if Estimator is VMFMixture else reference.cluster_centers_
    np.testing.assert_allclose(centres, expected, atol=1e-12)
    labels = model.fit_predict(with_zeros) if Estimator is VMFMixture else model.labels_
    np.testing.assert_array_equal(labels, model.predict(with_zeros))
    with pytest.warns(UserWarning, match="changes nothing"):
        model.partial_fit(np.zeros((2, 3)))


def test_zero_rows_get_the_uniform_direction_at_prediction(blobs):
    X, y = blobs
    Xz = np.vstack([X[:2], np.zeros((1, 3))])
    vm = VMFMixture(3, random_state=0).fit(X)
    np.testing.assert_allclose(vm.predict_proba(Xz)[2], vm.weights_)  # posterior = π
    assert vm.score_samples(Xz)[2] == pytest.approx(float(vm_uniform_log_density(3)))
    np.testing.assert_allclose(vm.predict_proba(sp.csr_matrix(Xz)), vm.predict_proba(Xz))
    km = SphericalKMeans(3, random_state=0).fit(X)
    np.testing.assert_allclose(km.transform(Xz)[2], 1.0)
    clf = SphericalClassifier((), random_state=0).fit(X, y)
    prior = np.exp(clf.intercept_) / np.exp(clf.intercept_).sum()
    np.testing.assert_allclose(clf.predict_proba(Xz)[2], prior, rtol=1e-5)
    np.testing.assert_allclose(clf.transform(Xz)[2], 0.0)


@ESTIMATOR_SETTINGS
@given(
    X=data(),
    k=st.integers(-1, 4),
    kappa=st.sampled_from(["free", "tied", 0.0, 1e30, -1.0, np.nan]),
    sparse=st.booleans(),
)
def test_mixtures_on_any_input(X, k, kappa, sparse):
    if sparse and X.ndim == 2:
        X = sp.csr_matrix(X)

    def valid_mixture(model):
        assert np.all(np.isfinite(model.means_)) and np.all(np.isfinite(model.kappas_))
        np.testing.assert_allclose(model.weights_.sum(), 1.0)
        np.testing.assert_allclose(np.linalg.norm(model.means_, axis=1), 1.0, atol=1e-6)
        assert np.all(np.isfinite(model.score_samples(X)))

    clear_error_or(
        valid_mixture, lambda: VMFMixture(k, kappa=kappa, max_iter=20, random_state=0).fit(X)
    )

    def valid_kmeans(model):
        assert np.all(np.isfinite(model.cluster_centers_)) and np.isfinite(model.inertia_)

    clear_error_or(valid_kmeans, lambda: SphericalKMeans(k, max_iter=20, random_state=0).fit(X))
