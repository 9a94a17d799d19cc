"""Command-line entry point: ``sphereml demo``."""

from __future__ import annotations

import argparse
import sys
import time


def _bbc_tfidf():
    """Unit tf-idf rows of BBC News (sparse CSR) and the 5 topic labels."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from .datasets import load_bbc_news

    bunch = load_bbc_news()
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=2, max_df=0.5)
    return vectorizer.fit_transform(bunch.data), bunch.target


def demo(seed: int = 0, n_init: int = 10, out=sys.stdout) -> list[dict]:
    """Cluster BBC News tf-idf with the sphereml clusterers and sklearn's, print a table."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from .mixture import SphericalKMeans, VMFMixture

    X, y = _bbc_tfidf()
    k = len(set(y))
    print(
        f"BBC News: {X.shape[0]} articles, {X.shape[1]} tf-idf features (sparse, "
        f"{X.nnz / X.shape[0]:.0f} non-zeros/row), {k} topics; n_init={n_init}, seed={seed}",
        file=out,
    )
    models = {
        "VMFMixture (soft EM)": VMFMixture(k, n_init=n_init, random_state=seed),
        "VMFMixture (hard EM)": VMFMixture(
            k, posterior_type="hard", n_init=n_init, random_state=seed
        ),
        "SphericalKMeans": SphericalKMeans(k, n_init=n_init, random_state=seed),
        "sklearn KMeans (baseline)": KMeans(k, n_init=n_init, random_state=seed),
    }
    rows = []
    print(f"{'estimator':<28}{'NMI':>8}{'ARI':>8}{'fit s':>9}", file=out)
    for name, model in models.items():
        start = time.perf_counter()
        labels = model.fit(X).predict(X)
        seconds = time.perf_counter() - start
        row = {
            "estimator": name,
            "nmi": normalized_mutual_info_score(y, labels),
            "ari": adjusted_rand_score(y, labels),
            "seconds": seconds,
        }
        rows.append(row)
        print(f"{name:<28}{row['nmi']:>8.3f}{row['ari']:>8.3f}{seconds:>9.2f}", file=out)
    vmf = models["VMFMixture (soft EM)"]
    print(
        f"VMFMixture: weights {vmf.weights_.round(3).tolist()}, "
        f"kappas {vmf.kappas_.round(0).tolist()}",
        file=out,
    )
    return rows


def _score_on_split(data_name, models, Xtr, Xte, ytr, yte, *, out) -> list[dict]:
    """Fit each model on the training part, print and return held-out accuracy/log-loss."""
    from sklearn.metrics import accuracy_score, log_loss

    rows = []
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(Xtr, ytr)
        seconds = time.perf_counter() - start
        proba = model.predict_proba(Xte)
        row = {
            "data": data_name,
            "estimator": name,
            "accuracy": accuracy_score(yte, model.classes_[proba.argmax(1)]),
            "log_loss": log_loss(yte, proba, labels=model.classes_),
            "seconds": seconds,
        }
        rows.append(row)
        print(
            f"{data_name:<20}{name:<22}{row['accuracy']:>9.3f}{row['log_loss']:>10.3f}"
            f"{seconds:>8.2f}",
            file=out,
        )
    return rows


