"""Weak-perspective cameras: THE reference for image coordinates in this project.

Every image-space quantity (masks, keypoints, flow, rendered silhouettes, projected vertices)
uses one convention:

* **Image pixels.** x to the right, y DOWN, origin at the top-left corner of the top-left
  pixel. Pixel (row ``i``, column ``j``) covers ``[j, j+1] x [i, i+1]`` and has its centre at
  ``(x, y) = (j + 0.5, i + 0.5)``. An ``H x W`` image spans ``[0, W] x [0, H]``.
* **Camera frame.** x to the right, y down, z away from the viewer (depth: larger = farther).
  Right-handed (x cross y = z).
* **Camera.** One row of 7 numbers ``[s, tx, ty, qw, qx, qy, qz]`` (a batch is a ``(B, 7)``
  tensor): ``s`` is the scale in pixels per world (template) unit, ``t = (tx, ty)`` the
  translation in pixels, ``q`` a unit quaternion (w first) rotating world coordinates into the
  camera frame. A world point ``X`` projects to ``p = s * (R(q) X)[:2] + t`` pixels; its depth is
  ``(R(q) X)_z`` in world units (NOT multiplied by ``s``; weak perspective has no absolute depth,
  so depth is only meaningful relative to other points of the same shape and may be negative).
* **Quaternions.** ``(w, x, y, z)``, Hamilton product, ``R(q1 * q2) = R(q1) R(q2)``. ``q`` and
  ``-q`` are the same rotation; functions that return quaternions return the one with
  ``w >= 0``.
* **Viewing angles** (:func:`view_rotation`). A template names its ``up`` and ``front`` axes;
  its left is ``up x front`` (the demo template: up ``"z"``, front ``"x"``, left ``y``; the
  shipped horse and cow OBJ templates: up ``"y"``, front ``"-x"``, left ``z``). Azimuth 0,
  elevation 0 looks at the object's FRONT (the object faces the viewer, its left on the image
  right); azimuth 90 looks at its left flank (front to the image left); azimuth 180 at its back.
  Positive elevation raises the camera above the object (looking down on its back). The up axis
  always points to image up (-y) for elevations in (-90, 90). With this choice, a left-right
  symmetric template gives the same silhouette at azimuths ``a`` and ``180 - a``.

Everything is torch, batched over leading dimensions, device/dtype-agnostic and differentiable.
Changes of image coordinates (crop and resize, horizontal flip, normalisation for networks) are
affine and are applied to cameras here, so data augmentation never needs to touch the shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.core.errors import InputError

#: Columns of a camera row.
CAMERA_DIM = 7

_AXES = {"x": 0, "y": 1, "z": 2}

AxisLike = str | Sequence[float] | torch.Tensor


# --------------------------------------------------------------------------- quaternions


def normalize_quaternion(q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``q / |q|`` for ``q (..., 4)``; a zero quaternion stays (near) zero instead of NaN."""
    return q / torch.linalg.vector_norm(q, dim=-1, keepdim=True).clamp_min(eps)


