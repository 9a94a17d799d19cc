"""The fitted-model check of the neural estimators: a fit whose training loss exploded
raises, one no better than predicting the class shares warns."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import log_softmax
from sklearn.exceptions import ConvergenceWarning

from ..training.callbacks import cloned_state
from ..training.net import unwrap_parallel

__all__ = ["FittedModelCheckMixin"]


class FittedModelCheckMixin:
    """``_check_learned`` and its helpers (the host provides ``_apply_module``,
    ``_learning_rate``, ``classes_``, ``n_iter_`` and ``net_``)."""

    if TYPE_CHECKING:
        classes_: np.ndarray
        n_iter_: int
        net_: Any

        def _apply_module(self, inputs: dict, method: str) -> np.ndarray: ...
        def _learning_rate(self) -> float: ...

    def _check_sample(self, y: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (up to) 512 training rows the fitted-model check scores, and their weights."""
        take = np.linspace(0, len(y) - 1, min(len(y), 512)).astype(int)
        w = weight[take] if weight[take].sum() > 0 else np.ones(len(take))
        return take, w

    def _sampled_loss(self, inputs: dict, y: np.ndarray, weight: np.ndarray) -> float:
        """The model's weighted cross-entropy (evaluation mode) on the check's rows."""
        take, w = self._check_sample(y, weight)
        subset = {k: v[take] if sp.issparse(v) else np.asarray(v)[take] for k, v in inputs.items()}
        logits = self._apply_module(subset, "forward")
        log_proba = log_softmax(logits, axis=1)[np.arange(len(take)), y[take]]
        return float(-(log_proba * w).sum() / w.sum())

    def _module_snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of the module's weights (those before a fit's epochs), which the check
        scores only where it needs them: a forward pass costs more than the copy."""
        return cloned_state(unwrap_parallel(self.net_.module_))

    def _snapshot_loss(
        self, snapshot: dict, inputs: dict, y: np.ndarray, weight: np.ndarray
    ) -> float:
        """:meth:`_sampled_loss` of the weights in ``snapshot``; the module keeps its own."""
        module = unwrap_parallel(self.net_.module_)
        own = self._module_snapshot()
        module.load_state_dict(snapshot)
        try:
            return self._sampled_loss(inputs, y, weight)
        finally:
            module.load_state_dict(own)

    def _divergence_advice(self) -> str:
        """What the error of a diverged fit suggests."""
        return f"lower lr (now {self._learning_rate()})"

    def _check_learned(
        self, inputs: dict, y: np.ndarray, weight: np.ndarray, start: dict[str, torch.Tensor]
    ) -> None:
        """Catch a model whose loss exploded, and warn about one no better than a constant.

        The fitted model's cross-entropy is measured on up to 512 training samples spread
        over the training set (in evaluation mode: no margin, no penalty) and compared,
        on the same samples, with the loss of predicting the (weighted) class shares of
        the whole training set. Beyond 3× that (+1), and beyond 1.5× the loss of the same
        samples before these epochs (+1; the weights in ``start``, scored only then), the
        steps overshot: a FloatingPointError. A network that is merely untrained (one
        epoch, a tiny lr) can sit above 3× too, from its random start, but not above where
        its training began. No lower than the class shares' loss, the model predicts
        nothing they do not: a ConvergenceWarning (noise labels can do this legitimately).
        512 samples keep the check to a small part of a fit of long texts (an inference
        pass over 2,000 BBC articles costs as much as a third of a training epoch).
        """
        shares = np.bincount(y, weights=weight, minlength=len(self.classes_)) / weight.sum()
        take, w = self._check_sample(y, weight)
        fitted_loss = self._sampled_loss(inputs, y, weight)
        # the constant model's loss on the same samples (a class absent from the weighted
        # shares but present in the subset only happens with zero weights there)
        with np.errstate(divide="ignore"):
            log_shares = np.log(shares)[y[take]]
        prior_loss = float(-(np.where(w > 0, log_shares, 0.0) * w).sum() / w.sum())
        # "not <=" also catches NaN
        far_above_shares = not fitted_loss <= 3.0 * prior_loss + 1.0
        if not far_above_shares:
            if self.n_iter_ >= 5 and fitted_loss >= prior_loss - 1e-6:
                warnings.warn(
                    f"the fitted model is no better than predicting the class shares "
                    f"(training loss {fitted_loss:.4g} >= {prior_loss:.4g}) after "
                    f"{self.n_iter_} epochs; if the labels carry signal, lower lr (now "
                    f"{self._learning_rate()}) or scale the features",
                    ConvergenceWarning,
                    stacklevel=3,
                )
            return
        start_loss = self._snapshot_loss(start, inputs, y, weight)
        # a start that is itself not finite cannot be compared (the 1.5× + 1 leaves room
        # for the noise of a few steps at a tiny lr)
        if not fitted_loss <= 1.5 * start_loss + 1.0 or not np.isfinite(start_loss):
            raise FloatingPointError(
                f"training diverged: the fitted model's training loss {fitted_loss:.4g} is "
                f"far above {prior_loss:.4g}, the loss of predicting the class shares; "
                f"{self._divergence_advice()}"
            )
        warnings.warn(
            f"the fitted model is far worse than predicting the class shares (training "
            f"loss {fitted_loss:.4g} against {prior_loss:.4g}) after {self.n_iter_} "
            f"epochs, about where its training began ({start_loss:.4g}): it is "
            f"barely trained; train longer (max_epochs) "
            f"or check lr (now {self._learning_rate()})",
            ConvergenceWarning,
            stacklevel=3,
        )
