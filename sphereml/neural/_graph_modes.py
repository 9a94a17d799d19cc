"""When a fit's training runs as CUDA graphs (see :mod:`sphereml.training.graph_epoch` and
:mod:`sphereml.training.graph_step`)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["GraphModesMixin"]


class GraphModesMixin:
    """The CUDA-graph modes of a neural estimator's fit (the host has ``accelerator``)."""

    accelerator: Any

    #: whether training epochs may run as one CUDA graph (static models; see _graph_epoch)
    _graph_epochs = False
    #: whether training steps may run as CUDA graphs, one per batch shape (_graph_step)
    _graph_steps = False

    def _graph_epoch_mode(self, device: torch.device, optimizer: type) -> str | None:
        """ "cuda-graph" where this fit's epochs are captured as CUDA graphs, else None."""
        return self._cuda_graph_mode(self._graph_epochs, device, optimizer, (torch.optim.Adam,))

    def _graph_step_mode(self, device: torch.device, optimizer: type) -> str | None:
        """ "cuda-graph" where this fit's steps are captured per batch shape, else None."""
        optimizers = (torch.optim.Adam, torch.optim.AdamW)
        return self._cuda_graph_mode(self._graph_steps, device, optimizer, optimizers)

    def _cuda_graph_mode(
        self, allowed: bool, device: torch.device, optimizer: type, optimizers: tuple
    ) -> str | None:
        # capture needs CUDA, one process (no accelerator) and a capturable optimiser
        capturable = optimizer in optimizers
        if allowed and device.type == "cuda" and self.accelerator is None and capturable:
            return "cuda-graph"
        return None
