"""Several nets trained side by side, each batch's forward and backward pass as one.

A deep ensemble's members are independent fits: each has its own initial weights,
validation split, batch order, early stopping and optimiser. Fitted one after another,
each pays the per-step cost of Python and torch dispatch, which is most of a small
network's step on a CPU. :func:`train_lockstep` runs every net's own fit — the steps of
``net.partial_fit``: its split, iterators, callbacks, optimiser and history — as a
coroutine that hands each batch's forward and backward pass to a coordinator. The
coordinator computes the passes of all nets at the same step at once: their parameters
stacked along a new leading axis, the loss mapped over it with :func:`torch.func.vmap`.
The stacking is part of the autograd graph, so each net's parameters receive exactly
their own gradients, and each fit equals its ``partial_fit`` up to float32 round-off.
A net whose early stopping ends its fit leaves the coordinator; the others go on.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import torch
from skorch.dataset import get_len, unpack_data
from skorch.utils import TeeGenerator

from .net import TrainingNet

__all__ = ["lockstep_supported", "train_lockstep"]

# what a net's fit asks the coordinator for: ("train" | "valid", X batch, y batch); it
# receives the batch's loss (a 0-d tensor)
_Request = tuple[str, Any, Any]


def lockstep_supported(nets: Sequence[TrainingNet]) -> bool:
    """Whether these initialised nets can be trained by :func:`train_lockstep`.

    They must hold modules of one class with parameters of equal names and shapes that
    declare ``trains_under_vmap`` (no random draws, no data-dependent control flow in a
    training step), train through the plain batch loop (no CUDA-graph modes, no
    ``torch.compile``, no accelerator) and evaluate an optimiser closure once per step.
    """
    if len(nets) < 2:
        return False
    first = nets[0]
    shapes = [(name, p.shape) for name, p in first.module_.named_parameters()]
    for net in nets:
        if type(net) is not TrainingNet or net.compile or net.graph_epochs or net.graph_steps:
            return False
        module = net.module_
        if type(module) is not type(first.module_) or not getattr(
            module, "trains_under_vmap", False
        ):
            return False
        if [(name, p.shape) for name, p in module.named_parameters()] != shapes:
            return False
    return True


def train_lockstep(nets: Sequence[TrainingNet], data: Sequence[tuple[Any, Any]]) -> None:
    """Train each net on its ``(X, y)`` as ``net.partial_fit(X, y)`` would, side by side.

    Parameters
    ----------
    nets : sequence of TrainingNet
        Initialised nets that :func:`lockstep_supported` accepts.
    data : sequence of (X, y)
        Each net's training data, in the form its ``partial_fit`` takes.
    """
    fits: dict[int, Generator[_Request, torch.Tensor, None]] = {}
    pending: dict[int, _Request] = {}
    # the parameter and buffer objects persist through a fit (optimisers, projections and
    # best-weight restores work in place): looked up once
    tables = [
        (dict(net.module_.named_parameters()), dict(net.module_.named_buffers())) for net in nets
    ]
    objectives = [_BatchLoss(net) for net in nets]
    for j, (net, (X, y)) in enumerate(zip(nets, data, strict=True)):
        fit = _fit(net, X, y)
        request = next(fit, None)
        if request is not None:
            fits[j], pending[j] = fit, request
    while pending:
        groups: dict[tuple, list[int]] = {}
        for j, (kind, Xi, yi) in pending.items():
            shapes = tuple((k, tuple(v.shape)) for k, v in sorted(Xi.items()))
            groups.setdefault((kind, shapes, tuple(yi.shape)), []).append(j)
        for (kind, _, _), members in groups.items():
            losses = _losses(
                [objectives[j] for j in members],
                [tables[j] for j in members],
                [pending[j] for j in members],
                kind,
            )
            for j, loss in zip(members, losses, strict=True):
                try:
                    pending[j] = fits[j].send(loss)
                except StopIteration:
                    del pending[j], fits[j]


def _fit(net: TrainingNet, X, y) -> Generator[_Request, torch.Tensor, None]:
    """``net.partial_fit(X, y)`` with every batch's loss computed by the coordinator:
    the same split, iterators, events, optimiser steps and history records."""
    net.notify("on_train_begin", X=X, y=y)
    try:
        net.check_data(X, y)
        net.check_training_readiness()
        dataset_train, dataset_valid = net.get_split_datasets(X, y)
        on_epoch = {"dataset_train": dataset_train, "dataset_valid": dataset_valid}
        iterator_train = net.get_iterator(dataset_train, training=True)
        iterator_valid = None
        if dataset_valid is not None:
            iterator_valid = net.get_iterator(dataset_valid, training=False)
        for _ in range(net.max_epochs):
            net.notify("on_epoch_begin", **on_epoch)
            yield from _epoch(net, iterator_train, training=True)
            if iterator_valid is not None:
                yield from _epoch(net, iterator_valid, training=False)
            net.notify("on_epoch_end", **on_epoch)
    except KeyboardInterrupt:  # how skorch's early stopping ends a fit
        pass
    net.notify("on_train_end", X=X, y=y)


def _epoch(net: TrainingNet, iterator, training: bool) -> Generator[_Request, torch.Tensor, None]:
    """One pass over ``iterator`` as skorch's ``run_single_epoch`` makes it (training: with
    the gradient event and the optimiser step after each batch's backward pass)."""
    prefix = "train" if training else "valid"
    count = 0
    for batch in iterator:
        net.notify("on_batch_begin", batch=batch, training=training)
        net._set_training(training)
        if training:
            net._zero_grad_optimizer()
        Xi, yi = unpack_data(batch)
        loss = yield (prefix, Xi, yi)  # training: the gradients are in the parameters now
        if training:
            net.notify(
                "on_grad_computed",
                named_parameters=TeeGenerator(net.get_all_learnable_params()),
                batch=batch,
            )
            net._step_optimizer(None)
        net.history.record_batch(prefix + "_loss", loss.item())
        net.history.record_batch(prefix + "_batch_size", get_len(Xi))
        net.notify("on_batch_end", batch=batch, training=training, loss=loss, y_pred=None)
        count += 1
    net.history.record(prefix + "_batch_count", count)


