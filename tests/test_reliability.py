"""Bad input gets a clear error, nothing hangs, nothing is silently wrong.

One regression test per failure found by adversarial use; the property-based suite over
shapes, dtypes and magnitudes is in ``test_properties.py``.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError

from sphereml import (
    NDMClassifier,
    NGPTTextClassifier,
    SphericalClassifier,
    SphericalKMeans,
    VMFMixture,
    vmf,
)
from sphereml.geometry import (
    exp_map,
    geodesic_distance,
    l2_normalize,
    log_map,
    project_to_tangent,
    scalar_curvature,
)
from sphereml.text import TextTokenizer, check_texts


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(loc, 0.3, size=(30, 3)) for loc in np.eye(3) * 2])
    y = np.repeat([0, 1, 2], 30)
    return X, y


# ------------------------------------------------------------------ bounded loops
@pytest.mark.parametrize("d, kappa", [(3, 1e200), (1000, 1e20), (2, 1.7e308), (3, 1e30)])
def test_vmf_sampler_returns_the_point_mass_limit_quickly(d, kappa):
    mu = np.eye(d)[0]
    start = time.perf_counter()
    x = vmf.sample_vmf(mu, kappa, 500, random_state=0)
    assert time.perf_counter() - start < 5.0
    np.testing.assert_allclose(x @ mu, 1.0, atol=1e-9)  # κ → ∞: the point mass at μ


def test_vmf_sampler_stays_exact_at_moderate_kappa():
    # E[μᵀx] = A_d(κ), an independent closed form for d = 3: coth κ − 1/κ
    x = vmf.sample_vmf(np.eye(3)[0], 5.0, 20_000, random_state=1)
    assert abs(x[:, 0].mean() - (1 / np.tanh(5.0) - 1 / 5.0)) < 4 * 0.25 / np.sqrt(20_000)


def test_mixture_with_huge_fixed_kappa_samples(blobs):
    X, _ = blobs
    Xs, _ = VMFMixture(3, kappa=1e30, random_state=0).fit(X).sample(5)
    assert np.isfinite(Xs).all() and Xs.shape == (5, 3)


def test_probe_curvature_warns_before_gigabytes():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.warns(UserWarning, match="GiB per training step"):
        NDMClassifier(latent_dim=16, curvature_penalty=0.1, max_epochs=1).fit(X, np.arange(20) % 2)


# ------------------------------------------------------------------ vMF functions
@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: vmf.log_normalizer(1.0, 2.5), ValueError, "integer >= 2"),
        (lambda: vmf.mean_resultant_length(1.0, 3.5), ValueError, "integer >= 2"),
        (lambda: vmf.estimate_kappa(0.5, 7.2), ValueError, "integer >= 2"),
        (lambda: vmf.estimate_kappa(0.5, 3, max_iter=0), ValueError, "max_iter"),
        (lambda: vmf.estimate_kappa(0.5, 3, max_iter=-5), ValueError, "max_iter"),
        (lambda: vmf.estimate_kappa(0.5, 3, tol=float("nan")), ValueError, "tol"),
        (lambda: vmf.kappa_bounds(1.0, 3), ValueError, r"\[0, 1\)"),
        (lambda: vmf.kappa_bounds(-0.1, 3), ValueError, r"\[0, 1\)"),
        (lambda: vmf.kappa_bounds(float("nan"), 3), ValueError, r"\[0, 1\)"),
        (lambda: vmf.log_bessel_iv(-1.0, 2.0), ValueError, "nu"),
        (lambda: vmf.log_normalizer([1.0, 2.0, 3.0], [3, 4]), ValueError, "broadcast"),
        (lambda: vmf.log_normalizer("a", 3), TypeError, "real numbers"),
        (lambda: vmf.sample_vmf([1.0, 0.0, 0.0], [1.0, 2.0], 3), ValueError, "single number"),
        (lambda: vmf.sample_vmf([1.0, 0.0, 0.0], 1.0, 2.5), ValueError, "n_samples"),
    ],
)
def test_vmf_functions_refuse_bad_arguments(call, error, words):
    with pytest.raises(error, match=words):
        call()


# ------------------------------------------------------------------ sphere geometry
def test_geometry_refuses_points_off_the_sphere():
    u, v = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    for call in (
        lambda: geodesic_distance(u, v),
        lambda: project_to_tangent(v, u),
        lambda: exp_map(v, u),
        lambda: log_map(u, v),
    ):
        with pytest.raises(ValueError, match="unit norm"):
            call()
    with pytest.raises(ValueError, match="tangent"):
        exp_map(u, np.array([1.0, 1.0]))


@pytest.mark.parametrize("scale", [1e150, 1e300, -1e300])
def test_exp_map_is_finite_for_huge_tangents(scale):
    out = exp_map(np.array([1.0, 0.0, 0.0]), np.array([0.0, scale, 0.0]))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="NaN or infinity"):
        exp_map(np.array([1.0, 0.0]), np.array([0.0, np.inf]))


def test_l2_normalize_refuses_complex_input():
    with pytest.raises(TypeError, match="real numbers"):
        l2_normalize(np.array([[1 + 1j, 2.0]]))
    with pytest.raises(TypeError, match="real numbers"):
        l2_normalize(torch.tensor([[1 + 1j, 2.0]]))


# ------------------------------------------------------------------ curvature
def _conformal(z):
    return (1 + (z**2).sum(-1))[:, None, None] * torch.eye(z.shape[1], dtype=z.dtype)


def _in_place(z):
    g = torch.zeros(len(z), 2, 2, dtype=z.dtype)
    g[:, 0, 0] = 1 + z[:, 0] ** 2
    g[:, 1, 1] = 1.0
    return g


@pytest.mark.parametrize(
    "metric, z, words",
    [
        (_conformal, torch.full((2, 2), float("nan"), dtype=torch.float64), "NaN"),
        (_conformal, torch.zeros(3, 0, dtype=torch.float64), "n = 0"),
        (lambda z: torch.eye(3, dtype=z.dtype).expand(len(z), 3, 3), torch.zeros(2, 2), "shape"),
        (lambda z: -_conformal(z), torch.zeros(2, 2, dtype=torch.float64), "positive definite"),
        (_in_place, torch.zeros(2, 2, dtype=torch.float64), "in-place"),
    ],
    ids=["nan", "n=0", "wrong-shape", "not-pd", "in-place"],
)
def test_scalar_curvature_names_the_problem(metric, z, words):
    with pytest.raises(ValueError, match=words):
        scalar_curvature(metric, z)


# ------------------------------------------------------------------ text
def test_tokenizer_refuses_impossible_settings():
    for kwargs in ({"max_vocab": 0}, {"max_vocab": -1}, {"min_count": 0}, {"max_length": 1}):
        with pytest.raises(ValueError, match="must be an integer"):
            TextTokenizer(**kwargs)
    with pytest.raises(ValueError, match="removes every word"):
        TextTokenizer(min_count=5).fit(["a b", "c"])
    with pytest.raises(NotFittedError):
        TextTokenizer().transform(["a"])
    for container in ({"a": 1, "b": 2}, {"a", "b"}):
        with pytest.raises(TypeError, match="ordered sequence"):
            check_texts(container)


@pytest.mark.parametrize("kind", ["word", "byte", "bpe"])
def test_lone_surrogates_are_tokenised(kind):
    if kind == "bpe":
        pytest.importorskip("tokenizers")
    tokenizer = TextTokenizer(kind, max_length=8).fit(["hello world", "bad \ud800 text"])
    ids, mask = tokenizer.transform(["x \udc80 y", "\ud800"])
    assert ids.shape[0] == 2 and ids.shape[1] <= 8 and mask[:, 0].all()


def test_transformer_baseline_pickles():
    texts = ["good movie", "bad movie", "great film", "awful film"] * 5
    y = [1, 0, 1, 0] * 5
    clf = NGPTTextClassifier(
        "transformer", d_model=8, n_layers=1, n_heads=2, max_length=8, max_epochs=2,
        random_state=0,
    ).fit(texts, y)  # fmt: skip
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(texts), clf.predict_proba(texts))


# ------------------------------------------------------------------ labels and warm starts
def test_missing_and_mixed_labels_are_named(blobs):
    X, _ = blobs
    y = np.array(["a", "b", "c"] * 30, dtype=object)
    y[4] = None
    with pytest.raises(ValueError, match="missing label.*index 4"):
        SphericalClassifier(max_epochs=1).fit(X, y)
    y = np.array(["a", 1, "c"] * 30, dtype=object)
    with pytest.raises(TypeError, match="mixes label types"):
        SphericalClassifier(max_epochs=1).fit(X, y)


@pytest.mark.parametrize(
    "make, change",
    [
        (lambda: SphericalClassifier(max_epochs=2, warm_start=True), {"hidden_dims": (8,)}),
        (lambda: NDMClassifier(max_epochs=2, warm_start=True), {"latent_dim": 3}),
        (lambda: SphericalClassifier(max_epochs=2, warm_start=True), {"margin": "cosface"}),
    ],
)
def test_warm_start_refuses_a_changed_architecture(blobs, make, change):
    X, y = blobs
    clf = make().fit(X, y)
    clf.set_params(**change)
    with pytest.raises(ValueError, match=f"{next(iter(change))}.*changed"):
        clf.fit(X, y)
    clf.set_params(max_epochs=1, lr=0.001).set_params(**{k: make().get_params()[k] for k in change})
    clf.fit(X, y)  # the training settings may change


def test_warm_start_refuses_a_changed_tokenizer():
    texts, y = ["good movie", "bad movie", "fine film", "awful film"] * 5, [1, 0, 1, 0] * 5
    clf = NGPTTextClassifier(d_model=8, n_layers=1, n_heads=2, max_length=8, max_epochs=1,
                             warm_start=True, random_state=0).fit(texts, y)  # fmt: skip
    clf.set_params(tokenizer="byte")
    with pytest.raises(ValueError, match="tokenizer"):
        clf.fit(texts, y)


# ------------------------------------------------------------------ divergence
def test_exploding_training_raises(blobs):
    X, y = blobs
    with pytest.raises(FloatingPointError, match=r"lower lr .* \(max_grad_norm=10\)"):
        NDMClassifier(lr=10.0, max_epochs=10, random_state=0).fit(X, y)
    # with clipping on, the advice is the learning rate alone
    with pytest.raises(FloatingPointError, match=r"lower lr \(now 10.0\)$"):
        NDMClassifier(lr=10.0, max_epochs=10, max_grad_norm=1e3, random_state=0).fit(X, y)


def test_an_untrained_network_warns_and_does_not_count_as_diverged():
    # random prototypes at κ = 10 and a step size of 1e-12: the fitted model is its random
    # start, whose loss here (4.47) is above 3 × the class-share loss + 1 (4.30), but no
    # higher than where training began
    from sphereml.datasets import make_vmf_blobs

    X, y = make_vmf_blobs(600, 20, centers=3, kappa=[10.0, 30.0, 60.0], random_state=0)
    with pytest.warns(ConvergenceWarning, match="class shares"):
        clf = SphericalClassifier(
            (), init="random", optimizer="adam", max_epochs=1, lr=1e-12, random_state=8
        )
        clf.fit(X, y)
    assert clf.kappa_ == pytest.approx(10.0)


def test_a_constant_model_warns(blobs):
    X, y = blobs
    with pytest.warns(ConvergenceWarning, match="class shares"):
        SphericalClassifier(lr=10.0, max_epochs=10, random_state=0).fit(X, y)


def test_feature_scale_hints(blobs):
    X, y = blobs
    with pytest.warns(DataConversionWarning, match="rounds to zero"):
        SphericalClassifier((8,), max_epochs=1, n_estimators=1, random_state=0).fit(X * 1e-300, y)
    # the hint comes before training; training on features of 1e6 may then diverge
    # (the divergence check raises), which is the point of the hint
    with (
        pytest.warns(UserWarning, match="scale them first"),
        contextlib.suppress(FloatingPointError),
    ):
        NDMClassifier(max_epochs=1, random_state=0).fit(X * 1e6, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        # directions only: the scale does not matter, no warning
        SphericalClassifier((), random_state=0).fit(X * 1e6, y)


# ------------------------------------------------------------------ threads
def _fit_predict(seed, X, y, out, make):
    out[seed] = make(seed).fit(X, y).predict_proba(X)


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: SphericalClassifier((8,), max_epochs=5, random_state=seed),
        lambda seed: NDMClassifier(
            max_epochs=3,
            optimizer="natural",
            curvature_penalty=0.1,
            curvature_estimator="hutchinson",
            latent_dim=3,
            random_state=seed,
        ),  # fmt: skip
    ],
    ids=["SphericalClassifier", "NDMClassifier-probes"],
)
def test_concurrent_fits_reproduce_sequential_fits(blobs, make):
    X, y = blobs
    sequential: dict = {}
    for seed in (0, 1):
        _fit_predict(seed, X, y, sequential, make)
    concurrent: dict = {}
    threads = [
        threading.Thread(target=_fit_predict, args=(seed, X, y, concurrent, make))
        for seed in (0, 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in (0, 1):
        np.testing.assert_array_equal(concurrent[seed], sequential[seed])
    assert not np.allclose(sequential[0], sequential[1])


# ------------------------------------------------------------------ mixtures
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


def test_zero_rows_train_the_class_priors_only(blobs):
    # a zero row's logits are the biases b_c: it moves them towards its label's share
    X, y = blobs
    base = SphericalClassifier((), random_state=0).fit(X, y)
    Xz = np.vstack([X, np.zeros((60, 3))])
    more = SphericalClassifier((), random_state=0).fit(Xz, np.r_[y, np.full(60, y[0])])
    empty = np.zeros((1, 3))
    assert more.predict_proba(empty)[0, 0] > base.predict_proba(empty)[0, 0] + 0.05
    assert more.score(X, y) >= base.score(X, y) - 0.02
    # a text pipeline whose training texts include empty documents fits and predicts
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    texts = ["the cat sat", "a dog ran", "", "cats purr", "dogs bark", "   ", "the the"]
    labels = ["cat", "dog", "cat", "cat", "dog", "dog", "cat"]
    pipe = make_pipeline(TfidfVectorizer(stop_words="english"), SphericalClassifier())
    pipe.fit(texts, labels)
    assert pipe.predict_proba(["", "unseen words only"]).shape == (2, 2)
    assert pipe.predict(["cats"])[0] == "cat"


def vm_uniform_log_density(d):
    # the uniform density on S^(d-1) is 1 / area, area(S²) = 4π
    return -np.log(4 * np.pi) if d == 3 else None


def test_chart_penalty_needs_two_layers(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="n_layers >= 2"):
        NDMClassifier(n_layers=1, chart_penalty=0.1, max_epochs=1).fit(X, y)


@pytest.mark.parametrize("kappa", [5e-324, 2.2250738585e-313, 1e-200])
def test_vmf_sampler_at_subnormal_kappa_is_uniform(kappa):
    # found by the property suite: (d-1)/κ overflowed for subnormal κ
    x = vmf.sample_vmf(np.eye(2)[0], kappa, 4000, random_state=0)
    assert abs(x[:, 0].mean()) < 4 / np.sqrt(2 * 4000)  # uniform on the circle: E cos = 0


# ------------------------------------------------- refusals that name the parameter
@pytest.mark.parametrize("accelerator", ["yes", True, 1, object()])
def test_accelerator_must_be_an_accelerate_accelerator(blobs, accelerator):
    X, y = blobs
    with pytest.raises(TypeError, match="accelerate.Accelerator"):
        SphericalClassifier(accelerator=accelerator, max_epochs=1).fit(X, y)


def test_numeric_labels_in_an_object_array_are_numbers(blobs):
    X, y = blobs
    labels = np.array([int(v) + 10 for v in y], dtype=object)  # a pandas object column
    for make in (SphericalClassifier, NDMClassifier):
        clf = make(max_epochs=2, n_estimators=1, random_state=0).fit(X, labels)
        np.testing.assert_array_equal(clf.classes_, [10, 11, 12])
        assert set(clf.predict(X)) <= {10, 11, 12}


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: SphericalClassifier(n_estimators=10**12, max_epochs=1), "n_estimators=10{12}"),
        (
            lambda: SphericalClassifier(hidden_dims=(2e9,), max_epochs=1),
            r"hidden_dims=\(2000000000\.0,\)",
        ),
        (lambda: NDMClassifier(hidden=2_000_000_000, max_epochs=1), "hidden=2000000000"),
    ],
)
def test_impossible_sizes_are_refused_by_name_before_allocating(blobs, make, words):
    X, y = blobs
    with pytest.raises(ValueError, match=words):
        make().fit(X, y)


def test_impossible_text_model_sizes_are_refused_by_name():
    texts = np.array(["good film", "bad film", "fine movie", "awful movie"] * 5, dtype=object)
    labels = [1, 0, 1, 0] * 5
    with pytest.raises(ValueError, match="d_model=1000000"):
        NGPTTextClassifier(d_model=10**6, n_heads=2, max_epochs=1).fit(texts, labels)
    with pytest.raises(ValueError, match="max_length=1000000000"):
        NGPTTextClassifier(d_model=8, n_heads=2, max_length=10**9, max_epochs=1).fit(texts, labels)


def test_the_tokenizer_allocates_no_more_than_the_longest_text():
    tokenizer = TextTokenizer("word", max_length=2_000_000).fit(["a b c", "a"])
    ids, mask = tokenizer.transform(["a b c"] * 300)
    assert ids.shape == (300, 4) and mask.all()
    with pytest.raises(TypeError, match="lowercase"):
        TextTokenizer(lowercase="no")


def test_sample_vmf_refuses_more_points_than_memory():
    with pytest.raises(ValueError, match="n_samples=1000000000000"):
        vmf.sample_vmf(np.eye(3)[0], 1.0, 10**12)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: l2_normalize(np.float64(3.0)), ValueError, "got a scalar"),
        (lambda: l2_normalize(np.zeros((3, 0))), ValueError, "at least one coordinate"),
        (lambda: l2_normalize(np.array([["a", "b"]], dtype=object)), TypeError, "real numbers"),
        (lambda: geodesic_distance([[1.0, 0.0]], [[1.0, 0.0, 0.0]]), ValueError, "same dimension"),
        (lambda: geodesic_distance(np.float64(1), np.float64(1)), ValueError, "scalar"),
        (lambda: log_map(np.zeros((3, 0)), np.zeros((3, 0))), ValueError, "coordinate"),
        (lambda: exp_map(np.eye(2)[0], np.array([0.0, 1.0, 0.0])), ValueError, "same dimension"),
        (lambda: project_to_tangent([1.0, 0.0], [0.0, 1.0, 0.0]), ValueError, "same dimension"),
        (lambda: geodesic_distance(np.eye(3)[:2], np.eye(3)), ValueError, "broadcast"),
    ],
)
def test_geometry_names_shape_problems(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_sphere_parameters_check_their_dimension_and_directions():
    from sphereml.riemannian import SphereParameter, constrain_unit_norm

    with pytest.raises(ValueError, match="dim=5 is out of range"):
        SphereParameter(torch.randn(3, 4), dim=5)
    with pytest.raises(TypeError, match="dim must be an integer"):
        SphereParameter(torch.randn(3, 4), dim=True)
    layer = torch.nn.Linear(3, 4)
    with torch.no_grad():
        layer.weight[1] = 0.0
    with pytest.raises(ValueError, match="1 slice\\(s\\) of zeros"):
        constrain_unit_norm(layer, "weight", dim=1)


def test_nested_hidden_dims_are_refused(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="flat sequence"):
        SphericalClassifier(hidden_dims=((8, 8), (8, 8)), max_epochs=1).fit(X, y)


def test_huge_sample_weights_and_bad_init_arrays(blobs):
    X, _ = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for model in (VMFMixture(3, random_state=0), SphericalKMeans(3, random_state=0)):
            model.fit(X, sample_weight=np.full(len(X), 1e300))
            centres = getattr(model, "means_", getattr(model, "cluster_centers_", None))
            assert np.all(np.isfinite(centres))
            reference = type(model)(3, random_state=0).fit(X)
            np.testing.assert_allclose(model.score(X), reference.score(X), rtol=1e-9)
    for init, words in ((np.full((3, 3), np.nan), "init array contains NaN"),
                        (np.zeros((3, 3)), "init array has 3 row")):  # fmt: skip
        with pytest.raises(ValueError, match=words):
            VMFMixture(3, init=init).fit(X)


@pytest.mark.parametrize(
    "make",
    [
        lambda: VMFMixture(3, n_init=3, max_iter=200, tol=0.0, random_state=0),
        lambda: SphericalKMeans(3, n_init=5, tol=0.0, random_state=0),
    ],
)
def test_a_second_thread_fitting_the_same_object_is_refused(make):
    X, _ = make_vmf_blobs_for_threads()
    model = make()
    started, errors = threading.Event(), []
    original = model._e_step if hasattr(model, "_e_step") else model._lloyd

    def slow(*args, **kwargs):  # keeps the first fit running while the second starts
        started.set()
        time.sleep(0.05)
        return original(*args, **kwargs)

    setattr(model, "_e_step" if hasattr(model, "_e_step") else "_lloyd", slow)

    def second():
        started.wait(5)
        try:
            model.fit(X)
        except RuntimeError as error:
            errors.append(str(error))

    thread = threading.Thread(target=second)
    thread.start()
    model.fit(X)
    thread.join()
    assert errors and "another thread is fitting the same estimator" in errors[0]


def make_vmf_blobs_for_threads():
    from sphereml.datasets import make_vmf_blobs

    return make_vmf_blobs(300, 4, centers=3, kappa=20.0, random_state=0)
