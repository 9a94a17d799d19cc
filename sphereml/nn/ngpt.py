"""The normalised Transformer encoder (nGPT, Loshchilov et al. 2024) and its pre-LN twin.

Names follow the paper: ``E`` (token embeddings), ``W_q, W_k, W_v, W_o`` (attention),
``s_qk`` (query/key scaling), ``alpha`` (α_A, α_M in :class:`NormalizedResidual`),
``s_u, s_v`` (SwiGLU, in :class:`NormalizedSwiGLU`), ``s_z`` (logit scaling). Every vector
of the model space has unit norm: embedding rows, the rows of input-side matrices, the
columns of output projections and every hidden state. Learnable scalings use the scale
trick (:class:`ScaledVector`).

:class:`PreLNTransformer` has the same width, depth, heads, rotary positions and SwiGLU
MLP, with ``x + f(LN(x))`` residuals and a final LayerNorm: the standard baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._sphere._ops import NORM_EPS, unit_norm
from ..riemannian.manifold import constrain_unit_norm
from .layers import (
    NormalizedResidual,
    NormalizedSwiGLU,
    ScaledVector,
    _fused_qk_norm_applies,
)


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021) for (batch, heads, length, d_k) tensors."""

    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(self, head_dim: int, max_length: int, base: float = 10_000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angles = torch.arange(max_length, dtype=torch.float64)[:, None] * inv_freq[None, :]
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-2]
        cos, sin = self.cos[:length], self.sin[:length]
        if x.dtype in (torch.float32, torch.float64) and _pairs_are_complex_viewable(x):
            # each pair (x₁, x₂) as x₁ + i x₂ times e^{iθ}: one elementwise kernel forward
            # and one backward, where the strided form takes six and a stack
            pairs = torch.view_as_complex(x.unflatten(-1, (-1, 2)))
            return torch.view_as_real(pairs * torch.complex(cos, sin).to(pairs.dtype)).flatten(-2)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
        return rotated.flatten(-2)


