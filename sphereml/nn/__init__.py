"""Torch modules of the neural estimators (no scikit-learn or skorch in here)."""

from .constraints import (
    RiemannianAdam,
    constrain_unit_norm,
    renormalize_,
    unit_norm,
    unit_norm_dim,
)
from .layers import (
    CosineHead,
    NormalizedProjection,
    NormalizedResidual,
    NormalizedSwiGLU,
    ScaledVector,
)
from .spherical import SphericalNet

__all__ = [
    "CosineHead",
    "NormalizedProjection",
    "NormalizedResidual",
    "NormalizedSwiGLU",
    "RiemannianAdam",
    "ScaledVector",
    "SphericalNet",
    "constrain_unit_norm",
    "renormalize_",
    "unit_norm",
    "unit_norm_dim",
]
