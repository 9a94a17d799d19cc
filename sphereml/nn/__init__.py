"""Torch modules of the neural estimators (no scikit-learn or skorch in here).

Each model is built from a small frozen config dataclass: :class:`SphericalNet` from
:class:`SphericalNetConfig`, the text encoders of :mod:`sphereml.nn.ngpt` from
:class:`~sphereml.nn.ngpt.TextEncoderConfig`, :class:`~sphereml.nn.ndm.NDMNet` from
:class:`~sphereml.nn.ndm.NDMConfig`. Unit-norm weights are
:class:`~sphereml.riemannian.SphereParameter` objects (re-exported here with the helpers
that read them); the optimisers live in :mod:`sphereml.optim`.
"""

from ..riemannian.manifold import (
    SphereParameter,
    UnitSphere,
    constrain_unit_norm,
    max_norm_deviation,
    renormalize_,
    unit_norm_dim,
)
from ..sphere._ops import unit_norm
from .layers import (
    CosineHead,
    NormalizedProjection,
    NormalizedResidual,
    NormalizedSwiGLU,
    ScaledVector,
)
from .spherical import SphericalNet, SphericalNetConfig, SphericalNetEnsemble

__all__ = [
    "CosineHead",
    "NormalizedProjection",
    "NormalizedResidual",
    "NormalizedSwiGLU",
    "ScaledVector",
    "SphereParameter",
    "SphericalNet",
    "SphericalNetConfig",
    "SphericalNetEnsemble",
    "UnitSphere",
    "constrain_unit_norm",
    "max_norm_deviation",
    "renormalize_",
    "unit_norm",
    "unit_norm_dim",
]
