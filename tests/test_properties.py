"""Property-based robustness: for any input, a clear ValueError/TypeError or a finite,
valid result — never a hang, a crash from deep inside NumPy/torch, or NaN.

Inputs range over shapes (including empty), dtypes (int, bool, float32/64, complex,
object), magnitudes from 1e-300 to 1e300, NaN/inf, sparse formats, label types and
hyper-parameters. ``max_examples`` keeps the default run within CI's budget, and the
examples are drawn deterministically (tests/conftest.py) so CI runs are reproducible;
``HYPOTHESIS_PROFILE=explore`` searches with fresh random seeds, and ``pytest -m slow``
adds a wider search of the sampler.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sphereml import NDMClassifier, SphericalClassifier, SphericalKMeans, VMFMixture, vmf
from sphereml.geometry import exp_map, geodesic_distance, l2_normalize, log_map
from sphereml.text import TextTokenizer

# messages of errors raised deep inside NumPy, SciPy or torch, which do not name the
# problem in the caller's terms
OPAQUE = (
    "not supported between instances",
    "object has no attribute",
    "index out of bounds",
    "could not broadcast",
    "setting an array element with a sequence",
    "'NoneType' object",
    "unhashable type",
    "division by zero",
)

SETTINGS = settings(
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
ESTIMATOR_SETTINGS = settings(
    deadline=None,
    max_examples=12,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def clear_error_or(result_check, call):
    """Run ``call``: it either raises a ValueError/TypeError with a clear message, or its
    result passes ``result_check``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = call()
        except (ValueError, TypeError) as exc:
            message = str(exc)
            assert len(message) > 15, f"terse error: {exc!r}"
            assert not any(p in message for p in OPAQUE), f"opaque error: {exc!r}"
            return None
    result_check(result)
    return result


def finite(result):
    arrays = result if isinstance(result, tuple) else (result,)
    for a in arrays:
        assert np.all(np.isfinite(np.asarray(a, dtype=float))), result


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 10**6),
    st.sampled_from([0.0, 1e-300, 1e300, -0.0, 2.5, 1e-9]),
)
shapes = hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4)
real_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.int64, np.bool_]),
    shape=shapes,
    elements=None,
)


# ------------------------------------------------------------------ vMF functions
@SETTINGS
@given(kappa=st.one_of(numbers, real_arrays), d=st.one_of(numbers, real_arrays))
def test_log_normalizer_and_mean_resultant_length(kappa, d):
    clear_error_or(finite, lambda: vmf.log_normalizer(kappa, d))

    def in_unit_interval(a):
        a = np.asarray(a)
        assert np.all((a >= 0) & (a < 1 + 1e-12)), a

    clear_error_or(in_unit_interval, lambda: vmf.mean_resultant_length(kappa, d))


@SETTINGS
@given(
    rbar=st.one_of(numbers, real_arrays),
    d=st.one_of(numbers, st.integers(2, 10**5)),
    method=st.sampled_from(["newton", "banerjee", "sra", "song", "bad"]),
    max_iter=st.one_of(st.integers(-3, 50), st.floats(allow_nan=True)),
)
def test_estimate_kappa(rbar, d, method, max_iter):
    def non_negative(k):
        k = np.asarray(k)
        assert np.all(np.isfinite(k) & (k >= 0)), k

    clear_error_or(non_negative, lambda: vmf.estimate_kappa(rbar, d, method, max_iter=max_iter))


@SETTINGS
@given(
    d=st.integers(2, 60),
    kappa=st.one_of(numbers, st.floats(0, 1e308)),
    n=st.one_of(st.integers(-2, 50), st.floats(allow_nan=True)),
)
def test_sample_vmf(d, kappa, n):
    mu = np.ones(d)

    def unit_rows(x):
        assert x.shape == (n, d)
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-9)

    clear_error_or(unit_rows, lambda: vmf.sample_vmf(mu, kappa, n, random_state=0))


# ------------------------------------------------------------------ geometry
any_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.int32, np.complex128, np.bool_]),
    shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=5),
)


