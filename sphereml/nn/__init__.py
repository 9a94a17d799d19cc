"""Torch modules of the neural estimators (no scikit-learn or skorch in here).

Each model is built from a small frozen config dataclass: :class:`SphericalNet` from
:class:`SphericalNetConfig`, the text encoders of :mod:`sphereml.nn.ngpt` from
:class:`~sphereml.nn.ngpt.TextEncoderConfig`, :class:`~sphereml.nn.ndm.NDMNet` from
:class:`~sphereml.nn.ndm.NDMConfig`. Unit-norm weights are
:class:`~sphereml.riemannian.SphereParameter` objects; the weight manifold and its helpers
live in :mod:`sphereml.riemannian`, the optimisers in :mod:`sphereml.optim`.
"""

import warnings
from typing import Any

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
    "SphericalNet",
    "SphericalNetConfig",
    "SphericalNetEnsemble",
]

# names this package re-exported before they got one home each
_MOVED = {
    "SphereParameter": "sphereml.riemannian",
    "UnitSphere": "sphereml.riemannian",
    "constrain_unit_norm": "sphereml.riemannian",
    "max_norm_deviation": "sphereml.riemannian",
    "renormalize_": "sphereml.riemannian",
    "unit_norm_dim": "sphereml.riemannian",
    "unit_norm": "sphereml.geometry",
}


def __getattr__(name: str) -> Any:
    # PEP 562: the moved names still resolve, with a DeprecationWarning naming their home
    if name in _MOVED:
        import importlib

        home = _MOVED[name]
        warnings.warn(
            f"sphereml.nn.{name} is deprecated: import it from {home}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(home), name)
    raise AttributeError(f"module 'sphereml.nn' has no attribute {name!r}")
