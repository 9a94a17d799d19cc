from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from property_inputs import SETTINGS, any_arrays, clear_error_or, finite

from sphereml.geometry import (
    exp_map,
    geodesic_distance,
    l2_normalize,
    log_map,
    project_to_tangent,
)

finite_rows = arrays(
    np.float64,
    st.tuples(st.integers(1, 6), st.integers(2, 6)),
    elements=st.floats(-1e3, 1e3, allow_nan=False),
)


@settings(max_examples=100, deadline=None)
@given(finite_rows)
def test_l2_normalize_unit_rows_or_names_zero_rows(x):
    norms = np.where(x.any(axis=1), 1.0, 0.0)  # rows are zero exactly when all entries are
    if np.any(norms == 0):
        with pytest.raises(ValueError, match="zero norm"):
            l2_normalize(x)
        kept = l2_normalize(x, zero_rows="keep")
        assert np.all(kept[norms == 0] == 0)
    else:
        np.testing.assert_allclose(np.linalg.norm(l2_normalize(x), axis=1), 1.0, rtol=1e-12)


def test_l2_normalize_error_lists_rows_and_rejects_nonfinite():
    x = np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 2.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match=r"2 row\(s\).*1, 3"):
        l2_normalize(x)
    for bad in [np.nan, np.inf]:
        with pytest.raises(ValueError, match="NaN or infinity"):
            l2_normalize(np.array([[1.0, bad]]))


def test_l2_normalize_sparse_stays_sparse_and_torch_stays_torch():
    x = sp.random(20, 50, density=0.2, format="csr", random_state=0) + sp.eye(20, 50, format="csr")
    y = l2_normalize(x)
    assert sp.issparse(y)
    np.testing.assert_allclose(np.sqrt(y.multiply(y).sum(axis=1)).A1, 1.0)
    t = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    assert torch.allclose(l2_normalize(t), torch.tensor([[0.6, 0.8]], dtype=torch.float64))
    with pytest.raises(ValueError, match="zero norm"):
        l2_normalize(torch.zeros(1, 3))


@pytest.mark.parametrize("theta", [1e-12, 1e-7, 0.3, np.pi / 2, np.pi - 1e-7, np.pi - 1e-10])
def test_geodesic_distance_accurate_near_zero_and_pi(theta):
    u = np.array([1.0, 0.0, 0.0])
    v = np.array([np.cos(theta), np.sin(theta), 0.0])
    # The rounded v carries an angle error of ~1e-16 absolute: compare absolutely at π.
    assert geodesic_distance(u, v) == pytest.approx(theta, rel=1e-9, abs=1e-15)
    assert geodesic_distance(torch.tensor(u), torch.tensor(v)).item() == pytest.approx(
        theta, rel=1e-9, abs=1e-15
    )


def test_arccos_would_fail_where_we_do_not():
    theta = 1e-9
    u, v = np.array([1.0, 0.0]), np.array([np.cos(theta), np.sin(theta)])
    assert np.arccos(np.clip(u @ v, -1, 1)) == 0.0  # catastrophic: the peer formula
    assert geodesic_distance(u, v) == pytest.approx(theta, rel=1e-12)


unit_pairs = st.integers(0, 10**6).map(lambda s: np.random.default_rng(s))


@settings(max_examples=50, deadline=None)
@given(unit_pairs, st.integers(2, 8))
def test_exp_log_are_inverse_and_tangent_is_orthogonal(rng, d):
    x = l2_normalize(rng.standard_normal((4, d)))
    y = l2_normalize(rng.standard_normal((4, d)))
    v = log_map(x, y)
    np.testing.assert_allclose(np.sum(v * x, axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), geodesic_distance(x, y), atol=1e-12)
    np.testing.assert_allclose(exp_map(x, v), y, atol=1e-10)
    g = rng.standard_normal((4, d))
    np.testing.assert_allclose(np.sum(project_to_tangent(x, g) * x, axis=1), 0.0, atol=1e-12)
    # torch path gives the same numbers
    tv = log_map(torch.tensor(x), torch.tensor(y)).numpy()
    np.testing.assert_allclose(tv, v, atol=1e-12)
    np.testing.assert_allclose(exp_map(torch.tensor(x), torch.tensor(v)).numpy(), y, atol=1e-10)


