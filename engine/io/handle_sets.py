"""Handle-set files: the editor's saved handle ids and offsets for one mesh (JSON).

Format: ``{"format": "shapebench-handle-set", "version": 1, "mesh_hash", "num_vertices",
"num_handles", "handle_ids": [K ints], "offsets": [[x, y, z] * K]}``; ``mesh_hash`` is
:func:`engine.io.mesh.mesh_hash` of the mesh the set was made for. One parser serves the editor
and the PCA explorer, so a file one accepts the other accepts too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from engine.core.errors import InputError
from engine.io.files import write_text_atomic
from engine.io.mesh import mesh_hash

HANDLE_SET_FORMAT = "shapebench-handle-set"
HANDLE_SET_VERSION = 1


def read_handle_set(path: str | Path) -> dict:
    """Parse and validate a handle-set JSON file.

    Returns:
        dict with ``mesh_hash`` (str), ``num_vertices`` (int), ``handle_ids`` (K,) int64,
        ``offsets`` (K,3) float64.

    Raises:
        InputError: unreadable file, not JSON, wrong format tag/version, missing or
            malformed fields (message names the file and field).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the file ({exc})", path=path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})", path=path, line=exc.lineno) from None
    if not isinstance(data, dict) or data.get("format") != HANDLE_SET_FORMAT:
        raise InputError(
            f'not a handle set (expected "format": "{HANDLE_SET_FORMAT}")',
            path=path,
            field="format",
        )
    if data.get("version") != HANDLE_SET_VERSION:
        raise InputError(
            f"unsupported version {data.get('version')!r}, expected {HANDLE_SET_VERSION}",
            path=path,
            field="version",
        )
    for key in ("mesh_hash", "num_vertices", "num_handles", "handle_ids", "offsets"):
        if key not in data:
            raise InputError("missing field", path=path, field=key)
    try:
        ids = np.asarray(data["handle_ids"], dtype=np.int64)
    except (TypeError, ValueError):
        raise InputError("expected a list of integers", path=path, field="handle_ids") from None
    try:
        offsets = np.asarray(data["offsets"], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("expected a list of [x, y, z]", path=path, field="offsets") from None
    k = data["num_handles"]
    if not isinstance(k, int) or k < 1 or ids.shape != (k,):
        raise InputError(
            f"expected num_handles >= 1 equal to the number of handle_ids, got {k!r} and "
            f"{ids.shape[0] if ids.ndim == 1 else ids.shape}",
            path=path,
            field="num_handles",
        )
    if offsets.shape != (k, 3) or not np.all(np.isfinite(offsets)):
        raise InputError(
            f"expected {k} finite [x, y, z] rows, got shape {offsets.shape}",
            path=path,
            field="offsets",
        )
    n = data["num_vertices"]
    if not isinstance(n, int) or ids.min() < 0 or ids.max() >= n:
        raise InputError(f"handle ids must lie in [0, {n})", path=path, field="handle_ids")
    return {
        "mesh_hash": str(data["mesh_hash"]),
        "num_vertices": n,
        "handle_ids": ids,
        "offsets": offsets,
    }


def write_handle_set(
    path: str | Path, vertices: np.ndarray, faces: np.ndarray, handle_ids, offsets
) -> None:
    """Write handle ids (K,) and offsets (K,3) with the hash of the mesh ``vertices`` (N,3),
    ``faces`` (F,3) they were made for (see the module docstring), atomically."""
    data = {
        "format": HANDLE_SET_FORMAT,
        "version": HANDLE_SET_VERSION,
        "mesh_hash": mesh_hash(vertices, faces),
        "num_vertices": len(vertices),
        "num_handles": len(handle_ids),
        "handle_ids": [int(i) for i in handle_ids],
        # repr-precision floats: the set reproduces the deformation exactly.
        "offsets": [[float(x) for x in row] for row in offsets],
    }
    write_text_atomic(path, json.dumps(data, indent=1))


@dataclass
class HandleSets:
    """Saved handle sets of one mesh (the editor's JSON files).

    Attributes:
        handle_ids: (K,) int64 handle vertex ids, shared by every file.
        offsets: (S, K, 3) float64 CPU tensor, one row per file.
        mesh_hash: ``engine.io.mesh.mesh_hash`` of the mesh they were saved for.
        num_vertices: N of that mesh.
    """

    handle_ids: np.ndarray
    offsets: Tensor
    mesh_hash: str
    num_vertices: int


def load_handle_sets(paths: Sequence[str | Path]) -> HandleSets:
    """Read several handle-set JSON files saved by the editor for the same mesh and handles.

    File format: ``{"format": "shapebench-handle-set", "version": 1, "mesh_hash",
    "num_vertices", "num_handles", "handle_ids": [K ints], "offsets": [[x, y, z] * K]}``.

    Raises:
        InputError: unreadable / malformed file (naming file and field), fewer than 2 files, or
        files saved for different meshes or different handles.
    """
    if len(paths) < 2:
        raise InputError(f"need at least 2 handle sets for PCA, got {len(paths)}")
    first = None
    rows = []
    for path in paths:
        doc = read_handle_set(path)
        if first is None:
            first = doc
        elif doc["mesh_hash"] != first["mesh_hash"]:
            raise InputError(
                f"was saved for another mesh than {Path(paths[0]).name}",
                path=path,
                field="mesh_hash",
            )
        elif not np.array_equal(doc["handle_ids"], first["handle_ids"]):
            raise InputError(
                f"has other handles than {Path(paths[0]).name}: PCA needs the same handles",
                path=path,
                field="handle_ids",
            )
        rows.append(doc["offsets"])
    return HandleSets(
        handle_ids=first["handle_ids"],
        offsets=torch.from_numpy(np.stack(rows)),
        mesh_hash=first["mesh_hash"],
        num_vertices=first["num_vertices"],
    )
