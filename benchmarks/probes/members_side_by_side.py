"""Fit time of an ensemble's members trained one by one against side by side.

    python -m benchmarks.probes.members_side_by_side --device cpu
    python -m benchmarks.probes.members_side_by_side --device cuda --estimators NDMClassifier

Median of three seeds per table, each default fit (``n_estimators="auto"``) timed whole,
both ways in one process; the side-by-side path is what the estimators use.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import sklearn
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.preprocessing import StandardScaler

import sphereml.neural._ensembles as ensembles
from sphereml import NDMClassifier, SphericalClassifier

TABLES = {"wine": load_wine, "breast_cancer": load_breast_cancer, "digits": load_digits}
ESTIMATORS = {"SphericalClassifier": SphericalClassifier, "NDMClassifier": NDMClassifier}


def median_fit_seconds(make, X, y, side_by_side: bool, seeds: int = 3) -> float:
    supported = ensembles.lockstep_supported
    if not side_by_side:
        ensembles.lockstep_supported = lambda nets: False
    try:
        times = []
        for seed in range(seeds):
            start = time.perf_counter()
            make(seed).fit(X, y)
            times.append(time.perf_counter() - start)
    finally:
        ensembles.lockstep_supported = supported
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--estimators", nargs="*", default=list(ESTIMATORS))
    parser.add_argument("--tables", nargs="*", default=list(TABLES))
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} cores ({torch.get_num_threads()} torch "
          f"threads), Python {platform.python_version()}, scikit-learn {sklearn.__version__}, "
          f"torch {torch.__version__}", flush=True)  # fmt: skip
    for table in args.tables:
        X, y = TABLES[table](return_X_y=True)
        X = StandardScaler().fit_transform(X)
        for name in args.estimators:
            cls = ESTIMATORS[name]

            def make(seed, cls=cls):
                return cls(random_state=seed, device=args.device)

            make(0).set_params(max_epochs=2).fit(X, y)  # warm-up: imports, kernels
            one = median_fit_seconds(make, X, y, side_by_side=False)
            side = median_fit_seconds(make, X, y, side_by_side=True)
            print(f"{table:14s}{name:21s}{args.device:6s} one by one {one:.2f} s, "
                  f"side by side {side:.2f} s ({side / one:.2f}×)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
