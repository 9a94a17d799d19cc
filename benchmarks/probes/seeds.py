"""A sphereml classifier against a scikit-learn baseline over several seeds of both.

The panel's folds of each table (5-fold stratified CV, seed 0); both models behind
``StandardScaler`` with ``random_state`` 0 … k−1; the mean accuracy over the seeds
separates a model's gap from one seed's luck on a small table::

    python -m benchmarks.probes.seeds --estimator NDMClassifier --baseline MLPClassifier \
        --tables iris sonar --seeds 5
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

from benchmarks import panel

BASELINES = {
    "MLPClassifier": ("sklearn.neural_network", {"max_iter": 500}),
    "LogisticRegression": ("sklearn.linear_model", {"max_iter": 1000}),
}


def make_model(name: str, seed: int):
    import importlib

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import sphereml

    if name in BASELINES:
        module, params = BASELINES[name]
        cls = getattr(importlib.import_module(module), name)
        return make_pipeline(StandardScaler(), cls(random_state=seed, **params))
    return make_pipeline(StandardScaler(), getattr(sphereml, name)(random_state=seed))


def main(argv: list[str] | None = None) -> None:
    from sklearn.model_selection import StratifiedKFold

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimator", default="NDMClassifier")
    parser.add_argument("--baseline", default="MLPClassifier", choices=sorted(BASELINES))
    parser.add_argument("--tables", nargs="+", default=["iris", "sonar"])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    for name in args.tables:
        X, y, _ = panel.load_table(name, 3000)
        folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
        scores, losses = {}, {}
        for model in (args.estimator, args.baseline):
            runs = [
                panel.evaluate(lambda m=model, s=seed: make_model(m, s), X, y, folds)
                for seed in range(args.seeds)
            ]
            scores[model] = [run["accuracy"] for run in runs]
            losses[model] = [run["log_loss"] for run in runs]
        ours, base = np.mean(scores[args.estimator]), np.mean(scores[args.baseline])
        detail = "; ".join(
            f"{model} " + " ".join(f"{a:.4f}" for a in accs) for model, accs in scores.items()
        )
        loss_detail = "; ".join(
            f"{model} " + " ".join(f"{v:.3f}" for v in values) for model, values in losses.items()
        )
        print(
            f"{name}, seeds 0-{args.seeds - 1}: {args.estimator} {ours:.4f}, {args.baseline} "
            f"{base:.4f}, delta {100 * (ours - base):+.2f} points ({detail}); "
            f"log-loss ({loss_detail})",
            flush=True,
        )


if __name__ == "__main__":
    main()
