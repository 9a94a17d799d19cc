"""Deprecated: the sphere operations are public as :mod:`sphereml.geometry`, the vMF
functions as :mod:`sphereml.vmf`. This alias keeps older imports working."""

import warnings

from .._sphere import *  # noqa: F403 - the alias re-exports the private package whole
from .._sphere import __all__  # noqa: F401

warnings.warn(
    "sphereml.sphere is deprecated: import the sphere operations from sphereml.geometry "
    "and the vMF functions from sphereml.vmf",
    DeprecationWarning,
    stacklevel=2,
)