def quaternion_multiply(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``q1 * q2`` of ``(..., 4)`` quaternions (w first, broadcasting).

    ``R(q1 * q2) = R(q1) @ R(q2)``: apply ``q2`` first, then ``q1``.
    """
    w1, x1, y1, z1 = q1.unbind(-1)
    w2, x2, y2, z2 = q2.unbind(-1)
    return torch.stack(
        (
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ),
        dim=-1,
    )


def quaternion_conjugate(q: torch.Tensor) -> torch.Tensor:
    """``(w, -x, -y, -z)``: the inverse rotation of a unit quaternion ``q (..., 4)``."""
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` of quaternions ``q (..., 4)`` (w first).

    ``q`` is normalised first, so any non-zero quaternion is accepted (a network's raw output
    included) and the gradient flows through the normalisation.
    """
    w, x, y, z = normalize_quaternion(q).unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` (w first, ``w >= 0``) of rotation matrices ``(..., 3, 3)``.

    Shepperd's method: of the four algebraically equal formulas, each element uses the one with
    the largest denominator, so the result is accurate for every rotation (180 degrees included).
    """
    m = matrix
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4w^2, 4x^2, 4y^2, 4z^2; the clamp keeps sqrt's gradient finite on the branches not chosen.
    four_sq = torch.stack(
        (1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22),
        dim=-1,
    ).clamp_min(1e-12)
    # Row k is 4 * q_k * q (for k in w, x, y, z), written with the matrix entries.
    candidates = torch.stack(
        (
            torch.stack((four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01), dim=-1),
            torch.stack((m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20), dim=-1),
            torch.stack((m02 - m20, m10 + m01, four_sq[..., 2], m12 + m21), dim=-1),
            torch.stack((m10 - m01, m20 + m02, m21 + m12, four_sq[..., 3]), dim=-1),
        ),
        dim=-2,
    )
    candidates = candidates / (2 * four_sq.sqrt()).unsqueeze(-1)
    best = four_sq.argmax(dim=-1)
    index = best[..., None, None].expand(*best.shape, 1, 4)
    q = torch.gather(candidates, -2, index).squeeze(-2)
    q = normalize_quaternion(q)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_geodesic(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """Angle in radians, in ``[0, pi]``, of the rotation taking ``q1`` to ``q2`` (``(..., 4)``).

    ``2 atan2(|v|, |w|)`` of the relative quaternion ``conj(q1) * q2 = (w, v)``: invariant to
    ``q -> -q`` and to the quaternions' norms, accurate near 0 and pi (unlike ``acos``), and with a
    finite gradient everywhere (zero at identical rotations).
    """
    rel = quaternion_multiply(quaternion_conjugate(q1), q2)
    # vector_norm's backward is 0 (not NaN) at a zero vector, so identical rotations are safe.
    return 2 * torch.atan2(torch.linalg.vector_norm(rel[..., 1:], dim=-1), rel[..., 0].abs())


# --------------------------------------------------------------------------- cameras


def make_cameras(
    scale: float | torch.Tensor,
    translation: Sequence[float] | torch.Tensor,
    quaternion: torch.Tensor,
) -> torch.Tensor:
    """Camera rows ``(..., 7)`` from ``scale (...)`` pixels per world unit, ``translation
    (..., 2)`` pixels and ``quaternion (..., 4)`` (w first), broadcast against each other."""
    scale = torch.as_tensor(scale, dtype=quaternion.dtype, device=quaternion.device)
    translation = torch.as_tensor(translation, dtype=quaternion.dtype, device=quaternion.device)
    shape = torch.broadcast_shapes(scale.shape, translation.shape[:-1], quaternion.shape[:-1])
    return torch.cat(
        (
            scale.expand(shape)[..., None],
            translation.expand(*shape, 2),
            quaternion.expand(*shape, 4),
        ),
        dim=-1,
    )


def split_cameras(cameras: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(scale (...), translation (..., 2), quaternion (..., 4))`` of camera rows ``(..., 7)``."""
    _check_cameras(cameras)
    return cameras[..., 0], cameras[..., 1:3], cameras[..., 3:7]


def project(verts: torch.Tensor, cameras: torch.Tensor) -> torch.Tensor:
    """Screen-space vertices ``(B, N, 3)`` of world vertices ``verts (B, N, 3)``.

    Columns: image x and y in pixels (the module's convention) and depth ``(R X)_z`` in WORLD
    units (larger = farther; not scaled by ``s``). This is the input of the rasteriser.

    Args:
        verts: (B, N, 3) world (template) coordinates; any leading batch shape that broadcasts
            against ``cameras``'s.
        cameras: (B, 7) ``[s, tx, ty, qw, qx, qy, qz]``; the quaternion need not be unit.
    """
    scale, translation, quaternion = split_cameras(cameras)
    rotated = verts @ quaternion_to_matrix(quaternion).transpose(-1, -2)
    xy = scale[..., None, None] * rotated[..., :2] + translation[..., None, :]
    return torch.cat((xy, rotated[..., 2:]), dim=-1)


def _axis_vector(axis: AxisLike, name: str, dtype, device) -> torch.Tensor:
    if isinstance(axis, str):
        spec = axis.strip().lower()
        sign = -1.0 if spec.startswith("-") else 1.0
        letter = spec.lstrip("+-")
        if letter not in _AXES or len(spec) - len(letter) > 1:
            raise InputError(f"expected an axis like 'x', '-y' or '+z', got {axis!r}", field=name)
        vector = torch.zeros(3, dtype=dtype, device=device)
        vector[_AXES[letter]] = sign
        return vector
    vector = torch.as_tensor(axis, dtype=dtype, device=device)
    if vector.shape != (3,) or not bool(torch.isfinite(vector).all()):
        raise InputError(f"expected 3 finite numbers, got {axis!r}", field=name)
    length = torch.linalg.vector_norm(vector)
    if float(length) < 1e-9:
        raise InputError("expected a non-zero direction", field=name)
    return vector / length


def _float_dtype(*values, dtype=None) -> torch.dtype:
    if dtype is not None:
        return dtype
    for value in values:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.dtype
    return torch.get_default_dtype()


def view_rotation(
    azimuth_deg: float | torch.Tensor,
    elevation_deg: float | torch.Tensor,
    up_axis: AxisLike = "z",
    front_axis: AxisLike = "x",
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Quaternions ``(..., 4)`` of the cameras that view the object from the given angles.

    See the module docstring for the angles: azimuth (degrees, about the object's up axis) 0 looks
    at the object's front, 90 at its left flank; elevation (degrees) > 0 looks down from above.
    The object's up axis maps to image up (-y) and the camera sits on the viewing ray, looking at
    the origin. ``azimuth_deg`` and ``elevation_deg`` broadcast against each other.

    Args:
        up_axis, front_axis: template axes, ``"x"``, ``"-y"``, ``"+z"``... or 3-vectors; they must
            be perpendicular.
    """
    dtype = _float_dtype(azimuth_deg, elevation_deg, dtype=dtype)
    if device is None:
        for value in (azimuth_deg, elevation_deg):
            if isinstance(value, torch.Tensor):
                device = value.device
                break
    up = _axis_vector(up_axis, "up_axis", dtype, device)
    front = _axis_vector(front_axis, "front_axis", dtype, device)
    if abs(float(up @ front)) > 1e-6:
        raise InputError(
            f"up axis {up_axis!r} and front axis {front_axis!r} must be perpendicular",
            field="front_axis",
        )
    left = torch.linalg.cross(up, front)
    azimuth = torch.deg2rad(torch.as_tensor(azimuth_deg, dtype=dtype, device=device))
    elevation = torch.deg2rad(torch.as_tensor(elevation_deg, dtype=dtype, device=device))
    azimuth, elevation = torch.broadcast_tensors(azimuth, elevation)
    ca, sa = azimuth.cos()[..., None], azimuth.sin()[..., None]
    ce, se = elevation.cos()[..., None], elevation.sin()[..., None]
    horizontal = ca * front + sa * left  # towards the camera, in the ground plane
    toward_camera = ce * horizontal + se * up
    image_down = se * horizontal - ce * up  # the up axis tilted to stay perpendicular to the ray
    image_right = torch.linalg.cross(image_down, -toward_camera, dim=-1)
    # Rows are the camera axes in world coordinates, so R X gives camera coordinates.
    rotation = torch.stack((image_right, image_down, -toward_camera), dim=-2)
    return matrix_to_quaternion(rotation)


def uniform_azimuths(n_azimuths: int, **tensor_kwargs) -> torch.Tensor:
    """``(n,)`` azimuths ``360 k / n`` degrees, ``k = 0..n-1`` (no repeat of 0 and 360)."""
    if n_azimuths < 1:
        raise InputError(f"expected at least 1 azimuth, got {n_azimuths}", field="n_azimuths")
    return torch.arange(n_azimuths, **tensor_kwargs) * (360.0 / n_azimuths)


def uniform_azimuth_cameras(
    n_azimuths: int,
    elevations_deg: Sequence[float] | torch.Tensor = (0.0,),
    scale: float | torch.Tensor = 1.0,
    translation: Sequence[float] | torch.Tensor = (0.0, 0.0),
    up_axis: AxisLike = "z",
    front_axis: AxisLike = "x",
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(n_azimuths * E, 7)`` cameras at azimuths ``360 k / n_azimuths`` and each elevation.

    Row ``e * n_azimuths + k`` has elevation ``elevations_deg[e]`` and azimuth
    ``360 k / n_azimuths`` (degrees; see :func:`view_rotation`). All rows share ``scale`` (pixels
    per world unit) and ``translation`` (pixels; the image position of the world origin, e.g. the
    image centre).
    """
    dtype = _float_dtype(elevations_deg, scale, translation, dtype=dtype)
    elevations = torch.as_tensor(elevations_deg, dtype=dtype, device=device).reshape(-1)
    azimuths = uniform_azimuths(n_azimuths, dtype=dtype, device=elevations.device)
    grid_elevation, grid_azimuth = torch.meshgrid(elevations, azimuths, indexing="ij")
    quaternions = view_rotation(
        grid_azimuth.reshape(-1), grid_elevation.reshape(-1), up_axis, front_axis
    )
    count = quaternions.shape[0]
    scale_col = torch.as_tensor(scale, dtype=dtype, device=elevations.device).expand(count, 1)
    trans = torch.as_tensor(translation, dtype=dtype, device=elevations.device).expand(count, 2)
    return torch.cat((scale_col, trans, quaternions), dim=-1)


# --------------------------------------------------------------------------- image changes


def mirror_points2d(points: torch.Tensor, image_width: float) -> torch.Tensor:
    """Points ``(..., 2)`` (pixels) of the horizontally flipped image: ``x -> W - x``."""
    return torch.stack((image_width - points[..., 0], points[..., 1]), dim=-1)


def mirror_cameras(
    cameras: torch.Tensor, image_width: float, symmetry_axis: AxisLike = "y"
) -> torch.Tensor:
    """Cameras ``(B, 7)`` of the horizontally flipped image of the mirrored shape.

    If ``cameras`` show shape ``X`` in an image of width ``image_width`` pixels, the returned
    cameras show ``S X`` (``X`` reflected across the template's left-right symmetry plane, whose
    normal is ``symmetry_axis``: ``"y"`` for the demo template, ``"z"`` for the horse and cow) in
    the flipped image (``x -> W - x``), with the same depths. ``R' = F R S`` with
    ``F = diag(-1, 1, 1)`` is a proper rotation; ``tx' = W - tx``; ``s``, ``ty`` are unchanged.
    """
    scale, translation, quaternion = split_cameras(cameras)
    normal = _axis_vector(symmetry_axis, "symmetry_axis", cameras.dtype, cameras.device)
    # F = -(half-turn about camera x) and S = -(half-turn about the normal), so F R S is
    # the product of the three rotations: q' = (0, 1, 0, 0) * q * (0, n).
    flip_x = cameras.new_tensor([0.0, 1.0, 0.0, 0.0])
    half_turn_normal = torch.cat((normal.new_zeros(1), normal))
    mirrored = quaternion_multiply(quaternion_multiply(flip_x, quaternion), half_turn_normal)
    mirrored = torch.where(mirrored[..., :1] < 0, -mirrored, mirrored)
    new_translation = torch.stack((image_width - translation[..., 0], translation[..., 1]), -1)
    return torch.cat((scale[..., None], new_translation, mirrored), dim=-1)


def _box_columns(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if boxes.shape[-1] != 3:
        raise InputError(f"expected boxes (..., 3) [x0, y0, side], got {tuple(boxes.shape)}")
    return boxes[..., :2], boxes[..., 2:3]


def crop_resize_points(points: torch.Tensor, boxes: torch.Tensor, out_size: float) -> torch.Tensor:
    """Source pixels -> crop pixels, for the square crop resized to ``out_size x out_size``.

    Args:
        points: (B, ..., 2) pixels in the source image.
        boxes: (B, 3) ``[x0, y0, side]`` of the square ``[x0, x0+side] x [y0, y0+side]`` in
            source pixels (``x0, y0`` the top-left corner, so edges map to edges).
        out_size: side of the output image in pixels.

    Returns: (B, ..., 2) ``(points - (x0, y0)) * out_size / side``.
    """
    corner, side = _box_columns(boxes)
    shape = (boxes.shape[0],) + (1,) * (points.dim() - 2) + (2,)
    factor = (out_size / side).reshape(boxes.shape[0], *(1,) * (points.dim() - 2), 1)
    return (points - corner.reshape(shape)) * factor


def uncrop_resize_points(
    points: torch.Tensor, boxes: torch.Tensor, out_size: float
) -> torch.Tensor:
    """Inverse of :func:`crop_resize_points`: crop pixels ``(B, ..., 2)`` -> source pixels."""
    corner, side = _box_columns(boxes)
    shape = (boxes.shape[0],) + (1,) * (points.dim() - 2) + (2,)
    factor = (side / out_size).reshape(boxes.shape[0], *(1,) * (points.dim() - 2), 1)
    return points * factor + corner.reshape(shape)


def crop_resize_cameras(
    cameras: torch.Tensor, boxes: torch.Tensor, out_size: float
) -> torch.Tensor:
    """Cameras ``(B, 7)`` of the crop ``boxes (B, 3)`` (see :func:`crop_resize_points`).

    ``s' = s * out_size / side`` and ``t' = (t - (x0, y0)) * out_size / side``; the rotation is
    unchanged. Projecting with the result equals projecting with ``cameras`` then cropping.
    """
    scale, translation, quaternion = split_cameras(cameras)
    corner, side = _box_columns(boxes)
    factor = out_size / side
    return torch.cat(
        (scale[..., None] * factor, (translation - corner) * factor, quaternion), dim=-1
    )


def uncrop_resize_cameras(
    cameras: torch.Tensor, boxes: torch.Tensor, out_size: float
) -> torch.Tensor:
    """Inverse of :func:`crop_resize_cameras`: cameras of the source image from cameras of the
    crop ``boxes (B, 3)`` resized to ``out_size``."""
    scale, translation, quaternion = split_cameras(cameras)
    corner, side = _box_columns(boxes)
    factor = side / out_size
    return torch.cat((scale[..., None] * factor, translation * factor + corner, quaternion), dim=-1)


def normalize_cameras(cameras: torch.Tensor, image_size: float) -> torch.Tensor:
    """Pixel cameras ``(B, 7)`` -> normalised units for networks that predict cameras.

    For a square image of ``image_size`` pixels: ``s_n = s / (size/2)``, ``t_n = t / (size/2) - 1``
    (the image spans ``[-1, 1]`` in both axes, y still down; the image centre is ``t_n = 0``).
    """
    scale, translation, quaternion = split_cameras(cameras)
    half = image_size / 2.0
    return torch.cat((scale[..., None] / half, translation / half - 1.0, quaternion), dim=-1)


def denormalize_cameras(cameras: torch.Tensor, image_size: float) -> torch.Tensor:
    """Inverse of :func:`normalize_cameras`: normalised cameras ``(B, 7)`` -> pixel cameras."""
    scale, translation, quaternion = split_cameras(cameras)
    half = image_size / 2.0
    return torch.cat((scale[..., None] * half, (translation + 1.0) * half, quaternion), dim=-1)


def _check_cameras(cameras: torch.Tensor) -> None:
    if cameras.shape[-1] != CAMERA_DIM:
        raise InputError(
            f"expected cameras (..., 7) [s, tx, ty, qw, qx, qy, qz], got {tuple(cameras.shape)}",
            field="cameras",
        )


__all__ = [
    "CAMERA_DIM",
    "crop_resize_cameras",
    "crop_resize_points",
    "denormalize_cameras",
    "make_cameras",
    "matrix_to_quaternion",
    "mirror_cameras",
    "mirror_points2d",
    "normalize_cameras",
    "normalize_quaternion",
    "project",
    "quaternion_conjugate",
    "quaternion_geodesic",
    "quaternion_multiply",
    "quaternion_to_matrix",
    "split_cameras",
    "uncrop_resize_points",
    "uniform_azimuth_cameras",
    "uniform_azimuths",
    "view_rotation",
]
