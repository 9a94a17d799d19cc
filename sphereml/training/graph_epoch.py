"""A whole training epoch as one CUDA graph, for small models that are launch-bound.

A small model's step on a GPU — forward, backward, Adam, renormalisation — is a few dozen
tiny kernels whose launch costs far more than their work, and skorch adds a host
synchronisation per batch (``loss.item()`` for the history). :class:`GraphEpoch` runs the
same step, batch by batch, over a permutation held in a device buffer: the first epoch
runs eagerly (it also warms up the optimiser's state), and is then captured once as a
CUDA graph; every later epoch writes its permutation into the buffer and replays the
graph. The per-batch losses land in a device tensor read once per epoch. The data are
on the device for the whole fit, and the batch order is drawn from the iterator's own
generator (the next epoch's while the GPU runs this one), so the batches are exactly
those of the eager path.

The step must be static for a graph: constant shapes (the last, smaller batch is its own
captured step), no host decisions, an optimiser that keeps its step count on the device
(``torch.optim.Adam(capturable=True)``), no per-batch callbacks other than the
renormalisation. :func:`graph_epoch_for` checks these and returns None otherwise; the
estimator then trains through skorch's ordinary loop.
"""

from __future__ import annotations

from typing import Any

import torch
from skorch.callbacks import Callback

from .batching import BatchIterator
from .callbacks import Renormalize

__all__ = ["GraphEpoch", "graph_epoch_for"]


def _overrides(callback: Callback, name: str) -> bool:
    return getattr(type(callback), name) is not getattr(Callback, name)


def graph_epoch_for(net, iterator) -> GraphEpoch | None:
    """The net's :class:`GraphEpoch` for this training iterator, or None where the epoch
    cannot be a graph (see the module docstring)."""
    mode = net.graph_epochs
    if not mode or not isinstance(iterator, BatchIterator):
        return None
    capture = mode == "cuda-graph"
    if capture and torch.device(net.device).type != "cuda":
        return None
    if iterator.shard is not None or iterator.lengths is not None or not iterator.shuffle:
        return None
    if any(not isinstance(v, torch.Tensor) for v in (*iterator.X.values(), iterator.y)):
        return None  # CSR inputs are densified batch by batch on the host
    for _, callback in net.callbacks_:
        batch_hooks = ("on_batch_begin", "on_batch_end", "on_grad_computed")
        if not _is_projection(callback) and any(_overrides(callback, hook) for hook in batch_hooks):
            return None
    groups = net.optimizer_.param_groups
    if capture and not all(group.get("capturable") for group in groups):
        return None
    key = (iterator.source, iterator.batch_size, net.module_, net.optimizer_)
    cached = net.__dict__.get("_graph_epoch")
    if cached is None or cached.key != key:
        cached = GraphEpoch(net, iterator, key, capture=capture)
        net.__dict__["_graph_epoch"] = cached  # skorch guards setattr
    return cached


class GraphEpoch:
    """One fit's training epochs over a fixed training set (see the module docstring).

    Parameters
    ----------
    net : :class:`~sphereml.training.net.TrainingNet`
    iterator : :class:`~sphereml.training.batching.BatchIterator`
        The training set's iterator (its device tensors are kept).
    key : tuple
        What the captured graph depends on (data, batch size, module, optimiser).
    capture : bool
        Capture a CUDA graph after the first epoch; False runs every epoch eagerly with
        the same code (the CPU test of this path).
    """

    def __init__(self, net, iterator, key: tuple, capture: bool):
        self.net = net
        self.key = key
        self.capture = capture
        self.X = dict(iterator.X)
        self.y = iterator.y
        self.n = iterator.n
        self.batch_size = iterator.batch_size
        device = self.y.device
        self.order = torch.zeros(self.n, dtype=torch.long, device=device)
        self.bounds = [
            (start, min(start + self.batch_size, self.n))
            for start in range(0, self.n, self.batch_size)
        ]
        self.losses = torch.zeros(len(self.bounds), device=device)
        self.graph: Any = None
        self.prefetched: tuple[Any, torch.Tensor] | None = None

    def _epoch_body(self) -> None:
        """Every batch's step; the losses go to ``self.losses`` (no host reads)."""
        net = self.net
        optimizer = net.optimizer_
        for i, (start, stop) in enumerate(self.bounds):
            take = self.order[start:stop]
            Xb = {k: v.index_select(0, take) for k, v in self.X.items()}
            yb = self.y.index_select(0, take)
            optimizer.zero_grad(set_to_none=False)
            loss = net.get_loss(net.infer(Xb), yb, X=Xb, training=True)
            loss.backward()
            optimizer.step()
            _project(net)
            self.losses[i].copy_(loss.detach())

    def _order(self, iterator) -> torch.Tensor:
        """The iterator's next permutation (drawn during the previous epoch, if any)."""
        prefetched, self.prefetched = self.prefetched, None
        if prefetched is not None and prefetched[0] is iterator:
            return prefetched[1]
        return iterator.draw_order()

    def _prefetch(self, iterator) -> None:
        # skorch keeps one training iterator per fit; drawing its next permutation of 10⁶
        # rows takes ~20 ms of a CPU core: done here, while the GPU replays the epoch.
        self.prefetched = (iterator, iterator.draw_order())

    def run(self, iterator) -> tuple[list[float], list[int]]:
        """Train one epoch in the iterator's order; the per-batch losses and sizes."""
        self.order.copy_(self._order(iterator).to(self.order.device))
        self.net._set_training(True)
        if not self.capture:
            self._epoch_body()
        elif self.graph is None:
            # The first epoch runs eagerly on a side stream (creating gradients and the
            # optimiser's state), then the same body is captured for the next epochs.
            stream = torch.cuda.Stream(device=self.order.device)
            stream.wait_stream(torch.cuda.current_stream(self.order.device))
            with torch.cuda.stream(stream):
                self._epoch_body()
            torch.cuda.current_stream(self.order.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._epoch_body()
            self.graph = graph
        else:
            self.graph.replay()
        self._prefetch(iterator)
        return self.losses.tolist(), [stop - start for start, stop in self.bounds]


def _is_projection(callback: Callback) -> bool:
    """The renormalisation callback: its batch hook is a ``project(net)`` that the graph
    runs inside the step."""
    return isinstance(callback, Renormalize)


def _project(net) -> None:
    """The renormalisation callback's projection, when the net has that callback."""
    for _, callback in net.callbacks_:
        if _is_projection(callback):
            callback.project(net)
