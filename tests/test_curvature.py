"""Scalar curvature against closed forms (float64), its gradient, and its estimators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sphereml import (
    NDMClassifier,
)
from sphereml.geometry import (
    scalar_curvature,
)
from sphereml.riemannian.curvature import scalar_curvature_exact, scalar_curvature_hutchinson

DT = torch.float64


def conformal(phi):
    """g = e^{2φ} I for a scalar field φ: (batch, n) → (batch,)."""

    def metric(z):
        return torch.exp(2 * phi(z))[:, None, None] * torch.eye(z.shape[1], dtype=z.dtype)

    return metric


def points(n, batch=6, scale=0.4, seed=0):
    return scale * torch.randn(batch, n, dtype=DT, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n", [2, 3, 4, 6])
@pytest.mark.parametrize("radius", [0.5, 1.0, 2.3])
def test_round_sphere_in_stereographic_coordinates(n, radius):
    # the sphere of radius r: g = 4 r² / (1 + |z|²)² I, R = n (n − 1) / r² everywhere
    sphere = conformal(lambda z: torch.log(2 * radius / (1 + (z**2).sum(1))))
    R = scalar_curvature(sphere, points(n), estimator="exact")
    torch.testing.assert_close(
        R, torch.full_like(R, n * (n - 1) / radius**2), rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize("n", [2, 3, 5])
def test_hyperbolic_space_in_the_poincare_ball(n):
    ball = conformal(lambda z: torch.log(2 / (1 - (z**2).sum(1))))
    z = points(n)
    z = 0.8 * z / (1 + z.norm(dim=1, keepdim=True))  # inside the unit ball
    R = scalar_curvature(ball, z, estimator="exact")
    torch.testing.assert_close(R, torch.full_like(R, -n * (n - 1.0)), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_conformally_flat_metric(n):
    # φ = 0.3 sin(z0) + 0.2 z1² + 0.1 z0 z_{n-1}: closed-form gradient and Laplacian
    def phi(z):
        return 0.3 * torch.sin(z[:, 0]) + 0.2 * z[:, 1] ** 2 + 0.1 * z[:, 0] * z[:, -1]

    z = points(n, scale=0.8)
    grad = torch.zeros_like(z)
    grad[:, 0] += 0.3 * torch.cos(z[:, 0]) + 0.1 * z[:, -1]
    grad[:, 1] += 0.4 * z[:, 1]
    grad[:, -1] += 0.1 * z[:, 0]
    laplacian = -0.3 * torch.sin(z[:, 0]) + 0.4  # the z0·z_{n-1} term is harmonic
    expected = -torch.exp(-2 * phi(z)) * (
        2 * (n - 1) * laplacian + (n - 1) * (n - 2) * (grad**2).sum(1)
    )
    R = scalar_curvature(conformal(phi), z, estimator="exact")
    torch.testing.assert_close(R, expected, rtol=1e-9, atol=1e-10)


def test_flat_metrics_in_curved_coordinates():
    # polar coordinates of the plane: g = diag(1, r²)
    def polar(z):
        return torch.diag_embed(torch.stack([torch.ones_like(z[:, 0]), z[:, 0] ** 2], 1))

    z = torch.rand(5, 2, dtype=DT) + torch.tensor([0.5, 0.0], dtype=DT)
    torch.testing.assert_close(
        scalar_curvature(polar, z), torch.zeros(5, dtype=DT), atol=1e-10, rtol=0
    )

    # the pull-back Jᵀ J of a nonlinear diffeomorphism of R³ (a metric with off-diagonal,
    # position-dependent entries that is still flat)
    A = torch.tensor([[0.5, -0.3, 0.2], [0.1, 0.4, -0.6], [0.3, 0.2, 0.1]], dtype=DT)

    def warp(x):
        return x + 0.3 * torch.tanh(A @ x) + 0.1 * torch.sin(x).roll(1)

    def pullback(z):
        J = torch.func.vmap(torch.func.jacfwd(warp))(z)
        return J.mT @ J

    R = scalar_curvature(pullback, points(3, scale=1.0))
    torch.testing.assert_close(R, torch.zeros_like(R), atol=1e-9, rtol=0)


def random_metric(n, seed=0):
    """A generic non-diagonal metric field LLᵀ + 0.5 I with smooth, position-dependent L."""
    g = torch.Generator().manual_seed(seed)
    W1 = torch.randn(n, 16, dtype=DT, generator=g) * 0.7
    W2 = torch.randn(16, n * n, dtype=DT, generator=g) * 0.3

    def metric(z):
        L = (torch.tanh(z @ W1) @ W2).reshape(-1, n, n).tril() + torch.eye(n, dtype=z.dtype)
        return L @ L.mT + 0.5 * torch.eye(n, dtype=z.dtype)

    return metric


def test_hutchinson_is_unbiased_and_its_variance_is_as_documented():
    metric = random_metric(3)
    z = points(3, batch=2)
    exact = scalar_curvature_exact(metric, z)
    gen = torch.Generator().manual_seed(1)
    n_samples = 4000  # independent probes: each point repeated, one probe pair per row
    samples = scalar_curvature_hutchinson(metric, z.repeat(n_samples, 1), 1, gen)
    samples = samples.reshape(n_samples, len(z))
    se = samples.std(0) / math.sqrt(len(samples))
    assert ((samples.mean(0) - exact).abs() < 4 * se).all(), (samples.mean(0), exact, se)
    # constant curvature: one probe's variance is 2 K² n (n − 1)(2n + 1)
    n, radius = 4, 1.5
    sphere = conformal(lambda z: torch.log(2 * radius / (1 + (z**2).sum(1))))
    one = scalar_curvature_hutchinson(sphere, points(n, batch=1).expand(20000, n), 1, gen)
    expected_var = 2 * n * (n - 1) * (2 * n + 1) / radius**4
    assert abs(one.var().item() / expected_var - 1) < 0.1


def test_gradient_matches_finite_differences():
    # R depends on the metric's parameters; its autograd gradient is checked in float64
    theta = torch.tensor([0.7, -0.4], dtype=DT, requires_grad=True)

    def make(theta):
        def phi(z):
            return theta[0] * torch.sin(z[:, 0] * z[:, 1]) + theta[1] * torch.cos(z[:, 2])

        return conformal(phi)

    z = points(3, batch=3, scale=0.9).requires_grad_(True)
    torch.autograd.gradcheck(lambda t, z: scalar_curvature(make(t), z).sum(), (theta, z))
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731 — same probes each call
    torch.autograd.gradcheck(
        lambda t: scalar_curvature(make(t), z.detach(), "hutchinson", 2, gen()).sum(), (theta,)
    )


def test_estimator_selection_and_errors():
    metric = random_metric(9)
    z = points(9, batch=2)
    with pytest.raises(ValueError, match="up to 8"):
        scalar_curvature(metric, z, estimator="exact")
    assert scalar_curvature(metric, z, estimator="auto").shape == (2,)  # picks hutchinson
    with pytest.raises(ValueError, match="estimator must be"):
        scalar_curvature(metric, z, estimator="magic")
    with pytest.raises(ValueError, match=r"shape \(batch, n\)"):
        scalar_curvature(metric, z[0])
    with pytest.raises(ValueError, match="n_probes"):
        scalar_curvature(metric, z, estimator="hutchinson", n_probes=0)

    def indefinite(z):  # diag(1, −1): not a Riemannian metric
        return torch.diag_embed(
            torch.stack([torch.ones_like(z[:, 0]), -torch.ones_like(z[:, 0])], 1)
        )

    with pytest.raises(ValueError, match="not positive definite at 2 of 2 points"):
        scalar_curvature(indefinite, points(2, batch=2))
    # auto is exact at n ≤ 8: identical to the exact call
    small = random_metric(3)
    z3 = points(3)
    torch.testing.assert_close(scalar_curvature(small, z3), scalar_curvature_exact(small, z3))


def _conformal(z):
    return (1 + (z**2).sum(-1))[:, None, None] * torch.eye(z.shape[1], dtype=z.dtype)


def _in_place(z):
    g = torch.zeros(len(z), 2, 2, dtype=z.dtype)
    g[:, 0, 0] = 1 + z[:, 0] ** 2
    g[:, 1, 1] = 1.0
    return g


def test_probe_curvature_warns_before_gigabytes():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.warns(UserWarning, match="GiB per training step"):
        NDMClassifier(latent_dim=16, curvature_penalty=0.1, max_epochs=1).fit(X, np.arange(20) % 2)


@pytest.mark.parametrize(
    "metric, z, words",
    [
        (_conformal, torch.full((2, 2), float("nan"), dtype=torch.float64), "NaN"),
        (_conformal, torch.zeros(3, 0, dtype=torch.float64), "n = 0"),
        (lambda z: torch.eye(3, dtype=z.dtype).expand(len(z), 3, 3), torch.zeros(2, 2), "shape"),
        (lambda z: -_conformal(z), torch.zeros(2, 2, dtype=torch.float64), "positive definite"),
        (_in_place, torch.zeros(2, 2, dtype=torch.float64), "in-place"),
    ],
    ids=["nan", "n=0", "wrong-shape", "not-pd", "in-place"],
)
def test_scalar_curvature_names_the_problem(metric, z, words):
    with pytest.raises(ValueError, match=words):
        scalar_curvature(metric, z)
