"""Deprecated: the sphere operations are public as :mod:`sphereml.geometry`, the vMF
functions as :mod:`sphereml.vmf`. This alias keeps older imports working."""

import warnings

from .._sphere import (
    NORM_EPS,
    exp_map,
    geodesic_distance,
    l2_normalize,
    log_map,
    project_to_tangent,
    unit_norm,
    vmf,
)

warnings.warn(
    "sphereml.sphere is deprecated: import the sphere operations from sphereml.geometry "
    "and the vMF functions from sphereml.vmf",
    DeprecationWarning,
    stacklevel=2,
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
