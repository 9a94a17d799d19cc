"""The EM step maths of the vMF mixture as functions: the closed-form M-step (shared by the
host loop and the device loop), the online step size, statistics from parameters, the
per-component constants, and the block functions that reduce a block of rows (the whole
matrix, or one dask chunk) to statistics that add up over blocks."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._sphere import vmf
from .._sphere.vmf import RBAR_MAX
from ._backend import top_rows

__all__ = [
    "log_offsets",
    "parameters_from_statistics",
    "nearest_statistics",
    "online_step_size",
    "posterior_statistics",
    "statistics_from_parameters",
    "worst_explained_rows",
]


def parameters_from_statistics(counts, resultants, old_means, *, kappa, estimate_kappa, min_weight):
    """The closed-form M-step from n_k and r_k, for NumPy arrays and torch tensors alike.

    Parameters
    ----------
    counts : array of shape (n_components,)
        Weighted responsibilities n_k = Σ_i w_i γ_ik.
    resultants : array of shape (n_components, n_features)
        r_k = Σ_i w_i γ_ik x_i.
    old_means : array of shape (n_components, n_features)
        Kept for a component whose resultant vanished.
    kappa : {"free", "tied"} or float
        The estimator's ``kappa``.
    estimate_kappa : callable
        ``estimate_kappa(rbar) -> (kappas, unfinished)`` on an array of mean resultant
        lengths; ``unfinished`` flags a Newton iteration still moving (or is None).
    min_weight : float
        A component below this weight, or with a zero resultant, is flagged collapsed.

    Returns
    -------
    weights, means, kappas, collapsed, unfinished
        π_k = n_k / N, μ_k = r_k / ‖r_k‖, κ_k from r̄_k = ‖r_k‖ / n_k (clipped below 1), the
        collapsed flags, and ``estimate_kappa``'s ``unfinished`` (None for a fixed κ).
    """
    norm: Any
    where: Any
    clip: Any
    if isinstance(counts, np.ndarray):
        norm, where, clip = (lambda a: np.linalg.norm(a, axis=1)), np.where, np.clip
    else:  # a torch tensor
        import torch

        norm, where = (lambda a: torch.linalg.vector_norm(a, dim=1)), torch.where
        clip = torch.clamp
    total = counts.sum()
    lengths = norm(resultants)
    weights = counts / total
    with np.errstate(invalid="ignore", divide="ignore"):  # empty components, resolved by where
        means = where(lengths[:, None] > 0, resultants / lengths[:, None], old_means)
        rbar = clip(where(counts > 0, lengths / counts, 0.0 * counts), 0.0, RBAR_MAX)
    unfinished = None
    if kappa == "free":
        kappas, unfinished = estimate_kappa(rbar)
    elif kappa == "tied":
        tied, unfinished = estimate_kappa(clip(lengths.sum() / total, 0.0, RBAR_MAX)[None])
        kappas = 0.0 * counts + tied
    else:
        kappas = 0.0 * counts + float(kappa)
    collapsed = (weights < min_weight) | (lengths <= 0)
    return weights, means, kappas, collapsed, unfinished


def online_step_size(weight_seen: float, batch_weight: float, offset: float, decay: float) -> float:
    """Step ρ of online EM for a batch of total weight ``batch_weight``.

    ``t = (weight_seen + batch_weight) / batch_weight`` counts the batches of this weight
    seen so far, this one included (the t-th batch when all weigh alike), and
    ``ρ = max(1 / t, (t + offset) ** -decay)``: the running statistics are the plain
    average of the batches until the Cappé–Moulines step ``(t + offset) ** -decay`` is the
    larger, and then forget older batches at that rate. The first batch (nothing seen)
    gets ρ = 1.
    """
    t = (weight_seen + batch_weight) / batch_weight
    return float(max(1.0 / t, (t + offset) ** -decay))


def statistics_from_parameters(
    weights: np.ndarray, means: np.ndarray, kappas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The per-sample statistics (n_k / N, r_k / N) whose M-step gives these parameters:
    n_k / N = π_k and r_k / N = π_k A_d(κ_k) μ_k (the MLE's r̄_k = A_d(κ_k))."""
    rbar = np.asarray(vmf.mean_resultant_length(kappas, means.shape[1]), dtype=np.float64)
    return weights.copy(), (weights * rbar)[:, None] * means


def log_offsets(weights: np.ndarray, kappas: np.ndarray, n_features: int) -> np.ndarray:
    """log π_k + log C_d(κ_k): the per-component constant of log π_k f_k(x)."""
    with np.errstate(divide="ignore"):  # a zero weight is a legitimate -inf
        return np.log(weights) + vmf.log_normalizer(kappas, n_features)


# Block functions: one pass over a block of rows (the whole matrix, or one dask chunk),
# reduced to statistics that add up over blocks. Module-level so dask can ship them.
def posterior_statistics(backend, offset, posterior_type, params, offsets, seed):
    """Σ w γ (k,), Σ w γ x (k, d) and Σ w log p(x) (shifted by the offsets' shift)."""
    _, means, kappas = params
    log_prob = backend.log_prob(backend.cosines(means), kappas, offsets)
    rng = None if seed is None else np.random.default_rng([seed, offset])
    resp, log_norm = backend.posterior(log_prob, posterior_type, rng)
    counts, resultants = backend.sufficient_statistics(resp)
    return counts, resultants, backend.weighted_sum(log_norm)


def nearest_statistics(backend, offset, means):
    """n_k and r_k of the partition by nearest mean direction."""
    return backend.sufficient_statistics(backend.nearest(means))


def worst_explained_rows(backend, offset, posterior_type, params, offsets, n):
    """The ``n`` rows of lowest log-likelihood (the E-step's objective) under ``params``."""
    _, means, kappas = params
    log_prob = backend.log_prob(backend.cosines(means), kappas, offsets)
    _, log_norm = backend.posterior(log_prob, posterior_type, None)
    return top_rows(-np.asarray(backend.to_numpy(log_norm)), offset, n)
