"""Members trained side by side (``sphereml.training.lockstep``) equal members trained one
after another: same splits, batch orders, stopping epochs and, to float32 round-off,
the same weights."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import sphereml.neural._ensembles as ensembles
from sphereml import NDMClassifier, SphericalClassifier
from sphereml.nn.ndm import NDMConfig, NDMNet
from sphereml.nn.spherical import SphericalNet, SphericalNetConfig
from sphereml.training import lockstep
from sphereml.training.net import TrainingNet


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    return X, y, rng.uniform(0.5, 2.0, n)


def _fit_both(make, monkeypatch):
    X, y, weight = _data()
    ran = []
    original = ensembles.train_lockstep
    monkeypatch.setattr(ensembles, "train_lockstep", lambda *a: (ran.append(1), original(*a)))
    side_by_side = make().fit(X, y, sample_weight=weight)
    monkeypatch.setattr(ensembles, "lockstep_supported", lambda nets: False)
    one_by_one = make().fit(X, y, sample_weight=weight)
    return side_by_side, one_by_one, bool(ran), X


@pytest.mark.parametrize(
    "make, atol",
    [
        # early stopping on a validation split, patience short enough for the members
        # to stop at different epochs
        (lambda: SphericalClassifier((16,), n_estimators=3, n_iter_no_change=2,
                                     max_epochs=40, random_state=0), 1e-5),
        (lambda: NDMClassifier(n_estimators=3, n_iter_no_change=3, max_epochs=30,
                               random_state=0), 1e-3),
        (lambda: NDMClassifier(n_estimators=2, curvature_penalty=0.1, chart_penalty=0.1,
                               max_grad_norm=1.0, max_epochs=6, random_state=0), 1e-3),
    ],
    ids=["spherical", "ndm", "ndm-penalties-clipping"],
)  # fmt: skip
def test_members_side_by_side_equal_members_one_by_one(make, atol, monkeypatch):
    side_by_side, one_by_one, ran, X = _fit_both(make, monkeypatch)
    assert ran
    assert side_by_side.n_iter_ == one_by_one.n_iter_
    np.testing.assert_allclose(side_by_side.loss_curve_, one_by_one.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(
        side_by_side.predict_proba(X), one_by_one.predict_proba(X), atol=atol
    )


def test_members_stop_at_their_own_epochs(monkeypatch):
    stopped = []
    original = lockstep._Fit.end

    def spy(fit):
        stopped.append(len(fit.net.history))
        original(fit)

    monkeypatch.setattr(lockstep._Fit, "end", spy)
    X, y, _ = _data()
    SphericalClassifier((16,), n_estimators=4, n_iter_no_change=2, max_epochs=60,
                        random_state=0).fit(X, y)  # fmt: skip
    assert len(stopped) == 4 and len(set(stopped)) > 1, stopped


@pytest.mark.parametrize(
    "params",
    [
        # probes draw random numbers: not mappable over members
        dict(latent_dim=12, curvature_penalty=0.1),
        # the metric estimate is a per-batch callback of each member's own parameters
        dict(optimizer="natural"),
    ],
    ids=["random-probe-curvature", "natural-gradient"],
)
def test_members_train_one_after_another_where_they_cannot_stack(params, monkeypatch):
    X, y, _ = _data(120)
    ran = []
    monkeypatch.setattr(ensembles, "train_lockstep", lambda *a: ran.append(1))
    clf = NDMClassifier(n_estimators=2, max_epochs=2, random_state=0, **params).fit(X, y)
    assert not ran
    assert clf.n_estimators_ == 2


def test_splits_of_unequal_sizes_train_one_after_another(monkeypatch):
    X, y, _ = _data(120)
    pairs = [_fresh_net(X[:n], y[:n], hidden_dims=(8,)) for n in (120, 100)]
    members, fits = [m for m, _ in pairs], [f for _, f in pairs]
    calls = []
    original = TrainingNet.partial_fit
    monkeypatch.setattr(
        TrainingNet, "partial_fit", lambda net, *a: (calls.append(net), original(net, *a))[1]
    )
    nets = [m.net_ for m in members]
    assert lockstep.lockstep_supported(nets)
    lockstep.train_lockstep(nets, [(f["inputs"], f["y"]) for f in fits])
    assert calls == nets
    assert [len(net.history) for net in nets] == [3, 3]


def _fresh_net(X, y, estimator=SphericalClassifier, seed=0, **params):
    """An initialised, untrained net as the ensemble builds one for a member."""
    member = estimator(n_estimators=1, max_epochs=3, random_state=seed, **params)
    member.n_estimators_ = 1  # as the ensemble sets it for its members
    return member, member._begin_fit(X, y, None)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1], ids=["flat-buffer", "leaf-by-leaf"])
def test_stacked_adamw_moves_each_net_as_its_own_optimiser(weight_decay):
    # the first metric field of a default NDMNet gets no gradient: weight decay must not
    # move it, as the net's own optimiser (which skips a missing gradient) does not
    X, y, _ = _data(150)
    nets, data = [], []
    for seed in (0, 1):
        member, fit = _fresh_net(X, y, NDMClassifier, seed=seed, early_stopping=False)
        net = member.net_
        net.optimizer_ = torch.optim.AdamW(
            net.module_.parameters(), lr=0.01, weight_decay=weight_decay
        )
        nets.append(net)
        data.append((fit["inputs"], fit["y"]))
    alone = [copy.deepcopy(net) for net in nets]
    assert lockstep.lockstep_supported(nets)
    lockstep.train_lockstep(nets, data)
    for net, own, (inputs, labels) in zip(nets, alone, data, strict=True):
        unused = own.module_.metrics[0].net[0].weight.detach().clone()
        own.partial_fit(inputs, labels)
        torch.testing.assert_close(own.module_.metrics[0].net[0].weight, unused)
        for (name, stacked), (_, own_param) in zip(
            net.module_.named_parameters(), own.module_.named_parameters(), strict=True
        ):
            torch.testing.assert_close(stacked, own_param, rtol=1e-4, atol=1e-5, msg=name)


def test_lockstep_needs_two_fresh_nets_of_one_architecture():
    X, y, _ = _data(120)
    small, wide = (_fresh_net(X, y, hidden_dims=(w,))[0].net_ for w in (8, 16))
    assert not lockstep.lockstep_supported([small])
    assert not lockstep.lockstep_supported([small, wide])
    assert lockstep.lockstep_supported([small, small])
    riemannian = _fresh_net(X, y, hidden_dims=(8,), optimizer="riemannian_adam")[0].net_
    assert not lockstep.lockstep_supported([riemannian, riemannian])  # not elementwise
    small.partial_fit(X=_fresh_net(X, y, hidden_dims=(8,))[1]["inputs"], y=y)
    assert not lockstep.lockstep_supported([small, small])  # optimiser moments exist


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_members_side_by_side_equal_members_one_by_one(monkeypatch):
    # NDM's steps are not CUDA graphs: its members train side by side on the GPU too
    def make():
        return NDMClassifier(n_estimators=3, n_iter_no_change=3, max_epochs=20,
                             random_state=0, device="cuda")  # fmt: skip

    side_by_side, one_by_one, ran, X = _fit_both(make, monkeypatch)
    assert ran
    assert side_by_side.n_iter_ == one_by_one.n_iter_
    proba = side_by_side.predict_proba(X)
    np.testing.assert_allclose(proba, one_by_one.predict_proba(X), atol=1e-3)


def _stacked_copy(modules):
    """A copy of the first module holding every module's parameters stacked on axis 0."""
    stacked = copy.deepcopy(modules[0])
    for name, _ in modules[0].named_parameters():
        owner, _, attribute = name.rpartition(".")
        leaf = torch.stack([m.get_parameter(name).detach() for m in modules])
        setattr(stacked.get_submodule(owner), attribute, torch.nn.Parameter(leaf))
    return stacked


