"""VMFMixture EM on a GPU: time per iteration at n=1e6, d=256, k=100 against its bounds.

Run on a machine with CUDA:  python benchmarks/bench_gpu_em.py [--out results.jsonl]
Prints JSON lines (and appends them to ``--out``):

- ``iteration``: ms per EM iteration (mean of 50 after warm-up, synchronised) of each
  path through the estimator's own code: the reference loop with the parameters on the
  host (``HostRunner`` over the torch backend), the device loop eager in a CUDA graph
  (the default of ``VMFMixture(device="cuda")``), the device loop with ``compile=True``
  (its compilation time reported), and the same with TF32 matmuls (``matmul_precision=
  "high"``) with the log-likelihood difference it causes;
- ``parts``: the device loop's pieces timed alone (the two GEMMs, the posterior pass,
  the M-step) — where the time goes;
- ``bound``: the FP32 compute bound (2 GEMMs of 2·n·d·k flops at the FP32 rate measured on
  these very GEMM shapes and on a square 8192 GEMM) and the memory bound;
- ``agreement``: float64 fits, the NumPy path on the CPU against the device loop;
- ``fit``: whole ``fit`` wall times (validation, transfer, seeding, iterations).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch

from sphereml import VMFMixture
from sphereml.datasets import make_vmf_blobs
from sphereml.mixture._device_em import (
    DeviceRunner,
    HostRunner,
    _soft_posterior,
    float32_matmul_precision,
)
from sphereml.mixture._dispatch import make_backend
from sphereml.mixture._fused_estep import (
    DEFAULT_CONFIGS,
    DEFAULT_GEMM_CONFIGS,
    GemmConfig,
    KernelConfig,
    fused_e_step,
    resultants,
)

OUT: list[str] = []


def emit(record: dict) -> None:
    line = json.dumps(record)
    OUT.append(line)
    print(line, flush=True)


def cuda_ms(fn, reps: int) -> float:
    """Mean ms per call of ``fn`` over ``reps`` calls, timed with CUDA events."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def wall_ms(fn, reps: int) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - start) / reps


