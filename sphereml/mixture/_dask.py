"""Fitting on a dask array: every pass over the data runs per chunk on the dask workers.

A chunk is reduced to the same small statistics as the in-memory fit — weighted counts
n_k, resultants r_k and the log-likelihood sum (see the block functions of the estimators)
— and only those, of size k·(d + 2), travel back to the client, where they are summed and
the M-step runs. The data are never gathered, so a matrix larger than one machine's memory
can be fitted on a cluster; each chunk must fit in a worker's memory. Chunks may be dense
NumPy, SciPy sparse or pydata ``sparse`` arrays; they are validated and L2-normalised on
the workers in every pass (cheap next to the products; ``X.persist()`` keeps the raw chunks
in the cluster's memory between passes).

dask is imported only here and only when a dask array is passed.
"""

from __future__ import annotations

import copy
import functools
from functools import partial

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from .._sphere._ops import l2_normalize
from ._backend import NumpyBackend, sum_results
from ._validation import UNIT_NORM_TOL, row_norms


def is_dask_array(X) -> bool:
    """Whether X is a ``dask.array.Array`` (checked without importing dask)."""
    return type(X).__module__.startswith("dask.array") and hasattr(X, "chunks")


def validate_dask_data(estimator, X, *, reset: bool):
    """Check a dask array's shape and dtype without computing it; rows in one chunk each.

    The values (finite, non-zero rows, unit norm when ``normalize=False``) are checked on
    the workers, chunk by chunk, when the chunks are used.
    """
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D dask array, got {X.ndim} dimension(s).")
    unknown = [axis for axis in (0, 1) if any(np.isnan(c) for c in X.chunks[axis])]
    if unknown:
        what = " and ".join(("row", "column")[axis] for axis in unknown)
        raise ValueError(
            f"The dask array has unknown {what} chunk sizes (e.g. from boolean indexing, "
            "X[mask] or X[:, mask]); call X.compute_chunk_sizes() first."
        )
    n_samples, n_features = X.shape
    if n_samples == 0:
        raise ValueError(
            f"Found a dask array with 0 sample(s) (shape={X.shape}) while a minimum of 1 "
            "is required."
        )
    if reset:
        if n_features < 2:
            raise ValueError(
                f"Found array with {n_features} feature(s) (shape={X.shape}) while a minimum "
                "of 2 is required (the sphere S^0 has no geometry)."
            )
        estimator.n_features_in_ = n_features
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif n_features != estimator.n_features_in_:
        raise ValueError(
            f"X has {n_features} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    if X.dtype not in (np.float32, np.float64):
        if X.dtype.kind not in "biuf":
            raise ValueError(f"Expected a numeric dask array, got dtype {X.dtype}.")
        X = X.astype(np.float64)
    if len(X.chunks[1]) > 1:  # a row's norm and products need all of its features
        X = X.rechunk({1: -1})
    return X


def _prepare_block(block, offset: int, normalize: bool):
    """One chunk as a unit-row ndarray or CSR matrix (the in-memory fit's input rules)."""
    if not isinstance(block, np.ndarray) and not sp.issparse(block):
        if hasattr(block, "to_scipy_sparse"):  # pydata sparse (COO, GCXS)
            block = block.to_scipy_sparse()
        else:
            block = np.asarray(block)
    if sp.issparse(block):
        block = sp.csr_matrix(block)
        values = block.data
    else:
        values = block
    if values.dtype not in (np.float32, np.float64):
        block = block.astype(np.float64)
        values = block.data if sp.issparse(block) else block
    if not np.all(np.isfinite(values)):
        raise ValueError(f"Input contains NaN or infinity (in the chunk at row {offset}).")
    try:
        if normalize:
            return l2_normalize(block)
        norms = row_norms(block)
        bad = np.flatnonzero(np.abs(norms - 1.0) > UNIT_NORM_TOL)
        if bad.size:
            raise ValueError(
                f"normalize=False but {bad.size} row(s) do not have unit norm (e.g. row "
                f"{bad[0]} has norm {norms[bad[0]]:.6g}). Pass normalize=True or "
                "L2-normalise the rows."
            )
        return block
    except ValueError as error:
        raise ValueError(f"{error} (row numbers within the chunk at row {offset})") from None


def _run_block(block, sample_weight, offset, normalize, fn, args):
    X = _prepare_block(block, offset, normalize)
    return fn(NumpyBackend(X, sample_weight), offset, *args)


class DaskBackend:
    """The backend interface over the row chunks of a dask array.

    ``map_reduce`` sends a block function to every chunk (the shared arguments once per
    pass) and combines the per-chunk results on the client.
    """

    def __init__(self, X, sample_weight: np.ndarray, *, normalize: bool):
        self.X = X
        self.dtype = X.dtype
        self.normalize = normalize
        self.sample_weight = sample_weight
        self.n_samples = X.shape[0]
        self._blocks = X.to_delayed()[:, 0]
        self._offsets = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).astype(int)

    def map_reduce(self, fn, *args, combine=None):
        import dask

        shared = dask.delayed(args, traverse=False)
        tasks = [
            dask.delayed(_run_block, pure=True)(
                block,
                self.sample_weight[offset : offset + size],
                int(offset),
                self.normalize,
                fn,
                shared,
            )
            for block, offset, size in zip(
                self._blocks, self._offsets, self.X.chunks[0], strict=True
            )
        ]
        return (combine or sum_results)(list(dask.compute(*tasks)))

    def total_weight(self) -> float:
        return float(self.sample_weight.sum())

    def sample_weight_numpy(self) -> np.ndarray:
        return self.sample_weight

    def take_rows(self, rows, dense: bool = True):
        """Rows ``rows`` (any order, repeats allowed), normalised: float64 ndarray, or with
        ``dense=False`` CSR when the chunks are sparse."""
        import dask

        rows = np.asarray(rows)
        unique, inverse = np.unique(rows, return_inverse=True)
        parts = []
        for block, offset, size in zip(self._blocks, self._offsets, self.X.chunks[0], strict=True):
            local = unique[(unique >= offset) & (unique < offset + size)] - offset
            if local.size:
                parts.append(
                    dask.delayed(_take_rows_of_block)(
                        block, local, int(offset), self.normalize, dense
                    )
                )
        pieces = dask.compute(*parts)
        if any(sp.issparse(p) for p in pieces):
            return sp.csr_matrix(sp.vstack(pieces, format="csr"))[inverse]
        return np.vstack(pieces)[inverse]


