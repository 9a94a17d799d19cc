"""Figures (matplotlib, the optional ``plot`` extra).

:func:`plot_decision_geometry` draws the NDM figure of seed 004: for a classifier on 2-D
inputs, its decision regions beside the geometry it induces on the input plane (the
pulled-back volume element √det(Jᵀ g J)).
"""

from __future__ import annotations

import numpy as np


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'sphereml[plot]'") from exc
    return plt


def plot_decision_geometry(clf, X, y, *, resolution: int = 150, margin: float = 0.5, axes=None):
    """Decision regions and the induced volume element of a fitted 2-D NDMClassifier.

    Parameters
    ----------
    clf : fitted NDMClassifier (or a Pipeline ending in one) on 2 features
    X : array-like of shape (n_samples, 2)
    y : array-like of shape (n_samples,)
    resolution : int, default=150
        Grid points per axis.
    margin : float, default=0.5
        Extent of the grid beyond the data.
    axes : pair of matplotlib Axes, optional

    Returns
    -------
    fig : matplotlib Figure
    grid : dict with ``xx``, ``yy``, ``proba`` (positive / top class probability) and
        ``volume`` (pulled-back volume element), each (resolution, resolution)
    """
    plt = _pyplot()
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"plot_decision_geometry needs 2-D inputs, got shape {X.shape}")
    model = clf[-1] if hasattr(clf, "steps") else clf
    transform = clf[:-1].transform if hasattr(clf, "steps") else (lambda a: a)
    lo, hi = X.min(0) - margin, X.max(0) + margin
    xx, yy = np.meshgrid(
        np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    )
    points = np.c_[xx.ravel(), yy.ravel()]
    proba = clf.predict_proba(points).max(1).reshape(xx.shape)
    label = clf.predict(points).reshape(xx.shape)
    volume = model.pullback_volume_element(transform(points)).reshape(xx.shape)
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    else:
        fig = axes[0].figure
    codes = np.searchsorted(model.classes_, label)
    axes[0].contourf(xx, yy, codes + 0.9 * (proba - 0.5), levels=30, cmap="coolwarm", alpha=0.8)
    axes[0].scatter(X[:, 0], X[:, 1], c=np.searchsorted(model.classes_, y), cmap="coolwarm",
                    edgecolors="k", s=12)  # fmt: skip
    axes[0].set_title("decision regions (shade: confidence)")
    image = axes[1].contourf(xx, yy, np.log10(volume + 1e-12), levels=30, cmap="viridis")
    axes[1].scatter(X[:, 0], X[:, 1], c="white", s=3, alpha=0.5)
    axes[1].set_title("induced geometry: log10 √det(Jᵀ g J)")
    fig.colorbar(image, ax=axes[1])
    return fig, {"xx": xx, "yy": yy, "proba": proba, "volume": volume}
