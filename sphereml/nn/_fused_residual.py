"""nGPT's residual update ``y = Norm(h + α ⊙ (Norm(a) − h))`` as one Triton kernel each way.

Eagerly the update is about six kernels forward and ten backward over the (tokens × d)
activations (two normalisations, a subtraction, a scaling, an addition, their gradients);
here each row is read once and written once in each direction. With
``r_x = (‖x‖² + ε²)^(-1/2)``, ``s = a r_a``, ``u = h + α ⊙ (s − h)`` and ``y = u r_u``, the
backward pass of an upstream gradient ``g`` is

- ``g_u = r_u (g − y (y · g))``,
- ``g_h = (1 − α) ⊙ g_u``,
- ``g_a = r_a (α ⊙ g_u − s (s · (α ⊙ g_u)))``,
- ``g_α = Σ_rows g_u ⊙ (s − h)`` (per-program partial sums, added by torch),

recomputing ``s``, ``u`` and ``y`` from the inputs instead of storing them. Arithmetic is
float32 whatever the input dtypes; the output has the dtype eager PyTorch would give
(``torch.result_type`` of the three inputs).

Imports Triton (not torch) at module level; :class:`~sphereml.nn.layers.NormalizedResidual`
imports this module only on CUDA. With ``TRITON_INTERPRET=1`` set before the import the
kernels run on CPU tensors through Triton's interpreter (the tests do that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import triton
import triton.language as tl

if TYPE_CHECKING:
    import torch

#: Widest row (model width, padded to a power of two) the kernels hold in registers.
MAX_WIDTH = 4096


@triton.jit
def _forward_kernel(
    h_ptr, a_ptr, alpha_ptr, y_ptr, n, eps2, D: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_D)
    ok = (rows[:, None] < n) & (cols[None, :] < D)
    offsets = rows[:, None].to(tl.int64) * D + cols[None, :]
    h = tl.load(h_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    a = tl.load(a_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    alpha = tl.load(alpha_ptr + cols, mask=cols < D, other=0.0).to(tl.float32)
    s = a / tl.sqrt(tl.sum(a * a, axis=1) + eps2)[:, None]
    u = h + alpha[None, :] * (s - h)
    y = u / tl.sqrt(tl.sum(u * u, axis=1) + eps2)[:, None]
    tl.store(y_ptr + offsets, y.to(y_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _backward_kernel(
    h_ptr, a_ptr, alpha_ptr, g_ptr, gh_ptr, ga_ptr, galpha_ptr, n, eps2, D: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_D)
    ok = (rows[:, None] < n) & (cols[None, :] < D)
    offsets = rows[:, None].to(tl.int64) * D + cols[None, :]
    h = tl.load(h_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    a = tl.load(a_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    alpha = tl.load(alpha_ptr + cols, mask=cols < D, other=0.0).to(tl.float32)[None, :]
    r_a = 1.0 / tl.sqrt(tl.sum(a * a, axis=1) + eps2)
    s = a * r_a[:, None]
    u = h + alpha * (s - h)
    r_u = 1.0 / tl.sqrt(tl.sum(u * u, axis=1) + eps2)
    y = u * r_u[:, None]
    g_u = r_u[:, None] * (g - y * tl.sum(y * g, axis=1)[:, None])
    g_s = alpha * g_u
    g_a = r_a[:, None] * (g_s - s * tl.sum(s * g_s, axis=1)[:, None])
    tl.store(gh_ptr + offsets, ((1.0 - alpha) * g_u).to(gh_ptr.dtype.element_ty), mask=ok)
    tl.store(ga_ptr + offsets, g_a.to(ga_ptr.dtype.element_ty), mask=ok)
    tl.store(galpha_ptr + pid * BLOCK_D + cols, tl.sum(g_u * (s - h), axis=0))


def _launch(d: int) -> dict[str, Any]:
    block_d = triton.next_power_of_2(d)
    if block_d > MAX_WIDTH:
        raise ValueError(f"the fused residual update holds rows up to {MAX_WIDTH}, got {d}")
    block_m = max(1, min(16, 4096 // block_d))
    return {"BLOCK_M": block_m, "BLOCK_D": block_d, "num_warps": 4 if block_d <= 512 else 8}


def _rows(x: torch.Tensor, d: int) -> torch.Tensor:
    return x.reshape(-1, d).contiguous()


def _fused_residual_function():
    import torch

    class FusedResidual(torch.autograd.Function):
        @staticmethod
        def forward(ctx, h, a, alpha, eps):
            d = h.shape[-1]
            # the dtype of eager ``h + alpha * (Norm(a) - h)``
            out_dtype = torch.promote_types(torch.promote_types(h.dtype, a.dtype), alpha.dtype)
            h2, a2 = _rows(h, d), _rows(a, d)
            alpha = alpha.contiguous()
            n = h2.shape[0]
            y = torch.empty((n, d), dtype=out_dtype, device=h.device)
            meta = _launch(d)
            grid = (triton.cdiv(n, meta["BLOCK_M"]),)
            _forward_kernel[grid](h2, a2, alpha, y, n, eps * eps, D=d, **meta)
            ctx.save_for_backward(h2, a2, alpha)
            ctx.eps, ctx.shape, ctx.dtypes = eps, h.shape, (h.dtype, a.dtype)
            return y.view(h.shape)

        @staticmethod
        def backward(ctx, grad):
            h2, a2, alpha = ctx.saved_tensors
            n, d = h2.shape
            g = _rows(grad, d)
            grad_h = torch.empty((n, d), dtype=ctx.dtypes[0], device=g.device)
            grad_a = torch.empty((n, d), dtype=ctx.dtypes[1], device=g.device)
            meta = _launch(d)
            programs = triton.cdiv(n, meta["BLOCK_M"])
            partial = torch.empty((programs, meta["BLOCK_D"]), dtype=torch.float32, device=g.device)
            _backward_kernel[(programs,)](
                h2, a2, alpha, g, grad_h, grad_a, partial, n, ctx.eps**2, D=d, **meta
            )
            grad_alpha = partial.sum(dim=0)[:d].to(alpha.dtype)
            return grad_h.view(ctx.shape), grad_a.view(ctx.shape), grad_alpha, None

    return FusedResidual


_FUNCTION: Any = None


def fused_residual_update(
    h: torch.Tensor, a: torch.Tensor, alpha: torch.Tensor, eps: float = 1e-12
) -> torch.Tensor:
    """``Norm(h + α ⊙ (Norm(a) − h))`` over the last axis, differentiable in h, a and α.

    Parameters
    ----------
    h : tensor of shape (..., d)
        The residual stream (unit rows).
    a : tensor of shape (..., d)
        The block's output (any norm), same shape as ``h``.
    alpha : tensor of shape (d,)
        Step sizes along the chord.
    eps : float
        ``Norm(x) = x / sqrt(‖x‖² + eps²)``.

    Returns
    -------
    tensor of the shape of ``h``, in ``torch.result_type`` of the inputs.
    """
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _fused_residual_function()
    return _FUNCTION.apply(h, a, alpha, eps)


__all__ = ["MAX_WIDTH", "fused_residual_update"]
