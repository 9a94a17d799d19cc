"""SphericalClassifier: cosine-softmax classification on the unit sphere."""

from __future__ import annotations

import time
import warnings
from numbers import Integral, Real
from typing import cast

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.exceptions import ConvergenceWarning

from .._sphere._ops import l2_normalize
from ..nn._cosine_lbfgs import fit_cosine_head_lbfgs
from ..nn.spherical import SphericalNet, SphericalNetConfig, SphericalNetEnsemble
from ..optim import RiemannianAdam
from ..training.net import unwrap_parallel
from ..utils._sklearn_compat import Interval, StrOptions
from ._base import TorchClassifierBase
from ._docs import fill_shared_doc, store_init_arguments

_DEFAULT_MARGIN = {"none": 0.0, "cosface": 0.35, "arcface": 0.5}
# hidden_dims="auto" on data that are not directional (decided on the benchmark panel)
_AUTO_HIDDEN_DIMS = (64,)
# rows within this of unit norm count as directional
_UNIT_TOL = 1e-3


def _member_nets(module: torch.nn.Module) -> list[SphericalNet]:
    """The networks of a fitted module: its members, or itself."""
    if isinstance(module, SphericalNetEnsemble):
        return module.nets()
    return [cast(SphericalNet, module)]


def _is_directional(X) -> bool:
    """Sparse input (tf-idf, counts) or dense rows of unit norm (rows of zeros, e.g. the
    normalised tf-idf of an empty document, allowed beside them)."""
    if sp.issparse(X):
        return True
    try:
        values = np.asarray(X)
    except (TypeError, ValueError):
        return False  # validation reports the problem
    if values.dtype.kind not in "biuf" or values.ndim != 2 or values.size == 0:
        return False
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        return False
    norms = np.linalg.norm(values, axis=1)
    unit = np.abs(norms - 1.0) <= _UNIT_TOL
    return bool(unit.any() and np.all(unit | (norms == 0)))


