"""NDMClassifier: classification on a learned Riemannian manifold (Zhang 2025)."""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import cast

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback, GradientNormClipping

from ..nn.ndm import NDMConfig, NDMNet, NDMNetEnsemble
from ..optim import DiagonalNaturalGradient
from ..riemannian.curvature import MAX_EXACT_DIM
from ..utils._sklearn_compat import Interval, StrOptions
from ._base import TorchClassifierBase
from ._docs import fill_shared_doc, store_init_arguments


class _PullbackMetric(Callback):
    """Before each natural-gradient step, feed the optimiser one estimate of diag G(θ)."""

    def on_grad_computed(self, net, named_parameters, batch=None, **kwargs):
        optimizer = net.optimizer_
        if batch is None or not hasattr(optimizer, "update_metric"):
            return
        module = net.module_
        x = torch.as_tensor(batch[0]["x"], device=net.device)
        params = [p for p in module.parameters() if p.requires_grad]
        grads = torch.autograd.grad(module.pullback_probe(x), params, allow_unused=True)
        optimizer.update_metric(
            {p: g.pow(2) / len(x) for p, g in zip(params, grads, strict=True) if g is not None}
        )


# autograd memory of the random-probe curvature at n = 16 with 4 probe pairs: 3.2 GiB per
# 256 points, growing as ~n³ (nested JVPs through the Christoffel symbols)
_PROBE_BYTES_PER_POINT_N16 = 3.2 * 2**30 / 256


def _warn_probe_curvature_cost(config: NDMConfig) -> None:
    """Warn before a training step whose curvature penalty needs gigabytes."""
    n = config.latent_dim
    probes = config.curvature_estimator == "hutchinson" or (
        config.curvature_estimator == "auto" and n > MAX_EXACT_DIM
    )
    if config.curvature_penalty <= 0 or not probes:
        return
    per_point = _PROBE_BYTES_PER_POINT_N16 * (n / 16) ** 3 * config.n_probes / 4
    total = per_point * config.curvature_samples
    if total > 2**29:
        warnings.warn(
            f"curvature_penalty with latent_dim={n} uses the random-probe curvature "
            f"estimator: about {total / 2**30:.1f} GiB per training step "
            f"(curvature_samples={config.curvature_samples}, n_probes={config.n_probes}) "
            "and minutes per epoch on a CPU. latent_dim <= 8 uses the exact closed form, "
            "several times cheaper; or lower curvature_samples.",
            UserWarning,
            stacklevel=4,
        )


# latent_dim="auto": room for the class prototypes as a simplex (n_classes - 1
# dimensions) within the exact-curvature range up to 9 classes, 16 beyond
_AUTO_LATENT_DIM, _AUTO_LATENT_DIM_MANY_CLASSES = MAX_EXACT_DIM, 16


def _resolved_latent_dim(latent_dim: int | str, n_classes: int) -> int:
    """``latent_dim`` with ``"auto"`` resolved for ``n_classes`` classes."""
    if latent_dim != "auto":
        return int(latent_dim)
    if n_classes - 1 <= _AUTO_LATENT_DIM:
        return _AUTO_LATENT_DIM
    return _AUTO_LATENT_DIM_MANY_CLASSES


def _member_nets(module: torch.nn.Module) -> list[NDMNet]:
    """The networks of a fitted module: its members, or itself."""
    if isinstance(module, NDMNetEnsemble):
        return module.nets()
    return [cast(NDMNet, module)]


