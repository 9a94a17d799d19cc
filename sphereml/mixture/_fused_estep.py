"""The E-step of the vMF mixture as one Triton kernel.

For a block of rows the kernel computes ``lp = X (κμ)ᵀ + b`` in registers, then the
posterior of each row (softmax over the components, or the one-hot arg-max for hard EM),
its log-sum-exp, and the block's column sums of the responsibilities. The n×k matrix
``lp`` never reaches memory: the kernel reads X once and writes the responsibilities once,
where the library path (a GEMM, then a posterior pass) writes ``lp``, reads it back and
rewrites it.

The product's precision is Triton's ``input_precision``: ``"ieee"`` (float32 FMA),
``"tf32"`` (TensorFloat-32 tensor cores) or ``"tf32x3"`` (each float32 operand split into
a TF32 high part and a TF32 remainder, three tensor-core products summed; float32-level
accuracy, the "3xTF32" scheme of NVIDIA's CUTLASS). ``benchmarks/bench_gpu_em.py`` measures
each against a float64 reference.

This module imports Triton (not torch) at module level;
:class:`~sphereml.mixture._device_em.DeviceRunner` imports it only when it uses the
kernel. With ``TRITON_INTERPRET=1`` set before the import the kernel runs on CPU tensors
through Triton's interpreter, which is how the test suite checks it on machines without
a GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import triton
import triton.language as tl

if TYPE_CHECKING:
    import torch

#: Widest component count (padded to a power of two) the kernel holds in registers.
MAX_COMPONENTS = 256


class KernelConfig(NamedTuple):
    """Launch parameters: rows per program, feature chunk, warps, pipeline stages."""

    block_n: int = 128
    block_d: int = 32
    num_warps: int = 8
    num_stages: int = 3


#: Launch parameters per ``input_precision``, chosen by the configuration sweep of
#: ``benchmarks/bench_gpu_em.py`` (docs/decisions.rst, "GPU kernels").
DEFAULT_CONFIGS: dict[str, KernelConfig] = {
    "tf32x3": KernelConfig(128, 64, 8, 3),
    "tf32": KernelConfig(128, 32, 4, 3),
    "ieee": KernelConfig(64, 64, 4, 3),
}


@triton.jit
def _e_step_kernel(
    X,
    coefficients,
    bias,
    sample_weight,
    resp,
    log_norm,
    partial_counts,
    n,
    k,
    stride_x,
    stride_c,
    D: tl.constexpr,
    HAS_WEIGHTS: tl.constexpr,
    HARD: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    comps = tl.arange(0, BLOCK_K)
    row_ok = rows < n
    comp_ok = comps < k
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for start in range(0, D, BLOCK_D):
        cols = start + tl.arange(0, BLOCK_D)
        col_ok = cols < D
        x = tl.load(
            X + rows[:, None].to(tl.int64) * stride_x + cols[None, :],
            mask=row_ok[:, None] & col_ok[None, :],
            other=0.0,
        )
        c = tl.load(
            coefficients + comps[None, :] * stride_c + cols[:, None],
            mask=comp_ok[None, :] & col_ok[:, None],
            other=0.0,
        )
        acc = tl.dot(x, c, acc, input_precision=PRECISION)
    b = tl.load(bias + comps, mask=comp_ok, other=float("-inf"))
    lp = acc + b[None, :]
    top = tl.max(lp, axis=1)
    if HARD:
        label = tl.argmax(lp, axis=1)
        r = tl.where(comps[None, :] == label[:, None], 1.0, 0.0)
        lse = top
    else:
        p = tl.exp(lp - top[:, None])
        total = tl.sum(p, axis=1)
        r = p / total[:, None]
        lse = top + tl.log(total)
    if HAS_WEIGHTS:
        w = tl.load(sample_weight + rows, mask=row_ok, other=0.0)
        r = r * w[:, None]
    r = tl.where(row_ok[:, None] & comp_ok[None, :], r, 0.0)
    tl.store(
        resp + rows[:, None].to(tl.int64) * k + comps[None, :],
        r,
        mask=row_ok[:, None] & comp_ok[None, :],
    )
    tl.store(log_norm + rows, lse, mask=row_ok)
    tl.store(partial_counts + pid * BLOCK_K + comps, tl.sum(r, axis=0))


def fused_e_step(
    X: torch.Tensor,
    coefficients: torch.Tensor,
    bias: torch.Tensor,
    sample_weight: torch.Tensor | None = None,
    *,
    hard: bool = False,
    precision: str = "ieee",
    config: KernelConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Responsibilities, row log-sum-exps and counts of ``lp = X coefficientsᵀ + bias``.

    Parameters
    ----------
    X : tensor of shape (n, d), float32, rows contiguous
    coefficients : tensor of shape (k, d), float32 (``κ_k μ_k``)
    bias : tensor of shape (k,), float32 (``log π_k + log C_d(κ_k)``, shifted)
    sample_weight : tensor of shape (n,), float32, or None for unit weights
    hard : bool
        One-hot arg-max responsibilities and the row maximum instead of the softmax and
        the log-sum-exp.
    precision : {"ieee", "tf32", "tf32x3"}
        Triton's ``input_precision`` of the product.
    config : KernelConfig, optional

    Returns
    -------
    resp : tensor of shape (n, k)
        ``softmax(lp)`` (or one-hot), times the sample weights.
    log_norm : tensor of shape (n,)
        ``logsumexp(lp)`` of each row (the maximum for ``hard``).
    counts : tensor of shape (k,)
        Column sums of ``resp``.
    """
    import torch

    config = config or DEFAULT_CONFIGS.get(precision, KernelConfig())
    n, d = X.shape
    k = coefficients.shape[0]
    block_k = max(16, triton.next_power_of_2(k))
    if block_k > MAX_COMPONENTS:
        raise ValueError(f"fused_e_step holds at most {MAX_COMPONENTS} components, got {k}")
    if X.stride(1) != 1 or coefficients.stride(1) != 1:
        raise ValueError("fused_e_step needs rows with unit stride")
    resp = torch.empty((n, k), dtype=torch.float32, device=X.device)
    log_norm = torch.empty(n, dtype=torch.float32, device=X.device)
    programs = triton.cdiv(n, config.block_n)
    partial = torch.empty((programs, block_k), dtype=torch.float32, device=X.device)
    weights: Any = sample_weight if sample_weight is not None else log_norm  # unused pointer
    _e_step_kernel[(programs,)](
        X,
        coefficients,
        bias,
        weights,
        resp,
        log_norm,
        partial,
        n,
        k,
        X.stride(0),
        coefficients.stride(0),
        D=d,  # a compile-time constant: one kernel per feature count, static loop bounds
        HAS_WEIGHTS=sample_weight is not None,
        HARD=hard,
        PRECISION=precision,
        BLOCK_N=config.block_n,
        BLOCK_K=block_k,
        BLOCK_D=config.block_d,
        num_warps=config.num_warps,
        num_stages=config.num_stages,
    )
    return resp, log_norm, partial.sum(dim=0)[:k]


