"""Device-resident training loops, tested on the CPU (CI has no GPU) and on CUDA if present.

- the vMF special functions in torch (``sphereml._sphere._vmf_torch``) against the NumPy
  reference and mpmath;
- ``VMFMixture``'s device EM loop (E-step, M-step and κ Newton on the torch device)
  against the NumPy EM loop, including the host fallbacks (collapsed components);
- the fused Triton E-step (``sphereml.mixture._fused_estep``) against a float64 reference
  and against the library E-step, through Triton's CPU interpreter;
- ``SphericalClassifier``'s graph epoch (the code captured as a CUDA graph on a GPU) run
  eagerly on the CPU against skorch's per-batch loop.
"""

import importlib.util
import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import mpmath
import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from sphereml import SphericalClassifier, VMFMixture, vmf
from sphereml._sphere import _vmf_torch
from sphereml.datasets import make_vmf_blobs
from sphereml.mixture import _device_em
from sphereml.training import graph_epoch as _graph_epoch

DIMS = [2, 3, 5, 10, 33, 61, 62, 64, 256, 1000, 100_000]
KAPPAS = np.concatenate([[0.0, 1e-8, 1e-3], np.logspace(-2, 6, 60)])


@pytest.mark.parametrize("d", DIMS)
def test_torch_log_normalizer_and_ratio_match_the_reference(d):
    got = _vmf_torch.log_normalizer(torch.tensor(KAPPAS), d).numpy()
    ref = vmf.log_normalizer(KAPPAS, d)
    np.testing.assert_allclose(got, ref, rtol=5e-14, atol=1e-13)
    positive = KAPPAS[KAPPAS > 0]
    a, _ = _vmf_torch.bessel_ratio_terms(torch.tensor(positive), d)
    np.testing.assert_allclose(a.numpy(), vmf.mean_resultant_length(positive, d), rtol=5e-14)


@pytest.mark.parametrize("d", [2, 5, 64, 256])
def test_torch_bessel_ratio_complement_against_mpmath(d):
    # 1 - A_d(κ) at large κ, where forming it from A would cancel; mpmath at 40 digits.
    mpmath.mp.dps = 40
    kappas = np.array([0.5, 3.0, 50.0, 1e3, 1e5])
    _, complement = _vmf_torch.bessel_ratio_terms(torch.tensor(kappas), d)
    nu = mpmath.mpf(d) / 2 - 1
    exact = [float(1 - mpmath.besseli(nu + 1, k) / mpmath.besseli(nu, k)) for k in kappas]
    # (the NumPy reference reaches ~1e-10 here: it forms 1 - A from A)
    np.testing.assert_allclose(complement.numpy(), exact, rtol=1e-11)


@pytest.mark.parametrize("method", ["newton", "sra", "song", "banerjee"])
@pytest.mark.parametrize("d", [2, 3, 10, 64, 256, 10_000])
def test_torch_estimate_kappa_matches_the_reference(method, d):
    rbar = np.concatenate([[0.0], np.linspace(0.001, 0.99, 60), [0.999, 0.9999]])
    kappa, unfinished = _vmf_torch.estimate_kappa(torch.tensor(rbar), d, method)
    ref = vmf.estimate_kappa(rbar, d, method=method)
    # the two-step methods amplify the reference's own 1e-10 error in 1 - A at small d
    rtol = 1e-9 if method == "newton" else 1e-7
    done = ~unfinished.numpy()
    np.testing.assert_allclose(kappa.numpy()[done], ref[done], rtol=rtol, atol=1e-12)
    # entries still moving after the fixed steps are flagged for the host; only the
    # loosest Amos bounds (d = 2) need more than four steps
    assert done.all() or (d == 2 and done.mean() > 0.9)


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


