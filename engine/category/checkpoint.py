"""Category checkpoints: the project's one checkpoint format (:mod:`engine.io.checkpoints`)
with a category run's fields.

Fields: ``config``; ``template`` (vertices, faces, keypoint names and vertices, up and front
axes); ``proxy`` (the render proxy's faces and barycentric map); ``model`` (sizes) and
``model_state`` (encoder, heads, the deformer with its template, handles and learned logits);
``initial_logits`` (A before training, to compare the learned rows with); ``databases`` (names of
the training images, camera hypotheses, their probabilities, offsets and mirrored offsets);
``metrics``, ``history``, ``step``, ``data_description``; ``extra`` (optimisers, sampler, marks:
what an exact resume needs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.category.config import CategoryConfig
from engine.category.model import CategoryModel
from engine.category.run import CategoryRun
from engine.category.template import CategoryTemplate
from engine.core.device import resolve_device
from engine.core.errors import CheckpointError, InputError
from engine.geometry.proxy import RenderProxy
from engine.io.checkpoints import finite_state, read_checkpoint, read_metrics, write_checkpoint
from engine.io.mesh import validate_mesh
from engine.render.rasterizer import RasterSettings

FORMAT_NAME = "shapebench-category"
FORMAT_VERSION = 1

_REQUIRED = {
    "config": dict,
    "template": dict,
    "proxy": dict,
    "model": dict,
    "model_state": dict,
    "databases": dict,
    "metrics": dict,
    "step": int,
    "data_description": dict,
}


def save_category_checkpoint(path: str | Path, trainer: Any) -> None:
    """Write the trainer's run (and its resume state) to ``path`` atomically.

    Raises:
        CheckpointError: a weight or database entry is not finite (never saved).
        OSError: the file cannot be written.
    """
    path = Path(path)
    t = trainer.template
    proxy = trainer.proxy
    fields = {
        "config": trainer.config.to_dict(),
        "template": {
            "vertices": torch.as_tensor(t.mesh.vertices),
            "faces": torch.as_tensor(t.mesh.faces),
            "keypoint_names": list(t.keypoint_names),
            "keypoint_vertices": torch.as_tensor(t.keypoint_vertices),
            "up_axis": t.up_axis,
            "front_axis": t.front_axis,
        },
        "proxy": {
            "faces": torch.as_tensor(proxy.faces),
            "corner_ids": torch.as_tensor(proxy.corner_ids),
            "weights": torch.as_tensor(proxy.weights),
            "is_identity": bool(proxy.is_identity),
            "num_source_vertices": int(proxy.num_source_vertices),
        },
        "model": {
            "num_handles": int(trainer.model.num_handles),
            "in_channels": int(trainer.model.encoder.stem[0].in_channels),
            "texture": trainer.model.texture_head is not None,
            "proxy_vertices": int(proxy.num_vertices),
        },
        "model_state": finite_state(trainer.model.state_dict(), path, "model_state"),
        "initial_logits": trainer.initial_logits.detach().cpu().clone(),
        "databases": {
            "names": list(trainer.database_names),
            **finite_state(
                {
                    "camera_db": trainer.camera_db,
                    "probabilities": trainer.probabilities,
                    "deform_db": trainer.deform_db,
                    "mirror_db": trainer.mirror_db,
                },
                path,
                "databases",
            ),
        },
        "metrics": {k: float(v) for k, v in trainer.metrics.items()},
        "history": list(trainer.history),
        "step": int(trainer.step),
        "data_description": trainer.data_description(),
        "extra": trainer.state_for_resume(),
    }
    write_checkpoint(path, FORMAT_NAME, FORMAT_VERSION, fields)


def _tensor(raw: dict, key: str, path: Path, field: str) -> torch.Tensor:
    value = raw.get(key)
    if not isinstance(value, torch.Tensor):
        raise CheckpointError("expected a tensor", path=path, field=f"{field}.{key}")
    return value


def read_category_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checked raw contents of a category checkpoint (see the module docstring).

    Raises:
        CheckpointError: see :mod:`engine.io.checkpoints`, or a field of the wrong shape.
    """
    path = Path(path)
    raw = read_checkpoint(path, FORMAT_NAME, FORMAT_VERSION, _REQUIRED)
    try:
        raw["config"] = CategoryConfig.from_dict(raw["config"])
    except (InputError, TypeError, ValueError) as exc:
        raise CheckpointError(f"bad config: {exc}", path=path, field="config") from None
    tmpl = raw["template"]
    try:
        mesh = validate_mesh(
            _tensor(tmpl, "vertices", path, "template").numpy(),
            _tensor(tmpl, "faces", path, "template").numpy(),
            path=path,
        )
    except InputError as exc:
        raise CheckpointError(f"bad template: {exc.problem}", path=path, field="template") from None
    kpv = _tensor(tmpl, "keypoint_vertices", path, "template").numpy().astype(np.int64)
    names = tmpl.get("keypoint_names")
    if not isinstance(names, list) or len(names) != len(kpv):
        raise CheckpointError("keypoint names and vertices differ", path=path, field="template")
    if len(kpv) and (kpv.min() < 0 or kpv.max() >= mesh.num_vertices):
        raise CheckpointError("keypoint vertex out of range", path=path, field="template")
    raw["template"] = CategoryTemplate(
        mesh,
        [str(n) for n in names],
        kpv,
        str(tmpl.get("up_axis", "z")),
        str(tmpl.get("front_axis", "x")),
    )
    pr = raw["proxy"]
    corner_ids = _tensor(pr, "corner_ids", path, "proxy").numpy().astype(np.int64)
    weights = _tensor(pr, "weights", path, "proxy").numpy().astype(np.float64)
    pfaces = _tensor(pr, "faces", path, "proxy").numpy().astype(np.int64)
    if (
        corner_ids.shape != weights.shape
        or corner_ids.ndim != 2
        or corner_ids.shape[1] != 3
        or (corner_ids.size and (corner_ids.min() < 0 or corner_ids.max() >= mesh.num_vertices))
        or (pfaces.size and (pfaces.min() < 0 or pfaces.max() >= len(corner_ids)))
    ):
        raise CheckpointError("inconsistent render proxy", path=path, field="proxy")
    raw["proxy"] = RenderProxy(
        pfaces, corner_ids, weights, bool(pr.get("is_identity", False)), mesh.num_vertices
    )
    raw["model_state"] = finite_state(raw["model_state"], path, "model_state")
    db = raw["databases"]
    for key in ("camera_db", "probabilities", "deform_db", "mirror_db"):
        _tensor(db, key, path, "databases")
    db.update(
        finite_state(
            {k: db[k] for k in ("camera_db", "probabilities", "deform_db", "mirror_db")},
            path,
            "databases",
        )
    )
    if not isinstance(db.get("names"), list) or len(db["names"]) != db["camera_db"].shape[0]:
        raise CheckpointError("names do not match the database rows", path=path, field="databases")
    raw["metrics"] = read_metrics(raw, path)
    return raw