def _take_rows_of_block(block, local_rows, offset, normalize, dense):
    X = _prepare_block(block, offset, normalize)
    return NumpyBackend(X, np.ones(X.shape[0])).take_rows(local_rows, dense=dense)


def map_method(estimator, method: str, X, n_outputs: int | None, dtype):
    """``getattr(estimator, method)`` applied to each row chunk of the dask array X, lazily:
    a dask array of shape (n_samples,) or (n_samples, n_outputs)."""
    X = validate_dask_data(estimator, X, reset=False)
    # A shallow copy as it is now: the graph must not reach a lazy attribute (labels_)
    # that is itself built from this graph.
    call = partial(_call_method, estimator=copy.copy(estimator), method=method)
    if n_outputs is None:
        return X.map_blocks(call, drop_axis=1, dtype=dtype, meta=np.empty(0, dtype))
    return X.map_blocks(
        call,
        chunks=(X.chunks[0], (n_outputs,)),
        dtype=dtype,
        meta=np.empty((0, 0), dtype),
    )


def _call_method(block, estimator, method):
    if not isinstance(block, np.ndarray) and not sp.issparse(block):
        block = block.to_scipy_sparse() if hasattr(block, "to_scipy_sparse") else np.asarray(block)
    return getattr(estimator, method)(block)


def maps_dask_chunks(n_outputs: str | None, dtype):
    """Decorator for a prediction method: a dask array input gives a lazy dask array, the
    method applied to each row chunk on the workers. ``n_outputs`` names the fitted
    attribute holding the output width (None: one value per row)."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, X, *args, **kwargs):
            if is_dask_array(X):
                check_is_fitted(self)
                width = None if n_outputs is None else getattr(self, n_outputs)
                return map_method(self, method.__name__, X, width, dtype)
            return method(self, X, *args, **kwargs)

        return wrapper

    return decorate
