"""Training steps as CUDA graphs, one per batch shape, for variable-length batches.

A Transformer step on a GPU — forward, backward, Adam, renormalisation — is hundreds of
kernels; eagerly their launches (and, for nGPT, the many small normalisation kernels)
cost as much as the work. A CUDA graph replays a captured step without launch costs, but
needs static shapes, while text batches are cut to their longest text. :class:`GraphSteps`
therefore keys graphs by batch shape: the training iterator rounds each batch's length up
to a multiple of :data:`LENGTH_MULTIPLE` (padding is masked, so the model computes the
same function), which leaves a handful of shapes per fit. The first batch of a shape runs
eagerly (it creates the gradients and the optimiser's state and compiles, with
``compile=True``); the next one is captured (after a forward and backward without an
optimiser step, which tunes any code compiled since), and every later batch of that shape copies
its tensors into the graph's input buffers and replays it. All graphs share one memory
pool: they never run concurrently.

Skorch's loop is otherwise kept: callbacks run between steps on the host, the loss is
read once per step for the history. The learning rate lives in a device tensor that the
captured Adam step reads (``torch.optim.Adam(capturable=True, fused=True)`` accepts one);
before each replay it is set from the float that the schedule wrote into the optimiser.
The renormalisation of the sphere parameters runs inside the step, so the callback skips
those batches. :func:`graph_steps_for` returns None where a step cannot be a graph (a
callback acting between backward and the optimiser step, an optimiser that is not
capturable); skorch's own step then runs.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from .graph_epoch import _overrides, _project

__all__ = ["LENGTH_MULTIPLE", "GraphSteps", "graph_steps_for"]

#: Batch lengths are rounded up to a multiple of this (capped at the padded width), so a
#: fit with texts up to 256 tokens has at most 8 lengths (and graphs) per batch size.
LENGTH_MULTIPLE = 32


def graph_steps_for(net) -> GraphSteps | None:
    """The net's :class:`GraphSteps`, or None where its steps cannot be graphs."""
    mode = net.graph_steps
    if not mode:
        return None
    capture = mode == "cuda-graph"
    if capture and torch.device(net.device).type != "cuda":
        return None
    if any(_overrides(callback, "on_grad_computed") for _, callback in net.callbacks_):
        return None  # e.g. gradient clipping between backward and the step
    groups = net.optimizer_.param_groups
    if capture and not all(group.get("capturable") for group in groups):
        return None
    key = (net.module_, net.optimizer_)
    cached = net.__dict__.get("_graph_steps")
    if cached is None or cached.key != key:
        cached = GraphSteps(net, key, capture=capture)
        net.__dict__["_graph_steps"] = cached  # skorch guards setattr
    return cached


class _Captured:
    """One shape's graph: its input buffers and its outputs (views valid until the next
    replay)."""

    def __init__(self, graph: Any, X: dict, y: torch.Tensor, loss: torch.Tensor, y_pred: Any):
        self.graph = graph
        self.X = X
        self.y = y
        self.loss = loss
        self.y_pred = y_pred


