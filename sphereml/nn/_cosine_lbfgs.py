"""Full-batch L-BFGS for a cosine-softmax head on fixed unit inputs.

The linear :class:`~sphereml.SphericalClassifier` (``hidden_dims=()``) has a smooth
objective over the whole training set, which a quasi-Newton solver minimises in a few
dozen passes of two sparse products each, as LogisticRegression's ``lbfgs`` solver does.
The unit prototypes are optimised through unconstrained rows ``V`` with ``μ = V / ‖V‖``,
so L-BFGS needs no projection; the concentration is optimised as ``log κ``.

The objective, with sample weights ``w`` and ``W = Σ w``::

    (1 / W) Σ_i w_i CE(κ Z_i Mᵀ + b, y_i)  +  α K κ² / (2 W)

The penalty is the squared norm of the class weight vectors κ μ_c (each of norm κ),
divided by the sample size as MLPClassifier's ``alpha`` is; it keeps κ finite on
separable data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import minimize
from scipy.special import logsumexp

from .layers import CosineHead


@dataclass
class LBFGSResult:
    """What one solve did: the objective after each iteration, and whether it stopped on
    its tolerance (False: on ``max_iter`` or a failed line search)."""

    losses: list[float]
    converged: bool


def fit_cosine_head_lbfgs(
    head: CosineHead,
    z,
    y: np.ndarray,
    weight: np.ndarray,
    *,
    alpha: float,
    max_iter: int,
    tol: float,
) -> LBFGSResult:
    """Minimise the head's penalised weighted cross-entropy on ``z``, starting where the
    head is, and write the solution into it.

    Parameters
    ----------
    head : CosineHead
        Updated in place (prototypes, ``log_kappa`` if learned, ``bias`` if present).
    z : ndarray or CSR matrix of shape (n_samples, dim)
        Unit rows, or rows of zeros (they train the biases only).
    y : ndarray of shape (n_samples,)
        Class indices.
    weight : ndarray of shape (n_samples,)
        Non-negative sample weights.
    alpha : float
        L2 penalty on the class weight vectors κ μ_c.
    max_iter : int
        Most L-BFGS iterations.
    tol : float
        Stop when the largest gradient entry is below ``tol`` (as LogisticRegression).
    """
    n_classes, dim = head.prototypes.shape
    w = np.asarray(weight, dtype=np.float64)
    total = float(w.sum())
    if not np.isfinite(total):  # weights near the float64 limit: only their ratios count
        w = w / w.max()
        total = float(w.sum())
    z = sp.csr_matrix(z, dtype=np.float64) if sp.issparse(z) else np.asarray(z, np.float64)
    one_hot = np.zeros((len(y), n_classes))
    one_hot[np.arange(len(y)), y] = 1.0
    learn_kappa = isinstance(head.log_kappa, torch.nn.Parameter)
    with torch.no_grad():
        V0 = head.prototypes.detach().cpu().double().numpy()
        s0 = float(head.log_kappa)
        b0 = None if head.bias is None else head.bias.detach().cpu().double().numpy()
    n_v = V0.size

    def unpack(theta: np.ndarray) -> tuple[np.ndarray, float, np.ndarray | float]:
        V = theta[:n_v].reshape(n_classes, dim)
        s = float(theta[n_v]) if learn_kappa else s0
        b = theta[n_v + learn_kappa :] if b0 is not None else 0.0
        return V, s, b

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        V, s, b = unpack(theta)
        lengths = np.linalg.norm(V, axis=1)
        M = V / lengths[:, None]
        kappa = np.exp(s)
        cosines = np.asarray(z @ M.T)
        logits = kappa * cosines + b
        lse = logsumexp(logits, axis=1)
        loss = float(w @ (lse - logits[np.arange(len(y)), y]) / total)
        loss += alpha * n_classes * kappa**2 / (2.0 * total)
        G = (np.exp(logits - lse[:, None]) - one_hot) * (w / total)[:, None]
        grad_M = kappa * np.asarray(z.T @ G).T
        grad_V = (grad_M - (grad_M * M).sum(axis=1)[:, None] * M) / lengths[:, None]
        parts = [grad_V.ravel()]
        if learn_kappa:
            grad_kappa = float((G * cosines).sum()) + alpha * n_classes * kappa / total
            parts.append(np.array([grad_kappa * kappa]))
        if b0 is not None:
            parts.append(G.sum(axis=0))
        return loss, np.concatenate(parts)

    start = [V0.ravel()]
    if learn_kappa:
        start.append(np.array([s0]))
    if b0 is not None:
        start.append(b0)
    losses: list[float] = []

    def record(intermediate_result) -> None:
        losses.append(float(intermediate_result.fun))

    result = minimize(
        objective,
        np.concatenate(start),
        jac=True,
        method="L-BFGS-B",
        callback=record,
        options={"maxiter": max_iter, "gtol": tol, "ftol": 64 * np.finfo(float).eps},
    )
    if not losses:  # converged at the start
        losses.append(float(result.fun))
    V, s, b = unpack(result.x)
    with torch.no_grad():
        head.prototypes.copy_(torch.as_tensor(V / np.linalg.norm(V, axis=1)[:, None]))
        if learn_kappa:
            head.log_kappa.fill_(s)
        if head.bias is not None:
            head.bias.copy_(torch.as_tensor(b))
    return LBFGSResult(losses, bool(result.success))
