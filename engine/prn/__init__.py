"""Procrustean Regression Network (seed 000): model, training loop, checkpoints, reconstruction.

``TrainConfig``, ``PRNFCN`` and the checkpoint functions import light; ``Trainer``,
``TrainEvent``, ``reconstruct`` and ``evaluate_methods`` are loaded on first use.
"""

from __future__ import annotations

from typing import Any

from engine.prn.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    build_model,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from engine.prn.config import TrainConfig
from engine.prn.model import PRNFCN

__all__ = [
    "FORMAT_VERSION",
    "PRNFCN",
    "Checkpoint",
    "TrainConfig",
    "TrainEvent",
    "Trainer",
    "build_model",
    "evaluate_methods",
    "load_checkpoint",
    "load_model",
    "reconstruct",
    "save_checkpoint",
]

_LAZY = {
    "Trainer": "engine.prn.training",
    "TrainEvent": "engine.prn.training",
    "reconstruct": "engine.prn.reconstruct",
    "evaluate_methods": "engine.prn.reconstruct",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine.prn' has no attribute {name!r}")
