"""Several nets trained side by side as one stacked network.

A deep ensemble's members are independent fits: each has its own initial weights,
validation split, batch order, early stopping and optimiser. Fitted one after another,
each pays the per-step cost of Python and torch dispatch — the forward and backward
passes, the optimiser update, the callbacks — which is most of a small network's step on
a CPU. :func:`train_lockstep` keeps every net's own split, batch iterators, history,
epoch callbacks and early stopping, and pays the per-step cost once for all of them:

- the nets' parameters are stacked along a new leading axis into one set of leaves,
  which one optimiser updates (Adam's update is elementwise, so each slice moves exactly
  as the net's own optimiser would move it); the leaves are views of one flat buffer,
  their gradients views of one flat gradient, so that the update is of one tensor;
- each step is one forward and backward pass over the nets' own batches, stacked like
  the parameters: a copy of the module holding the stacked leaves where the module maps
  a leading member axis itself (``broadcasts_over_members``), else the loss
  :func:`torch.func.vmap`-ed over the leaves; the sum of the nets' losses gives each
  slice its own gradient;
- the batches are cut from the nets' data stacked once, in each net's own order
  (:class:`_MemberBatches`), and sample weights that are all ones are left out;
- the per-batch callbacks the engine adds (the projection onto the sphere, gradient-norm
  clipping) act on the stacked leaves, slice by slice;
- at the end of each epoch every net gets its slice back into its module, then its own
  epoch callbacks run (scoring, timing, early stopping with its best-weight snapshot).

A net whose early stopping ends its fit leaves the stack; the others go on. Each fit
equals the net's ``partial_fit`` up to float32 round-off.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from skorch.callbacks import Callback, GradientNormClipping
from skorch.dataset import unpack_data

from ..riemannian.manifold import SphereParameter, UnitSphere
from .batching import BatchIterator
from .callbacks import Renormalize
from .net import TrainingNet, batch_mean

__all__ = ["lockstep_supported", "train_lockstep"]

# optimisers whose update is elementwise given the step count: one instance over the
# stacked leaves equals one per net
_ELEMENTWISE_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)
# per-batch callbacks whose work the stack does on the stacked leaves
_STACKED_BATCH_CALLBACKS = (Renormalize, GradientNormClipping)
_BATCH_EVENTS = ("on_batch_begin", "on_batch_end", "on_grad_computed")
# the most bytes of training data stacked once for all nets (each net holds its own split
# already); beyond it each net's iterator cuts its batch and the batches are stacked
STACKED_DATA_BYTES = 2**29


def lockstep_supported(nets: Sequence[TrainingNet]) -> bool:
    """Whether these initialised nets can be trained by :func:`train_lockstep`.

    They must hold modules of one class with parameters of equal names and shapes that
    declare ``trains_under_vmap`` (no random draws, no data-dependent control flow in a
    training step); train through the plain batch loop (no CUDA-graph modes, no
    ``torch.compile``, no accelerator) for the same number of epochs; have fresh
    optimisers of one elementwise kind (Adam, AdamW) with equal settings; and no
    per-batch callbacks other than the projection and gradient-norm clipping.
    """
    if len(nets) < 2:
        return False
    first = nets[0]
    shapes = [(name, p.shape) for name, p in first.module_.named_parameters()]
    settings = _optimizer_settings(first)
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
        if settings is None or _optimizer_settings(net) != settings:
            return False
        if net.max_epochs != first.max_epochs or not all(
            _batch_work_is_stackable(callback) for _, callback in net.callbacks_
        ):
            return False
    return True


def _optimizer_settings(net: TrainingNet) -> tuple | None:
    """The optimiser's class and settings, if one fresh elementwise optimiser steps every
    parameter of the module in a single group; else None."""
    optimizer = net.optimizer_
    if type(optimizer) not in _ELEMENTWISE_OPTIMIZERS or optimizer.state:
        return None
    if len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    if {id(p) for p in group["params"]} != {id(p) for p in net.module_.parameters()}:
        return None
    return type(optimizer), tuple(sorted((k, repr(v)) for k, v in group.items() if k != "params"))


def _batch_work_is_stackable(callback: Callback) -> bool:
    if isinstance(callback, GradientNormClipping):
        return float(callback.gradient_clip_norm_type) == 2.0
    if isinstance(callback, _STACKED_BATCH_CALLBACKS):
        return True
    return all(
        getattr(type(callback), event) is getattr(Callback, event) for event in _BATCH_EVENTS
    )


def train_lockstep(nets: Sequence[TrainingNet], data: Sequence[tuple[Any, Any]]) -> None:
    """Train each net on its ``(X, y)`` as ``net.partial_fit(X, y)`` would, side by side.

    Parameters
    ----------
    nets : sequence of TrainingNet
        Initialised nets that :func:`lockstep_supported` accepts.
    data : sequence of (X, y)
        Each net's training data, in the form its ``partial_fit`` takes.
    """
    for net, (X, y) in zip(nets, data, strict=True):
        net.check_data(X, y)
        net.check_training_readiness()
    splits = [net.get_split_datasets(X, y) for net, (X, y) in zip(nets, data, strict=True)]
    sizes = {(len(train), None if valid is None else len(valid)) for train, valid in splits}
    if len(sizes) > 1:  # splits of unequal sizes give batches that do not stack
        for net, (X, y) in zip(nets, data, strict=True):
            net.partial_fit(X, y)
        return
    fits = [_Fit(net, X, y, *split) for net, (X, y), split in zip(nets, data, splits, strict=True)]
    # all-equal sample weights (none given) leave the mean over the batch as it is: the
    # stack skips them
    skip = {"sample_weight"} if all(_uniform_weights(X) for X, _ in data) else set()
    stack = _Stack(nets)
    train_batches = _MemberBatches([fit.iterator_train for fit in fits], skip, stack.device)
    valid_batches = None
    if fits[0].iterator_valid is not None:
        valid_batches = _MemberBatches([fit.iterator_valid for fit in fits], skip, stack.device)
    active = list(range(len(nets)))
    for _ in range(nets[0].max_epochs):
        for j in active:
            fits[j].notify_epoch("on_epoch_begin")
        _run_epoch([fits[j] for j in active], train_batches, stack, training=True)
        if valid_batches is not None:
            _run_epoch([fits[j] for j in active], valid_batches, stack, training=False)
        stack.write_back(active)
        stopped = [j for j in active if not fits[j].end_epoch()]
        if stopped:
            positions = [p for p, j in enumerate(active) if j not in stopped]
            active = [active[p] for p in positions]
            if not active:
                break
            stack.keep(active)
            for batches in (train_batches, valid_batches):
                if batches is not None:
                    batches.keep(positions)
    for j in active:
        fits[j].end()


def _uniform_weights(X) -> bool:
    """Whether the inputs' ``sample_weight`` entry, if any, is all ones."""
    weight = X.get("sample_weight") if isinstance(X, dict) else None
    return weight is None or bool(np.all(np.asarray(weight) == 1))


