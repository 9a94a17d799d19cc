"""Scalar curvature of a batched Riemannian metric field, differentiable (torch.func).

A *metric field* is a callable ``metric_fn(z) -> g`` mapping points ``z`` of shape
(batch, n) to symmetric positive-definite matrices of shape (batch, n, n), row by row (row i
of ``g`` depends on row i of ``z`` only) and built from ``torch.func``-compatible
operations. Conventions (do Carmo / Lee)::

    Γ^k_ij = ½ g^kl (∂_i g_jl + ∂_j g_il − ∂_l g_ij)                      (Koszul)
    R^a_bcd = ∂_c Γ^a_db − ∂_d Γ^a_cb + Γ^a_ce Γ^e_db − Γ^a_de Γ^e_cb
    Ric_bd = R^a_bad,    R = g^bd Ric_bd

so the round sphere has R > 0. Every solve with g goes through its Cholesky factor
(``cholesky_solve``), never an explicit inverse.

- :func:`scalar_curvature_exact`: from the metric's 2-jet (g, ∂g, ∂²g) in closed form
  (:func:`scalar_curvature_from_jet`). The jet comes from the metric field's own ``jet``
  method when it has one (:class:`sphereml.nn.ndm.MetricNet` computes it analytically, a
  few batched matrix products), else from ``vmap`` of ``jacfwd`` of ``jacfwd`` — n²
  forward-mode tangents of the metric per point (:func:`metric_jet`). Exact; memory n⁴ per
  point, so capped at n = 8.
- :func:`scalar_curvature_hutchinson`: an unbiased estimate from random probes. With
  u, v ~ N(0, g⁻¹) independent, ``R = E[Rm(u, v, u, v)]`` (since E[u uᵀ] = g⁻¹ contracts
  both index pairs of the Riemann tensor), and ``Rm(u, v, u, v) = g(u, W)`` with::

      W = D_u[Γ(v, v)] − D_v[Γ(u, v)] + Γ(u, Γ(v, v)) − Γ(v, Γ(u, v))

  where Γ(x, y)^a = Γ^a_ij x^i y^j and D_u is the directional derivative in z (two
  Jacobian-vector products). Cost per probe: O(n) metric tangents instead of O(n²).
  Variance: for constant sectional curvature K (sphere, hyperbolic space) one probe has
  variance 2 K² n (n − 1)(2n + 1), i.e. a relative standard deviation of
  √(2(2n + 1) / (n (n − 1))) / √n_probes (0.52 / √n_probes at n = 16); in general it scales
  with the squared norm of the Riemann tensor. The probes are reparameterised
  (u = L⁻ᵀ ξ with g = L Lᵀ), so the estimate's gradient is an unbiased gradient of R.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from torch.func import jacfwd, jvp, vmap

MetricFn = Callable[[torch.Tensor], torch.Tensor]

#: torch.func keeps its forward-mode AD levels in process-wide state: two threads that
#: transform at once corrupt each other's levels. Every torch.func transform in sphereml
#: runs under this lock, so concurrent fits (threads) stay correct.
FUNC_TRANSFORM_LOCK = threading.RLock()

#: largest latent dimension for which ``estimator="auto"`` picks the exact computation
MAX_EXACT_DIM = 8


def _pointwise(metric_fn: MetricFn) -> Callable[[torch.Tensor], torch.Tensor]:
    """(n,) → (n, n): the metric at one point, through the batched callable."""
    return lambda z: metric_fn(z.unsqueeze(0)).squeeze(0)


def metric_jet(
    metric_fn: MetricFn, z: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The metric's 2-jet at the points z (batch, n): ``(g, dg, d2g)``.

    Shapes (batch, n, n), (batch, n, n, n) and (batch, n, n, n, n), with
    ``dg[b, i, j, l] = ∂_l g_ij`` and ``d2g[b, i, j, l, m] = ∂_l ∂_m g_ij``. Uses
    ``metric_fn.jet`` when the metric field defines one (same contract), else forward-mode
    autodiff (``vmap(jacfwd(jacfwd))``). Differentiable in both cases.
    """
    jet = getattr(metric_fn, "jet", None)
    if callable(jet):
        return jet(z)
    g_at = _pointwise(metric_fn)

    def with_value(z):
        g = g_at(z)
        return g, g

    def first(z):
        dg, g = jacfwd(with_value, has_aux=True)(z)
        return dg, (dg, g)

    def second(z):
        d2g, (dg, g) = jacfwd(first, has_aux=True)(z)
        return g, dg, d2g

    with FUNC_TRANSFORM_LOCK:
        return vmap(second)(z)


