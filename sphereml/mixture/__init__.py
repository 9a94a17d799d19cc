"""Mixtures and clusterings on the unit sphere (NumPy/SciPy; torch only for ``device=``)."""

from ._spherical_kmeans import SphericalKMeans
from ._vmf_mixture import VMFMixture

__all__ = ["VMFMixture", "SphericalKMeans"]
