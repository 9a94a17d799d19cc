"""The fused GPU kernels of the nGPT layers and the sphere operations — the residual
update, the query/key normalisation and the unit norm — against their eager forms,
through Triton's CPU interpreter, and on CUDA where present."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

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
@pytest.mark.parametrize(
    "switch",
    [
        # bf16 autocast: the eager form rounds Norm(q) and s_qk to bf16, the kernel does not
        "FUSED_QK_NORM",
        # and it rounds Norm(a) to bf16 where the residual kernel keeps float32
        "FUSED_RESIDUAL",
    ],
)
def test_cuda_fused_kernel_equals_the_eager_form(switch):
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
            setattr(layers, switch, fused)
            model.zero_grad()
            loss = model(ids=ids, mask=mask).logsumexp(1).mean()
            loss.backward()
            results.append([loss.detach()] + [p.grad.clone() for p in model.parameters()])
    finally:
        setattr(layers, switch, None)
    for fused, eager in zip(*results, strict=True):
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
