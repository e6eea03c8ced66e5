"""The one checkpoint file format of the project, for every kind of trained model.

A checkpoint is one ``torch.save`` file holding a dict with ``format`` (which kind of model:
``shapebench-prn``, ``shapebench-category``), ``format_version``, ``created`` and the kind's own
fields (weights, config, data description, metrics, resume state). It is written atomically
(:mod:`engine.io.files`) and read with ``torch.load(weights_only=True)``: a checkpoint is
untrusted input, so it may hold only tensors and plain Python containers. Every problem with a
file (missing, foreign, another kind, damaged, newer version, bad fields, non-finite weights)
raises one :class:`~engine.core.errors.CheckpointError` naming the file and the field.
"""

from __future__ import annotations

import datetime as _dt
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from engine.core.errors import CheckpointError
from engine.io.files import atomic_writer

#: Every kind of checkpoint and what to say about it when another kind was expected.
KINDS = {
    "shapebench-prn": "a PRN checkpoint (main.py train / evaluate)",
    "shapebench-category": "a category checkpoint (main.py category train / evaluate)",
}


def finite_state(state: dict[str, torch.Tensor], path: str | Path, prefix: str) -> dict:
    """CPU copies of a ``state_dict``'s tensors; refuses non-finite floating-point ones."""
    out = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError("expected a tensor", path=path, field=f"{prefix}.{k}")
        v = v.detach().to("cpu").clone()
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError("non-finite weights", path=path, field=f"{prefix}.{k}")
        out[k] = v
    return out


def write_checkpoint(path: str | Path, kind: str, version: int, fields: dict[str, Any]) -> None:
    """Write ``fields`` with the format header, atomically.

    Raises:
        OSError: the file cannot be written (nothing is left behind).
    """
    payload = {
        "format": kind,
        "format_version": int(version),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **fields,
    }
    with atomic_writer(path) as fh:
        torch.save(payload, fh)


def _load_failure(path: Path, exc: Exception) -> str:
    """Why ``torch.load`` refused ``path``, in words (torch's own message is pages long)."""
    if not zipfile.is_zipfile(path):
        return "not a torch file (damaged, truncated, or another format)"
    if isinstance(exc, pickle.UnpicklingError) and "weights_only" in str(exc):
        # weights_only refuses arbitrary objects: a checkpoint is untrusted input.
        return "it holds Python objects other than tensors and plain data (refused as unsafe)"
    return "a damaged torch file"


def read_checkpoint(
    path: str | Path, kind: str, version: int, required: dict[str, type]
) -> dict[str, Any]:
    """Read a checkpoint of ``kind`` and check its header and required fields' types.

    Args:
        kind: the expected ``format``.
        version: the newest format version this program reads.
        required: field name -> type each must have (bool never passes for int).

    Returns:
        The raw dict (``format_version`` checked to lie in ``[1, version]``).

    Raises:
        CheckpointError: see the module docstring.
    """
    path = Path(path)
    label = KINDS[kind].split(" (")[0]
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
            f"not a readable {label.split(' ', 1)[1]}: {_load_failure(path, exc)}", path=path
        ) from None
    found = raw.get("format") if isinstance(raw, dict) else None
    if found != kind:
        other = f": it is {KINDS[found]}" if found in KINDS else ""
        raise CheckpointError(
            f"not {label} of this project (expected format '{kind}'){other}", path=path
        )
    for key, expected in {"format_version": int, "created": str, **required}.items():
        if key not in raw:
            raise CheckpointError("missing field", path=path, field=key)
        if not isinstance(raw[key], expected) or isinstance(raw[key], bool):
            raise CheckpointError(
                f"expected {expected.__name__}, got {type(raw[key]).__name__}",
                path=path,
                field=key,
            )
    found_version = raw["format_version"]
    if found_version > version:
        raise CheckpointError(
            f"written by a newer version of this program (format {found_version}; this one "
            f"reads up to {version})",
            path=path,
            field="format_version",
        )
    if found_version < 1:
        raise CheckpointError(
            f"invalid format version {found_version}", path=path, field="format_version"
        )
    return raw


def read_metrics(raw: dict, path: str | Path) -> dict[str, float]:
    """The ``metrics`` field as floats (each must be a number)."""
    metrics = {}
    for k, v in raw.get("metrics", {}).items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise CheckpointError("expected a number", path=path, field=f"metrics.{k}")
        metrics[str(k)] = float(v)
    return metrics


def checkpoint_kind(path: str | Path) -> str | None:
    """The ``format`` of a project checkpoint file (a key of :data:`KINDS`), or None when the
    file is not one (missing, damaged, foreign): for routing a file to what can open it."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"torch(\.|$)")
            raw = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception:  # any unreadable file is simply not a checkpoint here
        return None
    kind = raw.get("format") if isinstance(raw, dict) else None
    return kind if kind in KINDS else None
