"""The training engine's history and epoch scoring equal skorch's own."""

from __future__ import annotations

import numpy as np
import pytest
from skorch.callbacks import PassthroughScoring
from skorch.history import History

from sphereml.training.callbacks import EpochMeanScoring
from sphereml.training.history import TrainingHistory


def _histories(seed=0, epochs=3):
    """The same batch records in a skorch History and a TrainingHistory."""
    rng = np.random.default_rng(seed)
    histories = History(), TrainingHistory()
    for _ in range(epochs):
        for history in histories:
            history.new_epoch()
        for prefix, n_batches in (("train", 5), ("valid", 2)):
            for _ in range(n_batches):
                loss, size = float(rng.exponential()), int(rng.integers(1, 64))
                for history in histories:
                    history.new_batch()
                    history.record_batch(prefix + "_loss", loss)
                    history.record_batch(prefix + "_batch_size", size)
    return histories


class _Net:
    def __init__(self, history):
        self.history = history


def test_rows_by_position_are_skorchs_rows():
    skorch_history, history = _histories()
    for i in (-1, 0, 1):
        assert history[i] == skorch_history[i]
        assert history[i] is list.__getitem__(history, i)
    assert history[-1, "batches", :, "valid_loss"] == skorch_history[-1, "batches", :, "valid_loss"]
    history.record("score", 1.5)
    assert history[:, "score"] == [1.5] and "score" not in history[0]


@pytest.mark.parametrize("name, on_train", [("train_loss", True), ("valid_loss", False)])
def test_epoch_mean_scoring_records_skorchs_numbers(name, on_train):
    skorch_history, history = _histories(seed=1)
    skorch_scoring = PassthroughScoring(name, on_train=on_train).initialize()
    scoring = EpochMeanScoring(name, on_train=on_train).initialize()
    for epoch in range(len(history)):  # epoch by epoch, as the loop calls them
        rows = History(skorch_history[: epoch + 1]), TrainingHistory(history[: epoch + 1])
        skorch_scoring.on_epoch_end(_Net(rows[0]))
        scoring.on_epoch_end(_Net(rows[1]))
        assert rows[1][-1][name] == rows[0][-1][name]  # bit for bit
        assert rows[1][-1][name + "_best"] == rows[0][-1][name + "_best"]


def test_epoch_mean_scoring_skips_an_epoch_without_its_batches():
    history = TrainingHistory()
    history.new_epoch()
    history.new_batch()
    history.record_batch("train_loss", 1.0)
    history.record_batch("train_batch_size", 4)
    EpochMeanScoring("valid_loss").initialize().on_epoch_end(_Net(history))
    assert "valid_loss" not in history[-1]