def scalar_curvature_from_jet(
    g: torch.Tensor, dg: torch.Tensor, d2g: torch.Tensor, validate: bool = True
) -> torch.Tensor:
    """Ricci scalar from the metric's 2-jet (shapes as in :func:`metric_jet`) → (batch,).

    Contracting ``R = g^ij Ric_ij`` with ``∂_m Γ^k_ij = g^kl (∂_m Γ_{l,ij} − ∂_m g_lp Γ^p_ij)``
    (Γ_{l,ij}: first kind) gives, with S₁ = g^ij g^kl ∂_i ∂_k g_jl, S₂ = g^ij g^kl ∂_k ∂_l g_ij,
    v_p = g^kl ∂_k g_lp, w^p = g^ij Γ^p_ij::

        R = S₁ − S₂ − v_p w^p + g^ij g^kl ∂_j g_lp Γ^p_ik + Γ^k_kl w^l − g^ij Γ^k_jl Γ^l_ik

    every term a pairwise contraction of O(n⁴) per point; no n⁴ intermediate besides
    ∂²g itself. g⁻¹ comes from the Cholesky factor (``cholesky_solve``). ``validate``
    raises a ValueError where g is not positive definite (costs a device sync on GPU;
    callers whose metric is positive definite by construction pass False).
    """
    g_inv = inverse_metric(g, validate)
    batch, n = g.shape[:2]
    flat_inv = g_inv.reshape(batch, 1, n * n)
    # S₂ = Σ g^ij ∂_k∂_l g_ij g^kl;  S₁ = Σ g^ij ∂_i∂_k g_jl g^kl
    s2 = (flat_inv @ d2g.reshape(batch, n * n, n * n) @ flat_inv.mT).reshape(batch)
    t1 = torch.einsum("bij,bjlik->blk", g_inv, d2g)
    s1 = (t1 * g_inv).sum((1, 2))
    return s1 - s2 + ricci_scalar_first_order(g_inv, dg)


def inverse_metric(g: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """g⁻¹ (batch, n, n) through the Cholesky factor; ``validate``: a ValueError where g is
    not positive definite (a device sync on GPU)."""
    chol, info = torch.linalg.cholesky_ex(g)
    if validate and bool((info > 0).any()):
        raise ValueError(
            f"the metric is not positive definite at {int((info > 0).sum())} of {len(g)} points"
        )
    eye = torch.eye(g.shape[-1], dtype=g.dtype, device=g.device).expand_as(g)
    return torch.cholesky_solve(eye, chol)


def ricci_scalar_first_order(g_inv: torch.Tensor, dg: torch.Tensor) -> torch.Tensor:
    """The terms of R without second derivatives (see :func:`scalar_curvature_from_jet`):
    ``− v_p w^p + g^ij g^kl ∂_j g_lp Γ^p_ik + Γ^k_kl w^l − g^ij Γ^k_jl Γ^l_ik``, (batch,)."""
    batch, n = g_inv.shape[:2]
    # Γ^k_ij from the first kind Γ_{l,ij} = ½ (∂_i g_jl + ∂_j g_il − ∂_l g_ij), [l, i, j]
    d_i_g_jl = dg.permute(0, 2, 3, 1)
    first_kind = 0.5 * (d_i_g_jl + d_i_g_jl.transpose(2, 3) - dg.permute(0, 3, 1, 2))
    gamma = (g_inv @ first_kind.flatten(2)).unflatten(2, (n, n))  # [k, i, j]
    flat_inv = g_inv.reshape(batch, 1, n * n)
    v = torch.einsum("bkl,blpk->bp", g_inv, dg)
    w = (flat_inv @ gamma.flatten(2).mT).reshape(batch, n)
    c = torch.einsum("bij,blpj->bilp", g_inv, dg)  # g^ij ∂_j g_lp
    d = torch.einsum("bilp,bkl->bikp", c, g_inv)
    mixed = torch.einsum("bikp,bpik->b", d, gamma)
    trace_gamma = torch.einsum("bkkl->bl", gamma)
    e = torch.einsum("bij,bkjl->bikl", g_inv, gamma)  # g^ij Γ^k_jl
    quadratic = torch.einsum("bikl,blik->b", e, gamma)
    return -(v * w).sum(1) + mixed + (trace_gamma * w).sum(1) - quadratic


def _christoffel(g_at: Callable) -> Callable:
    """z ↦ (Γ^k_ij as (n, n, n) indexed [k, i, j], g, Cholesky factor of g)."""

    def metric_and_copy(z):
        g = g_at(z)
        return g, g

    def gamma(z):
        dg, g = jacfwd(metric_and_copy, has_aux=True)(z)  # dg[i, j, l] = ∂_l g_ij
        n = z.shape[-1]
        # Γ_{l,ij} = ½ (∂_i g_jl + ∂_j g_il − ∂_l g_ij), indexed [l, i, j]
        d_i_g_jl = torch.einsum("jli->lij", dg)
        first_kind = 0.5 * (d_i_g_jl + d_i_g_jl.transpose(1, 2) - torch.einsum("ijl->lij", dg))
        chol = torch.linalg.cholesky(g)
        second_kind = torch.cholesky_solve(first_kind.reshape(n, n * n), chol)
        return second_kind.reshape(n, n, n), g, chol

    return gamma


def _check_points(z: torch.Tensor) -> None:
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"z must be a torch tensor of shape (batch, n), got {type(z).__name__}")
    if z.ndim != 2:
        raise ValueError(f"z must have shape (batch, n), got shape {tuple(z.shape)}")
    if not torch.is_floating_point(z):
        raise TypeError(f"z must be floating point, got {z.dtype}")
    if z.shape[1] < 1:
        raise ValueError("z has no coordinates (n = 0): a manifold needs dimension n >= 1")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("z contains NaN or infinity")


