"""Tests for engine.synthetic.skeleton: the automatic skeleton, LBS posing and random motion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from engine.core.errors import MeshError
from engine.geometry.primitives import icosphere
from engine.io.mesh import load_mesh
from engine.synthetic.skeleton import (
    Skeleton,
    fit_skeleton,
    forward_kinematics,
    pose,
    posed_joints,
    random_motion,
    random_poses,
)

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo_template.ply"
TEMPLATES = Path(__file__).resolve().parents[2] / "shared" / "data" / "templates"


@pytest.fixture(scope="module")
def demo():
    mesh = load_mesh(DEMO)
    return mesh.vertices, mesh.faces, fit_skeleton(mesh.vertices, mesh.faces)


def winding_numbers(vertices, faces, points):
    """Generalised winding number of a closed mesh at each point (1 inside, 0 outside)."""
    a, b, c = (vertices[faces[:, i]][None] - points[:, None] for i in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=2) for x in (a, b, c))
    det = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
    dots = (
        la * lb * lc
        + np.einsum("pfi,pfi->pf", a, b) * lc
        + np.einsum("pfi,pfi->pf", b, c) * la
        + np.einsum("pfi,pfi->pf", c, a) * lb
    )
    return np.arctan2(det, dots).sum(axis=1) / (2 * np.pi)


def edges_of(faces):
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


def assert_valid(sk: Skeleton, n: int, k: int = 3):
    assert sk.weights.shape == (n, sk.num_joints)
    assert (sk.weights >= 0).all()
    np.testing.assert_allclose(sk.weights.sum(axis=1), 1.0, atol=1e-12)
    assert sk.num_joints == 1 + sk.num_chains * k
    assert sk.parents[0] == -1 and (sk.parents[1:] < np.arange(1, sk.num_joints)).all()
    assert (sk.parents[1:] >= 0).all()
    assert sk.regions.shape == (n,) and sk.regions.max(initial=-1) < sk.num_chains


def leg_chains(sk: Skeleton, up: int, lowest: float, height: float) -> np.ndarray:
    return np.flatnonzero(sk.tip_points[:, up] < lowest + 0.1 * height)


def assert_four_legs(vertices, sk: Skeleton, up: int, side: int):
    """Four tips near the ground, one in each quadrant (forward/back x left/right) of the root."""
    lowest, height = vertices[:, up].min(), np.ptp(vertices[:, up])
    legs = leg_chains(sk, up, lowest, height)
    assert len(legs) == 4, sk.tip_points
    offsets = sk.tip_points[legs] - sk.joints[0]
    quadrants = {(bool(o[0] > 0), bool(o[side] > 0)) for o in offsets}
    assert len(quadrants) == 4, offsets


def test_demo_finds_legs_head_and_tail(demo):
    v, _, sk = demo
    assert_valid(sk, len(v))
    assert sk.num_chains >= 5
    assert_four_legs(v, sk, up=2, side=1)
    # The remaining chains are the neck+head (in front, high up) and the tail (behind).
    others = np.setdiff1d(
        np.arange(sk.num_chains), leg_chains(sk, 2, v[:, 2].min(), np.ptp(v[:, 2]))
    )
    assert sk.tip_points[others, 2].max() > v[:, 2].min() + 0.6 * np.ptp(v[:, 2])
    assert sk.tip_points[others, 0].min() < v[:, 0].min() + 0.1 * np.ptp(v[:, 0])


def test_demo_joints_inside_mesh(demo):
    v, f, sk = demo
    assert (sk.joints >= v.min(axis=0)).all() and (sk.joints <= v.max(axis=0)).all()
    np.testing.assert_allclose(winding_numbers(v, f, sk.joints), 1.0, atol=0.05)


def test_fit_is_deterministic(demo):
    v, f, sk = demo
    again = fit_skeleton(v, f, seed=0)
    np.testing.assert_array_equal(again.joints, sk.joints)
    np.testing.assert_array_equal(again.weights, sk.weights)


@pytest.mark.parametrize(
    "name, hooves",
    [
        ("horse", ["frontLeftHoof", "frontRightHoof", "backLeftHoof", "backRightHoof"]),
        ("cow", ["L_F_Paw", "R_F_Paw", "L_B_Paw", "R_B_Paw"]),
    ],
)
def test_shared_templates_find_legs(name, hooves):
    path = TEMPLATES / f"{name}.obj"
    if not path.exists():
        pytest.skip(f"reference templates not present at {TEMPLATES}")
    mesh = load_mesh(path)
    v, f = mesh.vertices, mesh.faces
    sk = fit_skeleton(v, f)
    assert_valid(sk, len(v))
    assert sk.num_chains >= 5  # four legs and the neck+head (the horse also has its tail)
    assert_four_legs(v, sk, up=1, side=2)
    np.testing.assert_allclose(winding_numbers(v, f, sk.joints), 1.0, atol=0.05)
    keypoints = json.loads((TEMPLATES / f"{name}_keypoints.json").read_text())
    for hoof in hooves:
        gap = np.linalg.norm(sk.tip_points - v[keypoints[hoof]], axis=1).min()
        assert gap < 0.08 * np.ptp(v, axis=0).max(), hoof


def test_zero_rotations_give_the_template(demo):
    v, _, sk = demo
    out = pose(sk, np.zeros((2, sk.num_joints, 3)), v)
    assert out.shape == (2, len(v), 3)
    np.testing.assert_allclose(out, np.broadcast_to(v, out.shape), atol=1e-12)


def test_rotating_one_leg_moves_only_that_leg(demo):
    v, _, sk = demo
    legs = leg_chains(sk, 2, v[:, 2].min(), np.ptp(v[:, 2]))
    front = legs[np.argmax(sk.tip_points[legs, 0])]
    hip = np.flatnonzero(sk.chains == front)[0]
    rot = np.zeros((1, sk.num_joints, 3))
    rot[0, hip] = np.radians(40.0) * np.array([0.0, 1.0, 0.0])  # swing forward/back
    moved = np.linalg.norm(pose(sk, rot, v)[0] - v, axis=1)
    size = np.ptp(v, axis=0).max()
    far = v[:, 0] < sk.joints[0, 0]  # the hind half of the body
    assert moved[far].max() < 1e-9 * size
    assert np.median(moved[sk.regions == front]) > 0.05 * size
    # The other legs stay put (the top of the other front leg, across the chest, barely moves);
    # the base of the neck next to the shoulder may follow a little.
    other_legs = np.isin(sk.regions, legs[legs != front])
    assert moved[other_legs].max() < 1e-3 * size
    assert moved[(sk.regions >= 0) & (sk.regions != front)].max() < 0.02 * size


def test_forward_kinematics_matches_composed_rotations():
    # A hand-made chain along x: root, then joints at x = 1, 2 (each the parent of the next).
    joints = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]])
    sk = Skeleton(
        joints=joints,
        parents=np.array([-1, 0, 1]),
        chains=np.array([-1, 0, 0]),
        tips=np.array([0]),
        tip_points=np.array([[3.0, 0, 0]]),
        weights=np.eye(3)[[0, 1, 2, 2]],
        regions=np.array([-1, 0, 0, 0]),
    )
    rng = np.random.default_rng(3)
    rotvec = rng.normal(size=(4, 3, 3))
    got = pose(sk, rotvec, np.array([[0.5, 0, 0], [1.5, 0, 0], [2.5, 0, 0], [3.0, 0, 0]]))
    for b in range(4):
        r0, r1, r2 = (Rotation.from_rotvec(rotvec[b, j]).as_matrix() for j in range(3))
        p1 = r0 @ joints[1]
        p2 = p1 + r0 @ r1 @ (joints[2] - joints[1])
        tip = p2 + r0 @ r1 @ r2 @ np.array([1.0, 0, 0])
        np.testing.assert_allclose(posed_joints(sk, rotvec[b : b + 1])[0], [joints[0], p1, p2])
        np.testing.assert_allclose(got[b, 3], tip, atol=1e-12)
        np.testing.assert_allclose(got[b, 0], r0 @ [0.5, 0, 0], atol=1e-12)


def test_pose_preserves_bone_lengths(demo):
    _, _, sk = demo
    rot = random_poses(sk, 8, seed=1, amplitude_deg=60.0)
    posed = posed_joints(sk, rot)
    child = np.arange(1, sk.num_joints)
    lengths = np.linalg.norm(posed[:, child] - posed[:, sk.parents[child]], axis=2)
    np.testing.assert_allclose(
        lengths, np.broadcast_to(sk.bone_lengths(), lengths.shape), rtol=1e-10
    )
    np.testing.assert_allclose(posed[:, 0], np.broadcast_to(sk.joints[0], (8, 3)))


def test_root_rotation_is_rigid(demo):
    v, _, sk = demo
    rot = np.zeros((1, sk.num_joints, 3))
    rot[0, 0] = [0.3, -0.5, 0.8]
    expected = (v - sk.joints[0]) @ Rotation.from_rotvec(rot[0, 0]).as_matrix().T + sk.joints[0]
    np.testing.assert_allclose(pose(sk, rot, v)[0], expected, atol=1e-12)
    glob_r, _ = forward_kinematics(sk, rot)
    np.testing.assert_allclose(glob_r[0], np.broadcast_to(glob_r[0, 0], glob_r[0].shape))


def test_random_motion_is_smooth_bounded_and_seeded(demo):
    _, _, sk = demo
    motion = random_motion(sk, 200, seed=5, amplitude_deg=30.0, root_amplitude_deg=10.0)
    assert motion.shape == (200, sk.num_joints, 3)
    step = np.degrees(np.linalg.norm(np.diff(motion, axis=0), axis=2))
    assert step.max() < 5.0
    angle = np.degrees(np.linalg.norm(motion, axis=2))
    assert angle[:, 1:].max() <= 30.0 + 1e-9 and angle[:, 0].max() <= 10.0 + 1e-9
    assert angle[:, 1:].max() > 15.0  # it does move
    np.testing.assert_array_equal(motion, random_motion(sk, 200, seed=5))
    other = random_motion(sk, 200, seed=6)
    assert np.degrees(np.abs(other - motion)).mean() > 3.0


def test_random_motion_mostly_swings_across_bones(demo):
    _, _, sk = demo
    motion = random_motion(sk, 100, seed=2)
    for j in range(1, sk.num_joints):
        child = np.flatnonzero(sk.parents == j)
        end = sk.joints[child[0]] if len(child) else sk.tip_points[sk.chains[j]]
        bone = (end - sk.joints[j]) / np.linalg.norm(end - sk.joints[j])
        twist = np.abs(motion[:, j] @ bone)
        assert twist.max() <= 0.25 * np.radians(30.0) + 1e-9


def test_random_poses_are_seeded_and_bounded(demo):
    _, _, sk = demo
    poses = random_poses(sk, 50, seed=4)
    assert poses.shape == (50, sk.num_joints, 3)
    assert np.degrees(np.linalg.norm(poses, axis=2)).max() <= 30.0 + 1e-9
    np.testing.assert_array_equal(poses, random_poses(sk, 50, seed=4))
    assert not np.allclose(poses, random_poses(sk, 50, seed=7))


def test_posed_edges_do_not_explode(demo):
    v, f, sk = demo
    e = edges_of(f)
    rest = np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)
    for seed in range(3):
        posed = pose(sk, random_motion(sk, 60, seed=seed), v)
        ratio = np.linalg.norm(posed[:, e[:, 0]] - posed[:, e[:, 1]], axis=2) / rest
        assert np.percentile(np.abs(ratio - 1.0), 95) < 0.3
        assert np.isfinite(posed).all()


def test_icosphere_has_a_trivial_valid_skeleton():
    v, f = icosphere(3)
    sk = fit_skeleton(v, f)
    assert_valid(sk, len(v))
    assert sk.num_chains == 0
    np.testing.assert_allclose(sk.joints[0], 0.0, atol=1e-3)
    out = pose(sk, random_motion(sk, 5, seed=0), v)
    np.testing.assert_allclose(np.linalg.norm(out, axis=2), 1.0, atol=1e-12)


def test_two_components_and_isolated_vertex(demo):
    dv, df, _ = demo
    sv, sf = icosphere(1)
    sv = 0.05 * sv + [1.2, 0.0, 1.75]  # a small loose part near the head
    v = np.concatenate([dv, sv, [[5.0, 5.0, 5.0]]])
    f = np.concatenate([df, sf + len(dv)])
    sk = fit_skeleton(v, f)
    assert_valid(sk, len(v))
    assert sk.num_chains >= 5
    loose = np.arange(len(dv), len(dv) + len(sv))
    assert (sk.regions[len(dv) :] == -1).all()
    # The loose part copies the weights of the nearest body vertex: one blended transform moves
    # it all, so its posed positions are an exact affine image of its rest positions.
    np.testing.assert_array_equal(
        sk.weights[loose], np.broadcast_to(sk.weights[loose[0]], (len(sv), sk.num_joints))
    )
    head = sk.regions[np.argmin(np.linalg.norm(dv - sv.mean(axis=0), axis=1))]
    assert sk.weights[loose[0], sk.chains == head].sum() > 0.5
    posed = pose(sk, random_poses(sk, 4, seed=0), v)
    rest = np.concatenate([sv, np.ones((len(sv), 1))], axis=1)
    for frame in posed:
        fit, *_ = np.linalg.lstsq(rest, frame[loose], rcond=None)
        np.testing.assert_allclose(rest @ fit, frame[loose], atol=1e-10)
    assert np.isfinite(posed).all()


def test_small_and_degenerate_inputs():
    v, f = icosphere(0)
    for kwargs in ({"max_chains": 0}, {"joints_per_chain": 1}):
        assert_valid(fit_skeleton(v, f, **kwargs), len(v), kwargs.get("joints_per_chain", 3))
    points = np.eye(3)
    sk = fit_skeleton(points, np.zeros((0, 3), dtype=np.int64))
    assert sk.num_chains == 0 and (sk.weights == 1.0).all()


def test_bad_inputs_are_rejected(demo):
    v, f, sk = demo
    with pytest.raises(MeshError):
        fit_skeleton(v[:, :2], f)
    with pytest.raises(MeshError):
        fit_skeleton(v, f + len(v))
    with pytest.raises(ValueError):
        fit_skeleton(v, f, joints_per_chain=0)
    with pytest.raises(ValueError):
        pose(sk, np.zeros((1, sk.num_joints + 1, 3)), v)
    with pytest.raises(ValueError):
        pose(sk, np.zeros((1, sk.num_joints, 3)), v[:-1])
