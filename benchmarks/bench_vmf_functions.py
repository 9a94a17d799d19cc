"""vMF functions against SciPy (the peer a user would reach for): sampling speed, κ fit.

python benchmarks/bench_vmf_functions.py
"""

import time
import warnings

import numpy as np
from scipy import stats

from sphereml import vmf


def main():
    warnings.simplefilter("ignore")
    d = 5000
    mu = np.ones(d) / np.sqrt(d)
    start = time.perf_counter()
    vmf.sample_vmf(mu, 500.0, 1000, random_state=0)
    ours = (time.perf_counter() - start) / 1000
    start = time.perf_counter()
    stats.vonmises_fisher(mu, 500.0).rvs(10, random_state=0)
    theirs = (time.perf_counter() - start) / 10
    print(
        f"sampling d={d}, kappa=500: sphereml {ours * 1e3:.3f} ms/sample, "
        f"scipy {theirs * 1e3:.1f} ms/sample, ratio {theirs / ours:.0f}x"
    )
    x = vmf.sample_vmf(np.eye(200)[0], 50.0, 2000, random_state=0)
    print(
        f"kappa fit d=200, true 50, n=2000: scipy.stats.vonmises_fisher.fit -> "
        f"{stats.vonmises_fisher.fit(x)[1]:.3g}, sphereml estimate_kappa -> "
        f"{float(vmf.estimate_kappa(np.linalg.norm(x.mean(axis=0)), 200)):.3f}"
    )
    mu = np.zeros(1000)
    mu[0] = 1.0
    print(
        f"logpdf at the mode, d=1000, kappa=10: scipy {stats.vonmises_fisher(mu, 10.0).logpdf(mu)}"
        f", sphereml {float(vmf.log_normalizer(10.0, 1000) + 10.0):.6f}"
    )


if __name__ == "__main__":
    main()
