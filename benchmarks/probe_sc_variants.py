"""SphericalClassifier variants on the defaults panel's 19 tables, against its rows.

Each variant is ``StandardScaler`` + ``SphericalClassifier(random_state=0, **params)`` on
the panel's folds (5-fold stratified CV, seed 0, tables above 3,000 rows subsampled);
``ensemble=k`` soft-votes k classifiers with seeds 0 … k−1 (scikit-learn's
``VotingClassifier``). Δ accuracy, log-loss and fit-time ratio are taken against the
LogisticRegression rows of ``benchmarks/results/panel.jsonl`` (run ``panel.py`` first, on
the same machine, for the time ratios to mean anything). One line per variant::

    python benchmarks/probe_sc_variants.py "" "kappa_init=3.0" "ensemble=5"
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
import panel  # noqa: E402


def make_variant(params: dict):
    from sklearn.ensemble import VotingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sphereml import SphericalClassifier

    params = dict(params)
    k = params.pop("ensemble", 1)
    if k == 1:
        return lambda: make_pipeline(
            StandardScaler(), SphericalClassifier(random_state=0, **params)
        )
    members = [(f"seed{i}", SphericalClassifier(random_state=i, **params)) for i in range(k)]
    return lambda: make_pipeline(StandardScaler(), VotingClassifier(members, voting="soft"))


def main(variants: list[str]) -> None:
    from sklearn.model_selection import StratifiedKFold

    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    rows = {}
    for line in (panel.RESULTS / "panel.jsonl").read_text().splitlines():
        row = json.loads(line)
        rows[row["data"], row["model"]] = row
    tables = panel.SKLEARN_TABLES + panel.KEEL_TABLES
    data = {}
    for name in tables:
        X, y, _ = panel.load_table(name, 3000)
        data[name] = (X, y, list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)))
    for variant in variants:
        params = eval(f"dict({variant})")  # a benchmark's command line, not user input
        deltas, ratios, loss_wins = [], [], 0
        for name in tables:
            X, y, folds = data[name]
            result = panel.evaluate(make_variant(params), X, y, folds)
            base = rows[name, "LogisticRegression"]
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
            f"{variant or 'default'}: mean {d.mean():+.2f}, >= LR {(d >= 0).sum()}/19, "
            f">= LR - 1 {(d >= -1).sum()}/19, log-loss <= LR {loss_wins}/19, "
            f"median time {np.median(ratios):.1f}x; worst {worst}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:] or [""])