class _BatchLoss(torch.nn.Module):
    """A net's training objective on one batch as a module's forward, so that
    :func:`torch.func.functional_call` swaps every parameter it reads, the loss's too."""

    def __init__(self, net: TrainingNet) -> None:
        super().__init__()
        self.inner = net.module_
        self.__dict__["net"] = net  # not a submodule

    net: TrainingNet

    def forward(self, X: dict, y: torch.Tensor) -> torch.Tensor:
        # the net's own inference and loss, through ``inner`` (the net's module)
        return self.net.get_loss(self.net.infer(X), y, X=X, training=self.inner.training)


def _losses(
    objectives: list[_BatchLoss],
    tables: list[tuple[dict, dict]],
    requests: list[_Request],
    kind: str,
) -> list[torch.Tensor]:
    """Each net's loss on its batch; for training batches also the backward pass, whose
    gradients land in each net's own parameters."""
    training = kind == "train"
    device = torch.device(objectives[0].net.device)
    batches = [
        (
            {k: torch.as_tensor(v, device=device) for k, v in Xi.items()},
            torch.as_tensor(yi, device=device),
        )
        for _, Xi, yi in requests
    ]
    if len(objectives) == 1:  # nothing to stack
        (X, y), objective = batches[0], objectives[0]
        with torch.set_grad_enabled(training):
            loss = objective(X, y)
        if training:
            loss.backward()
        return [loss.detach()]
    objective = objectives[0]
    with torch.set_grad_enabled(training):
        params = {
            "inner." + name: torch.stack([table[0][name] for table in tables])
            for name in tables[0][0]
        }
        buffers = {
            "inner." + name: torch.stack([table[1][name] for table in tables])
            for name in tables[0][1]
        }
        X = {k: torch.stack([b[0][k] for b in batches]) for k in batches[0][0]}
        y = torch.stack([b[1] for b in batches])

        def one(p, b, Xj, yj):
            return torch.func.functional_call(objective, (p, b), (Xj, yj))

        losses = torch.func.vmap(one)(params, buffers, X, y)
        if training:
            losses.sum().backward()
    return list(losses.detach().unbind(0))
