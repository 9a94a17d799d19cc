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

    def _graph_epoch_mode(self, device: torch.device, optimizer: type) -> str | None:
        """ "cuda-graph" where this fit's epochs are captured as CUDA graphs, else None."""
        if (
            self._graph_epochs
            and device.type == "cuda"
            and self.accelerator is None
            and optimizer is torch.optim.Adam
        ):
            return "cuda-graph"
        return None

    #: whether training steps may run as CUDA graphs, one per batch shape (_graph_step)
    _graph_steps = False

    def _graph_step_mode(self, device: torch.device, optimizer: type) -> str | None:
        """ "cuda-graph" where this fit's steps are captured per batch shape, else None."""
        if (
            self._graph_steps
            and device.type == "cuda"
            and self.accelerator is None
            and optimizer in (torch.optim.Adam, torch.optim.AdamW)
        ):
            return "cuda-graph"
        return None
