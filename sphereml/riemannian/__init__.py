"""Torch differential geometry: the sphere as a manifold of weights, and metric fields.

- :mod:`~sphereml.riemannian.manifold`: :class:`UnitSphere` and :class:`SphereParameter`,
  the unit-norm constraint of model weights (projection, tangent projection, retraction).
- :mod:`~sphereml.riemannian.curvature`: the scalar curvature of a batched metric field,
  exact from the metric's 2-jet or by random probes, differentiable.
- :mod:`~sphereml.riemannian.cholesky_metric`: closed-form jets and curvature of metric
  fields ``g = L Lᵀ + εI`` whose factor comes from a tanh MLP.
"""

from .curvature import (
    MAX_EXACT_DIM,
    metric_jet,
    scalar_curvature,
    scalar_curvature_exact,
    scalar_curvature_hutchinson,
)
from .manifold import (
    SphereParameter,
    UnitSphere,
    constrain_unit_norm,
    max_norm_deviation,
    renormalize_,
    unit_norm_dim,
)

__all__ = [
    "MAX_EXACT_DIM",
    "SphereParameter",
    "UnitSphere",
    "constrain_unit_norm",
    "max_norm_deviation",
    "metric_jet",
    "renormalize_",
    "scalar_curvature",
    "scalar_curvature_exact",
    "scalar_curvature_hutchinson",
    "unit_norm_dim",
]
