"""SphericalClassifier's model fitted full-batch by L-BFGS: how fast can it get?

The default ``SphericalClassifier`` on a table (``hidden_dims=(64,)``, three networks)
is fitted by mini-batch Adam with early stopping, epoch by epoch. This probe asks whether
a second-order full-batch solver, the way scikit-learn fits LogisticRegression, brings
the same function class near LogisticRegression's fit time. The model is written out in
one batched forward pass over all members: ``z = Norm(A x + b)``, one nGPT residual
SwiGLU block at width 64 (optional), the cosine head ``κ μ_cᵀ z + b_c``; the unit-norm
weights are reparametrised as ``w / ‖w‖`` so that an unconstrained solver applies.
``torch.optim.LBFGS`` (strong Wolfe line search, history 10) minimises the summed
members' cross-entropy plus ``l2 · ‖A‖²`` on all training rows, at most ``--max-iter``
iterations, on the defaults panel's folds (``StandardScaler`` fitted per fold).

Prints accuracy, log-loss, the median fit time and the function evaluations per fit
next to LogisticRegression on the same folds in the same run, and per table the time of
one evaluation (forward and backward pass of the three-network model over the first
fold's training rows, median of 50), the arithmetic floor of any gradient-based fit::

    python -m benchmarks.probes.full_batch --tables wine pima sonar banana heart
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import panel


def _unit(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return x / x.norm(dim=dim, keepdim=True).clamp_min(1e-12)


class BatchedSphericalNets(nn.Module):
    """``n_members`` SphericalNets of one width, evaluated as batched matrix products."""

    def __init__(self, n_features: int, n_classes: int, width: int, block: bool, n_members: int):
        super().__init__()
        hidden = 2 * width
        self.block = block
        self.A = nn.Parameter(torch.randn(n_members, n_features, width) / math.sqrt(n_features))
        self.b = nn.Parameter(torch.zeros(n_members, 1, width))
        self.W_u = nn.Parameter(torch.randn(n_members, width, hidden))
        self.W_v = nn.Parameter(torch.randn(n_members, width, hidden))
        self.W_o = nn.Parameter(torch.randn(n_members, hidden, width))
        self.s_u = nn.Parameter(torch.ones(n_members, 1, hidden))
        self.s_v = nn.Parameter(torch.ones(n_members, 1, hidden))
        self.alpha = nn.Parameter(torch.full((n_members, 1, width), 0.05))
        self.mu = nn.Parameter(torch.randn(n_members, width, n_classes))
        self.log_kappa = nn.Parameter(torch.full((n_members, 1, 1), math.log(10.0)))
        self.bias = nn.Parameter(torch.zeros(n_members, 1, n_classes))
        self.sqrt_width = math.sqrt(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n_members, batch, n_classes) logits."""
        z = _unit(torch.matmul(x, self.A) + self.b)
        if self.block:
            u = (z @ _unit(self.W_u, 1)) * self.s_u
            v = (z @ _unit(self.W_v, 1)) * (self.s_v * self.sqrt_width)
            suggestion = _unit((u * F.silu(v)) @ _unit(self.W_o, 2))
            z = _unit(z + self.alpha * (suggestion - z))
        return self.log_kappa.exp() * (z @ _unit(self.mu, 1)) + self.bias


def fit_full_batch(X, y, n_classes, *, block, n_members, l2, max_iter, seed):
    """The fitted nets and the number of loss evaluations."""
    torch.manual_seed(seed)
    x = torch.as_tensor(X, dtype=torch.float32)
    targets = torch.as_tensor(y).repeat(n_members)
    net = BatchedSphericalNets(X.shape[1], n_classes, 64, block, n_members)
    solver = torch.optim.LBFGS(
        net.parameters(), max_iter=max_iter, history_size=10, line_search_fn="strong_wolfe"
    )
    evaluations = 0

    def closure():
        nonlocal evaluations
        evaluations += 1
        solver.zero_grad()
        loss = F.cross_entropy(net(x).reshape(-1, n_classes), targets)
        loss = loss + l2 * net.A.square().sum() / n_members
        loss.backward()
        return loss

    solver.step(closure)
    return net, evaluations


def evaluation_ms(X, y, n_classes: int, repeats: int = 50) -> float:
    """Median ms of one loss-and-gradient evaluation of three networks on all of ``X``."""
    x = torch.as_tensor(X, dtype=torch.float32)
    targets = torch.as_tensor(y).repeat(3)
    net = BatchedSphericalNets(X.shape[1], n_classes, 64, True, 3)
    times = []
    for i in range(repeats + 5):
        start = time.perf_counter()
        net.zero_grad()
        F.cross_entropy(net(x).reshape(-1, n_classes), targets).backward()
        if i >= 5:  # the first calls allocate
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import LabelEncoder, StandardScaler

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="*", default=["wine", "pima", "sonar", "banana", "heart"])
    parser.add_argument("--max-iter", type=int, default=200)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    variants = {
        "LogisticRegression": None,
        "3 nets, block, l2=1e-3": dict(block=True, n_members=3, l2=1e-3),
        "3 nets, block, l2=1e-2": dict(block=True, n_members=3, l2=1e-2),
        "3 nets, no block, l2=1e-3": dict(block=False, n_members=3, l2=1e-3),
        "1 net, block, l2=1e-3": dict(block=True, n_members=1, l2=1e-3),
    }
    for name in args.tables:
        X, y, _ = panel.load_table(name, 3000)
        y = LabelEncoder().fit_transform(y)
        n_classes = int(y.max()) + 1
        folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
        train = folds[0][0]
        X_first = StandardScaler().fit_transform(X[train])
        cost = evaluation_ms(X_first, y[train], n_classes)
        print(f"{name:8s} one evaluation, 3 networks, {len(train)} rows: {cost:.2f} ms", flush=True)
        for label, params in variants.items():
            accuracy, loss, fit_s, evaluations = [], [], [], []
            for train, test in folds:
                scaler = StandardScaler().fit(X[train])
                X_train, X_test = scaler.transform(X[train]), scaler.transform(X[test])
                start = time.perf_counter()
                if params is None:
                    model = LogisticRegression(max_iter=1000).fit(X_train, y[train])
                    fit_s.append(time.perf_counter() - start)
                    proba = model.predict_proba(X_test)
                    evaluations.append(int(model.n_iter_[0]))
                else:
                    net, count = fit_full_batch(
                        X_train, y[train], n_classes, max_iter=args.max_iter, seed=0, **params
                    )
                    fit_s.append(time.perf_counter() - start)
                    with torch.no_grad():
                        logits = net(torch.as_tensor(X_test, dtype=torch.float32))
                    proba = torch.softmax(logits, -1).mean(0).double().numpy()
                    evaluations.append(count)
                accuracy.append(float((proba.argmax(1) == y[test]).mean()))
                loss.append(log_loss(y[test], np.clip(proba, 1e-15, 1), labels=range(n_classes)))
            print(
                f"{name:8s} {label:28s} accuracy {np.mean(accuracy):.3f} "
                f"log-loss {np.mean(loss):.3f} fit {1000 * np.median(fit_s):7.1f} ms "
                f"evaluations {int(np.median(evaluations))}",
                flush=True,
            )


if __name__ == "__main__":
    main()
