"""The camera multiplex's starting points (seed 001, section 2.1; UCMR): N_c hypotheses per
instance at distinct azimuths, each scaled and centred on the instance's mask, or one camera per
instance from rigid structure from motion on its keypoints.

Cameras are in the project's pixel convention (:mod:`engine.render.cameras`) of the training
crops (S x S).
"""

from __future__ import annotations

import numpy as np
import torch

from engine.render.cameras import make_cameras, matrix_to_quaternion, project, view_rotation


def initial_hypotheses(
    template: np.ndarray,
    masks: np.ndarray,
    num: int,
    *,
    up_axis: str,
    front_axis: str,
    elevations: tuple[float, ...] = (0.0,),
) -> torch.Tensor:
    """(I, num, 7) float32 pixel cameras: azimuths ``360 k / num`` (no repeat of 0 and 360),
    elevations cycled over them, each scaled so that the template's projected extent matches
    the instance's mask box and translated onto the box's centre.

    Args:
        template: (N,3) template vertices.
        masks: (I,S,S) masks of the training crops.
        num: N_c hypotheses.
    """
    azimuths = torch.arange(num, dtype=torch.float64) * (360.0 / num)
    elev = torch.tensor([elevations[k % len(elevations)] for k in range(num)], dtype=torch.float64)
    q = view_rotation(azimuths, elev, up_axis, front_axis)  # (num,4)
    unit = make_cameras(
        torch.ones(num, dtype=torch.float64), torch.zeros(num, 2, dtype=torch.float64), q
    )
    screen = project(torch.as_tensor(template, dtype=torch.float64).expand(num, -1, -1), unit)
    lo, hi = screen[..., :2].amin(1), screen[..., :2].amax(1)  # (num,2) template units
    t_extent, t_centre = hi - lo, 0.5 * (hi + lo)
    boxes = []
    for m in masks:
        rows, cols = np.nonzero(m > 0.5)
        if len(rows) == 0:
            size = m.shape[0]
            boxes.append([0.25 * size, 0.25 * size, 0.75 * size, 0.75 * size])
        else:
            boxes.append([cols.min(), rows.min(), cols.max() + 1.0, rows.max() + 1.0])
    boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float64))  # (I,4) x0 y0 x1 y1
    m_extent = boxes[:, 2:] - boxes[:, :2]
    m_centre = 0.5 * (boxes[:, 2:] + boxes[:, :2])
    # Match the larger of the two extents ratios' geometric mean: robust to the pose.
    ratio = m_extent[:, None, :] / t_extent[None].clamp_min(1e-9)  # (I,num,2)
    scale = torch.sqrt(ratio[..., 0] * ratio[..., 1])
    translation = m_centre[:, None, :] - scale[..., None] * t_centre[None]
    cams = make_cameras(scale, translation, q.expand(len(masks), -1, -1))
    return cams.to(torch.float32)


