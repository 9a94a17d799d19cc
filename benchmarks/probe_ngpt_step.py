"""Training-step time of nGPT against the pre-LN Transformer, and what the normalisations cost.

Run on a machine with CUDA:  python benchmarks/probe_ngpt_step.py [--d 256 --layers 4 ...]
Random byte-token batches (no data needed), bf16 autocast, Adam as in the estimator,
renormalisation after every nGPT step; ms per step = mean over 50 steps after 10 warm-up
steps (synchronised). nGPT variants: ``before`` (unit_norm as norm + clamp + divide,
SwiGLU scalings in float32), ``fused_norm`` (the library's fused RMSNorm unit_norm),
``unfused_residual`` (also the scalings in the activations' dtype) and ``library`` (also
the fused Triton residual update ``Norm(h + α(Norm(a) − h))``, eager and CUDA graph; the
compiled model keeps the eager form, which inductor fuses); each eager, as a CUDA graph
and compiled (the first 10 steps' time, compilation included, reported). ``--profile``
prints the CUDA kernel time per step by kernel for both models instead.
"""

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, ".")
import sphereml.nn.layers as layers  # noqa: E402
import sphereml.nn.ngpt as ngpt  # noqa: E402
import sphereml.sphere._ops as ops  # noqa: E402
from sphereml.nn import renormalize_  # noqa: E402
from sphereml.nn.ngpt import NGPTEncoder, PreLNTransformer, TextEncoderConfig  # noqa: E402

LIBRARY_UNIT_NORM = ops.unit_norm
LIBRARY_SWIGLU_FORWARD = layers.NormalizedSwiGLU.forward


def plain_unit_norm(x, *, axis=-1, eps=ops.NORM_EPS):
    """The three-kernel form: norm (float32), clamp, divide, cast back."""
    if isinstance(x, torch.Tensor):
        norm = torch.linalg.vector_norm(x, dim=axis, keepdim=True, dtype=torch.float32)
        return (x / norm.clamp_min(eps)).to(x.dtype)
    return LIBRARY_UNIT_NORM(x, axis=axis, eps=eps)


def float32_scaled_swiglu(self, h):
    """SwiGLU with float32 scaling vectors (promotes bf16 activations to float32)."""
    u = self.W_u(h) * self.s_u()
    v = self.W_v(h) * (self.s_v() * self.sqrt_dim)
    return self.W_o(u * F.silu(v))


def use(unit_norm, swiglu_forward, fused_residual=None):
    for module in (ops, ngpt, layers):
        module.unit_norm = unit_norm
    layers.NormalizedSwiGLU.forward = swiglu_forward
    layers.FUSED_RESIDUAL = fused_residual


VARIANTS = {
    "before": (plain_unit_norm, float32_scaled_swiglu, False),
    "fused_norm": (LIBRARY_UNIT_NORM, float32_scaled_swiglu, False),
    "unfused_residual": (LIBRARY_UNIT_NORM, LIBRARY_SWIGLU_FORWARD, False),
    "library": (LIBRARY_UNIT_NORM, LIBRARY_SWIGLU_FORWARD, None),
}


def step_ms(arch, args, compiled, graphed):
    torch.manual_seed(0)
    config = TextEncoderConfig(
        300, 5, d_model=args.d, n_layers=args.layers, n_heads=args.heads, mlp_ratio=4.0,
        max_length=args.context, pooling="mean",
    )  # fmt: skip
    model = (NGPTEncoder if arch == "ngpt" else PreLNTransformer)(config).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=graphed)
    forward = torch.compile(model, dynamic=False) if compiled else model
    renorm = torch.compile(renormalize_) if compiled else renormalize_
    ids = torch.randint(4, 300, (args.batch, args.context), device="cuda")
    mask = ids != 0
    y = torch.randint(0, 5, (args.batch,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(forward(ids=ids, mask=mask).float(), y)
        opt.zero_grad(set_to_none=not graphed)
        loss.backward()
        opt.step()
        if arch == "ngpt":
            with torch.no_grad():
                renorm(model)

    start = time.perf_counter()
    for _ in range(10):
        step()
    torch.cuda.synchronize()
    warm = time.perf_counter() - start
    run = step
    if graphed:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        run = graph.replay
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(50):
        run()
    torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - start) / 50, warm


def profile_step(arch, args, steps=5):
    """CUDA kernel time per step, by operator, of one eager training step (the sum is what
    a CUDA-graph replay costs without launch gaps)."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    config = TextEncoderConfig(
        300, 5, d_model=args.d, n_layers=args.layers, n_heads=args.heads, mlp_ratio=4.0,
        max_length=args.context, pooling="mean",
    )  # fmt: skip
    model = (NGPTEncoder if arch == "ngpt" else PreLNTransformer)(config).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    ids = torch.randint(4, 300, (args.batch, args.context), device="cuda")
    mask = ids != 0
    y = torch.randint(0, 5, (args.batch,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(ids=ids, mask=mask).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if arch == "ngpt":
            renormalize_(model)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    events = prof.key_averages()
    total = sum(e.self_device_time_total for e in events) / steps / 1e3
    print(f"== {arch}: {total:.2f} ms of kernel time per step", flush=True)
    print(events.table(sort_by="self_cuda_time_total", row_limit=30, max_name_column_width=70))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--profile", action="store_true", help="kernel-time table per model")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = p.parse_args()
    if args.profile:
        for arch in ("transformer", "ngpt"):
            profile_step(arch, args)
        return
    out = {"shape": vars(args), "gpu": torch.cuda.get_device_name()}
    for mode, compiled, graphed in (
        ("eager", False, False),
        ("graph", False, True),
        ("compiled", True, False),
    ):
        base, base_warm = step_ms("transformer", args, compiled, graphed)
        out[f"preln_{mode}_ms"] = round(base, 3)
        for name in args.variants:
            use(*VARIANTS[name])
            ms, warm = step_ms("ngpt", args, compiled, graphed)
            out[f"ngpt_{name}_{mode}_ms"] = round(ms, 3)
            out[f"ngpt_{name}_{mode}_ratio"] = round(ms / base, 3)
            if compiled:
                out[f"ngpt_{name}_{mode}_first10_s"] = round(warm, 1)
        use(*VARIANTS["library"])
        if compiled:
            out[f"preln_{mode}_first10_s"] = round(base_warm, 1)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
