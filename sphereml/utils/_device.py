"""One meaning of ``device=`` for every estimator."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: what ``device`` accepts, for error messages and docstrings
DEVICE_DOC = '"cpu", "cuda", "cuda:<index>", "mps", "auto" or a torch.device'


def resolve_device(device: Any) -> torch.device:
    """The torch device that ``device`` names, checked to be usable here.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:<index>"``, ``"mps"``, a ``torch.device`` of those
        types, or ``"auto"`` (CUDA when available, else the CPU).

    Returns
    -------
    torch.device

    Raises
    ------
    TypeError
        ``device`` is neither a string nor a ``torch.device``.
    ValueError
        The string is no device name, the device type is not one computations run on
        (e.g. ``"meta"``), or the device is not available on this machine.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("tpu")
    Traceback (most recent call last):
    ...
    ValueError: device='tpu' is not a device name; use "cpu", "cuda", ...
    """
    import torch

    if isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            resolved = torch.device(device)
        except (RuntimeError, ValueError):
            raise ValueError(f"device={device!r} is not a device name; use {DEVICE_DOC}") from None
    elif isinstance(device, torch.device):
        resolved = device
    else:
        raise TypeError(f"device must be a string or a torch.device ({DEVICE_DOC}), got {device!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} but CUDA is not available here; use device='cpu' or 'auto'"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device={device!r} but MPS is not available here; use 'cpu'")
    elif resolved.type != "cpu":
        raise ValueError(
            f"device={device!r}: sphereml computes on CPU, CUDA or MPS devices; use {DEVICE_DOC}"
        )
    return resolved


def _is_torch_device(value: Any) -> bool:
    return type(value).__name__ == "device" and type(value).__module__ == "torch"


def device_to_state(value: Any) -> Any:
    """``device`` as plain data for a saved model: a ``torch.device`` becomes
    ``{"torch.device": "cuda:0"}`` so that loading trusts no torch type."""
    return {"torch.device": str(value)} if _is_torch_device(value) else value


def device_from_state(value: Any) -> Any:
    """The inverse of :func:`device_to_state`."""
    if isinstance(value, dict) and set(value) == {"torch.device"}:
        import torch

        return torch.device(str(value["torch.device"]))
    return value


@functools.cache
def fused_adam_available(device_type: str) -> bool:
    """Whether torch has a fused Adam kernel for this device type (the CPU's came with
    torch 2.4): one kernel per step for all parameters instead of one per operation."""
    import torch

    try:
        torch.optim.Adam([torch.zeros(1, device=device_type, requires_grad=True)], fused=True)
    except (RuntimeError, ValueError, TypeError):
        return False
    return True
