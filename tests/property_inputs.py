"""Shared strategies and checks of the property-based tests (hypothesis)."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# messages of errors raised deep inside NumPy, SciPy or torch, which do not name the
# problem in the caller's terms
OPAQUE = (
    "not supported between instances",
    "object has no attribute",
    "index out of bounds",
    "could not broadcast",
    "setting an array element with a sequence",
    "'NoneType' object",
    "unhashable type",
    "division by zero",
)


SETTINGS = settings(
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


ESTIMATOR_SETTINGS = settings(
    deadline=None,
    max_examples=12,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def clear_error_or(result_check, call):
    """Run ``call``: it either raises a ValueError/TypeError with a clear message, or its
    result passes ``result_check``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = call()
        except (ValueError, TypeError) as exc:
            message = str(exc)
            assert len(message) > 15, f"terse error: {exc!r}"
            assert not any(p in message for p in OPAQUE), f"opaque error: {exc!r}"
            return None
    result_check(result)
    return result


def finite(result):
    arrays = result if isinstance(result, tuple) else (result,)
    for a in arrays:
        assert np.all(np.isfinite(np.asarray(a, dtype=float))), result


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 10**6),
    st.sampled_from([0.0, 1e-300, 1e300, -0.0, 2.5, 1e-9]),
)


shapes = hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4)


real_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.int64, np.bool_]),
    shape=shapes,
    elements=None,
)


any_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.int32, np.complex128, np.bool_]),
    shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=5),
)


float_data = hnp.arrays(
    dtype=np.float64,
    shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=12),
    elements=st.one_of(
        st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False),
        st.sampled_from([0.0, np.nan, np.inf, 1e-300, -1e300, 1.0, -2.0]),
    ),
)


@st.composite
def data(draw):
    """Float64 data of any magnitude, cast to float32 / int64 / kept (casts may overflow)."""
    X = draw(float_data)
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return X.astype(dtype)


labels = st.one_of(
    st.lists(st.integers(0, 2), min_size=0, max_size=12),
    st.lists(st.sampled_from(["a", "b", None]), min_size=0, max_size=12),
    st.lists(st.one_of(st.just("a"), st.just(1)), min_size=0, max_size=12),
    st.lists(st.floats(allow_nan=True), min_size=0, max_size=12),
)
