"""Closed-form derivatives and curvature of Cholesky-parameterised metric fields.

A *Cholesky metric field* is ``g(z) = L(z) L(z)ᵀ + ε I`` on R^n whose factor L is
lower-triangular with entries from a one-hidden-layer tanh MLP,
``raw = W₂ tanh(W₁ z + b₁) + b₂``: strictly-lower entries as they are, the diagonal through
``softplus(raw + softplus⁻¹(1))`` (so zero output weights give L = I). Its first and
second derivatives are closed-form products of the MLP's weights, so the exact scalar
curvature costs a few batched matrix products instead of n² forward-mode passes
(:func:`cholesky_metric_jet`, :func:`cholesky_metric_scalar_curvature`). The metric
network of :class:`sphereml.nn.ndm.MetricNet` is of this form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .curvature import inverse_metric, ricci_scalar_first_order

#: softplus(SOFTPLUS_INV_1) = 1: the diagonal offset that starts L at the identity
SOFTPLUS_INV_1 = math.log(math.e - 1.0)


def placement_matrix(n: int) -> torch.Tensor:
    """The fixed 0/1 matrix (P, n²) that puts L's P = n(n+1)/2 entries (strictly lower,
    row-major, then the diagonal) at their positions in the flattened n×n factor.

    Built on the CPU whatever the default device (a module built on the ``meta`` device
    for its size still gets it at once; meta index functions run as slow Python)."""
    n_off = n * (n - 1) // 2
    rows, cols = torch.tril_indices(n, n, offset=-1, device="cpu")
    diagonal = torch.arange(n, device="cpu")
    place = torch.zeros(n_off + n, n * n, device="cpu")
    place[torch.arange(n_off), rows * n + cols] = 1.0
    place[n_off + diagonal, diagonal * (n + 1)] = 1.0
    return place


def cholesky_factor(raw: torch.Tensor, place: torch.Tensor) -> torch.Tensor:
    """L from the MLP output ``raw`` (..., P): lower-triangular, positive diagonal."""
    n = int(math.isqrt(place.shape[1]))
    lower, diagonal = raw.split([raw.shape[-1] - n, n], dim=-1)
    return place_entries(lower, F.softplus(diagonal + SOFTPLUS_INV_1), place)


def place_entries(lower: torch.Tensor, diagonal: torch.Tensor, place: torch.Tensor):
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
    r = raw[..., n_off:] + SOFTPLUS_INV_1
    sig = torch.sigmoid(r)
    L = place_entries(raw[..., :n_off], F.softplus(r), place)  # (..., batch, n, n)
    dL = place_entries(d_raw[..., :n_off], sig.unsqueeze(-2) * d_raw[..., n_off:], place)
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
    d2L = place_entries(d2_raw[..., :n_off], d2_diag, place)  # (..., batch, l, m, n, n)
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
    :func:`~sphereml.riemannian.curvature.ricci_scalar_first_order`.
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
