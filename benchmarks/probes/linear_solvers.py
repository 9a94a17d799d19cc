"""How to fit the linear cosine classifier on tf-idf: the alternatives, 5-fold CV on the
panel's BBC tasks (same folds), each written out in NumPy/SciPy so that only the
objective and the solver differ.

    python -m benchmarks.probes.linear_solvers bbc_articles
    python -m benchmarks.probes.linear_solvers bbc_sentences --train-per-class 10

- ``vmf start``: the vMF maximum-likelihood fit alone (class mean directions, log shares,
  the tied-concentration κ), no discriminative training.
- ``lbfgs α=…``: L-BFGS from that start on mean cross-entropy + α K κ² / (2n), prototypes
  as normalised unconstrained rows, log κ, biases; ``class-wise κ`` gives each class its
  own κ_c (then the model is LogisticRegression on x/‖x‖ with weights κ_c μ_c).
- ``lbfgs α=0.1, β=…``: plus β/2 Σ_c ‖μ_c − μ_c⁰‖², a pull towards the vMF start.
- ``SphericalClassifier(optimizer="adam", lr=…)``: mini-batch Adam from the same start.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

from benchmarks.panel import TEXT_TASKS, load_text


def vmf_start(Z, y, n_classes):
    from sphereml.vmf import estimate_kappa

    one_hot = sp.csr_matrix((np.ones(len(y)), (y, np.arange(len(y)))), (n_classes, len(y)))
    sums = one_hot @ Z
    sums = sums.toarray() if sp.issparse(sums) else np.asarray(sums)
    lengths = np.linalg.norm(sums, axis=1)
    kappa = min(float(estimate_kappa(min(lengths.sum() / len(y), 1 - 1e-9), Z.shape[1])), 1e3)
    return sums / lengths[:, None], kappa, np.log(np.bincount(y, minlength=n_classes) / len(y))


def fit_lbfgs(Z, y, n_classes, alpha=0.1, beta=0.0, classwise=False, max_iter=100):
    n, d = Z.shape
    M0, kappa0, b0 = vmf_start(Z, y, n_classes)
    Y = np.zeros((n, n_classes))
    Y[np.arange(n), y] = 1
    nk = n_classes if classwise else 1
    scale = 1 if classwise else n_classes  # Σ_c ‖κ_c μ_c‖²

    def unpack(t):
        return (
            t[: n_classes * d].reshape(n_classes, d),
            t[n_classes * d : n_classes * d + nk],
            t[n_classes * d + nk :],
        )

    def f(t):
        V, s, b = unpack(t)
        lengths = np.linalg.norm(V, axis=1)
        M = V / lengths[:, None]
        kappa = np.exp(s)
        C = np.asarray(Z @ M.T)
        L = C * kappa + b
        lse = logsumexp(L, axis=1)
        loss = (lse - L[np.arange(n), y]).mean() + alpha / (2 * n) * scale * (kappa**2).sum()
        loss += beta / 2 * ((M - M0) ** 2).sum()
        G = (np.exp(L - lse[:, None]) - Y) / n
        gM = np.asarray((Z.T @ G).T) * (kappa[:, None] if classwise else kappa) + beta * (M - M0)
        gV = (gM - (gM * M).sum(1)[:, None] * M) / lengths[:, None]
        gk = (G * C).sum(0) if classwise else np.array([(G * C).sum()])
        gs = (gk + alpha / n * scale * kappa) * kappa
        return loss, np.concatenate([gV.ravel(), gs, G.sum(0)])

    t0 = np.concatenate([M0.ravel(), np.full(nk, np.log(kappa0)), b0])
    r = minimize(f, t0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    V, s, b = unpack(r.x)
    return V / np.linalg.norm(V, axis=1)[:, None], np.exp(s), b


def main(argv=None):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import StratifiedGroupKFold

    from sphereml import SphericalClassifier

    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=TEXT_TASKS)
    parser.add_argument("--alphas", type=float, nargs="*", default=[0.01, 0.03, 0.1, 0.3, 1.0, 3.0])
    parser.add_argument("--only-alphas", action="store_true",
                        help="LogisticRegression and the α grid only")  # fmt: skip
    parser.add_argument("--lsa", action="store_true",
                        help="the panel's LSA: TruncatedSVD(200) + Normalizer")  # fmt: skip
    parser.add_argument("--train-per-class", type=int, default=None,
                        help="cut each training fold to this many rows per class")  # fmt: skip
    parser.add_argument("--empty", type=float, default=0.0,
                        help="share of training texts replaced by empty documents")  # fmt: skip
    args = parser.parse_args(argv)
    X, labels, groups = load_text(args.task, False)
    classes, y = np.unique(labels, return_inverse=True)
    K = len(classes)
    folds = list(StratifiedGroupKFold(5, shuffle=True, random_state=0).split(X, y, groups))
    configs = {"LogisticRegression": "lr", "vmf start": "vmf"}
    for alpha in args.alphas:
        configs[f"lbfgs α={alpha}"] = {"alpha": alpha}
    if args.only_alphas:
        del configs["vmf start"]
    for beta in [] if args.only_alphas else [0.01, 0.1]:
        configs[f"lbfgs α=0.1, β={beta}"] = {"alpha": 0.1, "beta": beta}
    if not args.only_alphas:
        configs["lbfgs α=0.1, class-wise κ"] = {"alpha": 0.1, "classwise": True}
    for lr in [] if args.only_alphas else [1e-2, 1e-3]:
        configs[f"SphericalClassifier(optimizer='adam', lr={lr})"] = ("adam", lr)
    results: dict[str, list] = {name: [] for name in configs}
    rng = np.random.default_rng(0)
    for train, test in folds:
        if args.train_per_class:
            train = np.concatenate([rng.permutation(train[y[train] == c])[: args.train_per_class]
                                    for c in range(K)])  # fmt: skip
        texts = X[train].copy()
        if args.empty:
            texts[rng.random(len(texts)) < args.empty] = ""
        vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2)
        Ztr, Zte = vectorizer.fit_transform(texts), vectorizer.transform(X[test])
        if args.lsa:
            from sklearn.decomposition import TruncatedSVD
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import Normalizer

            reduce = make_pipeline(TruncatedSVD(200, random_state=0), Normalizer())
            Ztr, Zte = reduce.fit_transform(Ztr), reduce.transform(Zte)
        for name, config in configs.items():
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if config == "lr":
                    P = LogisticRegression(max_iter=1000).fit(Ztr, y[train]).predict_proba(Zte)
                elif isinstance(config, tuple):
                    clf = SphericalClassifier(optimizer=config[0], lr=config[1], random_state=0)
                    P = clf.fit(Ztr, y[train]).predict_proba(Zte)
                else:
                    M, kappa, b = vmf_start(Ztr, y[train], K) if config == "vmf" else fit_lbfgs(
                        Ztr, y[train], K, **config)  # fmt: skip
                    P = softmax(np.asarray(Zte @ M.T) * kappa + b, axis=1)
            seconds = time.perf_counter() - start
            results[name].append((accuracy_score(y[test], P.argmax(1)),
                                  log_loss(y[test], P, labels=range(K)), seconds))  # fmt: skip
    task = f"{args.task} (LSA)" if args.lsa else args.task
    setting = f"{task}, {args.train_per_class or 'all'} training rows per class, " \
              f"{args.empty:.0%} empty training texts"  # fmt: skip
    print(f"| {setting} | accuracy | log-loss | median fit s |\n|---|---|---|---|")
    for name, rows in results.items():
        r = np.array(rows)
        print(
            f"| {name} | {r[:, 0].mean():.4f} | {r[:, 1].mean():.4f} | {np.median(r[:, 2]):.2f} |"
        )


if __name__ == "__main__":
    main()
