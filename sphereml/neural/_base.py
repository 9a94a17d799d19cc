"""The one scikit-learn ↔ skorch wrapper that the neural estimators share.

Each estimator is a plain ``ClassifierMixin, BaseEstimator`` with explicit ``__init__``
hyper-parameters (so ``get_params``/``GridSearchCV``/``clone`` see clean names); ``fit``
builds a private skorch net ``net_`` around a module from :mod:`sphereml.nn`. Subclasses
supply four small hooks:

``_validate_X(X, reset)``
    Validate the input and return it in the form ``_module_inputs`` expects.
``_module_inputs(X, fitting, training)``
    Turn validated input into a dict of equal-length arrays, the keyword arguments of
    the module (``fitting`` is True when a fresh fit may learn a vocabulary, scaling…;
    ``training`` is True for the training data of any fit, warm or fresh).
``_build_module(n_classes)``
    The torch module. It returns logits from ``forward(**inputs)``, unit vectors from
    ``embed(**inputs)`` and has an ``embedding_dim``; optionally ``per_sample_loss(logits,
    y)`` (default: cross-entropy). In training mode ``forward`` may return ``(logits,
    penalty)``: the penalty (a regulariser of that forward pass) is added to the loss.
``_optimizer()``
    The optimiser class and its keyword arguments.

Everything else estimator-side lives here: target encoding, sample weights, seeding,
devices, early stopping, warm start and float64 outputs; the training loop itself
(batching, the skorch net, callbacks, CUDA graphs) is :mod:`sphereml.training`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import log_softmax, softmax
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from skorch.callbacks import Callback
from skorch.dataset import ValidSplit
from skorch.utils import noop

from ..riemannian.manifold import max_norm_deviation
from ..training.batching import BUCKET_BATCHES, BatchIterator
from ..training.callbacks import CloningEarlyStopping, Renormalize
from ..training.graph_step import LENGTH_MULTIPLE
from ..training.net import TrainingNet, seeded, unwrap_parallel
from ..utils._concurrency import one_fit_at_a_time
from ..utils._device import fused_adam_available, resolve_device
from ..utils._sklearn_compat import Interval, StrOptions, _check_sample_weight, _fit_context
from ._checks import (
    check_accelerator,
    check_module_size,
)
from ._docs import MIN_VALID_PER_CLASS
from ._ensembles import MemberEnsembleMixin
from ._fit_checks import FittedModelCheckMixin
from ._graph_modes import GraphModesMixin
from ._inputs import FLOAT32_MAX, check_object_labels, num_samples, warn_feature_scale
from ._persistence import NetPersistenceMixin
from ._warm_start import WarmStartGuardMixin

#: the fewest rows of a batch where nothing is learned (see ``_inference_batch_size``)
INFERENCE_ROWS = 1024

Config = TypeVar("Config")


class TorchClassifierBase(
    MemberEnsembleMixin,
    GraphModesMixin,
    WarmStartGuardMixin,
    FittedModelCheckMixin,
    NetPersistenceMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    ClassifierMixin,
    BaseEstimator,
):
    """Shared fit/predict machinery of the neural classifiers (see the module docstring).

    Attributes set by ``fit`` (documented in each estimator): ``classes_``, ``net_``,
    ``n_iter_``, ``loss_curve_``, ``validation_loss_curve_``, ``history_``.
    """

    classes_: np.ndarray
    history_: Any
    net_: TrainingNet
    do_early_stopping_: bool

    _parameter_constraints: dict = {
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "device": [str, object],  # checked by resolve_device, as for every estimator
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "accelerator": [None, object],  # an accelerate.Accelerator
    }

    # ---------------------------------------------------------------- subclass hooks
    #: whether the module sees the features' magnitudes (False: rows are normalised first)
    _scale_sensitive = True
    #: the name of a right-padded boolean (n, L) input: batches are cut to their longest row
    _padding_mask: str | None = None
    #: whether X may be a CSR matrix (kept sparse; each batch is densified on the fly)
    _accepts_sparse = False

    def _validate_X(self, X, *, reset: bool):
        """Numeric 2-D input: finite, float, within float32 range.

        At fit, features that training in float32 would round to zero, or of magnitudes
        far from 1, get a warning (they train a worse model, not a wrong one).
        """
        X = validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            accept_sparse="csr" if self._accepts_sparse else False,
        )
        if sp.issparse(X):
            if X.nnz and abs(X.data).max() > FLOAT32_MAX:
                raise ValueError(
                    f"X has values beyond the float32 range (±{FLOAT32_MAX:.3g}) that "
                    "training uses; rescale the features"
                )
            if reset and X.nnz and self._scale_sensitive:
                warn_feature_scale(X.data[None, :])
            return X
        if X.size and np.max(np.abs(X)) > FLOAT32_MAX:
            raise ValueError(
                f"X has values beyond the float32 range (±{FLOAT32_MAX:.3g}) that training "
                "uses; rescale the features (e.g. StandardScaler)"
            )
        if reset and X.size and self._scale_sensitive:
            warn_feature_scale(X)
        return X

    def _module_inputs(self, X, *, fitting: bool, training: bool = False) -> dict[str, np.ndarray]:
        return {"x": np.asarray(X, dtype=np.float32)}

    def _build_module(self, n_classes: int, members: list | None = None) -> torch.nn.Module:
        """The network for ``n_classes`` classes; with ``members`` (fitted networks) the
        ensemble of them, for estimators with ``n_estimators``."""
        raise NotImplementedError

    def _module_config(self, config_cls: Callable[..., Config], **fields: Any) -> Config:
        """A module config: ``fields`` (data-dependent sizes, derived values) plus every
        hyper-parameter whose name is a field of ``config_cls``."""
        names = {f.name for f in dataclasses.fields(config_cls)}  # type: ignore[arg-type]
        params = {k: v for k, v in self.get_params(deep=False).items() if k in names}
        return config_cls(**{**params, **fields})

    def _optimizer(self) -> tuple[type, dict]:
        return torch.optim.Adam, {}

    def _learning_rate(self) -> float:
        """The optimiser's learning rate: ``lr``, or the estimator's choice for "auto"."""
        return float(self.lr)

    def _batch_size(self) -> int:
        """The mini-batch size: ``batch_size``, or the estimator's choice for "auto"."""
        return int(self.batch_size)

    def _inference_batch_size(self) -> int:
        """Rows per batch where nothing is learned (validation, prediction, the fitted-model
        check): at least ``INFERENCE_ROWS``, whose activations a small network's layers
        hold easily, since each batch costs a fixed dispatch overhead on top of its
        arithmetic."""
        return max(self._batch_size(), INFERENCE_ROWS)

    def _extra_callbacks(self, n_samples: int) -> list[tuple[str, Callback]]:
        """More skorch callbacks (learning-rate schedules…); ``n_samples`` trains."""
        return []

    def _initialize_from_data(self, module, inputs: dict, y: np.ndarray) -> None:
        """Optional data-dependent initialisation of a freshly built module (on device)."""

    def _train(self, inputs: dict, y: np.ndarray, sample_weight: np.ndarray) -> None:
        """Run the training epochs on the built (or warm) net; the history records them.
        ``inputs`` hold the sample weights scaled to mean 1; ``sample_weight`` as given."""
        self.net_.partial_fit(inputs, y)

    # ---------------------------------------------------------------- fitting
    def _validate_targets(self, y, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        y = column_or_1d(y, warn=True)
        check_consistent_length(np.empty(n_samples), y)
        if y.dtype == object:
            check_object_labels(y)
            if all(isinstance(v, Integral) and not isinstance(v, bool) for v in y):
                # numbers in an object array (a pandas object column): their integer dtype
                y = np.asarray(y.tolist())
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"y must be binary or multiclass labels, got {kind!r} targets")
        classes, y_encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"y has only one class ({classes[0]!r}); a classifier needs at least 2"
            )
        return classes, y_encoded.astype(np.int64)

    def _net_options(self) -> dict:
        """Extra keyword arguments of the skorch net (e.g. ``compile``); none by default."""
        return {}

    def _resolve_early_stopping(self, y_encoded: np.ndarray) -> bool:
        """Whether this fit holds out a validation split (``early_stopping``, "auto")."""
        n_samples = len(y_encoded)
        counts = np.bincount(y_encoded)
        n_valid = math.ceil(self.validation_fraction * n_samples)
        feasible = min(n_valid, n_samples - n_valid) >= len(counts) and counts.min() >= 2
        if self.early_stopping == "auto":
            # a split of one or two rows per class ranks epochs by noise
            return bool(feasible and n_valid >= MIN_VALID_PER_CLASS * len(counts))
        if self.early_stopping and not feasible:
            raise ValueError(
                f"early_stopping=True needs a stratified validation split, but "
                f"validation_fraction={self.validation_fraction} of {n_samples} samples "
                f"gives {n_valid} held-out samples for {len(counts)} classes (smallest "
                f"class: {counts.min()} samples); use more data, a larger "
                "validation_fraction, or early_stopping='auto' / False"
            )
        return bool(self.early_stopping)

    def _make_net(self, module, n_samples: int, seed: int, device: torch.device) -> TrainingNet:
        callbacks = [("renormalize", Renormalize())]
        if self.n_iter_no_change is not None:
            callbacks.append(
                (
                    "early_stopping",
                    CloningEarlyStopping(
                        monitor="valid_loss" if self.do_early_stopping_ else "train_loss",
                        patience=self.n_iter_no_change,
                        threshold=self.tol,
                        threshold_mode="abs",
                        load_best=self.do_early_stopping_,
                        sink=print if self.verbose else noop,
                    ),
                )
            )
        n_train = n_samples
        if self.do_early_stopping_:
            n_train = n_samples - math.ceil(self.validation_fraction * n_samples)
        callbacks.extend(self._extra_callbacks(n_train))
        if self.verbose >= 2:
            from skorch.callbacks import ProgressBar

            callbacks.append(("progress", ProgressBar()))
        train_split = None
        if self.do_early_stopping_:
            train_split = ValidSplit(
                self.validation_fraction, stratified=True, random_state=seed % 2**31
            )
        optimizer, optimizer_kwargs = self._optimizer()
        graph_epochs = self._graph_epoch_mode(device, optimizer)
        graph_steps = self._graph_step_mode(device, optimizer)
        if "cuda-graph" in (graph_epochs, graph_steps):
            # the step count on the device (capturable) and one fused kernel for Adam
            optimizer_kwargs = {**optimizer_kwargs, "capturable": True, "fused": True}
        elif optimizer in (torch.optim.Adam, torch.optim.AdamW):
            # one update kernel per step on a CPU where torch has it, else one
            # multi-tensor update (torch's default only on CUDA)
            kernel = "fused" if device.type == "cpu" and fused_adam_available("cpu") else "foreach"
            optimizer_kwargs = {kernel: True, **optimizer_kwargs}
        net_class: type[TrainingNet] = TrainingNet
        parallel: dict[str, Any] = {}
        if self.accelerator is not None:
            from ..training.accelerate import accelerated_net_class

            net_class = accelerated_net_class()
            parallel = {
                "accelerator": self.accelerator,
                "device": None,  # the accelerator places the module
                # unwrapped by ``fit`` after the callbacks (early stopping restores the
                # best weights into the wrapped module)
                "unwrap_after_train": False,
                # the mixin sets the table's printer, which skorch then always calls
                "callbacks__print_log__sink": self.accelerator.print if self.verbose else noop,
                "iterator_train__shard": (
                    int(self.accelerator.process_index),
                    int(self.accelerator.num_processes),
                ),
            }
        if not self.verbose and self.accelerator is None:
            # skorch's PrintLog formats its table every epoch even with a silent sink: 8 %
            # of a small table's fit
            parallel["callbacks__print_log"] = None
        if self._padding_mask is not None:
            parallel["iterator_train__trim_mask"] = self._padding_mask
            parallel["iterator_train__bucket_batches"] = BUCKET_BATCHES
            parallel["iterator_valid__trim_mask"] = self._padding_mask
            if graph_steps:
                parallel["iterator_train__length_multiple"] = LENGTH_MULTIPLE
        net = net_class(
            module=module,
            criterion=torch.nn.CrossEntropyLoss,
            criterion__reduction="none",
            optimizer=optimizer,
            lr=self._learning_rate(),
            max_epochs=self.max_epochs,
            batch_size=min(self._batch_size(), n_samples),
            iterator_train=BatchIterator,
            iterator_train__shuffle=True,
            iterator_train__seed=seed,
            iterator_valid=BatchIterator,
            iterator_valid__batch_size=self._inference_batch_size(),
            train_split=train_split,
            callbacks=callbacks,
            predict_nonlinearity=None,
            verbose=int(self.verbose),
            **{"device": device, **parallel},
            **{f"optimizer__{k}": v for k, v in optimizer_kwargs.items()},
            **self._net_options(),
            graph_epochs=graph_epochs,
            graph_steps=graph_steps,
        )
        return net

    def _build_net(
        self,
        n_classes: int,
        n_samples: int,
        seed: int,
        device: torch.device,
        initialize: Callable[[torch.nn.Module], None] | None = None,
        *,
        module: torch.nn.Module | None = None,
    ) -> TrainingNet:
        """The module and its initialised net, built from the fit's seed.

        Building a module draws its initial weights from torch's global generator;
        seeding it inside ``fork_rng`` under a process-wide lock leaves the caller's random
        state untouched and makes concurrent fits (threads) reproduce sequential ones.
        Training itself draws only from generators owned by the fit (batch order, random
        probes). ``initialize(module)`` runs under the same seed (a data-dependent start).
        ``module``: one built already (an ensemble of fitted members) for the net.
        """
        with _GLOBAL_RNG_LOCK, seeded(seed, device):
            if module is None:
                module = self._build_module(n_classes)
            seed_generators = getattr(module, "seed_generators", None)
            if callable(seed_generators):  # modules that draw while training
                seed_generators(seed)
            net = self._make_net(module, n_samples, seed, device).initialize()
            if initialize is not None:
                initialize(unwrap_parallel(net.module_))
        return net

    @one_fit_at_a_time
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the network (or, with ``n_estimators_ > 1``, each member in turn).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or the estimator's input type
        y : array-like of shape (n_samples,)
            Class labels of any type (strings, non-contiguous integers).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights multiplying each sample's loss.

        Returns
        -------
        self
        """
        check_accelerator(self.accelerator)
        warm = self.warm_start and hasattr(self, "net_")  # a warm start: all members at once
        if not warm and "n_estimators" in self.get_params(deep=False):
            # validated here too, so that input errors surface before any member is fitted
            n_samples = num_samples(self._validate_X(X, reset=True))
            k = self.n_estimators_ = self._n_members(n_samples)
            if k > 1:
                classes, _ = self._validate_targets(y, n_samples)
                check_module_size(self, len(classes), k, self._training_device())
                return self._fit_members(X, y, sample_weight, k)
        return self._fit_network(X, y, sample_weight)

    #: hyper-parameters that size the network, named when it cannot be allocated
    _SIZE_PARAMETERS: tuple[str, ...] = ()

    def _fit_network(self, X, y, sample_weight):
        """Train one network (a warm start: the fitted module, members included)."""
        fit = self._begin_fit(X, y, sample_weight)
        self._train(fit["inputs"], fit["y"], fit["weight"])
        return self._end_fit(fit)

    def _begin_fit(self, X, y, sample_weight, *, size_checked: bool = False) -> dict:
        """Everything before the training epochs: validation, the built (or, warm,
        reconfigured) net; what ``_train`` and ``_end_fit`` need. ``size_checked``: the
        caller has checked that the network fits in memory (an ensemble, for all its
        members at once)."""
        warm = self.warm_start and hasattr(self, "net_")
        X = self._validate_X(X, reset=not warm)
        n_samples = num_samples(X)
        classes, y_encoded = self._validate_targets(y, n_samples)
        if warm and not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"warm_start needs the classes of the previous fit {self.classes_.tolist()}, "
                f"got {classes.tolist()}"
            )
        weight = _check_sample_weight(sample_weight, np.empty(n_samples), ensure_non_negative=True)
        if len(np.unique(y_encoded[weight > 0])) < 2:
            raise ValueError(
                "only one class has samples with positive sample_weight; a classifier "
                "needs at least 2"
            )
        if warm:
            self._check_warm_start_params()
        inputs = self._module_inputs(X, fitting=not warm, training=True)
        scaled = weight / weight.max()  # the mean of weights near the float64 limit overflows
        inputs["sample_weight"] = (scaled / scaled.mean()).astype(np.float32)

        device = self._training_device()
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        if not warm:
            if not size_checked:
                check_module_size(self, len(classes), 1, device)
            self.classes_ = classes
            self.do_early_stopping_ = self._resolve_early_stopping(y_encoded)
            self.net_ = self._build_net(
                len(classes),
                n_samples,
                seed,
                device,
                initialize=lambda module: self._initialize_from_data(module, inputs, y_encoded),
            )
            self._build_params = self._frozen_params()
            self._net_args = {"n_samples": n_samples, "seed": seed}
        else:  # continue with the current settings, as sklearn's warm starts do
            self.net_.set_params(
                max_epochs=self.max_epochs,
                lr=self._learning_rate(),
                batch_size=min(self._batch_size(), n_samples),
                verbose=int(self.verbose),
            )
        start = self._module_snapshot()  # the weights before these epochs
        if self.accelerator is not None:  # (re-)wrap: the gradients must be all-reduced
            self.net_._initialize_accelerator()
        return {"inputs": inputs, "y": y_encoded, "weight": weight, "scaled": scaled,
                "start": start}  # fmt: skip

    def _end_fit(self, fit: dict):
        """After the training epochs: the history recorded, the fitted model checked."""
        if self.accelerator is not None:
            self.net_._unwrap_accelerator()
        self._record_history()
        self._check_learned(fit["inputs"], fit["y"], fit["scaled"], fit["start"])
        return self

    def _training_device(self) -> torch.device:
        if self.accelerator is not None:
            return torch.device(self.accelerator.device)
        return resolve_device(self.device)

    def _record_history(self) -> None:
        history = self.net_.history
        self.history_ = history
        self.n_iter_ = len(history)
        self.loss_curve_ = [float(v) for v in history[:, "train_loss"]]
        self.validation_loss_curve_ = (
            [float(v) for v in history[:, "valid_loss"]] if self.do_early_stopping_ else None
        )
        module = self.net_.module_
        healthy = (
            np.isfinite(self.loss_curve_[-1])
            and all(bool(torch.isfinite(p).all()) for p in module.parameters())
            and max_norm_deviation(module) < 1e-3
        )
        if not healthy:
            raise FloatingPointError(
                "training diverged: the loss or the parameters are not finite, or unit "
                f"weights lost their norm, after "
                f"{self.n_iter_} epochs (last loss {self.loss_curve_[-1]}); lower lr "
                f"(now {self._learning_rate()})"
            )
        self._n_features_out = self.net_.module_.embedding_dim

    # ---------------------------------------------------------------- inference
    def _map_batches(self, X, method: str) -> np.ndarray:
        """Apply ``module.<method>`` to validated inputs in batches; float64 NumPy out."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self._apply_module(self._module_inputs(X, fitting=False), method)

    def _apply_module(self, inputs: dict, method: str) -> np.ndarray:
        """``module.<method>`` over prepared inputs in eval mode and batches; float64 out."""
        fn = getattr(unwrap_parallel(self.net_.module_), method)
        return self._map_module_batches(inputs, lambda batch: fn(**batch))["out"]

    def _map_module_batches(
        self,
        inputs: dict,
        fn: Callable[[dict[str, torch.Tensor]], Any],
        *,
        no_grad: bool = True,
    ) -> dict[str, np.ndarray]:
        """``fn(batch)`` over prepared inputs, in eval mode and the net's batches.

        ``fn`` returns a tensor or a dict of tensors whose first dimension is the batch;
        they are concatenated over batches and returned as float64 NumPy arrays (a single
        tensor under the key ``"out"``). ``no_grad=False`` leaves autograd on for
        functions that differentiate inside (curvature).
        """
        inputs = {k: v for k, v in inputs.items() if k != "sample_weight"}
        net = self.net_
        module = unwrap_parallel(net.module_)
        was_training = module.training
        module.eval()
        parts: dict[str, list[torch.Tensor]] = {}
        try:
            with torch.no_grad() if no_grad else contextlib.nullcontext():
                dataset = net.get_dataset(inputs)
                for batch, _ in net.get_iterator(dataset, training=False):
                    out = fn(batch)
                    for key, value in (out if isinstance(out, dict) else {"out": out}).items():
                        parts.setdefault(key, []).append(value.detach().float().cpu())
        finally:
            module.train(was_training)
        return {key: torch.cat(values).double().numpy() for key, values in parts.items()}

    def decision_function(self, X) -> np.ndarray:
        """Logits; for two classes the 1-D difference ``logit_1 − logit_0``.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        logits = self._map_batches(X, "forward")
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (softmax of the logits in float64).

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return softmax(self._map_batches(X, "forward"), axis=1)

    def predict_log_proba(self, X) -> np.ndarray:
        """Log of :meth:`predict_proba`, computed stably."""
        return log_softmax(self._map_batches(X, "forward"), axis=1)

    def predict(self, X) -> np.ndarray:
        """Most probable class, in the label type seen in ``fit``."""
        logits = self._map_batches(X, "forward")
        return self.classes_[np.argmax(logits, axis=1)]

    def transform(self, X) -> np.ndarray:
        """The learned representation that the classification head scores.

        Returns
        -------
        ndarray of shape (n_samples, embedding_dim)
            For models that classify on the sphere (``SphericalClassifier``,
            ``NGPTTextClassifier``) rows of unit norm, renormalised in float64 and ready
            for e.g. :class:`~sphereml.VMFMixture`; for ``NDMClassifier`` the coordinates
            of the last chart, which are not on a sphere.
        """
        z = self._map_batches(X, "embed")
        if getattr(self.net_.module_, "embeds_on_sphere", True):
            norm = np.linalg.norm(z, axis=1, keepdims=True)
            z = z / np.where(norm > 0, norm, 1.0)  # a zero row (zero_rows="uniform") stays 0
        return z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


_GLOBAL_RNG_LOCK = threading.Lock()
