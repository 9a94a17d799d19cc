"""The estimator base shared by the neural classifiers (``sphereml.neural._base``): labels,
warm starts, divergence, threads, size limits and the refusals that name the parameter,
for every estimator built on it; and a property-based search over inputs."""

from __future__ import annotations

import contextlib
import threading
import time
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from property_inputs import ESTIMATOR_SETTINGS, clear_error_or, data, labels
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning

from sphereml import (
    NDMClassifier,
    NGPTTextClassifier,
    SphericalClassifier,
    SphericalKMeans,
    VMFMixture,
)


def _fit_predict(seed, X, y, out, make):
    out[seed] = make(seed).fit(X, y).predict_proba(X)


def make_vmf_blobs_for_threads():
    from sphereml.datasets import make_vmf_blobs

    return make_vmf_blobs(300, 4, centers=3, kappa=20.0, random_state=0)


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


def test_the_check_scores_the_start_only_for_a_model_far_above_the_class_shares(blobs, monkeypatch):
    # the start's loss decides only between an exploded and an untrained model (above)
    X, y = blobs
    scored = []
    original = SphericalClassifier._sampled_loss

    def counted(self, *args):
        scored.append(1)
        return original(self, *args)

    monkeypatch.setattr(SphericalClassifier, "_sampled_loss", counted)
    clf = SphericalClassifier(n_estimators=1, max_epochs=5, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.9
    assert scored == [1]  # the fitted model only


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


@ESTIMATOR_SETTINGS
@given(X=data(), y=labels, hidden=st.sampled_from([(), (4,)]), lr=st.sampled_from([0.01, 1e6]))
def test_neural_estimators_on_any_input(X, y, hidden, lr):
    def valid_classifier(model):
        proba = model.predict_proba(X)
        assert np.all(np.isfinite(proba))
        np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)

    for make in (
        lambda: SphericalClassifier(hidden, lr=lr, max_epochs=2, random_state=0),
        lambda: NDMClassifier(latent_dim=2, lr=lr, max_epochs=2, random_state=0),
    ):
        try:
            clear_error_or(valid_classifier, lambda make=make: make().fit(X, y))
        except FloatingPointError as exc:  # divergence is reported, never returned
            assert "lower lr" in str(exc)


@pytest.mark.parametrize("make", [SphericalClassifier, NDMClassifier])
def test_inference_runs_in_batches_of_at_least_inference_rows(blobs, make):
    from sphereml.neural._base import INFERENCE_ROWS

    X, y = blobs
    clf = make(batch_size=16, max_epochs=2, n_estimators=1, random_state=0).fit(X, y)
    module, calls = clf.net_.module_, []
    forward = module.forward

    def counted(x):
        calls.append(len(x))
        return forward(x)

    rows = np.tile(X, (30, 1))[: INFERENCE_ROWS + 100]
    module.forward = counted
    try:
        proba = clf.predict_proba(rows)
    finally:
        del module.forward
    assert calls == [INFERENCE_ROWS, 100]
    np.testing.assert_allclose(proba[: len(X)], clf.predict_proba(X), rtol=1e-6, atol=1e-7)
