"""Per-fit overhead of the neural training loop on a small table.

A default ``SphericalClassifier`` on standardised wine (178 rows: one batch per epoch,
so the time is the loop's Python and torch dispatch, not arithmetic), one torch thread,
``--repeats`` fits with seeds 0, 1, …; prints the median CPU time of a fit, the epochs
per network and the median epoch duration from ``history_``. CPU time rather than wall
time, so that other work on a shared machine moves it less. To compare two versions,
run the script in a checkout of each, alternating::

    python benchmarks/bench_fit_overhead.py --repeats 10
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import sklearn
import torch
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

import sphereml
from sphereml import SphericalClassifier


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    SphericalClassifier(random_state=0).fit(X, y)  # imports and first-call set-up
    cpu_s, epochs, epoch_ms = [], [], []
    for seed in range(args.repeats):
        start = time.process_time()
        clf = SphericalClassifier(random_state=seed).fit(X, y)
        cpu_s.append(time.process_time() - start)
        epochs.append(len(clf.history_))
        epoch_ms.extend(1000 * epoch["dur"] for epoch in clf.history_)
    print(
        f"{platform.machine()}, Python {platform.python_version()}, "
        f"scikit-learn {sklearn.__version__}, torch {torch.__version__}, "
        f"sphereml {sphereml.__version__}, 1 torch thread"
    )
    print(
        f"SphericalClassifier on wine: median CPU time per fit {np.median(cpu_s):.3f} s "
        f"over {args.repeats} fits of {clf.n_estimators_} networks; {np.median(epochs):.0f} "
        f"epochs in history_, median epoch {np.median(epoch_ms):.2f} ms"
    )


if __name__ == "__main__":
    main()
