"""Deep ensembles of the neural estimators: ``n_estimators`` networks fitted one by one,
each with its own seed, and held as the members of one ensemble module whose class
probabilities are their average (Lakshminarayanan et al. 2017)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import check_random_state

from ..training.lockstep import lockstep_supported, train_lockstep
from ..training.net import unwrap_parallel

__all__ = ["MemberEnsembleMixin"]


class MemberEnsembleMixin:
    """``n_estimators`` for a neural estimator (the host provides ``_build_net``,
    ``_training_device``, ``_frozen_params`` and ``_record_history``)."""

    # n_estimators="auto": (most training rows, members) tiers, the first that holds
    # applies, one member beyond the last
    _AUTO_MEMBERS: tuple[tuple[int, int], ...] = ((10_000, 3),)

    if TYPE_CHECKING:
        n_estimators: Any
        random_state: Any
        verbose: int
        accelerator: Any
        classes_: np.ndarray
        n_estimators_: int
        net_: Any
        _build_params: dict[str, Any]

        def get_params(self, deep: bool = True) -> dict[str, Any]: ...
        def _build_net(
            self,
            n_classes: int,
            n_samples: int,
            seed: int,
            device: torch.device,
            *,
            module: torch.nn.Module | None = None,
        ) -> Any: ...
        def _build_module(self, n_classes: int, members: list | None = None) -> Any: ...
        def _training_device(self) -> torch.device: ...
        def _frozen_params(self) -> dict[str, Any]: ...
        def _record_history(self) -> None: ...
        def _begin_fit(self, X, y, sample_weight, *, size_checked: bool = False) -> dict: ...
        def _end_fit(self, fit: dict) -> Any: ...
        def _train(self, inputs: dict, y: np.ndarray, sample_weight: np.ndarray) -> None: ...

    def _trains_by_partial_fit(self) -> bool:
        """Whether ``_train`` is ``net_.partial_fit`` (members may then train side by
        side); subclasses with a solver of their own say when they use it."""
        return True

    def _n_members(self, n_samples: int) -> int:
        """Networks to fit and average for ``n_samples`` training rows (a hook)."""
        return self._resolved_n_estimators(n_samples)

    def _resolved_n_estimators(self, n_samples: int, *, averaging_helps: bool = True) -> int:
        """``n_estimators`` with ``"auto"`` resolved: the members of the first
        ``_AUTO_MEMBERS`` tier that holds ``n_samples`` where ``averaging_helps``, else
        one."""
        n_estimators = getattr(self, "n_estimators", 1)
        if n_estimators != "auto":
            return int(n_estimators)
        if averaging_helps:
            for max_rows, members in self._AUTO_MEMBERS:
                if n_samples <= max_rows:
                    return members
        return 1

    def _fit_members(self, X, y, sample_weight, k: int):
        """Fit ``k`` members and hold them in one ensemble module.

        Each member is a complete fit with its own seed: its own initial weights, batch
        order and early-stopping split, stopped at its own best epoch. Independent members
        differ more than ones trained on shared batches to one stopping epoch, and their
        average is the better model. Where their nets allow it
        (:func:`~sphereml.training.lockstep.train_lockstep`), the members' fits run side
        by side, each step's forward and backward passes computed for all at once;
        otherwise one after another, with the same result. The ensemble keeps the first
        member's fitted state (classes, features, vocabulary, history) and every
        member's module; a warm start then trains the members side by side (with fresh
        optimiser moments).
        """
        seeds = check_random_state(self.random_state).randint(np.iinfo(np.int32).max, size=k)
        members = [clone(self).set_params(n_estimators=1, random_state=int(s)) for s in seeds]
        fits = []
        for member in members:  # validated and built, each from its own seed
            member.n_estimators_ = 1
            fits.append(member._begin_fit(X, y, sample_weight, size_checked=True))
        nets = [member.net_ for member in members]
        if all(m._trains_by_partial_fit() for m in members) and lockstep_supported(nets):
            if self.verbose:
                print(f"[{type(self).__name__}] {k} members side by side", flush=True)
            train_lockstep(nets, [(fit["inputs"], fit["y"]) for fit in fits])
        else:
            for j, (member, fit) in enumerate(zip(members, fits, strict=True)):
                if self.verbose:
                    print(f"[{type(self).__name__}] member {j + 1}/{k}", flush=True)
                member._train(fit["inputs"], fit["y"], fit["weight"])
        for member, fit in zip(members, fits, strict=True):
            member._end_fit(fit)
        first = members[0]
        params = self.get_params(deep=False)
        for name, value in vars(first).items():
            if name not in params and name != "net_":
                setattr(self, name, value)
        self.n_estimators_ = k
        build = first._net_args
        # the fitted members themselves, held by the ensemble module
        module = self._build_module(
            len(self.classes_), members=[unwrap_parallel(m.net_.module_) for m in members]
        )
        net = self._build_net(
            len(self.classes_),
            build["n_samples"],
            build["seed"],
            self._training_device(),
            module=module,
        )
        net.history = first.net_.history
        net.module_.eval()  # as after a fit
        if self.accelerator is not None:  # as after any fit: the module unwrapped
            net._unwrap_accelerator()
        self.net_ = net
        self._build_params = self._frozen_params()
        self._record_history()
        return self