@triton.jit
def _resultants_kernel(
    resp, X, partial, n, k, rows_per_split, D: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    split = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    comps = tl.arange(0, BLOCK_K)
    col_ok = cols < D
    comp_ok = comps < k
    acc = tl.zeros((BLOCK_K, BLOCK_D), dtype=tl.float32)
    first = split * rows_per_split
    for start in range(first, first + rows_per_split, BLOCK_N):
        rows = start + tl.arange(0, BLOCK_N)
        row_ok = (rows < n) & (rows < first + rows_per_split)
        r = tl.load(
            resp + rows[:, None].to(tl.int64) * k + comps[None, :],
            mask=row_ok[:, None] & comp_ok[None, :],
            other=0.0,
        )
        x = tl.load(
            X + rows[:, None].to(tl.int64) * D + cols[None, :],
            mask=row_ok[:, None] & col_ok[None, :],
            other=0.0,
        )
        acc = tl.dot(tl.trans(r), x, acc, input_precision=PRECISION)
    out = partial + split.to(tl.int64) * k * D + comps[:, None] * D + cols[None, :]
    tl.store(out, acc, mask=comp_ok[:, None] & col_ok[None, :])


class GemmConfig(NamedTuple):
    """Launch parameters of the resultants product: rows per step, feature tile, warps,
    pipeline stages, row splits (programs along n)."""

    block_n: int = 64
    block_d: int = 128
    num_warps: int = 8
    num_stages: int = 3
    splits: int = 132


#: Launch parameters of :func:`resultants` per ``input_precision`` (the sweep of
#: ``benchmarks/bench_gpu_em.py``).
DEFAULT_GEMM_CONFIGS: dict[str, GemmConfig] = {}


def resultants(
    resp: torch.Tensor,
    X: torch.Tensor,
    *,
    precision: str = "tf32x3",
    config: GemmConfig | None = None,
) -> torch.Tensor:
    """``respᵀ X`` (the components' resultant vectors) as a split-n Triton product.

    Parameters
    ----------
    resp : tensor of shape (n, k), float32, contiguous
    X : tensor of shape (n, d), float32, contiguous
    precision : {"ieee", "tf32", "tf32x3"}
    config : GemmConfig, optional

    Returns
    -------
    tensor of shape (k, d), float32: the per-split partial products, summed by torch.
    """
    import torch

    config = config or DEFAULT_GEMM_CONFIGS.get(precision, GemmConfig())
    n, d = X.shape
    k = resp.shape[1]
    block_k = max(16, triton.next_power_of_2(k))
    if block_k > MAX_COMPONENTS:
        raise ValueError(f"resultants holds at most {MAX_COMPONENTS} components, got {k}")
    if not (resp.is_contiguous() and X.is_contiguous()):
        raise ValueError("resultants needs contiguous rows")
    splits = max(1, min(config.splits, triton.cdiv(n, config.block_n)))
    rows_per_split = triton.cdiv(triton.cdiv(n, splits), config.block_n) * config.block_n
    splits = triton.cdiv(n, rows_per_split)
    partial = torch.empty((splits, k, d), dtype=torch.float32, device=X.device)
    grid = (splits, triton.cdiv(d, config.block_d))
    _resultants_kernel[grid](
        resp,
        X,
        partial,
        n,
        k,
        rows_per_split,
        D=d,
        PRECISION=precision,
        BLOCK_N=config.block_n,
        BLOCK_K=block_k,
        BLOCK_D=config.block_d,
        num_warps=config.num_warps,
        num_stages=config.num_stages,
    )
    return partial.sum(dim=0)


__all__ = [
    "DEFAULT_CONFIGS",
    "DEFAULT_GEMM_CONFIGS",
    "MAX_COMPONENTS",
    "GemmConfig",
    "KernelConfig",
    "fused_e_step",
    "resultants",
]
