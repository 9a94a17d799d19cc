"""Geometry in one namespace: sphere operations and the curvature of metric fields.

A public facade over two layers: the NumPy/torch operations on the unit sphere (implemented
in the private ``sphereml._sphere``) and the torch differential geometry of learned metric
fields (:mod:`sphereml.riemannian`, imported on first use of :func:`scalar_curvature` so that
``import sphereml.geometry`` does not load torch).
"""

from __future__ import annotations

from typing import Any

from ._sphere._ops import (
    exp_map,
    geodesic_distance,
    l2_normalize,
    log_map,
    project_to_tangent,
    unit_norm,
)

__all__ = [
    "exp_map",
    "geodesic_distance",
    "l2_normalize",
    "log_map",
    "project_to_tangent",
    "scalar_curvature",  # noqa: F822 - provided lazily by __getattr__
    "unit_norm",
]


def __getattr__(name: str) -> Any:
    # PEP 562: the torch layer loads on first use of scalar_curvature
    if name == "scalar_curvature":
        from .riemannian.curvature import scalar_curvature

        return scalar_curvature
    raise AttributeError(f"module 'sphereml.geometry' has no attribute {name!r}")
