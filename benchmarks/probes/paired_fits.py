"""Fit times of two checkouts of sphereml, paired fit by fit in one run.

    python -m benchmarks.probes.paired_fits --checkouts /tmp/base . \
        --estimator NDMClassifier --tables iris pima wisconsin --rounds 5
    python -m benchmarks.probes.paired_fits --checkouts /tmp/base . \
        --estimator SphericalClassifier --fixed-epochs 20

The speed of a shared machine drifts by tens of percent within minutes, so runs of two
checkouts one after the other compare the drift as much as the code. Here one worker
process per checkout (each importing its own ``sphereml``) fits the same data in turns,
the order alternating by round, and the ratio of each pair of neighbouring fits is taken.
The data: the first training fold (of five, stratified) of the standardised panel table,
or of a panel text task (grouped by article, as the panel splits it).
Default fits (each checkout's own early stopping, whose epoch is printed), or with
``--fixed-epochs`` a patience beyond ``max_epochs`` so that both run the same steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path


def worker() -> None:
    """Read ``estimator table epochs`` lines; fit; print ``[seconds, n_iter_, sphereml's
    path]`` lines."""
    warnings.simplefilter("ignore")
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    import sphereml
    from benchmarks import panel

    cache: dict = {}
    for line in sys.stdin:
        estimator, table, epochs = line.split()
        if table in panel.TEXT_TASKS and table not in cache:
            X, y, groups = panel.load_text(table, False)
            folds = StratifiedGroupKFold(5, shuffle=True, random_state=0).split(X, y, groups)
            train, _ = next(folds)
            cache[table] = X[train], y[train]
        elif table not in cache:
            X, y, _ = panel.load_table(table, 3000)
            train, _ = next(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
            cache[table] = StandardScaler().fit_transform(X[train]), y[train]
        X, y = cache[table]
        settings: dict = {"random_state": 0}
        if int(epochs) > 0:
            settings.update(early_stopping=True, max_epochs=int(epochs),
                            n_iter_no_change=int(epochs) + 1)  # fmt: skip
        start = time.perf_counter()
        model = getattr(sphereml, estimator)(**settings).fit(X, y)
        elapsed = time.perf_counter() - start
        print(json.dumps([elapsed, model.n_iter_, sphereml.__file__]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkouts", nargs=2, required=True, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--estimator", default="NDMClassifier")
    parser.add_argument("--tables", nargs="*", default=["iris", "pima", "wisconsin"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fixed-epochs", type=int, default=0)
    args = parser.parse_args()
    import torch

    length = f"{args.fixed_epochs} epochs" if args.fixed_epochs else "default fits"
    print(f"{platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, torch {torch.__version__}; "
          f"{args.estimator}, {length}", flush=True)  # fmt: skip
    workers = []
    for checkout in args.checkouts:
        root = str(Path(checkout).resolve())
        env = dict(os.environ, PYTHONPATH=root)
        # this file runs the worker; ``sphereml`` and the panel come from the checkout
        command = [sys.executable, __file__, "--worker"]
        workers.append(subprocess.Popen(command, cwd=root, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE))  # fmt: skip

    def fit(process, table):
        process.stdin.write(f"{args.estimator} {table} {args.fixed_epochs}\n")
        process.stdin.flush()
        return json.loads(process.stdout.readline())

    try:
        for table in args.tables:
            for process, checkout in zip(workers, args.checkouts, strict=True):
                *_, path = fit(process, table)  # warm-up: imports, kernels, the data
                if table == args.tables[0]:
                    print(f"{checkout}: {path}", flush=True)
            seconds: list[list[float]] = [[], []]
            epochs = [0, 0]
            for r in range(args.rounds):
                for i in (0, 1) if r % 2 == 0 else (1, 0):
                    elapsed, epochs[i], _ = fit(workers[i], table)
                    seconds[i].append(elapsed)
            ratio = statistics.median(b / a for a, b in zip(*seconds, strict=True))
            print(f"{table:15s} before {statistics.median(seconds[0]):7.3f} s  after "
                  f"{statistics.median(seconds[1]):7.3f} s  paired ratio {ratio:.3f}  "
                  f"epochs {epochs[0]} / {epochs[1]}", flush=True)  # fmt: skip
    finally:
        for process in workers:
            process.stdin.close()
            process.wait()


if __name__ == "__main__":
    worker() if sys.argv[1:] == ["--worker"] else main()
