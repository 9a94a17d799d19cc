"""Helpers shared by every layer: device resolution and scikit-learn compatibility."""

from ._device import resolve_device

__all__ = ["resolve_device"]
