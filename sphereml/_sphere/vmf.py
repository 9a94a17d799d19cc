"""Special functions of the von Mises–Fisher distribution, κ estimation and sampling.

Everything here is vectorised NumPy in float64 and stays finite and accurate for
dimensions ``d`` from 2 to 10^6 and concentrations ``kappa`` from 0 to 10^6 (tested against
mpmath). Three regimes of the modified Bessel function ``I_nu(kappa)``, ``nu = d/2 - 1``,
are used:

* small ``kappa`` relative to ``nu`` (``kappa**2 / 4 <= 0.05 (nu + 1)``): the power series,
  with the ``kappa**nu`` factor cancelled analytically, so ``kappa = 0`` is exact;
* ``nu < _DEBYE_MIN_NU``: ``log(ive(nu, kappa)) + kappa`` (``ive`` cannot underflow there);
* otherwise: the uniform (Debye) asymptotic expansion of Olver, which is accurate to
  ~1e-16 relative for ``nu >= 30`` at every ``kappa`` — this is where ``ive`` underflows
  (e.g. ``d = 1000, kappa = 10``).

The Bessel ratio ``A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa)`` is computed in log space
with the differences taken analytically, so ``1 - A_d(kappa)`` keeps its relative accuracy
when ``kappa`` is large, which is what κ estimation from ``rbar`` close to 1 needs.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from ..utils._memory import physical_memory

__all__ = [
    "log_normalizer",
    "mean_resultant_length",
    "estimate_kappa",
    "kappa_bounds",
    "sample_vmf",
    "log_bessel_iv",
]

_LOG_2PI = np.log(2.0 * np.pi)
#: Largest mean resultant length r̄ passed to :func:`estimate_kappa` by the mixtures' M-step:
#: r̄ = 1 (a component on one point, or on identical points) has no finite κ̂, and clipping
#: keeps κ̂ finite (≈ (d-1)/2 · 1e10) so log-likelihoods stay finite.
RBAR_MAX = 1.0 - 1e-10
# Orders at and above which the uniform asymptotic expansion replaces scipy's ``ive``.
_DEBYE_MIN_NU = 30.0
_DEBYE_TERMS = 12
# Power-series regime: kappa**2 / 4 <= _SERIES_X * (nu + 1); 14 terms give < 1e-20.
_SERIES_X = 0.05
_SERIES_TERMS = 14
# Large-argument (Hankel) regime for low orders: kappa >= 1e7, nu < 30, 8 terms < 1e-20.
_HANKEL_MIN_KAPPA = 1e7
_HANKEL_TERMS = 8
# Largest dimension: every integer up to 2**53 is exact in float64.
_MAX_DIM = 2.0**53
# Rounds of the vMF rejection sampler; each accepts more than half of the pending draws.
_SAMPLER_MAX_ROUNDS = 200


def _as_real_array(value: ArrayLike, name: str) -> np.ndarray:
    """``value`` as a float64 array, or a TypeError naming ``name`` for non-real input."""
    array = np.asarray(value)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
        or np.issubdtype(array.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must be real numbers; got {value!r} (dtype {array.dtype}).")
    return array.astype(np.float64)


def _check_dim(d: ArrayLike) -> np.ndarray:
    d = _as_real_array(d, "d")
    if not np.all(np.isfinite(d)) or np.any(d < 2) or np.any(d != np.floor(d)):
        raise ValueError(
            "The dimension d of the sphere S^(d-1) must be an integer >= 2 "
            f"(d = 1 is the two-point set S^0, which has no vMF family); got {d!r}."
        )
    if np.any(d > _MAX_DIM):
        raise ValueError(
            f"d must be at most 2**53 = {_MAX_DIM:.0f} (integers above it are not exact in "
            f"float64); got {d!r}."
        )
    return d


def _check_kappa(kappa: ArrayLike) -> np.ndarray:
    kappa = _as_real_array(kappa, "kappa")
    if np.any(np.isnan(kappa)) or np.any(kappa < 0) or np.any(np.isinf(kappa)):
        raise ValueError(f"kappa must be finite and non-negative; got {kappa!r}.")
    return kappa


def _check_rbar(rbar: ArrayLike) -> np.ndarray:
    r = _as_real_array(rbar, "rbar")
    if np.any(~np.isfinite(r)) or np.any(r < 0) or np.any(r >= 1):
        raise ValueError(
            "rbar must lie in [0, 1): rbar = 1 (all vectors identical) has no finite κ̂; "
            f"got {rbar!r}."
        )
    return r


def _broadcast(**arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """np.broadcast_arrays with an error that names the arguments and their shapes."""
    try:
        return np.broadcast_arrays(*arrays.values())
    except ValueError:
        shapes = ", ".join(f"{name} {np.shape(a)}" for name, a in arrays.items())
        raise ValueError(f"the shapes of {shapes} do not broadcast together") from None


@lru_cache(maxsize=1)
def _debye_coefficients() -> np.ndarray:
    """Olver's u_k(p), k = 1.._DEBYE_TERMS (DLMF 10.41.10), as rows of a coefficient matrix.

    u_{k+1}(p) = p^2 (1 - p^2) u_k'(p) / 2 + 1/8 ∫_0^p (1 - 5 t^2) u_k(t) dt, built in exact
    rationals once and cached; row k-1 holds the coefficients of u_k, lowest power first.
    """
    polys = [[Fraction(1)]]
    for _ in range(_DEBYE_TERMS):
        u = polys[-1]
        out = [Fraction(0)] * (len(u) + 3)
        # p^2 (1 - p^2) u'(p) / 2
        for j in range(1, len(u)):
            c = u[j] * j / 2
            out[j + 1] += c
            out[j + 3] -= c
        # 1/8 ∫ (1 - 5 t^2) u(t) dt
        for j, c in enumerate(u):
            out[j + 1] += c / 8 / (j + 1)
            out[j + 3] -= 5 * c / 8 / (j + 3)
        polys.append(out)
    coefficients = np.zeros((_DEBYE_TERMS, len(polys[-1])))
    for k, u in enumerate(polys[1:]):
        coefficients[k, : len(u)] = [float(c) for c in u]
    return coefficients


def _debye_parts(nu: np.ndarray, kappa: np.ndarray):
    """Pieces of log I_nu(kappa) ≈ nu*eta - log(2 pi nu)/2 - log(1+z^2)/4 + log S.

    Returns ``s = sqrt(nu^2 + kappa^2)`` and ``log S`` (the series in 1/nu); the caller
    assembles them so that differences between neighbouring orders can be formed exactly.
    """
    s = np.hypot(nu, kappa)
    p = nu / s  # = 1/sqrt(1 + z^2)
    coefficients = _debye_coefficients()
    u = np.vander(p, coefficients.shape[1], increasing=True) @ coefficients.T  # (n, terms)
    inv_nu_powers = (1.0 / nu)[:, None] ** np.arange(1, _DEBYE_TERMS + 1)
    return s, np.log1p((u * inv_nu_powers).sum(axis=1))


def _log_iv_debye(nu: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    s, log_series = _debye_parts(nu, kappa)
    # nu * eta(z) with z = kappa/nu: s + nu * log(kappa / (nu + s))
    return s + nu * np.log(kappa / (nu + s)) - 0.5 * np.log(2.0 * np.pi * s) + log_series


def _series_sum(nu: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Σ_k t^k / (k! (nu+1)_k), the power series of I_nu with the leading term divided out."""
    term = np.ones_like(t)
    total = np.ones_like(t)
    for k in range(1, _SERIES_TERMS):
        term = term * t / (k * (nu + k))
        total = total + term
    return total


