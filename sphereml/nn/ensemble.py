"""Deep ensembles: networks whose class probabilities are averaged."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn


class DeepEnsemble(nn.Module):
    """``n_members`` networks of one shape whose class probabilities are averaged.

    A deep ensemble (Lakshminarayanan et al. 2017). The estimators fit the members one by
    one and load them here; trained as one module (a warm start), the members see the
    same mini-batches and each gets the gradient of its own loss (the ensemble's loss is
    their mean). In training mode ``forward`` returns the members' logits, shape (batch,
    n_members, n_classes), with the mean of their penalties when a member's training
    forward returns ``(logits, penalty)``; in evaluation mode the log of the averaged
    probabilities, shape (batch, n_classes), whose softmax is that average.

    ``embed`` joins the members' embeddings, shape (batch, n_members · member width).

    Parameters
    ----------
    make_member : callable
        Builds one member (called ``n_members`` times).
    n_members : int
    members : sequence of nn.Module, optional
        ``n_members`` networks built already (fitted ones), held instead of new ones.
    """

    def __init__(
        self,
        make_member: Callable[[], nn.Module],
        n_members: int,
        members: Sequence[nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if n_members < 1:
            raise ValueError(f"n_members must be at least 1, got {n_members}")
        if members is not None and len(members) != n_members:
            raise ValueError(f"expected {n_members} members, got {len(members)}")
        built = members if members is not None else [make_member() for _ in range(n_members)]
        self.members = nn.ModuleList(built)
        self.embedding_dim = n_members * int(cast(Any, self.members[0]).embedding_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_members · member width): the members' embeddings joined."""
        return torch.cat([cast(Any, member).embed(x) for member in self.members], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        outputs = [member(x) for member in self.members]
        if self.training and isinstance(outputs[0], tuple):  # (logits, penalty) each
            logits = torch.stack([out[0] for out in outputs], dim=1)
            return logits, torch.stack([out[1] for out in outputs]).mean()
        logits = torch.stack(outputs, dim=1)
        if self.training:
            return logits
        log_proba = F.log_softmax(logits, dim=2)
        return torch.logsumexp(log_proba, dim=1) - math.log(len(self.members))

    def per_sample_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Training: the members' mean loss (each member's own, e.g. with its margin);
        evaluation: the ensemble's cross-entropy, −log of the averaged probability of
        the true class."""
        if logits.dim() == 2:
            return F.cross_entropy(logits, y, reduction="none")
        losses = []
        for j, member in enumerate(self.members):
            own_loss = getattr(member, "per_sample_loss", None)
            member_logits = logits[:, j]
            losses.append(
                own_loss(member_logits, y)
                if own_loss is not None
                else F.cross_entropy(member_logits, y, reduction="none")
            )
        return torch.stack(losses, dim=1).mean(dim=1)
