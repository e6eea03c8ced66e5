"""PRN checkpoint files: one file with weights, config, data description, metrics and version.

Written atomically (temporary file in the same folder, then ``os.replace``) so a crash or a
stop never leaves a half-written checkpoint. Read with ``torch.load(weights_only=True)``: a
checkpoint is untrusted input, so it may hold only tensors and plain Python containers.
Everything that can be wrong with a file (missing, foreign, damaged, newer format, bad fields,
non-finite weights) raises :class:`~engine.core.errors.CheckpointError` naming the file and field.
"""

from __future__ import annotations

import datetime as _dt
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.core.errors import CheckpointError, InputError
from engine.io.files import atomic_writer
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
    state = {k: v.detach().to("cpu").clone() for k, v in model_state.items()}
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError("refusing to save non-finite weights", path=path, field=k)
    weight = state.get("input.0.weight")
    if weight is None:
        raise CheckpointError("model_state is not a PRNFCN state (no input.0.weight)", path=path)
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": dict(config),
        "data_description": dict(data_description),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "step": int(step),
        "num_points": int(weight.shape[1] // 2),
        "model_state": state,
        "history": list(history or []),
        "extra": dict(extra or {}),
    }
    with atomic_writer(path) as fh:
        torch.save(payload, fh)


_REQUIRED = {
    "format_version": int,
    "created": str,
    "config": dict,
    "data_description": dict,
    "metrics": dict,
    "step": int,
    "num_points": int,
    "model_state": dict,
}


def _load_failure(path: Path, exc: Exception) -> str:
    """Why ``torch.load`` refused ``path``, in words (torch's own message is pages long)."""
    if not zipfile.is_zipfile(path):
        return "not a torch file (damaged, truncated, or another format)"
    if isinstance(exc, pickle.UnpicklingError) and "weights_only" in str(exc):
        # weights_only refuses arbitrary objects: a checkpoint is untrusted input.
        return "it holds Python objects other than tensors and plain data (refused as unsafe)"
    return "a damaged torch file"


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: missing file, not a checkpoint of this project, damaged, written by a
            newer format version, or with a missing / wrong-typed / invalid field.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint file", path=path)
    try:
        with warnings.catch_warnings():
            # torch warns about what it finds in foreign files (e.g. "Detected pickle protocol
            # 4 in the checkpoint ...") before failing; the one-line error below says it all.
            # Only warnings raised from torch's own modules are silenced, so a filter left
            # behind by concurrent catch_warnings blocks (not thread-safe) stays harmless.
            warnings.filterwarnings("ignore", module=r"torch(\.|$)")
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file can make the unpickler fail in any way
        raise CheckpointError(
            f"not a readable PRN checkpoint: {_load_failure(path, exc)}", path=path
        ) from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"not a PRN checkpoint of this project (expected format '{FORMAT_NAME}')", path=path
        )
    for key, kind in _REQUIRED.items():
        if key not in raw:
            raise CheckpointError("missing field", path=path, field=key)
        if not isinstance(raw[key], kind) or isinstance(raw[key], bool):
            raise CheckpointError(
                f"expected {kind.__name__}, got {type(raw[key]).__name__}", path=path, field=key
            )
    version = raw["format_version"]
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"written by a newer version of this program (format {version}; this one reads up "
            f"to {FORMAT_VERSION})",
            path=path,
            field="format_version",
        )
    if version < 1:
        raise CheckpointError(
            f"invalid format version {version}", path=path, field="format_version"
        )
    try:
        config = TrainConfig.from_dict(raw["config"])
    except InputError as exc:
        raise CheckpointError(
            exc.problem, path=path, field=f"config.{exc.field or ''}".rstrip(".")
        ) from None
    state = raw["model_state"]
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError("expected a tensor", path=path, field=f"model_state.{k}")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError("non-finite weights", path=path, field=f"model_state.{k}")
    metrics = {}
    for k, v in raw["metrics"].items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise CheckpointError("expected a number", path=path, field=f"metrics.{k}")
        metrics[str(k)] = float(v)
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
