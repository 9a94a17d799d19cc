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
  :mod:`sphereml.nn.curvature`), ``volume_penalty · mean_ℓ Var(√det g_ℓ)`` and
  ``chart_penalty · mean_ℓ E‖J_ℓᵀ g_ℓ₊₁ J_ℓ − g_ℓ‖²_F / ‖g_ℓ‖²_F``, the chart consistency
  of consecutive layers (J_ℓ = ∂φ_ℓ₊₁/∂z_ℓ): zero when every coupling map is an isometry
  between its two charts' metrics, i.e. when all layers describe one Riemannian manifold.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .curvature import (
    MAX_EXACT_DIM,
    inverse_metric,
    ricci_scalar_first_order,
    scalar_curvature,
)

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
    """A metric field ``g(z) = L(z) L(z)ᵀ + ε I`` on R^n, identity (+ε) at initialisation.

    ``L``'s entries come from a one-hidden-layer tanh MLP (strictly-lower entries as they
    are, the diagonal through a softplus), so :meth:`jet` can give g's first and second
    derivatives in closed form — the exact curvature then costs a few batched matrix
    products instead of n² forward-mode passes.
    """

    def __init__(self, dim: int, hidden: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        n_off = dim * (dim - 1) // 2
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, n_off + dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        rows, cols = torch.tril_indices(dim, dim, offset=-1)
        diagonal = torch.arange(dim)
        # the entries (strictly lower, then diagonal) placed into L by a fixed 0/1 matrix:
        # linear, so it places their derivatives too, and it composes with torch.func
        place = torch.zeros(n_off + dim, dim * dim)
        place[torch.arange(n_off), rows * dim + cols] = 1.0
        place[n_off + diagonal, diagonal * (dim + 1)] = 1.0
        self.register_buffer("_place", place, persistent=False)

    def cholesky_factor(self, z: torch.Tensor) -> torch.Tensor:
        """L(z) of shape (batch, n, n): lower-triangular with positive diagonal."""
        raw = self.net(z)
        n_off = raw.shape[-1] - self.dim
        diagonal = F.softplus(raw[..., n_off:] + _SOFTPLUS_INV_1)
        return _place_entries(raw[..., :n_off], diagonal, self._place)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        L = self.cholesky_factor(z)
        eye = torch.eye(self.dim, dtype=z.dtype, device=z.device)
        return L @ L.mT + self.eps * eye

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W₁, b₁, W₂, b₂) of the MLP ``raw = W₂ tanh(W₁ z + b₁) + b₂``."""
        inner, _, outer = self.net
        return inner.weight, inner.bias, outer.weight, outer.bias

    def jet(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(g, ∂g, ∂²g)`` at z (batch, n), in closed form; shapes and index order as in
        :func:`sphereml.nn.curvature.metric_jet` (``dg[b, i, j, l] = ∂_l g_ij``)."""
        stacked = [w.unsqueeze(0) for w in self.weights()]
        jet = cholesky_metric_jet(z.unsqueeze(0), *stacked, self._place, self.eps)
        return tuple(part.squeeze(0) for part in jet)

    def log_det(self, z: torch.Tensor) -> torch.Tensor:
        """log det g(z), shape (batch,), from the Cholesky factor of g (ε included)."""
        chol = torch.linalg.cholesky(self(z))
        return 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)


def _place_entries(lower: torch.Tensor, diagonal: torch.Tensor, place: torch.Tensor):
    """L (or a derivative of L) from its entries: strictly-lower (..., n(n−1)/2) and
    diagonal (..., n), through the fixed 0/1 matrix ``place`` (P, n²) → (..., n, n).

    Linear, so it places derivatives too, and it composes with torch.func."""
    n = diagonal.shape[-1]
    entries = torch.cat([lower, diagonal], -1)
    return (entries @ place.to(entries.dtype)).unflatten(-1, (n, n))