@fill_shared_doc
class NDMClassifier(TorchClassifierBase):
    """Neural Differential Manifold classifier: a learned metric that shapes the decision.

    The inputs are embedded into ``latent_dim`` coordinates and passed through
    ``n_layers`` smooth invertible coupling maps; each layer ℓ carries a metric field
    ``g_ℓ(z) = L Lᵀ + ε I`` (Cholesky-parameterised, identity at initialisation). Classes
    are prototypes μ_c on the last chart, scored in its metric::

        logit_c = −½ (z − μ_c)ᵀ g_L(z) (z − μ_c) + b_c

    so the learned geometry decides the decision boundary (``metric_head=False``: the
    Euclidean ablation). The training loss adds ``curvature_penalty · E[R²]`` (scalar
    curvature of every layer's metric, exact or by random probes, see
    :func:`sphereml.geometry.scalar_curvature`) and ``volume_penalty · Var(√det g)``.
    ``optimizer="natural"`` preconditions by the metric pulled back to parameter space
    (:class:`sphereml.optim.DiagonalNaturalGradient`).

    Parameters
    ----------
    latent_dim : "auto" or int, default="auto"
        Dimension n of the latent charts (≥ 2). ``"auto"``: 8 for up to 9 classes (room
        for the class prototypes as a simplex, and the largest dimension with exact
        curvature, see ``curvature_estimator``), 16 for more classes, whose prototypes
        need the room. The resolved dimension is ``latent_dim_``.
    n_layers : int, default=2
        Coupling layers, each with its own metric (≥ 1).
    hidden : int, default=32
        Width of the coupling and metric networks.
    metric_eps : float, default=1e-3
        Floor ε of the metric's eigenvalues (keeps g invertible, never NaN).
    metric_head : bool, default=True
        Prototype distances in the learned metric (False: Euclidean, the ablation).
    curvature_penalty : float, default=0.0
        Weight of the mean squared scalar curvature over layers and batch points.
    chart_penalty : float, default=0.0
        Weight of the chart inconsistency of consecutive layers,
        ``E‖J_ℓᵀ g_ℓ₊₁ J_ℓ − g_ℓ‖²_F / ‖g_ℓ‖²_F`` with J_ℓ the Jacobian of coupling ℓ+1:
        pushes the layers' metrics to describe one manifold (zero when every coupling is
        an isometry between its charts). Needs ``n_layers ≥ 2``.
    volume_penalty : float, default=0.0
        Weight of the batch variance of the volume element √det g, averaged over layers.
    curvature_estimator : {"auto", "exact", "hutchinson"}, default="auto"
        ``"exact"`` needs ``latent_dim ≤ 8``; ``"auto"`` is exact up to 8, probes beyond.
    n_probes : int, default=4
        Probe pairs per point of the Hutchinson estimator.
    curvature_samples : int, default=64
        Points of each batch at which the curvature and chart penalties are evaluated.
    optimizer : {"adam", "natural"}, default="adam"
    max_grad_norm : float or None, default=None
        Before every step the gradient of all parameters together is scaled down to this
        Euclidean norm where it is longer (``torch.nn.utils.clip_grad_norm_``); None
        leaves it alone. The metric and the coupling layers can send one batch's gradient
        far beyond its usual size; a fit whose best epoch falls after such a spike raises
        FloatingPointError, and clipping (e.g. ``max_grad_norm=10``) lets it train. Off
        by default, where it gained nothing on the defaults panel.
    n_estimators : "auto" or int, default="auto"
        Number of networks whose class probabilities are averaged (a deep ensemble,
        Lakshminarayanan et al. 2017), each a complete fit with its own seed drawn from
        ``random_state``: its own initial weights, batch order and early-stopping split,
        stopped at its own best epoch. ``"auto"``: 5 on up to 1,000 training rows, 3 on
        up to 10,000, else 1: one network varies from seed to seed on small tables,
        and k networks cost k times the fit and prediction. Each member keeps its own
        manifold: with
        ``n_estimators_ > 1`` the geometric outputs have a member axis. The resolved
        number is ``n_estimators_``; a warm start continues all members side by side.
    [shared training parameters]

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    prototypes_ : ndarray of shape (n_classes, ``latent_dim_``)
        μ_c in the last chart's coordinates; shape (``n_estimators_``, n_classes,
        ``latent_dim_``) when ``n_estimators_ > 1``.
    latent_dim_ : int
        Dimension of the latent charts (see ``latent_dim``).
    n_estimators_ : int
        Networks in the ensemble (see ``n_estimators``).
    n_iter_, loss_curve_, validation_loss_curve_, history_
        As in :class:`sphereml.SphericalClassifier` (of the first member when
        ``n_estimators_ > 1``).
    net_ : skorch NeuralNet
        ``net_.module_`` is a :class:`sphereml.nn.ndm.NDMNet`, or a
        :class:`sphereml.nn.ndm.NDMNetEnsemble` of them when ``n_estimators_ > 1``.

    Notes
    -----
    Early stopping is on by default (``early_stopping="auto"``): the quadratic logits
    keep growing on a separable training set, and without a validation split the fitted
    model is over-confident. Its patience is 30 epochs (10 in the other estimators),
    since the validation split of a small table is noisy. One network's probabilities
    can stay over-confident on small, nearly separable data; the default average of
    several networks corrects most of it. Where probabilities matter most, wrap the
    estimator in
    ``CalibratedClassifierCV(NDMClassifier(), method="temperature", cv=3)``.

    ``transform`` returns the last chart's coordinates z_L (not unit vectors), the
    members' side by side when ``n_estimators_ > 1``.
    Features should be on comparable scales (e.g. ``StandardScaler`` first).
    """

    _SIZE_PARAMETERS = ("latent_dim", "hidden", "n_layers")

    _parameter_constraints: dict = {
        **TorchClassifierBase._parameter_constraints,
        "latent_dim": [StrOptions({"auto"}), Interval(Integral, 2, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "hidden": [Interval(Integral, 1, None, closed="left")],
        "metric_eps": [Interval(Real, 0, None, closed="neither")],
        "metric_head": ["boolean"],
        "curvature_penalty": [Interval(Real, 0, None, closed="left")],
        "volume_penalty": [Interval(Real, 0, None, closed="left")],
        "chart_penalty": [Interval(Real, 0, None, closed="left")],
        "curvature_estimator": [StrOptions({"auto", "exact", "hutchinson"})],
        "n_probes": [Interval(Integral, 1, None, closed="left")],
        "curvature_samples": [Interval(Integral, 1, None, closed="left")],
        "optimizer": [StrOptions({"adam", "natural"})],
        "n_estimators": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
    }

    def __init__(
        self,
        latent_dim="auto",
        *,
        n_layers=2,
        hidden=32,
        metric_eps=1e-3,
        metric_head=True,
        curvature_penalty=0.0,
        volume_penalty=0.0,
        chart_penalty=0.0,
        curvature_estimator="auto",
        n_probes=4,
        curvature_samples=64,
        optimizer="adam",
        max_grad_norm=None,
        n_estimators="auto",
        lr=0.01,
        max_epochs=200,
        batch_size=64,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=30,
        tol=1e-4,
        warm_start=False,
        device="cpu",
        random_state=None,
        verbose=0,
        accelerator=None,
    ):
        store_init_arguments(self, locals())

    # one network varies more across seeds on small tables than SphericalClassifier's,
    # and five cost least there
    _AUTO_MEMBERS = ((1_000, 5), (10_000, 3))

    def _build_module(self, n_classes: int, members: list | None = None) -> NDMNet | NDMNetEnsemble:
        self.latent_dim_ = _resolved_latent_dim(self.latent_dim, n_classes)
        config = self._module_config(
            NDMConfig,
            n_features=self.n_features_in_,
            n_classes=n_classes,
            latent_dim=self.latent_dim_,
        )
        _warn_probe_curvature_cost(config)
        if self.n_estimators_ == 1:
            return NDMNet(config)
        return NDMNetEnsemble(config, self.n_estimators_, members)

    def _optimizer(self) -> tuple[type, dict]:
        if self.optimizer == "natural":
            return DiagonalNaturalGradient, {}
        return torch.optim.Adam, {}

    def _extra_callbacks(self, n_samples: int) -> list:
        callbacks: list = []
        if self.max_grad_norm is not None:  # clips p.grad, which either optimiser steps on
            callbacks.append(("clip", GradientNormClipping(gradient_clip_value=self.max_grad_norm)))
        if self.optimizer == "natural":
            callbacks.append(("pullback_metric", _PullbackMetric()))
        return callbacks

    def _divergence_advice(self) -> str:
        advice = super()._divergence_advice()
        if self.max_grad_norm is None:
            advice += " or clip the gradients (max_grad_norm=10)"
        return advice

    def _record_history(self) -> None:
        super()._record_history()
        nets = _member_nets(self.net_.module_)
        prototypes = [net.prototypes.detach().cpu().double().numpy() for net in nets]
        self.prototypes_ = prototypes[0] if len(prototypes) == 1 else np.stack(prototypes)

    def pullback_volume_element(self, X) -> np.ndarray:
        """Volume element of the geometry induced on the input space, shape (n_samples,).

        √det(Jᵀ g_L J) with J = ∂z_L/∂x, the last chart's metric pulled back to the inputs
        (zero where the map collapses directions, always when
        ``n_features > latent_dim_``). Shape (n_samples, ``n_estimators_``) when
        ``n_estimators_ > 1``: one column per member.
        """
        return self._map_batches(X, "pullback_volume_element")

    def geometry_report(self, X, estimator: str | None = None) -> dict[str, np.ndarray]:
        """Curvature, volume element and chart consistency of the layers' metrics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        estimator : {"auto", "exact", "hutchinson"}, default=None
            None uses ``curvature_estimator``.

        Returns
        -------
        dict of float64 ndarrays: ``"scalar_curvature"`` and ``"volume_element"``
        (√det g_ℓ(z_ℓ)), each of shape (n_samples, n_layers), and ``"chart_residual"``
        (the relative inconsistency of consecutive layers' metrics, see
        ``chart_penalty``), shape (n_samples, n_layers − 1). With ``n_estimators_ > 1``
        each member's arrays are stacked along axis 1: (n_samples, ``n_estimators_``,
        n_layers) and (n_samples, ``n_estimators_``, n_layers − 1).
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        nets = _member_nets(self.net_.module_)

        def member_report(net: NDMNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                zs = net.latents(x)
                volume = net.volume_element(zs)
                chart = net.chart_residual(zs)
            # the curvature differentiates the metric fields inside, so autograd stays on
            return {
                "scalar_curvature": net.curvature(zs, estimator).T,
                "volume_element": volume.T,
                "chart_residual": chart.T,
            }

        def report(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            reports = [member_report(net, batch["x"]) for net in nets]
            if len(reports) == 1:
                return reports[0]
            return {key: torch.stack([r[key] for r in reports], dim=1) for key in reports[0]}

        inputs = self._module_inputs(X, fitting=False)
        return self._map_module_batches(inputs, report, no_grad=False)
