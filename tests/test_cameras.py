"""Weak-perspective cameras: quaternion algebra, projection, viewing angles, image changes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from engine.core.errors import InputError
from engine.render.cameras import (
    crop_resize_cameras,
    crop_resize_points,
    denormalize_cameras,
    make_cameras,
    matrix_to_quaternion,
    mirror_cameras,
    mirror_points2d,
    normalize_cameras,
    normalize_quaternion,
    project,
    quaternion_geodesic,
    quaternion_multiply,
    quaternion_to_matrix,
    uncrop_resize_points,
    uniform_azimuth_cameras,
    uniform_azimuths,
    view_rotation,
)

F64 = torch.float64


def random_quaternions(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return normalize_quaternion(torch.randn(n, 4, generator=generator, dtype=F64))


def random_cameras(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed + 1)
    scale = 20 + 10 * torch.rand(n, generator=generator, dtype=F64)
    translation = 64 * torch.rand(n, 2, generator=generator, dtype=F64)
    return make_cameras(scale, translation, random_quaternions(n, seed))


def random_points(b: int, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, n, 3, generator=torch.Generator().manual_seed(seed + 2), dtype=F64)


def axis_angle_matrix(axis: str, degrees: float) -> torch.Tensor:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    matrix = torch.eye(3, dtype=F64)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


# ------------------------------------------------------------------ quaternions


def test_rotation_matrices_are_proper_rotations():
    rotations = quaternion_to_matrix(random_quaternions(200) * 3.7)  # not unit on purpose
    identity = torch.eye(3, dtype=F64).expand(200, 3, 3)
    torch.testing.assert_close(rotations.transpose(-1, -2) @ rotations, identity)
    torch.testing.assert_close(torch.linalg.det(rotations), torch.ones(200, dtype=F64))


def test_quaternion_matches_axis_angle():
    half = math.radians(30) / 2
    q = torch.tensor([math.cos(half), 0.0, 0.0, math.sin(half)], dtype=F64)  # 30 deg about z
    torch.testing.assert_close(quaternion_to_matrix(q), axis_angle_matrix("z", 30))


def test_quaternion_round_trip_including_half_turns():
    q = random_quaternions(500)
    q = torch.where(q[:, :1] < 0, -q, q)
    torch.testing.assert_close(matrix_to_quaternion(quaternion_to_matrix(q)), q)
    for axis in "xyz":
        rotation = axis_angle_matrix(axis, 180)
        torch.testing.assert_close(
            quaternion_to_matrix(matrix_to_quaternion(rotation)), rotation, atol=1e-12, rtol=0
        )


def test_quaternion_multiply_composes_rotations():
    q1, q2 = random_quaternions(50, seed=1), random_quaternions(50, seed=2)
    torch.testing.assert_close(
        quaternion_to_matrix(quaternion_multiply(q1, q2)),
        quaternion_to_matrix(q1) @ quaternion_to_matrix(q2),
    )


def test_geodesic_matches_matrix_angle_and_sign_invariance():
    q1, q2 = random_quaternions(300, seed=3), random_quaternions(300, seed=4)
    r1, r2 = quaternion_to_matrix(q1), quaternion_to_matrix(q2)
    trace = torch.diagonal(r1.transpose(-1, -2) @ r2, dim1=-2, dim2=-1).sum(-1)
    expected = torch.acos(((trace - 1) / 2).clamp(-1, 1))
    angle = quaternion_geodesic(q1, q2)
    torch.testing.assert_close(angle, expected, atol=1e-7, rtol=0)
    torch.testing.assert_close(quaternion_geodesic(-q1, q2), angle)
    torch.testing.assert_close(quaternion_geodesic(q1, -2.5 * q2), angle)
    assert float(angle.min()) >= 0 and float(angle.max()) <= math.pi


def test_geodesic_zero_at_identity_with_finite_gradient():
    q = random_quaternions(4, seed=5).requires_grad_(True)
    angle = quaternion_geodesic(q, q.detach().clone())
    assert float(angle.detach().abs().max()) < 1e-6
    (grad,) = torch.autograd.grad(angle.sum(), q)
    assert bool(torch.isfinite(grad).all())
    identity = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(quaternion_geodesic(identity, identity).sum(), identity)
    assert bool(torch.isfinite(grad).all())


def test_gradcheck_geodesic():
    # Away from 0 and pi, where the angle is smooth.
    q1 = random_quaternions(6, seed=6)
    q2 = normalize_quaternion(q1 + 0.3 * random_quaternions(6, seed=7))
    assert torch.autograd.gradcheck(
        quaternion_geodesic, (q1.requires_grad_(), q2.requires_grad_()), eps=1e-6, atol=1e-5
    )


# ------------------------------------------------------------------ projection


def test_projection_against_hand_computation():
    half = math.radians(90) / 2
    q = torch.tensor([math.cos(half), 0.0, 0.0, math.sin(half)], dtype=F64)  # 90 deg about z
    cameras = make_cameras(
        torch.tensor([10.0], dtype=F64), torch.tensor([[32.0, 16.0]], dtype=F64), q[None]
    )
    verts = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 2.0, 3.0]]], dtype=F64)
    # R (x, y, z) = (-y, x, z): (1,0,0) -> (0,1,0); (0,2,3) -> (-2,0,3).
    expected = torch.tensor([[[32.0, 26.0, 0.0], [12.0, 16.0, 3.0]]], dtype=F64)
    torch.testing.assert_close(project(verts, cameras), expected)


def test_projection_depth_is_in_world_units():
    cameras = random_cameras(3)
    verts = random_points(3, 5)
    screen = project(verts, cameras)
    rotated = verts @ quaternion_to_matrix(cameras[:, 3:]).transpose(-1, -2)
    torch.testing.assert_close(screen[..., 2], rotated[..., 2])


def test_gradcheck_project():
    cameras = random_cameras(2).requires_grad_(True)
    verts = random_points(2, 4).requires_grad_(True)
    assert torch.autograd.gradcheck(project, (verts, cameras), eps=1e-6, atol=1e-5)


def test_project_keeps_dtype():
    cameras = random_cameras(2).float()
    assert project(random_points(2, 3).float(), cameras).dtype == torch.float32


# ------------------------------------------------------------------ viewing angles


@pytest.mark.parametrize(("up", "front"), [("z", "x"), ("y", "-x"), ("-y", "z")])
@pytest.mark.parametrize("elevation", [-60.0, -20.0, 0.0, 35.0, 80.0])
def test_view_rotation_maps_up_to_image_up(up, front, elevation):
    azimuths = uniform_azimuths(12, dtype=F64)
    rotations = quaternion_to_matrix(view_rotation(azimuths, elevation, up, front))
    up_vector = torch.zeros(3, dtype=F64)
    up_vector["xyz".index(up[-1])] = -1.0 if up.startswith("-") else 1.0
    image_up = rotations @ up_vector
    torch.testing.assert_close(image_up[:, 0], torch.zeros(12, dtype=F64), atol=1e-12, rtol=0)
    expected = torch.full((12,), -math.cos(math.radians(elevation)), dtype=F64)
    torch.testing.assert_close(image_up[:, 1], expected)  # -y is image up
    # Positive elevation: the camera is above, so the up axis points away from the viewer.
    torch.testing.assert_close(
        image_up[:, 2], torch.full((12,), -math.sin(math.radians(elevation)), dtype=F64)
    )


def test_azimuth_moves_the_front_around():
    # Demo convention: z up, x front, y left.
    front, left = torch.tensor([1.0, 0, 0], dtype=F64), torch.tensor([0, 1.0, 0], dtype=F64)
    rotations = quaternion_to_matrix(
        view_rotation(torch.tensor([0.0, 90.0, 180.0, 270.0], dtype=F64), 0.0, "z", "x")
    )
    front_cam, left_cam = rotations @ front, rotations @ left
    atol = dict(atol=1e-12, rtol=0)
    # Azimuth 0: the front faces the viewer (negative depth), its left is on the image right.
    torch.testing.assert_close(front_cam[0], torch.tensor([0, 0, -1.0], dtype=F64), **atol)
    torch.testing.assert_close(left_cam[0], torch.tensor([1.0, 0, 0], dtype=F64), **atol)
    # Azimuth 90: the left flank faces the viewer, the front points to the image left.
    torch.testing.assert_close(left_cam[1], torch.tensor([0, 0, -1.0], dtype=F64), **atol)
    torch.testing.assert_close(front_cam[1], torch.tensor([-1.0, 0, 0], dtype=F64), **atol)
    # Azimuth 180: the back faces the viewer; 270: the right flank, front to the image right.
    torch.testing.assert_close(front_cam[2], torch.tensor([0, 0, 1.0], dtype=F64), **atol)
    torch.testing.assert_close(front_cam[3], torch.tensor([1.0, 0, 0], dtype=F64), **atol)


TEMPLATES = Path(__file__).resolve().parents[2] / "shared" / "data" / "templates"


@pytest.mark.skipif(not (TEMPLATES / "horse.obj").is_file(), reason="shared templates not present")
def test_shared_horse_axes_are_y_up_and_minus_x_front():
    lines = (TEMPLATES / "horse.obj").read_text().splitlines()
    vertices = torch.tensor(
        [[float(v) for v in line.split()[1:4]] for line in lines if line.startswith("v ")],
        dtype=F64,
    )
    index = json.loads((TEMPLATES / "horse_keypoints.json").read_text())
    eyes, tail = vertices[[index["leftEye"], index["rightEye"]]], vertices[index["tailStart"]]
    hoof = vertices[index["frontLeftHoof"]]
    camera = make_cameras(
        torch.tensor(10.0, dtype=F64),
        torch.zeros(2, dtype=F64),
        view_rotation(90.0, 0.0, "y", "-x", dtype=F64),
    )
    left_eye, right_eye, tail_2d, hoof_2d = project(
        torch.stack([eyes[0], eyes[1], tail, hoof])[None], camera[None]
    )[0]
    assert left_eye[2] < right_eye[2]  # azimuth 90 shows the left flank
    assert left_eye[0] < tail_2d[0]  # with the head to the image left
    assert left_eye[1] < hoof_2d[1]  # and the eyes above the hooves


def test_view_rotation_rejects_bad_axes():
    with pytest.raises(InputError, match="perpendicular"):
        view_rotation(0.0, 0.0, "z", "-z")
    with pytest.raises(InputError, match="up_axis"):
        view_rotation(0.0, 0.0, "w", "x")


def test_uniform_azimuths_have_no_repeat():
    azimuths = uniform_azimuths(8, dtype=F64)
    torch.testing.assert_close(azimuths, torch.arange(8, dtype=F64) * 45)
    cameras = uniform_azimuth_cameras(8, [0.0, 30.0], 40.0, (32.0, 32.0), "y", "-x", dtype=F64)
    assert cameras.shape == (16, 7)
    torch.testing.assert_close(cameras[:, 0], torch.full((16,), 40.0, dtype=F64))
    torch.testing.assert_close(cameras[:, 1:3], torch.full((16, 2), 32.0, dtype=F64))
    q = cameras[:, 3:]
    distances = quaternion_geodesic(q[:, None], q[None, :])
    off_diagonal = distances + 10 * torch.eye(16, dtype=F64)
    assert float(off_diagonal.min()) > math.radians(29)  # all 16 views are distinct
    expected = view_rotation(azimuths, 30.0, "y", "-x")
    torch.testing.assert_close(q[8:], expected)


# ------------------------------------------------------------------ image changes


@pytest.mark.parametrize("symmetry_axis", ["y", "z", "-x"])
def test_mirror_camera_shows_the_mirrored_shape_in_the_flipped_image(symmetry_axis):
    width = 64.0
    cameras, verts = random_cameras(5), random_points(5, 7)
    normal = torch.zeros(3, dtype=F64)
    normal["xyz".index(symmetry_axis[-1])] = 1.0
    reflection = torch.eye(3, dtype=F64) - 2 * torch.outer(normal, normal)
    mirrored = mirror_cameras(cameras, width, symmetry_axis)
    torch.testing.assert_close(
        torch.linalg.det(quaternion_to_matrix(mirrored[:, 3:])), torch.ones(5, dtype=F64)
    )
    screen = project(verts, cameras)
    screen_mirror = project(verts @ reflection.T, mirrored)
    torch.testing.assert_close(screen_mirror[..., :2], mirror_points2d(screen[..., :2], width))
    torch.testing.assert_close(screen_mirror[..., 2], screen[..., 2])
    # Mirroring twice gives the same cameras back (up to the sign of q).
    twice = mirror_cameras(mirrored, width, symmetry_axis)
    torch.testing.assert_close(twice[:, :3], cameras[:, :3])
    torch.testing.assert_close(
        quaternion_geodesic(twice[:, 3:], cameras[:, 3:]),
        torch.zeros(5, dtype=F64),
        atol=1e-7,
        rtol=0,
    )


def test_mirror_points_flip_pixel_centres():
    centres = torch.tensor([[0.5, 3.5], [9.5, 1.5]], dtype=F64)  # columns 0 and 9 of 10
    torch.testing.assert_close(
        mirror_points2d(centres, 10), torch.tensor([[9.5, 3.5], [0.5, 1.5]], dtype=F64)
    )


def test_crop_then_project_equals_project_with_cropped_camera():
    cameras, verts = random_cameras(4), random_points(4, 9)
    boxes = torch.tensor(
        [[3.0, -5.0, 40.0], [10.0, 10.0, 20.0], [-8.0, 0.5, 100.0], [0, 0, 64]], dtype=F64
    )
    cropped = crop_resize_cameras(cameras, boxes, 32)
    screen = project(verts, cameras)
    expected = crop_resize_points(screen[..., :2], boxes, 32)
    torch.testing.assert_close(project(verts, cropped)[..., :2], expected)
    torch.testing.assert_close(uncrop_resize_points(expected, boxes, 32), screen[..., :2])


def test_crop_maps_box_edges_to_image_edges():
    boxes = torch.tensor([[10.0, 20.0, 50.0]], dtype=F64)
    corners = torch.tensor([[[10.0, 20.0], [60.0, 70.0], [35.0, 45.0]]], dtype=F64)
    expected = torch.tensor([[[0.0, 0.0], [100.0, 100.0], [50.0, 50.0]]], dtype=F64)
    torch.testing.assert_close(crop_resize_points(corners, boxes, 100), expected)


def test_normalize_round_trip():
    cameras = random_cameras(6)
    normalised = normalize_cameras(cameras, 64)
    torch.testing.assert_close(denormalize_cameras(normalised, 64), cameras)
    centred = make_cameras(
        torch.tensor([32.0]), torch.tensor([[32.0, 0.0]]), torch.tensor([[1.0, 0, 0, 0]])
    )
    torch.testing.assert_close(
        normalize_cameras(centred, 64)[0, :3], torch.tensor([1.0, 0.0, -1.0])
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    cameras, verts = random_cameras(3), random_points(3, 5)
    boxes = torch.tensor([[1.0, 2.0, 30.0]] * 3, dtype=F64)
    on_gpu = {
        "project": project(verts.cuda(), cameras.cuda()),
        "mirror": mirror_cameras(cameras.cuda(), 64.0, "z"),
        "crop": crop_resize_cameras(cameras.cuda(), boxes.cuda(), 16),
        "views": uniform_azimuth_cameras(8, [0.0, 20.0], 30.0, (32.0, 32.0), device="cuda"),
        "geodesic": quaternion_geodesic(cameras[:, 3:].cuda(), cameras[:, 3:].flip(0).cuda()),
    }
    on_cpu = {
        "project": project(verts, cameras),
        "mirror": mirror_cameras(cameras, 64.0, "z"),
        "crop": crop_resize_cameras(cameras, boxes, 16),
        "views": uniform_azimuth_cameras(8, [0.0, 20.0], 30.0, (32.0, 32.0)),
        "geodesic": quaternion_geodesic(cameras[:, 3:], cameras[:, 3:].flip(0)),
    }
    for key, value in on_gpu.items():
        assert value.is_cuda, key
        torch.testing.assert_close(value.cpu(), on_cpu[key], msg=key)