def demo_text(seed: int = 0, out=sys.stdout) -> list[dict]:
    """NGPTTextClassifier and its pre-LN baseline on raw BBC News text against TF-IDF +
    LogisticRegression, on one held-out split (a small model: d=64, one layer, the first
    128 words, 6 epochs — about 10 s each on two CPU cores)."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline

    from .datasets import load_bbc_news
    from .neural.ngpt_text_classifier import NGPTTextClassifier

    news = load_bbc_news()
    small = dict(d_model=64, n_layers=1, n_heads=2, max_length=128, max_epochs=6)
    models = {
        "NGPTTextClassifier": NGPTTextClassifier(random_state=seed, **small),
        "pre-LN Transformer": NGPTTextClassifier("transformer", random_state=seed, **small),
        "TF-IDF + LogReg": make_pipeline(
            TfidfVectorizer(sublinear_tf=True), LogisticRegression(C=10, max_iter=1000)
        ),
    }
    split = train_test_split(
        np.array(news.data, dtype=object), news.target, test_size=0.25,
        random_state=seed, stratify=news.target,
    )  # fmt: skip
    print(f"\n{'data':<20}{'estimator':<22}{'accuracy':>9}{'log-loss':>10}{'fit s':>8}", file=out)
    return _score_on_split("BBC News (raw text)", models, *split, out=out)


def demo_ndm(seed: int = 0, out=sys.stdout) -> list[dict]:
    """NDMClassifier against MLPClassifier on two moons and breast_cancer (held-out split),
    with and without temperature calibration, and the mean |scalar curvature| of its
    learned metric with and without the penalty."""
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.datasets import load_breast_cancer, make_moons
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .neural.ndm_classifier import NDMClassifier

    tasks = {
        "two moons": make_moons(500, noise=0.1, random_state=seed),
        "breast_cancer": load_breast_cancer(return_X_y=True),
    }
    print(f"\n{'data':<20}{'estimator':<22}{'accuracy':>9}{'log-loss':>10}{'fit s':>8}", file=out)
    rows = []
    for data_name, (X, y) in tasks.items():
        split = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
        models = {
            "NDMClassifier": make_pipeline(StandardScaler(), NDMClassifier(random_state=seed)),
            # one network: the row shows what the penalty does to a manifold's curvature
            "NDM + curvature pen.": make_pipeline(
                StandardScaler(),
                NDMClassifier(curvature_penalty=0.1, n_estimators=1, random_state=seed),
            ),
            # quadratic logits run over-confident; temperature scaling lowers the log-loss
            "NDM, calibrated": make_pipeline(
                StandardScaler(),
                CalibratedClassifierCV(
                    NDMClassifier(random_state=seed), method="temperature", cv=3
                ),
            ),
            "MLPClassifier": make_pipeline(
                StandardScaler(), MLPClassifier(max_iter=1000, random_state=seed)
            ),
        }
        rows += _score_on_split(data_name, models, *split, out=out)
        for name in ("NDMClassifier", "NDM + curvature pen."):
            pipe = models[name]
            report = pipe[-1].geometry_report(pipe[:-1].transform(split[1]))
            curvature = float(np.abs(report["scalar_curvature"][:, -1]).mean())
            print(f"{'':<20}{name:<22} mean |R| of the learned metric: {curvature:.4g}", file=out)
            rows[-len(models) + list(models).index(name)]["mean_abs_curvature"] = curvature
    return rows


def demo_classifier(seed: int = 0, out=sys.stdout) -> list[dict]:
    """SphericalClassifier against LogisticRegression on held-out splits, print a table.

    BBC News: tf-idf reduced to 256 directions by TruncatedSVD (LSA), classified by the
    linear cosine classifier; digits: standardised pixels through one normalised layer.
    """
    from sklearn.datasets import load_digits
    from sklearn.decomposition import TruncatedSVD
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .neural.spherical_classifier import SphericalClassifier

    X_news, y_news = _bbc_tfidf()
    X_news = TruncatedSVD(256, random_state=seed).fit_transform(X_news)
    X_digits, y_digits = load_digits(return_X_y=True)
    tasks = {
        "BBC News (LSA-256)": (
            X_news,
            y_news,
            SphericalClassifier((), random_state=seed),
            LogisticRegression(max_iter=1000),
        ),
        "digits": (
            X_digits,
            y_digits,
            make_pipeline(StandardScaler(), SphericalClassifier((64,), random_state=seed)),
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        ),
    }
    print(f"\n{'data':<20}{'estimator':<22}{'accuracy':>9}{'log-loss':>10}{'fit s':>8}", file=out)
    rows = []
    for data_name, (X, y, ours, baseline) in tasks.items():
        split = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
        models = {"SphericalClassifier": ours, "LogisticRegression": baseline}
        rows += _score_on_split(data_name, models, *split, out=out)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sphereml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo_parser = sub.add_parser(
        "demo",
        help="cluster and classify BBC News (vectors and raw text), classify digits",
    )
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.add_argument("--n-init", type=int, default=10)
    args = parser.parse_args(argv)
    if args.command == "demo":
        sections = [
            ("Clustering BBC News tf-idf", lambda: demo(seed=args.seed, n_init=args.n_init)),
            ("SphericalClassifier on text and digits", lambda: demo_classifier(seed=args.seed)),
            ("NGPTTextClassifier on raw text", lambda: demo_text(seed=args.seed)),
            ("NDMClassifier on tables", lambda: demo_ndm(seed=args.seed)),
        ]
        started = time.perf_counter()
        for number, (heading, run) in enumerate(sections, start=1):
            print(f"\n== {number}/{len(sections)} {heading}", flush=True)
            section_started = time.perf_counter()
            run()
            print(f"({heading}: {time.perf_counter() - section_started:.1f} s)", flush=True)
        print(f"\ndemo finished in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
