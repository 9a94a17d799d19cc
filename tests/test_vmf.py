"""vMF special functions against mpmath (independent arbitrary precision) and SciPy."""

from __future__ import annotations

import time

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from property_inputs import SETTINGS, clear_error_or, finite, numbers, real_arrays
from scipy import stats

from sphereml import (
    vmf,
)
from sphereml._sphere import vmf as sphere_vmf

mp.mp.dps = 40

DIMS = [2, 3, 5, 10, 50, 61, 62, 63, 100, 1000, 10**4, 10**5]
KAPPAS = [0.0, 1e-8, 1e-3, 0.1, 1.0, 2.5, 10.0, 50.0, 100.0, 1e3, 1e4, 1e5]


def ref_log_normalizer(kappa, d):
    d = mp.mpf(d)
    nu = d / 2 - 1
    if kappa == 0:
        return mp.loggamma(d / 2) - mp.log(2) - d / 2 * mp.log(mp.pi)
    k = mp.mpf(kappa)
    return nu * mp.log(k) - d / 2 * mp.log(2 * mp.pi) - mp.log(mp.besseli(nu, k, maxterms=10**6))


def ref_ratio(kappa, d):
    nu = mp.mpf(d) / 2 - 1
    k = mp.mpf(kappa)
    return mp.besseli(nu + 1, k, maxterms=10**6) / mp.besseli(nu, k, maxterms=10**6)


def rel_err(got, ref):
    return abs(got - float(ref)) / max(1.0, abs(float(ref)))


@pytest.mark.parametrize("d", DIMS)
def test_log_normalizer_matches_mpmath(d):
    got = vmf.log_normalizer(np.array(KAPPAS), d)
    for k, g in zip(KAPPAS, got, strict=True):
        assert np.isfinite(g)
        assert rel_err(g, ref_log_normalizer(k, d)) <= 1e-12, (d, k)


@pytest.mark.parametrize("d", [2, 3, 10, 62, 1000, 10**5])
def test_mean_resultant_length_and_its_complement_match_mpmath(d):
    for k in [1e-6, 0.5, 5.0, 60.0, 1e3, 1e5]:
        ref = ref_ratio(k, d)
        got = float(vmf.mean_resultant_length(k, d))
        assert abs(got - float(ref)) <= 1e-12 * float(ref), (d, k)
        # 1 - A keeps relative accuracy when A is close to 1 (what κ estimation needs).
        log_ratio = sphere_vmf._log_bessel_ratio(np.array([d / 2 - 1.0]), np.array([k]))
        one_minus = -np.expm1(log_ratio)[0]
        assert abs(one_minus - float(1 - ref)) <= 1e-8 * float(1 - ref), (d, k)


def test_extreme_corners_finite_and_accurate():
    for d, k in [(10**6, 10.0), (10**6, 1e3), (2, 1e6), (10**6, 0.0), (10**5, 1e5)]:
        got = vmf.log_normalizer(k, d)
        assert np.isfinite(got)
        assert rel_err(got, ref_log_normalizer(k, d)) <= 1e-10


@pytest.mark.slow
def test_million_dimensions_million_kappa():
    assert rel_err(vmf.log_normalizer(1e6, 10**6), ref_log_normalizer(1e6, 10**6)) <= 1e-10


def test_log_normalizer_normalises_density_on_circle_and_sphere():
    # d=2: ∫ C exp(κ cos θ) dθ = 1 ; d=3: closed form κ / (4π sinh κ).
    from scipy.integrate import quad

    for k in [0.0, 0.7, 30.0]:
        c2 = np.exp(vmf.log_normalizer(k, 2))
        total, _ = quad(lambda t, c2=c2, k=k: c2 * np.exp(k * np.cos(t)), 0, 2 * np.pi)
        assert total == pytest.approx(1.0, rel=1e-10)
    for k in [0.3, 5.0, 300.0]:
        expected = np.log(k) - np.log(4 * np.pi) - (k + np.log1p(-np.exp(-2 * k)) - np.log(2))
        assert vmf.log_normalizer(k, 3) == pytest.approx(expected, rel=1e-13)


def test_agrees_with_scipy_where_scipy_works_and_stays_finite_where_it_fails():
    mu = np.zeros(1000)
    mu[0] = 1.0
    x = mu
    ours = vmf.log_normalizer(10.0, 1000) + 10.0
    # SciPy's logpdf returns +inf here: its Bessel function ive(d/2 - 1, κ) underflows.
    scipy_value = stats.vonmises_fisher(mu, 10.0).logpdf(x)
    assert np.isfinite(ours)
    assert not np.isfinite(scipy_value) or scipy_value == pytest.approx(ours)
    for d, k in [(3, 5.0), (10, 40.0)]:
        mu = np.eye(d)[0]
        assert stats.vonmises_fisher(mu, k).logpdf(mu) == pytest.approx(
            vmf.log_normalizer(k, d) + k, rel=1e-10
        )


@pytest.mark.parametrize("method,tol", [("newton", 5e-9), ("song", 1e-6), ("sra", 1e-3)])
def test_estimate_kappa_inverts_mean_resultant_length(method, tol):
    d, k = np.meshgrid([2, 3, 10, 100, 1e3, 1e4, 1e5, 1e6], [1e-3, 0.5, 5, 50, 500, 5e3, 5e4, 5e5])
    r = vmf.mean_resultant_length(k, d)
    est = vmf.estimate_kappa(r, d, method=method)
    assert np.all(np.isfinite(est))
    assert np.max(np.abs(est / k - 1)) <= tol


