"""Data-parallel training through Hugging Face accelerate (skorch's ``AccelerateMixin``),
imported only when an ``accelerator`` is given."""

from __future__ import annotations

from typing import Any

from .net import TrainingNet

__all__ = ["accelerated_net_class"]


def accelerated_net_class() -> type:
    """``TrainingNet`` with skorch's ``AccelerateMixin`` (imported only when it is used).

    Three changes to the mixin: only the module and the optimiser are prepared (the
    criterion has no parameters, and DistributedDataParallel refuses such a module); the
    recorded training loss is the mean over processes (so early stopping on it stops
    every process at the same epoch); validation batches are not gathered (each process
    scores the whole validation split with the same parameters, so the validation losses
    agree without a gather).
    """
    from skorch.hf import AccelerateMixin

    class AcceleratedNet(AccelerateMixin, TrainingNet):
        def _initialize_accelerator(self):
            net: Any = self  # skorch's attributes are untyped
            if net._wrapped_with_accelerator:
                return self
            unused = getattr(net.module_, "has_unused_parameters", False)
            if unused and getattr(net.accelerator, "ddp_handler", None) is None:
                # DistributedDataParallel must be told about parameters that may get no
                # gradient (NDM's first metric without a curvature penalty), or it
                # waits for their gradients forever
                from accelerate.utils import DistributedDataParallelKwargs

                net.accelerator.ddp_handler = DistributedDataParallelKwargs(
                    find_unused_parameters=True
                )
            with net._current_init_context("module"):
                net.module_ = net.accelerator.prepare(net.module_)
            from accelerate.optimizer import AcceleratedOptimizer

            if not isinstance(net.optimizer_, AcceleratedOptimizer):  # once, not per fit
                with net._current_init_context("optimizer"):
                    net.optimizer_ = net.accelerator.prepare(net.optimizer_)
            net._wrapped_with_accelerator = True
            return self

        def train_step_single(self, batch, **fit_params):
            step = super().train_step_single(batch, **fit_params)
            step["loss"] = self.accelerator.reduce(step["loss"].detach(), reduction="mean")
            return step

        def evaluation_step(self, batch, training=False):
            return TrainingNet.evaluation_step(self, batch, training=training)

        def _batch_device(self):
            return self.accelerator.device  # the net's own device is None (mixin rule)

    return AcceleratedNet
