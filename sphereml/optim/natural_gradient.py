"""Natural gradient with the learned metric pulled back to parameter space (diagonal).

The NDM's metric g_ℓ measures distances between latent points; pulled back through the
layer maps z_ℓ(θ) it gives a metric on parameters, G(θ) = E Σ_ℓ J_ℓᵀ g_ℓ J_ℓ + δ I with
J_ℓ = ∂z_ℓ/∂θ. :class:`DiagonalNaturalGradient` keeps a running estimate of diag G, fed
by :meth:`update_metric` with squared gradients of a random probe (see
:meth:`sphereml.nn.ndm.NDMNet.pullback_probe`: one extra backward pass per step), and
steps ``θ ← θ − lr · m̂ / (Ĝ + δ)`` with heavy-ball momentum m̂.

Parameters that do not move the latent points (the metric networks themselves, the
prototypes and biases of the head) have Ĝ = 0; the pulled-back metric says nothing about
them, and they take Adam's step (m̂ / (√v̂ + 1e-8)) instead.
"""

from __future__ import annotations

from typing import Any

import torch

from ._base import PerParameterOptimizer


class DiagonalNaturalGradient(PerParameterOptimizer):
    """Diagonal natural gradient (pulled-back metric) with Adam for unmeasured parameters.

    Parameters
    ----------
    params : iterable of parameters or groups
    lr : float, default=0.01
    betas : (float, float), default=(0.9, 0.99)
        Momentum of the gradient and decay of the running metric / second moment.
    damping : float, default=0.1
        δ relative to the parameter tensor's mean metric: ``Ĝ + damping · mean(Ĝ)``
        (scale-free, so one value works across layers).
    """

    def __init__(self, params, lr: float = 0.01, betas=(0.9, 0.99), damping: float = 0.1):
        if lr <= 0 or damping <= 0:
            raise ValueError(f"lr and damping must be positive, got {lr}, {damping}")
        super().__init__(params, dict(lr=lr, betas=betas, damping=damping))

    @torch.no_grad()
    def update_metric(self, squared_grads: dict[torch.nn.Parameter, torch.Tensor]) -> None:
        """Fold one estimate of diag G (per parameter tensor) into the running average."""
        for group in self.param_groups:
            beta2 = group["betas"][1]
            for p in group["params"]:
                if p in squared_grads:
                    state = self.state[p]
                    metric = state.setdefault("metric", torch.zeros_like(p))
                    metric.mul_(beta2).add_(squared_grads[p], alpha=1 - beta2)
                    state["metric_steps"] = state.get("metric_steps", 0) + 1

    def update(
        self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict[str, Any]
    ) -> None:
        beta1, beta2 = group["betas"]
        state["step"] = state.get("step", 0) + 1
        t = state["step"]
        m = state.setdefault("momentum", torch.zeros_like(p))
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        m_hat = m / (1 - beta1**t)
        metric = state.get("metric")
        if metric is not None and float(metric.abs().sum()) > 0:
            g_hat = metric / (1 - beta2 ** state["metric_steps"])
            denominator = g_hat + group["damping"] * g_hat.mean()
        else:
            v = state.setdefault("second_moment", torch.zeros_like(p))
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denominator = (v / (1 - beta2**t)).sqrt_().add_(1e-8)
        p.addcdiv_(m_hat, denominator, value=-group["lr"])