_FUNC_CONTRACT = (
    "metric_fn must map (batch, n) to (batch, n, n) row by row with out-of-place torch "
    "operations that torch.func can transform (no in-place assignment such as "
    "g[:, 0, 0] = ...; build g with torch.stack, torch.diag_embed or arithmetic)"
)


def _check_metric(metric_fn: MetricFn, z: torch.Tensor) -> None:
    """Evaluate the metric at one point: shape, finiteness and symmetry, with errors that
    name the problem (instead of a failure deep inside the autodiff)."""
    if not callable(metric_fn):
        raise TypeError(f"metric_fn must be callable, got {type(metric_fn).__name__}")
    if len(z) == 0:
        return
    n = z.shape[1]
    with torch.no_grad():
        g = metric_fn(z[:1])
    if not isinstance(g, torch.Tensor) or tuple(g.shape) != (1, n, n):
        shape = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
        raise ValueError(
            f"metric_fn(z) must return a tensor of shape (batch, n, n) = (batch, {n}, {n}); "
            f"for a batch of 1 it returned {shape}"
        )
    if not bool(torch.isfinite(g).all()):
        raise ValueError("metric_fn returned NaN or infinity at the first point")
    asym = float((g - g.mT).abs().max())
    if asym > 1e-6 * max(1.0, float(g.abs().max())):
        raise ValueError(f"metric_fn must return symmetric matrices; |g - gᵀ| reaches {asym:.3g}")


def _func_transform(compute, *args):
    """Run a torch.func computation; explain the metric's contract when it breaks it."""
    try:
        return compute(*args)
    except RuntimeError as exc:
        if "vmap" in str(exc) or "inplace" in str(exc).lower() or "in-place" in str(exc):
            raise ValueError(f"{_FUNC_CONTRACT}; torch.func reported: {exc}") from exc
        raise


def scalar_curvature_exact(metric_fn: MetricFn, z: torch.Tensor) -> torch.Tensor:
    """Exact Ricci scalar R(z) of the metric field, shape (batch,); differentiable."""
    _check_points(z)
    _check_metric(metric_fn, z)
    return _func_transform(lambda: scalar_curvature_from_jet(*metric_jet(metric_fn, z)))


