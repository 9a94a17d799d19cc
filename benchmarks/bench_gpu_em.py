"""VMFMixture EM on a GPU: time per iteration at n=1e6, d=256, k=100, and CPU/GPU agreement.

Run on a machine with CUDA:  python benchmarks/bench_gpu_em.py
Prints JSON lines. Time per EM iteration (E-step + M-step, synchronised) is measured on the
estimator's own backend, excluding input validation and the host-to-device copy of X,
which are reported separately (setup) together with a whole fit.
"""

import json
import sys
import time

import numpy as np
import torch

sys.path.insert(0, ".")
from sphereml import VMFMixture  # noqa: E402
from sphereml.datasets import make_vmf_blobs  # noqa: E402


def timed_fit(X, init, iters, device, dtype_note):
    model = VMFMixture(init.shape[0], init=init, max_iter=iters, tol=0.0, device=device)
    if device is not None and "cuda" in str(device):
        torch.cuda.synchronize()
    start = time.perf_counter()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    if device is not None and "cuda" in str(device):
        torch.cuda.synchronize()
    return time.perf_counter() - start, model


def main():
    rng = np.random.default_rng(0)
    # Agreement: float64, n=1e5, same init, CPU NumPy vs GPU torch.
    X, _ = make_vmf_blobs(100_000, 64, centers=20, kappa=200.0, random_state=0)
    init = X[rng.choice(len(X), 20, replace=False)]
    _, cpu = timed_fit(X, init, 30, None, "f64")
    _, gpu = timed_fit(X, init, 30, "cuda", "f64")
    print(
        json.dumps(
            {
                "check": "cpu_vs_cuda_float64",
                "max_abs_mean_diff": float(np.abs(cpu.means_ - gpu.means_).max()),
                "max_rel_kappa_diff": float(np.abs(cpu.kappas_ / gpu.kappas_ - 1).max()),
                "lower_bound_diff": float(abs(cpu.lower_bound_ - gpu.lower_bound_)),
                "same_n_iter": cpu.n_iter_ == gpu.n_iter_,
            }
        ),
        flush=True,
    )

    n, d, k = 1_000_000, 256, 100
    Xbig = rng.standard_normal((n, d), dtype=np.float32)
    centers = rng.standard_normal((k, d)).astype(np.float32)
    Xbig += 3.0 * centers[rng.integers(0, k, n)] / np.sqrt(d) * np.sqrt(d) / 4
    Xbig /= np.linalg.norm(Xbig, axis=1, keepdims=True)
    init = Xbig[rng.choice(n, k, replace=False)].astype(np.float64)
    print(
        json.dumps({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}), flush=True
    )
    from sphereml.mixture._backend import make_backend

    weights = np.full(k, 1.0 / k)
    for device, reps in [("cuda", 50), (None, 3)]:
        start = time.perf_counter()
        backend = make_backend(Xbig, np.ones(n), device)
        setup = time.perf_counter() - start
        est = VMFMixture(k)
        params = est._m_step(backend, backend.nearest(init), None, (weights, init, np.zeros(k)))
        rs = np.random.RandomState(0)
        for _ in range(2):  # warm-up
            resp, log_norm, _ = est._e_step(backend, params, rs)
            params = est._m_step(backend, resp, log_norm, params)
        if device:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            resp, log_norm, ll = est._e_step(backend, params, rs)
            params = est._m_step(backend, resp, log_norm, params)
        if device:
            torch.cuda.synchronize()
        per_iter = (time.perf_counter() - start) / reps
        print(
            json.dumps(
                {
                    "device": device or "numpy-cpu",
                    "n": n,
                    "d": d,
                    "k": k,
                    "dtype": "float32",
                    "ms_per_em_iteration": 1e3 * per_iter,
                    "setup_seconds": setup,
                    "log_likelihood": ll,
                }
            ),
            flush=True,
        )
        del backend, resp, log_norm
    t_fit, model = timed_fit(Xbig, init, 20, "cuda", "f32")
    print(json.dumps({"whole_fit_20_iters_cuda_seconds": t_fit}), flush=True)
    # Bound: per iteration X is read twice (E-step X μᵀ, M-step Γᵀ X) and the n×k
    # posterior is written/read about 4 times; 2 GEMMs of 2·n·d·k flops each.
    bytes_moved = 2 * n * d * 4 + 4 * n * k * 4
    flops = 2 * (2 * n * d * k)
    a = torch.randn(8192, 8192, device="cuda")
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        a @ a
    torch.cuda.synchronize()
    fp32_flops = 10 * 2 * 8192**3 / (time.perf_counter() - start)
    x = torch.empty(2 * 1024**3 // 4, device="cuda")
    y = torch.empty_like(x)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    torch.cuda.synchronize()
    bandwidth = 10 * 2 * x.numel() * 4 / (time.perf_counter() - start)
    print(
        json.dumps(
            {
                "bytes_per_iter": bytes_moved,
                "flops_per_iter": flops,
                "measured_copy_bandwidth_TBps": bandwidth / 1e12,
                "measured_fp32_matmul_TFLOPs": fp32_flops / 1e12,
                "memory_bound_ms": 1e3 * bytes_moved / bandwidth,
                "compute_bound_ms": 1e3 * flops / fp32_flops,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