def _log_hankel_series(nu: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """log Σ_k (-1)^k a_k(nu) / kappa^k, from I_nu(kappa) ~ e^kappa / sqrt(2 pi kappa) · Σ.

    Hankel's large-argument expansion, DLMF 10.40.1.

    Used for nu < _DEBYE_MIN_NU and kappa >= _HANKEL_MIN_KAPPA, where terms shrink like
    (nu² / kappa)^k and scipy's ``ive`` stops answering (NaN beyond kappa ≈ 1e9).
    """
    mu = 4.0 * nu * nu
    term = np.ones_like(kappa)
    total = np.ones_like(kappa)
    for k in range(1, _HANKEL_TERMS):
        term = -term * (mu - (2 * k - 1) ** 2) / (k * 8.0 * kappa)
        total = total + term
    return np.log(total)


def _regimes(nu: np.ndarray, kappa: np.ndarray):
    with np.errstate(over="ignore"):  # κ² = inf for κ > 1e154 is correctly "not series"
        series = kappa * kappa / 4.0 <= _SERIES_X * (nu + 1.0)
    debye = ~series & (nu >= _DEBYE_MIN_NU)
    hankel = ~series & ~debye & (kappa >= _HANKEL_MIN_KAPPA)
    scipy_ive = ~series & ~debye & ~hankel
    return series, debye, hankel, scipy_ive


def log_bessel_iv(nu: ArrayLike, kappa: ArrayLike) -> np.ndarray:
    """Natural log of the modified Bessel function of the first kind, log I_nu(kappa).

    Parameters
    ----------
    nu : array-like of float, nu >= 0
        Order; broadcast against ``kappa``.
    kappa : array-like of float, kappa >= 0
        Argument.

    Returns
    -------
    ndarray of float64
        ``-inf`` where ``kappa == 0`` and ``nu > 0``; finite elsewhere.
    """
    nu = _as_real_array(nu, "nu")
    if np.any(~np.isfinite(nu)) or np.any(nu < 0):
        raise ValueError(f"the order nu must be finite and >= 0; got {nu!r}.")
    nu, kappa = _broadcast(nu=nu, kappa=_check_kappa(kappa))
    out = np.empty(nu.shape, dtype=np.float64)
    series, debye, hankel, scipy_ive = _regimes(nu, kappa)
    if np.any(hankel):
        k = kappa[hankel]
        out[hankel] = k - 0.5 * np.log(2.0 * np.pi * k) + _log_hankel_series(nu[hankel], k)
    if np.any(series):
        n, k = nu[series], kappa[series]
        with np.errstate(divide="ignore"):
            lead = np.where(n == 0, 0.0, n * np.log(k / 2.0))
        out[series] = lead - special.gammaln(n + 1.0) + np.log(_series_sum(n, k * k / 4.0))
    if np.any(debye):
        out[debye] = _log_iv_debye(nu[debye], kappa[debye])
    if np.any(scipy_ive):
        out[scipy_ive] = np.log(special.ive(nu[scipy_ive], kappa[scipy_ive])) + kappa[scipy_ive]
    return out


def log_normalizer(kappa: ArrayLike, d: ArrayLike) -> np.ndarray:
    """log C_d(κ), the log normalising constant of the vMF density on S^(d-1).

    ``C_d(κ) = κ^(d/2-1) / ((2π)^(d/2) I_(d/2-1)(κ))`` so that
    ``log p(x | μ, κ) = log C_d(κ) + κ μᵀx``. At κ = 0 it is minus the log surface area of
    the sphere.

    Parameters
    ----------
    kappa : array-like of float, >= 0
        Concentrations.
    d : int or array-like of int, >= 2
        Ambient dimension (the sphere is S^(d-1) ⊂ R^d). Broadcast against ``kappa``.

    Returns
    -------
    ndarray of float64, the broadcast shape of ``kappa`` and ``d``.
    """
    d = _check_dim(d)
    kappa = _check_kappa(kappa)
    d, kappa = _broadcast(d=d, kappa=kappa)
    nu = d / 2.0 - 1.0
    out = np.empty(d.shape, dtype=np.float64)
    series, _, _, _ = _regimes(nu, kappa)
    if np.any(series):
        n, k = nu[series], kappa[series]
        # κ^ν / I_ν(κ) = 2^ν Γ(ν+1) / S(κ²/4): the κ^ν cancels exactly.
        out[series] = (
            n * np.log(2.0) + special.gammaln(n + 1.0) - np.log(_series_sum(n, k * k / 4.0))
        )
    rest = ~series
    if np.any(rest):
        n, k = nu[rest], kappa[rest]
        out[rest] = n * np.log(k) - log_bessel_iv(n, k)
    return out - d / 2.0 * _LOG_2PI


def _log_bessel_ratio(nu: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """log(I_{nu+1}(kappa) / I_nu(kappa)) with the order difference taken analytically."""
    out = np.empty(nu.shape, dtype=np.float64)
    series, debye, hankel, scipy_ive = _regimes(nu, kappa)
    if np.any(hankel):
        n, k = nu[hankel], kappa[hankel]
        out[hankel] = _log_hankel_series(n + 1.0, k) - _log_hankel_series(n, k)
    # The next order, nu + 1, lies in the same regime for these masks: the series test
    # only gets easier and the Debye test too.
    if np.any(series):
        n, k = nu[series], kappa[series]
        t = k * k / 4.0
        with np.errstate(divide="ignore"):
            out[series] = (
                np.log(k / 2.0)
                - np.log(n + 1.0)
                + np.log(_series_sum(n + 1.0, t))
                - np.log(_series_sum(n, t))
            )
    if np.any(debye):
        n, k = nu[debye], kappa[debye]
        s0, log_s0 = _debye_parts(n, k)
        s1, log_s1 = _debye_parts(n + 1.0, k)
        ds = (2.0 * n + 1.0) / (s1 + s0)  # s1 - s0 without cancellation
        out[debye] = (
            ds
            + np.log(k / (n + 1.0 + s1))
            - n * np.log1p((1.0 + ds) / (n + s0))
            - 0.5 * np.log1p(ds / s0)
            + (log_s1 - log_s0)
        )
    if np.any(scipy_ive):
        n, k = nu[scipy_ive], kappa[scipy_ive]
        out[scipy_ive] = np.log(special.ive(n + 1.0, k)) - np.log(special.ive(n, k))
    return out


def mean_resultant_length(kappa: ArrayLike, d: ArrayLike) -> np.ndarray:
    """A_d(κ) = I_(d/2)(κ) / I_(d/2-1)(κ), the expected cosine E[μᵀx] under vMF(μ, κ).

    Increasing and concave in κ, from 0 at κ = 0 towards 1 as κ → ∞. The maximum-likelihood
    κ solves ``A_d(κ) = rbar`` (see :func:`estimate_kappa`).

    Parameters
    ----------
    kappa : array-like of float, >= 0
    d : int or array-like of int, >= 2

    Returns
    -------
    ndarray of float64 in [0, 1).
    """
    d = _check_dim(d)
    kappa = _check_kappa(kappa)
    d, kappa = _broadcast(d=d, kappa=kappa)
    with np.errstate(divide="ignore"):
        return np.exp(_log_bessel_ratio(d / 2.0 - 1.0, kappa))


def kappa_bounds(rbar: ArrayLike, d: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on the κ MLE that solves A_d(κ) = rbar (Hornik & Grün 2014, from Amos 1974).

    Amos' bounds of the form ``A_ν(x) ≶ x / (α + sqrt(β² + x²))`` on the Bessel ratio
    (ν = d/2 - 1) invert in closed form: with ``A = κ/(α + sqrt(β² + κ²))``,
    ``κ = r (α + sqrt(r² α² + (1-r²) β²)) / (1 - r²)``.

    Returns
    -------
    lower, upper : ndarray of float64
    """
    r = _check_rbar(rbar)
    d = _check_dim(d)
    r, d = _broadcast(rbar=r, d=d)
    nu = d / 2.0 - 1.0

    def invert(alpha, beta):
        return (
            r
            * (alpha + np.sqrt(r * r * alpha * alpha + (1 - r * r) * beta * beta))
            / ((1.0 - r) * (1.0 + r))
        )

    # Amos: A_nu(x) <= x / (nu + 1/2 + sqrt((nu + 1/2)^2 + x^2)) and
    # A_nu(x) <= x / (nu + sqrt((nu + 2)^2 + x^2)); inverting an upper bound on A gives a
    # lower bound on κ. The first inverts to r (d - 1) / (1 - r^2).
    lower = np.maximum(invert(nu + 0.5, nu + 0.5), invert(nu, nu + 2.0))
    # A_nu(x) >= x / (nu + 1/2 + sqrt((nu + 3/2)^2 + x^2)): an upper bound on κ.
    upper = invert(nu + 0.5, nu + 1.5)
    return lower, upper


_KAPPA_METHODS = ("newton", "banerjee", "sra", "song")


def estimate_kappa(
    rbar: ArrayLike,
    d: ArrayLike,
    method: str = "newton",
    *,
    tol: float = 1e-14,
    max_iter: int = 100,
) -> np.ndarray:
    """Maximum-likelihood concentration κ̂ from a mean resultant length, solving A_d(κ) = rbar.

    Parameters
    ----------
    rbar : array-like of float in [0, 1)
        Mean resultant length ‖Σ w_i x_i‖ / Σ w_i of unit vectors.
    d : int or array-like of int, >= 2
        Ambient dimension.
    method : {"newton", "banerjee", "sra", "song"}, default="newton"
        * ``"newton"``: safeguarded Newton iteration to convergence (``tol``) inside the
          Hornik–Grün bounds (:func:`kappa_bounds`). Started from the lower bound, the
          iteration is monotone because A_d is increasing and concave. The accurate choice.
        * ``"banerjee"``: the closed-form approximation rbar (d - rbar²) / (1 - rbar²)
          of Banerjee et al. (2005).
        * ``"sra"``: Banerjee's value refined by two Newton steps (Sra 2012).
        * ``"song"``: Banerjee's value refined by two Halley steps (Song et al. 2012).
    tol : float, default=1e-14
        Relative step size at which ``"newton"`` stops.
    max_iter : int, default=100
        Iteration cap for ``"newton"``.

    Returns
    -------
    ndarray of float64
        κ̂ >= 0, 0 where rbar == 0.
    """
    if method not in _KAPPA_METHODS:
        raise ValueError(f"method must be one of {_KAPPA_METHODS}; got {method!r}.")
    if not (isinstance(tol, Real) and np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite number > 0; got {tol!r}.")
    if not isinstance(max_iter, Integral) or isinstance(max_iter, bool) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1; got {max_iter!r}.")
    r = _check_rbar(rbar)
    d = _check_dim(d)
    r, d = _broadcast(rbar=r, d=d)
    one_minus_r = (1.0 - r) * (1.0 + r)
    banerjee = r * (d - r * r) / one_minus_r
    if method == "banerjee":
        return banerjee

    def newton_step(kappa, r, d):
        with np.errstate(divide="ignore"):
            log_a = _log_bessel_ratio(d / 2.0 - 1.0, kappa)
        a = np.exp(log_a)
        f = (1.0 - r) + np.expm1(log_a)  # A - r, accurate when both are near 1
        with np.errstate(divide="ignore", invalid="ignore"):
            da = 1.0 - a * a - (d - 1.0) * (a / kappa)  # a/κ stays finite as κ → 0
        return a, f, da

    if method in ("sra", "song"):
        kappa = banerjee.copy()
        for _ in range(2):
            positive = kappa > 0
            a, f, da = newton_step(np.where(positive, kappa, 1.0), r, d)
            if method == "sra":
                step = f / da
            else:
                kk = np.where(positive, kappa, 1.0)
                d2a = -2.0 * a * da - (d - 1.0) / kk * da + (d - 1.0) * a / (kk * kk)
                step = 2.0 * f * da / (2.0 * da * da - f * d2a)
            kappa = np.where(positive, kappa - step, 0.0)
        return np.maximum(kappa, 0.0)

    shape = r.shape
    r, d = r.ravel(), d.ravel()
    lower, upper = kappa_bounds(r, d)
    kappa = lower.copy()
    active = np.flatnonzero(r > 0)
    kappa[r == 0] = 0.0
    last_step = np.full(r.shape, np.inf)
    for _ in range(max_iter):
        if active.size == 0:
            break
        k, lo, hi = kappa[active], lower[active], upper[active]
        _, f, da = newton_step(k, r[active], d[active])
        with np.errstate(divide="ignore", invalid="ignore"):
            new = k - f / da
        # Safeguard: stay inside the bracket (rounding can push a step just outside it).
        new = np.where(np.isfinite(new), np.clip(new, lo, hi), 0.5 * (lo + hi))
        kappa[active] = new
        # Monotone convergence means shrinking steps; a step that does not shrink is
        # rounding noise at the floor set by rbar's own precision.
        step = np.abs(new - k)
        keep = (step > tol * new) & (step < 0.5 * last_step[active])
        last_step[active] = step
        active = active[keep]
    return kappa.reshape(shape)


def sample_vmf(mu: ArrayLike, kappa: float, n_samples: int, random_state=None) -> np.ndarray:
    """Draw samples from vMF(μ, κ) on S^(d-1).

    Wood's (1994) rejection sampler for the cosine w = μᵀx, written in the stable form
    ``1 - w = 2bZ / (1 - (1-b)Z)``, then a uniform tangent direction and one Householder
    reflection that maps e₁ to μ: O(n d) time and memory, no d×d matrix.

    Parameters
    ----------
    mu : array-like of shape (d,)
        Mean direction; normalised here (must be non-zero and finite).
    kappa : float >= 0
        Concentration; 0 gives the uniform distribution on the sphere.
    n_samples : int >= 0
    random_state : None, int or numpy.random.Generator/RandomState

    Returns
    -------
    ndarray of shape (n_samples, d), rows of unit norm.
    """
    from sklearn.utils import check_random_state

    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 1:
        raise ValueError(f"mu must be a 1-D array (d,); got shape {mu.shape}.")
    d = mu.shape[0]
    _check_dim(d)
    norm = np.linalg.norm(mu)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("mu must be finite and non-zero.")
    mu = mu / norm
    kappa_array = _check_kappa(kappa)
    if kappa_array.ndim:
        raise ValueError(f"kappa must be a single number; got shape {kappa_array.shape}.")
    kappa = float(kappa_array)
    if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 0:
        raise ValueError(f"n_samples must be a non-negative integer; got {n_samples!r}.")
    n_samples = int(n_samples)
    # the output and the sampler's per-row work arrays, float64
    needed = 8 * n_samples * (d + 8)
    available = physical_memory()
    if available is not None and needed > available:
        raise ValueError(
            f"n_samples={n_samples} points in dimension {d} need about {needed / 2**30:.3g} "
            f"GiB, more than this machine's {available / 2**30:.3g} GiB; draw them in batches"
        )
    rng = random_state if isinstance(random_state, np.random.Generator) else None
    if rng is None:
        rng = np.random.default_rng(check_random_state(random_state).randint(2**32 - 1))

    # Wood (1994), written without cancellation so that it holds up to κ ~ 1e308: with
    # b = (d-1)/(2κ + √(4κ² + (d-1)²)) and x0 = (1-b)/(1+b), a proposal w is accepted when
    #   κ (w - x0) + (d-1) [log(1 - x0 w) - log(1 - x0²)] >= log u,
    # and every difference is formed from the small quantities 1 - x0 and 1 - w directly.
    dm1 = d - 1.0
    # b = (d-1) / (2κ + √(4κ² + (d-1)²)); for huge κ in the scaled form
    # (d-1)/κ / (2 + √(4 + ((d-1)/κ)²)), where 2κ would overflow (and (d-1)/κ cannot)
    if kappa < 1e150:
        b = dm1 / (2.0 * kappa + np.hypot(2.0 * kappa, dm1))
    else:
        b = (dm1 / kappa) / (2.0 + np.hypot(2.0, dm1 / kappa))
    one_minus_x0 = 2.0 * b / (1.0 + b)
    log_one_minus_x0_sq = np.log(one_minus_x0) + np.log1p(1.0 - one_minus_x0)
    one_minus_w = np.empty(n_samples)
    one_plus_w = np.empty(n_samples)
    todo = np.arange(n_samples)
    for _ in range(_SAMPLER_MAX_ROUNDS):
        if not todo.size:
            break
        z = rng.beta(dm1 / 2.0, dm1 / 2.0, size=todo.size)
        denom = 1.0 - (1.0 - b) * z
        omw = 2.0 * b * z / denom
        opw = 2.0 * (1.0 - z) / denom
        with np.errstate(divide="ignore"):  # log(0) = -inf for a zero 1 - x0 w: reject
            log_one_minus_x0w = np.log(one_minus_x0 + omw - one_minus_x0 * omw)
        log_u = np.log(rng.uniform(size=todo.size))
        score = kappa * (one_minus_x0 - omw) + dm1 * (log_one_minus_x0w - log_one_minus_x0_sq)
        accept = score >= log_u
        one_minus_w[todo[accept]] = omw[accept]
        one_plus_w[todo[accept]] = opw[accept]
        todo = todo[~accept]
    if todo.size:  # the acceptance rate is above 1/2 for every d and κ; this is a bug
        raise RuntimeError(
            f"vMF rejection sampler: {todo.size} of {n_samples} draws not accepted after "
            f"{_SAMPLER_MAX_ROUNDS} rounds (d={d}, kappa={kappa}); please report this"
        )

    w = 1.0 - one_minus_w
    # Uniform direction in the tangent space of e1 (coordinates 2..d).
    v = rng.standard_normal((n_samples, d - 1))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    x = np.empty((n_samples, d))
    x[:, 0] = w
    x[:, 1:] = np.sqrt(one_minus_w * one_plus_w)[:, None] * v
    # Householder reflection H = I - 2 u uᵀ with u ∝ e1 - μ maps e1 to μ.
    u = -np.array(mu, dtype=np.float64)
    u[0] += 1.0
    u_norm = np.linalg.norm(u)
    if u_norm > 0:
        u /= u_norm
        x -= 2.0 * (x @ u)[:, None] * u[None, :]
    return x
