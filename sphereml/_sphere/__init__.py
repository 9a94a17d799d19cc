"""The unit sphere in NumPy/SciPy: point operations and the von Mises–Fisher distribution.

The bottom layer of sphereml, and private: its public doors are :mod:`sphereml.geometry`
(the point operations) and :mod:`sphereml.vmf` (the vMF functions). Every operation
accepts NumPy arrays and torch tensors and returns the kind it was given; torch is
imported only inside functions that receive a tensor, so this layer needs neither torch
nor scikit-learn's estimators.
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