def _first_jet(z, W1, b1, W2, b2, place, eps):
    """The pieces shared by :func:`cholesky_metric_jet` and
    :func:`cholesky_metric_scalar_curvature`: activations, L and its first derivatives."""
    n = z.shape[-1]
    n_off = n * (n - 1) // 2
    h = torch.tanh(z @ W1.mT + b1.unsqueeze(-2))  # (..., batch, H)
    dh = 1 - h * h  # tanh'; tanh'' = −2 tanh tanh'
    raw = h @ W2.mT + b2.unsqueeze(-2)  # (..., batch, P)
    # derivatives with the entry index p last: d_raw[..., b, l, p] = ∂_l raw_p
    d_raw = (dh.unsqueeze(-1) * W1.unsqueeze(-3)).mT @ W2.mT.unsqueeze(-3)  # (..., batch, n, P)
    # diagonal entries softplus(r): derivatives σ(r) and σ(r)(1 − σ(r))
    r = raw[..., n_off:] + _SOFTPLUS_INV_1
    sig = torch.sigmoid(r)
    L = _place_entries(raw[..., :n_off], F.softplus(r), place)  # (..., batch, n, n)
    dL = _place_entries(d_raw[..., :n_off], sig.unsqueeze(-2) * d_raw[..., n_off:], place)
    g = L @ L.mT + eps * torch.eye(n, dtype=z.dtype, device=z.device)
    half_dg = dL @ L.mT.unsqueeze(-3)  # ∂_l g = ∂_l L Lᵀ + (·)ᵀ
    dg = (half_dg + half_dg.mT).movedim(-3, -1)  # [.., l, i, j] → [.., i, j, l]
    return dict(h=h, dh=dh, d_raw=d_raw, sig=sig, L=L, dL=dL, g=g, dg=dg)  # dL: [l, i, k]


