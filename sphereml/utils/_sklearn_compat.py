"""The private scikit-learn APIs sphereml relies on, imported in one place.

scikit-learn does not promise stability for these names; if a release moves one, this
module is the only file to change (as in imbalanced-learn's ``utils/_sklearn_compat``).
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import _check_sample_weight

__all__ = [
    "Interval",
    "StrOptions",
    "_check_sample_weight",
    "_fit_context",
    "validate_params",
]