class _Fit:
    """One net's fit: its datasets, iterators and events, as ``partial_fit`` runs them."""

    def __init__(self, net: TrainingNet, X, y, dataset_train, dataset_valid) -> None:
        self.net, self.X, self.y = net, X, y
        self.on_epoch = {"dataset_train": dataset_train, "dataset_valid": dataset_valid}
        net.notify("on_train_begin", X=X, y=y)
        self.iterator_train = net.get_iterator(dataset_train, training=True)
        self.iterator_valid = None
        if dataset_valid is not None:
            self.iterator_valid = net.get_iterator(dataset_valid, training=False)

    def notify_epoch(self, event: str) -> None:
        self.net.notify(event, **self.on_epoch)

    def end_epoch(self) -> bool:
        """Run the epoch-end callbacks; False (and the fit ended) when they stop it."""
        try:
            self.notify_epoch("on_epoch_end")
        except KeyboardInterrupt:  # how skorch's early stopping ends a fit
            self.end()
            return False
        return True

    def end(self) -> None:
        self.net.notify("on_train_end", X=self.X, y=self.y)


def _run_epoch(fits: list[_Fit], batches: _MemberBatches, stack: _Stack, training: bool) -> None:
    """One pass over the fits' batches, a step of all fits at once per batch."""
    prefix = "train" if training else "valid"
    count = 0
    for X, y in batches:
        losses = stack.step(X, y) if training else stack.evaluate(X, y)
        size = y.shape[1]
        for fit, loss in zip(fits, losses.tolist(), strict=True):
            history = fit.net.history
            history.new_batch()  # what the net's own on_batch_begin does
            history.record_batch(prefix + "_loss", loss)
            history.record_batch(prefix + "_batch_size", size)
        count += 1
    for fit in fits:
        fit.net.history.record(prefix + "_batch_count", count)


