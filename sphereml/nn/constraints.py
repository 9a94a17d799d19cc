"""The unit-norm constraint, expressed once.

A parameter that must stay on the sphere is *tagged* with the dimension along which its
slices have unit norm (:func:`constrain_unit_norm`). Everything else reads the tag:

- :func:`renormalize_` projects every tagged parameter of a module back onto the sphere;
  the estimators call it after each optimiser step (the nGPT recipe: Euclidean Adam, then
  renormalise).
- :class:`RiemannianAdam` instead projects the gradient of tagged parameters onto the
  tangent space, takes the Adam step there and retracts by normalising.

Modules tag their parameters in ``__init__`` and call :func:`renormalize_` once so that
they start on the sphere.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

_TAG = "_unit_norm_dim"

# Float32 floor for norms: small enough not to bias unit vectors, large enough that a
# (numerically) zero vector maps to a finite vector instead of NaN.
NORM_EPS = 1e-12


def unit_norm(x: torch.Tensor, dim: int = -1, eps: float = NORM_EPS) -> torch.Tensor:
    """``x / max(‖x‖, eps)`` along ``dim``, with the norm taken in float32 or wider.

    Under bf16/fp16 autocast the sum of squares would lose the digits that unit norm
    needs, so the norm is accumulated in float32 and the result cast back.
    """
    norm_dtype = torch.promote_types(x.dtype, torch.float32)
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=norm_dtype)
    return (x / norm.clamp_min(eps)).to(x.dtype)


def constrain_unit_norm(param: nn.Parameter, dim: int) -> nn.Parameter:
    """Tag ``param`` so that its slices along ``dim`` are kept at unit norm.

    ``dim=1`` for an ``(out, in)`` weight whose rows live in the input space (input-side
    matrices, class prototypes, embeddings); ``dim=0`` for one whose columns live in the
    output space (output projections back into the residual stream).
    """
    setattr(param, _TAG, dim)
    return param


def unit_norm_dim(param: torch.Tensor) -> int | None:
    """The dimension ``param`` is constrained along, or None if it is unconstrained."""
    return getattr(param, _TAG, None)


@torch.no_grad()
def renormalize_(module: nn.Module) -> None:
    """Project every tagged parameter of ``module`` back onto the unit sphere, in place."""
    for param in module.parameters():
        dim = unit_norm_dim(param)
        if dim is not None:  # in place: 3 kernels per parameter (norm, clamp, divide)
            norm_dtype = torch.promote_types(param.dtype, torch.float32)
            norm = torch.linalg.vector_norm(param, dim=dim, keepdim=True, dtype=norm_dtype)
            param.div_(norm.clamp_min_(NORM_EPS))


@torch.no_grad()
def max_norm_deviation(module: nn.Module) -> float:
    """Largest ``|‖w‖ − 1|`` over the tagged slices of ``module`` (0.0 if none are tagged)."""
    worst = 0.0
    for param in module.parameters():
        dim = unit_norm_dim(param)
        if dim is not None:
            norms = torch.linalg.vector_norm(param.double(), dim=dim)
            worst = max(worst, float((norms - 1).abs().max().nan_to_num(float("inf"))))
    return worst


def _tangent(v: torch.Tensor, w: torch.Tensor, dim: int) -> torch.Tensor:
    """Component of ``v`` orthogonal to the unit slices of ``w`` along ``dim``."""
    return v - (v * w).sum(dim=dim, keepdim=True) * w


class RiemannianAdam(torch.optim.Optimizer):
    """Adam on a product of spheres (Bécigneul & Ganea 2019), Euclidean elsewhere.

    For a tagged parameter ``w``: the Euclidean gradient is projected onto the tangent
    space at ``w`` (``g − (gᵀw)w``), Adam's moments are updated with it, the step is
    taken, and the result is retracted onto the sphere by normalising. The first moment
    is then transported to the new point by projection. Untagged parameters get plain
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

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                dim = unit_norm_dim(w)
                grad = w.grad if dim is None else _tangent(w.grad, w, dim)
                state = self.state[w]
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
                if dim is not None:
                    w.copy_(unit_norm(w, dim=dim))
                    exp_avg.copy_(_tangent(exp_avg, w, dim))
        return loss
