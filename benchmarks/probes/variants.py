"""Variants of a sphereml classifier on the defaults panel's tables, against its rows.

Each variant is ``StandardScaler`` + ``<Estimator>(random_state=0, **params)`` on the
panel's folds (5-fold stratified CV, seed 0, tables above 3,000 rows subsampled);
``ensemble=k`` soft-votes k classifiers with seeds 0 … k−1 (scikit-learn's
``VotingClassifier``). Δ accuracy, log-loss and fit-time ratio are taken against the
baseline's rows of ``benchmarks/results/panel.jsonl`` (run ``panel.py`` first, on the same
machine, for the time ratios to mean anything). One line per variant::

    python -m benchmarks.probes.variants "" "kappa_init=3.0" "ensemble=5"
    python -m benchmarks.probes.variants --estimator NDMClassifier --baseline MLPClassifier \
        --tables sonar letter -- "" "hidden=64"
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np
import torch

from benchmarks import panel


def make_variant(estimator: str, params: dict):
    from sklearn.ensemble import VotingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import sphereml

    cls = getattr(sphereml, estimator)
    params = dict(params)
    k = params.pop("ensemble", 1)
    if k == 1:
        return lambda: make_pipeline(StandardScaler(), cls(random_state=0, **params))
    members = [(f"seed{i}", cls(random_state=i, **params)) for i in range(k)]
    return lambda: make_pipeline(StandardScaler(), VotingClassifier(members, voting="soft"))


def main(argv: list[str] | None = None) -> None:
    from sklearn.model_selection import StratifiedKFold

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimator", default="SphericalClassifier")
    parser.add_argument("--baseline", default="LogisticRegression")
    parser.add_argument("--tables", nargs="*", help="a subset of the 19 tables")
    parser.add_argument("variants", nargs="*", help='keyword arguments, e.g. "lr=0.003"')
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    rows = {}
    for line in (panel.RESULTS / "panel.jsonl").read_text().splitlines():
        row = json.loads(line)
        rows[row["data"], row["model"]] = row
    tables = args.tables or panel.SKLEARN_TABLES + panel.KEEL_TABLES
    data = {}
    for name in tables:
        X, y, _ = panel.load_table(name, 3000)
        data[name] = (X, y, list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)))
    n = len(tables)
    for variant in args.variants or [""]:
        params = eval(f"dict({variant})")  # a benchmark's command line, not user input
        deltas, ratios, loss_wins = [], [], 0
        for name in tables:
            X, y, folds = data[name]
            result = panel.evaluate(make_variant(args.estimator, params), X, y, folds)
            base = rows[name, args.baseline]
            deltas.append(100 * (result["accuracy"] - base["accuracy"]))
            ratios.append(result["fit_s"] / base["fit_s"])
            loss_wins += result["log_loss"] <= base["log_loss"]
            print(
                f"  {variant or 'default'} {name}: {result['accuracy']:.4f} "
                f"({deltas[-1]:+.2f}), log-loss {result['log_loss']:.4f}, "
                f"fit {result['fit_s']:.3g} s",
                file=sys.stderr,
                flush=True,
            )
        d = np.array(deltas)
        worst = ", ".join(f"{t} {v:+.2f}" for v, t in sorted(zip(d, tables, strict=True))[:3])
        print(
            f"{variant or 'default'}: mean {d.mean():+.2f}, >= {args.baseline} "
            f"{(d >= 0).sum()}/{n}, >= {args.baseline} - 1 {(d >= -1).sum()}/{n}, "
            f"log-loss <= {args.baseline} {loss_wins}/{n}, "
            f"median time {np.median(ratios):.1f}x; worst {worst}",
            flush=True,
        )


if __name__ == "__main__":
    main()