def scalar_curvature_hutchinson(
    metric_fn: MetricFn,
    z: torch.Tensor,
    n_probes: int = 4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Unbiased estimate of R(z), shape (batch,), averaged over ``n_probes`` probe pairs.

    See the module docstring for the estimator and its variance.
    """
    _check_points(z)
    _check_metric(metric_fn, z)
    if not isinstance(n_probes, int) or n_probes < 1:
        raise ValueError(f"n_probes must be an integer >= 1, got {n_probes!r}")
    return _func_transform(_hutchinson, metric_fn, z, n_probes, generator)


def _hutchinson(
    metric_fn: MetricFn, z: torch.Tensor, n_probes: int, generator: torch.Generator | None
) -> torch.Tensor:
    gamma = _christoffel(_pointwise(metric_fn))
    batch, n = z.shape
    xi = torch.randn(2, n_probes, batch, n, generator=generator, dtype=z.dtype, device=z.device)

    def contract(G, x, y):
        return torch.einsum("aij,i,j->a", G, x, y)

    def one_probe(z, xi_u, xi_v):
        _, g, chol = gamma(z)
        # u, v ~ N(0, g⁻¹): u = L⁻ᵀ ξ with g = L Lᵀ
        u = torch.linalg.solve_triangular(chol.mT, xi_u.unsqueeze(-1), upper=True).squeeze(-1)
        v = torch.linalg.solve_triangular(chol.mT, xi_v.unsqueeze(-1), upper=True).squeeze(-1)

        def gamma_vv(z):
            G = gamma(z)[0]
            return contract(G, v, v), G

        def gamma_uv(z):
            return contract(gamma(z)[0], u, v)

        # u and v are held constant in the directional derivatives (coordinate fields) but
        # stay differentiable functions of g, so the estimate's gradient is unbiased
        # (torch's stubs type jvp's result as a pair; with has_aux it is a triple)
        G_vv, D_u_G_vv, G = jvp(gamma_vv, (z,), (u,), has_aux=True)  # type: ignore[misc]
        G_uv, D_v_G_uv = jvp(gamma_uv, (z,), (v,))  # type: ignore[misc]
        W = D_u_G_vv - D_v_G_uv + contract(G, u, G_vv) - contract(G, v, G_uv)
        return u @ (g @ W)

    with FUNC_TRANSFORM_LOCK:
        per_probe = vmap(vmap(one_probe), in_dims=(None, 0, 0))(z, xi[0], xi[1])
    return per_probe.mean(0)


def scalar_curvature(
    metric_fn: MetricFn,
    z: torch.Tensor,
    estimator: str = "auto",
    n_probes: int = 4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ricci scalar of a batched Riemannian metric field at the points ``z``.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(z) -> g``: torch tensors (batch, n) → (batch, n, n), symmetric positive
        definite (a ValueError names the points where it is not), row by row, built from
        ``torch.func``-compatible operations. A metric field with a ``jet(z) -> (g, ∂g,
        ∂²g)`` method (as :class:`sphereml.nn.ndm.MetricNet`) gives its derivatives in
        closed form, which the exact estimator then uses instead of autodiff.
    z : torch.Tensor of shape (batch, n)
    estimator : {"auto", "exact", "hutchinson"}, default="auto"
        ``"exact"``: R in closed form from the metric's 2-jet (Christoffel symbols by the
        Koszul formula, g⁻¹ through ``cholesky_solve``), the jet from ``metric_fn.jet``
        or ``vmap(jacfwd(jacfwd))``; n ≤ 8 (a ValueError beyond). ``"hutchinson"``: the
        unbiased probe estimate ``E[Rm(u, v, u, v)]`` with
        u, v ~ N(0, g⁻¹), O(n) instead of O(n²) metric tangents per point. ``"auto"``:
        exact up to n = 8.
    n_probes : int, default=4
        Probe pairs per point for ``"hutchinson"``. For constant curvature the relative
        standard deviation is √(2(2n + 1) / (n (n − 1)) / n_probes).
    generator : torch.Generator, optional
        Source of the probes.

    Returns
    -------
    torch.Tensor of shape (batch,)
        Differentiable with respect to ``z`` and to the parameters inside ``metric_fn``,
        so it can be used as a training penalty. Sign convention: the round sphere of
        radius r has R = n (n − 1) / r².
    """
    _check_points(z)
    if estimator not in ("auto", "exact", "hutchinson"):
        raise ValueError(f"estimator must be 'exact', 'hutchinson' or 'auto', got {estimator!r}")
    if not isinstance(n_probes, int) or n_probes < 1:
        raise ValueError(f"n_probes must be an integer >= 1, got {n_probes!r}")
    _check_metric(metric_fn, z)
    return _func_transform(_scalar_curvature, metric_fn, z, estimator, n_probes, generator)


def _scalar_curvature(
    metric_fn: MetricFn,
    z: torch.Tensor,
    estimator: str = "auto",
    n_probes: int = 4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """:func:`scalar_curvature` without input checks, for training loops (no sync)."""
    n = z.shape[1]
    if estimator == "auto":
        estimator = "exact" if n <= MAX_EXACT_DIM else "hutchinson"
    if estimator == "exact":
        if n > MAX_EXACT_DIM:
            raise ValueError(
                f"estimator='exact' supports latent dimensions up to {MAX_EXACT_DIM} "
                f"(cost and memory grow as n²·n³ per point), got n={n}; use "
                "estimator='hutchinson' or 'auto'"
            )
        return scalar_curvature_from_jet(*metric_jet(metric_fn, z))
    return _hutchinson(metric_fn, z, n_probes, generator)