class _MemberBatches:
    """Each epoch's batches of the active fits, stacked along a leading member axis.

    Where every fit's iterator is a :class:`~sphereml.training.batching.BatchIterator`
    over dense tensors (no dynamic padding, no shards), the fits' data are stacked once
    and a batch is one indexing operation per input, in each fit's own order, drawn from
    its iterator's generator as that iterator draws it; otherwise each iterator yields its
    fit's batch and the batches are stacked. Inputs named in ``skip`` are left out.
    """

    def __init__(self, iterators: list, skip: set[str], device: torch.device) -> None:
        self.iterators = list(iterators)
        self.skip, self.device = skip, device
        self.stacked = _stackable(self.iterators)
        if self.stacked:
            first = self.iterators[0]
            self.X = {
                k: torch.stack([it.X[k] for it in self.iterators]) for k in first.X if k not in skip
            }
            self.y = torch.stack([it.y for it in self.iterators])
            self.members = torch.arange(len(self.iterators), device=self.y.device).unsqueeze(1)

    def keep(self, positions: list[int]) -> None:
        """Keep the fits at ``positions`` (in the current order) only."""
        self.iterators = [self.iterators[p] for p in positions]
        if self.stacked:
            rows = torch.tensor(positions, device=self.y.device)
            self.X = {k: v[rows] for k, v in self.X.items()}
            self.y = self.y[rows]
            self.members = self.members[: len(positions)]

    def __iter__(self):
        if not self.stacked:
            for batches in zip(*self.iterators, strict=True):
                pairs = [unpack_data(batch) for batch in batches]
                X = {
                    k: torch.stack([torch.as_tensor(Xi[k], device=self.device) for Xi, _ in pairs])
                    for k in pairs[0][0]
                    if k not in self.skip
                }
                yield X, torch.stack([torch.as_tensor(yi, device=self.device) for _, yi in pairs])
            return
        first = self.iterators[0]
        size = first.batch_size
        if not first.shuffle:
            for start in range(0, first.n, size):
                rows = slice(start, start + size)
                yield {k: v[:, rows] for k, v in self.X.items()}, self.y[:, rows]
            return
        orders = torch.stack([it.draw_order() for it in self.iterators]).to(self.y.device)
        for start in range(0, first.n, size):
            take = orders[:, start : start + size]
            yield {k: v[self.members, take] for k, v in self.X.items()}, self.y[self.members, take]


def _stackable(iterators: list) -> bool:
    """Whether :class:`_MemberBatches` can cut the batches from stacked data: equal
    plain batch iterators over dense tensors, stacked within ``STACKED_DATA_BYTES``."""
    if not all(type(it) is BatchIterator for it in iterators):
        return False
    first = iterators[0]
    layout = {k: (v.shape, v.dtype) for k, v in first.X.items() if torch.is_tensor(v)}
    if len(layout) != len(first.X) or not torch.is_tensor(first.y):
        return False
    nbytes = 0
    for it in iterators:
        if (it.shard, it.lengths, it.shuffle, it.batch_size, it.n) != (
            None, None, first.shuffle, first.batch_size, first.n
        ) or set(it.X) != set(first.X):  # fmt: skip
            return False
        if any(not torch.is_tensor(v) or (v.shape, v.dtype) != layout[k] for k, v in it.X.items()):
            return False
        if not torch.is_tensor(it.y) or it.y.shape != first.y.shape:
            return False
        nbytes += sum(v.nbytes for v in it.X.values()) + it.y.nbytes
    return nbytes <= STACKED_DATA_BYTES


