"""Training-step time of nGPT against the pre-LN Transformer, and what the normalisations cost.

Run on a machine with CUDA:  python -m benchmarks.probes.ngpt_step [--d 256 --layers 4 ...]
Random byte-token batches (no data needed), bf16 autocast, Adam as in the estimator,
renormalisation after every nGPT step; ms per step = mean over 50 steps after 10 warm-up
steps (synchronised). nGPT variants: ``before`` (unit_norm as norm + clamp + divide,
SwiGLU scalings in float32), ``fused_norm`` (the library's fused RMSNorm unit_norm),
``unfused_residual`` (also the scalings in the activations' dtype), ``unfused_qk_norm``
(also the fused Triton residual update ``Norm(h + α(Norm(a) − h))``) and ``library`` (also
the fused Triton query/key normalisation ``s_qk ⊙ Norm(q)``; both kernels serve CUDA-graph
captures, the compiled model keeps the eager forms, which inductor fuses); each eager, as
a CUDA graph and compiled (the first 10 steps' time, compilation included, reported). ``--profile``
prints the CUDA kernel time per step by kernel for both models instead.
"""

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

import sphereml._sphere._ops as ops
import sphereml.nn.layers as layers
import sphereml.nn.ngpt as ngpt
from sphereml.nn.ngpt import NGPTEncoder, PreLNTransformer, TextEncoderConfig
from sphereml.riemannian import renormalize_

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


def use(unit_norm, swiglu_forward, fused_residual=None, fused_qk_norm=None):
    for module in (ops, ngpt, layers):
        module.unit_norm = unit_norm
    layers.NormalizedSwiGLU.forward = swiglu_forward
    layers.FUSED_RESIDUAL = fused_residual
    layers.FUSED_QK_NORM = fused_qk_norm


VARIANTS = {
    "before": (plain_unit_norm, float32_scaled_swiglu, False, False),
    "fused_norm": (LIBRARY_UNIT_NORM, float32_scaled_swiglu, False, False),
    "unfused_residual": (LIBRARY_UNIT_NORM, LIBRARY_SWIGLU_FORWARD, False, False),
    "unfused_qk_norm": (LIBRARY_UNIT_NORM, LIBRARY_SWIGLU_FORWARD, None, False),
    "library": (LIBRARY_UNIT_NORM, LIBRARY_SWIGLU_FORWARD, None, None),
}


#: step modes: (compiled, captured in a CUDA graph)
MODES = {
    "eager": (False, False),
    "graph": (False, True),
    "compiled": (True, False),
    "compiled_graph": (True, True),
}


def step_ms(arch, args, compiled, graphed, phase="full"):
    """ms per training step (and the first 10 steps' seconds). ``phase``: "full", or
    "forward_backward" / "with_optimizer" for the step cut after those parts."""
    torch.manual_seed(0)
    config = TextEncoderConfig(
        300, 5, d_model=args.d, n_layers=args.layers, n_heads=args.heads, mlp_ratio=args.mlp_ratio,
        max_length=args.context, pooling="mean",
    )  # fmt: skip
    model = (NGPTEncoder if arch == "ngpt" else PreLNTransformer)(config).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=graphed, fused=True)
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
        if phase == "forward_backward":
            return
        opt.step()
        if arch == "ngpt" and phase == "full":
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


def fit_seconds(arch, args, compiled, graphed, steps):
    """Wall seconds of a whole fit of ``steps`` training steps from a fresh process:
    building the model, compilation (with ``compiled``), 3 warm-up steps, capture (with
    ``graphed``), and the remaining steps."""
    start = time.perf_counter()
    torch.manual_seed(0)
    config = TextEncoderConfig(
        300, 5, d_model=args.d, n_layers=args.layers, n_heads=args.heads, mlp_ratio=args.mlp_ratio,
        max_length=args.context, pooling="mean",
    )  # fmt: skip
    model = (NGPTEncoder if arch == "ngpt" else PreLNTransformer)(config).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=graphed, fused=True)
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

    run = step
    warm = 3
    if graphed:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(warm):
                step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        run = graph.replay
    else:
        for _ in range(warm):
            step()
    for _ in range(steps - warm):
        run()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def fit_runs(args) -> dict:
    """``fit_seconds`` of each model and mode in fresh processes: a cold compilation
    cache (a new, empty inductor cache directory), then the same directory again (warm)."""
    import os
    import subprocess
    import tempfile

    out: dict = {}
    for mode in args.modes:
        for arch in ("transformer", "ngpt"):
            cache = tempfile.mkdtemp(prefix="inductor-")
            for state in ("cold", "warm"):
                command = [sys.executable, __file__, "--child-fit", arch, mode]
                command += ["--fit-steps", str(args.fit_steps), "--d", str(args.d)]
                command += ["--layers", str(args.layers), "--heads", str(args.heads)]
                command += ["--context", str(args.context), "--batch", str(args.batch)]
                command += ["--mlp-ratio", str(args.mlp_ratio)]
                env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
                done = subprocess.run(command, env=env, capture_output=True, text=True)
                if done.returncode:
                    raise RuntimeError(done.stderr[-2000:])
                seconds = float(done.stdout.strip().splitlines()[-1])
                out[f"{arch}_{mode}_fit{args.fit_steps}_{state}_s"] = round(seconds, 2)
                print(arch, mode, state, seconds, flush=True)
            if mode in ("eager", "graph"):
                del out[f"{arch}_{mode}_fit{args.fit_steps}_warm_s"]  # nothing cached
            name = f"{mode}_fit{args.fit_steps}"
        for state in ("cold", "warm"):
            if f"ngpt_{name}_{state}_s" in out:
                ratio = out[f"ngpt_{name}_{state}_s"] / out[f"transformer_{name}_{state}_s"]
                out[f"ratio_{name}_{state}"] = round(ratio, 3)
    return out


