"""The skorch net every neural estimator trains: sample weights, a module-defined loss and
penalty, lazy ``torch.compile``, and the CUDA-graph epoch and step paths."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from skorch import NeuralNet
from skorch.callbacks import PassthroughScoring
from skorch.utils import to_tensor

from .callbacks import EpochMeanScoring
from .graph_epoch import graph_epoch_for
from .graph_step import graph_steps_for
from .history import TrainingHistory

__all__ = ["SAME_AS_MODULE", "TrainingNet", "seeded", "unwrap_parallel"]


SAME_AS_MODULE = "<the fitted module_>"


class TrainingNet(NeuralNet):
    """skorch net with sample weights, a module-defined loss and a module penalty.

    Inputs are dicts; the entry ``sample_weight`` (normalised to mean 1 over the training
    set) weights the per-sample loss and is not passed to the module. A module whose
    training-mode ``forward`` returns ``(logits, penalty)`` has the penalty added to the
    training loss.

    With ``compile=True`` the training and validation forward passes go through
    ``torch.compile(module_)``, built lazily and never pickled; ``module_`` itself stays
    the plain module, so its parameters, methods and pickles are unchanged.
    """

    def __init__(
        self,
        *args: Any,
        graph_epochs: str | None = None,
        graph_steps: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        #: "cuda-graph" to run each training epoch as one captured graph (graph_epoch)
        self.graph_epochs = graph_epochs
        #: "cuda-graph" (or "eager" in tests) to run steps through graph_step
        self.graph_steps = graph_steps

    @property
    def _default_callbacks(self):
        # skorch's defaults, the epoch's mean losses read from the history row directly
        return [
            (name, EpochMeanScoring(cb.name, cb.lower_is_better, cb.on_train))
            if isinstance(cb, PassthroughScoring) and type(cb) is PassthroughScoring
            else (name, cb)
            for name, cb in super()._default_callbacks
        ]

    def initialize_history(self):
        """An empty :class:`~sphereml.training.history.TrainingHistory` (the current one
        cleared, as skorch clears its own)."""
        history = getattr(self, "history_", None)
        if isinstance(history, TrainingHistory):
            history.clear()
        else:
            self.history_ = TrainingHistory()
        return self

    def _set_training(self, training: bool = True) -> None:
        # skorch sets the mode of every submodule before every batch, a walk that costs a
        # small network's step noticeable time; the modules switch together (train/eval
        # on the whole module), so one already in that mode is left as it is
        module = self.__dict__.get("module_")
        if isinstance(module, torch.nn.Module) and module.training == training:
            return
        super()._set_training(training)

    def torch_compile(self, module, name):
        return module  # compiled lazily in ``infer`` instead (see the class docstring)

    def infer(self, x, **fit_params):
        x = dict(to_tensor(x, device=self.device))
        x.pop("sample_weight", None)
        module = self.module_
        if self.compile:
            compiled = self.__dict__.get("_compiled_module")
            if compiled is None or compiled._orig_mod is not module:
                compiled = torch.compile(module, **self.get_params_for("compile"))
                self.__dict__["_compiled_module"] = compiled  # skorch guards setattr
            module = compiled
        return module(**x, **fit_params)

    def train_step(self, batch, **fit_params):
        steps = None if fit_params else graph_steps_for(self)
        if steps is None:
            return super().train_step(batch, **fit_params)
        return steps.step(batch)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        graph_epoch = None
        if training and iterator is not None and not fit_params:
            graph_epoch = graph_epoch_for(self, iterator)
        if graph_epoch is None:
            return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        losses, sizes = graph_epoch.run(iterator)  # one host read per epoch
        for loss, size in zip(losses, sizes, strict=True):
            self.history.new_batch()  # what the net's own on_batch_begin does
            self.history.record_batch(prefix + "_loss", loss)
            self.history.record_batch(prefix + "_batch_size", size)
        self.history.record(prefix + "_batch_count", len(sizes))

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_compiled_module", None)
        state.pop("_compiled_renormalize", None)
        state.pop("_graph_epoch", None)
        state.pop("_graph_steps", None)
        # the ``module`` argument is the fitted ``module_`` itself; skorch pickles only
        # ``module_`` through its device-remapping path, so a second, plain copy would
        # double the pickle and fail to load a CUDA-trained net where there is no CUDA
        if state.get("module") is self.__dict__.get("module_"):
            state["module"] = SAME_AS_MODULE
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if isinstance(self.__dict__.get("module"), str) and self.module == SAME_AS_MODULE:
            self.__dict__["module"] = self.module_

    def get_iterator(self, dataset, training=False):
        # batches go to the net's current device: skorch remaps ``device`` to the CPU when
        # a CUDA-trained net is unpickled where there is no CUDA, so inference still works
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs = {"batch_size": self.batch_size, **self.get_params_for(prefix)}
        if training and kwargs.get("seed") is not None:
            # a new batch order every epoch (the history has one row per epoch begun),
            # the same in every process of a data-parallel fit
            kwargs["seed"] = int(kwargs["seed"]) + len(self.history)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        return getattr(self, prefix)(dataset, device=self._batch_device(), **kwargs)

    def _batch_device(self):
        return self.device

    def get_loss(self, y_pred, y_true, X=None, training=False):
        penalty = None
        if isinstance(y_pred, tuple):  # a module's training forward: (logits, penalty)
            y_pred, penalty = y_pred
        y_true = to_tensor(y_true, device=self.device)
        losses = self.sample_losses(unwrap_parallel(self.module_), y_pred, y_true)
        weight = X.get("sample_weight") if isinstance(X, dict) else None
        loss = batch_mean(losses, weight)
        return loss if penalty is None else loss + penalty

    def sample_losses(
        self, module: torch.nn.Module, y_pred: torch.Tensor, y_true: torch.Tensor
    ) -> torch.Tensor:
        """Each sample's loss: the module's ``per_sample_loss`` where it has one, else the
        criterion (built with ``reduction="none"``)."""
        per_sample_loss = getattr(module, "per_sample_loss", None)
        if per_sample_loss is None:
            return self.criterion_(y_pred, y_true)
        return per_sample_loss(y_pred, y_true)


def batch_mean(losses: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """The (weighted) mean of per-sample losses over the last axis, the batch's."""
    return losses.mean(-1) if weight is None else (losses * weight).mean(-1)


def unwrap_parallel(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (itself otherwise)."""
    if isinstance(module, torch.nn.parallel.DistributedDataParallel):
        return module.module
    return module


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Seed torch inside ``fork_rng`` so the caller's random state is restored after."""
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(cuda[0]):
                torch.cuda.manual_seed(seed)
        yield
