"""The unit sphere in NumPy/SciPy: point operations and the von Mises–Fisher distribution.

The bottom layer of sphereml. Every operation accepts NumPy arrays and torch tensors and
returns the kind it was given; torch is imported only inside functions that receive a
tensor, so this layer needs neither torch nor scikit-learn's estimators.

- :mod:`sphereml.sphere._ops` (re-exported here and as :mod:`sphereml.geometry`):
  :func:`unit_norm`, :func:`l2_normalize`, :func:`geodesic_distance`,
  :func:`project_to_tangent`, :func:`exp_map`, :func:`log_map`.
- :mod:`sphereml.sphere.vmf` (also :mod:`sphereml.vmf`): log-normalisers, mean resultant
  lengths, κ estimation and sampling.
"""

from . import vmf
from ._ops import (
    NORM_EPS,
    exp_map,
    geodesic_distance,
    l2_normalize,
    log_map,
    project_to_tangent,
    unit_norm,
)

__all__ = [
    "NORM_EPS",
    "exp_map",
    "geodesic_distance",
    "l2_normalize",
    "log_map",
    "project_to_tangent",
    "unit_norm",
    "vmf",
]