def big_data(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    centers = rng.standard_normal((k, d)).astype(np.float32)
    X += 0.75 * centers[rng.integers(0, k, n)]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, X[rng.choice(n, k, replace=False)].astype(np.float64)


def iteration_ms(runner, params, reps=50):
    state = runner.load(params)
    for _ in range(3):  # warm-up (graph capture, compiled kernels, cuBLAS)
        state, ll = runner.iterate(state)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        state, ll = runner.iterate(state)
    torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - start) / reps, ll, state


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    emit({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__})

    # Agreement: float64, n=1e5, d=64, k=20, same init, NumPy on the CPU vs the device loop.
    X, _ = make_vmf_blobs(100_000, 64, centers=20, kappa=200.0, random_state=0)
    init = X[np.random.default_rng(0).choice(len(X), 20, replace=False)]
    fits = {}
    for device in (None, "cuda"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[device] = VMFMixture(20, init=init, max_iter=300, tol=1e-10, device=device).fit(X)
    cpu, gpu = fits[None], fits["cuda"]
    emit(
        {
            "agreement": "float64 n=1e5 d=64 k=20, NumPy CPU vs device loop",
            "max_abs_mean_diff": float(np.abs(cpu.means_ - gpu.means_).max()),
            "max_rel_kappa_diff": float(np.abs(cpu.kappas_ / gpu.kappas_ - 1).max()),
            "rel_lower_bound_diff": float(abs(cpu.lower_bound_ / gpu.lower_bound_ - 1)),
            "n_iter": [cpu.n_iter_, gpu.n_iter_],
        }
    )

    n, d, k = 1_000_000, 256, 100
    Xbig, init = big_data(n, d, k)
    backend = make_backend(Xbig, np.ones(n), "cuda")
    est = VMFMixture(k)
    params = est._m_step(backend, *backend.map_reduce(_nearest, init), (None, init, None))
    rs = np.random.RandomState(0)

    host_ms, host_ll, _ = iteration_ms(HostRunner(est, backend, rs), params, reps=20)
    emit({"iteration": "host parameters (reference loop), torch backend", "ms": host_ms})
    eager = DeviceRunner(est, backend, fused=False)
    eager_ms, eager_ll, _ = iteration_ms(eager, params)
    emit(
        {
            "iteration": "device loop, eager, CUDA graph (default)",
            "ms": eager_ms,
            "ll": eager_ll,
            "ll_minus_host": eager_ll - host_ll,
        }
    )
    # Parts of the device loop, each alone.
    state = eager.load(params)
    counts, resultants, _ = eager._statistics(*state)
    X = backend.X
    coefficients = torch.randn(k, d, device="cuda")
    bias = torch.randn(k, device="cuda")
    log_prob = torch.addmm(bias, X, coefficients.T)
    reference = torch.zeros(1, dtype=torch.long, device="cuda")
    resp = torch.softmax(log_prob, 1)
    compiled_posterior = torch.compile(_soft_posterior, dynamic=False)
    parts = {
        "gemm1_addmm_X_Bt_bias": cuda_ms(lambda: torch.addmm(bias, X, coefficients.T), 20),
        "posterior_eager": cuda_ms(lambda: _soft_posterior(log_prob.clone(), reference, None), 20)
        - cuda_ms(lambda: log_prob.clone(), 20),
        "posterior_compiled": cuda_ms(lambda: compiled_posterior(log_prob, reference, None), 20),
        "gemm2_Rt_X": cuda_ms(lambda: resp.T @ X, 20),
        "e_step_total_eager": cuda_ms(lambda: eager._statistics(*state), 20),
        "m_step_eager_launches": wall_ms(lambda: eager._m_step(counts, resultants, state[1]), 20),
    }
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            eager._m_step(counts, resultants, state[1])
    torch.cuda.current_stream().wait_stream(stream)
    with torch.cuda.graph(graph):
        eager._m_step(counts, resultants, state[1])
    parts["m_step_graph"] = cuda_ms(graph.replay, 20)
    emit({"parts_ms": parts})

    gemm_flops = 2 * n * d * k
    rate_shapes = 2 * gemm_flops / (1e-3 * (parts["gemm1_addmm_X_Bt_bias"] + parts["gemm2_Rt_X"]))
    sq = torch.randn(8192, 8192, device="cuda")
    square_ms = cuda_ms(lambda: sq @ sq, 10)
    rate_square = 2 * 8192**3 / (1e-3 * square_ms)
    x = torch.empty(2 * 1024**3 // 4, device="cuda")
    y = torch.empty_like(x)
    bandwidth = 2 * x.numel() * 4 / (1e-3 * cuda_ms(lambda: y.copy_(x), 10))
    flops = 2 * (2 * n * d * k)
    bytes_moved = 2 * n * d * 4 + 3 * n * k * 4  # X twice; posterior: write, read, write+read
    emit(
        {
            "bound": "per EM iteration",
            "flops": flops,
            "fp32_TFLOPs_square_8192": rate_square / 1e12,
            "fp32_TFLOPs_em_gemm_shapes": rate_shapes / 1e12,
            "compute_bound_ms": 1e3 * flops / rate_square,
            "copy_bandwidth_TBps": bandwidth / 1e12,
            "memory_bound_ms": 1e3 * bytes_moved / bandwidth,
            "device_loop_over_compute_bound": eager_ms / (1e3 * flops / rate_square),
        }
    )

    tf32 = DeviceRunner(est, backend, matmul_precision="high", fused=False)
    tf32_ms, tf32_ll, _ = iteration_ms(tf32, params)
    emit(
        {
            "iteration": "device loop, eager, TF32 matmuls (matmul_precision='high')",
            "ms": tf32_ms,
            "ll": tf32_ll,
            "ll_minus_highest": tf32_ll - eager_ll,
        }
    )
    del tf32
    fused_section(backend, est, params, eager, eager_ms, eager_ll, 1e3 * flops / rate_square)
    fit_seconds(Xbig, init, k, compile_flag=False)
    if not args.no_compile:
        try:
            start = time.perf_counter()
            compiled = DeviceRunner(est, backend, compile=True, fused=False)
            s = compiled.load(params)
            compiled.iterate(s)
            torch.cuda.synchronize()
            compile_s = time.perf_counter() - start
            compiled_ms, compiled_ll, _ = iteration_ms(compiled, params)
            emit(
                {
                    "iteration": "device loop, compile=True, CUDA graph",
                    "ms": compiled_ms,
                    "first_iteration_with_compilation_s": compile_s,
                    "ll_minus_host": compiled_ll - host_ll,
                    "over_compute_bound": compiled_ms / (1e3 * flops / rate_square),
                }
            )
        except Exception as exc:  # report and go on with the other measurements
            emit({"iteration": "device loop, compile=True", "error": repr(exc)[:2000]})

    if not args.no_compile:
        tf32c = DeviceRunner(est, backend, matmul_precision="high", compile=True, fused=False)
        tf32c_ms, tf32c_ll, _ = iteration_ms(tf32c, params)
        emit({"iteration": "device loop, compile=True, TF32", "ms": tf32c_ms})
        fit_seconds(Xbig, init, k, compile_flag=True)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n".join(OUT) + "\n")


GEMM_CONFIGS = [
    GemmConfig(64, 128, 8, 3, 132),
    GemmConfig(128, 128, 8, 3, 132),
    GemmConfig(64, 64, 4, 3, 132),
    GemmConfig(64, 128, 8, 4, 264),
    GemmConfig(32, 128, 4, 3, 132),
    GemmConfig(128, 64, 8, 3, 264),
    GemmConfig(64, 128, 8, 3, 66),
]

FUSED_CONFIGS = [
    KernelConfig(128, 32, 8, 3),
    KernelConfig(128, 64, 8, 3),
    KernelConfig(128, 32, 4, 3),
    KernelConfig(128, 16, 8, 4),
    KernelConfig(64, 32, 4, 3),
    KernelConfig(64, 64, 4, 3),
    KernelConfig(64, 32, 8, 4),
    KernelConfig(256, 32, 8, 3),
    KernelConfig(32, 64, 4, 3),
]


def fused_section(backend, est, params, eager, eager_ms, eager_ll, bound_ms):
    """The fused Triton E-step: a launch-configuration sweep per precision, its error
    against a float64 reference next to the library path's, and whole iterations."""
    X = backend.X
    weights, means, kappas = eager.load(params)
    offsets = eager._offsets(weights, kappas)
    coefficients = (kappas[:, None] * means).float()
    bias = (offsets - offsets.max()).float()
    lp64 = torch.addmm(bias.double(), X.double(), coefficients.double().T)
    lse64 = torch.logsumexp(lp64, 1)
    resp64 = torch.softmax(lp64, 1)
    del lp64
    counts64 = resp64.sum(0)
    resultants64 = resp64.T @ X.double()

    def errors(resp, lse, counts):
        resultants = (resp.T @ X).double()
        return {
            "max_abs_resp": float((resp.double() - resp64).abs().max()),
            "max_abs_log_norm": float((lse.double() - lse64).abs().max()),
            "max_rel_counts": float(((counts.double() - counts64).abs() / counts64).max()),
            "max_rel_resultants": float(
                (resultants - resultants64).abs().max() / resultants64.abs().max()
            ),
        }

    reference = torch.zeros(1, dtype=torch.long, device=X.device)
    for precision in ("highest", "high"):
        with float32_matmul_precision(precision):
            lp = torch.addmm(bias, X, coefficients.T)
            resp, lse, counts = _soft_posterior(lp, reference, None)
            record = errors(resp, lse, counts)
            emit({"accuracy": f"library GEMM + posterior, {precision}", **record})
            del lp, resp
    for precision in ("ieee", "tf32x3", "tf32"):
        timings = []
        for config in FUSED_CONFIGS:
            try:
                ms = cuda_ms(
                    lambda c=config, p=precision: fused_e_step(
                        X, coefficients, bias, precision=p, config=c
                    ),
                    10,
                )
            except Exception as exc:  # e.g. out of shared memory / registers
                emit({"fused": precision, "config": config._asdict(), "error": repr(exc)[:300]})
                continue
            timings.append((ms, config))
            emit({"fused": precision, "config": config._asdict(), "ms": ms})
        best_ms, best = min(timings)
        DEFAULT_CONFIGS[precision] = best
        resp, lse, counts = fused_e_step(X, coefficients, bias, precision=precision)
        emit(
            {
                "accuracy": f"fused E-step, {precision}",
                "best_config": best._asdict(),
                "ms": best_ms,
                **errors(resp, lse, counts),
            }
        )
        del resp
    # the second product Γᵀ X: cuBLAS SGEMM against the split-n Triton kernel (3×TF32)
    resp, _, _ = fused_e_step(X, coefficients, bias, precision="tf32x3")
    cublas_ms = cuda_ms(lambda r=resp: r.T @ X, 10)
    timings = []
    for config in GEMM_CONFIGS:
        try:
            ms = cuda_ms(
                lambda c=config, r=resp: resultants(r, X, precision="tf32x3", config=c), 10
            )
        except Exception as exc:
            emit({"resultants": "tf32x3", "config": config._asdict(), "error": repr(exc)[:300]})
            continue
        timings.append((ms, config))
        emit({"resultants": "tf32x3", "config": config._asdict(), "ms": ms})
    best_ms, best = min(timings)
    DEFAULT_GEMM_CONFIGS["tf32x3"] = best
    reference = resp.double().T @ X.double()

    def error(product):
        return float((product.double() - reference).abs().max() / reference.abs().max())

    emit(
        {
            "accuracy": "resultants Γᵀ X, relative to float64 of the same Γ",
            "cublas_sgemm": error(resp.T @ X),
            "triton_tf32x3": error(resultants(resp, X, precision="tf32x3")),
            "cublas_ms": cublas_ms,
            "triton_tf32x3_ms": best_ms,
            "best_config": best._asdict(),
        }
    )
    resp = reference = None
    for label, options in (
        ("fused E-step, cuBLAS resultants, 'tf32x3'", dict(fused_resultants=False)),
        ("fused E-step, Triton resultants, 'tf32x3'", dict(fused_resultants=True)),
    ):
        for compile_flag in (False, True):
            runner = DeviceRunner(
                est, backend, matmul_precision="tf32x3", fused=True, compile=compile_flag, **options
            )
            ms, ll, _ = iteration_ms(runner, params)
            emit(
                {
                    "iteration": f"device loop, {label}, compile={compile_flag}",
                    "ms": ms,
                    "over_compute_bound": ms / bound_ms,
                    "ll_minus_library_highest": ll - eager_ll,
                }
            )
            del runner
    for matmul_precision in ("highest", "tf32x3", "high"):
        runner = DeviceRunner(est, backend, matmul_precision=matmul_precision, fused=True)
        ms, ll, _ = iteration_ms(runner, params)
        emit(
            {
                "iteration": f"device loop, fused E-step, matmul_precision={matmul_precision!r}",
                "ms": ms,
                "over_compute_bound": ms / bound_ms,
                "speedup_over_library_eager": eager_ms / ms,
                "ll_minus_library_highest": ll - eager_ll,
            }
        )
        del runner
    for matmul_precision in ("highest", "tf32x3"):
        start = time.perf_counter()
        runner = DeviceRunner(
            est, backend, matmul_precision=matmul_precision, fused=True, compile=True
        )
        runner.iterate(runner.load(params))
        torch.cuda.synchronize()
        compile_s = time.perf_counter() - start
        ms, ll, _ = iteration_ms(runner, params)
        emit(
            {
                "iteration": f"device loop, fused E-step, compile=True, {matmul_precision!r}",
                "ms": ms,
                "first_iteration_with_compilation_s": compile_s,
                "over_compute_bound": ms / bound_ms,
                "ll_minus_library_highest": ll - eager_ll,
            }
        )
        del runner


def fit_seconds(X, init, k, compile_flag):
    model = VMFMixture(k, init=init, max_iter=20, tol=0.0, device="cuda", compile=compile_flag)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    torch.cuda.synchronize()
    emit(
        {
            "fit": f"whole fit, 20 iterations, compile={compile_flag}",
            "seconds": time.perf_counter() - start,
        }
    )


def _nearest(backend, offset, means):
    return backend.sufficient_statistics(backend.nearest(means))


if __name__ == "__main__":
    main()
