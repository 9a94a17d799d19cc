"""Overlapping the memory-bound posterior pass with the compute-bound GEMMs of an E-step.

Run on a machine with CUDA:  python -m benchmarks.probes.em_overlap
n = 1e6, d = 256, k = 100, float32. Each variant is captured as a CUDA graph and timed
with CUDA events (mean of 20 replays); prints one JSON object of ms per E-step:

- ``serial``: addmm → posterior (softmax, log-sum-exp, counts) → Γᵀ X, one stream;
- ``side_stream_counts``: the counts and log-likelihood reductions on a second stream,
  concurrent with Γᵀ X;
- ``chunks_c``: rows in c chunks over two streams, so chunk i+1's GEMMs run while chunk
  i's posterior pass does; partial resultants summed at the end.
"""

import json

import torch


def posterior(lp):
    log_norm = torch.logsumexp(lp, 1)
    return torch.exp(lp - log_norm[:, None]), log_norm


def graph_ms(fn, reps=20):
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return round(start.elapsed_time(end) / reps, 4)


def main():
    n, d, k = 1_000_000, 256, 100
    X = torch.nn.functional.normalize(torch.randn(n, d, device="cuda"), dim=1)
    B = torch.randn(k, d, device="cuda") * 5
    bias = torch.randn(k, device="cuda")
    w = torch.ones(n, device="cuda")
    post = torch.compile(posterior, dynamic=False)
    out = {}

    def serial():
        lp = torch.addmm(bias, X, B.T)
        resp, log_norm = post(lp)
        return resp.T @ X, resp.sum(0), log_norm @ w

    out["serial"] = graph_ms(serial)
    side = torch.cuda.Stream()

    def side_stream_counts():
        lp = torch.addmm(bias, X, B.T)
        resp, log_norm = post(lp)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            counts = resp.sum(0)
            ll = log_norm @ w
        resultants = resp.T @ X
        torch.cuda.current_stream().wait_stream(side)
        return resultants, counts, ll

    out["side_stream_counts"] = graph_ms(side_stream_counts)
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    for chunks in (2, 4, 8, 16):
        size = n // chunks

        def chunked(chunks=chunks, size=size):
            main = torch.cuda.current_stream()
            parts = []
            for s in streams:
                s.wait_stream(main)
            for i in range(chunks):
                s = streams[i % 2]
                with torch.cuda.stream(s):
                    Xi = X[i * size : (i + 1) * size]
                    lp = torch.addmm(bias, Xi, B.T)
                    resp, log_norm = post(lp)
                    parts.append(
                        (resp.T @ Xi, resp.sum(0), log_norm @ w[i * size : (i + 1) * size])
                    )
            for s in streams:
                main.wait_stream(s)
            return [sum(p[j] for p in parts) for j in range(3)]

        out[f"chunks_{chunks}"] = graph_ms(chunked)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
