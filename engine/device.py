"""The one place that decides which torch device the engine computes on."""

from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    """CUDA when present, else CPU; ``SHAPEBENCH_DEVICE`` overrides (e.g. ``cpu``).

    Raises:
        ValueError: ``SHAPEBENCH_DEVICE`` names no usable device.
    """
    override = os.environ.get("SHAPEBENCH_DEVICE")
    if not override:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(override)
    except RuntimeError:
        raise ValueError(
            f"SHAPEBENCH_DEVICE={override!r} is not a device: expected cpu, cuda or cuda:N"
        ) from None
    if device.type not in ("cpu", "cuda") or (
        device.type == "cuda" and not torch.cuda.is_available()
    ):
        raise ValueError(f"SHAPEBENCH_DEVICE={override!r} is not usable on this machine")
    return device


def resolve_device(name: str | torch.device | None) -> torch.device:
    """Turn a user's ``"cpu"``/``"cuda"``/``None`` into a device, refusing unusable ones.

    Raises:
        ValueError: ``cuda`` asked for on a machine without a CUDA build or GPU.
    """
    if name is None:
        return default_device()
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch sees no CUDA GPU on this machine")
    return device
