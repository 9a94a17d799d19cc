"""The unit-sphere constraint of model weights, declared once per parameter.

A weight whose slices must stay on the unit sphere is a :class:`SphereParameter`: an
``nn.Parameter`` that carries its :class:`UnitSphere` manifold (the dimension along which
its slices have unit norm). The manifold owns the geometry — projection onto the sphere,
projection onto the tangent space, retraction — through the one implementation in
:mod:`sphereml.geometry`; everything else reads it from the parameter:

- :func:`renormalize_` projects every sphere parameter of a module back onto the sphere
  (the nGPT recipe: Euclidean Adam, then renormalise after every step);
- :class:`sphereml.optim.RiemannianAdam` projects the gradient onto the tangent space,
  steps there and retracts.

Because the manifold is part of the parameter's type, ``copy.deepcopy``, ``pickle`` and
``load_state_dict`` into a freshly built module all keep the constraint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._sphere._ops import NORM_EPS, tangent_component, unit_norm

__all__ = [
    "SphereParameter",
    "UnitSphere",
    "constrain_unit_norm",
    "max_norm_deviation",
    "renormalize_",
    "unit_norm_dim",
]


@dataclass(frozen=True)
class UnitSphere:
    """Product of unit spheres: the slices of a tensor along ``dim`` have unit norm.

    ``dim=1`` for an ``(out, in)`` weight whose rows live in the input space (input-side
    matrices, class prototypes, embeddings); ``dim=0`` for one whose columns live in the
    output space (output projections back into a residual stream).
    """

    dim: int

    def projx(self, w: torch.Tensor) -> torch.Tensor:
        """The nearest point on the manifold: each slice divided by its norm."""
        return unit_norm(w, axis=self.dim)

    def proju(self, w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The component of ``v`` tangent to the manifold at ``w`` (w on the manifold)."""
        return tangent_component(w, v, axis=self.dim)

    def retr(self, w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Retraction: step along ``v`` and normalise."""
        return self.projx(w + v)

    @torch.no_grad()
    def projx_(self, w: torch.Tensor) -> torch.Tensor:
        """:meth:`projx` in place (3 kernels: norm, clamp, divide); returns ``w``."""
        norm_dtype = torch.promote_types(w.dtype, torch.float32)
        norm = torch.linalg.vector_norm(w, dim=self.dim, keepdim=True, dtype=norm_dtype)
        return w.div_(norm.clamp_min_(NORM_EPS))


def _rebuild_sphere_parameter(data: torch.Tensor, requires_grad: bool, dim: int) -> SphereParameter:
    return SphereParameter(data, requires_grad, dim=dim)


class SphereParameter(nn.Parameter):
    """An ``nn.Parameter`` constrained to a product of unit spheres (see :class:`UnitSphere`).

    Parameters
    ----------
    data : torch.Tensor
    requires_grad : bool, default=True
    dim : int, default=-1
        The dimension along which the slices have unit norm.

    Examples
    --------
    >>> import copy, torch
    >>> w = SphereParameter(torch.randn(3, 4), dim=1)
    >>> copy.deepcopy(w).manifold
    UnitSphere(dim=1)
    """

    manifold: UnitSphere

    def __new__(
        cls, data: torch.Tensor | None = None, requires_grad: bool = True, dim: int = -1
    ) -> SphereParameter:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"dim must be an integer, got {dim!r}")
        if data is not None and not -max(data.ndim, 1) <= dim < max(data.ndim, 1):
            raise ValueError(
                f"dim={dim} is out of range for a tensor of shape {tuple(data.shape)} "
                f"(valid: {-data.ndim} to {data.ndim - 1})"
            )
        param = super().__new__(cls, data, requires_grad)
        param.manifold = UnitSphere(int(dim))
        return param

    def __deepcopy__(self, memo: dict[int, Any]) -> SphereParameter:
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(
            self.data.clone(memory_format=torch.preserve_format),
            self.requires_grad,
            dim=self.manifold.dim,
        )
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, proto: Any) -> Any:
        # torch's own reduction rebuilds a plain Parameter; keep the type and its manifold
        return (_rebuild_sphere_parameter, (self.data, self.requires_grad, self.manifold.dim))


def constrain_unit_norm(module: nn.Module, name: str, dim: int) -> SphereParameter:
    """Declare ``module.<name>`` a :class:`SphereParameter` along ``dim`` and project it.

    The parameter is replaced by a sphere parameter holding the same storage, so
    optimisers built afterwards see it; its slices are normalised at once (a slice of
    zeros, which has no direction, raises a ValueError).

    Returns
    -------
    The new :class:`SphereParameter`.
    """
    old = getattr(module, name)
    param = SphereParameter(old.data, old.requires_grad, dim=dim)
    if not param.is_meta:  # a meta tensor (a shapes-only build) has no values
        norms = torch.linalg.vector_norm(param.detach(), dim=dim)
        if bool((norms == 0).any()):
            raise ValueError(
                f"{name} has {int((norms == 0).sum())} slice(s) of zeros along dim={dim}, "
                "which have no direction to normalise; initialise it randomly first"
            )
        param.manifold.projx_(param)
    setattr(module, name, param)
    return param


def unit_norm_dim(param: torch.Tensor) -> int | None:
    """The dimension ``param`` is constrained along, or None if it is unconstrained."""
    return param.manifold.dim if isinstance(param, SphereParameter) else None


@torch.no_grad()
def renormalize_(module: nn.Module) -> None:
    """Project every :class:`SphereParameter` of ``module`` back onto its sphere, in place."""
    for param in module.parameters():
        if isinstance(param, SphereParameter):
            param.manifold.projx_(param)


@torch.no_grad()
def max_norm_deviation(module: nn.Module) -> float:
    """Largest ``|‖w‖ − 1|`` over the sphere parameters of ``module`` (0.0 if none)."""
    worst = 0.0
    for param in module.parameters():
        if isinstance(param, SphereParameter):
            norms = torch.linalg.vector_norm(param.double(), dim=param.manifold.dim)
            worst = max(worst, float((norms - 1).abs().max().nan_to_num(float("inf"))))
    return worst