def test_exp_map_zero_vector_and_tiny_vector():
    x = np.array([[0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(exp_map(x, np.zeros((1, 3))), x)
    v = np.array([[1e-10, 0.0, 0.0]])
    np.testing.assert_allclose(exp_map(x, v), [[1e-10, 0.0, 1.0]], atol=1e-20)


@pytest.mark.parametrize("value", [5e-324, 1e-310, 1e-200, 1e200, 1e307])
def test_l2_normalize_subnormal_and_huge_rows_are_exact(value):
    """Found by hypothesis: [5e-324, 5e-324] came out with norm √2 (a subnormal divisor)."""
    x = np.array([[value, value], [value, 0.0], [1.0, 2.0]])
    expected = np.array([[2**-0.5, 2**-0.5], [1.0, 0.0], [1.0, 2.0] / np.sqrt(5.0)])
    np.testing.assert_allclose(l2_normalize(x), expected, rtol=1e-15)
    np.testing.assert_allclose(l2_normalize(torch.tensor(x)).numpy(), expected, rtol=1e-15)


def test_geometry_refuses_points_off_the_sphere():
    u, v = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    for call in (
        lambda: geodesic_distance(u, v),
        lambda: project_to_tangent(v, u),
        lambda: exp_map(v, u),
        lambda: log_map(u, v),
    ):
        with pytest.raises(ValueError, match="unit norm"):
            call()
    with pytest.raises(ValueError, match="tangent"):
        exp_map(u, np.array([1.0, 1.0]))


@pytest.mark.parametrize("scale", [1e150, 1e300, -1e300])
def test_exp_map_is_finite_for_huge_tangents(scale):
    out = exp_map(np.array([1.0, 0.0, 0.0]), np.array([0.0, scale, 0.0]))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="NaN or infinity"):
        exp_map(np.array([1.0, 0.0]), np.array([0.0, np.inf]))


def test_l2_normalize_refuses_complex_input():
    with pytest.raises(TypeError, match="real numbers"):
        l2_normalize(np.array([[1 + 1j, 2.0]]))
    with pytest.raises(TypeError, match="real numbers"):
        l2_normalize(torch.tensor([[1 + 1j, 2.0]]))


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: l2_normalize(np.float64(3.0)), ValueError, "got a scalar"),
        (lambda: l2_normalize(np.zeros((3, 0))), ValueError, "at least one coordinate"),
        (lambda: l2_normalize(np.array([["a", "b"]], dtype=object)), TypeError, "real numbers"),
        (lambda: geodesic_distance([[1.0, 0.0]], [[1.0, 0.0, 0.0]]), ValueError, "same dimension"),
        (lambda: geodesic_distance(np.float64(1), np.float64(1)), ValueError, "scalar"),
        (lambda: log_map(np.zeros((3, 0)), np.zeros((3, 0))), ValueError, "coordinate"),
        (lambda: exp_map(np.eye(2)[0], np.array([0.0, 1.0, 0.0])), ValueError, "same dimension"),
        (lambda: project_to_tangent([1.0, 0.0], [0.0, 1.0, 0.0]), ValueError, "same dimension"),
        (lambda: geodesic_distance(np.eye(3)[:2], np.eye(3)), ValueError, "broadcast"),
    ],
)
def test_geometry_names_shape_problems(call, error, words):
    with pytest.raises(error, match=words):
        call()


@SETTINGS
@given(x=any_arrays, sparse=st.booleans())
def test_l2_normalize_on_any_input(x, sparse):
    if sparse and x.ndim == 2 and x.dtype != np.complex128:
        x = sp.csr_matrix(x)

    def unit(result):
        dense = result.toarray() if sp.issparse(result) else np.asarray(result)
        assert np.all(np.isfinite(dense))
        if dense.size:
            np.testing.assert_allclose(np.linalg.norm(dense, axis=-1), 1.0, rtol=1e-5)

    clear_error_or(unit, lambda: l2_normalize(x))


@SETTINGS
@given(u=any_arrays, v=any_arrays)
def test_geodesic_and_maps_on_any_input(u, v):
    def in_range(result):
        r = np.asarray(result)
        assert np.all(np.isfinite(r)) and np.all((r >= 0) & (r <= np.pi + 1e-12))

    clear_error_or(in_range, lambda: geodesic_distance(u, v))
    clear_error_or(finite, lambda: exp_map(u, v))
    clear_error_or(finite, lambda: log_map(u, v))
