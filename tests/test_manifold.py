"""The unit-norm constraint survives copies, pickles and state dicts; one device resolver."""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest
import torch

from sphereml import (
    NDMClassifier,
    SphericalClassifier,
    VMFMixture,
)
from sphereml.geometry import project_to_tangent, unit_norm
from sphereml.nn import SphericalNet, SphericalNetConfig
from sphereml.nn.ngpt import NGPTEncoder, TextEncoderConfig
from sphereml.optim import RiemannianAdam
from sphereml.riemannian import (
    SphereParameter,
    max_norm_deviation,
    renormalize_,
    unit_norm_dim,
)
from sphereml.utils import resolve_device


def constrained(module: torch.nn.Module) -> dict[str, int]:
    return {
        name: unit_norm_dim(p)
        for name, p in module.named_parameters()
        if unit_norm_dim(p) is not None
    }


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return NGPTEncoder(TextEncoderConfig(30, 3, d_model=8, n_layers=1, n_heads=2, max_length=6))


def test_every_unit_weight_of_ngpt_is_declared(encoder):
    dims = constrained(encoder)
    # embedding, W_q/W_k/W_v (rows), W_o (columns), SwiGLU W_u/W_v (rows), W_o (columns), W_z
    assert dims == {
        "E.weight": 1,
        "blocks.0.attention.block.W_q.weight": 1,
        "blocks.0.attention.block.W_k.weight": 1,
        "blocks.0.attention.block.W_v.weight": 1,
        "blocks.0.attention.block.W_o.weight": 0,
        "blocks.0.mlp.block.W_u.weight": 1,
        "blocks.0.mlp.block.W_v.weight": 1,
        "blocks.0.mlp.block.W_o.weight": 0,
        "W_z.weight": 1,
    }
    assert max_norm_deviation(encoder) < 1e-6


@pytest.mark.parametrize(
    "roundtrip",
    [
        copy.deepcopy,
        lambda m: pickle.loads(pickle.dumps(m)),
        lambda m: torch.load(_saved(m), weights_only=False),
    ],
    ids=["deepcopy", "pickle", "torch.save"],
)
def test_copies_keep_the_constraint(encoder, roundtrip):
    copy_ = roundtrip(encoder)
    assert constrained(copy_) == constrained(encoder)
    # and the copy is really projected by renormalize_ (not treated as unconstrained)
    with torch.no_grad():
        for p in copy_.parameters():
            p.mul_(3.0)
    assert max_norm_deviation(copy_) > 1.0
    renormalize_(copy_)
    assert max_norm_deviation(copy_) < 1e-6


def _saved(module):
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return buffer


def test_state_dict_round_trip_keeps_the_constraint(encoder):
    fresh = NGPTEncoder(encoder.config)
    fresh.load_state_dict(copy.deepcopy(encoder.state_dict()))
    assert constrained(fresh) == constrained(encoder)
    for (name, a), b in zip(encoder.named_parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_riemannian_adam_treats_a_deep_copy_as_constrained():
    torch.manual_seed(0)
    net = SphericalNet(SphericalNetConfig(5, 3, hidden_dims=(4,)))
    twin = copy.deepcopy(net)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    for model in (net, twin):
        opt = RiemannianAdam(model.parameters(), lr=0.5)
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        assert max_norm_deviation(model) < 1e-6  # big steps, still on the sphere
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_sphere_parameter_moves_devices_and_dtypes():
    p = SphereParameter(torch.randn(3, 4), dim=1)
    holder = torch.nn.Module()
    holder.w = p
    holder.double()
    assert isinstance(holder.w, SphereParameter) and holder.w.dtype == torch.float64
    assert holder.w.manifold.dim == 1


def test_manifold_uses_the_shared_sphere_maths():
    # the torch constraint and the NumPy functions agree (one implementation)
    rng = np.random.default_rng(0)
    w, v = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    p = SphereParameter(torch.as_tensor(w), dim=0)
    unit = unit_norm(w, axis=0)
    np.testing.assert_allclose(p.manifold.projx(torch.as_tensor(w)).numpy(), unit, rtol=1e-15)
    tangent = p.manifold.proju(torch.as_tensor(unit), torch.as_tensor(v)).numpy()
    np.testing.assert_allclose(tangent, project_to_tangent(unit, v, axis=0), rtol=1e-15)
    np.testing.assert_allclose((tangent * unit).sum(0), 0.0, atol=1e-15)


# ------------------------------------------------------------------------ devices
@pytest.mark.parametrize(
    "device, expected",
    [
        ("cpu", "cpu"),
        (torch.device("cpu"), "cpu"),
        ("auto", "cuda" if torch.cuda.is_available() else "cpu"),
    ],
)
def test_resolve_device_accepts(device, expected):
    assert resolve_device(device).type == expected


@pytest.mark.parametrize(
    "device, error, words",
    [
        (3.5, TypeError, "string or a torch.device"),
        (3, TypeError, "string or a torch.device"),
        (None, TypeError, "string or a torch.device"),
        ("foo", ValueError, "not a device name"),
        ("meta", ValueError, "CPU, CUDA or MPS"),
        ("cuda" if not torch.cuda.is_available() else "cuda:99", ValueError, "CUDA"),
        pytest.param(
            "mps",
            ValueError,
            "MPS",
            marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="has MPS"),
        ),
    ],
)
def test_resolve_device_rejects(device, error, words):
    with pytest.raises(error, match=words):
        resolve_device(device)


