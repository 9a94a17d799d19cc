"""sphereml: scikit-learn estimators that learn on the unit hypersphere.

Estimators are imported lazily (PEP 562) so that ``import sphereml`` does not pull in
scikit-learn or torch until an estimator is used.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:  # the one version source is pyproject.toml, through the installed metadata
    __version__ = version("sphereml")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_LAZY = {
    "VMFMixture": "sphereml.mixture",
    "SphericalKMeans": "sphereml.mixture",
    "SphericalClassifier": "sphereml.neural.spherical_classifier",
    "NGPTTextClassifier": "sphereml.neural.ngpt_text_classifier",
    "NDMClassifier": "sphereml.neural.ndm_classifier",
    "load": "sphereml.persistence",
    "save": "sphereml.persistence",
}
_SUBMODULES = {
    "datasets",
    "geometry",
    "mixture",
    "neural",
    "nn",
    "optim",
    "persistence",
    "plotting",
    "riemannian",
    "text",
    "utils",
    "vmf",
}

__all__ = [*_LAZY, *sorted(_SUBMODULES), "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES or name == "sphere":  # sphere: the deprecated alias
        value = importlib.import_module(f"sphereml.{name}")
    else:
        raise AttributeError(f"module 'sphereml' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
