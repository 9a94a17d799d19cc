"""Optimisers with "the same API as Adam" for constrained and metric-aware training.

- :class:`RiemannianAdam`: Adam on products of unit spheres (tangent-space moments,
  retraction), Euclidean for unconstrained parameters.
- :class:`DiagonalNaturalGradient`: natural gradient preconditioned by a learned metric
  pulled back to parameter space (diagonal estimate), Adam for unmeasured parameters.
"""

from .natural_gradient import DiagonalNaturalGradient
from .riemannian_adam import RiemannianAdam

__all__ = ["DiagonalNaturalGradient", "RiemannianAdam"]
