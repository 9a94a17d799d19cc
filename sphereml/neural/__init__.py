"""The neural estimators: one scikit-learn ↔ skorch base and three classifiers.

- :class:`SphericalClassifier` (``spherical_classifier.py``): cosine-softmax on the sphere.
- :class:`NGPTTextClassifier` (``ngpt_text_classifier.py``): nGPT on raw text.
- :class:`NDMClassifier` (``ndm_classifier.py``): a classifier on a learned manifold.

All three subclass :class:`~sphereml.neural._base.TorchClassifierBase`, which holds the
training loop, and never import each other.
"""

from .ndm_classifier import NDMClassifier
from .ngpt_text_classifier import NGPTTextClassifier
from .spherical_classifier import SphericalClassifier

__all__ = ["NDMClassifier", "NGPTTextClassifier", "SphericalClassifier"]