@pytest.mark.parametrize(
    "build",
    [
        lambda: SphericalNet(SphericalNetConfig(6, 3, hidden_dims=(8, 12))),
        lambda: NDMNet(NDMConfig(6, 3, latent_dim=4, n_layers=3, hidden=8)),
    ],
    ids=["spherical", "ndm"],
)
@pytest.mark.parametrize("training", [True, False])
def test_stacked_module_maps_each_member_to_its_own_output(build, training):
    torch.manual_seed(0)
    members = [build() for _ in range(3)]
    for member in members:  # away from the identity start, so every layer matters
        with torch.no_grad():
            for p in member.parameters():
                p.add_(0.3 * torch.randn_like(p))
        member.train(training)
    assert all(member.broadcasts_over_members for member in members)
    stacked = _stacked_copy(members).train(training)
    x = torch.randn(3, 5, 6)
    out = stacked(x)
    for j, member in enumerate(members):
        expected = member(x[j])
        if training and isinstance(expected, tuple):  # (logits, penalty), penalty zero
            (expected, penalty), out_j = expected, out[0][j]
            assert float(penalty) == 0.0
        else:
            out_j = out[j]
        torch.testing.assert_close(out_j, expected, rtol=1e-5, atol=1e-5)


def test_modules_with_member_specific_terms_do_not_stack():
    assert not NDMNet(NDMConfig(6, 3, curvature_penalty=0.1)).broadcasts_over_members
    assert not NDMNet(NDMConfig(6, 3, volume_penalty=0.1)).broadcasts_over_members
    margin = SphericalNetConfig(6, 3, hidden_dims=(8,), margin="cosface", margin_value=0.2)
    assert not SphericalNet(margin).broadcasts_over_members


