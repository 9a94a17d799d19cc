"""The callbacks the training engine adds to every net: early stopping that snapshots the
best weights by cloning them, the epoch's mean losses read from its own row, and the
projection back onto the sphere after each step.
"""

from __future__ import annotations

from copy import deepcopy

import numpy as np
import torch
from skorch.callbacks import Callback, EarlyStopping, PassthroughScoring

from ..riemannian.manifold import renormalize_

__all__ = ["CloningEarlyStopping", "EpochMeanScoring", "Renormalize", "cloned_state"]


class CloningEarlyStopping(EarlyStopping):
    """skorch's ``EarlyStopping`` whose best-weights snapshot clones the tensors.

    ``copy.deepcopy`` of a state dict walks Python's copy protocol per tensor, a
    noticeable share of a small table's fit. The stopping rule itself is skorch's.
    """

    load_best: bool
    best_epoch_: int

    def on_epoch_end(self, net, **kwargs):
        load_best, best_epoch = self.load_best, self.best_epoch_
        self.load_best = False  # the parent's deepcopy is replaced below
        try:
            super().on_epoch_end(net, **kwargs)
        finally:
            self.load_best = load_best
            if load_best and self.best_epoch_ != best_epoch:
                self.best_model_weights_ = cloned_state(net.module_)


def cloned_state(module: torch.nn.Module) -> dict:
    """A copy of ``module``'s state dict, its tensors cloned (detached)."""
    return {
        name: value.detach().clone() if torch.is_tensor(value) else deepcopy(value)
        for name, value in module.state_dict().items()
    }


class EpochMeanScoring(PassthroughScoring):
    """skorch's ``PassthroughScoring`` (the epoch's batch losses averaged, weighted by
    batch size) reading the epoch's batch records from its history row directly.

    skorch's multi-level history lookup, called twice per epoch and loss, costs more than
    a small network's epoch of one or two batches; the average is computed as
    ``numpy.average`` computes it, so the recorded numbers are the same.
    """

    def on_epoch_end(self, net, **kwargs):
        size_key = "train_batch_size" if self.on_train else "valid_batch_size"
        batches = [b for b in net.history[-1]["batches"] if self.name in b and size_key in b]
        if not batches:  # e.g. no validation data
            return
        scores = np.array([b[self.name] for b in batches], dtype=float)
        weights = np.array([b[size_key] for b in batches], dtype=float)
        score_avg = np.multiply(scores, weights).sum() / weights.sum()
        is_best = self._is_best_score(score_avg)
        if is_best:
            self.best_score_ = score_avg
        net.history.record(self.name, score_avg)
        if is_best is not None:
            net.history.record(self.name + "_best", bool(is_best))


class Renormalize(Callback):
    """After every optimiser step, put the constrained parameters back on the sphere.

    Optimisers that retract themselves (``RiemannianAdam``) are left alone. With
    ``net.compile`` the projection is compiled too: eagerly it is three kernel launches
    per constrained parameter, which dominate a small model's step on a GPU.
    """

    def on_batch_end(self, net, batch=None, training=None, projected=False, **kwargs):
        if training and not projected:  # a CUDA-graph step projects inside the graph
            self.project(net)

    def project(self, net) -> None:
        # accelerate wraps the optimiser; the flag is on the optimiser inside
        optimizer = getattr(net.optimizer_, "optimizer", net.optimizer_)
        if getattr(optimizer, "retracts", False):
            return
        project = renormalize_
        if net.compile:
            project = net.__dict__.get("_compiled_renormalize")
            if project is None:
                project = torch.compile(renormalize_)
                net.__dict__["_compiled_renormalize"] = project  # skorch guards setattr
        project(net.module_)
