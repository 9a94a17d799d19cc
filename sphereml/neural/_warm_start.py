"""The warm-start guard: a warm fit may change only the hyper-parameters that do not shape
the network, its data preparation or its callbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

__all__ = ["WarmStartGuardMixin"]


class WarmStartGuardMixin:
    """``_frozen_params`` at build time and ``_check_warm_start_params`` before a warm fit."""

    if TYPE_CHECKING:

        def get_params(self, deep: bool = True) -> dict[str, Any]: ...

    #: hyper-parameters a warm start continues with; every other one shaped the network,
    #: its data preparation or its training callbacks, and may not change between fits
    _WARM_START_MUTABLE = frozenset(
        {"lr", "max_epochs", "batch_size", "verbose", "warm_start", "random_state", "accelerator"}
    )

    def _frozen_params(self) -> dict[str, Any]:
        return {
            k: v for k, v in self.get_params(deep=False).items()
            if k not in self._WARM_START_MUTABLE
        }  # fmt: skip

    def _check_warm_start_params(self) -> None:
        before = getattr(self, "_build_params", None)
        if before is None:
            return
        now = self._frozen_params()
        changed = [k for k in now if not _same_value(now[k], before.get(k))]
        if changed:
            listed = ", ".join(f"{k}: {before.get(k)!r} → {now[k]!r}" for k in changed)
            raise ValueError(
                f"warm_start=True continues training the fitted network, but {listed} "
                f"changed since it was built; only {sorted(self._WARM_START_MUTABLE)} may "
                "change between warm fits. Set warm_start=False to build a new network."
            )


def _same_value(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))
    except Exception:  # values that cannot be compared as arrays
        return a is b or a == b
