"""Evaluation of a category model on an image set: the table of ``category evaluate``.

Methods (rows):

* ``predicted``: the network on each image (its shape and camera);
* ``template``: the network's cameras with the undeformed template (what deformation adds);
* ``fit``: the per-instance databases (most probable camera and the database shape), for the
  images that were in training (the same folder and image names; None where none was).

Metrics (columns; None where the data cannot give them): ``iou_mean`` / ``iou_median`` of the
rendered silhouette against the mask, ``pck`` at 0.1 of the image size for the template's
keypoint vertices against the set's keypoints, ``vertex_error`` (mean vertex distance after a
similarity alignment to the true mesh, as a fraction of its bounding-box diagonal; needs ground
truth on the same template) and ``camera_error_deg`` (median rotation angle to the true camera).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.category.metrics import (
    camera_rotation_error_deg,
    mask_iou,
    pck,
    summarise,
    vertex_error,
)
from engine.io.image_sets import ImageSet

METHODS = ("predicted", "template", "fit")
METRICS = ("iou_mean", "iou_median", "pck", "vertex_error", "camera_error_deg")


def _row(run: Any, images: ImageSet, vertices: np.ndarray, cameras: np.ndarray) -> dict:
    masks = run.render_masks(vertices, cameras)
    iou = mask_iou(masks, images.masks > 0.5)
    kp = None
    if images.keypoints is not None and images.keypoints.shape[1] == len(
        run.template.keypoint_vertices
    ):
        kp = pck(run.project_keypoints(vertices, cameras), images.keypoints, images.size, 0.1)
    verr = None
    gt = images.ground_truth
    if gt is not None and gt["vertices"].shape[1:] == vertices.shape[1:]:
        verr = vertex_error(vertices, gt["vertices"])
    cerr = None
    if images.cameras is not None:
        cerr = camera_rotation_error_deg(cameras, images.cameras)
    return summarise(iou, kp, verr, cerr)


def evaluate_model(
    run: Any, images: ImageSet, methods: tuple[str, ...] = METHODS
) -> dict[str, dict]:
    """``{method: {metric: float | None}}`` of ``run`` (a trainer or a loaded run) on ``images``
    (module docstring). The ``fit`` row is all None when no image was in training."""
    out: dict[str, dict] = {}
    pred = run.predict(images) if {"predicted", "template"} & set(methods) else None
    if "predicted" in methods:
        out["predicted"] = _row(run, images, pred["vertices"], pred["cameras"])
    if "template" in methods:
        template = np.broadcast_to(run.template.mesh.vertices, pred["vertices"].shape)
        out["template"] = _row(run, images, np.ascontiguousarray(template), pred["cameras"])
    if "fit" in methods:
        index = {name: i for i, name in enumerate(run.database_names)}
        rows = [index.get(name, -1) for name in images.names]
        known = np.asarray([r >= 0 for r in rows])
        same_set = Path(str(images.root)).resolve() == Path(str(run.data_root)).resolve()
        if same_set and known.any() and images.size == run.config.size:
            fit = run.database_fit()
            sel = np.asarray([r for r in rows if r >= 0])
            subset = images.subset(np.flatnonzero(known))
            out["fit"] = _row(run, subset, fit["vertices"][sel], fit["cameras"][sel])
        else:
            out["fit"] = dict.fromkeys(METRICS)
    return out


def format_table(rows: dict[str, dict]) -> str:
    """The rows as a plain-text table (``-`` for None)."""
    header = f"{'method':<10} " + " ".join(f"{m:>16}" for m in METRICS)
    lines = [header]
    for name, row in rows.items():
        cells = []
        for m in METRICS:
            v = row.get(m)
            cells.append(f"{'-':>16}" if v is None else f"{v:>16.4f}")
        lines.append(f"{name:<10} " + " ".join(cells))
    return "\n".join(lines)
