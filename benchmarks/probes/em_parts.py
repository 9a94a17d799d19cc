"""Alternatives for the pieces of a device EM iteration at n=1e6, d=256, k=100 (CUDA).

Run:  python -m benchmarks.probes.em_parts
Prints one JSON object of ms per call: the first GEMM for widths 256..288 of X (a column
of ones appended, zero-padded) and with the bias as addmm's epilogue; the second GEMM
plain, transposed and as batched split-K; the posterior pass eager and compiled. These
measurements chose the shapes of ``sphereml.mixture._device_em``.
"""

import json

import torch


def cuda_ms(fn, reps=20):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return round(start.elapsed_time(end) / reps, 4)


def main():
    n, d, k = 1_000_000, 256, 100
    dev = "cuda"
    out = {}
    X = torch.nn.functional.normalize(torch.randn(n, d, device=dev), dim=1)
    for width in (256, 260, 264, 272, 288):
        Xa = torch.zeros(n, width, device=dev)
        Xa[:, :d] = X
        B = torch.randn(k, width, device=dev)
        Bt = B.T.contiguous()
        lp = Xa @ B.T
        resp = torch.softmax(lp, 1)
        out[f"gemm1_w{width}_Bview"] = cuda_ms(lambda Xa=Xa, B=B: Xa @ B.T)
        out[f"gemm1_w{width}_Bcontig"] = cuda_ms(lambda Xa=Xa, Bt=Bt: Xa @ Bt)
        out[f"gemm2_w{width}_plain"] = cuda_ms(lambda Xa=Xa, resp=resp: resp.T @ Xa)
        out[f"gemm2_w{width}_XtR"] = cuda_ms(lambda Xa=Xa, resp=resp: Xa.T @ resp)
        for chunks in (8, 25, 50, 100, 200):
            out[f"gemm2_w{width}_bmm{chunks}"] = cuda_ms(
                lambda Xa=Xa, resp=resp, c=chunks: torch.bmm(
                    resp.view(c, n // c, k).transpose(1, 2), Xa.view(c, n // c, -1)
                ).sum(0)
            )
        del Xa
    bias = torch.randn(k, device=dev)
    B = torch.randn(k, d, device=dev)
    out["gemm1_addmm_bias_w256"] = cuda_ms(lambda: torch.addmm(bias, X, B.T))
    lp = X @ B.T

    def lse_softmax(lp):
        return torch.softmax(lp, 1), torch.logsumexp(lp, 1)

    def log_softmax_trick(lp):
        lsm = torch.log_softmax(lp, 1)
        return lsm.exp_(), lp[:, 0] - torch.log_softmax(lp[:, :1], 1)[:, 0]

    out["posterior_softmax_plus_lse"] = cuda_ms(lambda: lse_softmax(lp))
    out["posterior_log_softmax_exp"] = cuda_ms(lambda: torch.log_softmax(lp, 1).exp_())
    out["softmax_only"] = cuda_ms(lambda: torch.softmax(lp, 1))
    compiled = torch.compile(lse_softmax, dynamic=False)
    out["posterior_compiled"] = cuda_ms(lambda: compiled(lp))
    out["read_write_nk_copy"] = cuda_ms(lambda: lp.clone())
    print(json.dumps(out, indent=0), flush=True)


if __name__ == "__main__":
    main()
