"""The CUDA-graph epoch of ``sphereml.training.graph_epoch`` (the code captured on a GPU),
run eagerly on the CPU against skorch's per-batch loop, and on CUDA where present."""

import pickle

import numpy as np
import pytest
import torch

from sphereml import SphericalClassifier
from sphereml.training import graph_epoch as _graph_epoch
from sphereml.utils._device import fused_adam_available


# ---------------------------------------------------------------- graph epochs
def _classification_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((700, 8)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    return X, y


def _eager_graph_epochs(estimator):
    """Run the graph-epoch code eagerly (its CPU form) for this estimator's fits."""
    estimator._graph_epoch_mode = lambda device, optimizer: "eager"
    return estimator


@pytest.mark.parametrize("hidden_dims", [(), (16,)])
def test_graph_epoch_code_equals_the_skorch_loop(hidden_dims):
    X, y = _classification_data()
    weight = np.random.default_rng(1).uniform(0.2, 3.0, len(y))
    # one network: the graph-epoch switch below is set on this instance, not on members
    params = dict(
        hidden_dims=hidden_dims,
        optimizer="adam",
        max_epochs=6,
        batch_size=64,
        n_estimators=1,
        random_state=0,
    )
    loop = SphericalClassifier(**params).fit(X, y, sample_weight=weight)
    graph = _eager_graph_epochs(SphericalClassifier(**params)).fit(X, y, sample_weight=weight)
    assert isinstance(graph.net_.__dict__.get("_graph_epoch"), _graph_epoch.GraphEpoch)
    assert "_graph_epoch" not in loop.net_.__dict__
    assert graph.n_iter_ == loop.n_iter_
    np.testing.assert_array_equal(graph.loss_curve_, loop.loss_curve_)
    np.testing.assert_array_equal(graph.predict_proba(X), loop.predict_proba(X))
    # per-batch history as skorch records it (the last batch is the short one)
    sizes = graph.history_[-1, "batches", :, "train_batch_size"]
    assert sizes == loop.history_[-1, "batches", :, "train_batch_size"]


def test_graph_epoch_draws_the_next_order_while_the_epoch_runs():
    X, y = _classification_data()
    used = []
    original = _graph_epoch.GraphEpoch._order

    def spy(self, iterator):
        used.append(self.prefetched is not None and self.prefetched[0] is iterator)
        return original(self, iterator)

    _graph_epoch.GraphEpoch._order = spy
    try:
        _eager_graph_epochs(SphericalClassifier(max_epochs=4, n_estimators=1, random_state=0)).fit(
            X, y
        )
    finally:
        _graph_epoch.GraphEpoch._order = original
    assert used == [False, True, True, True]


def test_graph_epochs_step_aside_for_per_batch_callbacks_and_other_optimisers():
    X, y = _classification_data()
    clf = SphericalClassifier(max_epochs=2, verbose=2, n_estimators=1, random_state=0)
    clf = _eager_graph_epochs(clf)
    clf.fit(X, y)  # the progress bar is a per-batch callback: skorch's loop runs
    assert "_graph_epoch" not in clf.net_.__dict__
    cuda = torch.device("cuda")
    default = SphericalClassifier()
    assert default._graph_epoch_mode(cuda, torch.optim.Adam) == "cuda-graph"
    assert default._graph_epoch_mode(torch.device("cpu"), torch.optim.Adam) is None
    assert default._graph_epoch_mode(cuda, torch.optim.SGD) is None


def test_optimiser_kernel_options_follow_the_loading_device():
    # A model trained with capturable, fused Adam (the CUDA graph path) must warm-start
    # on a machine where those kernels do not exist.
    X, y = _classification_data()
    clf = SphericalClassifier(max_epochs=2, n_estimators=1, random_state=0, warm_start=True)
    clf.fit(X, y)
    state = clf.__getstate__()
    for group in state["_optimizer_state"]["param_groups"]:
        group.update(capturable=True, fused=True)
    loaded = pickle.loads(pickle.dumps(clf))
    loaded.__setstate__(state)
    groups = loaded.net_.optimizer_.param_groups
    assert not any(g.get("capturable") for g in groups)
    # the kernel the loading machine's own fit chooses: fused where the CPU has one
    assert all(bool(g.get("fused")) == fused_adam_available("cpu") for g in groups)
    loaded.fit(X, y)
    assert loaded.n_iter_ == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_epochs_match_the_skorch_loop():
    X, y = _classification_data()
    params = dict(max_epochs=5, batch_size=64, n_estimators=1, random_state=0, device="cuda")
    graph = SphericalClassifier(**params).fit(X, y)
    assert graph.net_.__dict__["_graph_epoch"].graph is not None
    loop = SphericalClassifier(**params)
    loop._graph_epochs = False
    loop.fit(X, y)
    np.testing.assert_allclose(graph.loss_curve_, loop.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(graph.predict_proba(X), loop.predict_proba(X), atol=1e-4)
