"""The network behind :class:`sphereml.SphericalClassifier`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .._sphere._ops import unit_norm
from .ensemble import DeepEnsemble
from .layers import (
    CosineHead,
    Linear,
    NormalizedProjection,
    NormalizedResidual,
    NormalizedSwiGLU,
)


@dataclass(frozen=True)
class SphericalNetConfig:
    """Shape of a :class:`SphericalNet`.

    Parameters
    ----------
    n_features, n_classes : int
    hidden_dims : tuple of int
        Widths of the normalised layers; empty for a linear cosine classifier.
    mlp_ratio : float
        SwiGLU hidden width as a multiple of the block width.
    kappa_init, learn_kappa, fit_intercept, margin, margin_value
        The cosine head (:class:`~sphereml.nn.layers.CosineHead`; ``fit_intercept`` is
        its ``bias``).
    """

    n_features: int
    n_classes: int
    hidden_dims: tuple[int, ...] = ()
    mlp_ratio: float = 2.0
    kappa_init: float = 10.0
    learn_kappa: bool = True
    fit_intercept: bool = True
    margin: str = "none"
    margin_value: float = 0.0


class SphericalNet(nn.Module):
    """Map inputs to the unit sphere, then classify by cosine to unit class prototypes.

    ``hidden_dims=()``: ``z = Norm(x)``, a linear cosine-softmax classifier on the
    directions of the inputs (for embeddings and other data whose direction is the
    signal). ``hidden_dims=(w_1, …, w_L)``: an affine input projection
    ``z = Norm(A x + b)`` to width w_1, then per entry one nGPT residual block
    ``z ← Norm(z + α ⊙ (Norm(SwiGLU(z)) − z))`` at width w_ℓ, with a normalised projection
    between consecutive widths that differ.

    Parameters
    ----------
    config : SphericalNetConfig
    """

    def __init__(self, config: SphericalNetConfig) -> None:
        super().__init__()
        self.config = config
        hidden_dims = tuple(int(w) for w in config.hidden_dims)
        n_features = config.n_features
        self.input_projection = Linear(n_features, hidden_dims[0]) if hidden_dims else None
        layers: list[nn.Module] = []
        width = hidden_dims[0] if hidden_dims else n_features
        for w in hidden_dims:
            if w != width:
                layers.append(NormalizedProjection(width, w))
                width = w
            hidden = max(1, round(config.mlp_ratio * w))
            layers.append(NormalizedResidual(NormalizedSwiGLU(w, hidden), w))
        self.blocks = nn.ModuleList(layers)
        self.embedding_dim = width
        self.head = CosineHead(
            width,
            config.n_classes,
            config.kappa_init,
            config.learn_kappa,
            config.fit_intercept,
            config.margin,
            config.margin_value,
        )

    #: a training step draws no random numbers: it can be mapped over stacked copies of
    #: this module (:func:`torch.func.vmap`)
    trains_under_vmap = True

    @property
    def broadcasts_over_members(self) -> bool:
        """Whether a copy of this module whose parameters are stacked along a new leading
        axis maps stacked inputs (members, batch, features) in one pass: it does
        without a margin, whose target-logit lookup is per batch."""
        return self.config.margin == "none" or self.config.margin_value == 0.0

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, embedding_dim) unit vectors: the representation the head classifies."""
        z = unit_norm(x if self.input_projection is None else self.input_projection(x))
        for block in self.blocks:
            z = block(z)
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def per_sample_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy per sample; the margin applies in training mode only."""
        if self.training:
            logits = self.head.margin_logits(logits, y)
        return F.cross_entropy(logits, y, reduction="none")


class SphericalNetEnsemble(DeepEnsemble):
    """``n_members`` :class:`SphericalNet`\\ s whose class probabilities are averaged.

    A :class:`~sphereml.nn.ensemble.DeepEnsemble` (training and evaluation outputs as
    there) fitted by :class:`sphereml.SphericalClassifier` with ``n_estimators_ > 1``.
    ``embed`` concatenates the members' unit embeddings and divides by √n_members: a
    unit vector whose dot product with another is the members' mean cosine.

    Parameters
    ----------
    config : SphericalNetConfig
        The shape of every member.
    n_members : int
    members : sequence of SphericalNet, optional
        Fitted members to hold instead of new ones.
    """

    def __init__(
        self,
        config: SphericalNetConfig,
        n_members: int,
        members: Sequence[SphericalNet] | None = None,
    ) -> None:
        super().__init__(lambda: SphericalNet(config), n_members, members)
        self.config = config

    def nets(self) -> list[SphericalNet]:
        """The members, typed."""
        return [cast(SphericalNet, member) for member in self.members]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_members · member width) unit vectors: the members' embeddings joined."""
        return super().embed(x) / math.sqrt(len(self.members))
