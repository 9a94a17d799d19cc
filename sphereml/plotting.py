"""Figures (matplotlib, the optional ``plot`` extra).

- :func:`plot_vmf_mixture`: the density of a fitted von Mises–Fisher mixture on the
  circle (d = 2, a polar plot) or on the 2-sphere (d = 3, an equal-area Mollweide map),
  with the data and the mean directions.
- :func:`plot_decision_geometry`: for a classifier on 2-D inputs, its decision regions
  beside the geometry it induces on the input plane (the pulled-back volume element
  √det(Jᵀ g J)), the figure of the Neural Differential Manifold paper (Zhang 2025).
"""

from __future__ import annotations

import numpy as np


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting needs matplotlib: install sphereml's 'plot' extra "
            "(pip install -e '.[plot]' from the repository) or pip install matplotlib"
        ) from exc
    return plt


def plot_vmf_mixture(model, X=None, *, resolution: int = 181, ax=None):
    """Density of a fitted vMF mixture on the circle or the 2-sphere.

    Parameters
    ----------
    model : fitted :class:`~sphereml.VMFMixture` with 2 or 3 features
        Anything with ``means_`` and ``score_samples`` (log-density of unit vectors).
    X : array-like of shape (n_samples, 2 or 3), optional
        Data to draw (normalised to the sphere).
    resolution : int, default=181
        Grid points per angle.
    ax : matplotlib Axes, optional
        For d = 2 a polar Axes, for d = 3 a Mollweide Axes (``projection="mollweide"``);
        created when None.

    Returns
    -------
    ax : matplotlib Axes
    density : ndarray
        The density on the grid: shape (resolution,) over the angle θ ∈ [−π, π) for
        d = 2; (resolution, 2·resolution) over latitude × longitude for d = 3.

    Examples
    --------
    >>> from sphereml import VMFMixture
    >>> from sphereml.datasets import make_vmf_blobs
    >>> X, _ = make_vmf_blobs(300, 3, centers=3, kappa=20.0, random_state=0)
    >>> ax, density = plot_vmf_mixture(VMFMixture(3, random_state=0).fit(X), X)
    >>> density.shape
    (181, 362)
    """
    plt = _pyplot()
    means = np.asarray(model.means_, dtype=float)
    d = means.shape[1]
    if d not in (2, 3):
        raise ValueError(
            f"plot_vmf_mixture draws mixtures on the circle (2 features) or the 2-sphere "
            f"(3 features); this model has {d} features"
        )
    if X is not None:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != d:
            raise ValueError(f"X must have shape (n_samples, {d}) like the model, got {X.shape}")
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    if d == 2:
        theta = np.linspace(-np.pi, np.pi, resolution, endpoint=False)
        density = np.exp(model.score_samples(np.c_[np.cos(theta), np.sin(theta)]))
        if ax is None:
            ax = plt.figure(figsize=(5, 5)).add_subplot(projection="polar")
        radius = 1.0 + density / density.max()
        ax.plot(np.r_[theta, theta[:1]], np.r_[radius, radius[:1]], color="C0", lw=2,
                label="1 + density / max")  # fmt: skip
        ax.plot(theta, np.ones_like(theta), color="0.6", lw=0.8)
        if X is not None:
            ax.scatter(np.arctan2(X[:, 1], X[:, 0]), np.ones(len(X)), s=8, color="k",
                       alpha=0.5, label="data")  # fmt: skip
        mean_angles = np.arctan2(means[:, 1], means[:, 0])
        ax.scatter(mean_angles, np.full(len(means), 2.05), marker="v", s=60, color="C3",
                   label="mean directions")  # fmt: skip
        ax.set_rticks([])
        ax.set_rlim(0, 2.2)
        ax.legend(loc="lower left", fontsize="small")
        return ax, density
    lat = np.linspace(-np.pi / 2, np.pi / 2, resolution)
    lon = np.linspace(-np.pi, np.pi, 2 * resolution)
    LON, LAT = np.meshgrid(lon, lat)
    points = np.stack(
        [np.cos(LAT) * np.cos(LON), np.cos(LAT) * np.sin(LON), np.sin(LAT)], axis=-1
    ).reshape(-1, 3)
    density = np.exp(model.score_samples(points)).reshape(LAT.shape)
    if ax is None:
        ax = plt.figure(figsize=(8, 4.5)).add_subplot(projection="mollweide")
    mesh = ax.pcolormesh(LON, LAT, density, shading="auto", cmap="magma")
    ax.figure.colorbar(mesh, ax=ax, orientation="horizontal", shrink=0.6, label="density")
    if X is not None:
        ax.scatter(np.arctan2(X[:, 1], X[:, 0]), np.arcsin(np.clip(X[:, 2], -1, 1)), s=4,
                   color="white", alpha=0.4)  # fmt: skip
    ax.scatter(np.arctan2(means[:, 1], means[:, 0]), np.arcsin(np.clip(means[:, 2], -1, 1)),
               marker="x", s=60, color="cyan", label="mean directions")  # fmt: skip
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    return ax, density


def plot_decision_geometry(
    clf, X, y, *, resolution: int = 150, margin: float = 0.5, member: int = 0, axes=None
):
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
    member : int, default=0
        Whose geometry the right panel shows when the classifier averages several
        networks (``n_estimators_ > 1``): each member learns its own manifold. The
        decision regions are the ensemble's.
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
    volume = model.pullback_volume_element(transform(points))
    n_members = getattr(model, "n_estimators_", 1)
    if volume.ndim == 2:  # one column per member
        if not -n_members <= member < n_members:
            raise ValueError(f"member must be in [0, {n_members}), got {member}")
        volume = volume[:, member]
    volume = volume.reshape(xx.shape)
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
    of_member = f" (member {member % n_members + 1} of {n_members})" if n_members > 1 else ""
    axes[1].set_title(f"induced geometry{of_member}: log10 √det(Jᵀ g J)")
    fig.colorbar(image, ax=axes[1])
    return fig, {"xx": xx, "yy": yy, "proba": proba, "volume": volume}
