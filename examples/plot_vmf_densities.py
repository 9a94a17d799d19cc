"""
vMF mixture densities on the circle and on the 2-sphere
=======================================================

A von Mises–Fisher distribution puts density ``C_d(κ) exp(κ μᵀx)`` on unit vectors x:
a bump around the mean direction μ whose width shrinks as the concentration κ grows.
Here mixtures are fitted by EM to points drawn on the circle (d = 2) and on the sphere
(d = 3), and :func:`sphereml.plotting.plot_vmf_mixture` draws the fitted density.
"""

import os

import matplotlib.pyplot as plt
import numpy as np

from sphereml import VMFMixture
from sphereml.datasets import make_vmf_blobs
from sphereml.plotting import plot_vmf_mixture

FAST = os.environ.get("SPHEREML_EXAMPLES_FAST") == "1"
n_samples = 300 if FAST else 1500

# %%
# On the circle: three directions with different concentrations
# --------------------------------------------------------------
kappas = np.array([5.0, 20.0, 80.0])
X2, y2 = make_vmf_blobs(n_samples, 2, centers=3, kappa=kappas, random_state=0)
circle = VMFMixture(3, n_init=3, random_state=0).fit(X2)
print("κ on the circle:", np.round(np.sort(circle.kappas_), 1))

ax, _ = plot_vmf_mixture(circle, X2)
ax.set_title("circle (d = 2)")

# %%
# On the 2-sphere: an equal-area map of the fitted density
# --------------------------------------------------------
X3, y3 = make_vmf_blobs(n_samples, 3, centers=4, kappa=30.0, random_state=1)
sphere = VMFMixture(4, n_init=3, random_state=0).fit(X3)
print("κ on the sphere:", np.round(np.sort(sphere.kappas_), 1))
ax, _ = plot_vmf_mixture(sphere, X3)
ax.set_title("2-sphere (d = 3), Mollweide projection", pad=24)
plt.show()
