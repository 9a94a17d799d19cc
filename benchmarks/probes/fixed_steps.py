"""Fit time of a neural default over a fixed number of epochs, to compare code versions.

    python -m benchmarks.probes.fixed_steps --estimator NDMClassifier --tables breast_cancer pima
    python -m benchmarks.probes.fixed_steps --estimator NGPTTextClassifier --tables bbc_articles \
        --epochs 3

Each version's early stopping fires at another epoch (float32 round-off sends a network
down another path), so whole default fits of two checkouts run different numbers of
steps. Here the patience exceeds ``max_epochs``: every member runs ``--epochs`` epochs
(one validation pass each, as by default) and the time compares the steps themselves.
Run it in a checkout of each version, alternating; it prints the fastest of
``--repeats`` fits per table (after a warm-up fit), on the standardised panel table or
all texts of a panel text task.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import torch
from sklearn.preprocessing import StandardScaler

import sphereml
from benchmarks import panel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimator", default="NDMClassifier")
    parser.add_argument("--tables", nargs="*", default=["breast_cancer", "pima"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"{platform.machine()}, {os.cpu_count()} cores ({torch.get_num_threads()} torch "
          f"threads), torch {torch.__version__}, sphereml at {sphereml.__file__}",
          flush=True)  # fmt: skip
    cls = getattr(sphereml, args.estimator)
    settings = dict(random_state=0, early_stopping=True, n_iter_no_change=args.epochs + 1,
                    max_epochs=args.epochs)  # fmt: skip
    for table in args.tables:
        if table in panel.TEXT_TASKS:
            X, y, _ = panel.load_text(table, False)
        else:
            X, y, _ = panel.load_table(table, 3000)
            X = StandardScaler().fit_transform(X)
        cls(**settings).fit(X, y)  # warm-up: imports, kernels
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            cls(**settings).fit(X, y)
            seconds.append(time.perf_counter() - start)
        print(f"{table:14s}{args.estimator:21s}{args.epochs} epochs: fastest of "
              f"{args.repeats} {min(seconds):.3f} s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