def _pairs_are_complex_viewable(x: torch.Tensor) -> bool:
    """Whether consecutive pairs of the last axis can be viewed as complex numbers."""
    return (
        x.stride(-1) == 1
        and x.storage_offset() % 2 == 0
        and all(stride % 2 == 0 for stride in x.stride()[:-1])
    )


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, length, d = x.shape
    return x.view(b, length, n_heads, d // n_heads).transpose(1, 2)


def _key_padding(mask: torch.Tensor) -> torch.Tensor:
    """(batch, length) True-at-token mask → SDPA boolean mask (batch, 1, 1, length)."""
    return mask[:, None, None, :]


@dataclass(frozen=True)
class TextEncoderConfig:
    """Shape of a text encoder (:class:`NGPTEncoder` or :class:`PreLNTransformer`).

    Parameters
    ----------
    vocab_size, n_classes : int
    d_model : int
        Width of the residual stream.
    n_layers, n_heads : int
    mlp_ratio : float
        SwiGLU hidden width as a multiple of ``d_model``.
    max_length : int
        Longest sequence (rotary tables are built for it).
    pooling : {"mean", "cls"}
    logit_scale_init : float
        Initial s_z of the nGPT cosine head (the baseline's linear head ignores it).
    autocast : bool
        bf16 autocast of the forward pass on CUDA.
    """

    vocab_size: int
    n_classes: int
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: float = 4.0
    max_length: int = 256
    pooling: str = "mean"
    logit_scale_init: float = 10.0
    autocast: bool = True

    def __post_init__(self) -> None:
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def mlp_hidden(self) -> int:
        return max(1, round(self.mlp_ratio * self.d_model))


class Attention(nn.Module):
    """Non-causal multi-head attention with rotary positions and a key-padding mask.

    The standard form: softmax scale 1/√d_k. :class:`NormalizedAttention` changes only
    how queries and keys are scaled (:meth:`scale_qk`) and the softmax scale.
    """

    #: None: SDPA's default 1/√d_k
    softmax_scale: float | None = None

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        dim = config.d_model
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.W_q = nn.Linear(dim, dim, bias=False)
        self.W_k = nn.Linear(dim, dim, bias=False)
        self.W_v = nn.Linear(dim, dim, bias=False)
        self.W_o = nn.Linear(dim, dim, bias=False)
        self.rotary = Rotary(self.head_dim, config.max_length)

    def scale_qk(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries and keys (batch, heads, length, d_k) as the scores use them."""
        return q, k

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q = self.rotary(_heads(self.W_q(h), self.n_heads))
        k = self.rotary(_heads(self.W_k(h), self.n_heads))
        v = _heads(self.W_v(h), self.n_heads)
        q, k = self.scale_qk(q, k)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=_key_padding(mask), scale=self.softmax_scale
        )
        return self.W_o(out.transpose(1, 2).flatten(2))


class NormalizedAttention(Attention):
    """nGPT attention: unit q, k per head scaled by s_qk; softmax scale √d_k.

    Rows of ``W_q, W_k, W_v`` and columns of ``W_o`` are unit vectors of the model space.
    """

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__(config)
        for W in (self.W_q, self.W_k, self.W_v):
            constrain_unit_norm(W, "weight", dim=1)
        constrain_unit_norm(self.W_o, "weight", dim=0)
        dim = config.d_model
        self.s_qk = ScaledVector(dim, init=1.0, scale=1.0 / math.sqrt(dim))
        self.softmax_scale = math.sqrt(self.head_dim)

    def scale_qk(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s_qk = self.s_qk()
        if _fused_qk_norm_applies(q):
            from ._fused_scaled_norm import fused_scaled_unit_norm

            s = s_qk.view(self.n_heads, self.head_dim)
            return fused_scaled_unit_norm(q, s, NORM_EPS), fused_scaled_unit_norm(k, s, NORM_EPS)
        s_qk = s_qk.view(self.n_heads, 1, self.head_dim).to(q.dtype)
        return unit_norm(q) * s_qk, unit_norm(k) * s_qk


class NGPTBlock(nn.Module):
    """h ← Norm(h + α_A(Norm(Attn(h)) − h)); h ← Norm(h + α_M(Norm(MLP(h)) − h))."""

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        dim = config.d_model
        self.attention = NormalizedResidual(NormalizedAttention(config), dim)
        self.mlp = NormalizedResidual(NormalizedSwiGLU(dim, config.mlp_hidden), dim)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attention(h, mask))


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens (every row has at least its CLS token)."""
    weights = mask.to(h.dtype)[..., None]
    return (h * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class _TextEncoderBase(nn.Module):
    """Token embedding ``E``, a stack of ``block`` layers, pooling, autocast and the
    estimator-facing interface (``forward``, ``embed``, ``embedding_dim``)."""

    def __init__(self, block: type[nn.Module], config: TextEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.pooling = config.pooling
        self.autocast = config.autocast
        self.E = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(block(config) for _ in range(config.n_layers))
        self.embedding_dim = config.d_model

    def _autocast(self, ids: torch.Tensor):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast and ids.is_cuda)

    def pooled(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(batch, d_model) pooled final states, the input of :meth:`logits`."""
        raise NotImplementedError

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """(batch, n_classes) logits of pooled states."""
        raise NotImplementedError

    def _pool(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return h[:, 0] if self.pooling == "cls" else masked_mean(h, mask)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with self._autocast(ids):
            return self.logits(self.pooled(ids, mask)).float()

    def embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(batch, d_model) unit vectors: the pooled representation the head classifies."""
        with self._autocast(ids):
            return unit_norm(self.pooled(ids, mask).float())


class NGPTEncoder(_TextEncoderBase):
    """nGPT encoder + cosine head ``logits = s_z ⊙ (W_z · Norm(pool(h)))``.

    ``s_z`` starts at ``logit_scale_init``: with unit vectors the cosines lie in [−1, 1],
    so ``s_z = 1`` (the paper's language-model default) caps the confidence of a
    5-class softmax at ≈ 0.4; a classifier needs s_z of order 10 from the start.
    """

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__(NGPTBlock, config)
        constrain_unit_norm(self.E, "weight", dim=1)
        self.W_z = nn.Linear(config.d_model, config.n_classes, bias=False)
        constrain_unit_norm(self.W_z, "weight", dim=1)
        self.s_z = ScaledVector(
            config.n_classes,
            init=config.logit_scale_init,
            scale=1.0 / math.sqrt(config.d_model),
        )

    def hidden_states(self, ids: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """The unit hidden state after the embedding and after every block."""
        h = self.E(ids)
        states = [h]
        for block in self.blocks:
            h = block(h, mask)
            states.append(h)
        return states

    def pooled(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return unit_norm(self._pool(self.hidden_states(ids, mask)[-1], mask))

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.W_z(z) * self.s_z().to(z.dtype)


class SwiGLU(nn.Module):
    """``W_o (W_u h ⊙ silu(W_v h))`` — the MLP of the pre-LN baseline."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.W_u = nn.Linear(dim, hidden, bias=False)
        self.W_v = nn.Linear(dim, hidden, bias=False)
        self.W_o = nn.Linear(hidden, dim, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.W_o(self.W_u(h) * F.silu(self.W_v(h)))


class PreLNBlock(nn.Module):
    """``x ← x + Attn(LN(x)); x ← x + MLP(LN(x))``."""

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        dim = config.d_model
        self.ln_attention = nn.LayerNorm(dim)
        self.attention = Attention(config)
        self.ln_mlp = nn.LayerNorm(dim)
        self.mlp = SwiGLU(dim, config.mlp_hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln_attention(x), mask)
        return x + self.mlp(self.ln_mlp(x))


class PreLNTransformer(_TextEncoderBase):
    """The baseline: same width, depth, heads, positions and MLP as :class:`NGPTEncoder`."""

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__(PreLNBlock, config)
        self.ln_final = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.n_classes)
        for p in self.parameters():
            if p.dim() == 2:  # GPT-2 style init of the embedding and every matrix
                nn.init.normal_(p, std=0.02)

    def pooled(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.E(ids)
        for block in self.blocks:
            x = block(x, mask)
        return self._pool(self.ln_final(x), mask)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(z)