@fill_shared_doc
class SphericalClassifier(TorchClassifierBase):
    """Cosine-softmax classifier: inputs and class prototypes on the sphere, logits κ·cos θ.

    The inputs are mapped to unit vectors ``z`` and scored against unit class prototypes
    μ_c: ``logit_c = κ μ_cᵀ z + b_c``. This is the posterior of a mixture of von
    Mises–Fisher distributions with one concentration κ (= 1/temperature) and class
    log-priors b_c, so with a learned κ the probabilities are calibrated the way a
    maximum-likelihood vMF fit is (NormFace, Wang et al. 2017).

    The map to the sphere:

    - ``hidden_dims=()``: ``z = x / ‖x‖`` — a linear classifier on directions, for
      embeddings, tf-idf and other data whose direction carries the signal. A row of
      zeros has no direction: see ``zero_rows``.
    - ``hidden_dims=(w_1, …, w_L)``: an affine projection ``z = Norm(A x + b)`` to width
      w_1, then one normalised residual SwiGLU block per entry in the nGPT style
      (``z ← Norm(z + α ⊙ (Norm(MLP(z)) − z))``, unit-norm weight vectors; Loshchilov et
      al. 2024), with a normalised projection between differing widths. Use this for raw
      tabular features (after ``StandardScaler``); the projection sees their scale.
    - ``hidden_dims="auto"`` (default): ``()`` when the training data are directional —
      a sparse matrix (tf-idf, counts) or rows of unit norm (embeddings, the output of
      ``Normalizer``; rows of zeros allowed) — and ``(64,)`` otherwise, where
      ``x / ‖x‖`` would discard what the norm says (on standardised tables the norm is
      how far a row lies from the mean). The choice is
      ``hidden_dims_``; the decisions page of the documentation has the panel it was
      decided on. Directions
      that do not come with unit norm (LSA / TruncatedSVD outputs, unnormalised
      embeddings) look like a table to this rule: pass ``hidden_dims=()`` for them.

    The linear model is fitted by default with full-batch L-BFGS from its vMF start
    (``optimizer="lbfgs"``), as LogisticRegression is, with an L2 penalty ``alpha`` on
    the class weight vectors κ μ_c. Networks are trained on mini-batches; there the
    unit-norm constraint on prototypes and weights is declared once per parameter and
    enforced after every optimiser step (``optimizer="adam"``: Euclidean Adam, then
    renormalise) or by the optimiser itself (``"riemannian_adam"``: tangent-space Adam
    and retraction).

    Parameters
    ----------
    hidden_dims : "auto" or tuple of int, default="auto"
        Widths of the normalised layers; empty for a linear cosine classifier on the
        input directions; ``"auto"`` decides from the training data (above).
    kappa : "learn" or float, default="learn"
        Concentration κ multiplying the cosines: learned (from ``kappa_init``) or fixed.
    kappa_init : float, default=10.0
        Initial κ when ``kappa="learn"``.
    margin : {"none", "cosface", "arcface"}, default="none"
        Additive margin on the target class during training: CosFace ``cos θ − m``,
        ArcFace ``cos(θ + m)``. Margins tighten the classes on the sphere (useful when
        ``transform`` embeddings are reused); predictions use the plain logits, so the
        probabilities of a margin-trained model are less calibrated.
    margin_value : float or None, default=None
        The margin m; None takes 0.35 for CosFace and 0.5 (radians) for ArcFace.
    fit_intercept : bool, default=True
        Learn the class log-priors b_c.
    init : {"auto", "vmf", "random"}, default="auto"
        ``"vmf"``: start the head at the maximum-likelihood vMF fit of the embedded
        training data — prototypes at the class mean directions, b_c at the log class
        shares, a learned κ at the tied-concentration MLE — so that training refines the
        generative solution; in high dimension with few samples per class it is a better
        start than a random one. ``"random"``: uniform random prototypes, κ at
        ``kappa_init``. ``"auto"``: ``"vmf"`` when ``hidden_dims=()``
        (the embedding is the input direction, so the fit is exact), else ``"random"``
        (the initial random embedding says nothing about the classes).
    optimizer : {"auto", "lbfgs", "adam", "riemannian_adam"}, default="auto"
        ``"lbfgs"``: full-batch L-BFGS (linear model only, ``hidden_dims_=()`` and no
        margin); ``max_epochs`` caps its iterations and ``tol`` is its gradient
        tolerance; ``lr``, ``batch_size`` and early stopping are not used. ``"adam"``:
        mini-batch Adam with renormalisation; ``"riemannian_adam"``:
        :class:`sphereml.optim.RiemannianAdam`. ``"auto"``: ``"lbfgs"`` where it applies
        (and no ``accelerator`` is given), else ``"adam"``. The choice is
        ``optimizer_``.
    alpha : float, default=0.3
        L2 penalty of the ``"lbfgs"`` fit on the class weight vectors κ μ_c, divided by
        the sample size (MLPClassifier's ``alpha``): it bounds κ on separable data.
    zero_rows : {"uniform", "raise"}, default="uniform"
        What a row of zeros means with ``hidden_dims=()``, where it has no direction
        (the tf-idf row of an empty document, or of one made only of unseen words):
        ``"uniform"`` every direction alike, so at prediction it gets the class priors
        (logits b_c, the same for every class when ``fit_intercept=False``) and in
        ``fit`` it trains the priors b_c only; ``"raise"`` a ValueError naming the rows,
        in ``fit`` and at prediction.
    n_estimators : "auto" or int, default="auto"
        Number of networks whose class probabilities are averaged (a deep ensemble,
        Lakshminarayanan et al. 2017). Each member is a complete fit with its own seed
        drawn from ``random_state``: its own initial weights, batch order and
        early-stopping split, stopped at its own best epoch. Averaging removes most of the
        seed-to-seed spread of a network fitted to a small table and improves its
        probabilities, for ``n_estimators`` times the fit and prediction cost.
        ``"auto"``: 3 for a learned map to the sphere (``hidden_dims_`` not empty) on up
        to 10,000 training rows, else 1 (the linear model on directions starts at the
        same vMF fit in every member; large tables have less variance to average away).
        The resolved number is
        ``n_estimators_``; a warm start continues all members side by side.
    [shared training parameters]

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    kappa_ : float or ndarray of shape (``n_estimators_``,)
        The (learned or fixed) concentration κ; one per member when ``n_estimators_ > 1``.
    prototypes_ : ndarray of shape (n_classes, embedding_dim)
        Unit class prototypes μ_c; shape (``n_estimators_``, n_classes, member width) when
        ``n_estimators_ > 1``.
    intercept_ : ndarray of shape (n_classes,)
        Class log-priors b_c (zeros when ``fit_intercept=False``); shape
        (``n_estimators_``, n_classes) when ``n_estimators_ > 1``.
    n_estimators_ : int
        Networks in the ensemble (see ``n_estimators``).
    n_iter_ : int
        Epochs trained (in all calls, with ``warm_start``); of the first member when
        ``n_estimators_ > 1``, as are the curves and the history.
    loss_curve_ : list of float
        Training loss per epoch.
    validation_loss_curve_ : list of float or None
        Validation loss per epoch when ``early_stopping``.
    history_ : skorch History
        Per-epoch and per-batch records (losses, durations).
    net_ : skorch NeuralNet
        The trained net; ``net_.module_`` is a :class:`sphereml.nn.SphericalNet`, or a
        :class:`sphereml.nn.SphericalNetEnsemble` of them when ``n_estimators_ > 1``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, only when X has string feature names

    See Also
    --------
    sklearn.linear_model.LogisticRegression : the Euclidean linear baseline.
    sphereml.VMFMixture : the unsupervised model with the same likelihood.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sphereml import SphericalClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SphericalClassifier(max_epochs=30, random_state=0).fit(X, y)
    >>> round(clf.score(X, y), 2) >= 0.95
    True
    """

    _SIZE_PARAMETERS = ("hidden_dims",)

    _parameter_constraints: dict = {
        **TorchClassifierBase._parameter_constraints,
        "hidden_dims": [StrOptions({"auto"}), "array-like"],
        "kappa": [StrOptions({"learn"}), Interval(Real, 0, None, closed="neither")],
        "kappa_init": [Interval(Real, 0, None, closed="neither")],
        "margin": [StrOptions({"none", "cosface", "arcface"})],
        "margin_value": [Interval(Real, 0, None, closed="left"), None],
        "fit_intercept": ["boolean"],
        "init": [StrOptions({"auto", "vmf", "random"})],
        "optimizer": [StrOptions({"auto", "lbfgs", "adam", "riemannian_adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "zero_rows": [StrOptions({"raise", "uniform"})],
        "n_estimators": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        hidden_dims="auto",
        *,
        kappa="learn",
        kappa_init=10.0,
        margin="none",
        margin_value=None,
        fit_intercept=True,
        init="auto",
        optimizer="auto",
        alpha=0.3,
        zero_rows="uniform",
        n_estimators="auto",
        lr=0.01,
        max_epochs=100,
        batch_size=256,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="cpu",
        random_state=None,
        verbose=0,
        accelerator=None,
    ):
        store_init_arguments(self, locals())

    _accepts_sparse = True

    @property
    def _scale_sensitive(self) -> bool:  # type: ignore[override]
        return bool(self._hidden_dims())  # hidden_dims=() classifies x / ‖x‖

    def _validate_X(self, X, *, reset: bool):
        if reset:
            self.hidden_dims_ = self._resolve_hidden_dims(X)
            self.optimizer_ = self._resolve_optimizer()
        X = super()._validate_X(X, reset=reset)
        if reset and not self.hidden_dims_ and X.shape[1] == 1:
            warnings.warn(
                "with hidden_dims=() a single feature is reduced to its sign (its direction "
                "on the 0-sphere); pass hidden_dims='auto' or (64,) to use its value",
                UserWarning,
                stacklevel=3,
            )
        return X

    def _resolve_hidden_dims(self, X) -> tuple[int, ...]:
        if not (isinstance(self.hidden_dims, str) and self.hidden_dims == "auto"):
            try:
                array = np.asarray(self.hidden_dims, dtype=float)
            except (TypeError, ValueError):
                array = np.full((1, 1), np.nan)  # ragged or non-numeric: refused below
            dims = tuple(array.ravel())
            if array.ndim != 1 or any(not np.isfinite(w) or w < 1 or w != int(w) for w in dims):
                raise ValueError(
                    "hidden_dims must be 'auto' or a flat sequence of positive integers (one "
                    f"width per hidden layer), got {self.hidden_dims!r}"
                )
            return tuple(int(w) for w in dims)
        return () if _is_directional(X) else _AUTO_HIDDEN_DIMS

    def _resolve_optimizer(self) -> str:
        full_batch = not self.hidden_dims_ and self.margin == "none"
        if self.optimizer == "lbfgs" and not full_batch:
            raise ValueError(
                "optimizer='lbfgs' fits the linear model without a margin; got "
                f"hidden_dims_={self.hidden_dims_} and margin={self.margin!r}: use "
                "optimizer='adam'"
            )
        if self.optimizer == "lbfgs" and self.accelerator is not None:
            raise ValueError("optimizer='lbfgs' runs on one device; use 'adam' with accelerator")
        if self.optimizer == "auto":
            return "lbfgs" if full_batch and self.accelerator is None else "adam"
        return str(self.optimizer)

    def _hidden_dims(self) -> tuple[int, ...]:
        return self.hidden_dims_

    def _n_members(self, n_samples: int) -> int:
        # the linear model on directions starts at the same vMF fit in every member
        return self._resolved_n_estimators(n_samples, averaging_helps=bool(self.hidden_dims_))

    def _resolve_early_stopping(self, y_encoded: np.ndarray) -> bool:
        # The linear model starts at the vMF fit and does better on all of its training
        # data: "auto" splits only for a learned map to the sphere; L-BFGS never does.
        if self._optimizer_name() == "lbfgs":
            return False
        if self.early_stopping == "auto" and not self.hidden_dims_:
            return False
        return super()._resolve_early_stopping(y_encoded)

    def _module_inputs(self, X, *, fitting: bool, training: bool = False) -> dict[str, np.ndarray]:
        if not self._hidden_dims():
            # Normalise in float64 before the float32 cast: scale-free; a zero row stays
            # zero (its logits are the class log-priors b_c) or is reported by name
            keep = self.zero_rows == "uniform"  # zero rows then train the biases only
            X = l2_normalize(X, zero_rows="keep" if keep else "raise")
        if sp.issparse(X):  # kept sparse; each batch is densified on the fly
            return {"x": sp.csr_matrix(X, dtype=np.float32)}
        return {"x": np.asarray(X, dtype=np.float32)}

    def _build_module(
        self, n_classes: int, members: list | None = None
    ) -> SphericalNet | SphericalNetEnsemble:
        learn = self.kappa == "learn"
        margin_value = self.margin_value
        if margin_value is None:
            margin_value = _DEFAULT_MARGIN[self.margin]
        config = self._module_config(
            SphericalNetConfig,
            n_features=self.n_features_in_,
            n_classes=n_classes,
            hidden_dims=self._hidden_dims(),
            kappa_init=self.kappa_init if learn else float(self.kappa),
            learn_kappa=learn,
            margin_value=margin_value,
        )
        if self.n_estimators_ == 1:
            return SphericalNet(config)
        return SphericalNetEnsemble(config, self.n_estimators_, members)

    def _initialize_from_data(self, module, inputs: dict, y: np.ndarray) -> None:
        init = self.init
        if init == "auto":
            init = "random" if self._hidden_dims() else "vmf"
        if init == "random":
            return
        members = _member_nets(module)
        device = members[0].head.prototypes.device
        if not self._hidden_dims():  # the embedding is the input: sum it as it comes
            weight = inputs["sample_weight"].astype(np.float64)
            one_hot = sp.csr_matrix((weight, (y, np.arange(len(y)))), (len(self.classes_), len(y)))
            sums = one_hot @ inputs["x"]
            sums = torch.as_tensor(sums.toarray() if sp.issparse(sums) else sums, device=device)
            shares = torch.as_tensor(np.asarray(one_hot.sum(axis=1)).ravel(), device=device)
            for member in members:
                member.head.init_vmf_from_sums_(sums, shares)
            return
        weight = torch.as_tensor(inputs["sample_weight"], device=device)
        labels = torch.as_tensor(y, device=device)
        width = members[0].embedding_dim
        z_all = self._apply_module(inputs, "embed") * np.sqrt(len(members))
        for j, member in enumerate(members):
            z = torch.as_tensor(z_all[:, j * width : (j + 1) * width], device=device)
            member.head.init_vmf_(z, labels, weight)

    # a static step (no probes, no length buckets): epochs run as CUDA graphs on a GPU
    _graph_epochs = True

    def _optimizer_name(self) -> str:
        return str(getattr(self, "optimizer_", self.optimizer))

    def _optimizer(self) -> tuple[type, dict]:
        # an L-BFGS fit still builds the net's (unused) mini-batch optimiser
        optimizers = {"adam": torch.optim.Adam, "riemannian_adam": RiemannianAdam}
        return optimizers.get(self._optimizer_name(), torch.optim.Adam), {}

    def _trains_by_partial_fit(self) -> bool:
        return self._optimizer_name() != "lbfgs"

    def _train(self, inputs: dict, y: np.ndarray, sample_weight: np.ndarray) -> None:
        if self._optimizer_name() != "lbfgs":
            return super()._train(inputs, y, sample_weight)
        history = self.net_.history
        # every member starts at the same vMF fit, and the solve is deterministic: solve
        # once and give the other members the solution
        first, *others = _member_nets(unwrap_parallel(self.net_.module_))
        start = time.perf_counter()
        result = fit_cosine_head_lbfgs(
            first.head,
            inputs["x"],
            y,
            sample_weight,  # the penalty is divided by their sum, as sklearn's
            alpha=float(self.alpha),
            max_iter=int(self.max_epochs),
            tol=float(self.tol),
        )
        for member in others:
            member.head.load_state_dict(first.head.state_dict())
        if not result.converged and len(result.losses) >= self.max_epochs:
            warnings.warn(
                f"lbfgs did not converge within max_epochs={self.max_epochs} iterations; "
                "raise max_epochs",
                ConvergenceWarning,
                stacklevel=4,
            )
        seconds = (time.perf_counter() - start) / len(result.losses)
        for loss in result.losses:  # one record per iteration, as epochs are recorded
            history.new_epoch()
            history.record("epoch", len(history))
            history.record("train_loss", loss)
            history.record("dur", seconds)
        return None

    def _record_history(self) -> None:
        super()._record_history()
        members = _member_nets(self.net_.module_)
        kappas: list[float] = []
        prototypes, intercepts = [], []
        for member in members:
            head = member.head
            kappas.append(float(head.kappa.detach()))
            mu = head.prototypes.detach().cpu().double().numpy()
            prototypes.append(mu / np.linalg.norm(mu, axis=1, keepdims=True))
            intercepts.append(
                np.zeros(len(self.classes_))
                if head.bias is None
                else head.bias.detach().cpu().double().numpy()
            )
        self.kappa_: float | np.ndarray
        if len(members) == 1:
            self.kappa_ = kappas[0]
            self.prototypes_, self.intercept_ = prototypes[0], intercepts[0]
        else:
            self.kappa_ = np.array(kappas)
            self.prototypes_, self.intercept_ = np.stack(prototypes), np.stack(intercepts)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
