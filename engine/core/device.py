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
        return _usable(override)
    except ValueError as exc:
        raise ValueError(f"SHAPEBENCH_DEVICE={override!r}: {exc}") from None


def resolve_device(name: str | torch.device | None) -> torch.device:
    """Turn a user's ``"cpu"``/``"cuda"``/``None`` into a device, refusing unusable ones.

    Raises:
        ValueError: not a CPU or CUDA device name, or ``cuda`` asked for on a machine without
            a CUDA build or GPU.
    """
    return default_device() if name is None else _usable(name)


def _usable(name: str | torch.device) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"{name!r} is not a device: expected cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"expected a cpu or cuda device, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("'cuda' is not usable: torch sees no CUDA GPU on this machine")
    return device
