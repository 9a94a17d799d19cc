"""The training history of every net of the package: skorch's ``History`` with quick
access to a row by its position."""

from __future__ import annotations

from typing import Any

from skorch.history import History

__all__ = ["TrainingHistory"]


class TrainingHistory(History):
    """skorch's ``History`` whose row access by position (``history[-1]``) returns the
    row at once.

    skorch resolves every index through its general multi-level lookup, which first
    copies the list of rows; the training loop records into the last row several times
    per batch (``record``, ``new_batch``, ``record_batch`` all go through ``self[-1]``),
    so on a small network that lookup is a noticeable share of a step. Every other index
    is skorch's.
    """

    def __getitem__(self, i: Any) -> Any:
        if type(i) is int:
            return list.__getitem__(self, i)
        return super().__getitem__(i)