def profile_step(arch, args, steps=5, compiled=False):
    """CUDA kernel time per step, by operator, of one eager (or compiled) training step
    (the sum is what a CUDA-graph replay costs without launch gaps)."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    config = TextEncoderConfig(
        300, 5, d_model=args.d, n_layers=args.layers, n_heads=args.heads, mlp_ratio=args.mlp_ratio,
        max_length=args.context, pooling="mean",
    )  # fmt: skip
    model = (NGPTEncoder if arch == "ngpt" else PreLNTransformer)(config).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    forward = torch.compile(model, dynamic=False) if compiled else model
    renorm = torch.compile(renormalize_) if compiled else renormalize_
    ids = torch.randint(4, 300, (args.batch, args.context), device="cuda")
    mask = ids != 0
    y = torch.randint(0, 5, (args.batch,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(forward(ids=ids, mask=mask).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if arch == "ngpt":
            renorm(model)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    events = prof.key_averages()
    total = sum(e.self_device_time_total for e in events) / steps / 1e3
    mode = "compiled" if compiled else "eager"
    print(f"== {arch} ({mode}): {total:.2f} ms of kernel time per step", flush=True)
    print(events.table(sort_by="self_cuda_time_total", row_limit=30, max_name_column_width=70))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--mlp-ratio", type=float, default=4.0, help="SwiGLU width ÷ d")
    p.add_argument("--profile", action="store_true", help="kernel-time table per model")
    p.add_argument("--profile-compiled", action="store_true", help="the same, compiled")
    p.add_argument(
        "--modes", nargs="*", default=list(MODES), choices=list(MODES), help="step modes"
    )
    p.add_argument(
        "--phases", action="store_true", help="also time the step cut after backward / Adam"
    )
    p.add_argument(
        "--fit-steps", type=int, default=0, help="time whole fits of this many steps instead"
    )
    p.add_argument("--child-fit", nargs=2, default=None, help=argparse.SUPPRESS)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = p.parse_args()
    if args.child_fit:
        arch, mode = args.child_fit
        print(fit_seconds(arch, args, *MODES[mode], args.fit_steps))
        return
    if args.fit_steps:
        out = {"shape": vars(args), "gpu": torch.cuda.get_device_name(), **fit_runs(args)}
        print(json.dumps(out), flush=True)
        return
    if args.profile or args.profile_compiled:
        for arch in ("transformer", "ngpt"):
            profile_step(arch, args, compiled=args.profile_compiled)
        return
    out = {"shape": vars(args), "gpu": torch.cuda.get_device_name()}
    for mode in args.modes:
        compiled, graphed = MODES[mode]
        base, base_warm = step_ms("transformer", args, compiled, graphed)
        out[f"preln_{mode}_ms"] = round(base, 3)
        for name in args.variants:
            use(*VARIANTS[name])
            ms, warm = step_ms("ngpt", args, compiled, graphed)
            out[f"ngpt_{name}_{mode}_ms"] = round(ms, 3)
            out[f"ngpt_{name}_{mode}_ratio"] = round(ms / base, 3)
            if compiled:
                out[f"ngpt_{name}_{mode}_first10_s"] = round(warm, 1)
            for phase in ("forward_backward", "with_optimizer") if args.phases else ():
                ms, _ = step_ms("ngpt", args, compiled, graphed, phase)
                out[f"ngpt_{name}_{mode}_{phase}_ms"] = round(ms, 3)
                ms, _ = step_ms("transformer", args, compiled, graphed, phase)
                out[f"preln_{mode}_{phase}_ms"] = round(ms, 3)
        use(*VARIANTS["library"])
        if compiled:
            out[f"preln_{mode}_first10_s"] = round(base_warm, 1)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
