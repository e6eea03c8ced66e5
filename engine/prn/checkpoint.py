"""PRN checkpoint files: one file with weights, config, data description, metrics and version.

The project's one checkpoint format (:mod:`engine.io.checkpoints`: atomic writes, safe
``weights_only`` loading, one :class:`~engine.core.errors.CheckpointError` naming the file and
field for anything wrong) with the PRN's fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.core.errors import CheckpointError, InputError
from engine.io.checkpoints import finite_state, read_checkpoint, read_metrics, write_checkpoint
from engine.prn.config import TrainConfig
from engine.prn.model import PRNFCN

FORMAT_NAME = "shapebench-prn"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded, validated checkpoint.

    Attributes:
        format_version: version of the file format (<= :data:`FORMAT_VERSION`).
        config: the training settings of the run, automatic fields resolved for its data.
        data_description: JSON-able description of the training data (source, sizes, names...).
        metrics: last evaluation metrics (e.g. ``e3d``, ``mpjpe``; may be empty).
        created: ISO 8601 time the file was written (UTC).
        step: number of optimiser steps done.
        model_state: the network's ``state_dict`` (CPU tensors).
        num_points: P, the number of keypoints the network takes.
        history: per-step loss dicts (``f``, ``g``, ``total``) for redrawing curves.
        extra: training state for exact resume (optimiser, scheduler, RNG, sampler); may be empty.
        path: the file it was read from.
    """

    format_version: int
    config: TrainConfig
    data_description: dict
    metrics: dict
    created: str
    step: int
    model_state: dict
    num_points: int
    history: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    path: str = ""

    def requested_config(self) -> TrainConfig:
        """The settings as the user gave them, automatic (None) fields kept automatic.

        :attr:`config` holds the values resolved for the training data (what the run used);
        this is what a settings form should show to train again on other data. Checkpoints
        without it (older files) give :attr:`config`.
        """
        try:
            return TrainConfig.from_dict(self.extra["requested_config"])
        except (KeyError, TypeError, InputError, CheckpointError):
            return self.config


def save_checkpoint(
    path: str | Path,
    *,
    model_state: dict[str, torch.Tensor],
    config: dict[str, Any],
    data_description: dict[str, Any],
    metrics: dict[str, float],
    extra: dict[str, Any] | None = None,
    step: int = 0,
    history: list[dict[str, float]] | None = None,
) -> None:
    """Write a checkpoint atomically.

    Args:
        path: destination file (conventionally ``.pt``); its folder must exist.
        model_state: ``PRNFCN.state_dict()``; tensors are copied to CPU.
        config: ``TrainConfig.to_dict()``.
        data_description: JSON-able description of the training data.
        metrics: float metrics to show with the checkpoint.
        extra: resume state (plain containers and tensors only).
        step: optimiser steps done.
        history: per-step loss dicts.

    Raises:
        CheckpointError: a weight is not finite (a diverged model is never saved).
        OSError: the file cannot be written.
    """
    path = Path(path)
    try:
        state = finite_state(model_state, path, "model_state")
    except CheckpointError:
        raise CheckpointError("refusing to save non-finite weights", path=path) from None
    weight = state.get("input.0.weight")
    if weight is None:
        raise CheckpointError("model_state is not a PRNFCN state (no input.0.weight)", path=path)
    write_checkpoint(
        path,
        FORMAT_NAME,
        FORMAT_VERSION,
        {
            "config": dict(config),
            "data_description": dict(data_description),
            "metrics": {k: float(v) for k, v in metrics.items()},
            "step": int(step),
            "num_points": int(weight.shape[1] // 2),
            "model_state": state,
            "history": list(history or []),
            "extra": dict(extra or {}),
        },
    )


_REQUIRED = {
    "config": dict,
    "data_description": dict,
    "metrics": dict,
    "step": int,
    "num_points": int,
    "model_state": dict,
}


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: missing file, not a checkpoint of this project, damaged, written by a
            newer format version, or with a missing / wrong-typed / invalid field.
    """
    path = Path(path)
    raw = read_checkpoint(path, FORMAT_NAME, FORMAT_VERSION, _REQUIRED)
    version = raw["format_version"]
    try:
        config = TrainConfig.from_dict(raw["config"])
    except InputError as exc:
        raise CheckpointError(
            exc.problem, path=path, field=f"config.{exc.field or ''}".rstrip(".")
        ) from None
    state = finite_state(raw["model_state"], path, "model_state")
    metrics = read_metrics(raw, path)
    history = raw.get("history", [])
    extra = raw.get("extra", {})
    if not isinstance(history, list) or not isinstance(extra, dict):
        raise CheckpointError("expected a list and a dict", path=path, field="history/extra")
    return Checkpoint(
        format_version=version,
        config=config,
        data_description=raw["data_description"],
        metrics=metrics,
        created=raw["created"],
        step=raw["step"],
        model_state=state,
        num_points=raw["num_points"],
        history=history,
        extra=extra,
        path=str(path),
    )


def build_model(ckpt: Checkpoint, device: str | torch.device | None = None) -> PRNFCN:
    """Instantiate the checkpoint's network with its weights, in eval mode, on ``device``.

    Raises:
        CheckpointError: the weights do not fit a PRNFCN of the recorded size.
    """
    model = PRNFCN(ckpt.num_points, ckpt.config.hidden)
    try:
        model.load_state_dict(ckpt.model_state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"weights do not match a PRN of {ckpt.num_points} points and hidden width "
            f"{ckpt.config.hidden}: {first[:160]}",
            path=ckpt.path or None,
            field="model_state",
        ) from None
    if device is not None:
        model.to(device)
    return model.eval()


def load_model(
    path: str | Path, device: str | torch.device | None = None
) -> tuple[PRNFCN, Checkpoint]:
    """Load a checkpoint and its network (eval mode) in one call.

    Args:
        path: checkpoint file.
        device: where to put the network; None keeps it on the CPU.

    Returns:
        ``(model, checkpoint)``.

    Raises:
        CheckpointError: see :func:`load_checkpoint` and :func:`build_model`.
    """
    ckpt = load_checkpoint(path)
    return build_model(ckpt, device), ckpt
