"""How much memory a device has, for refusing allocations that cannot succeed."""

from __future__ import annotations

import os
from typing import Any


def physical_memory() -> int | None:
    """This machine's RAM in bytes, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def device_memory(device: Any) -> int | None:
    """Bytes of memory of a torch ``device`` (the machine's RAM for the CPU), None if
    unknown (MPS shares the RAM but does not say how much it may use)."""
    if device.type == "cpu":
        return physical_memory()
    if device.type == "cuda":
        import torch

        try:
            return int(torch.cuda.get_device_properties(device).total_memory)
        except (AssertionError, RuntimeError):
            return None
    return None
