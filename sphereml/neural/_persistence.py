"""How a fitted neural estimator is stored: plain data (NumPy arrays, builtins, sphereml
classes) that pickle, joblib and ``skops.io`` round-trip, with the net rebuilt on load."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ..training.history import TrainingHistory
from ..training.net import unwrap_parallel
from ..utils._device import resolve_device
from ._checks import check_stored_weights, map_devices

__all__ = ["NetPersistenceMixin"]

# optimiser options that choose kernels for a device rather than describe the training
OPTIMIZER_KERNEL_OPTIONS = ("capturable", "fused", "foreach", "differentiable")


class NetPersistenceMixin:
    """``__getstate__``/``__setstate__`` and ``save_weights`` of the neural estimators.

    The host class provides ``net_`` after a fit, ``_net_args`` (the build's seed and
    sample count) and ``_build_net`` (the seeded build of its module and net).
    """

    classes_: np.ndarray
    history_: Any
    net_: Any
    device: Any
    _net_args: dict[str, int]

    if TYPE_CHECKING:

        def _build_net(
            self, n_classes: int, n_samples: int, seed: int, device: torch.device
        ) -> Any: ...

    def __getstate__(self) -> dict[str, Any]:
        """The fitted state as plain data: NumPy arrays, builtins and sphereml classes.

        The skorch net and the torch module are not stored: the module's ``state_dict``
        becomes NumPy arrays and the net is rebuilt from the hyper-parameters on load.
        So pickle, joblib and ``skops.io`` (with only sphereml's types to trust) all
        round-trip a fitted estimator, and a CUDA-trained model loads where there is no
        CUDA. The optimiser's state (moments, step counts, learning-rate schedule) is
        kept the same way, so a warm start after loading continues where it stopped.
        """
        state = self.__dict__.copy()
        state["accelerator"] = None  # process state (the launch's devices), not the model
        state = map_devices(state, saving=True)  # no torch type to trust on load
        net = state.pop("net_", None)
        if net is not None:
            state["_module_state"] = {
                name: tensor.detach().cpu().numpy()
                for name, tensor in net.module_.state_dict().items()
            }
            state["_optimizer_state"] = tensors_to_numpy(net.optimizer_.state_dict())
            state["history_"] = [plain_row(row) for row in net.history]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = map_devices(state, saving=False)
        module_state = state.pop("_module_state", None)
        optimizer_state = state.pop("_optimizer_state", None)
        fitted = "classes_" in state or "_net_args" in state
        if fitted != (module_state is not None) or (
            fitted and not all(k in state for k in ("classes_", "_net_args", "history_"))
        ):
            raise ValueError(
                f"this {type(self).__name__} file is corrupt or from an incompatible version "
                "of sphereml: its fitted state is incomplete (the network weights, classes "
                "or build arguments are missing)"
            )
        self.__dict__.update(state)
        if module_state is not None:
            self._rebuild_net(module_state, optimizer_state)

    def _rebuild_net(
        self, module_state: dict[str, np.ndarray], optimizer_state: dict | None
    ) -> None:
        device = resolve_device(self.device) if device_available(self.device) else None
        device = device or torch.device("cpu")  # e.g. a CUDA-trained model on a CPU machine
        seed, n_samples = self._net_args["seed"], self._net_args["n_samples"]
        # the stored hyper-parameters must describe the stored arrays before any memory
        # is allocated for them (a crafted file could otherwise ask for terabytes)
        check_stored_weights(self, module_state)
        # the stored weights replace the initial ones the build draws
        net = self._build_net(len(self.classes_), n_samples, seed, device)
        tensors = {name: torch.as_tensor(array) for name, array in module_state.items()}
        unwrap_parallel(net.module_).load_state_dict(tensors)
        if optimizer_state is not None:  # a warm start continues with the same moments
            saved = numpy_to_tensors(optimizer_state)
            # how the optimiser runs (fused / capturable kernels) belongs to this device
            for group, current in zip(
                saved["param_groups"], net.optimizer_.param_groups, strict=True
            ):
                for key in OPTIMIZER_KERNEL_OPTIONS:
                    if key in current:
                        group[key] = current[key]
            net.optimizer_.load_state_dict(saved)
        net.history = TrainingHistory(self.history_)
        net.module_.eval()  # as after a fit (training steps switch to training mode)
        self.net_ = net
        self.history_ = net.history

    def save_weights(self, path: str) -> None:
        """Write the network's weights to a ``safetensors`` file, for use outside Python.

        Tensor names are those of the module's ``state_dict`` (see :mod:`sphereml.nn`);
        the architecture is given by the estimator's hyper-parameters. Needs the optional
        ``safetensors`` package (the ``persist`` extra). To reload a model in Python use
        :func:`sphereml.load`; this export is for other runtimes.
        """
        check_is_fitted(self)
        try:
            from safetensors.torch import save_file
        except ImportError as exc:
            raise ImportError(
                "save_weights needs the optional 'safetensors' package: install sphereml "
                "with its 'persist' extra (pip install -e '.[persist]' from the repository)"
            ) from exc
        tensors = {
            name: tensor.detach().cpu().contiguous()
            for name, tensor in self.net_.module_.state_dict().items()
        }
        save_file(tensors, path, metadata={"estimator": type(self).__name__})


def plain_row(row: dict) -> dict:
    """A skorch history row as builtins (floats, ints, bools, strings, lists, dicts)."""
    plain: dict = {}
    for key, value in row.items():
        if key == "batches":
            plain[key] = [plain_row(batch) for batch in value]
        elif isinstance(value, np.generic):
            plain[key] = value.item()
        elif isinstance(value, torch.Tensor):
            plain[key] = value.item() if value.numel() == 1 else value.tolist()
        else:
            plain[key] = value
    return plain


def _map_leaves(value: Any, leaf: type, convert: Any) -> Any:
    """``value`` with every ``leaf`` inside its dicts, lists and tuples converted."""
    if isinstance(value, leaf):
        return convert(value)
    if isinstance(value, dict):
        return {k: _map_leaves(v, leaf, convert) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_map_leaves(v, leaf, convert) for v in value)
    return value


def tensors_to_numpy(value: Any) -> Any:
    """A nested optimiser state with every tensor as a NumPy array (plain data)."""
    return _map_leaves(value, torch.Tensor, lambda t: t.detach().cpu().numpy())


def numpy_to_tensors(value: Any) -> Any:
    """The inverse of :func:`tensors_to_numpy`."""
    return _map_leaves(value, np.ndarray, torch.as_tensor)


def device_available(device: Any) -> bool:
    try:
        resolve_device(device)
    except (TypeError, ValueError):
        return False
    return True
