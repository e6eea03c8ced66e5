"""Tests of the synthetic human motion generator (the default PRN training set)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from engine.core.errors import DataError
from engine.synthetic.human import (
    H36M_EDGES,
    H36M_JOINT_NAMES,
    H36M_PARENTS,
    JOINT_LIMITS_DEG,
    MOTIONS,
    REST_OFFSETS,
    TEST_SEED_OFFSET,
    euler_to_matrix,
    forward_kinematics,
    sample_motion,
    synthetic_human,
)


@pytest.fixture(scope="module")
def seq():
    return synthetic_human(24, 60, seed=7)


def test_shapes_names_and_description(seq):
    assert seq.points3d.shape == (24 * 60, 17, 3) and seq.points2d.shape == (24 * 60, 17, 2)
    np.testing.assert_array_equal(seq.points2d, seq.points3d[..., :2])  # orthographic camera
    assert seq.names == H36M_JOINT_NAMES and len(H36M_EDGES) == 16
    assert seq.names[0] == "pelvis" and seq.names[10] == "head" and seq.names[16] == "r_wrist"
    d = seq.description
    assert (d["seed"], d["num_sequences"], d["frames_per_sequence"]) == (7, 24, 60)
    assert sum(d["motions"].values()) == 24 and len(d["sequence_motions"]) == 24
    assert np.isfinite(seq.points3d).all()


def test_deterministic_and_seeds_differ(seq):
    again = synthetic_human(24, 60, seed=7)
    np.testing.assert_array_equal(again.points3d, seq.points3d)
    other = synthetic_human(24, 60, seed=7 + TEST_SEED_OFFSET)
    assert np.abs(other.points3d - seq.points3d).mean() > 50.0  # mm


def test_bone_lengths_constant_over_time_and_human_sized(seq):
    p = seq.points3d.reshape(24, 60, 17, 3)
    for parent, child in H36M_EDGES:
        length = np.linalg.norm(p[:, :, child] - p[:, :, parent], axis=-1)  # (S, T)
        np.testing.assert_allclose(length, length[:, :1].repeat(60, axis=1), rtol=1e-9)
        rest = np.linalg.norm(REST_OFFSETS[child])
        assert np.all(length > 0.8 * rest) and np.all(length < 1.25 * rest)
    # Left and right limbs of one body are equally long.
    np.testing.assert_allclose(
        np.linalg.norm(p[:, 0, 2] - p[:, 0, 1], axis=-1),
        np.linalg.norm(p[:, 0, 5] - p[:, 0, 4], axis=-1),
    )


def test_joint_limits_respected_and_used():
    m = sample_motion(64, 50, seed=3)
    angles = m["angles"]
    lo, hi = JOINT_LIMITS_DEG[..., 0], JOINT_LIMITS_DEG[..., 1]
    assert np.all(angles >= lo - 1e-9) and np.all(angles <= hi + 1e-9)
    # Large parts of the ranges are visited (knees bend deeply, arms go above shoulders).
    assert (
        angles[..., 2, 0].max() > 80
        and angles[..., 11, 2].max() > 90
        and angles[..., 14, 2].min() < -90
    )
    assert set(np.unique(m["motion"])) == set(range(len(MOTIONS)))


def test_knee_and_elbow_angles_from_points_match_joint_angles():
    m = sample_motion(6, 30, seed=11)
    world = forward_kinematics(m["angles"], m["root_yaw"], m["bone_lengths"])
    for hip, knee, ankle, sign in (
        (1, 2, 3, 1.0),
        (4, 5, 6, 1.0),
        (11, 12, 13, -1.0),
        (14, 15, 16, -1.0),
    ):
        upper = world[:, :, knee] - world[:, :, hip]
        lower = world[:, :, ankle] - world[:, :, knee]
        # atan2 stays accurate near 0 deg, where arccos loses half the digits.
        cross = np.linalg.norm(np.cross(upper, lower), axis=-1)
        bend = np.degrees(np.arctan2(cross, (upper * lower).sum(-1)))
        np.testing.assert_allclose(bend, sign * m["angles"][:, :, knee, 0], atol=1e-6)


def test_forward_kinematics_against_per_frame_loop():
    m = sample_motion(2, 3, seed=5)
    fast = forward_kinematics(m["angles"], m["root_yaw"], m["bone_lengths"])
    for s in range(2):
        for t in range(3):
            glob = {}
            pos = np.zeros((17, 3))
            for j in range(17):
                # scipy's intrinsic "ZXY" is Rz @ Rx @ Ry.
                local = Rotation.from_euler(
                    "ZXY", m["angles"][s, t, j, [2, 0, 1]], degrees=True
                ).as_matrix()
                if j == 0:
                    glob[0] = (
                        Rotation.from_euler("y", m["root_yaw"][s, t], degrees=True).as_matrix()
                        @ local
                    )
                    continue
                parent = H36M_PARENTS[j]
                offset = REST_OFFSETS[j] / np.linalg.norm(REST_OFFSETS[j]) * m["bone_lengths"][s, j]
                pos[j] = pos[parent] + glob[parent] @ offset
                glob[j] = glob[parent] @ local
            np.testing.assert_allclose(fast[s, t], pos, atol=1e-9)


def test_euler_matrix_is_rotation():
    r = euler_to_matrix(np.random.default_rng(0).uniform(-180, 180, size=(20, 3)))
    np.testing.assert_allclose(
        r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(r), 1.0)


def test_motion_is_smooth(seq):
    p = seq.points3d.reshape(24, 60, 17, 3)
    step = np.linalg.norm(np.diff(p, axis=1), axis=-1)  # mm per frame at 25 fps
    assert step.max() < 150.0  # under ~3.75 m/s for every joint, no jumps


def test_camera_views_vary(seq):
    # Pelvis-to-thorax direction in the camera frame differs between sequences (random views).
    p = seq.points3d.reshape(24, 60, 17, 3)[:, 0]
    hips = p[:, 4] - p[:, 1]
    azimuth = np.degrees(np.arctan2(hips[:, 2], hips[:, 0]))
    assert np.ptp(azimuth) > 180


def test_bad_sizes():
    with pytest.raises(DataError):
        synthetic_human(0, 10, seed=0)
    with pytest.raises(DataError):
        synthetic_human(2, 1.5, seed=0)
