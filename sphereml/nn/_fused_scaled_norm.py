"""nGPT's query/key normalisation ``y = s_h ⊙ Norm(x)`` per head, one Triton kernel each way.

Queries and keys are (batch, heads, length, d_k) tensors; every row is put on the unit
sphere and scaled by its head's slice of ``s_qk``. Eagerly under bf16 autocast that is a
cast to float32, the RMSNorm, a cast back and a broadcasting multiply forward, and about
as many kernels plus a reduction for the scale's gradient backward. Here each row is read
once and written once in each direction. With ``r = (‖x‖² + ε²)^(-1/2)`` and ``n = x r``,
the backward pass of an upstream gradient ``g`` is

- ``g_n = s_h ⊙ g``, ``g_x = r (g_n − n (n · g_n))``,
- ``g_s[h] = Σ_(rows of head h) g ⊙ n`` (per-program partial sums, added by torch).

The grid is (batch × heads, blocks of positions), so a program's rows share one head.
Arithmetic is float32; the output has the dtype of ``x``. Imports Triton (not torch) at
module level; :class:`~sphereml.nn.ngpt.NormalizedAttention` imports it only where it is
used. With ``TRITON_INTERPRET=1`` set before the import the kernels run on CPU tensors
through Triton's interpreter (the tests do that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import triton
import triton.language as tl

if TYPE_CHECKING:
    import torch

#: Widest head (d_k, padded to a power of two) the kernels hold in registers.
MAX_HEAD_DIM = 1024


@triton.jit
def _forward_kernel(
    x_ptr, s_ptr, y_ptr, length, n_heads, eps2, D: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):  # fmt: skip
    sequence = tl.program_id(0)  # batch × heads + head
    positions = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_D)
    ok = (positions[:, None] < length) & (cols[None, :] < D)
    rows = sequence.to(tl.int64) * length + positions
    offsets = rows[:, None] * D + cols[None, :]
    x = tl.load(x_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    head = sequence % n_heads
    s = tl.load(s_ptr + head * D + cols, mask=cols < D, other=0.0).to(tl.float32)
    r = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) + eps2)
    tl.store(y_ptr + offsets, (x * r[:, None] * s[None, :]).to(y_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _backward_kernel(
    x_ptr, s_ptr, g_ptr, gx_ptr, gs_ptr, length, n_heads, eps2, D: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    sequence = tl.program_id(0)
    block = tl.program_id(1)
    positions = block * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_D)
    ok = (positions[:, None] < length) & (cols[None, :] < D)
    rows = sequence.to(tl.int64) * length + positions
    offsets = rows[:, None] * D + cols[None, :]
    x = tl.load(x_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    head = sequence % n_heads
    s = tl.load(s_ptr + head * D + cols, mask=cols < D, other=0.0).to(tl.float32)[None, :]
    r = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) + eps2)
    n = x * r[:, None]
    g_n = s * g
    g_x = r[:, None] * (g_n - n * tl.sum(n * g_n, axis=1)[:, None])
    tl.store(gx_ptr + offsets, g_x.to(gx_ptr.dtype.element_ty), mask=ok)
    partial = (sequence.to(tl.int64) * tl.num_programs(1) + block) * BLOCK_D
    tl.store(gs_ptr + partial + cols, tl.sum(g * n, axis=0))


def _launch(d: int, length: int) -> dict[str, Any]:
    block_d = triton.next_power_of_2(d)
    if block_d > MAX_HEAD_DIM:
        raise ValueError(f"the fused q/k norm holds heads up to {MAX_HEAD_DIM}, got {d}")
    block_m = max(1, min(64, 8192 // block_d, triton.next_power_of_2(length)))
    return {"BLOCK_M": block_m, "BLOCK_D": block_d, "num_warps": 4}


def _scaled_norm_function():
    import torch

    class FusedScaledNorm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, s, eps):
            batch, heads, length, d = x.shape
            x = x.contiguous()
            s = s.contiguous()
            y = torch.empty_like(x)
            meta = _launch(d, length)
            grid = (batch * heads, triton.cdiv(length, meta["BLOCK_M"]))
            _forward_kernel[grid](x, s, y, length, heads, eps * eps, D=d, **meta)
            ctx.save_for_backward(x, s)
            ctx.eps = eps
            return y

        @staticmethod
        def backward(ctx, grad):
            x, s = ctx.saved_tensors
            batch, heads, length, d = x.shape
            g = grad.contiguous()
            grad_x = torch.empty_like(x)
            meta = _launch(d, length)
            blocks = triton.cdiv(length, meta["BLOCK_M"])
            partial = torch.empty(
                (batch, heads, blocks, meta["BLOCK_D"]), dtype=torch.float32, device=x.device
            )
            _backward_kernel[(batch * heads, blocks)](
                x, s, g, grad_x, partial, length, heads, ctx.eps**2, D=d, **meta
            )
            grad_s = partial.sum(dim=(0, 2))[:, :d].to(s.dtype)
            return grad_x, grad_s.view(s.shape), None

    return FusedScaledNorm


_FUNCTION: Any = None


def fused_scaled_unit_norm(x: torch.Tensor, s: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``s[h] ⊙ x / sqrt(‖x‖² + eps²)`` over the last axis, differentiable in x and s.

    Parameters
    ----------
    x : tensor of shape (batch, heads, length, d_k)
        Queries or keys.
    s : tensor of shape (heads, d_k)
        Each head's scaling.
    eps : float

    Returns
    -------
    tensor of the shape and dtype of ``x``.
    """
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _scaled_norm_function()
    return _FUNCTION.apply(x, s, eps)


__all__ = ["MAX_HEAD_DIM", "fused_scaled_unit_norm"]