def _iterators(n_nets=3, n=50, sparse=False):
    """Each net's shuffled batch iterator over its own data, as a fit builds them."""
    import scipy.sparse as sp
    from skorch.dataset import Dataset

    from sphereml.training.batching import BatchIterator

    rng = np.random.default_rng(0)
    iterators = []
    for seed in range(n_nets):
        X = rng.standard_normal((n, 4)).astype(np.float32)
        inputs = {"x": sp.csr_matrix(X) if sparse else X, "w": rng.uniform(size=n)}
        dataset = Dataset(inputs, rng.integers(0, 3, n))
        iterators.append(BatchIterator(dataset, batch_size=16, shuffle=True, seed=seed))
    return iterators


@pytest.mark.parametrize("sparse", [False, True], ids=["stacked-data", "stacked-batches"])
def test_member_batches_are_each_iterators_own_batches(sparse):
    own = _iterators(sparse=sparse)
    batches = lockstep._MemberBatches(_iterators(sparse=sparse), {"w"}, torch.device("cpu"))
    assert batches.stacked is not sparse
    for epoch in range(3):
        if epoch == 2:  # the middle net stops: the others keep their own orders
            batches.keep([0, 2])
            own = [own[0], own[2]]
        expected = list(zip(*own, strict=True))
        got = list(batches)
        assert len(got) == len(expected) == 4
        for (X, y), per_net in zip(got, expected, strict=True):
            assert set(X) == {"x"}  # the skipped input is left out
            for j, (Xj, yj) in enumerate(per_net):
                torch.testing.assert_close(X["x"][j], torch.as_tensor(Xj["x"]), rtol=0, atol=0)
                torch.testing.assert_close(y[j], torch.as_tensor(yj), rtol=0, atol=0)


def test_stacked_data_stay_within_their_byte_budget(monkeypatch):
    monkeypatch.setattr(lockstep, "STACKED_DATA_BYTES", 1000)
    batches = lockstep._MemberBatches(_iterators(), set(), torch.device("cpu"))
    assert not batches.stacked  # each net's iterator cuts its own batch instead
    assert len(list(batches)) == 4


def test_unweighted_members_side_by_side_equal_members_one_by_one(monkeypatch):
    # without sample weights the stack leaves them out of the loss
    X, y, _ = _data()
    ran = []
    original = ensembles.train_lockstep
    monkeypatch.setattr(ensembles, "train_lockstep", lambda *a: (ran.append(1), original(*a)))

    def make():
        return NDMClassifier(n_estimators=3, n_iter_no_change=3, max_epochs=30, random_state=0)

    side_by_side = make().fit(X, y)
    monkeypatch.setattr(ensembles, "lockstep_supported", lambda nets: False)
    one_by_one = make().fit(X, y)
    assert ran
    assert side_by_side.n_iter_ == one_by_one.n_iter_
    np.testing.assert_allclose(side_by_side.loss_curve_, one_by_one.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(
        side_by_side.predict_proba(X), one_by_one.predict_proba(X), atol=1e-3
    )
