"""The von Mises–Fisher functions under their public path (see :mod:`sphereml._sphere.vmf`).

A re-export: the implementation, its private helpers and their tests live in
:mod:`sphereml._sphere.vmf`.
"""

from ._sphere.vmf import (
    estimate_kappa,
    kappa_bounds,
    log_bessel_iv,
    log_normalizer,
    mean_resultant_length,
    sample_vmf,
)

__all__ = [
    "estimate_kappa",
    "kappa_bounds",
    "log_bessel_iv",
    "log_normalizer",
    "mean_resultant_length",
    "sample_vmf",
]
