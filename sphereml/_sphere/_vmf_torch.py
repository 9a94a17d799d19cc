"""The vMF special functions that an EM iteration needs, as torch code with static control flow.

:mod:`sphereml._sphere.vmf` is the reference (NumPy/SciPy, float64, validated arguments).
This module evaluates the same quantities on a torch device so that a whole EM iteration
— E-step, M-step and κ estimation — can run there without the host: no data-dependent
branches (every regime is computed and selected with ``torch.where``), no SciPy, and a
fixed number of Newton steps, so the code can be captured in a CUDA graph or compiled.

The order ν = d/2 - 1 is a Python number (the data's dimension), so branching on it is
static. For ν >= 30 the uniform (Debye) expansion is accurate at every κ, as in the
reference. For ν < 30 the reference calls SciPy's ``ive``; here the Bessel ratio
r_ν = I_(ν+1)/I_ν is carried down from order ν + m >= 30 by the backward recurrence
r_(j-1) = 1 / (2j/κ + r_j), which is stable for I (the dominant solution in decreasing
order), and log I_ν = log I_(ν+m) - Σ log r_j. The complement s_j = 1 - r_j has its own
cancellation-free recurrence s_(j-1) = (2j/κ - s_j) / (2j/κ + 1 - s_j), which κ estimation
needs when r̄ is close to 1. Inputs are float64 tensors of concentrations with κ >= 0;
callers validate.
"""

from __future__ import annotations

import math

import numpy as np

from .vmf import (
    _DEBYE_MIN_NU,
    _DEBYE_TERMS,
    _LOG_2PI,
    _SERIES_TERMS,
    _SERIES_X,
    _debye_coefficients,
)

# Newton steps for A_d(κ) = r̄ from the Hornik–Grün lower bound; the reference converges in
# 3-4 (tests/test_vmf.py), and the update freezes at the rounding floor like the reference.
NEWTON_STEPS = 4
# Convergence is quadratic, so a last step below this (relative) leaves an error of its
# square; a larger one marks the entry unfinished.
_FINISHED_STEP = 1e-7


def _series_sum(nu: float, t):
    """Σ_k t^k / (k! (ν+1)_k), the power series of I_ν with its leading term divided out."""
    import torch

    k = torch.arange(1, _SERIES_TERMS, dtype=t.dtype, device=t.device)
    # a few kernels instead of one per term: the terms are running products of t/(k(ν+k))
    return 1.0 + torch.cumprod(t[..., None] / (k * (nu + k)), dim=-1).sum(dim=-1)


_CONSTANTS: dict = {}


def _debye_constants(orders: tuple[float, ...], like):
    """Device tensors for the Debye series at ``orders``: ν (orders, 1), the coefficient
    matrix of u_k, the powers of p and ν^-k (orders, 1, terms). Built once per order set,
    dtype and device, so a captured CUDA graph never copies from the host."""
    import torch

    key = (orders, like.dtype, like.device)
    if key not in _CONSTANTS:
        coefficients = _debye_coefficients()
        nu = np.asarray(orders, dtype=np.float64)[:, None]
        _CONSTANTS[key] = tuple(
            torch.as_tensor(a, dtype=like.dtype, device=like.device)
            for a in (
                nu,
                coefficients.T.copy(),
                np.arange(coefficients.shape[1], dtype=np.float64),
                (1.0 / nu[:, :, None]) ** np.arange(1, _DEBYE_TERMS + 1),
            )
        )
    return _CONSTANTS[key]


def _debye_parts(orders: tuple[float, ...], kappa):
    """``s = sqrt(ν² + κ²)`` and ``log S`` (the Debye series in 1/ν, see the reference)
    for every order in ``orders`` at once: shapes (len(orders), *kappa.shape)."""
    import torch

    nu, coefficients_t, powers, inv_nu_powers = _debye_constants(orders, kappa)
    s = torch.sqrt(nu * nu + kappa * kappa)
    u = ((nu / s)[..., None] ** powers) @ coefficients_t  # u_k(p), k = 1.._DEBYE_TERMS
    return s, torch.log1p((u * inv_nu_powers).sum(dim=-1))


def _log_iv_debye(nu: float, kappa):
    import torch

    (s,), (log_series,) = _debye_parts((nu,), kappa)
    return s + nu * torch.log(kappa / (nu + s)) - 0.5 * torch.log(2.0 * math.pi * s) + log_series


def _log_ratio_debye(nu: float, kappa):
    """log(I_(ν+1)/I_ν) for ν >= 30, with the order difference taken analytically."""
    import torch

    (s0, s1), (log_s0, log_s1) = _debye_parts((nu, nu + 1.0), kappa)
    ds = (2.0 * nu + 1.0) / (s1 + s0)
    return (
        ds
        + torch.log(kappa / (nu + 1.0 + s1))
        - nu * torch.log1p((1.0 + ds) / (nu + s0))
        - 0.5 * torch.log1p(ds / s0)
        + (log_s1 - log_s0)
    )


def _steps_to_debye(nu: float) -> int:
    """Recurrence steps m so that ν + m reaches the Debye regime (0 when ν already does)."""
    return max(0, math.ceil(_DEBYE_MIN_NU - nu))