class _Stack:
    """The nets' parameters stacked along a leading axis, with one optimiser over them."""

    def __init__(self, nets: Sequence[TrainingNet]) -> None:
        first = nets[0]
        self.nets = list(nets)
        self.device = torch.device(first.device)
        self.objective = _BatchLoss(first)
        named = [dict(net.module_.named_parameters()) for net in nets]
        self.names = list(named[0])
        buffers = [dict(net.module_.named_buffers()) for net in nets]
        # one flat buffer unless weight decay would move the parameters that get no
        # gradient (a zero gradient is not a missing one), or dtypes differ
        decay = first.optimizer_.param_groups[0].get("weight_decay", 0.0)
        dtypes = {p.dtype for p in named[0].values()}
        self.steps_flat = decay == 0 and len(dtypes) == 1
        with torch.no_grad():
            self._set_leaves(
                [torch.stack([params[name] for params in named]) for name in self.names]
            )
            self.buffers = {
                "inner." + name: torch.stack([own[name] for own in buffers]) for name in buffers[0]
            }
        self.members = [dict(zip(self.names, params.values(), strict=True)) for params in named]
        # a module that maps a leading member axis itself: one copy of it holds the
        # stacked leaves, and a step is its plain forward (no vmap, no parameter swaps)
        self.stacked: torch.nn.Module | None = None
        if getattr(first.module_, "broadcasts_over_members", False):
            self.stacked = copy.deepcopy(first.module_)
            self._install_leaves()
        self.optimizer = _optimizer_like(first.optimizer_, self._stepped())
        root = self.stacked if self.stacked is not None else first.module_
        self.modules = list(root.modules())
        self.plain_modes = all(type(m).train is torch.nn.Module.train for m in self.modules)
        # the sphere constraint of a net's parameter, one axis further in the stack
        self.spheres = {
            i: UnitSphere(p.manifold.dim + (p.manifold.dim >= 0))
            for i, p in enumerate(named[0].values())
            if isinstance(p, SphereParameter)
        }
        clip = [cb for _, cb in first.callbacks_ if isinstance(cb, GradientNormClipping)]
        self.max_grad_norm = clip[0].gradient_clip_value if clip else None
        self.active = list(range(len(nets)))

    def _set_leaves(self, stacked: list[torch.Tensor]) -> None:
        """Hold the stacked tensors as leaves; where the optimiser steps one flat buffer,
        as views of it, with gradients that are views of another: one update of one
        tensor costs a fraction of an update of many small ones on a CPU."""
        if not self.steps_flat:
            self.leaves = [torch.nn.Parameter(t) for t in stacked]
            return
        self.flat = torch.cat([t.reshape(-1) for t in stacked])
        self.flat_grad = self.flat.grad = torch.zeros_like(self.flat)
        self.leaves, offset = [], 0
        for t in stacked:
            end = offset + t.numel()
            leaf = torch.nn.Parameter(self.flat[offset:end].view(t.shape))
            # backward adds into a gradient that exists, in place: into the flat one
            leaf.grad = self.flat_grad[offset:end].view(t.shape)
            self.leaves.append(leaf)
            offset = end

    def _like_leaves(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """``flat`` (laid out as the flat buffer) cut into views shaped as the leaves."""
        parts = flat.split([leaf.numel() for leaf in self.leaves])
        return [part.view(leaf.shape) for part, leaf in zip(parts, self.leaves, strict=True)]

    def _stepped(self) -> list[torch.Tensor]:
        """What the optimiser steps: the flat buffer or the leaves."""
        return [self.flat] if self.steps_flat else list(self.leaves)

    def _install_leaves(self) -> None:
        """Make the stacked leaves the parameters of the stacked module."""
        assert self.stacked is not None
        for name, leaf in zip(self.names, self.leaves, strict=True):
            owner, _, attribute = name.rpartition(".")
            setattr(self.stacked.get_submodule(owner), attribute, leaf)

    def _loss(self, X: dict, y: torch.Tensor, training: bool) -> torch.Tensor:
        if self.stacked is not None:
            return self._stacked_loss(X, y, training)
        params = {"inner." + name: leaf for name, leaf in zip(self.names, self.leaves, strict=True)}
        objective = self.objective
        self._set_mode(training)

        def one(p, b, Xj, yj):
            return torch.func.functional_call(objective, (p, b), (Xj, yj))

        return torch.func.vmap(one)(params, self.buffers, X, y)

    def _stacked_loss(self, X: dict, y: torch.Tensor, training: bool) -> torch.Tensor:
        """The nets' losses from one pass of the stacked module: the net's loss (per-sample
        loss, weighted mean over the batch) with the batch axis behind the member axis."""
        module = self.stacked
        assert module is not None
        self._set_mode(training)
        inputs = dict(X)
        weight = inputs.pop("sample_weight", None)
        logits = module(**inputs)
        if isinstance(logits, tuple):  # (logits, penalty): zero where the module stacks
            logits, _ = logits
        losses = self.nets[0].sample_losses(module, logits.flatten(0, 1), y.flatten())
        return batch_mean(losses.view(y.shape), weight)

    def _set_mode(self, training: bool) -> None:
        """The module's ``train(training)``, as one pass over its submodules where none
        overrides ``train``: the stack switches twice an epoch, and the recursive call is
        a noticeable share of a small network's epoch."""
        root = self.stacked if self.stacked is not None else self.objective.inner
        if root.training == training:
            return
        if not self.plain_modes:
            root.train(training)
            return
        for module in self.modules:
            module.training = training

    def step(self, X: dict, y: torch.Tensor) -> torch.Tensor:
        """One training step of every net on its batch (inputs and targets stacked along
        a leading net axis); the nets' losses, (n_nets,)."""
        if self.steps_flat:
            self.flat_grad.zero_()
        else:
            self.optimizer.zero_grad()
        losses = self._loss(X, y, training=True)
        losses.sum().backward()
        if self.max_grad_norm is not None:
            self._clip_grad_norms(self.max_grad_norm)
        self.optimizer.step()
        if self.spheres:  # the optimiser is elementwise: it does not retract
            with torch.no_grad():
                for i, sphere in self.spheres.items():
                    sphere.projx_(self.leaves[i])
        return losses.detach()

    @torch.inference_mode()
    def evaluate(self, X: dict, y: torch.Tensor) -> torch.Tensor:
        """Every net's validation loss on its batch (stacked as in :meth:`step`), (n_nets,)."""
        return self._loss(X, y, training=False)

    @torch.no_grad()
    def _clip_grad_norms(self, max_norm: float) -> None:
        """``clip_grad_norm_`` of each net's gradients, slice by slice."""
        grads = [leaf.grad for leaf in self.leaves if leaf.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], 1)
        total = torch.linalg.vector_norm(norms, dim=1)
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.ndim - 1))))

    @torch.no_grad()
    def write_back(self, nets: list[int]) -> None:
        """Copy the stacked slices of ``nets`` (indices into the nets given) into their
        modules' parameters."""
        for j in nets:
            position = self.active.index(j)
            targets = list(self.members[j].values())
            torch._foreach_copy_(targets, [leaf[position] for leaf in self.leaves])

    def keep(self, nets: list[int]) -> None:
        """Drop every slice but those of ``nets`` (their optimiser moments kept)."""
        rows = torch.tensor(
            [self.active.index(j) for j in nets], dtype=torch.long, device=self.device
        )
        state = self.optimizer.state
        if self.steps_flat:  # the flat moments, cut into the leaves' shapes
            moments: list[dict[str, Any]] = [{} for _ in self.leaves]
            for k, v in state.get(self.flat, {}).items():
                parts = self._like_leaves(v) if v.ndim > 0 else [v] * len(moments)
                for own, part in zip(moments, parts, strict=True):
                    own[k] = part
        else:
            moments = [state.get(leaf, {}) for leaf in self.leaves]
        moments = [
            {k: v[rows] if torch.is_tensor(v) and v.ndim > 0 else v for k, v in own.items()}
            for own in moments
        ]
        with torch.no_grad():
            self._set_leaves([leaf.detach()[rows] for leaf in self.leaves])
        optimizer = _optimizer_like(self.optimizer, self._stepped())
        if self.steps_flat and moments[0]:
            optimizer.state[self.flat] = {
                k: torch.cat([own[k].reshape(-1) for own in moments]) if v.ndim > 0 else v
                for k, v in moments[0].items()
            }
        elif not self.steps_flat:
            for leaf, own in zip(self.leaves, moments, strict=True):
                if own:
                    optimizer.state[leaf] = own
        self.optimizer = optimizer
        self.buffers = {k: v[rows] for k, v in self.buffers.items()}
        self.active = list(nets)
        if self.stacked is not None:
            self._install_leaves()


def _optimizer_like(optimizer: torch.optim.Optimizer, params: list) -> torch.optim.Optimizer:
    """A fresh optimiser of ``optimizer``'s class and (single group's) settings."""
    settings = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
    # a group also holds settings its constructor does not take (AdamW's
    # ``decoupled_weight_decay``): pass what it takes, then copy them all
    accepted = inspect.signature(type(optimizer)).parameters
    fresh = type(optimizer)(params, **{k: v for k, v in settings.items() if k in accepted})
    fresh.param_groups[0].update(settings)
    return fresh


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
