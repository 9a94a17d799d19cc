"""The Neural Differential Manifold network (seed 004, arXiv:2510.25113).

x ─ embedding ─▶ z_0 ─ φ_1 ─▶ z_1 ─ … ─ φ_L ─▶ z_L ─ metric-aware prototype head ─▶ logits

- ``φ_ℓ`` (:class:`AffineCoupling`): smooth invertible coordinate maps (tanh-bounded
  affine coupling; smooth, so the metric's second derivatives exist).
- ``g_ℓ`` (:class:`MetricNet`): a metric field on the chart of layer ℓ,
  ``g_ℓ(z) = L Lᵀ + ε I`` with L lower-triangular, softplus diagonal, initialised at the
  identity; ε is the floor that keeps g invertible (no NaN when L degenerates).
- Head: ``logit_c = −½ (z − μ_c)ᵀ g_L(z) (z − μ_c) + b_c`` — the learned geometry decides
  distances to the class prototypes μ_c; ``metric_head=False`` is the ablation with the
  Euclidean distance.
- Penalties (added to the training loss by the estimator): ``curvature_penalty ·
  mean_ℓ E[R_ℓ²]`` (scalar curvature of g_ℓ at the batch's points of layer ℓ, see
  :mod:`sphereml.nn.curvature`) and ``volume_penalty · mean_ℓ Var(√det g_ℓ)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .curvature import scalar_curvature

_SOFTPLUS_INV_1 = math.log(math.e - 1.0)  # softplus(_SOFTPLUS_INV_1) = 1


class AffineCoupling(nn.Module):
    """``z_b ← z_b · exp(tanh s(z_a)) + t(z_a)``, z_a unchanged; identity at initialisation.

    ``flip`` swaps which half conditions the other, so consecutive layers mix both.
    """

    def __init__(self, dim: int, hidden: int, flip: bool) -> None:
        super().__init__()
        self.n_a = dim // 2 if not flip else dim - dim // 2
        self.flip = flip
        n_b = dim - self.n_a
        self.net = nn.Sequential(nn.Linear(self.n_a, hidden), nn.Tanh(), nn.Linear(hidden, 2 * n_b))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.flip(-1) if self.flip else z
        z_a, z_b = z[..., : self.n_a], z[..., self.n_a :]
        s, t = self.net(z_a).chunk(2, dim=-1)
        out = torch.cat([z_a, z_b * torch.exp(torch.tanh(s)) + t], dim=-1)
        return out.flip(-1) if self.flip else out


class MetricNet(nn.Module):
    """A metric field ``g(z) = L(z) L(z)ᵀ + ε I`` on R^n, identity (+ε) at initialisation."""

    def __init__(self, dim: int, hidden: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        n_off = dim * (dim - 1) // 2
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, n_off + dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        rows, cols = torch.tril_indices(dim, dim, offset=-1)
        # strictly-lower entries placed by a fixed 0/1 matrix (no in-place indexing, so the
        # map composes with torch.func's vmap/jacfwd)
        place = torch.zeros(n_off, dim * dim)
        place[torch.arange(n_off), rows * dim + cols] = 1.0
        self.register_buffer("_place_lower", place, persistent=False)

    def cholesky_factor(self, z: torch.Tensor) -> torch.Tensor:
        """L(z) of shape (batch, n, n): lower-triangular with positive diagonal."""
        raw = self.net(z)
        n_off = raw.shape[-1] - self.dim
        lower = (raw[..., :n_off] @ self._place_lower.to(raw.dtype)).unflatten(
            -1, (self.dim, self.dim)
        )
        diagonal = F.softplus(raw[..., n_off:] + _SOFTPLUS_INV_1)
        return lower + torch.diag_embed(diagonal)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        L = self.cholesky_factor(z)
        eye = torch.eye(self.dim, dtype=z.dtype, device=z.device)
        return L @ L.mT + self.eps * eye

    def log_det(self, z: torch.Tensor) -> torch.Tensor:
        """log det g(z), shape (batch,), from the Cholesky factor of g (ε included)."""
        chol = torch.linalg.cholesky(self(z))
        return 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)


class NDMNet(nn.Module):
    """Embedding, coupling layers with per-layer metrics, metric-aware prototype head.

    Parameters
    ----------
    n_features, n_classes : int
    latent_dim : int
        n, the dimension of the learned manifold's charts (≥ 2).
    n_layers : int
        Number of coupling layers, each with its own metric (≥ 1).
    hidden : int
        Width of the coupling and metric networks.
    metric_eps : float
        ε in ``g = L Lᵀ + ε I``.
    metric_head : bool
        Prototype distances in the learned metric g_L (True) or Euclidean (False).
    curvature_penalty, volume_penalty : float
        Weights of ``E[R²]`` and ``Var(√det g)`` in :meth:`penalty`.
    curvature_estimator : {"auto", "exact", "hutchinson"}
    n_probes : int
        Probe pairs of the Hutchinson estimator.
    curvature_samples : int
        The curvature penalty is evaluated on at most this many points of the batch.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        latent_dim: int = 2,
        n_layers: int = 2,
        hidden: int = 32,
        metric_eps: float = 1e-3,
        metric_head: bool = True,
        curvature_penalty: float = 0.0,
        volume_penalty: float = 0.0,
        curvature_estimator: str = "auto",
        n_probes: int = 4,
        curvature_samples: int = 64,
    ) -> None:
        super().__init__()
        self.embedding = nn.Linear(n_features, latent_dim)
        self.couplings = nn.ModuleList(
            AffineCoupling(latent_dim, hidden, flip=bool(i % 2)) for i in range(n_layers)
        )
        self.metrics = nn.ModuleList(
            MetricNet(latent_dim, hidden, metric_eps) for _ in range(n_layers)
        )
        self.prototypes = nn.Parameter(0.1 * torch.randn(n_classes, latent_dim))  # μ_c
        self.bias = nn.Parameter(torch.zeros(n_classes))
        self.embedding_dim = latent_dim
        self.metric_head = metric_head
        self.curvature_penalty = curvature_penalty
        self.volume_penalty = volume_penalty
        self.curvature_estimator = curvature_estimator
        self.n_probes = n_probes
        self.curvature_samples = curvature_samples
        self._last_latents: list[torch.Tensor] | None = None

    def latents(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[z_0, z_1, …, z_L]: the embedding and each coupling layer's output."""
        zs = [self.embedding(x)]
        for coupling in self.couplings:
            zs.append(coupling(zs[-1]))
        return zs

    def head(self, z: torch.Tensor) -> torch.Tensor:
        diff = z.unsqueeze(1) - self.prototypes  # (batch, classes, n)
        if self.metric_head:
            g = self.metrics[-1](z)
            squared = torch.einsum("bci,bij,bcj->bc", diff, g, diff)
        else:
            squared = (diff**2).sum(-1)
        return -0.5 * squared + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zs = self.latents(x)
        if self.training:
            self._last_latents = zs  # consumed by penalty(), in the same training step
        return self.head(zs[-1])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.latents(x)[-1]

    def layer_points(self, zs: list[torch.Tensor]) -> list[tuple[MetricNet, torch.Tensor]]:
        """(g_ℓ, z_ℓ) pairs: metric ℓ lives on the chart of coupling ℓ's output."""
        return list(zip(self.metrics, zs[1:], strict=True))

    def curvature(self, zs: list[torch.Tensor], estimator: str | None = None) -> torch.Tensor:
        """Scalar curvature per layer and point, (n_layers, batch)."""
        est = estimator or self.curvature_estimator
        return torch.stack(
            [scalar_curvature(g, z, est, self.n_probes) for g, z in self.layer_points(zs)]
        )

    def volume_element(self, zs: list[torch.Tensor]) -> torch.Tensor:
        """√det g_ℓ(z_ℓ) per layer and point, (n_layers, batch)."""
        return torch.stack([torch.exp(0.5 * g.log_det(z)) for g, z in self.layer_points(zs)])

    def penalty(self) -> torch.Tensor:
        """Curvature and volume regularisers at the last training batch's points."""
        # consume the batch's latents: the fitted module must not keep (or pickle) the
        # last batch's autograd graph
        zs, self._last_latents = self._last_latents, None
        total = torch.zeros((), device=self.bias.device)
        if zs is None:
            return total
        if self.curvature_penalty > 0:
            # the penalty shapes the metric fields; points are held fixed (detached)
            sub = [z[: self.curvature_samples].detach() for z in zs]
            total = total + self.curvature_penalty * self.curvature(sub).pow(2).mean()
        if self.volume_penalty > 0:
            total = total + self.volume_penalty * self.volume_element(zs).var(dim=1).mean()
        return total

    def pullback_probe(self, x: torch.Tensor) -> torch.Tensor:
        """A scalar whose parameter gradient γ has E[γ²] = Σ_b diag(Σ_ℓ J_ℓᵀ g_ℓ J_ℓ).

        With v_ℓ ~ N(0, g_ℓ) drawn per point and layer (v = L ξ + √ε ξ'), the gradient of
        Σ_b Σ_ℓ v_ℓᵀ z_ℓ(θ) is Σ v_ℓᵀ J_ℓ; independent zero-mean probes make its square an
        unbiased estimate of the pulled-back metric's diagonal (the metric held fixed).
        """
        total = torch.zeros((), device=self.bias.device)
        for g, z in self.layer_points(self.latents(x)):
            with torch.no_grad():
                L = g.cholesky_factor(z)
                v = (L @ torch.randn_like(z).unsqueeze(-1)).squeeze(-1)
                v = v + math.sqrt(g.eps) * torch.randn_like(z)
            total = total + (v * z).sum()
        return total
