"""Operations on the unit sphere S^(d-1) ⊂ R^d, for NumPy arrays and torch tensors.

Every function takes either a NumPy array or a torch tensor and returns the same kind;
torch is imported only when a tensor is passed. Points are rows (the last axis is the
ambient dimension d) so batches broadcast naturally.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "unit_norm",
    "l2_normalize",
    "geodesic_distance",
    "project_to_tangent",
    "exp_map",
    "log_map",
]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _norm(x, keepdims=True, axis: int = -1):
    if _is_torch(x):
        return x.norm(dim=axis, keepdim=keepdims)
    return np.linalg.norm(x, axis=axis, keepdims=keepdims)


def _safe_norm(x):
    """Row norms that neither underflow (|x| ~ 1e-200) nor overflow (|x| ~ 1e200).

    The plain norm is used where it is representable; the few rows where x*x under- or
    overflowed are recomputed as max|x| · ‖x / max|x|‖.
    """
    if _is_torch(x):
        norms = _norm(x)
    else:
        with np.errstate(over="ignore", under="ignore"):  # handled below
            norms = _norm(x)
    suspect = (norms == 0) | ~(norms < float("inf"))
    if not bool(suspect.any()):
        return norms
    if _is_torch(x):
        import torch

        scale = x.abs().amax(dim=-1, keepdim=True)
        safe_scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        return torch.where(suspect, scale * (x / safe_scale).norm(dim=-1, keepdim=True), norms)
    max_abs = np.abs(x).max(axis=-1, keepdims=True)
    safe_max_abs = np.where(max_abs == 0, 1.0, max_abs)
    with np.errstate(invalid="ignore", over="ignore"):
        rescaled = max_abs * np.linalg.norm(x / safe_max_abs, axis=-1, keepdims=True)
    return np.where(suspect, rescaled, norms)


def _finfo(x):
    if _is_torch(x):
        import torch

        return torch.finfo(x.dtype)
    return np.finfo(x.dtype)


def _max_abs(x):
    if _is_torch(x):
        return x.abs().amax(dim=-1, keepdim=True)
    return np.abs(x).max(axis=-1, keepdims=True)


def _sum(x, axis=-1):
    if _is_torch(x):
        return x.sum(dim=axis, keepdim=True)
    return x.sum(axis=axis, keepdims=True)


def _atan2(y, x):
    if _is_torch(y):
        import torch

        return torch.atan2(y, x)
    return np.arctan2(y, x)


def _where(cond, a, b):
    if _is_torch(cond):
        import torch

        return torch.where(cond, a, b)
    return np.where(cond, a, b)


#: Floor for norms in :func:`unit_norm`: small enough not to bias unit vectors, large
#: enough that a (numerically) zero vector maps to a finite vector instead of NaN.
NORM_EPS = 1e-12


def unit_norm(x, *, axis: int = -1, eps: float = NORM_EPS):
    """``x / max(‖x‖, eps)`` along ``axis``: the unchecked projection onto the sphere.

    The fast path used inside models and optimisers (differentiable for tensors, no
    validation, no host synchronisation). For tensors the norm is accumulated in float32
    or wider, so that under bf16/fp16 autocast the sum of squares keeps the digits unit
    norm needs, and the result is cast back. Use :func:`l2_normalize` for user input: it
    checks for non-finite values and zero rows and is exact for extreme magnitudes.

    Parameters
    ----------
    x : ndarray or torch.Tensor
    axis : int, default=-1
    eps : float, default=1e-12

    Returns
    -------
    Same type, shape and dtype as ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> unit_norm(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    if _is_torch(x):
        import torch

        if x.is_cuda and x.dtype != torch.float64 and axis in (-1, x.ndim - 1):
            return _unit_norm_fused(x, eps)
        norm_dtype = torch.promote_types(x.dtype, torch.float32)
        norm = torch.linalg.vector_norm(x, dim=axis, keepdim=True, dtype=norm_dtype)
        return (x / norm.clamp_min(eps)).to(x.dtype)
    x = np.asarray(x)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, eps)