def test_newton_beats_banerjee_and_banerjee_is_closed_form():
    r, d = 0.8, 10
    assert vmf.estimate_kappa(r, d, method="banerjee") == pytest.approx(r * (d - r**2) / (1 - r**2))
    truth = 12.345
    r = vmf.mean_resultant_length(truth, d)
    errs = {
        m: abs(vmf.estimate_kappa(r, d, method=m) - truth) for m in ["banerjee", "sra", "newton"]
    }
    assert errs["newton"] < errs["sra"] < errs["banerjee"]


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1 - 1e-9), st.integers(2, 10**6))
def test_kappa_bounds_bracket_the_newton_solution(r, d):
    lo, hi = vmf.kappa_bounds(r, d)
    k = vmf.estimate_kappa(r, d)
    assert lo * (1 - 1e-12) <= k <= hi * (1 + 1e-12)
    assert np.isfinite(k) and k >= 0


def test_estimate_kappa_edge_cases():
    assert vmf.estimate_kappa(0.0, 5) == 0.0
    for bad in [1.0, -0.1, np.nan, 1.5]:
        with pytest.raises(ValueError, match="rbar"):
            vmf.estimate_kappa(bad, 5)
    with pytest.raises(ValueError, match="method"):
        vmf.estimate_kappa(0.5, 5, method="magic")


@pytest.mark.parametrize("bad_d", [1, 0, np.nan])
def test_dimension_must_be_at_least_two(bad_d):
    with pytest.raises(ValueError, match="d"):
        vmf.log_normalizer(1.0, bad_d)


@pytest.mark.parametrize("bad_kappa", [-1.0, np.nan, np.inf])
def test_kappa_must_be_finite_non_negative(bad_kappa):
    with pytest.raises(ValueError, match="kappa"):
        vmf.log_normalizer(bad_kappa, 3)


@pytest.mark.parametrize(
    "d,kappa", [(2, 0.0), (3, 2.0), (10, 30.0), (50, 500.0), (5000, 100.0), (7, 1e6)]
)
def test_sample_vmf_moments(d, kappa):
    rng = np.random.default_rng(0)
    mu = rng.standard_normal(d)
    mu /= np.linalg.norm(mu)
    n = 4000
    x = vmf.sample_vmf(mu, kappa, n, random_state=1)
    assert x.shape == (n, d)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
    w = x @ mu
    expected = vmf.mean_resultant_length(kappa, d)
    # Var(w) = 1 - A²  - (d-1) A / κ (the derivative A'(κ)); 5 standard errors.
    var = (1 - expected**2 - (d - 1) * expected / kappa) if kappa > 0 else 1.0 / d
    assert abs(w.mean() - expected) <= 5 * np.sqrt(var / n) + 1e-12
    # The tangent part is isotropic: its mean vanishes.
    tangent = x - w[:, None] * mu
    assert (
        np.linalg.norm(tangent.mean(axis=0))
        <= 5 * np.sqrt(max(1 - w.mean() ** 2, 1e-30) / n) + 1e-9
    )


@pytest.mark.parametrize("d,kappa", [(3, 4.0), (10, 25.0)])
def test_sample_vmf_cosine_distribution_matches_scipy(d, kappa):
    mu = np.eye(d)[0]
    ours = vmf.sample_vmf(mu, kappa, 3000, random_state=0) @ mu
    theirs = stats.vonmises_fisher(mu, kappa).rvs(3000, random_state=1) @ mu
    assert stats.ks_2samp(ours, theirs).pvalue > 1e-3


def test_sample_vmf_reproducible_and_validated():
    a = vmf.sample_vmf([1.0, 2.0, 3.0], 5.0, 10, random_state=3)
    b = vmf.sample_vmf([1.0, 2.0, 3.0], 5.0, 10, random_state=3)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="non-zero"):
        vmf.sample_vmf([0.0, 0.0], 1.0, 3)
    with pytest.raises(ValueError, match="1-D"):
        vmf.sample_vmf(np.ones((2, 2)), 1.0, 3)
    assert vmf.sample_vmf(np.array([0.0, 1.0]), 1.0, 0).shape == (0, 2)


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


@pytest.mark.parametrize("kappa", [5e-324, 2.2250738585e-313, 1e-200])
def test_vmf_sampler_at_subnormal_kappa_is_uniform(kappa):
    # found by the property suite: (d-1)/κ overflowed for subnormal κ
    x = vmf.sample_vmf(np.eye(2)[0], kappa, 4000, random_state=0)
    assert abs(x[:, 0].mean()) < 4 / np.sqrt(2 * 4000)  # uniform on the circle: E cos = 0


def test_sample_vmf_refuses_more_points_than_memory():
    with pytest.raises(ValueError, match="n_samples=1000000000000"):
        vmf.sample_vmf(np.eye(3)[0], 1.0, 10**12)


@SETTINGS
@given(kappa=st.one_of(numbers, real_arrays), d=st.one_of(numbers, real_arrays))
def test_log_normalizer_and_mean_resultant_length_on_any_input(kappa, d):
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
def test_estimate_kappa_on_any_input(rbar, d, method, max_iter):
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
def test_sample_vmf_on_any_input(d, kappa, n):
    mu = np.ones(d)

    def unit_rows(x):
        assert x.shape == (n, d)
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-9)

    clear_error_or(unit_rows, lambda: vmf.sample_vmf(mu, kappa, n, random_state=0))


@pytest.mark.slow
@settings(deadline=None, max_examples=300)
@given(kappa=st.floats(0, 1e308), d=st.integers(2, 2000))
def test_sampler_wide_on_any_input(kappa, d):
    x = vmf.sample_vmf(np.eye(d)[0], kappa, 20, random_state=0)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-9)
