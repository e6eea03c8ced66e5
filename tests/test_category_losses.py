"""Seed 001's training losses against slow references, gradcheck, degenerate inputs, scale."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import engine.category.losses as losses_module
from engine.category.losses import (
    boundary_loss,
    bounding_box_diagonal,
    camera_loss,
    edge_length_loss,
    keypoint_loss,
    laplacian_smoothness_loss,
    mask_boundary_points,
    mask_distance_transform,
    mesh_edges,
    motion_loss,
    offset_loss,
    sample_flow,
    silhouette_loss,
    texture_loss,
)
from engine.core.errors import InputError, MeshError
from engine.geometry.laplacian import cotangent_laplacian
from engine.render.cameras import normalize_quaternion, quaternion_multiply

F64 = torch.float64


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blob_masks() -> np.ndarray:
    """(2, 10, 10) masks: an L-shaped blob and a single pixel."""
    masks = np.zeros((2, 10, 10), dtype=bool)
    masks[0, 2:7, 3:6] = True
    masks[0, 5:8, 5:9] = True
    masks[1, 4, 8] = True
    return masks


def octahedron() -> tuple[torch.Tensor, torch.Tensor]:
    verts = torch.tensor(
        [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=F64
    )
    faces = torch.tensor(
        [[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]]
    )
    return verts * torch.tensor([1.0, 0.7, 1.3], dtype=F64), faces


def assert_finite_grad(loss: torch.Tensor, *inputs: torch.Tensor) -> None:
    assert torch.isfinite(loss).all()
    grads = torch.autograd.grad(loss.sum(), inputs, allow_unused=True)
    for grad in grads:
        assert grad is None or torch.isfinite(grad).all()


# --------------------------------------------------------------------------- data preparation


def test_distance_transform_matches_brute_force():
    masks = blob_masks()
    dt = mask_distance_transform(masks)
    assert dt.dtype == torch.float32 and dt.shape == (2, 10, 10)
    for b in range(2):
        on = np.argwhere(masks[b])
        for i in range(10):
            for j in range(10):
                expected = np.sqrt(((on - [i, j]) ** 2).sum(-1)).min()
                assert dt[b, i, j].item() == pytest.approx(expected, abs=1e-5)
    assert (dt[torch.from_numpy(masks)] == 0).all()


def test_distance_transform_accepts_float_torch_and_refuses_empty():
    masks = torch.from_numpy(blob_masks()).float() * 0.9
    assert torch.equal(mask_distance_transform(masks), mask_distance_transform(blob_masks()))
    empty = np.zeros((2, 5, 5))
    empty[0, 1, 1] = 1
    with pytest.raises(InputError, match="mask 1"):
        mask_distance_transform(empty)


def test_boundary_points_are_the_four_neighbourhood_boundary():
    masks = blob_masks()
    points, valid = mask_boundary_points(masks)
    assert points.shape[0] == 2 and points.shape[2] == 2
    for b in range(2):
        expected = set()
        for i, j in np.argwhere(masks[b]):
            neighbours = [(i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)]
            if any(0 <= a < 10 and 0 <= c < 10 and not masks[b, a, c] for a, c in neighbours):
                expected.add((j + 0.5, i + 0.5))
        got = {tuple(p) for p in points[b][valid[b]].tolist()}
        assert got == expected
    assert valid[1].sum() == 1 and not valid[1, 1:].any()


def test_boundary_points_ignore_the_image_border_and_subsample_deterministically():
    full = np.ones((1, 6, 6), dtype=bool)
    points, valid = mask_boundary_points(full)
    assert points.shape == (1, 1, 2) and not valid.any()

    masks = np.zeros((2, 40, 40), dtype=bool)
    masks[:, 5:35, 5:35] = True  # 116 boundary pixels
    points, valid = mask_boundary_points(masks, max_points=50, seed=3)
    assert points.shape == (2, 50, 2) and valid.all()
    assert torch.equal(points[0], points[1])  # the draw does not depend on the batch position
    again, _ = mask_boundary_points(masks[:1], max_points=50, seed=3)
    assert torch.equal(again[0], points[0])
    other, _ = mask_boundary_points(masks[:1], max_points=50, seed=4)
    assert not torch.equal(other[0], points[0])
    all_points, all_valid = mask_boundary_points(masks[:1])
    assert all_valid.sum() == 116
    assert {tuple(p) for p in points[0].tolist()} <= {tuple(p) for p in all_points[0].tolist()}


# --------------------------------------------------------------------------- silhouette


def test_silhouette_loss_by_hand_and_gradcheck():
    masks = torch.from_numpy(blob_masks()).to(F64)
    dt = mask_distance_transform(masks).to(F64)
    rendered = torch.rand(2, 10, 10, generator=generator(), dtype=F64)
    loss = silhouette_loss(rendered, masks, dt, w_l1=2.0, w_dt=0.5)
    for b in range(2):
        l1 = (rendered[b] - masks[b]).abs().sum() / 100
        outside = (rendered[b] * dt[b] / 10).sum() / 100
        assert loss[b].item() == pytest.approx((2 * l1 + 0.5 * outside).item())
    perfect = silhouette_loss(masks, masks, dt)
    assert torch.equal(perfect, torch.zeros(2, dtype=F64))
    rendered.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda r: silhouette_loss(r, masks, dt), (rendered,))


def test_silhouette_loss_checks_shapes():
    with pytest.raises(ValueError, match="masks"):
        silhouette_loss(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5), torch.zeros(2, 4, 4))


# --------------------------------------------------------------------------- boundary


def boundary_reference(xy, visible, boundary, valid, size):
    out = []
    for b in range(xy.shape[0]):
        total, count = 0.0, 0
        for m in range(boundary.shape[1]):
            if not valid[b, m]:
                continue
            best = math.inf
            for n in range(xy.shape[1]):
                if visible[b, n]:
                    d = float(((xy[b, n, :2] - boundary[b, m]) ** 2).sum())
                    best = min(best, d)
            if best < math.inf:
                total += best
                count += 1
        out.append(total / max(count, 1) / size**2)
    return out


def boundary_inputs(seed: int = 0):
    g = generator(seed)
    verts = torch.rand(3, 7, 3, generator=g, dtype=F64) * 20
    visible = torch.rand(3, 7, generator=g) > 0.3
    visible[0, 0] = True
    visible[2] = False
    boundary = torch.rand(3, 5, 2, generator=g, dtype=F64) * 20
    valid = torch.rand(3, 5, generator=g) > 0.2
    valid[1] = False
    valid[0, 0] = True
    return verts, visible, boundary, valid


def test_boundary_loss_matches_loops_and_gradcheck():
    verts, visible, boundary, valid = boundary_inputs()
    loss = boundary_loss(verts, visible, boundary, valid, 20)
    expected = boundary_reference(verts, visible, boundary, valid, 20)
    assert loss.tolist() == pytest.approx(expected)
    assert loss[1] == 0 and loss[2] == 0  # no valid boundary point; no visible vertex
    verts.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda v: boundary_loss(v, visible, boundary, valid, 20), (verts,)
    )


def test_boundary_loss_chunks_large_inputs(monkeypatch):
    verts, visible, boundary, valid = boundary_inputs(1)
    full = boundary_loss(verts, visible, boundary, valid, 20)
    monkeypatch.setattr(losses_module, "_CDIST_BLOCK", 8)  # one boundary point per block
    assert torch.allclose(boundary_loss(verts, visible, boundary, valid, 20), full)


def test_boundary_loss_degenerate_inputs_are_finite():
    verts = torch.zeros(2, 4, 3, requires_grad=True)
    loss = boundary_loss(
        verts,
        torch.zeros(2, 4, dtype=torch.bool),
        torch.zeros(2, 3, 2),
        torch.ones(2, 3, dtype=torch.bool),
        64,
    )
    assert torch.equal(loss, torch.zeros(2))
    assert_finite_grad(loss, verts)
    loss = boundary_loss(
        verts,
        torch.ones(2, 4, dtype=torch.bool),
        torch.zeros(2, 0, 2),
        torch.zeros(2, 0, dtype=torch.bool),
        64,
    )
    assert torch.equal(loss, torch.zeros(2))
    assert_finite_grad(loss, verts)
    # A boundary point exactly on a vertex: distance 0, gradient finite.
    loss = boundary_loss(
        verts,
        torch.ones(2, 4, dtype=torch.bool),
        torch.zeros(2, 1, 2),
        torch.ones(2, 1, dtype=torch.bool),
        64,
    )
    assert_finite_grad(loss, verts)
    empty = torch.zeros(2, 0, 3, requires_grad=True)
    loss = boundary_loss(
        empty,
        torch.zeros(2, 0, dtype=torch.bool),
        torch.zeros(2, 3, 2),
        torch.ones(2, 3, dtype=torch.bool),
        64,
    )
    assert torch.equal(loss, torch.zeros(2))


def test_boundary_loss_checks_shapes():
    with pytest.raises(ValueError, match="valid"):
        boundary_loss(
            torch.zeros(2, 4, 3),
            torch.ones(2, 4, dtype=torch.bool),
            torch.zeros(2, 3, 2),
            torch.ones(2, 4, dtype=torch.bool),
            64,
        )


# --------------------------------------------------------------------------- texture


def test_texture_loss_by_hand():
    g = generator(2)
    rendered = torch.rand(2, 4, 5, 3, generator=g, dtype=F64)
    image = torch.rand(2, 4, 5, 3, generator=g, dtype=F64)
    mask = torch.rand(2, 4, 5, generator=g, dtype=F64)
    coverage = torch.rand(2, 4, 5, generator=g) > 0.4
    coverage[1] = False
    loss = texture_loss(rendered, image, mask, coverage)
    use = (mask[0] > 0.5) & coverage[0]
    expected = (rendered[0] - image[0]).abs().mean(-1)[use].mean()
    assert loss[0].item() == pytest.approx(expected.item())
    assert loss[1] == 0
    rendered.requires_grad_(True)
    assert_finite_grad(texture_loss(rendered, image, mask, coverage), rendered)


# --------------------------------------------------------------------------- motion


def test_sample_flow_is_exact_at_pixel_centres_and_bilinear_between():
    flow = torch.rand(2, 5, 6, 2, generator=generator(3), dtype=F64)
    rows, cols = torch.meshgrid(torch.arange(5), torch.arange(6), indexing="ij")
    centres = torch.stack((cols + 0.5, rows + 0.5), -1).reshape(1, -1, 2).to(F64).expand(2, -1, -1)
    assert torch.allclose(sample_flow(flow, centres), flow.reshape(2, -1, 2))
    between = torch.tensor([[[2.0, 3.0]]], dtype=F64).expand(2, 1, 2)  # corner of 4 pixels
    expected = flow[:, 2:4, 1:3].mean(dim=(1, 2))
    assert torch.allclose(sample_flow(flow, between)[:, 0], expected)


def moving_mesh(seed: int = 0):
    g = generator(seed)
    verts_a = torch.rand(2, 9, 3, generator=g, dtype=F64) * 14 + 1
    flow = torch.zeros(2, 16, 16, 2, dtype=F64)
    flow[0, ..., 0], flow[0, ..., 1] = 1.5, -0.5
    flow[1, ..., 0], flow[1, ..., 1] = -2.0, 1.0
    visible = torch.ones(2, 9, dtype=torch.bool)
    return verts_a, flow, visible


def test_motion_loss_zero_when_moving_with_the_flow_positive_otherwise():
    verts_a, flow, visible = moving_mesh()
    shift = torch.tensor([[1.5, -0.5, 0.3], [-2.0, 1.0, -0.1]], dtype=F64).unsqueeze(1)
    assert torch.allclose(
        motion_loss(verts_a, verts_a + shift, visible, flow, 16), torch.zeros(2, dtype=F64)
    )
    wrong = motion_loss(
        verts_a, verts_a + shift + torch.tensor([0.8, 0.0, 0.0], dtype=F64), visible, flow, 16
    )
    assert torch.allclose(wrong, torch.full((2,), 0.8 / 16, dtype=F64))


def test_motion_loss_matches_loops_and_gradcheck():
    verts_a, _, visible = moving_mesh(1)
    flow = torch.randn(2, 16, 16, 2, generator=generator(4), dtype=F64)
    verts_a[0, 0, 0] = -3.0  # outside the image: not used
    visible[1, :4] = False
    verts_b = verts_a + torch.randn(2, 9, 3, generator=generator(5), dtype=F64)
    loss = motion_loss(verts_a, verts_b, visible, flow, 16)
    for b in range(2):
        total, count = 0.0, 0
        for n in range(9):
            x, y = verts_a[b, n, :2].tolist()
            if not (visible[b, n] and 0 <= x < 16 and 0 <= y < 16):
                continue
            # Bilinear interpolation between pixel centres, border values beyond them.
            fx = min(max(x - 0.5, 0.0), 15.0)
            fy = min(max(y - 0.5, 0.0), 15.0)
            j0, i0 = min(int(fx), 14), min(int(fy), 14)
            u, v = fx - j0, fy - i0
            f = flow[b]
            sample = (
                (1 - u) * (1 - v) * f[i0, j0]
                + u * (1 - v) * f[i0, j0 + 1]
                + (1 - u) * v * f[i0 + 1, j0]
                + u * v * f[i0 + 1, j0 + 1]
            )
            total += float(((verts_b[b, n, :2] - verts_a[b, n, :2]) - sample).abs().sum())
            count += 1
        assert loss[b].item() == pytest.approx(total / count / 16)
    verts_b.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda b: motion_loss(verts_a, b, visible, flow, 16), (verts_b,)
    )
    # The flow sample is not differentiated in the position, so finite differences in verts_a
    # only agree where the flow does not vary in space.
    constant = flow[:, :1, :1].expand_as(flow)
    verts_a.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: motion_loss(a, b, visible, constant, 16), (verts_a, verts_b)
    )


def test_motion_loss_does_not_differentiate_the_flow_sample():
    verts_a, _, visible = moving_mesh(2)
    flow = torch.randn(2, 16, 16, 2, generator=generator(6), dtype=F64)
    verts_a.requires_grad_(True)
    verts_b = (verts_a.detach() + 0.5).requires_grad_(True)
    grad_a, grad_b = torch.autograd.grad(
        motion_loss(verts_a, verts_b, visible, flow, 16).sum(), (verts_a, verts_b)
    )
    assert torch.equal(grad_a, -grad_b)
    assert grad_b[..., 2].abs().max() == 0  # depth plays no part


def test_motion_loss_degenerate_inputs_are_finite():
    verts = torch.zeros(2, 5, 3, requires_grad=True)
    flow = torch.zeros(2, 8, 8, 2)
    loss = motion_loss(verts, verts, torch.zeros(2, 5, dtype=torch.bool), flow, 8)
    assert torch.equal(loss, torch.zeros(2))
    assert_finite_grad(loss, verts)
    outside = torch.full((2, 5, 3), 50.0, requires_grad=True)
    loss = motion_loss(outside, outside, torch.ones(2, 5, dtype=torch.bool), flow, 8)
    assert torch.equal(loss, torch.zeros(2))
    assert_finite_grad(loss, outside)
    # Zero flow, no motion: |0| has a finite (zero) subgradient.
    still = torch.full((2, 5, 3), 4.0, requires_grad=True)
    loss = motion_loss(still, still, torch.ones(2, 5, dtype=torch.bool), flow, 8)
    assert_finite_grad(loss, still)


# --------------------------------------------------------------------------- keypoints


def test_keypoint_loss_by_hand_and_gradcheck():
    projected = torch.tensor(
        [[[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]], [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]], dtype=F64
    )
    keypoints = torch.tensor(
        [
            [[2.0, 2.0, 1.0], [3.0, 1.0, 1.0], [9.0, 9.0, 0.0]],
            [[math.nan, math.nan, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]],
        ],
        dtype=F64,
    )
    loss = keypoint_loss(projected, keypoints, 10)
    assert loss.tolist() == pytest.approx([(1.0 + 3.0) / 2 / 10, 0.0])
    projected = projected + 0.1 * torch.rand(2, 3, 2, generator=generator(), dtype=F64)
    projected.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: keypoint_loss(p, keypoints, 10), (projected,))
    assert_finite_grad(keypoint_loss(projected, keypoints, 10), projected)


# --------------------------------------------------------------------------- priors


def test_mesh_edges_are_unique_and_undirected():
    faces = torch.tensor([[0, 1, 2], [2, 1, 3]])
    edges = mesh_edges(faces)
    assert edges.tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]
    _, octa_faces = octahedron()
    assert mesh_edges(octa_faces).shape == (12, 2)


def test_edge_length_loss_by_hand_gradcheck_and_scale_free():
    template, faces = octahedron()
    edges = mesh_edges(faces)
    verts = template + 0.1 * torch.randn(2, 6, 3, generator=generator(), dtype=F64)
    loss = edge_length_loss(verts, template, edges)
    rest = [float((template[i] - template[j]).norm()) for i, j in edges.tolist()]
    for b in range(2):
        now = [float((verts[b, i] - verts[b, j]).norm()) for i, j in edges.tolist()]
        expected = np.mean((np.array(now) - rest) ** 2) / np.mean(rest) ** 2
        assert loss[b].item() == pytest.approx(expected)
    assert torch.allclose(
        edge_length_loss(template[None], template, edges), torch.zeros(1, dtype=F64)
    )
    assert torch.allclose(edge_length_loss(10 * verts, 10 * template, edges), loss)
    verts.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: edge_length_loss(v, template, edges), (verts,))


def test_edge_length_loss_degenerate():
    template, faces = octahedron()
    collapsed = torch.zeros(1, 6, 3, dtype=F64, requires_grad=True)  # every edge length 0
    assert_finite_grad(edge_length_loss(collapsed, template, mesh_edges(faces)), collapsed)
    with pytest.raises(MeshError):
        edge_length_loss(collapsed, torch.zeros(6, 3, dtype=F64), mesh_edges(faces))


def test_laplacian_smoothness_by_hand_gradcheck_and_scale_free():
    template, faces = octahedron()
    L = cotangent_laplacian(template, faces)
    dense = L.to_dense()
    verts = template + 0.1 * torch.randn(2, 6, 3, generator=generator(1), dtype=F64)
    loss = laplacian_smoothness_loss(verts, template, L)
    edges = mesh_edges(faces)
    h = np.mean([float((template[i] - template[j]).norm()) for i, j in edges.tolist()])
    normaliser = h**2 * float((torch.diagonal(dense) ** 2).mean())
    for b in range(2):
        smoothed = dense @ (verts[b] - template)
        expected = float((smoothed**2).sum(-1).mean()) / normaliser
        assert loss[b].item() == pytest.approx(expected)
    assert torch.allclose(laplacian_smoothness_loss(verts, template, dense), loss)
    # Translating the template is smooth: L has zero row sums.
    moved = template + torch.tensor([0.3, -0.2, 0.5], dtype=F64)
    assert torch.allclose(
        laplacian_smoothness_loss(moved[None], template, L), torch.zeros(1, dtype=F64), atol=1e-12
    )
    L10 = cotangent_laplacian(10 * template, faces)
    assert torch.allclose(laplacian_smoothness_loss(10 * verts, 10 * template, L10), loss)
    verts.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: laplacian_smoothness_loss(v, template, L), (verts,))


def test_offset_loss_by_hand():
    offsets = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]], dtype=F64, requires_grad=True)
    template, _ = octahedron()
    scale = bounding_box_diagonal(template)
    assert scale.item() == pytest.approx(math.sqrt(4 + 1.4**2 + 2.6**2))
    loss = offset_loss(offsets, scale)
    assert loss.item() == pytest.approx(25 / 2 / scale.item() ** 2)
    assert_finite_grad(loss, offsets)


# --------------------------------------------------------------------------- camera


def test_camera_loss_by_hand_and_gradcheck():
    q = normalize_quaternion(torch.randn(3, 4, generator=generator(), dtype=F64))
    target = torch.cat((torch.tensor([[50.0, 30.0, 32.0]] * 3, dtype=F64), q), dim=1)
    assert torch.allclose(camera_loss(target, target, 64), torch.zeros(3, dtype=F64))
    flipped = target.clone()
    flipped[:, 3:] *= -2.0  # the same rotation: -q, not unit
    assert torch.allclose(camera_loss(flipped, target, 64), torch.zeros(3, dtype=F64))

    pred = target.clone()
    pred[0, 0] = 60.0  # +20 % scale
    pred[1, 1:3] += torch.tensor([3.0, 4.0], dtype=F64)
    half_turn = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=F64)  # 180 degrees relative
    pred[2, 3:] = quaternion_multiply(q[2], half_turn)
    loss = camera_loss(pred, target, 64)
    assert loss.tolist() == pytest.approx([0.04, 25 / 64**2, 1.0])

    pred = target + 0.1 * torch.randn(3, 7, generator=generator(1), dtype=F64)
    pred.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: camera_loss(p, target, 64), (pred,))


def test_losses_check_shapes_and_image_size():
    with pytest.raises(ValueError, match="target"):
        camera_loss(torch.zeros(2, 7), torch.zeros(3, 7), 64)
    with pytest.raises(ValueError, match="image_size"):
        keypoint_loss(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3), 0)
    with pytest.raises(ValueError, match="keypoints"):
        keypoint_loss(torch.zeros(1, 2, 2), torch.zeros(1, 3, 3), 64)
    with pytest.raises(ValueError, match="flow"):
        motion_loss(
            torch.zeros(1, 2, 3),
            torch.zeros(1, 2, 3),
            torch.ones(1, 2, dtype=torch.bool),
            torch.zeros(1, 4, 4, 3),
            4,
        )
    with pytest.raises(ValueError, match="template"):
        edge_length_loss(torch.zeros(1, 4, 3), torch.zeros(5, 3), torch.tensor([[0, 1]]))
