"""Fit time and NMI of the sphereml clusterers against the estimators a user would pick.

    python benchmarks/bench_clustering.py            # synthetic + BBC News, 3 repeats

Same process, same data, same threads (2 on the reference machine). Times are the median
of ``--repeats`` fits; ratios are relative to sklearn KMeans on the same data.
"""

import argparse
import json
import platform
import time
import warnings

import numpy as np
import scipy
import sklearn
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import normalized_mutual_info_score
from sklearn.mixture import GaussianMixture

from sphereml import SphericalKMeans, VMFMixture
from sphereml.datasets import make_vmf_blobs


def bench(name, make, X, y, repeats):
    times, nmis = [], []
    for seed in range(repeats):
        model = make(seed)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            labels = model.fit(X).predict(X)
        times.append(time.perf_counter() - start)
        nmis.append(normalized_mutual_info_score(y, labels))
    return {
        "estimator": name,
        "seconds": float(np.median(times)),
        "nmi": float(np.mean(nmis)),
        "nmi_min": float(np.min(nmis)),
    }


def report(title, rows):
    base = next(r for r in rows if r["estimator"].startswith("sklearn KMeans"))["seconds"]
    print(f"\n{title}")
    print("| estimator | fit s (median) | × KMeans time | NMI mean | NMI min |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['estimator']} | {r['seconds']:.3f} | {r['seconds'] / base:.2f} | "
            f"{r['nmi']:.3f} | {r['nmi_min']:.3f} |"
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        json.dumps(
            {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "scipy": scipy.__version__,
                "sklearn": sklearn.__version__,
                "machine": platform.processor() or platform.machine(),
            }
        )
    )

    k = 20
    X, y = make_vmf_blobs(20_000, 300, centers=k, kappa=np.linspace(100, 400, k), random_state=0)
    VMFMixture(k, random_state=0).fit(X[:2000])  # warm-up (imports, BLAS threads)
    rows = [
        bench("VMFMixture soft", lambda s: VMFMixture(k, random_state=s), X, y, args.repeats),
        bench(
            "VMFMixture hard",
            lambda s: VMFMixture(k, posterior_type="hard", random_state=s),
            X,
            y,
            args.repeats,
        ),
        bench("SphericalKMeans", lambda s: SphericalKMeans(k, random_state=s), X, y, args.repeats),
        bench("sklearn KMeans", lambda s: KMeans(k, random_state=s), X, y, args.repeats),
        bench(
            "sklearn GaussianMixture spherical",
            lambda s: GaussianMixture(k, covariance_type="spherical", random_state=s),
            X,
            y,
            args.repeats,
        ),
    ]
    report("Synthetic vMF: n=20,000, d=300, k=20, κ in [100, 400], dense float64, n_init=1", rows)

    try:
        from sphereml.cli import _bbc_tfidf
    except ImportError:
        return
    Xb, yb = _bbc_tfidf()
    rows = [
        bench(
            "VMFMixture soft",
            lambda s: VMFMixture(5, n_init=10, random_state=s),
            Xb,
            yb,
            args.repeats,
        ),
        bench(
            "VMFMixture hard",
            lambda s: VMFMixture(5, posterior_type="hard", n_init=10, random_state=s),
            Xb,
            yb,
            args.repeats,
        ),
        bench(
            "SphericalKMeans",
            lambda s: SphericalKMeans(5, n_init=10, random_state=s),
            Xb,
            yb,
            args.repeats,
        ),
        bench(
            "sklearn KMeans", lambda s: KMeans(5, n_init=10, random_state=s), Xb, yb, args.repeats
        ),
    ]
    report(f"BBC News tf-idf: n={Xb.shape[0]}, d={Xb.shape[1]}, sparse CSR, k=5, n_init=10", rows)


if __name__ == "__main__":
    main()
