"""Early stopping on small tables with many classes: the validation split against a fixed
budget (training-loss stopping), for SphericalClassifier and NDMClassifier, 5-fold CV.

    python -m benchmarks.probes.small_table_stopping --models SphericalClassifier
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from benchmarks.panel import load_table

VARIANTS = {
    "split": {"early_stopping": True},
    "no split": {"early_stopping": False},
    "no split, lr=3e-3": {"early_stopping": False, "lr": 3e-3},
}


def main(argv=None):
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import sphereml

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", nargs="*", default=["iris", "wine", "sonar", "heart",
                        "movement_libras", "led7digit", "letter_small"])  # fmt: skip
    parser.add_argument("--models", nargs="*", default=["SphericalClassifier"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    for name in args.data:
        X, y, _ = load_table(name, 3000)
        folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
        makers = {"MLPClassifier": lambda: MLPClassifier(max_iter=500, random_state=0)}
        for model in args.models:
            for variant, params in VARIANTS.items():
                makers[f"{model} {variant}"] = lambda m=model, p=params: getattr(sphereml, m)(
                    random_state=0, **p
                )
        for label, make in makers.items():
            acc, fit = [], []
            for train, test in folds:
                clf = make_pipeline(StandardScaler(), make())
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    clf.fit(X[train], y[train])
                fit.append(time.perf_counter() - start)
                acc.append(clf.score(X[test], y[test]))
            row = {"data": name, "model": label, "accuracy": float(np.mean(acc)),
                   "fit_s": float(np.median(fit))}  # fmt: skip
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
