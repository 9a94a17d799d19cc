"""partial_fit on sparse tf-idf: rows per second and quality against the batch fit.

    python benchmarks/bench_online.py            # BBC News tf-idf, 10 chunks, 3 passes, seeds 0-2

Same process, same data, same threads. Throughput counts every row passed to
``partial_fit`` (chunks × passes); quality is measured on all rows after the last pass:
NMI with the topics, and for VMFMixture the share of the batch fit's log-likelihood gain
over the uniform density that the online fit recovers. MiniBatchKMeans (Euclidean, on the
same L2-normalised rows) is the peer a user would pick for out-of-core clustering.
"""

import argparse
import platform
import time
import warnings

import numpy as np
import sklearn
from sklearn.cluster import MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import normalized_mutual_info_score
from sklearn.preprocessing import normalize

from sphereml import SphericalKMeans, VMFMixture, vmf
from sphereml.cli import _bbc_tfidf


def stream(model, X, chunks, passes):
    start = time.perf_counter()
    for _ in range(passes):
        for chunk in chunks:
            model.partial_fit(X[chunk])
    seconds = time.perf_counter() - start
    return model, passes * X.shape[0] / seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    X, y = _bbc_tfidf()
    X = normalize(X)
    order = np.random.default_rng(0).permutation(X.shape[0])
    X, y = X[order], y[order]
    chunks = np.array_split(np.arange(X.shape[0]), args.chunks)
    uniform = float(vmf.log_normalizer(0.0, X.shape[1]))
    print(f"BBC News tf-idf {X.shape}, {X.nnz / X.shape[0]:.0f} non-zeros/row; "
          f"{args.chunks} chunks x {args.passes} passes; sklearn {sklearn.__version__}, "
          f"{platform.processor() or platform.machine()}")  # fmt: skip
    rows = {"VMFMixture.partial_fit": [], "SphericalKMeans.partial_fit": [],
            "MiniBatchKMeans.partial_fit": []}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for seed in range(args.seeds):
            full = VMFMixture(5, random_state=seed).fit(X)
            km = SphericalKMeans(5, random_state=seed).fit(X)
            online, speed = stream(VMFMixture(5, random_state=seed), X, chunks, args.passes)
            gain = (online.score(X) - uniform) / (full.score(X) - uniform)
            rows["VMFMixture.partial_fit"].append((
                speed, normalized_mutual_info_score(y, online.predict(X)),
                normalized_mutual_info_score(y, full.predict(X)), gain))  # fmt: skip
            online, speed = stream(SphericalKMeans(5, random_state=seed), X, chunks, args.passes)
            rows["SphericalKMeans.partial_fit"].append((
                speed, normalized_mutual_info_score(y, online.predict(X)),
                normalized_mutual_info_score(y, km.predict(X)), np.nan))  # fmt: skip
            mb = MiniBatchKMeans(5, random_state=seed, n_init=1)
            mb, speed = stream(mb, X, chunks, args.passes)
            rows["MiniBatchKMeans.partial_fit"].append((
                speed, normalized_mutual_info_score(y, mb.predict(X)), np.nan, np.nan))  # fmt: skip
    base = np.median([r[0] for r in rows["MiniBatchKMeans.partial_fit"]])
    print("| estimator | rows/s | vs MiniBatchKMeans | NMI online | NMI batch fit | "
          "log-lik. gain recovered |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, values in rows.items():
        v = np.array(values, dtype=float)
        speed = np.median(v[:, 0])
        batch = "—" if np.isnan(v[:, 2]).all() else f"{np.mean(v[:, 2]):.3f}"
        gain = "—" if np.isnan(v[:, 3]).all() else f"{np.mean(v[:, 3]):.3f}"
        print(f"| {name} | {speed:,.0f} | {speed / base:.2f}× | {np.mean(v[:, 1]):.3f} | "
              f"{batch} | {gain} |")  # fmt: skip


if __name__ == "__main__":
    main()
