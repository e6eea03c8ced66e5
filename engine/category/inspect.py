"""What the Category workspace shows for one instance: the network's mesh and camera, its
silhouette and keypoints in the image, the instance's camera hypotheses with their
probabilities, and on synthetic data the true mesh with per-vertex errors.

Camera hypotheses are placed for drawing as points around the mesh: a camera looks along its
frame's +z axis, so it sits at ``centre - distance * R^T e_z`` in template coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.category.metrics import similarity_align
from engine.category.model import params_to_cameras
from engine.io.image_sets import ImageSet
from engine.render.cameras import quaternion_to_matrix


@dataclass
class InstanceView:
    """One instance as the workspace draws it.

    Attributes:
        index: row in the image set.
        name: image name.
        vertices: (N,3) the network's mesh, template units.
        camera: (7,) its camera, crop pixels.
        silhouette: (S,S) bool, the mesh rendered with that camera.
        keypoints: (P,2) projected template keypoints, crop pixels (None without keypoints).
        hypotheses: (H,7) the instance's camera hypotheses (crop pixels) or None when the
            instance is not in the run's training set.
        probabilities: (H,) their probabilities, or None.
        hypothesis_positions: (H,3) where to draw each hypothesis around the mesh.
        truth: (N,3) the true mesh similarity-aligned onto the prediction, or None.
        vertex_errors: (N,) distance of each predicted vertex to the true one, as a fraction of
            the true mesh's bounding-box diagonal, or None.
    """

    index: int
    name: str
    vertices: np.ndarray
    camera: np.ndarray
    silhouette: np.ndarray
    keypoints: np.ndarray | None
    hypotheses: np.ndarray | None
    probabilities: np.ndarray | None
    hypothesis_positions: np.ndarray | None
    truth: np.ndarray | None
    vertex_errors: np.ndarray | None


def camera_positions(cameras: np.ndarray, centre: np.ndarray, distance: float) -> np.ndarray:
    """(H,3) positions ``centre - distance * R^T e_z`` of cameras (H,7) around a mesh."""
    rot = quaternion_to_matrix(torch.as_tensor(cameras[:, 3:7], dtype=torch.float64)).numpy()
    return centre[None] - distance * rot[:, 2, :]


def inspect_instance(run, images: ImageSet, index: int) -> InstanceView:
    """The :class:`InstanceView` of image ``index`` of ``images`` under ``run`` (a trainer or a
    loaded run). Thread-safety is the caller's (hold the trainer's lock while it trains)."""
    subset = images.subset(np.asarray([index]))
    pred = run.predict(subset)
    vertices, camera = pred["vertices"][0], pred["cameras"][0]
    silhouette = run.render_masks(pred["vertices"], pred["cameras"])[0]
    keypoints = None
    if images.keypoints is not None:
        keypoints = run.project_keypoints(pred["vertices"], pred["cameras"])[0]
    name = images.names[index]
    hypotheses = probabilities = positions = None
    names = {n: i for i, n in enumerate(run.database_names)}
    if name in names:
        row = names[name]
        with torch.no_grad():
            params = run.camera_db.detach()[row].view(-1, 7)
            hypotheses = params_to_cameras(params, run.config.size).cpu().numpy()
            probabilities = run.probabilities[row].detach().cpu().numpy().copy()
        lo, hi = vertices.min(0), vertices.max(0)
        positions = camera_positions(
            hypotheses, 0.5 * (lo + hi), 0.7 * float(np.linalg.norm(hi - lo))
        )
    truth = errors = None
    gt = images.ground_truth
    if gt is not None and gt["vertices"].shape[1:] == vertices.shape:
        true = np.asarray(gt["vertices"][index], dtype=np.float64)
        truth = similarity_align(true, vertices.astype(np.float64))
        diag = float(np.linalg.norm(true.max(0) - true.min(0))) or 1.0
        aligned_pred = similarity_align(vertices.astype(np.float64), true)
        errors = np.linalg.norm(aligned_pred - true, axis=1) / diag
    return InstanceView(
        index=index,
        name=name,
        vertices=vertices,
        camera=camera,
        silhouette=silhouette,
        keypoints=keypoints,
        hypotheses=hypotheses,
        probabilities=probabilities,
        hypothesis_positions=positions,
        truth=truth,
        vertex_errors=errors,
    )


def flow_colours(flow: np.ndarray, scale: float | None = None) -> np.ndarray:
    """(H,W,2) flow (pixels) -> (H,W,3) uint8 RGB for display: hue is the direction, saturation
    the length relative to ``scale`` (default: the longest vector)."""
    import cv2

    mag = np.linalg.norm(flow, axis=-1)
    scale = float(mag.max()) if scale is None else float(scale)
    angle = (np.degrees(np.arctan2(flow[..., 1], flow[..., 0])) % 360) / 2
    sat = np.clip(mag / max(scale, 1e-6), 0, 1) * 255
    hsv = np.stack([angle, sat, np.full_like(mag, 255)], -1).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def view_axes(camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Template-space viewing direction (3,) and image-up direction (3,) of a camera (7,): the
    camera looks along ``R^T e_z``, and image up is ``-R^T e_y`` (image y points down)."""
    rot = quaternion_to_matrix(torch.as_tensor(camera[3:7], dtype=torch.float64)).numpy()
    return rot[2].copy(), -rot[1].copy()


def novel_view(
    camera: np.ndarray, up_axis: str, degrees: float = 90.0
) -> tuple[np.ndarray, np.ndarray]:
    """A second view of the same mesh: the camera's viewing direction turned by ``degrees``
    about the template's up axis (the image-up direction turned with it)."""
    from engine.category.template import axis_vector

    forward, up = view_axes(camera)
    axis = axis_vector(up_axis)
    angle = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    turn = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)
    return turn @ forward, turn @ up


def turned_camera(
    camera: np.ndarray, template_vertices: np.ndarray, up_axis: str, degrees: float = 90.0
) -> np.ndarray:
    """(7,) the camera turned by ``degrees`` about the template's up axis through the mesh's
    centre (a novel view of the same shape at the same scale and image position)."""
    from engine.category.template import axis_vector
    from engine.render.cameras import quaternion_multiply

    half = np.radians(degrees) / 2
    turn = np.concatenate([[np.cos(half)], np.sin(half) * axis_vector(up_axis)])
    q = quaternion_multiply(
        torch.as_tensor(camera[3:7], dtype=torch.float64), torch.as_tensor(turn)
    )
    out = np.asarray(camera, dtype=np.float64).copy()
    out[3:7] = q.numpy()
    # Keep the mesh centre where it was in the image.
    centre = 0.5 * (template_vertices.min(0) + template_vertices.max(0))
    r_old = quaternion_to_matrix(torch.as_tensor(camera[3:7], dtype=torch.float64)).numpy()
    r_new = quaternion_to_matrix(q).numpy()
    out[1:3] = camera[1:3] + camera[0] * ((r_old @ centre)[:2] - (r_new @ centre)[:2])
    return out
