"""The camera multiplex's starting points: hypotheses around the template, fitted to the
instance's keypoints without rendering."""

from __future__ import annotations

import numpy as np
import torch

from engine.category.metrics import camera_rotation_error_deg
from engine.category.multiplex import fit_hypotheses_to_keypoints, initial_hypotheses
from engine.category.template import category_template
from engine.render.cameras import make_cameras, project, view_rotation


def test_keypoint_fit_moves_hypotheses_to_the_true_camera():
    template = category_template()
    verts = template.mesh.vertices
    kp3 = verts[template.keypoint_vertices]
    size, count = 64, 6
    rng = np.random.default_rng(0)
    az = torch.as_tensor(rng.uniform(0, 360, count))
    el = torch.as_tensor(rng.uniform(-25, 25, count))
    q = view_rotation(az, el, template.up_axis, template.front_axis)
    truth = make_cameras(
        torch.full((count,), 20.0, dtype=torch.float64),
        torch.as_tensor(rng.uniform(28, 36, (count, 2))),
        q,
    )
    xy = project(torch.as_tensor(kp3)[None].expand(count, -1, -1), truth)[..., :2].numpy()
    visible = rng.random(xy.shape[:2]) > 0.3
    visible[0] = False  # too few keypoints: left as it was
    visible[0, :3] = True
    keypoints = np.concatenate([xy, visible[..., None]], -1).astype(np.float32)
    masks = np.zeros((count, size, size), dtype=bool)
    for i in range(count):
        c, r = np.clip(xy[i].astype(int), 0, size - 1).T
        masks[i, r.min() : r.max() + 1, c.min() : c.max() + 1] = True
    start = initial_hypotheses(
        verts, masks, 8, up_axis=template.up_axis, front_axis=template.front_axis
    )
    fitted = fit_hypotheses_to_keypoints(start, keypoints, kp3, size, steps=200)
    assert fitted.shape == start.shape
    torch.testing.assert_close(fitted[0], start[0])
    before = np.stack([camera_rotation_error_deg(start[1:, h], truth[1:]) for h in range(8)], 1)
    after = np.stack([camera_rotation_error_deg(fitted[1:, h], truth[1:]) for h in range(8)], 1)
    # Exact keypoints of a rigid template: the best hypothesis lands on the truth.
    assert after.min(1).max() < 2.0 < before.min(1).max()
    best = after.argmin(1)
    np.testing.assert_allclose(
        fitted[1:, :, 0].numpy()[np.arange(count - 1), best], 20.0, rtol=0.02
    )
    np.testing.assert_allclose(torch.linalg.vector_norm(fitted[..., 3:], dim=-1), 1.0, atol=1e-5)