_RESIDUAL_CHECK = textwrap.dedent(
    """
    import json
    import torch
    from sphereml.nn import layers
    from sphereml.nn._fused_residual import fused_residual_update

    def norm(x, eps=1e-12):
        return x / torch.sqrt((x * x).sum(-1, keepdim=True) + eps * eps)

    out = {}
    g = torch.Generator().manual_seed(0)
    for shape in [(3, 5, 24), (7, 64), (2, 3)]:
        d = shape[-1]
        h = norm(torch.randn(shape, generator=g)).requires_grad_()
        a = (3 * torch.randn(shape, generator=g)).requires_grad_()
        alpha = (0.05 + 0.1 * torch.rand(d, generator=g)).requires_grad_()
        up = torch.randn(shape, generator=g)
        y = fused_residual_update(h, a, alpha)
        grads = torch.autograd.grad(y, (h, a, alpha), up)
        ref_inputs = [t.detach().double().requires_grad_() for t in (h, a, alpha)]
        h64, a64, alpha64 = ref_inputs
        y64 = norm(h64 + alpha64 * (norm(a64) - h64))
        ref = torch.autograd.grad(y64, ref_inputs, up.double())
        out[f"function {shape}"] = [
            float((x.detach().double() - r).abs().max()) for x, r in zip((y, *grads), (y64, *ref))
        ]
    # the layer: fused (forced) against the eager form, outputs and every gradient
    torch.manual_seed(0)
    layer = layers.NormalizedResidual(layers.NormalizedSwiGLU(16, 32), 16)
    h = norm(torch.randn(4, 9, 16)).requires_grad_()
    results = []
    for fused in (True, False):
        layers.FUSED_RESIDUAL = fused
        layer.zero_grad()
        y = layer(h)
        (y * torch.linspace(-1, 1, 16)).sum().backward()
        results.append([y.detach()] + [p.grad.clone() for p in layer.parameters()])
    out["layer"] = [float((x - r).abs().max()) for x, r in zip(*results)]
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")
def test_fused_residual_update_in_the_triton_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run(
        [sys.executable, "-c", _RESIDUAL_CHECK],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(out) == 4
    for key, errors in out.items():
        assert len(errors) >= 4 and max(errors) < 2e-6, (key, errors)


_QK_NORM_CHECK = textwrap.dedent(
    """
    import json
    import torch
    from sphereml.nn import layers
    from sphereml.nn._fused_scaled_norm import fused_scaled_unit_norm
    from sphereml.nn.ngpt import NGPTEncoder, TextEncoderConfig

    out = {}
    g = torch.Generator().manual_seed(0)
    for shape in [(2, 3, 5, 8), (1, 2, 70, 12), (3, 1, 1, 4)]:
        x = (3 * torch.randn(shape, generator=g)).requires_grad_()
        s = (0.5 + torch.rand(shape[1], shape[3], generator=g)).requires_grad_()
        up = torch.randn(shape, generator=g)
        y = fused_scaled_unit_norm(x, s)
        grads = torch.autograd.grad(y, (x, s), up)
        x64, s64 = [t.detach().double().requires_grad_() for t in (x, s)]
        n64 = x64 / torch.sqrt((x64 * x64).sum(-1, keepdim=True) + 1e-24)
        y64 = n64 * s64[None, :, None, :]
        ref = torch.autograd.grad(y64, (x64, s64), up.double())
        out[f"function {shape}"] = [
            float((a.detach().double() - r).abs().max()) for a, r in zip((y, *grads), (y64, *ref))
        ]
    # the model: fused q/k norm (forced) against the eager form, loss and every gradient
    torch.manual_seed(0)
    model = NGPTEncoder(TextEncoderConfig(50, 3, d_model=16, n_layers=2, n_heads=2))
    ids = torch.randint(1, 50, (3, 11))
    mask = torch.arange(11)[None, :] < torch.tensor([[11], [4], [8]])
    results = []
    for fused in (True, False):
        layers.FUSED_QK_NORM = fused
        model.zero_grad()
        loss = model(ids=ids, mask=mask).logsumexp(1).mean()
        loss.backward()
        results.append([loss.detach()] + [p.grad.clone() for p in model.parameters()])
    out["model"] = [float((a - r).abs().max()) for a, r in zip(*results)]
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")
def test_fused_qk_norm_in_the_triton_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run(
        [sys.executable, "-c", _QK_NORM_CHECK],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(out) == 4
    for key, errors in out.items():
        assert len(errors) >= 3 and max(errors) < 2e-6, (key, errors)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fused_qk_norm_equals_the_eager_form():
    pytest.importorskip("triton")
    from sphereml.nn import layers
    from sphereml.nn.ngpt import NGPTEncoder, TextEncoderConfig

    torch.manual_seed(0)
    model = NGPTEncoder(TextEncoderConfig(300, 5, d_model=64, n_layers=2, n_heads=2)).cuda()
    ids = torch.randint(4, 300, (8, 40), device="cuda")
    mask = torch.ones_like(ids, dtype=torch.bool)
    results = []
    try:
        for fused in (True, False):
            layers.FUSED_QK_NORM = fused
            model.zero_grad()
            loss = model(ids=ids, mask=mask).logsumexp(1).mean()
            loss.backward()
            results.append([loss.detach()] + [p.grad.clone() for p in model.parameters()])
    finally:
        layers.FUSED_QK_NORM = None
    for fused, eager in zip(*results, strict=True):
        # bf16 autocast: the eager form rounds Norm(q) and s_qk to bf16, the kernel does not
        torch.testing.assert_close(fused, eager, rtol=5e-2, atol=5e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fused_residual_update_equals_the_eager_form():
    pytest.importorskip("triton")
    from sphereml.nn import layers
    from sphereml.nn.ngpt import NGPTEncoder, TextEncoderConfig

    torch.manual_seed(0)
    model = NGPTEncoder(TextEncoderConfig(300, 5, d_model=64, n_layers=2, n_heads=2)).cuda()
    ids = torch.randint(4, 300, (8, 40), device="cuda")
    mask = torch.ones_like(ids, dtype=torch.bool)
    results = []
    try:
        for fused in (True, False):
            layers.FUSED_RESIDUAL = fused
            model.zero_grad()
            loss = model(ids=ids, mask=mask).logsumexp(1).mean()
            loss.backward()
            results.append([loss.detach()] + [p.grad.clone() for p in model.parameters()])
    finally:
        layers.FUSED_RESIDUAL = None
    for fused, eager in zip(*results, strict=True):
        # bf16 autocast: the eager form rounds Norm(a) to bf16, the kernel keeps float32
        torch.testing.assert_close(fused, eager, rtol=5e-2, atol=5e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fused_residual_update_is_chosen_inside_graph_capture_only(monkeypatch):
    pytest.importorskip("triton")
    from sphereml.nn import _fused_residual, layers

    calls = []
    original = _fused_residual.fused_residual_update
    monkeypatch.setattr(
        _fused_residual,
        "fused_residual_update",
        lambda *args: calls.append(1) or original(*args),
    )
    layer = layers.NormalizedResidual(layers.NormalizedSwiGLU(32, 64), 32).cuda()
    h = torch.nn.functional.normalize(torch.randn(64, 32, device="cuda"), dim=-1)
    eager = layer(h)
    assert calls == []  # launch-bound eagerly: the six-kernel form
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        layer(h)  # warm-up outside capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = layer(h)
    graph.replay()
    assert calls == [1]
    torch.testing.assert_close(captured, eager, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- graph epochs
def _classification_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((700, 8)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    return X, y


def _eager_graph_epochs(estimator):
    """Run the graph-epoch code eagerly (its CPU form) for this estimator's fits."""
    estimator._graph_epoch_mode = lambda device, optimizer: "eager"
    return estimator


@pytest.mark.parametrize("hidden_dims", [(), (16,)])
def test_graph_epoch_code_equals_the_skorch_loop(hidden_dims):
    X, y = _classification_data()
    weight = np.random.default_rng(1).uniform(0.2, 3.0, len(y))
    # one network: the graph-epoch switch below is set on this instance, not on members
    params = dict(
        hidden_dims=hidden_dims,
        optimizer="adam",
        max_epochs=6,
        batch_size=64,
        n_estimators=1,
        random_state=0,
    )
    loop = SphericalClassifier(**params).fit(X, y, sample_weight=weight)
    graph = _eager_graph_epochs(SphericalClassifier(**params)).fit(X, y, sample_weight=weight)
    assert isinstance(graph.net_.__dict__.get("_graph_epoch"), _graph_epoch.GraphEpoch)
    assert "_graph_epoch" not in loop.net_.__dict__
    assert graph.n_iter_ == loop.n_iter_
    np.testing.assert_array_equal(graph.loss_curve_, loop.loss_curve_)
    np.testing.assert_array_equal(graph.predict_proba(X), loop.predict_proba(X))
    # per-batch history as skorch records it (the last batch is the short one)
    sizes = graph.history_[-1, "batches", :, "train_batch_size"]
    assert sizes == loop.history_[-1, "batches", :, "train_batch_size"]


def test_graph_epoch_draws_the_next_order_while_the_epoch_runs():
    X, y = _classification_data()
    used = []
    original = _graph_epoch.GraphEpoch._order

    def spy(self, iterator):
        used.append(self.prefetched is not None and self.prefetched[0] is iterator)
        return original(self, iterator)

    _graph_epoch.GraphEpoch._order = spy
    try:
        _eager_graph_epochs(SphericalClassifier(max_epochs=4, n_estimators=1, random_state=0)).fit(
            X, y
        )
    finally:
        _graph_epoch.GraphEpoch._order = original
    assert used == [False, True, True, True]


def test_graph_epochs_step_aside_for_per_batch_callbacks_and_other_optimisers():
    X, y = _classification_data()
    clf = SphericalClassifier(max_epochs=2, verbose=2, n_estimators=1, random_state=0)
    clf = _eager_graph_epochs(clf)
    clf.fit(X, y)  # the progress bar is a per-batch callback: skorch's loop runs
    assert "_graph_epoch" not in clf.net_.__dict__
    cuda = torch.device("cuda")
    default = SphericalClassifier()
    assert default._graph_epoch_mode(cuda, torch.optim.Adam) == "cuda-graph"
    assert default._graph_epoch_mode(torch.device("cpu"), torch.optim.Adam) is None
    assert default._graph_epoch_mode(cuda, torch.optim.SGD) is None


def test_optimiser_kernel_options_follow_the_loading_device():
    # A model trained with capturable, fused Adam (the CUDA graph path) must warm-start
    # on a machine where those kernels do not exist.
    X, y = _classification_data()
    clf = SphericalClassifier(max_epochs=2, n_estimators=1, random_state=0, warm_start=True)
    clf.fit(X, y)
    state = clf.__getstate__()
    for group in state["_optimizer_state"]["param_groups"]:
        group.update(capturable=True, fused=True)
    loaded = pickle.loads(pickle.dumps(clf))
    loaded.__setstate__(state)
    groups = loaded.net_.optimizer_.param_groups
    assert not any(g.get("capturable") or g.get("fused") for g in groups)
    loaded.fit(X, y)
    assert loaded.n_iter_ == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_epochs_match_the_skorch_loop():
    X, y = _classification_data()
    params = dict(max_epochs=5, batch_size=64, n_estimators=1, random_state=0, device="cuda")
    graph = SphericalClassifier(**params).fit(X, y)
    assert graph.net_.__dict__["_graph_epoch"].graph is not None
    loop = SphericalClassifier(**params)
    loop._graph_epochs = False
    loop.fit(X, y)
    np.testing.assert_allclose(graph.loss_curve_, loop.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(graph.predict_proba(X), loop.predict_proba(X), atol=1e-4)


# ---------------------------------------------------------------- fused unit norm
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_unit_norm_equals_norm_clamp_divide(dtype):
    from sphereml._sphere._ops import _unit_norm_fused, unit_norm

    x = torch.randn(3, 5, 64, dtype=dtype)
    x[0, 0] = 0.0  # a zero row stays zero
    x.requires_grad_(True)
    fused, plain = _unit_norm_fused(x), unit_norm(x)  # on the CPU unit_norm is the plain form
    assert fused.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(fused, plain, rtol=tol, atol=tol)
    assert (fused[0, 0] == 0).all()
    # gradients away from the zero row (where the plain form's norm has none)
    (g_fused,) = torch.autograd.grad(fused[1:].float().pow(3).sum(), x)
    (g_plain,) = torch.autograd.grad(plain[1:].float().pow(3).sum(), x)
    torch.testing.assert_close(g_fused[1:], g_plain[1:], rtol=tol, atol=tol)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_unit_norm_on_cuda_is_the_fused_form():
    from sphereml._sphere._ops import unit_norm

    x = torch.randn(8, 256, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = unit_norm(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(
        torch.linalg.vector_norm(unit_norm(x), dim=-1), torch.ones(8, device="cuda")
    )


# ---------------------------------------------------------------- graph steps (text)
def _texts(n=160, seed=0, longest=70):
    """Variable-length texts (3 to ``longest`` words) whose class is carried by a word."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(60)]
    y = rng.integers(0, 3, n)
    texts = []
    for label in y:
        words = list(rng.choice(vocabulary, rng.integers(3, longest)))
        words[rng.integers(len(words))] = f"topic{label}"
        texts.append(" ".join(words))
    return texts, y


_TEXT_PARAMS = dict(
    d_model=16, n_layers=1, n_heads=2, max_length=64, max_epochs=3, batch_size=16,
    random_state=0,
)  # fmt: skip


def _eager_graph_steps(estimator):
    """Run the graph-step code eagerly (its CPU form) for this estimator's fits."""
    estimator._graph_step_mode = lambda device, optimizer: "eager"
    return estimator


@pytest.mark.parametrize("architecture", ["ngpt", "transformer"])
def test_graph_step_code_equals_the_skorch_loop(architecture, monkeypatch):
    from sphereml import NGPTTextClassifier
    from sphereml.neural import _base
    from sphereml.training import graph_step as _graph_step

    # the same batch lengths on both paths (the graph path rounds them up for few shapes)
    monkeypatch.setattr(_base, "LENGTH_MULTIPLE", 1)
    X, y = _texts()
    params = dict(_TEXT_PARAMS, architecture=architecture)
    loop = NGPTTextClassifier(**params).fit(X, y)
    steps = _eager_graph_steps(NGPTTextClassifier(**params)).fit(X, y)
    assert isinstance(steps.net_.__dict__.get("_graph_steps"), _graph_step.GraphSteps)
    assert "_graph_steps" not in loop.net_.__dict__
    np.testing.assert_array_equal(steps.loss_curve_, loop.loss_curve_)
    np.testing.assert_array_equal(steps.predict_proba(X), loop.predict_proba(X))
    # the schedule reached the optimiser on both paths
    lrs = [g["lr"] for g in steps.net_.optimizer_.param_groups]
    assert lrs == [g["lr"] for g in loop.net_.optimizer_.param_groups]
    del steps._graph_step_mode  # (the test's patch; the fitted net pickles without graphs)
    loaded = pickle.loads(pickle.dumps(steps))
    assert "_graph_steps" not in loaded.net_.__dict__
    np.testing.assert_array_equal(loaded.predict_proba(X), steps.predict_proba(X))


def test_batches_are_rounded_up_to_the_length_multiple():
    from skorch.dataset import Dataset

    from sphereml.training.batching import BatchIterator

    mask = np.zeros((50, 100), dtype=bool)
    lengths = np.random.default_rng(0).integers(1, 101, 50)
    for row, length in enumerate(lengths):
        mask[row, :length] = True
    ids = np.where(mask, 7, 0)
    data = Dataset({"ids": ids, "mask": mask}, np.zeros(50, dtype=np.int64))
    iterator = BatchIterator(data, 8, trim_mask="mask", length_multiple=32)
    widths = [Xb["ids"].shape[1] for Xb, _ in iterator]
    longest = [lengths[i : i + 8].max() for i in range(0, 50, 8)]
    assert widths == [min(-(-m // 32) * 32, 100) for m in longest]
    assert all(Xb["mask"].shape == Xb["ids"].shape for Xb, _ in iterator)


@pytest.mark.parametrize("architecture", ["ngpt", "transformer"])
def test_extra_masked_padding_leaves_the_model_unchanged(architecture):
    from sphereml.nn.ngpt import NGPTEncoder, PreLNTransformer, TextEncoderConfig

    torch.manual_seed(0)
    config = TextEncoderConfig(50, 3, d_model=16, n_layers=2, n_heads=2, max_length=64)
    model = (NGPTEncoder if architecture == "ngpt" else PreLNTransformer)(config).eval()
    ids = torch.randint(1, 50, (4, 20))
    mask = torch.arange(20)[None, :] < torch.tensor([[20], [5], [13], [1]])
    ids = ids * mask
    padded_ids = torch.nn.functional.pad(ids, (0, 12))
    padded_mask = torch.nn.functional.pad(mask, (0, 12))
    with torch.no_grad():
        torch.testing.assert_close(
            model(padded_ids, padded_mask), model(ids, mask), rtol=1e-5, atol=1e-6
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("architecture", ["ngpt", "transformer"])
@pytest.mark.parametrize("compile", [False, True])
def test_cuda_graph_steps_match_eager_steps(architecture, compile):
    from sphereml import NGPTTextClassifier

    # a short last batch and, with compile=True, a second shape that makes torch compile
    # a dynamic graph (whose kernels must be tuned before their capture)
    X, y = _texts(330, longest=120)
    params = dict(_TEXT_PARAMS, architecture=architecture, device="cuda", compile=compile)
    params["max_length"] = 128
    graph = NGPTTextClassifier(**params).fit(X, y)
    steps = graph.net_.__dict__["_graph_steps"]
    assert steps.capture and not steps.failed and len(steps.graphs) >= 2
    # the captured Adam read the scheduled learning rate (set before each replay): the
    # last replayed step's lies between the schedule's base and its final value
    (used,) = [float(t) for t in steps.learning_rates]
    (final,) = [g["lr"] for g in graph.net_.optimizer_.param_groups]
    assert final * (1 - 1e-6) <= used < graph._learning_rate()
    eager = _eager_graph_steps(NGPTTextClassifier(**params)).fit(X, y)
    assert not eager.net_.__dict__["_graph_steps"].capture
    np.testing.assert_allclose(graph.loss_curve_, eager.loss_curve_, rtol=2e-2)
    np.testing.assert_allclose(graph.predict_proba(X), eager.predict_proba(X), atol=3e-2)