def _unit_norm_fused(x, eps: float = NORM_EPS):
    """``x / sqrt(‖x‖² + eps²)`` along the last axis as one fused RMSNorm kernel (forward
    and backward), accumulated in float32: ``rms_norm(x) = x / sqrt(‖x‖²/d + ε)``, so with
    ε = eps²/d and the weight 1/√d it is the unit vector. Equal to the three-kernel form
    (norm, clamp, divide) up to rounding except for ‖x‖ ≲ eps. Used for CUDA tensors in
    :func:`unit_norm`, where nGPT runs several per block on (tokens × d) activations."""
    import torch

    d = x.shape[-1]
    key = (d, x.dtype, x.device)
    weight = _RMS_WEIGHTS.get(key)
    if weight is None:
        weight = _RMS_WEIGHTS[key] = torch.full((d,), d**-0.5, dtype=x.dtype, device=x.device)
    # (autocast may run rms_norm in float32; the result keeps x's dtype as unit_norm's does)
    return torch.nn.functional.rms_norm(x, (d,), weight=weight, eps=eps * eps / d).to(x.dtype)


# 1/√d weight vectors for _unit_norm_fused, per (d, dtype, device); created outside any
# CUDA graph capture by the first (eager) call
_RMS_WEIGHTS: dict = {}


def l2_normalize(x, *, zero_rows: str = "raise", eps: float = 0.0):
    """Scale each row of ``x`` to unit Euclidean norm.

    Parameters
    ----------
    x : ndarray or torch.Tensor of shape (..., d), or scipy.sparse matrix (n, d)
    zero_rows : {"raise", "keep"}, default="raise"
        Rows of norm 0 (or ``<= eps``) have no direction. ``"raise"`` raises a
        ``ValueError`` naming them; ``"keep"`` leaves them as they are (zero), for callers
        that mask them later. Non-finite values always raise.
    eps : float, default=0.0
        Norms ``<= eps`` count as zero.

    Returns
    -------
    Same type and shape as ``x``; sparse input stays sparse (CSR).
    """
    if zero_rows not in ("raise", "keep"):
        raise ValueError(f"zero_rows must be 'raise' or 'keep'; got {zero_rows!r}.")
    import scipy.sparse as sp

    if sp.issparse(x):
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
                or np.issubdtype(x.dtype, np.bool_)):  # fmt: skip
            raise TypeError(f"x must be real numbers; got dtype {x.dtype}")
        x = sp.csr_matrix(x, dtype=np.result_type(x.dtype, np.float32))
        if not np.all(np.isfinite(x.data)):
            raise ValueError("Input contains NaN or infinity.")
        x.sum_duplicates()
        # each row divided by its max |x| first (a division, exact even for subnormal
        # rows, where a reciprocal would overflow): the squares then neither overflow
        # nor underflow
        data = x.data.astype(np.float64)
        row_of = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        max_abs = np.zeros(x.shape[0])
        filled = np.diff(x.indptr) > 0
        if data.size:
            max_abs[filled] = np.maximum.reduceat(np.abs(data), x.indptr[:-1][filled])
        zero = max_abs <= eps
        if zero_rows == "raise" and zero.any():
            _raise_zero_rows(np.flatnonzero(zero))
        safe_max = np.where(max_abs > 0, max_abs, 1.0)
        scaled = data / safe_max[row_of]
        scaled_norms = np.sqrt(np.bincount(row_of, weights=scaled * scaled, minlength=x.shape[0]))
        safe_norms = np.where(scaled_norms > 0, scaled_norms, 1.0)
        unit = (scaled / safe_norms[row_of]).astype(x.dtype)
        return sp.csr_matrix((unit, x.indices.copy(), x.indptr.copy()), shape=x.shape)

    x = _as_real_points(x, "x")
    norms = _safe_norm(x)
    zero = norms <= eps
    if zero_rows == "raise" and bool(zero.any()):
        rows = zero.reshape(-1) if not _is_torch(zero) else zero.reshape(-1).cpu().numpy()
        _raise_zero_rows(np.flatnonzero(rows))
    info = _finfo(x)
    tiny_or_huge = ~zero & ((norms < info.tiny**0.5) | (norms > info.max**0.5))
    if bool(tiny_or_huge.any()):
        # Dividing by a norm that is itself subnormal (or near overflow) loses its digits;
        # bring those rows to max|x| = 1 first, where the norm is exact to rounding.
        scale = _where(tiny_or_huge, _max_abs(x), 1.0 + 0 * norms)
        x = x / scale
        norms = _where(tiny_or_huge, _norm(x), norms)
    return x / _where(zero, 1.0 + 0 * norms, norms)


