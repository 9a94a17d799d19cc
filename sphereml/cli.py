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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sphereml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo_parser = sub.add_parser("demo", help="cluster BBC News tf-idf and print a result table")
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.add_argument("--n-init", type=int, default=10)
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(seed=args.seed, n_init=args.n_init)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