@pytest.mark.parametrize(
    "make",
    [
        lambda device: VMFMixture(2, device=device, random_state=0),
        lambda device: SphericalClassifier(max_epochs=2, device=device, random_state=0),
        lambda device: NDMClassifier(max_epochs=2, device=device, random_state=0),
    ],
    ids=["VMFMixture", "SphericalClassifier", "NDMClassifier"],
)
def test_every_estimator_resolves_devices_the_same_way(make):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.arange(40) % 2
    make("auto").fit(X, y)
    make(torch.device("cpu")).fit(X, y)
    with pytest.raises(TypeError, match="string or a torch.device"):
        make(3.5).fit(X, y)
    with pytest.raises(ValueError, match="not a device name"):
        make("foo").fit(X, y)


def test_moved_names_still_import_with_a_deprecation_warning():
    import importlib
    import sys

    import sphereml.nn
    import sphereml.riemannian

    with pytest.warns(DeprecationWarning, match="sphereml.riemannian"):
        moved = sphereml.nn.SphereParameter
    assert moved is sphereml.riemannian.SphereParameter
    with pytest.raises(AttributeError, match="no attribute"):
        sphereml.nn.not_a_name  # noqa: B018
    sys.modules.pop("sphereml.sphere", None)
    with pytest.warns(DeprecationWarning, match="sphereml.geometry"):
        alias = importlib.import_module("sphereml.sphere")
    assert alias.unit_norm is unit_norm


def test_sphere_parameters_check_their_dimension_and_directions():
    from sphereml.riemannian import SphereParameter, constrain_unit_norm

    with pytest.raises(ValueError, match="dim=5 is out of range"):
        SphereParameter(torch.randn(3, 4), dim=5)
    with pytest.raises(TypeError, match="dim must be an integer"):
        SphereParameter(torch.randn(3, 4), dim=True)
    layer = torch.nn.Linear(3, 4)
    with torch.no_grad():
        layer.weight[1] = 0.0
    with pytest.raises(ValueError, match="1 slice\\(s\\) of zeros"):
        constrain_unit_norm(layer, "weight", dim=1)


def test_a_meta_parameter_is_declared_without_computing_on_it(monkeypatch):
    # a shapes-only build (the memory check) has no values; torch computes meta results
    # through slow Python reference code
    from sphereml.riemannian import SphereParameter, UnitSphere, constrain_unit_norm

    def refuse(self, w):
        raise AssertionError("projected a meta tensor")

    monkeypatch.setattr(UnitSphere, "projx_", refuse)
    with torch.device("meta"):
        layer = torch.nn.Linear(3, 4)
    param = constrain_unit_norm(layer, "weight", dim=1)
    assert isinstance(param, SphereParameter) and param.is_meta and layer.weight is param
