"""Figures: the vMF mixture density drawn is the mixture's density (independent reference)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

pytest.importorskip("matplotlib")
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sphereml import VMFMixture
from sphereml.datasets import make_vmf_blobs
from sphereml.plotting import plot_vmf_mixture


def test_circle_density_is_the_von_mises_mixture():
    X, _ = make_vmf_blobs(400, 2, centers=3, kappa=np.array([3.0, 10.0, 40.0]), random_state=0)
    model = VMFMixture(3, random_state=0).fit(X)
    ax, density = plot_vmf_mixture(model, X, resolution=720)
    theta = np.linspace(-np.pi, np.pi, 720, endpoint=False)
    loc = np.arctan2(model.means_[:, 1], model.means_[:, 0])
    reference = sum(
        w * stats.vonmises.pdf(theta, kappa=k, loc=m)
        for w, k, m in zip(model.weights_, model.kappas_, loc, strict=True)
    )
    np.testing.assert_allclose(density, reference, rtol=1e-10)
    assert abs(density.sum() * 2 * np.pi / 720 - 1.0) < 1e-6  # a probability density
    plt.close(ax.figure)


def test_sphere_density_integrates_to_one():
    X, _ = make_vmf_blobs(300, 3, centers=2, kappa=15.0, random_state=1)
    model = VMFMixture(2, random_state=0).fit(X)
    ax, density = plot_vmf_mixture(model, X, resolution=181)
    lat = np.linspace(-np.pi / 2, np.pi / 2, 181)
    lon = np.linspace(-np.pi, np.pi, 362)
    # area element cos(lat) dlat dlon on the grid (trapezoid in both angles)
    integral = np.trapezoid(np.trapezoid(density, lon, axis=1) * np.cos(lat), lat)
    assert abs(integral - 1.0) < 2e-3
    assert ax.name == "mollweide"
    plt.close(ax.figure)


@pytest.mark.parametrize("n_features", [4, 10])
def test_other_dimensions_are_refused(n_features):
    X, _ = make_vmf_blobs(50, n_features, centers=2, random_state=0)
    model = VMFMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="circle .* or the 2-sphere"):
        plot_vmf_mixture(model)
    with pytest.raises(ValueError, match="X must have shape"):
        plot_vmf_mixture(VMFMixture(2, random_state=0).fit(X[:, :3]), X)
