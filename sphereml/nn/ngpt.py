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

import torch
import torch.nn.functional as F
from torch import nn

from .constraints import constrain_unit_norm, renormalize_, unit_norm
from .layers import NormalizedResidual, NormalizedSwiGLU, ScaledVector


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021) for (batch, heads, length, d_k) tensors."""

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
        cos, sin = self.cos[:length].to(x.dtype), self.sin[:length].to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
        return rotated.flatten(-2)


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, length, d = x.shape
    return x.view(b, length, n_heads, d // n_heads).transpose(1, 2)


def _key_padding(mask: torch.Tensor) -> torch.Tensor:
    """(batch, length) True-at-token mask → SDPA boolean mask (batch, 1, 1, length)."""
    return mask[:, None, None, :]


class NormalizedAttention(nn.Module):
    """Non-causal attention with unit q, k per head scaled by s_qk; softmax scale √d_k."""

    def __init__(self, dim: int, n_heads: int, max_length: int) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"d_model={dim} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.W_q = nn.Linear(dim, dim, bias=False)
        self.W_k = nn.Linear(dim, dim, bias=False)
        self.W_v = nn.Linear(dim, dim, bias=False)
        self.W_o = nn.Linear(dim, dim, bias=False)
        for W in (self.W_q, self.W_k, self.W_v):
            constrain_unit_norm(W.weight, dim=1)
        constrain_unit_norm(self.W_o.weight, dim=0)
        self.s_qk = ScaledVector(dim, init=1.0, scale=1.0 / math.sqrt(dim))
        self.rotary = Rotary(self.head_dim, max_length)
        renormalize_(self)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q = self.rotary(_heads(self.W_q(h), self.n_heads))
        k = self.rotary(_heads(self.W_k(h), self.n_heads))
        v = _heads(self.W_v(h), self.n_heads)
        s_qk = self.s_qk().view(self.n_heads, 1, self.head_dim).to(q.dtype)
        q, k = unit_norm(q) * s_qk, unit_norm(k) * s_qk
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=_key_padding(mask), scale=math.sqrt(self.head_dim)
        )
        return self.W_o(out.transpose(1, 2).flatten(2))


class NGPTBlock(nn.Module):
    """h ← Norm(h + α_A(Norm(Attn(h)) − h)); h ← Norm(h + α_M(Norm(MLP(h)) − h))."""

    def __init__(self, dim: int, n_heads: int, mlp_hidden: int, max_length: int) -> None:
        super().__init__()
        self.attention = NormalizedResidual(NormalizedAttention(dim, n_heads, max_length), dim)
        self.mlp = NormalizedResidual(NormalizedSwiGLU(dim, mlp_hidden), dim)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attention(h, mask))


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens (every row has at least its CLS token)."""
    weights = mask.to(h.dtype)[..., None]
    return (h * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class _TextEncoderBase(nn.Module):
    """Token embedding ``E``, a stack of ``block`` layers, pooling, autocast and the
    estimator-facing interface (``forward``, ``embed``, ``embedding_dim``)."""

    def __init__(
        self,
        block: type[nn.Module],
        vocab_size: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        mlp_ratio: float,
        max_length: int,
        pooling: str,
        autocast: bool,
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.pooling = pooling
        self.autocast = autocast
        mlp_hidden = round(mlp_ratio * d_model)
        self.E = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(
            block(d_model, n_heads, mlp_hidden, max_length) for _ in range(n_layers)
        )
        self.embedding_dim = d_model

    def _autocast(self, ids: torch.Tensor):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast and ids.is_cuda)

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

    def __init__(
        self,
        vocab_size: int,
        n_classes: int,
        d_model: int = 128,
        n_layers: int = 2,
        n_heads: int = 4,
        mlp_ratio: float = 4.0,
        max_length: int = 256,
        pooling: str = "mean",
        logit_scale_init: float = 10.0,
        autocast: bool = True,
    ) -> None:
        super().__init__(
            NGPTBlock,
            vocab_size,
            d_model,
            n_layers,
            n_heads,
            mlp_ratio,
            max_length,
            pooling,
            autocast,
        )
        constrain_unit_norm(self.E.weight, dim=1)
        self.W_z = nn.Linear(d_model, n_classes, bias=False)
        constrain_unit_norm(self.W_z.weight, dim=1)
        self.s_z = ScaledVector(n_classes, init=logit_scale_init, scale=1.0 / math.sqrt(d_model))
        renormalize_(self)

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


class Attention(nn.Module):
    """Standard multi-head attention with rotary positions, softmax scale 1/√d_k."""

    def __init__(self, dim: int, n_heads: int, max_length: int) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"d_model={dim} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.W_q = nn.Linear(dim, dim, bias=False)
        self.W_k = nn.Linear(dim, dim, bias=False)
        self.W_v = nn.Linear(dim, dim, bias=False)
        self.W_o = nn.Linear(dim, dim, bias=False)
        self.rotary = Rotary(dim // n_heads, max_length)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q = self.rotary(_heads(self.W_q(h), self.n_heads))
        k = self.rotary(_heads(self.W_k(h), self.n_heads))
        v = _heads(self.W_v(h), self.n_heads)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=_key_padding(mask))
        return self.W_o(out.transpose(1, 2).flatten(2))


class PreLNBlock(nn.Module):
    """``x ← x + Attn(LN(x)); x ← x + MLP(LN(x))``."""

    def __init__(self, dim: int, n_heads: int, mlp_hidden: int, max_length: int) -> None:
        super().__init__()
        self.ln_attention = nn.LayerNorm(dim)
        self.attention = Attention(dim, n_heads, max_length)
        self.ln_mlp = nn.LayerNorm(dim)
        self.mlp = SwiGLU(dim, mlp_hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln_attention(x), mask)
        return x + self.mlp(self.ln_mlp(x))


class PreLNTransformer(_TextEncoderBase):
    """The baseline: same width, depth, heads, positions and MLP as :class:`NGPTEncoder`."""

    def __init__(
        self,
        vocab_size: int,
        n_classes: int,
        d_model: int = 128,
        n_layers: int = 2,
        n_heads: int = 4,
        mlp_ratio: float = 4.0,
        max_length: int = 256,
        pooling: str = "mean",
        autocast: bool = True,
    ) -> None:
        super().__init__(
            PreLNBlock,
            vocab_size,
            d_model,
            n_layers,
            n_heads,
            mlp_ratio,
            max_length,
            pooling,
            autocast,
        )
        self.ln_final = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)
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