def _as_real_points(x, name: str):
    """A finite real floating array or tensor, or an error naming ``name``.

    Integers and booleans become float64; complex, object and string data raise a
    TypeError (the sphere here is real), NaN or infinity a ValueError.
    """
    if _is_torch(x):
        import torch

        if x.is_complex():
            raise TypeError(f"{name} must be real numbers; got a tensor of dtype {x.dtype}")
        if not torch.is_floating_point(x):
            x = x.to(torch.float64)
        _check_point_shape(tuple(x.shape), name)
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or infinity.")
        return x
    try:
        array = np.asarray(x)
    except ValueError as error:  # ragged nested sequences
        raise ValueError(
            f"{name} must be an array of points of one dimension d, shape (..., d); got rows "
            f"of different lengths ({error})"
        ) from None
    if not (
        np.issubdtype(array.dtype, np.floating)
        or np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.bool_)
    ):
        hint = " (strings or rows of different lengths?)" if array.dtype == object else ""
        raise TypeError(f"{name} must be real numbers; got dtype {array.dtype}{hint}")
    _check_point_shape(array.shape, name)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinity.")
    return array


def _check_point_shape(shape: tuple, name: str) -> None:
    """Points are arrays of shape (..., d) with d >= 1: not scalars, not empty rows."""
    if len(shape) == 0:
        raise ValueError(
            f"{name} must be a point or an array of points, shape (..., d); got a scalar"
        )
    if shape[-1] == 0:
        raise ValueError(f"{name} has shape {shape}: points need at least one coordinate (d >= 1)")


