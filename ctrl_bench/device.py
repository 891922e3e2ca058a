"""Device selection."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceError(ValueError):
    """A device that is unknown or not present here."""


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" → CUDA when present, else CPU; "cuda" without a GPU is an error that says so."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name.split(":")[0] not in DEVICE_CHOICES:
        raise DeviceError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    return torch.device(name)


def synchronize(device) -> None:
    """Waits for the device's queued work, so that a clock read after it counts that work (CUDA)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