@SETTINGS
@given(x=any_arrays, sparse=st.booleans())
def test_l2_normalize(x, sparse):
    if sparse and x.ndim == 2 and x.dtype != np.complex128:
        x = sp.csr_matrix(x)

    def unit(result):
        dense = result.toarray() if sp.issparse(result) else np.asarray(result)
        assert np.all(np.isfinite(dense))
        if dense.size:
            np.testing.assert_allclose(np.linalg.norm(dense, axis=-1), 1.0, rtol=1e-5)

    clear_error_or(unit, lambda: l2_normalize(x))


@SETTINGS
@given(u=any_arrays, v=any_arrays)
def test_geodesic_and_maps(u, v):
    def in_range(result):
        r = np.asarray(result)
        assert np.all(np.isfinite(r)) and np.all((r >= 0) & (r <= np.pi + 1e-12))

    clear_error_or(in_range, lambda: geodesic_distance(u, v))
    clear_error_or(finite, lambda: exp_map(u, v))
    clear_error_or(finite, lambda: log_map(u, v))


# ------------------------------------------------------------------ estimators
float_data = hnp.arrays(
    dtype=np.float64,
    shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=12),
    elements=st.one_of(
        st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False),
        st.sampled_from([0.0, np.nan, np.inf, 1e-300, -1e300, 1.0, -2.0]),
    ),
)


@st.composite
def data(draw):
    """Float64 data of any magnitude, cast to float32 / int64 / kept (casts may overflow)."""
    X = draw(float_data)
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return X.astype(dtype)


@ESTIMATOR_SETTINGS
@given(
    X=data(),
    k=st.integers(-1, 4),
    kappa=st.sampled_from(["free", "tied", 0.0, 1e30, -1.0, np.nan]),
    sparse=st.booleans(),
)
def test_mixtures(X, k, kappa, sparse):
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


labels = st.one_of(
    st.lists(st.integers(0, 2), min_size=0, max_size=12),
    st.lists(st.sampled_from(["a", "b", None]), min_size=0, max_size=12),
    st.lists(st.one_of(st.just("a"), st.just(1)), min_size=0, max_size=12),
    st.lists(st.floats(allow_nan=True), min_size=0, max_size=12),
)


@ESTIMATOR_SETTINGS
@given(X=data(), y=labels, hidden=st.sampled_from([(), (4,)]), lr=st.sampled_from([0.01, 1e6]))
def test_neural_estimators(X, y, hidden, lr):
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


@SETTINGS
@given(
    texts=st.lists(st.text(max_size=30), min_size=0, max_size=6),
    kind=st.sampled_from(["word", "byte"]),
    max_length=st.integers(-1, 12),
)
def test_tokenizer(texts, kind, max_length):
    def valid(result):
        ids, mask = result
        assert ids.shape[0] == len(texts) and 1 <= ids.shape[1] <= max_length
        assert (ids >= 0).all() and mask[:, 0].all()
        assert mask[:, -1].any()  # no column of padding only: the longest text ends there

    clear_error_or(
        valid, lambda: TextTokenizer(kind, max_length=max_length).fit(texts).transform(texts)
    )


@pytest.mark.slow
@settings(deadline=None, max_examples=300)
@given(kappa=st.floats(0, 1e308), d=st.integers(2, 2000))
def test_sampler_wide(kappa, d):
    x = vmf.sample_vmf(np.eye(d)[0], kappa, 20, random_state=0)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-9)


@settings(deadline=None, max_examples=8, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(st.one_of(st.text(max_size=20), st.none(), st.integers()), max_size=8),
    y=st.lists(st.sampled_from([0, 1, "a"]), max_size=8),
    tokenizer=st.sampled_from(["word", "byte"]),
)
def test_text_classifier(texts, y, tokenizer):
    from sphereml import NGPTTextClassifier

    def valid(model):
        proba = model.predict_proba(texts)
        assert np.all(np.isfinite(proba))
        np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)

    clf = NGPTTextClassifier(d_model=8, n_layers=1, n_heads=2, max_length=8, max_epochs=1,
                             tokenizer=tokenizer, random_state=0)  # fmt: skip
    clear_error_or(valid, lambda: clf.fit(texts, y))
