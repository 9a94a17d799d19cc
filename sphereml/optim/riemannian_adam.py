"""Adam on products of spheres: tangent-space steps and retraction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..riemannian.manifold import SphereParameter
from ._base import PerParameterOptimizer


class RiemannianAdam(PerParameterOptimizer):
    """Adam on a product of spheres (Bécigneul & Ganea 2019), Euclidean elsewhere.

    For a :class:`~sphereml.riemannian.SphereParameter` ``w``: the Euclidean gradient is
    projected onto the tangent space at ``w`` (``g − (gᵀw)w``), Adam's moments are updated
    with it, the step is taken, and the result is retracted onto the sphere by
    normalising. The first moment
    is then transported to the new point by projection. Other parameters get plain
    Adam. There is no weight decay: on the sphere it has no meaning.
    """

    #: The estimators' renormalising callback skips optimisers that retract themselves.
    retracts = True

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    def update(
        self, w: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict[str, Any]
    ) -> None:
        beta1, beta2 = group["betas"]
        manifold = w.manifold if isinstance(w, SphereParameter) else None
        if manifold is not None:
            grad = manifold.proju(w, grad)
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(w)
            state["exp_avg_sq"] = torch.zeros_like(w)
        state["step"] += 1
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias1 = 1 - beta1 ** state["step"]
        bias2 = 1 - beta2 ** state["step"]
        denom = (exp_avg_sq / bias2).sqrt_().add_(group["eps"])
        w.addcdiv_(exp_avg, denom, value=-group["lr"] / bias1)
        if manifold is not None:
            manifold.projx_(w)
            exp_avg.copy_(manifold.proju(w, exp_avg))