def load_category_run(path: str | Path, device: str | torch.device | None = None) -> CategoryRun:
    """A :class:`CategoryRun` (model, template, proxy, databases) from a checkpoint, without
    its training data: for evaluation, reconstruction, PCA and the editor.

    Raises:
        CheckpointError: see :func:`read_category_checkpoint`; weights that do not fit the model.
    """
    path = Path(path)
    raw = read_category_checkpoint(path)
    run = CategoryRun()
    run.path = str(path)
    run.config = raw["config"]
    run.template = raw["template"]
    run.proxy = raw["proxy"]
    try:
        run.device = resolve_device(device)
    except (ValueError, RuntimeError) as exc:
        raise InputError(str(exc), field="device") from None
    m = raw["model"]
    mesh = run.template.mesh
    try:
        run.model = CategoryModel(
            mesh.vertices,
            mesh.faces,
            int(m["num_handles"]),
            int(m["proxy_vertices"]),
            in_channels=int(m["in_channels"]),
            encoder_width=run.config.encoder_width,
            dependency_width=run.config.dependency_width,
            texture=bool(m["texture"]),
            seed=run.config.seed,
        )
        run.model.load_state_dict(raw["model_state"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"weights do not fit the model ({str(exc).splitlines()[0][:160]})",
            path=path,
            field="model_state",
        ) from None
    run.model.to(run.device).eval()
    run.proxy_faces = torch.as_tensor(run.proxy.faces, device=run.device)
    run.raster = RasterSettings(image_size=run.config.size, sigma=run.config.sigma)
    run.keypoint_vertices = torch.as_tensor(run.template.keypoint_vertices, device=run.device)
    db = raw["databases"]
    run.database_names = [str(n) for n in db["names"]]
    run.camera_db = db["camera_db"].to(run.device)
    run.probabilities = db["probabilities"].to(run.device)
    run.deform_db = db["deform_db"].to(run.device)
    run.mirror_db = db["mirror_db"].to(run.device)
    init = raw.get("initial_logits")
    run.initial_logits = init if isinstance(init, torch.Tensor) else None
    run.metrics = raw["metrics"]
    run.history = raw.get("history", [])
    run.step = raw["step"]
    run.data_description = raw["data_description"]
    run.data_root = str(run.data_description.get("root", ""))
    run.extra = raw.get("extra", {})
    return run