def _ratio_and_complement(nu: float, kappa):
    """r_ν = I_(ν+1)(κ)/I_ν(κ), 1 - r_ν and Σ log r over the recurrence (zero for ν >= 30),
    for κ > 0 outside the series regime."""
    import torch

    m = _steps_to_debye(nu)
    top = nu + m
    log_r = _log_ratio_debye(top, kappa)
    r, s = torch.exp(log_r), -torch.expm1(log_r)
    log_r_sum = torch.zeros_like(kappa)
    for j in range(m, 0, -1):  # from order top down to nu: r_(j-1) from r_j
        order = nu + j
        two_j = 2.0 * order / kappa
        r, s = 1.0 / (two_j + r), (two_j - s) / (two_j + 1.0 - s)
        log_r_sum = log_r_sum + torch.log(r)
    return r, s, log_r_sum


def _in_series_regime(nu: float, kappa):
    return kappa * kappa / 4.0 <= _SERIES_X * (nu + 1.0)


def log_normalizer(kappa, d: int):
    """log C_d(κ) for a float64 tensor κ >= 0 (same values as :func:`vmf.log_normalizer`)."""
    import torch

    nu = d / 2.0 - 1.0
    series = _in_series_regime(nu, kappa)
    k_series = torch.where(series, kappa, torch.zeros_like(kappa))
    k_rest = torch.where(series, torch.ones_like(kappa), kappa)
    from_series = (
        nu * math.log(2.0) + math.lgamma(nu + 1.0) - torch.log(_series_sum(nu, k_series**2 / 4.0))
    )
    m = _steps_to_debye(nu)
    log_iv_top = _log_iv_debye(nu + m, k_rest)
    if m:
        _, _, log_r_sum = _ratio_and_complement(nu, k_rest)
        # log I_ν = log I_(ν+m) - Σ_(j=0)^(m-1) log r_(ν+j)
        log_iv = log_iv_top - log_r_sum
    else:
        log_iv = log_iv_top
    from_rest = nu * torch.log(k_rest) - log_iv
    return torch.where(series, from_series, from_rest) - d / 2.0 * _LOG_2PI


def bessel_ratio_terms(kappa, d: int):
    """A_d(κ) and 1 - A_d(κ) for κ > 0, both to full relative precision.

    The Debye expansion (at order ν + m >= 30, carried down by the recurrence) is accurate
    at every κ > 0, so unlike :func:`log_normalizer` no series regime is needed here.
    """
    r, s, _ = _ratio_and_complement(d / 2.0 - 1.0, kappa)
    return r, s


def kappa_bounds(rbar, d: int):
    """Hornik–Grün bounds on the κ MLE (see :func:`vmf.kappa_bounds`)."""
    import torch

    nu = d / 2.0 - 1.0
    r = rbar

    def invert(alpha, beta):
        return (
            r
            * (alpha + torch.sqrt(r * r * alpha * alpha + (1 - r * r) * beta * beta))
            / ((1.0 - r) * (1.0 + r))
        )

    lower = torch.maximum(invert(nu + 0.5, nu + 0.5), invert(nu, nu + 2.0))
    return lower, invert(nu + 0.5, nu + 1.5)


def estimate_kappa(rbar, d: int, method: str = "newton"):
    """κ̂ solving A_d(κ) = r̄ for a float64 tensor r̄ in [0, 1), as :func:`vmf.estimate_kappa`.

    Returns ``(kappa, unfinished)``: ``unfinished`` flags entries where ``"newton"`` was
    still moving after :data:`NEWTON_STEPS` steps (the caller then asks the reference).
    """
    import torch

    r = rbar
    one_minus_r2 = (1.0 - r) * (1.0 + r)
    banerjee = r * (d - r * r) / one_minus_r2
    unfinished = torch.zeros_like(r, dtype=torch.bool)
    if method == "banerjee":
        return banerjee, unfinished
    positive = r > 0

    def newton_terms(kappa):
        a, one_minus_a = bessel_ratio_terms(kappa, d)
        # A - r̄: from the complements when both are near 1, directly otherwise
        f = torch.where(a < 0.5, a - r, (1.0 - r) - one_minus_a)
        da = 1.0 - a * a - (d - 1.0) * (a / kappa)
        return a, f, da

    if method in ("sra", "song"):
        kappa = banerjee
        for _ in range(2):
            safe = torch.where(kappa > 0, kappa, torch.ones_like(kappa))
            a, f, da = newton_terms(safe)
            if method == "sra":
                step = f / da
            else:
                d2a = -2.0 * a * da - (d - 1.0) / safe * da + (d - 1.0) * a / (safe * safe)
                step = 2.0 * f * da / (2.0 * da * da - f * d2a)
            kappa = torch.where(kappa > 0, kappa - step, torch.zeros_like(kappa))
        return torch.clamp_min(kappa, 0.0), unfinished

    safe_r = torch.where(positive, r, torch.full_like(r, 0.5))
    lower, upper = kappa_bounds(safe_r, d)
    kappa = lower
    active = positive
    last_step = torch.full_like(r, math.inf)
    for _ in range(NEWTON_STEPS):
        _, f, da = newton_terms(kappa)
        new = kappa - f / da
        new = torch.where(
            torch.isfinite(new), torch.clamp(new, lower, upper), 0.5 * (lower + upper)
        )
        step = (new - kappa).abs()
        kappa = torch.where(active, new, kappa)
        keep = (step > 1e-14 * new) & (step < 0.5 * last_step)
        last_step = torch.where(active, step, last_step)
        active = active & keep
    unfinished = active & (last_step > _FINISHED_STEP * kappa)
    return torch.where(positive, kappa, torch.zeros_like(kappa)), unfinished