def rigid_cameras_from_keypoints(
    keypoints: np.ndarray, template_points: np.ndarray
) -> tuple[torch.Tensor, np.ndarray]:
    """One weak-perspective camera per instance from its 2D keypoints and the template's 3D
    keypoints: the least-squares affine projection, made the nearest scaled rotation (SVD).

    Args:
        keypoints: (I,P,3) ``(x, y, visible)`` in pixels.
        template_points: (P,3) template keypoint positions.

    Returns:
        cameras (I,7) float32 pixels, and (I,) bool: whether an instance had enough visible
        keypoints (at least 4, not all on a line); others get a front view centred on their
        visible keypoints' mean (or the origin).
    """
    count = keypoints.shape[0]
    cams = np.zeros((count, 7))
    ok = np.zeros(count, dtype=bool)
    X = np.asarray(template_points, dtype=np.float64)
    for i in range(count):
        vis = keypoints[i, :, 2] > 0.5
        x = keypoints[i, vis, :2].astype(np.float64)
        cams[i] = [1.0, *(x.mean(0) if len(x) else (0.0, 0.0)), 1.0, 0.0, 0.0, 0.0]
        if vis.sum() < 4:
            continue
        Xc = X[vis] - X[vis].mean(0)
        if np.linalg.matrix_rank(Xc, tol=1e-6 * np.abs(Xc).max()) < 3:
            continue
        M, *_ = np.linalg.lstsq(Xc, x - x.mean(0), rcond=None)  # (3,2): x = Xc M
        M = M.T  # (2,3)
        u, sv, vt = np.linalg.svd(M, full_matrices=False)
        rows = u @ vt  # nearest 2x3 with orthonormal rows
        scale = float(sv.mean())
        r = np.vstack([rows, np.cross(rows[0], rows[1])])
        q = matrix_to_quaternion(torch.as_tensor(r)).numpy()
        t = x.mean(0) - scale * (r[:2] @ X[vis].mean(0))
        cams[i] = [scale, t[0], t[1], *q]
        ok[i] = True
    return torch.as_tensor(cams, dtype=torch.float32), ok


def fit_hypotheses_to_keypoints(
    cameras: torch.Tensor,
    keypoints: np.ndarray,
    template_points: np.ndarray,
    size: int,
    *,
    steps: int = 100,
    lr: float = 0.05,
) -> torch.Tensor:
    """Each hypothesis moved to its nearest camera that projects the template's keypoints
    onto the instance's (Adam on all I x H cameras at once; no rendering, so it costs about a
    second where a rendered warm-up moves each camera once per epoch). Hypotheses keep their
    own basin (they start at distinct azimuths), so the multiplex still chooses between, e.g.,
    a view and its mirror image. Instances with fewer than 4 visible keypoints are unchanged.

    Args:
        cameras: (I,H,7) pixel cameras (e.g. :func:`initial_hypotheses`).
        keypoints: (I,P,3) ``(x, y, visible)`` pixels.
        template_points: (P,3) the template's keypoint positions.
        size: image side in pixels (the error is measured in units of it).

    Returns:
        (I,H,7) float32 pixel cameras, unit quaternions.
    """
    from engine.render.cameras import normalize_quaternion

    kp = torch.as_tensor(np.asarray(keypoints), dtype=torch.float64)
    vis = (kp[..., 2] > 0.5).to(torch.float64)  # (I,P)
    enough = vis.sum(1) >= 4
    count, hyp = cameras.shape[:2]
    X = torch.as_tensor(np.asarray(template_points), dtype=torch.float64)
    cams = cameras.to(torch.float64)
    log_s = torch.log(cams[..., :1] / size).clone().requires_grad_(True)
    t = (cams[..., 1:3] / size).clone().requires_grad_(True)
    q = cams[..., 3:].clone().requires_grad_(True)
    opt = torch.optim.Adam([log_s, t, q], lr=lr)
    target = kp[:, None, :, :2] / size  # (I,1,P,2)
    weight = (vis / vis.sum(1, keepdim=True).clamp_min(1.0))[:, None]  # (I,1,P)
    for _ in range(steps):
        c = torch.cat([torch.exp(log_s) * size, t * size, normalize_quaternion(q)], -1)
        c = c.view(-1, 7)
        xy = project(X.expand(count * hyp, -1, -1), c)[..., :2].view(count, hyp, -1, 2) / size
        loss = (((xy - target) ** 2).sum(-1) * weight).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        fitted = torch.cat([torch.exp(log_s) * size, t * size, normalize_quaternion(q)], -1)
        out = torch.where(enough[:, None, None], fitted, cams)
    return out.to(torch.float32)


def prune(probabilities: torch.Tensor, keep: int) -> torch.Tensor:
    """(I, keep) int64 indices of each instance's ``keep`` most probable hypotheses, most
    probable first (ties: the lower index)."""
    order = torch.sort(probabilities, dim=1, descending=True, stable=True).indices
    return order[:, :keep]