class GraphSteps:
    """One fit's training steps (see the module docstring).

    Parameters
    ----------
    net : :class:`~sphereml.training.net.TrainingNet`
    key : tuple
        What the graphs depend on (module, optimiser).
    capture : bool
        Capture CUDA graphs; False runs every step eagerly through the same code (the CPU
        test of this path).
    """

    def __init__(self, net, key: tuple, capture: bool):
        self.net = net
        self.key = key
        self.capture = capture
        self.graphs: dict[tuple, _Captured] = {}
        self.seen: set[tuple] = set()
        self.pool: Any = None
        self.learning_rates: list[torch.Tensor] | None = None
        self.failed = False

    # ------------------------------------------------------------------ the step
    def _body(self, X: dict, y: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Forward, loss, backward, optimiser step, renormalisation."""
        net = self.net
        optimizer = net.optimizer_
        optimizer.zero_grad(set_to_none=False)
        y_pred = net.infer(X)
        loss = net.get_loss(y_pred, y, X=X, training=True)
        loss.backward()
        optimizer.step()
        _project(net)
        if isinstance(y_pred, tuple):  # (logits, penalty) of a training forward
            y_pred = y_pred[0]
        return loss.detach(), y_pred.detach()

    @staticmethod
    def _key(X: dict, y: torch.Tensor) -> tuple:
        return (*((k, tuple(v.shape), v.dtype) for k, v in sorted(X.items())), tuple(y.shape))

    def _capture(self, X: dict, y: torch.Tensor) -> _Captured:
        optimizer = self.net.optimizer_
        device = y.device
        if self.learning_rates is None:
            self.learning_rates = [
                torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
                for group in optimizer.param_groups
            ]
            self.pool = torch.cuda.graph_pool_handle()
        static_X = {k: v.clone() for k, v in X.items()}
        static_y = y.clone()
        floats = [group["lr"] for group in optimizer.param_groups]
        # This shape's eager step warmed up cuBLAS and the optimiser; with compile=True
        # the code that serves it may have changed since (automatic dynamic shapes compile
        # a dynamic graph at the second shape, whose kernels tune themselves on their first
        # call, which a capture cannot contain): a forward and backward without the
        # optimiser step, right before the capture, runs exactly what will be captured.
        stream = torch.cuda.Stream(device=device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            optimizer.zero_grad(set_to_none=False)
            net = self.net
            net.get_loss(net.infer(static_X), static_y, X=static_X, training=True).backward()
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        try:
            for group, tensor in zip(optimizer.param_groups, self.learning_rates, strict=True):
                group["lr"] = tensor
            with torch.cuda.graph(graph, pool=self.pool):
                loss, y_pred = self._body(static_X, static_y)
        finally:
            for group, value in zip(optimizer.param_groups, floats, strict=True):
                group["lr"] = value
        return _Captured(graph, static_X, static_y, loss, y_pred)

    def step(self, batch) -> dict[str, Any]:
        """One training step on ``batch`` ((X dict, y)): skorch's step dictionary."""
        X, y = batch
        net = self.net
        net._set_training(True)
        X = dict(X)
        if not self.capture or self.failed:
            loss, y_pred = self._body(X, y)
            return {"loss": loss, "y_pred": y_pred, "projected": True}
        key = self._key(X, y)
        captured = self.graphs.get(key)
        if captured is None:
            if key not in self.seen:
                # the first batch of a shape: eager, on a side stream as capture requires
                self.seen.add(key)
                stream = torch.cuda.Stream(device=y.device)
                stream.wait_stream(torch.cuda.current_stream(y.device))
                with torch.cuda.stream(stream):
                    loss, y_pred = self._body(X, y)
                torch.cuda.current_stream(y.device).wait_stream(stream)
                return {"loss": loss, "y_pred": y_pred, "projected": True}
            try:
                captured = self.graphs[key] = self._capture(X, y)
            except RuntimeError as error:  # a module or optimiser that cannot be captured
                self.failed = True
                warnings.warn(
                    f"training steps could not be captured as CUDA graphs ({error}); "
                    "training continues eagerly",
                    RuntimeWarning,
                    stacklevel=2,
                )
                torch.cuda.synchronize(y.device)
                loss, y_pred = self._body(X, y)
                return {"loss": loss, "y_pred": y_pred, "projected": True}
        for buffer, value in zip(captured.X.values(), (X[k] for k in captured.X), strict=True):
            buffer.copy_(value)
        captured.y.copy_(y)
        assert self.learning_rates is not None
        for group, tensor in zip(net.optimizer_.param_groups, self.learning_rates, strict=True):
            tensor.fill_(float(group["lr"]))
        captured.graph.replay()
        return {"loss": captured.loss, "y_pred": captured.y_pred, "projected": True}
