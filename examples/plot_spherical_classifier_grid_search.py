"""
Tuning SphericalClassifier with GridSearchCV
============================================

:class:`~sphereml.SphericalClassifier` scores unit vectors against unit class
prototypes, ``logit_c = κ cos θ_c + b_c`` (NormFace), with the concentration κ learned.
It is an ordinary scikit-learn classifier: it goes into a ``Pipeline`` after
``StandardScaler`` and its hyper-parameters are tuned by ``GridSearchCV``. Here the grid
compares the linear cosine classifier on directions (``hidden_dims=()``) with one
normalised residual layer (``hidden_dims=(64,)``) over learning rates, on the digits.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sphereml import SphericalClassifier

FAST = os.environ.get("SPHEREML_EXAMPLES_FAST") == "1"
X, y = load_digits(return_X_y=True)
if FAST:
    X, y = X[:600], y[:600]

pipe = make_pipeline(
    StandardScaler(),
    # one network per grid point: the default (n_estimators="auto") averages three
    # networks on a table of this size, which would hide how each setting trains
    SphericalClassifier(max_epochs=15 if FAST else 60, n_estimators=1, random_state=0),
)
grid = {
    "sphericalclassifier__hidden_dims": [(), (64,)],
    "sphericalclassifier__lr": [1e-3, 1e-2, 1e-1],
}
search = GridSearchCV(pipe, grid, cv=StratifiedKFold(3, shuffle=True, random_state=0))
search.fit(X, y)
print(f"best: {search.best_params_}  CV accuracy {search.best_score_:.3f}")
best = search.best_estimator_[-1]
print(f"learned κ = {best.kappa_:.1f} after {best.n_iter_} epochs")

# %%
# The grid
# --------
scores = search.cv_results_["mean_test_score"].reshape(2, 3)
fig, ax = plt.subplots(figsize=(5.5, 3), constrained_layout=True)
image = ax.imshow(scores, cmap="viridis")
ax.set_xticks(range(3), grid["sphericalclassifier__lr"])
ax.set_yticks(range(2), ["hidden_dims=()", "hidden_dims=(64,)"])
ax.set_xlabel("learning rate")
for (i, j), s in np.ndenumerate(scores):
    ax.text(j, i, f"{s:.3f}", ha="center", va="center", color="w")
fig.colorbar(image, ax=ax, label="CV accuracy")
plt.show()
