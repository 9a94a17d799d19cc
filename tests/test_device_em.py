"""``VMFMixture``'s device EM loop (E-step, M-step and κ Newton on a torch device)
against the NumPy EM loop, the host fallbacks (collapsed components), and the fused
Triton E-step (``sphereml.mixture._fused_estep``) against a float64 reference through
Triton's CPU interpreter. CI has no GPU: the CUDA cases run where one is present."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from sphereml import VMFMixture
from sphereml.datasets import make_vmf_blobs
from sphereml.mixture import _device_em


def _fit_both(X, sample_weight=None, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        host = VMFMixture(random_state=0, **params).fit(X, sample_weight=sample_weight)
        device = VMFMixture(random_state=0, device="cpu", **params).fit(
            X, sample_weight=sample_weight
        )
    return host, device


@pytest.mark.parametrize("posterior_type", ["soft", "hard"])
@pytest.mark.parametrize("kappa", ["free", "tied", 30.0])
def test_device_em_loop_equals_the_numpy_loop(posterior_type, kappa):
    X, _ = make_vmf_blobs(1500, 12, centers=4, kappa=25.0, random_state=3)
    weight = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    host, device = _fit_both(
        X, weight, n_components=4, posterior_type=posterior_type, kappa=kappa, tol=1e-10
    )
    assert host.n_iter_ == device.n_iter_ > 2
    assert device.lower_bound_ == pytest.approx(host.lower_bound_, rel=1e-12)
    np.testing.assert_allclose(device.means_, host.means_, atol=1e-12)
    np.testing.assert_allclose(device.kappas_, host.kappas_, rtol=1e-11)
    np.testing.assert_allclose(device.weights_, host.weights_, atol=1e-12)


def test_device_em_loop_reseeds_collapsed_components_like_the_numpy_loop():
    # 30 components on 8 clusters with a 2 % floor: components collapse and are re-seeded
    # through the host fallback of the device loop.
    X, _ = make_vmf_blobs(2000, 40, centers=8, kappa=15.0, random_state=1)
    calls = []
    original = VMFMixture._m_step

    def counting(self, *args):
        calls.append(1)
        return original(self, *args)

    VMFMixture._m_step = counting
    try:
        host, device = _fit_both(X, n_components=30, min_weight=0.02, max_iter=60, tol=1e-8)
    finally:
        VMFMixture._m_step = original
    assert host.n_iter_ == device.n_iter_
    np.testing.assert_allclose(device.means_, host.means_, atol=1e-10)
    np.testing.assert_allclose(device.kappas_, host.kappas_, rtol=1e-9)
    assert len(calls) > 2 * 2  # the fallback ran (beyond the two fits' initialisations)


def test_device_em_loop_float32_and_n_init():
    X, _ = make_vmf_blobs(1000, 20, centers=5, kappa=30.0, random_state=2)
    host, device = _fit_both(X, n_components=5, init="random", n_init=3)
    assert device.n_iter_ == host.n_iter_
    assert device.lower_bound_ == pytest.approx(host.lower_bound_, rel=1e-12)
    # float32 GEMMs round differently from NumPy's: the same optimum, maybe one more step
    host, device = _fit_both(X.astype(np.float32), n_components=5, init="random", n_init=3)
    assert abs(device.n_iter_ - host.n_iter_) <= 2
    assert device.lower_bound_ == pytest.approx(host.lower_bound_, rel=1e-5)
    assert adjusted_rand_score(host.predict(X), device.predict(X)) > 0.99


def test_stochastic_em_on_a_device_keeps_the_host_loop():
    X, _ = make_vmf_blobs(300, 5, centers=2, kappa=30.0, random_state=0)
    backend = _device_em.supports_device_loop
    model = VMFMixture(2, posterior_type="stochastic", device="cpu")
    from sphereml.mixture._dispatch import make_backend

    assert not backend(model, make_backend(X, np.ones(len(X)), "cpu"))
    assert backend(VMFMixture(2, device="cpu"), make_backend(X, np.ones(len(X)), "cpu"))
    assert not backend(VMFMixture(2), make_backend(X, np.ones(len(X)), None))
    model.fit(X)  # runs


def test_compiled_device_em_loop_equals_eager():
    # torch.compile on the CPU (C++ codegen): the same fused functions as on CUDA.
    pytest.importorskip("torch._inductor")
    X, _ = make_vmf_blobs(800, 16, centers=4, kappa=20.0, random_state=0)
    X = X.astype(np.float32)
    eager = VMFMixture(4, random_state=0, device="cpu").fit(X)
    try:
        compiled = VMFMixture(4, random_state=0, device="cpu", compile=True).fit(X)
    except Exception as exc:  # no C++ compiler: torch.compile cannot run here
        pytest.skip(f"torch.compile unavailable: {exc!r}"[:200])
    assert compiled.n_iter_ == eager.n_iter_
    assert compiled.lower_bound_ == pytest.approx(eager.lower_bound_, rel=1e-6)
    np.testing.assert_allclose(compiled.means_, eager.means_, atol=1e-5)


def test_matmul_precision_is_validated_and_restored():
    X, _ = make_vmf_blobs(300, 5, centers=2, kappa=30.0, random_state=0)
    with pytest.raises(ValueError, match="matmul_precision"):
        VMFMixture(2, matmul_precision="medium").fit(X)
    before = torch.get_float32_matmul_precision()
    VMFMixture(2, device="cpu", matmul_precision="high", random_state=0).fit(X)
    assert torch.get_float32_matmul_precision() == before
    with _device_em.float32_matmul_precision("high"):
        assert torch.get_float32_matmul_precision() == "high"
    assert torch.get_float32_matmul_precision() == before


def test_a_failed_graph_capture_falls_back_to_the_uncaptured_step(monkeypatch):
    X, _ = make_vmf_blobs(600, 8, centers=3, kappa=20.0, random_state=0)
    eager = VMFMixture(3, random_state=0, device="cpu").fit(X)
    original = _device_em.DeviceRunner.__init__

    def with_graph(self, *args, **kwargs):  # as on CUDA, where each iteration is a graph
        original(self, *args, **kwargs)
        self.use_graph = True

    def failing_capture(self, state):
        raise RuntimeError("CUDA error: operation failed due to a previous error during capture")

    monkeypatch.setattr(_device_em.DeviceRunner, "__init__", with_graph)
    monkeypatch.setattr(_device_em.DeviceRunner, "_capture", failing_capture)
    with pytest.warns(UserWarning, match="capturing the EM iteration as a CUDA graph failed"):
        fallback = VMFMixture(3, random_state=0, device="cpu").fit(X)
    assert fallback.n_iter_ == eager.n_iter_
    np.testing.assert_allclose(fallback.means_, eager.means_, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_compiled_fit_after_eager_fits_in_one_process():
    # compiled (graph-captured) fits following eager CUDA fits of several lengths in the
    # same process once failed with cudaErrorStreamCaptureInvalidated
    X, _ = make_vmf_blobs(100_000, 64, centers=20, kappa=50.0, random_state=0)
    X = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for max_iter in (5, 5, 205, 5, 205):
            VMFMixture(20, init="random", tol=0.0, max_iter=max_iter, device="cuda",
                       random_state=0).fit(X)  # fmt: skip
        eager = VMFMixture(20, init="random", tol=0.0, max_iter=30, device="cuda",
                           random_state=1).fit(X)  # fmt: skip
        compiled = VMFMixture(20, init="random", tol=0.0, max_iter=30, device="cuda",
                              compile=True, random_state=1).fit(X)  # fmt: skip
    assert compiled.n_iter_ == eager.n_iter_ == 30
    assert compiled.lower_bound_ == pytest.approx(eager.lower_bound_, rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device_em_loop_equals_the_numpy_loop():
    X, _ = make_vmf_blobs(5000, 32, centers=6, kappa=40.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        host = VMFMixture(6, random_state=0, tol=1e-10).fit(X)
        cuda = VMFMixture(6, random_state=0, tol=1e-10, device="cuda").fit(X)
    assert host.n_iter_ == cuda.n_iter_
    np.testing.assert_allclose(cuda.means_, host.means_, atol=1e-11)
    np.testing.assert_allclose(cuda.kappas_, host.kappas_, rtol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fused_e_step_fit_equals_the_float32_library_fit():
    pytest.importorskip("triton")
    X, _ = make_vmf_blobs(20000, 64, centers=8, kappa=60.0, random_state=0)
    X = X.astype(np.float32)
    fits = {}
    for precision in ("tf32x3", "highest"):
        model = VMFMixture(8, random_state=0, device="cuda", matmul_precision=precision)
        fits[precision] = model.fit(X)
    assert fits["tf32x3"].n_iter_ == fits["highest"].n_iter_
    assert fits["tf32x3"].lower_bound_ == pytest.approx(fits["highest"].lower_bound_, rel=1e-6)
    np.testing.assert_allclose(fits["tf32x3"].means_, fits["highest"].means_, atol=1e-5)


# ------------------------------------------------- fused E-step (Triton interpreter)
_FUSED_CHECK = textwrap.dedent(
    """
    import json
    import numpy as np
    import torch
    from sphereml import VMFMixture
    from sphereml.datasets import make_vmf_blobs
    from sphereml.mixture._dispatch import make_backend
    from sphereml.mixture._device_em import DeviceRunner, fused_e_step_applies
    from sphereml.mixture._fused_estep import GemmConfig, KernelConfig, fused_e_step, resultants

    out = {}
    g = torch.Generator().manual_seed(0)
    n, d, k = 300, 40, 7  # no dimension a multiple of its block
    X = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    C = 20 * torch.randn(k, d, generator=g)
    b = torch.randn(k, generator=g)
    w = torch.rand(n, generator=g)
    lp = X.double() @ C.double().T + b.double()
    for hard in (False, True):
        for weights in (None, w):
            resp, lse, counts = fused_e_step(
                X, C, b, weights, hard=hard, precision="tf32x3",
                config=KernelConfig(64, 16, 4, 2),
            )
            if hard:
                ref = torch.zeros_like(lp).scatter_(1, lp.argmax(1, keepdim=True), 1.0)
                ref_lse = lp.max(1).values
            else:
                ref, ref_lse = torch.softmax(lp, 1), torch.logsumexp(lp, 1)
            if weights is not None:
                ref = ref * weights.double()[:, None]
            out[f"kernel hard={hard} weighted={weights is not None}"] = [
                float((resp.double() - ref).abs().max()),
                float((lse.double() - ref_lse).abs().max() / ref_lse.abs().max()),
                float((counts.double() - ref.sum(0)).abs().max() / n),
            ]
    try:
        fused_e_step(X, torch.randn(300, d), torch.randn(300))
    except ValueError as exc:
        out["too many components"] = str(exc)
    for n_rows, config in ((300, GemmConfig(16, 16, 4, 2, 5)), (1000, GemmConfig(32, 32, 4, 2, 7))):
        R = torch.rand(n_rows, k, generator=g)
        Z = torch.randn(n_rows, d, generator=g)
        ref = R.double().T @ Z.double()
        got = resultants(R, Z, config=config).double()
        out[f"resultants n={n_rows}"] = [float((got - ref).abs().max() / ref.abs().max())]

    Y, _ = make_vmf_blobs(500, 10, centers=4, kappa=30.0, random_state=0)
    Y = Y.astype(np.float32)
    start = (np.full(4, 0.25), Y[:4].astype(np.float64), np.full(4, 10.0))
    for posterior in ("soft", "hard"):
        for sample_weight in (np.ones(500), np.random.default_rng(0).uniform(0.2, 3, 500)):
            estimator = VMFMixture(4, posterior_type=posterior)
            backend = make_backend(Y, sample_weight, "cpu")
            fits = []
            for fused in (False, True):
                runner = DeviceRunner(estimator, backend, fused=fused, fused_resultants=fused)
                state = runner.load(start)
                for _ in range(5):
                    state, ll = runner.iterate(state)
                fits.append((runner.unload(state), ll))
            (library, ll_library), (fused, ll_fused) = fits
            key = f"runner {posterior} weighted={sample_weight[0] != 1}"
            out[key] = [float(np.abs(a / b - 1).max()) for a, b in zip(library, fused)]
            out[key].append(abs(ll_library - ll_fused) / abs(ll_library))
    out["applies on cpu"] = fused_e_step_applies(backend, 4, "tf32x3")
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")
def test_fused_e_step_in_the_triton_interpreter():
    # TRITON_INTERPRET must be set before the kernel is defined: a fresh interpreter.
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run(
        [sys.executable, "-c", _FUSED_CHECK], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "at most 256 components" in out.pop("too many components")
    assert out.pop("applies on cpu") is False  # CUDA only; tests force it with fused=True
    assert len(out) == 10
    for key, errors in out.items():
        assert max(errors) < 1e-5, (key, errors)
