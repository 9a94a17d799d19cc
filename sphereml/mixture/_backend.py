"""The data-sized kernels of spherical EM, for NumPy (dense or CSR) and for torch devices.

The EM loops in :mod:`sphereml.mixture` keep their parameters (k means, k concentrations,
k weights) as small float64 NumPy arrays on the CPU. Only the passes over the data —
cosines ``X μᵀ`` with the posterior, and the weighted resultants ``Γᵀ X`` — run through a
backend, so the same loop drives a SciPy sparse matrix on the CPU, a dense tensor on a GPU
and a chunked dask array on a cluster (:mod:`._dask`).

A pass is a *block function* ``fn(backend, offset, *args) -> tuple`` that reduces one block
of rows (starting at row ``offset``) to small statistics. ``map_reduce`` runs it on the
whole matrix here, and on every chunk and sums the results in :class:`._dask.DaskBackend`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..utils._device import resolve_device


class _SingleBlock:
    """``map_reduce`` for a backend that holds its whole matrix as one block."""

    n_samples: int

    def map_reduce(self, fn, *args, combine=None):
        """``combine([fn(self, 0, *args)])``: the matrix is one block (default combine:
        the block's own result)."""
        return (combine or sum_results)([fn(self, 0, *args)])

    def total_weight(self) -> float:
        return float(self.sample_weight_numpy().sum())

    def sample_weight_numpy(self) -> np.ndarray:
        raise NotImplementedError


class NumpyBackend(_SingleBlock):
    """Kernels over a dense ndarray or a CSR matrix with unit rows (never densified)."""

    def __init__(self, X, sample_weight: np.ndarray):
        self.X = X
        self.dtype = X.dtype
        self.sample_weight = sample_weight
        self.n_samples = X.shape[0]

    def cosines(self, means: np.ndarray) -> np.ndarray:
        return np.asarray(self.X @ means.T.astype(self.dtype, copy=False), dtype=np.float64)

    def posterior(self, log_prob, posterior_type, rng):
        """Responsibilities and the per-sample objective from log π_k f_k(x_i).

        The objective is log Σ_k π_k f_k(x_i) (the mixture log-likelihood), except for
        hard EM, which increases the classification log-likelihood max_k log π_k f_k(x_i).
        """
        if posterior_type == "hard":
            labels = log_prob.argmax(axis=1)
            return one_hot(labels, log_prob.shape[1]), log_prob[np.arange(len(labels)), labels]
        top = log_prob.max(axis=1, keepdims=True)
        resp = np.exp(log_prob - top)
        total = resp.sum(axis=1, keepdims=True)
        log_norm = (top + np.log(total)).ravel()
        if posterior_type == "soft":
            resp /= total
        else:  # stochastic: one draw per row from the posterior
            resp /= total
            u = rng.random(self.n_samples)[:, None]
            draws = (np.cumsum(resp, axis=1) < u).sum(axis=1)
            resp = one_hot(np.minimum(draws, log_prob.shape[1] - 1), log_prob.shape[1])
        return resp, log_norm

    def sufficient_statistics(self, resp) -> tuple[np.ndarray, np.ndarray]:
        """Weighted counts n_k = Σ w_i γ_ik (k,) and resultants r_k = Σ w_i γ_ik x_i (k, d)."""
        weighted = resp * self.sample_weight[:, None]
        counts = weighted.sum(axis=0)
        weighted = weighted.astype(self.dtype, copy=False)
        if sp.issparse(self.X):
            resultants = np.asarray((self.X.T @ weighted).T)
        else:
            resultants = weighted.T @ self.X
        return counts, np.asarray(resultants, dtype=np.float64)

    def weighted_sum(self, values) -> float:
        return float(values @ self.sample_weight)

    def sample_weight_numpy(self) -> np.ndarray:
        return self.sample_weight

    def to_numpy(self, values) -> np.ndarray:
        return values

    def log_prob(self, cosines, kappas, offsets):
        """κ_k cos_ik + offset_k, the E-step's only n×k arithmetic."""
        return cosines * kappas + offsets

    def nearest(self, means):
        """One-hot assignment of each row to its most similar mean direction."""
        return one_hot(self.cosines(means).argmax(axis=1), means.shape[0])

    def take_rows(self, rows, dense: bool = True):
        """Rows ``rows`` of the matrix, shape (len(rows), d): a float64 ndarray, or with
        ``dense=False`` the matrix's own type and dtype (CSR stays CSR)."""
        x = self.X[np.asarray(rows)]
        if not dense:
            return x
        return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)


