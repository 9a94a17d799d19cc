"""Docstring templating and ``__init__`` storage shared by the neural estimators."""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

__all__ = ["MIN_VALID_PER_CLASS", "fill_shared_doc", "store_init_arguments"]

T = TypeVar("T")

#: early_stopping="auto" holds out a split only if it has this many rows per class
MIN_VALID_PER_CLASS = 4

SHARED_PARAMETERS_DOC = """\
    lr : float{lr_type}, default={lr}
        Learning rate of the optimiser.{lr_auto}
    max_epochs : int, default={max_epochs}
        Maximum number of passes over the training data (per call to ``fit``).
    batch_size : int{batch_size_type}, default={batch_size}
        Mini-batch size (capped at the number of training samples).{batch_size_auto}
    early_stopping : bool or "auto", default={early_stopping}
        Hold out ``validation_fraction`` of the training data (stratified), stop when the
        validation loss has not improved by ``tol`` for ``n_iter_no_change`` epochs, and
        restore the parameters of the best epoch. When False, training stops once the
        training loss has not improved by ``tol`` for ``n_iter_no_change`` epochs (as in
        :class:`~sklearn.neural_network.MLPClassifier`). ``"auto"``: early stopping
        when the validation split is large enough to rank epochs — at least
        {min_valid_per_class} held-out samples per class on average, and a stratified
        split possible (every class with two samples or more) — else the training-loss
        rule, as with False; the choice made is ``do_early_stopping_``.
    validation_fraction : float, default=0.1
        Fraction held out for early stopping.
    n_iter_no_change : int or None, default={n_iter_no_change}
        Patience in epochs; None always trains ``max_epochs`` epochs.
    tol : float, default={tol}
        Minimum decrease of the monitored loss that counts as an improvement.
    warm_start : bool, default=False
        Continue from the previous fit's parameters (classes must match) for another
        ``max_epochs`` epochs. Only ``lr``, ``max_epochs``, ``batch_size``, ``verbose``
        and ``random_state`` may change between warm fits; changing any other
        hyper-parameter (the architecture, the tokenizer, the penalties…) raises a
        ValueError instead of being silently ignored.
    device : str or torch.device, default="cpu"
        Torch device for training and inference: ``"cpu"``, ``"cuda"``, ``"cuda:1"``,
        ``"mps"``, ``"auto"`` (CUDA when available) or a ``torch.device``; anything else
        raises (see :func:`sphereml.utils.resolve_device`). Training runs in float32;
        every returned array is float64 NumPy.
    random_state : int, RandomState instance or None, default=None
        Seeds parameter initialisation, shuffling and the validation split. Torch's
        global random state is left untouched: initial weights are drawn inside
        ``torch.random.fork_rng`` (under a lock), the batch order and random probes
        from generators owned by the fit, so two fits with the same integer seed give
        identical models (on the same device), also when run in threads at once.
    verbose : int, default=0
        0 is silent; 1 prints skorch's per-epoch table (losses, duration); 2 adds a
        progress bar per epoch (needs ``tqdm``).
    accelerator : accelerate.Accelerator or None, default=None
        Data-parallel training driven by Hugging Face ``accelerate`` (through skorch's
        ``AccelerateMixin``): run the same script in every process (``accelerate launch
        --num_processes N script.py``); each process trains on its share of every batch
        (``batch_size`` is the global batch), the gradients are averaged across
        processes, and every process ends with the same model. ``device`` is then the
        accelerator's. The accelerator is process state, not part of the model: it is
        not saved with the estimator. See the user guide's "Scaling out" page."""


def fill_shared_doc(cls: type[T]) -> type[T]:
    """Class decorator: put the shared training parameters into the docstring.

    The class docstring holds a line ``[shared training parameters]``; the defaults that
    differ between estimators are read from the signature of ``cls.__init__``.
    """
    defaults = {
        name: f'"{p.default}"' if isinstance(p.default, str) else p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    auto = {name: getattr(cls, f"_{name.upper()}_AUTO_DOC", "") for name in ("lr", "batch_size")}
    shared = SHARED_PARAMETERS_DOC.format(
        **defaults,
        min_valid_per_class=MIN_VALID_PER_CLASS,
        **{f"{name}_auto": doc for name, doc in auto.items()},
        **{f"{name}_type": ' or "auto"' if doc else "" for name, doc in auto.items()},
    )
    cls.__doc__ = (cls.__doc__ or "").replace("    [shared training parameters]", shared)
    return cls


def store_init_arguments(estimator: object, arguments: dict[str, Any]) -> None:
    """Store every argument of ``type(estimator).__init__`` as the attribute of its name.

    scikit-learn's convention: ``__init__`` stores its arguments unchanged and does
    nothing else (validation happens in ``fit``). Each estimator's ``__init__`` keeps its
    explicit signature, which ``get_params``, ``clone`` and ``GridSearchCV`` read, and
    calls ``store_init_arguments(self, locals())``.
    """
    for name in inspect.signature(type(estimator).__init__).parameters:
        if name != "self":
            setattr(estimator, name, arguments[name])
