"""Alias of :mod:`sphereml.sphere.vmf` (the von Mises–Fisher functions), kept as a public path.

``import sphereml.vmf`` and ``from sphereml.vmf import estimate_kappa`` give the very module
object :mod:`sphereml.sphere.vmf`, so there is one copy of its state and its docs.
"""

import sys

from .sphere import vmf as _vmf

sys.modules[__name__] = _vmf
