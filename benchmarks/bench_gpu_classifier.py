"""SphericalClassifier on a GPU: seconds per epoch over n=1e6, d=384, and CPU/GPU agreement.

Run on a machine with CUDA:  python benchmarks/bench_gpu_classifier.py
Prints JSON lines:

- ``epoch``: skorch's per-epoch wall time (``history_[:, "dur"]``; the first epoch, which
  includes CUDA warm-up, is reported separately) for several batch sizes, next to a
  hand-written torch loop over the same module, optimiser and batches — the script a user
  would otherwise write — so the wrapper's overhead is visible.
- ``bound``: the memory-traffic bound of one epoch (gather + forward + backward reads of
  X at the measured device bandwidth); FLOPs are negligible at K=10 classes.
- ``agreement``: the same seed on CPU and GPU (float32 both): identical initialisation and
  batch order, so only rounding differs.
"""

import json
import time

import numpy as np
import torch

from sphereml import SphericalClassifier
from sphereml.nn import SphericalNet, SphericalNetConfig
from sphereml.riemannian import renormalize_


def directional_data(n, d, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.nn.functional.normalize(torch.randn(k, d, generator=g), dim=1)
    y = torch.randint(0, k, (n,), generator=g)
    X = torch.nn.functional.normalize(centers[y] * 3.0 + torch.randn(n, d, generator=g), dim=1)
    return X.numpy(), y.numpy()


def hand_written_epoch_seconds(X, y, batch_size, epochs=3):
    """Plain torch: same module, Adam, renormalise after each step, one permutation/epoch."""
    dev = torch.device("cuda")
    Xd, yd = torch.as_tensor(X, device=dev), torch.as_tensor(y, device=dev)
    model = SphericalNet(SphericalNetConfig(X.shape[1], int(y.max()) + 1)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    times = []
    for _ in range(epochs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        order = torch.randperm(len(Xd), device=dev)
        for i in range(0, len(Xd), batch_size):
            idx = order[i : i + batch_size]
            loss = model.per_sample_loss(model(Xd[idx]), yd[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            renormalize_(model)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def bandwidth_gbs():
    a = torch.empty(2**28, device="cuda")  # 1 GiB
    b = torch.empty_like(a)
    b.copy_(a)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        b.copy_(a)
    torch.cuda.synchronize()
    return 10 * 2 * a.numel() * 4 / (time.perf_counter() - start) / 1e9


def main():
    n, d, k = 1_000_000, 384, 10
    X, y = directional_data(n, d, k)
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__}))
    bw = bandwidth_gbs()
    # per epoch: gather (read + write X), forward read, backward read for the prototype
    # gradient: 4 passes over n·d float32
    bytes_per_epoch = 4 * n * d * 4
    print(
        json.dumps(
            {"bound": "epoch", "GB_per_s": round(bw), "ms": 1e3 * bytes_per_epoch / (bw * 1e9)}
        )
    )
    for batch_size in (1024, 4096, 16384):
        record = {"epoch": "n=1e6 d=384", "batch_size": batch_size, "steps": -(-n // batch_size)}
        for name, graph in (("graph", True), ("skorch_loop", False)):
            clf = SphericalClassifier(
                device="cuda",
                batch_size=batch_size,
                max_epochs=5,
                n_iter_no_change=None,
                random_state=0,
            )
            clf._graph_epochs = graph  # False: the per-batch skorch loop of earlier versions
            start = time.perf_counter()
            clf.fit(X, y)
            total = time.perf_counter() - start
            durations = [float(v) for v in clf.history_[:, "dur"]]
            record[f"{name}_first_epoch_s"] = round(durations[0], 4)
            record[f"{name}_epoch_s"] = round(float(np.median(durations[1:])), 5)
            record[f"{name}_fit_total_s"] = round(total, 3)
            record[f"{name}_train_accuracy"] = clf.score(X[:100_000], y[:100_000])
        hand = hand_written_epoch_seconds(X, y, batch_size)
        record["hand_written_epoch_s"] = round(float(np.median(hand[1:])), 4)
        record["graph_epoch_over_memory_bound"] = round(
            record["graph_epoch_s"] / (bytes_per_epoch / (bw * 1e9)), 2
        )
        print(json.dumps(record), flush=True)
    # agreement CPU vs GPU, same seed
    Xs, ys = X[:20_000], y[:20_000]
    kw = dict(max_epochs=5, n_iter_no_change=None, random_state=0, hidden_dims=(64,))
    cpu = SphericalClassifier(device="cpu", **kw).fit(Xs, ys)
    gpu = SphericalClassifier(device="cuda", **kw).fit(Xs, ys)
    pc, pg = cpu.predict_proba(Xs), gpu.predict_proba(Xs)
    print(
        json.dumps(
            {
                "agreement": "cpu vs cuda, hidden_dims=(64,), 5 epochs",
                "max_abs_proba_diff": float(np.abs(pc - pg).max()),
                "label_agreement": float((pc.argmax(1) == pg.argmax(1)).mean()),
            }
        )
    )


if __name__ == "__main__":
    main()
