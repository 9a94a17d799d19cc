"""Checks the neural estimators run before allocating: at fit (the network fits in the
device's memory, the accelerator is one) and at load (the stored weights are the ones
the stored hyper-parameters build), plus the plain-data form of ``device`` in a saved
state. Each builds the network on torch's ``meta`` device, which allocates nothing."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ..utils._device import device_from_state, device_to_state
from ..utils._memory import device_memory


def check_accelerator(accelerator: Any) -> None:
    """``accelerator`` is None or an ``accelerate.Accelerator`` (a TypeError otherwise)."""
    if accelerator is None:
        return
    try:
        from accelerate import Accelerator
    except ImportError:
        Accelerator = None
    if Accelerator is None or not isinstance(accelerator, Accelerator):
        raise TypeError(
            "accelerator must be None or an accelerate.Accelerator (from the Hugging Face "
            f"accelerate package), got {accelerator!r}"
        )


def meta_module(estimator: Any, n_classes: int) -> torch.nn.Module:
    """One member of ``estimator``'s module built on the ``meta`` device: shapes only."""
    members = estimator.__dict__.get("n_estimators_")
    if members is not None:
        estimator.__dict__["n_estimators_"] = 1
    try:
        # warnings about the module (e.g. its cost) come from the real build
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return estimator._build_module(n_classes)
    finally:
        if members is not None:
            estimator.__dict__["n_estimators_"] = members


def check_module_size(estimator: Any, n_classes: int, members: int, device: torch.device) -> None:
    """Refuse, naming the hyper-parameters, networks that cannot fit in memory.

    ``members`` networks of one member's size each need their weights, gradients and two
    Adam moments in float32 (16 bytes a parameter), and their buffers (tables such as
    rotary positions, built through float64 intermediates: 16 bytes an element); beyond
    the device's memory the fit could only fail deep inside torch's allocator.
    """
    params = estimator.get_params(deep=False)
    named = ", ".join(
        f"{name}={params[name]!r}"
        for name in (*estimator._SIZE_PARAMETERS, "n_estimators")
        if name in params
    )
    try:
        module = meta_module(estimator, n_classes)
    except RuntimeError as error:  # sizes beyond what torch can even describe
        raise ValueError(f"the network cannot be built ({error}); reduce {named}") from None
    numel = sum(p.numel() for p in module.parameters())
    numel_buffers = sum(b.numel() for b in module.buffers())
    needed = members * 16 * (numel + numel_buffers)
    available = device_memory(device)
    if available is None or needed <= available:
        return
    raise ValueError(
        f"the network{'s' if members > 1 else ''} to train would need "
        f"{needed / 2**30:.3g} GiB ({members} x {numel:,} parameters with their "
        f"gradients and optimiser state, and {numel_buffers:,} buffer elements), more "
        f"than the {available / 2**30:.3g} GiB of {device.type} memory here; reduce {named}"
    )


def _weights_problem(estimator: Any, module_state: Any) -> str | None:
    """What is wrong with the stored weights, or None."""
    if not isinstance(module_state, dict) or not all(
        isinstance(k, str) and isinstance(v, np.ndarray) and v.dtype.kind in "fcbiu"
        for k, v in module_state.items()
    ):
        return "the weights are not a mapping of names to numeric arrays"
    try:
        members = int(estimator.__dict__.get("n_estimators_", 1))
        one = meta_module(estimator, len(estimator.classes_)).state_dict()
    except Exception as error:  # the stored hyper-parameters build no module
        return f"its hyper-parameters build no network ({error})"
    expected = {name: tuple(t.shape) for name, t in one.items()}
    if members != 1:
        if members < 1 or members * len(one) != len(module_state):
            return (
                f"n_estimators_={members} networks of {len(one)} weights each, but the "
                f"file holds {len(module_state)} weights"
            )
        # the ensemble: each member's weights under members.<j>.
        expected = {
            f"members.{j}.{name}": shape for j in range(members) for name, shape in expected.items()
        }
    missing = sorted(set(expected) - set(module_state))
    if missing:
        return f"weights missing: {missing[:5]}"
    extra = sorted(set(module_state) - set(expected))
    if extra:
        return f"unexpected weights: {extra[:5]}"
    for name, shape in expected.items():
        if tuple(module_state[name].shape) != shape:
            return (
                f"weight {name!r} has shape {tuple(module_state[name].shape)}, but the "
                f"stored hyper-parameters make it {shape}"
            )
    return None


def check_stored_weights(estimator: Any, module_state: Any) -> None:
    """Compare the stored weights with the module the stored hyper-parameters build;
    a ValueError names the first difference."""
    problem = _weights_problem(estimator, module_state)
    if problem is not None:
        raise ValueError(
            f"this {type(estimator).__name__} file is corrupt or from an incompatible "
            f"version of sphereml: {problem}"
        )


def map_devices(state: dict[str, Any], *, saving: bool) -> dict[str, Any]:
    """``state`` with ``device`` (also the one recorded among the build parameters) as
    plain data for saving, or back as given for loading: no torch type to trust."""
    convert = device_to_state if saving else device_from_state
    state = dict(state)
    if "device" in state:
        state["device"] = convert(state["device"])
    if isinstance(state.get("_build_params"), dict) and "device" in state["_build_params"]:
        state["_build_params"] = {
            **state["_build_params"],
            "device": convert(state["_build_params"]["device"]),
        }
    return state
