"""What closes NGPTTextClassifier's gap to TF-IDF + LogisticRegression: variants of the
default on the panel's BBC folds (5-fold, split by article), accuracy and log-loss.

    python -m benchmarks.probes.ngpt_text_variants bbc_articles --device cuda
    python -m benchmarks.probes.ngpt_text_variants bbc_sentences --variants defaults bpe

Each variant changes one thing of ``NGPTTextClassifier(random_state=0)``; ``3 seeds``
averages the probabilities of the defaults fitted with seeds 0, 1, 2, and
``transformer`` is the pre-LN baseline architecture with the same settings.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from benchmarks.panel import load_text

VARIANTS: dict[str, dict] = {
    "defaults": {},
    "max_length=512": {"max_length": 512},
    "max_vocab=50000": {"max_vocab": 50_000},
    "tokenizer=bpe": {"tokenizer": "bpe"},
    "d_model=128": {"d_model": 128},
    "n_layers=2": {"n_layers": 2},
    "max_epochs=20, decay_epochs=20": {"max_epochs": 20, "decay_epochs": 20},
    "pooling=cls": {"pooling": "cls"},
    "transformer": {"architecture": "transformer"},
}


def main(argv=None):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline

    from sphereml import NGPTTextClassifier

    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=["bbc_articles", "bbc_sentences"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", nargs="*", default=[*VARIANTS, "3 seeds", "LR"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    X, labels, groups = load_text(args.task, False)
    folds = list(StratifiedGroupKFold(5, shuffle=True, random_state=0).split(X, labels, groups))
    for name in args.variants:
        acc, loss, fit = [], [], []
        for train, test in folds:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if name == "LR":
                    model = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2),
                                          LogisticRegression(max_iter=1000))  # fmt: skip
                    proba = model.fit(X[train], labels[train]).predict_proba(X[test])
                elif name == "3 seeds":
                    proba = np.mean([
                        (model := NGPTTextClassifier(random_state=seed, device=args.device))
                        .fit(X[train], labels[train]).predict_proba(X[test])
                        for seed in range(3)
                    ], axis=0)  # fmt: skip
                else:
                    model = NGPTTextClassifier(random_state=0, device=args.device, **VARIANTS[name])
                    proba = model.fit(X[train], labels[train]).predict_proba(X[test])
            fit.append(time.perf_counter() - start)
            acc.append(accuracy_score(labels[test], model.classes_[proba.argmax(1)]))
            loss.append(log_loss(labels[test], proba, labels=model.classes_))
        row = {"task": args.task, "variant": name, "device": args.device,
               "accuracy": float(np.mean(acc)), "log_loss": float(np.mean(loss)),
               "fit_s": float(np.median(fit))}  # fmt: skip
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
