"""Which backend computes a fit's passes over the data: a dask array's chunks, a torch
device, or NumPy/SciPy (:mod:`._backend`, :mod:`._dask`)."""

from __future__ import annotations

from ._backend import NumpyBackend, TorchBackend
from ._dask import DaskBackend, is_dask_array

__all__ = ["make_backend"]


def make_backend(X, sample_weight, device, normalize: bool = True):
    """The backend for validated data: a dask array's chunks (normalised block by block
    on the workers when ``normalize``), a torch device, or NumPy/SciPy."""
    if is_dask_array(X):
        if device is not None:
            raise ValueError(
                "device= is not supported with a dask array: the chunks are processed by "
                "the dask workers with NumPy/SciPy; pass device=None."
            )
        return DaskBackend(X, sample_weight, normalize=normalize)
    if device is None:
        return NumpyBackend(X, sample_weight)
    return TorchBackend(X, sample_weight, device)