def one_hot(labels: np.ndarray, n_components: int) -> np.ndarray:
    """Hard responsibilities: row i is the unit vector e_(labels[i]), shape (n, k)."""
    resp = np.zeros((labels.shape[0], n_components))
    resp[np.arange(labels.shape[0]), labels] = 1.0
    return resp


class TorchBackend(_SingleBlock):
    """The same kernels on a torch device; the data are moved there once per fit.

    Float32 data stay float32 on the device (matrix products at full speed); the k-sized
    parameters enter in the data's dtype and the statistics come back as float64.
    """

    def __init__(self, X: np.ndarray, sample_weight: np.ndarray, device):
        import torch

        if sp.issparse(X):
            raise TypeError(
                "Sparse input is not supported on a torch device; pass a dense array or "
                "use device=None (the NumPy/SciPy path keeps CSR matrices sparse)."
            )
        self.torch = torch
        self.device = resolve_device(device)
        self.host_X = X  # seeding (k-means++) runs on the host copy
        self.X = torch.as_tensor(np.ascontiguousarray(X), device=self.device)
        self.dtype = self.X.dtype
        self.sample_weight = torch.as_tensor(sample_weight, dtype=self.dtype, device=self.device)
        self.n_samples = X.shape[0]

    def _t(self, a):
        return self.torch.as_tensor(np.asarray(a), dtype=self.dtype, device=self.device)

    def cosines(self, means: np.ndarray):
        return self.X @ self._t(means).T

    def posterior(self, log_prob, posterior_type, rng):
        torch = self.torch
        n_components = log_prob.shape[1]
        if posterior_type == "hard":
            top, labels = log_prob.max(dim=1)
            return torch.nn.functional.one_hot(labels, n_components).to(self.dtype), top
        log_norm = torch.logsumexp(log_prob, dim=1)
        if posterior_type == "soft":
            resp = torch.exp(log_prob - log_norm[:, None])
        else:
            resp = torch.exp(log_prob - log_norm[:, None])
            u = self._t(rng.random(self.n_samples))[:, None]
            draws = (torch.cumsum(resp, dim=1) < u).sum(dim=1).clamp_max(n_components - 1)
            resp = torch.nn.functional.one_hot(draws, n_components).to(self.dtype)
        return resp, log_norm

    def sufficient_statistics(self, resp):
        weighted = resp * self.sample_weight[:, None]
        counts = weighted.sum(dim=0)
        resultants = weighted.T @ self.X
        return (
            counts.double().cpu().numpy(),
            resultants.double().cpu().numpy(),
        )

    def weighted_sum(self, values) -> float:
        return float(values.double() @ self.sample_weight.double())

    def to_numpy(self, values) -> np.ndarray:
        return values.double().cpu().numpy()

    def take_rows(self, rows, dense: bool = True):
        x = self.host_X[np.asarray(rows)]
        return np.asarray(x, dtype=np.float64) if dense else x

    def log_prob(self, cosines, kappas, offsets):
        """κ_k cos_ik + offset_k in the data's dtype (the E-step's only n×k arithmetic)."""
        return cosines * self._t(kappas) + self._t(offsets)

    def nearest(self, means):
        labels = self.cosines(means).argmax(dim=1)
        return self.torch.nn.functional.one_hot(labels, means.shape[0]).to(self.dtype)

    def sample_weight_numpy(self) -> np.ndarray:
        return self.sample_weight.double().cpu().numpy()


def sum_results(results):
    """Element-wise sum of the blocks' tuples of statistics (arrays or floats)."""
    if len(results) == 1:
        return results[0]
    return tuple(sum(parts[1:], start=parts[0]) for parts in zip(*results, strict=True))


def worst_served_rows(backend, offset: int, means: np.ndarray, n: int):
    """Block function: the ``n`` rows least similar to their nearest mean direction,
    as (global row indices, badness) with the worst first."""
    badness = -np.asarray(backend.to_numpy(backend.cosines(means))).max(axis=1)
    return top_rows(badness, offset, n)


def top_rows(badness: np.ndarray, offset: int, n: int):
    """Indices (shifted by ``offset``) and values of the ``n`` largest ``badness``, largest
    first, ties by row order, so merging blocks gives the same rows as one global sort."""
    order = np.argsort(-badness, kind="stable")[:n]
    return offset + order, badness[order]


def merge_top_rows(results, n: int):
    """Combine per-block :func:`top_rows` results into the global top ``n`` indices."""
    rows = np.concatenate([r[0] for r in results])
    badness = np.concatenate([r[1] for r in results])
    order = np.lexsort((rows, -badness))[:n]
    return rows[order]
