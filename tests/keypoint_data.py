"""Small keypoint sequences with known 3D for the PRN tests."""

from __future__ import annotations

import numpy as np

from engine.io.keypoints import KeypointSequence


def low_rank_sequence(
    frames: int = 48, points: int = 8, seed: int = 0, rank: int = 2
) -> KeypointSequence:
    """Low-rank non-rigid shapes seen by random orthographic cameras (camera frame)."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, points, 3))
    coeff = np.concatenate([np.ones((frames, 1)), 0.3 * rng.normal(size=(frames, rank - 1))], 1)
    shapes = np.einsum("fk,kpc->fpc", coeff, basis)
    q, _ = np.linalg.qr(rng.normal(size=(frames, 3, 3)))
    q *= np.sign(np.linalg.det(q))[:, None, None]
    points3d = 5.0 * shapes @ q.transpose(0, 2, 1) + np.array([2.0, -1.0, 7.0])
    return KeypointSequence(
        points2d=points3d[..., :2].copy(), points3d=points3d, description={"source": "test"}
    )