def _check_same_dimension(a, b, names: tuple[str, str]) -> None:
    """Two arrays of points in the same ambient space R^d, broadcastable over rows."""
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must be points in the same dimension d (the last "
            f"axis); got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )
    try:
        np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        raise ValueError(
            f"{names[0]} and {names[1]} have shapes {tuple(a.shape)} and {tuple(b.shape)}, "
            "which do not broadcast against each other"
        ) from None


def _check_unit(x, name: str, axis: int = -1):
    """Validate points that must lie on the sphere (unit norm along ``axis``)."""
    x = _as_real_points(x, name)
    deviation = _norm(x, axis=axis) - 1.0
    worst = (
        float(deviation.abs().max()) if _is_torch(x) else float(np.abs(deviation).max(initial=0))
    )
    tolerance = float(_finfo(x).eps) ** 0.5
    if worst > tolerance:
        raise ValueError(
            f"{name} must have rows of unit norm (points on the sphere), but a norm differs "
            f"from 1 by {worst:.3g} (> {tolerance:.1g}); normalise it first, e.g. with "
            "sphereml.geometry.l2_normalize"
        )
    return x


def _raise_zero_rows(rows: np.ndarray) -> None:
    shown = ", ".join(map(str, rows[:10])) + (", ..." if rows.size > 10 else "")
    raise ValueError(
        f"{rows.size} row(s) have zero norm and cannot be projected onto the unit sphere "
        f"(row indices: {shown}). Remove them or give them a direction."
    )


def geodesic_distance(u, v):
    """Great-circle distance arccos(uᵀv) between unit vectors, broadcast over rows.

    Computed as ``2 atan2(‖u - v‖, ‖u + v‖)``, which keeps full relative accuracy near 0
    and π where ``arccos`` of a rounded cosine does not.

    Parameters
    ----------
    u, v : array or tensor of shape (..., d), unit rows
        Rows whose norm differs from 1 by more than √eps raise a ValueError.

    Returns
    -------
    array or tensor of shape (...), values in [0, π].

    Examples
    --------
    >>> import numpy as np
    >>> float(geodesic_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])))  # π/2
    1.5707963267948966
    """
    u, v = _as_real_points(u, "u"), _as_real_points(v, "v")
    _check_same_dimension(u, v, ("u", "v"))
    u, v = _check_unit(u, "u"), _check_unit(v, "v")
    return _geodesic_distance(u, v)


def _geodesic_distance(u, v):
    return 2.0 * _atan2(_norm(u - v, False), _norm(u + v, False))


def project_to_tangent(x, g, *, axis: int = -1):
    """Riemannian gradient: the component of ``g`` tangent to the sphere at ``x``, g - (gᵀx) x.

    Parameters
    ----------
    x : array or tensor of shape (..., d), unit rows (base points)
        Rows whose norm differs from 1 by more than √eps raise a ValueError.
    g : array or tensor of shape (..., d), ambient vectors (e.g. Euclidean gradients)
    axis : int, default=-1
        The ambient axis (``0`` for a weight matrix whose columns are the unit vectors).

    Examples
    --------
    >>> import numpy as np
    >>> project_to_tangent(np.array([1.0, 0.0]), np.array([2.0, 3.0]))
    array([0., 3.])
    """
    x = _check_unit(x, "x", axis=axis)
    g = _as_real_points(g, "g")
    try:
        same = x.shape[axis] == g.shape[axis]
    except IndexError:
        same = False
    if not same:
        raise ValueError(
            f"x and g must be points in the same dimension d (axis {axis}); got shapes "
            f"{tuple(x.shape)} and {tuple(g.shape)}"
        )
    if axis in (-1, x.ndim - 1):
        _check_same_dimension(x, g, ("x", "g"))
    return tangent_component(x, g, axis=axis)


def tangent_component(x, g, *, axis: int = -1):
    """:func:`project_to_tangent` without validation: for inner loops (optimisers) whose
    base points are unit by construction."""
    return g - _sum(g * x, axis) * x


def exp_map(x, v):
    """Exponential map at ``x``: follow the great circle from x in tangent direction v.

    ``exp_x(v) = cos(‖v‖) x + sin(‖v‖) v / ‖v‖``; ``v = 0`` returns ``x``. Finite for any
    finite v (the norm is computed without overflow; the map is 2π-periodic in ‖v‖).

    Parameters
    ----------
    x : array or tensor of shape (..., d), unit rows
    v : array or tensor of shape (..., d), tangent at x (vᵀx = 0)
        A component along x larger than √eps · max(1, ‖v‖) raises a ValueError: project
        it first with :func:`project_to_tangent`.

    Examples
    --------
    >>> import numpy as np
    >>> exp_map(np.array([1.0, 0.0]), np.array([0.0, np.pi / 2])).round(12)
    array([0., 1.])
    """
    x = _check_unit(x, "x")
    v = _as_real_points(v, "v")
    _check_same_dimension(x, v, ("x", "v"))
    theta = _safe_norm(v)
    radial = _sum(v * x, -1)
    scale = _where(theta > 1.0, theta, 1.0 + 0 * radial)
    worst = (
        float((radial.abs() / scale).max())
        if _is_torch(v)
        else float(np.max(np.abs(radial) / scale, initial=0))
    )
    if worst > float(_finfo(v).eps) ** 0.5:
        raise ValueError(
            f"v must be tangent to the sphere at x (vᵀx = 0), but its component along x is "
            f"{worst:.3g} of its length; project it with sphereml.geometry.project_to_tangent"
        )
    if _is_torch(theta):
        import torch

        small = theta < 1e-8
        safe = torch.where(small, torch.ones_like(theta), theta)
        # sin(θ)/θ → 1 - θ²/6 for tiny θ, so v / θ * sin θ stays accurate.
        sinc = torch.where(small, 1.0 - torch.where(small, theta, 0.0) ** 2 / 6.0, 0.0)
        direction = torch.where(small, v, v / safe)
        return torch.cos(theta) * x + torch.where(small, sinc * v, torch.sin(theta) * direction)
    tiny = theta < 1e-8
    safe_theta = np.where(tiny, 1.0, theta)
    sinc_np = 1.0 - np.where(tiny, theta, 0.0) ** 2 / 6.0
    along = np.where(tiny, sinc_np * v, np.sin(theta) * (v / safe_theta))
    return np.cos(theta) * x + along


def log_map(x, y):
    """Logarithm map at ``x``: the tangent vector at x pointing to y with length d(x, y).

    Inverse of :func:`exp_map` for d(x, y) < π (antipodal points have no unique answer;
    the result there is finite but arbitrary along the degenerate direction).

    Parameters
    ----------
    x, y : array or tensor of shape (..., d), unit rows
        Rows whose norm differs from 1 by more than √eps raise a ValueError.
    """
    x, y = _as_real_points(x, "x"), _as_real_points(y, "y")
    _check_same_dimension(x, y, ("x", "y"))
    x, y = _check_unit(x, "x"), _check_unit(y, "y")
    u = tangent_component(x, y)  # = y - cos θ x, of norm sin θ
    theta = _geodesic_distance(x, y)
    u_norm = _norm(u, False)
    if _is_torch(u):
        import torch

        small = u_norm < 1e-12
        scale = torch.where(
            small,
            torch.ones_like(theta),
            theta / torch.where(small, torch.ones_like(u_norm), u_norm),
        )
        return scale[..., None] * u
    degenerate = u_norm < 1e-12
    scale_np = np.where(degenerate, 1.0, theta / np.where(degenerate, 1.0, u_norm))
    return scale_np[..., None] * u
