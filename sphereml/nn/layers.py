"""Normalised building blocks shared by the spherical models (nGPT, Loshchilov et al. 2024).

Names follow the paper: ``alpha`` (α, eigen learning rates of the residual updates),
``s_u``/``s_v`` (SwiGLU scalings), ``kappa`` (κ, the vMF concentration of the cosine
head, nGPT's ``s_z``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._sphere._ops import NORM_EPS, unit_norm
from .._sphere.vmf import estimate_kappa
from ..riemannian.manifold import constrain_unit_norm


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None):
    """``F.linear``, and for a stack of networks (a weight of shape (members, out, in),
    inputs (members, batch, in)) each member's weight applied to its own inputs."""
    if weight.ndim == 2:
        return F.linear(x, weight, bias)
    if bias is None:
        return x @ weight.mT
    return torch.baddbmm(bias.unsqueeze(-2), x, weight.mT)


class Linear(nn.Linear):
    """``nn.Linear`` whose forward is :func:`linear`: it also maps a stack of networks,
    whose parameters carry a leading member axis (:mod:`sphereml.training.lockstep`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


class ScaledVector(nn.Module):
    """A learnable vector with nGPT's "scale trick".

    The parameter is stored at ``scale`` and multiplied by ``init / scale`` on use, so
    that its effective value starts at ``init`` while Adam (whose steps have a fixed size
    in parameter units) moves it ``init / scale`` times faster or slower than a parameter
    stored at its natural value.
    """

    def __init__(self, size: int, init: float, scale: float) -> None:
        super().__init__()
        self.init = float(init)
        self.scale = float(scale)
        self.param = nn.Parameter(torch.full((size,), self.scale))

    def forward(self) -> torch.Tensor:
        factor = self.init / self.scale
        return self.param if factor == 1.0 else self.param * factor


class NormalizedSwiGLU(nn.Module):
    """nGPT's MLP: ``W_o (u ⊙ silu(v))`` with ``u = s_u ⊙ W_u h``, ``v = s_v ⊙ W_v h · √d``.

    Rows of ``W_u`` and ``W_v`` (input side) and columns of ``W_o`` (output side) are
    unit vectors of the model space, so every matrix–vector product is a cosine.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.W_u = Linear(dim, hidden, bias=False)
        self.W_v = Linear(dim, hidden, bias=False)
        self.W_o = Linear(hidden, dim, bias=False)
        constrain_unit_norm(self.W_u, "weight", dim=1)
        constrain_unit_norm(self.W_v, "weight", dim=1)
        constrain_unit_norm(self.W_o, "weight", dim=0)
        self.s_u = ScaledVector(hidden, init=1.0, scale=1.0)
        self.s_v = ScaledVector(hidden, init=1.0, scale=1.0)
        self.sqrt_dim = math.sqrt(dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # s ⊙ (W h) = (diag(s) W) h: the scalings go into the rows of the (hidden × dim)
        # matrices instead of over the (tokens × hidden) activations, which saves two
        # elementwise passes forward, their backward and the reductions for ∂s over tokens
        u = linear(h, self.W_u.weight * self.s_u()[..., None])
        v = linear(h, self.W_v.weight * (self.s_v() * self.sqrt_dim)[..., None])
        return self.W_o(u * F.silu(v))


class NormalizedResidual(nn.Module):
    """The nGPT update ``h ← Norm(h + α ⊙ (Norm(f(h)) − h))``.

    A step of size α along the chord from ``h`` towards the block's suggestion on the
    sphere; α is a learnable per-dimension vector (``alpha_init`` = 0.05, stored at scale
    1/√d as in the reference implementation).
    """

    def __init__(self, block: nn.Module, dim: int, alpha_init: float = 0.05) -> None:
        super().__init__()
        self.block = block
        self.alpha = ScaledVector(dim, init=alpha_init, scale=1.0 / math.sqrt(dim))

    def forward(self, h: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        out = self.block(h, *args, **kwargs)
        if _fused_residual_applies(h, out):
            from ._fused_residual import fused_residual_update

            return fused_residual_update(h, out, self.alpha(), NORM_EPS)
        suggestion = unit_norm(out)
        alpha = self.alpha()
        if alpha.ndim > 1:  # a stack of networks: (members, dim) against (members, …, dim)
            alpha = alpha.view(alpha.shape[0], *([1] * (h.ndim - 2)), alpha.shape[-1])
        return unit_norm(h + alpha * (suggestion - h))


#: The fused Triton residual update (``nn._fused_residual``): None uses it while a CUDA
#: graph is being captured (Triton importable, not under ``torch.compile``, which fuses
#: the eager form itself); True forces it (the CPU tests, through Triton's interpreter),
#: False turns it off. Eagerly the step is launch-bound and Triton's launches cost more
#: host time than the six small kernels they replace, while in a graph replay the kernel
#: time is what counts (docs/decisions.rst, "GPU kernels").
FUSED_RESIDUAL: bool | None = None

#: The fused Triton query/key normalisation (``nn._fused_scaled_norm``), same rule.
FUSED_QK_NORM: bool | None = None


def _fused_kernel_applies(setting: bool | None, x: torch.Tensor, widest: int) -> bool:
    """Whether a fused Triton kernel replaces the eager form (see :data:`FUSED_RESIDUAL`)."""
    if setting is not None:
        return setting
    if not x.is_cuda or x.shape[-1] > widest:
        return False
    if torch.compiler.is_compiling() or not torch.cuda.is_current_stream_capturing():
        return False
    return _triton_available()


def _fused_residual_applies(h: torch.Tensor, out: torch.Tensor) -> bool:
    if FUSED_RESIDUAL is None and h.shape != out.shape:
        return False
    return _fused_kernel_applies(FUSED_RESIDUAL, h, 4096)


def _fused_qk_norm_applies(q: torch.Tensor) -> bool:
    return q.ndim == 4 and _fused_kernel_applies(FUSED_QK_NORM, q, 1024)


def _triton_available() -> bool:
    global _TRITON
    if _TRITON is None:
        try:
            import triton  # noqa: F401

            _TRITON = True
        except ImportError:
            _TRITON = False
    return _TRITON


_TRITON: bool | None = None


class NormalizedProjection(nn.Module):
    """``h ↦ Norm(W h)`` with unit rows: moves a unit vector to a sphere of another width."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.W = Linear(dim_in, dim_out, bias=False)
        constrain_unit_norm(self.W, "weight", dim=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return unit_norm(self.W(h))


class CosineHead(nn.Module):
    """Cosine-softmax head: ``logit_c = κ · μ_cᵀ z + b_c`` with unit prototypes μ_c.

    With ``z`` on the sphere this is the posterior of a mixture of vMF distributions with
    a shared concentration κ and class log-priors b_c (NormFace, Wang et al. 2017). κ is
    either fixed or learned as ``exp(log_kappa)``, which keeps it positive and makes
    Adam's steps relative.

    Margins (applied to the target logit during training only):
    ``"cosface"`` replaces cos θ_y by cos θ_y − m (Wang et al. 2018); ``"arcface"`` by
    cos(θ_y + m) (Deng et al. 2019), falling back to cos θ_y − m·sin m where θ_y + m > π
    keeps the target logit monotone in θ_y.
    """

    def __init__(
        self,
        dim: int,
        n_classes: int,
        kappa_init: float = 10.0,
        learn_kappa: bool = True,
        bias: bool = True,
        margin: str = "none",
        margin_value: float = 0.0,
    ) -> None:
        super().__init__()
        if margin not in ("none", "cosface", "arcface"):
            raise ValueError(f"margin must be 'none', 'cosface' or 'arcface', got {margin!r}")
        self.prototypes = nn.Parameter(torch.randn(n_classes, dim))
        constrain_unit_norm(self, "prototypes", dim=1)
        log_kappa = torch.tensor(math.log(kappa_init))
        if learn_kappa:
            self.log_kappa = nn.Parameter(log_kappa)
        else:
            self.register_buffer("log_kappa", log_kappa)
        self.bias = nn.Parameter(torch.zeros(n_classes)) if bias else None
        self.margin = margin
        self.margin_value = float(margin_value)

    @torch.no_grad()
    def init_vmf_(
        self, z: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, max_kappa: float = 1e3
    ) -> None:
        """Set the head to the maximum-likelihood vMF fit of labelled unit vectors.

        Prototypes become the class mean directions, biases the log class shares and (if
        κ is learned) κ the tied-concentration MLE, solving A_d(κ) = Σ_c ‖Σ_{i∈c} w_i z_i‖
        / Σ_i w_i (capped at ``max_kappa`` for separable data, where it is infinite).
        Discriminative training then starts from the generative solution.
        """
        n_classes, dim = self.prototypes.shape
        z, weight = z.double(), weight.double()
        sums = torch.zeros(n_classes, dim, dtype=torch.float64, device=z.device)
        sums.index_add_(0, y, z * weight[:, None])
        shares = torch.zeros(n_classes, dtype=torch.float64, device=z.device)
        shares.index_add_(0, y, weight)
        self.init_vmf_from_sums_(sums, shares, max_kappa)

    @torch.no_grad()
    def init_vmf_from_sums_(
        self, sums: torch.Tensor, shares: torch.Tensor, max_kappa: float = 1e3
    ) -> None:
        """:meth:`init_vmf_` from the per-class weighted sums of the unit vectors
        (n_classes, dim) and the per-class total weights (n_classes,)."""
        dim = self.prototypes.shape[1]
        sums, shares = sums.double(), shares.double()
        lengths = torch.linalg.vector_norm(sums, dim=1)
        usable = lengths > 0  # a class whose vectors cancel keeps its random prototype
        self.prototypes[usable] = (sums[usable] / lengths[usable, None]).to(self.prototypes)
        if self.bias is not None:
            # a class with no weight gets a large negative, finite log-prior
            self.bias.copy_(torch.log((shares / shares.sum()).clamp_min(1e-12)).to(self.bias))
        if isinstance(self.log_kappa, nn.Parameter):
            rbar = float(lengths.sum() / shares.sum())
            kappa = float(estimate_kappa(min(rbar, 1 - 1e-9), dim)) if dim > 1 else max_kappa
            self.log_kappa.fill_(math.log(min(max(kappa, 1e-3), max_kappa)))

    @property
    def kappa(self) -> torch.Tensor:
        return self.log_kappa.exp()

    def cosines(self, z: torch.Tensor) -> torch.Tensor:
        """(batch, n_classes) cosines between unit ``z`` and the prototypes."""
        return z @ self.prototypes.mT

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # κ, b: (), (classes,) or, in a stack of networks, (members,), (members, classes)
        logits = self.kappa[..., None, None] * self.cosines(z)
        return logits if self.bias is None else logits + self.bias.unsqueeze(-2)

    def margin_logits(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Logits with the target class's cosine penalised by the margin."""
        if self.margin == "none" or self.margin_value == 0.0:
            return logits
        kappa = self.kappa
        offset = 0.0 if self.bias is None else self.bias
        cos = ((logits - offset) / kappa).gather(1, y[:, None]).clamp(-1.0, 1.0)
        m = self.margin_value
        if self.margin == "cosface":
            penalised = cos - m
        else:
            sin = (1.0 - cos * cos).clamp_min(1e-7).sqrt()
            shifted = cos * math.cos(m) - sin * math.sin(m)
            penalised = torch.where(cos > math.cos(math.pi - m), shifted, cos - m * math.sin(m))
        target = kappa * penalised + (0.0 if self.bias is None else self.bias[y][:, None])
        return logits.scatter(1, y[:, None], target)