def cholesky_metric_jet(
    z: torch.Tensor,
    W1: torch.Tensor,
    b1: torch.Tensor,
    W2: torch.Tensor,
    b2: torch.Tensor,
    place: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form 2-jet of ``g = L Lᵀ + ε I`` with L's entries ``W₂ tanh(W₁ z + b₁) + b₂``.

    Every argument may carry the same leading dimensions (``...``), so several metric
    fields (the layers of an :class:`NDMNet`) are differentiated in one pass of batched
    products: z (..., batch, n), W₁ (..., H, n), b₁ (..., H), W₂ (..., P, H), b₂ (..., P);
    ``place`` (P, n²) puts the P entries (strictly lower, then the softplus'ed diagonal)
    into L. Returns g (..., batch, n, n), ∂g (..., batch, n, n, n) with ``[i, j, l] =
    ∂_l g_ij`` and ∂²g (..., batch, n, n, n, n) with ``[i, j, l, m] = ∂_l ∂_m g_ij``.
    """
    n = z.shape[-1]
    n_off = n * (n - 1) // 2
    jet = _first_jet(z, W1, b1, W2, b2, place, eps)
    h, dh, d_raw, sig, L, dL = (jet[k] for k in ("h", "dh", "d_raw", "sig", "L", "dL"))
    d2h = -2 * h * dh
    W1_outer = (W1.unsqueeze(-1) * W1.unsqueeze(-2)).flatten(-2)  # (..., H, n²)
    d2_raw = ((d2h.unsqueeze(-1) * W1_outer.unsqueeze(-3)).mT @ W2.mT.unsqueeze(-3)).unflatten(
        -2, (n, n)
    )
    d_r, d2_r = d_raw[..., n_off:], d2_raw[..., n_off:]
    sig_lm = sig.unsqueeze(-2).unsqueeze(-2)
    d2_diag = sig_lm * (1 - sig_lm) * d_r.unsqueeze(-2) * d_r.unsqueeze(-3) + sig_lm * d2_r
    d2L = _place_entries(d2_raw[..., :n_off], d2_diag, place)  # (..., batch, l, m, n, n)
    # ∂_l ∂_m g = ∂_lm L Lᵀ + ∂_l L ∂_m Lᵀ + (·)ᵀ
    half_d2g = d2L @ L.mT.unsqueeze(-3).unsqueeze(-3) + dL.unsqueeze(-3) @ dL.mT.unsqueeze(-4)
    d2g = (half_d2g + half_d2g.mT).movedim((-4, -3), (-2, -1))
    return jet["g"], jet["dg"], d2g


def cholesky_metric_scalar_curvature(
    z: torch.Tensor,
    W1: torch.Tensor,
    b1: torch.Tensor,
    W2: torch.Tensor,
    b2: torch.Tensor,
    place: torch.Tensor,
    eps: float,
) -> torch.Tensor:
    """Ricci scalar of ``g = L Lᵀ + ε I`` (arguments as in :func:`cholesky_metric_jet`),
    shape (..., batch), without forming ∂²g.

    The second-derivative terms of R, S₁ = g^ij g^kl ∂_i∂_k g_jl and S₂ = g^ij g^kl
    ∂_k∂_l g_ij, are contracted with g⁻¹ before they are built: with M = g⁻¹ L, A = W₁ g⁻¹,
    C = W₁ M, q_h = (W₁ g⁻¹ W₁ᵀ)_hh, s_p = 1 (strictly lower entry) or σ(r_p) (diagonal)::

        S₂ = 2 Σ_p M_p s_p Σ_h W₂[p,h] tanh''_h q_h + 2 Σ_a M_aa σ'(r_a) (∂r_a)ᵀ g⁻¹ ∂r_a
             + 2 Σ g^ac g^xy ∂_x L_am ∂_y L_cm
        S₁ = 2 Σ_p s_p Σ_h W₂[p,h] tanh''_h A[h, row p] C[h, col p]
             + 2 Σ_a σ'(r_a) (∂r_a · g⁻¹[:, a]) (∂r_a · M[:, a])
             + Σ_m (g^ij ∂_i L_jm)² + Σ g^ij g^kl ∂_i L_lm ∂_k L_jm

    (M_p, row p, col p: the entry p's value of M and its position in L). Cost O(H n²) per
    point instead of the O(n⁴) of ∂²g: at n = 8 the curvature penalty's step on two CPU
    cores is several times cheaper. The first-derivative terms are
    :func:`~sphereml.nn.curvature.ricci_scalar_first_order`.
    """
    lead, n = z.shape[:-1], z.shape[-1]
    n_off = n * (n - 1) // 2
    jet = _first_jet(z, W1, b1, W2, b2, place, eps)
    h, dh, d_raw, sig, L, dL = (jet[k] for k in ("h", "dh", "d_raw", "sig", "L", "dL"))
    d2h = -2 * h * dh
    g_inv = inverse_metric(jet["g"].flatten(0, -3), validate=False).reshape(jet["g"].shape)
    M = g_inv @ L
    place = place.to(z.dtype)
    scale = torch.cat([sig.new_ones(*sig.shape[:-1], n_off), sig], -1)
    sig_prime = sig * (1 - sig)
    d_r = d_raw[..., n_off:]  # (..., batch, n [derivative], n [diagonal entry a])
    W1_b = W1.unsqueeze(-3)  # (..., 1, H, n)
    A = W1_b @ g_inv  # (..., batch, H, n)
    C = W1_b @ M
    q = (A * W1_b).sum(-1)  # (..., batch, H)
    M_entries = M.flatten(-2) @ place.mT  # (..., batch, P): M at each entry's position
    s2_raw = (((M_entries * scale) @ W2) * d2h * q).sum(-1)
    s2_diag = (M.diagonal(0, -2, -1) * sig_prime * ((g_inv @ d_r) * d_r).sum(-2)).sum(-1)
    U = g_inv.unsqueeze(-3) @ dL  # Σ_c g^ac ∂_x L_cm, [x, a, m]
    V = (g_inv @ U.flatten(-2)).unflatten(-1, (n, n))  # Σ_x g^xy (·), [y, a, m]
    s2_product = (V * dL).sum((-3, -2, -1))
    # Σ_p s_p W₂[p,h] A[h,row p] C[h,col p]: strictly lower entries through W₂ placed as
    # (H, n, n) matrices (one batched product over h), diagonal entries scaled by σ(r_a)
    W2_lower = (W2[..., :n_off, :].mT @ place[:n_off]).unflatten(-1, (n, n))  # (..., H, n, n)
    AW = (A.transpose(-3, -2) @ W2_lower).transpose(-3, -2)  # Σ_j A[h,j] W₂[(j,m),h]
    s1_lower = (AW * C).sum(-1)  # (..., batch, H)
    W2_diag = W2[..., n_off:, :].mT.unsqueeze(-3)  # (..., 1, H, n)
    s1_diagonal = (A * C * sig.unsqueeze(-2) * W2_diag).sum(-1)
    s1_raw = ((s1_lower + s1_diagonal) * d2h).sum(-1)
    s1_diag = (sig_prime * (d_r * g_inv).sum(-2) * (d_r * M).sum(-2)).sum(-1)
    u = (g_inv.unsqueeze(-1) * dL).sum((-3, -2))  # Σ g^ij ∂_i L_jm, [m]
    P1 = (g_inv @ dL.flatten(-2)).unflatten(-1, (n, n))  # Σ_i g^ji ∂_i L_lm, [j, l, m]
    s1_products = (u * u).sum(-1) + (P1 * P1.transpose(-3, -2)).sum((-3, -2, -1))
    s1 = 2 * (s1_raw + s1_diag) + s1_products
    s2 = 2 * (s2_raw + s2_diag + s2_product)
    first_order = ricci_scalar_first_order(g_inv.flatten(0, -3), jet["dg"].flatten(0, -4))
    return s1 - s2 + first_order.reshape(lead)


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
    curvature_penalty, volume_penalty, chart_penalty : float
        Weights of ``E[R²]``, ``Var(√det g)`` and the chart inconsistency
        (:meth:`chart_residual`) in :meth:`penalty`.
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
        chart_penalty: float = 0.0,
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
        self.chart_penalty = chart_penalty
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
        dim = self.embedding_dim
        if est in ("exact", "auto") and dim <= MAX_EXACT_DIM:
            # all layers' metric fields in one batched pass, ∂²g contracted before it is
            # built; g ⪰ ε I by construction, so no positive-definiteness check (a sync)
            weights = [
                torch.stack(w) for w in zip(*(g.weights() for g in self.metrics), strict=True)
            ]
            metric = self.metrics[0]
            return cholesky_metric_scalar_curvature(
                torch.stack(zs[1:]), *weights, metric._place, metric.eps
            )
        return torch.stack(
            [scalar_curvature(g, z, est, self.n_probes) for g, z in self.layer_points(zs)]
        )

    def volume_element(self, zs: list[torch.Tensor]) -> torch.Tensor:
        """√det g_ℓ(z_ℓ) per layer and point, (n_layers, batch)."""
        return torch.stack([torch.exp(0.5 * g.log_det(z)) for g, z in self.layer_points(zs)])

    def chart_residual(self, zs: list[torch.Tensor]) -> torch.Tensor:
        """Relative chart inconsistency of consecutive layers, (n_layers − 1, batch).

        ``‖J_ℓᵀ g_ℓ₊₁(z_ℓ₊₁) J_ℓ − g_ℓ(z_ℓ)‖²_F / ‖g_ℓ(z_ℓ)‖²_F`` with J_ℓ = ∂φ_ℓ₊₁/∂z_ℓ
        (n forward-mode tangents per point): how far coupling ℓ+1 is from carrying
        metric ℓ+1 back onto metric ℓ. Differentiable in the couplings and the metrics.
        """
        residuals = []
        for layer in range(len(self.couplings) - 1):
            coupling = self.couplings[layer + 1]
            z = zs[layer + 1]

            def chart_map(point, coupling=coupling):
                return coupling(point.unsqueeze(0)).squeeze(0)

            J = torch.func.vmap(torch.func.jacfwd(chart_map))(z)
            pulled = J.mT @ self.metrics[layer + 1](coupling(z)) @ J
            g = self.metrics[layer](z)
            residuals.append((pulled - g).pow(2).sum((1, 2)) / g.pow(2).sum((1, 2)))
        if not residuals:
            return zs[0].new_zeros(0, len(zs[0]))
        return torch.stack(residuals)

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
        if self.chart_penalty > 0 and len(self.couplings) > 1:
            sub = [z[: self.curvature_samples].detach() for z in zs]
            total = total + self.chart_penalty * self.chart_residual(sub).mean()
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
