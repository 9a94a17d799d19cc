"""The loop every sphereml optimiser shares: closure, parameter groups, per-parameter hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class PerParameterOptimizer(torch.optim.Optimizer):
    """``step`` evaluates the closure, then calls :meth:`update` for every parameter with a
    gradient, under ``torch.no_grad``. Subclasses implement :meth:`update` only."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self.update(param, param.grad, group, self.state[param])
        return loss

    def update(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        group: dict[str, Any],
        state: dict[str, Any],
    ) -> None:
        """Move ``param`` in place along its gradient ``grad``; ``state`` is its optimiser
        state, ``group`` its parameter group (learning rate and other settings)."""
        raise NotImplementedError
