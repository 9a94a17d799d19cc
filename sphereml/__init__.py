"""sphereml: scikit-learn estimators that learn on the unit hypersphere.

Estimators are imported lazily (PEP 562) so that ``import sphereml`` does not pull in
scikit-learn or torch until an estimator is used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "VMFMixture": "sphereml.mixture",
    "SphericalKMeans": "sphereml.mixture",
    "SphericalClassifier": "sphereml.classifier",
    "NGPTTextClassifier": "sphereml.text_classifier",
    "NDMClassifier": "sphereml.ndm_classifier",
}
_SUBMODULES = {"geometry", "vmf", "datasets", "mixture", "plotting", "nn", "text"}

__all__ = [*_LAZY, *sorted(_SUBMODULES), "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"sphereml.{name}")
    else:
        raise AttributeError(f"module 'sphereml' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
