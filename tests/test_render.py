"""Tests for engine.render.rasterizer and engine.render.shading against independent references:
a dense all-pixels-by-all-faces rasteriser written out here, torch.autograd.gradcheck in
float64, and VTK's own rendering of the same screen-space mesh."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.core.errors import InputError
from engine.geometry.primitives import grid, icosphere
from engine.io.mesh import load_mesh
from engine.render.rasterizer import RasterSettings, rasterize, soft_silhouette
from engine.render.shading import (
    interpolate_vertex_attributes,
    render_flow,
    sample_texture,
    vertex_visibility,
)

ROOT = Path(__file__).resolve().parents[1]
D64 = torch.float64


# ----------------------------------------------------------------------------- references


def pixel_grid(height: int, width: int, dtype=D64) -> torch.Tensor:
    """(H*W, 2) pixel centres (x, y), row-major."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=dtype) + 0.5,
        torch.arange(width, dtype=dtype) + 0.5,
        indexing="ij",
    )
    return torch.stack([xs, ys], -1).reshape(-1, 2)


def dense_soft(verts: torch.Tensor, faces: torch.Tensor, settings: RasterSettings) -> torch.Tensor:
    """Every pixel against every face, SoftRas's formula written out: (B,H,W)."""
    height, width = settings.image_size
    p = pixel_grid(height, width, verts.dtype).unsqueeze(1)  # (HW,1,2)
    images = []
    for b in range(verts.shape[0]):
        tri = verts[b, faces, :2]  # (F,3,2)
        dists, crosses = [], []
        for k in range(3):
            a, c = tri[:, (k + 1) % 3], tri[:, (k + 2) % 3]
            e = c - a
            u = p - a
            t = ((u * e).sum(-1) / (e * e).sum(-1).clamp_min(1e-300)).clamp(0, 1)
            r = u - t.unsqueeze(-1) * e
            dists.append((r * r).sum(-1))
            crosses.append(e[..., 0] * u[..., 1] - e[..., 1] * u[..., 0])
        d2 = torch.stack(dists).amin(0)
        cross = torch.stack(crosses)
        inside = (cross > 0).all(0) | (cross < 0).all(0)
        prob = torch.sigmoid(torch.where(inside, d2, -d2) / settings.sigma)
        images.append((1 - torch.prod(1 - prob, dim=1)).reshape(height, width))
    return torch.stack(images)


def dense_zbuffer(verts: torch.Tensor, faces: torch.Tensor, size: tuple[int, int]):
    """Every pixel against every face: (pix_to_face, bary, zbuf, ambiguous) with ambiguous
    marking pixels whose centre is within 1e-9 (barycentric) of some face's boundary."""
    height, width = size
    p = pixel_grid(height, width).unsqueeze(1)
    out = []
    for b in range(verts.shape[0]):
        tri = verts[b, faces].to(D64)  # (F,3,3)
        v0, v1, v2 = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
        area2 = (v1 - v0)[:, 0] * (v2 - v0)[:, 1] - (v1 - v0)[:, 1] * (v2 - v0)[:, 0]

        def cross(a, c):
            e = c - a
            u = p - a
            return e[..., 0] * u[..., 1] - e[..., 1] * u[..., 0]

        w = torch.stack([cross(v1, v2), cross(v2, v0), cross(v0, v1)], -1) / area2.unsqueeze(-1)
        solid = area2.abs() > 1e-12
        inside = (w >= 0).all(-1) & solid
        near_edge = ((w.abs() < 1e-9).any(-1) & (w >= -1e-9).all(-1) & solid).any(-1)
        z = (w * tri[:, :, 2]).sum(-1)
        z = torch.where(inside, z, math.inf)
        zmin, face = z.min(1)  # first minimum: ties go to the lower face
        face = torch.where(torch.isfinite(zmin), face, -1)
        bary = torch.where(
            (face >= 0).unsqueeze(-1), w[torch.arange(len(face)), face.clamp_min(0)], 0.0
        )
        out.append((face, bary, zmin, near_edge))
    return [
        torch.stack(x).reshape(verts.shape[0], height, width, -1).squeeze(-1) for x in zip(*out)
    ]


def random_mesh(seed: int, batch: int, nfaces: int, size: tuple[int, int], dtype=D64):
    """Random triangle soup over an image (some triangles partly outside), depths in [1, 2]."""
    g = torch.Generator().manual_seed(seed)
    height, width = size
    centres = torch.rand(batch, nfaces, 1, 2, generator=g, dtype=dtype) * torch.tensor(
        [width * 1.2, height * 1.2], dtype=dtype
    ) - torch.tensor([width * 0.1, height * 0.1], dtype=dtype)
    xy = centres + (torch.rand(batch, nfaces, 3, 2, generator=g, dtype=dtype) - 0.5) * 0.6 * min(
        size
    )
    z = 1 + torch.rand(batch, nfaces, 3, 1, generator=g, dtype=dtype)
    verts = torch.cat([xy, z], -1).reshape(batch, -1, 3)
    faces = torch.arange(3 * nfaces).reshape(nfaces, 3)
    return verts, faces


def rotation(yaw: float, pitch: float) -> np.ndarray:
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    about_z = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    about_x = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return about_x @ about_z


def project(points: np.ndarray, size: tuple[int, int], fill: float, yaw=0.6, pitch=0.3, depth=10.0):
    """Orthographic view of a z-up shape: world x -> screen right, world z -> screen up (so
    y down is -z), world y -> depth; scaled to span ``fill`` of the image, centred."""
    height, width = size
    p = (points - points.mean(0)) @ rotation(yaw, pitch).T
    screen = np.stack([p[:, 0], -p[:, 2], p[:, 1]], 1)
    scale = fill * min(height, width) / np.ptp(screen[:, :2], axis=0).max()
    return screen * scale + np.array([width / 2, height / 2, depth * scale])


def sphere(subdivisions: int, size: tuple[int, int], fill: float = 0.7, batch: int = 1, dtype=D64):
    v, f = icosphere(subdivisions)
    views = [project(v, size, fill, yaw=0.4 + 0.7 * b, pitch=0.2 + 0.3 * b) for b in range(batch)]
    return torch.tensor(np.stack(views), dtype=dtype), torch.tensor(f)


# ----------------------------------------------------------------------------- settings, bad input


def test_settings_normalise_and_refuse():
    assert RasterSettings(16).image_size == (16, 16)
    assert RasterSettings((12, 20)).image_size == (12, 20)
    assert RasterSettings(8, sigma=0.5, eps=1e-4).cutoff_radius == pytest.approx(
        math.sqrt(0.5 * math.log(1e4 - 1))
    )
    for bad in ({"image_size": 0}, {"image_size": (4,)}, {"image_size": 8, "sigma": 0.0},
                {"image_size": 8, "sigma": math.nan}, {"image_size": 8, "eps": 0.7},
                {"image_size": 8, "chunk_size": 0}):  # fmt: skip
        with pytest.raises(ValueError):
            RasterSettings(**bad)


def test_bad_input_is_refused_clearly():
    verts, faces = random_mesh(0, 1, 3, (8, 8))
    s = RasterSettings(8)
    for fn in (soft_silhouette, rasterize):
        for value in (math.nan, math.inf):
            bad = verts.clone()
            bad[0, 4, 1] = value
            with pytest.raises(InputError, match="NaN or inf"):
                fn(bad, faces, s)
        with pytest.raises(ValueError, match=r"\(B,N,3\)"):
            fn(verts[0], faces, s)
        with pytest.raises(ValueError, match="float32 or float64"):
            fn(verts.long(), faces, s)
        with pytest.raises(ValueError, match="integer"):
            fn(verts, faces.double(), s)
        with pytest.raises(ValueError, match=r"\(F,3\)"):
            fn(verts, faces[:, :2], s)
        with pytest.raises(ValueError, match="indices"):
            fn(verts, faces + 1, s)


def test_shaders_refuse_mismatched_inputs():
    verts, faces, frags = _tiny_scene()
    with pytest.raises(ValueError, match="attrs"):
        interpolate_vertex_attributes(frags, verts, faces, verts[:, :2])
    with pytest.raises(ValueError, match="attrs"):
        interpolate_vertex_attributes(frags, verts, faces, verts.float())
    with pytest.raises(ValueError, match="images"):
        render_flow(frags, verts[:1], verts[:1], faces)
    with pytest.raises(ValueError, match="beyond"):
        interpolate_vertex_attributes(frags, verts, faces[:1], verts)
    uv = torch.rand(4, 2, dtype=D64)
    with pytest.raises(ValueError, match="texture"):
        sample_texture(frags, verts, faces, uv, faces, torch.rand(3, 3, 4, 4, dtype=D64))
    with pytest.raises(ValueError, match="uv_faces"):
        sample_texture(frags, verts, faces, uv, faces + 2, torch.rand(2, 3, 4, 4, dtype=D64))


def test_empty_face_list_gives_empty_images():
    verts, _ = random_mesh(0, 2, 3, (6, 9))
    none = torch.zeros(0, 3, dtype=torch.long)
    s = RasterSettings((6, 9))
    verts.requires_grad_(True)
    sil = soft_silhouette(verts, none, s)
    assert sil.shape == (2, 6, 9) and not sil.any()
    sil.sum().backward()
    assert not verts.grad.any()
    frags = rasterize(verts, none, s)
    assert (
        (frags.pix_to_face == -1).all() and torch.isinf(frags.zbuf).all() and not frags.bary.any()
    )
    inside = (verts[..., 0] >= 0) & (verts[..., 0] < 9) & (verts[..., 1] >= 0) & (verts[..., 1] < 6)
    assert torch.equal(vertex_visibility(frags, verts, none), inside)
    assert not interpolate_vertex_attributes(frags, verts, none, verts).any()
    # Faces, but all of them off the image: nothing to evaluate either.
    away, faces = random_mesh(0, 2, 3, (6, 9))
    away[..., 0] += 100.0
    assert not soft_silhouette(away, faces, s).any()
    assert (rasterize(away, faces, s).pix_to_face == -1).all()


def test_degenerate_triangles_are_finite_and_cover_nothing():
    verts = torch.tensor(
        [[[3.0, 3.0, 1.0], [3.0, 3.0, 1.0], [3.0, 3.0, 1.0],  # a point
          [1.0, 1.5, 1.0], [4.0, 4.5, 1.0], [7.0, 7.5, 1.0],  # collinear
          [2.0, 6.0, 1.0], [2.0, 6.0, 1.0], [6.0, 2.0, 1.0],  # two equal corners
          [0.5, 0.5, 1.0], [2.5, 2.5, 1.0], [5.5, 5.5, 1.0]]],  # on pixel-centre diagonal
        dtype=D64,
    )  # fmt: skip
    faces = torch.arange(12).reshape(4, 3)
    s = RasterSettings(8)
    frags = rasterize(verts, faces, s)
    assert (frags.pix_to_face == -1).all()
    for dtype in (torch.float32, D64):
        v = verts.to(dtype).requires_grad_(True)
        sil = soft_silhouette(v, faces, s)
        assert torch.isfinite(sil).all()
        (sil * torch.linspace(0, 1, 64, dtype=dtype).view(8, 8)).sum().backward()
        assert torch.isfinite(v.grad).all()
        for face in faces:  # alone, a degenerate face is never "inside": D <= 1/2
            assert soft_silhouette(v.detach(), face[None], s).max() <= 0.5
    # A degenerate triangle acts as its segment, as the dense reference does.
    assert torch.allclose(soft_silhouette(verts, faces, RasterSettings(8, eps=1e-12)),
                          dense_soft(verts, faces, s), atol=1e-10)  # fmt: skip


# ----------------------------------------------------------------------------- soft silhouette


@pytest.mark.parametrize("case", ["soup", "sphere"])
def test_soft_silhouette_matches_dense_reference(case):
    size = (24, 32)
    if case == "soup":
        verts, faces = random_mesh(1, 2, 12, size)
    else:
        verts, faces = sphere(2, size, batch=2)
    s = RasterSettings(size, sigma=0.7, eps=1e-12)
    verts.requires_grad_(True)
    ours = soft_silhouette(verts, faces, s)
    ref = dense_soft(verts, faces, s)
    weights = torch.randn(ours.shape, generator=torch.Generator().manual_seed(2), dtype=D64)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), verts)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), verts)
    assert torch.allclose(ours, ref, atol=1e-10)
    assert torch.allclose(g_ours, g_ref, atol=1e-8 * g_ref.abs().max())
    # Default cut-off: dropping faces with D < eps changes S by at most a few eps.
    default = soft_silhouette(verts.detach(), faces, RasterSettings(size, sigma=0.7))
    assert (default - ref).abs().max() < 2e-3


def test_soft_silhouette_chunking_and_winding_do_not_matter():
    verts, faces = sphere(2, (20, 28), batch=2)
    verts.requires_grad_(True)
    whole = soft_silhouette(verts, faces, RasterSettings((20, 28)))
    (g_whole,) = torch.autograd.grad(whole.square().sum(), verts)
    # Faces split across chunks; the backward reuses the forward's pairs or re-enumerates.
    for chunk, keep in ((97, 1 << 22), (97, 0), (5000, 0)):
        part = soft_silhouette(
            verts, faces, RasterSettings((20, 28), chunk_size=chunk, keep_pairs=keep)
        )
        (g_part,) = torch.autograd.grad(part.square().sum(), verts)
        assert torch.allclose(part, whole, atol=1e-12)
        assert torch.allclose(g_part, g_whole, atol=1e-12)
    flipped = soft_silhouette(verts, faces[:, [0, 2, 1]], RasterSettings((20, 28)))
    assert torch.allclose(flipped, whole, atol=1e-12)
    # One face far larger than a chunk.
    big = torch.tensor([[[-5.0, -3.0, 1.0], [40.0, 2.0, 1.0], [3.0, 30.0, 1.0]]], dtype=D64)
    tri = torch.tensor([[0, 1, 2]])
    whole = soft_silhouette(big, tri, RasterSettings((20, 28)))
    assert torch.equal(soft_silhouette(big, tri, RasterSettings((20, 28), chunk_size=10)), whole)
    assert torch.equal(
        rasterize(big, tri, RasterSettings((20, 28), chunk_size=10)).pix_to_face,
        rasterize(big, tri, RasterSettings((20, 28))).pix_to_face,
    )


# 432 pairs: one chunk whose pairs the backward reuses, or three that it re-evaluates.
@pytest.mark.parametrize(("chunk", "keep"), [(1 << 20, 1 << 22), (150, 0)])
def test_soft_silhouette_gradcheck(chunk, keep):
    verts = torch.tensor(
        [[[1.3, 1.1, 1.0], [6.2, 2.4, 1.0], [2.7, 6.6, 1.0], [7.1, 6.9, 2.0]],
         [[0.4, 3.3, 1.0], [5.6, 0.7, 1.0], [4.1, 7.3, 1.0], [7.6, 4.2, 2.0]]],
        dtype=D64, requires_grad=True,
    )  # fmt: skip
    faces = torch.tensor([[0, 1, 2], [2, 1, 3], [0, 3, 1]])
    s = RasterSettings((8, 9), sigma=1.5, chunk_size=chunk, keep_pairs=keep)
    assert torch.autograd.gradcheck(
        lambda v: soft_silhouette(v, faces, s), (verts,), fast_mode=chunk < 1000
    )


def test_soft_silhouette_tends_to_hard_one():
    verts, faces = sphere(3, (64, 64))
    hard = (rasterize(verts, faces, RasterSettings(64)).pix_to_face >= 0).to(D64)
    gaps = [
        (soft_silhouette(verts, faces, RasterSettings(64, sigma=sigma)) - hard).abs().mean().item()
        for sigma in (2.0, 0.5, 0.1, 0.02, 0.004)
    ]
    assert all(a > b for a, b in itertools.pairwise(gaps)), gaps
    assert gaps[-1] < 3e-3, gaps


def test_float32_matches_float64():
    verts, faces = sphere(2, (32, 32), batch=2)
    s = RasterSettings(32)
    assert torch.allclose(
        soft_silhouette(verts.float(), faces, s).double(),
        soft_silhouette(verts, faces, s),
        atol=1e-5,
    )
    f32, f64 = rasterize(verts.float(), faces, s), rasterize(verts, faces, s)
    assert (f32.pix_to_face != f64.pix_to_face).float().mean() < 0.002


# ----------------------------------------------------------------------------- hard z-buffer


@pytest.mark.parametrize("case", ["soup", "sphere"])
def test_zbuffer_matches_dense_reference(case):
    size = (24, 32)
    if case == "soup":
        verts, faces = random_mesh(3, 2, 30, size)
    else:
        verts, faces = sphere(2, size, batch=2)
    for chunk in (1 << 20, 50):
        frags = rasterize(verts, faces, RasterSettings(size, chunk_size=chunk))
        face, bary, zbuf, ambiguous = dense_zbuffer(verts, faces, size)
        sure = ~ambiguous
        assert sure.float().mean() > 0.95
        assert torch.equal(frags.pix_to_face[sure], face[sure])
        assert torch.allclose(frags.bary[sure], bary[sure], atol=1e-10)
        assert torch.equal(torch.isinf(frags.zbuf), face == -1)
        hit = face >= 0
        assert torch.allclose(frags.zbuf[hit], zbuf[hit], atol=1e-10)
        assert (frags.pix_to_face >= 0).sum() >= 50


def test_zbuffer_has_no_cracks_on_edges_through_pixel_centres():
    # A grid whose vertices and diagonals fall exactly on pixel centres: each centre inside
    # lies on an edge or a vertex shared by up to six faces, and must still be covered.
    v, f = grid(5, 4, size=1.0)  # vertices 3 px apart, from (2.5, 1.5) to (14.5, 10.5)
    verts = torch.tensor(v * np.array([12.0, 9.0, 0.0]) + np.array([2.5, 1.5, 1.0]))[None]
    for faces in (torch.tensor(f), torch.tensor(f)[:, [0, 2, 1]]):
        for dtype in (torch.float32, D64):
            frags = rasterize(verts.to(dtype), faces, RasterSettings((16, 16)))
            covered = frags.pix_to_face[0] >= 0
            assert covered[1:11, 2:15].all() and covered.sum() == 10 * 13
    # A rotated fine grid: pixel centres fall anywhere, the disc inside must be solid.
    v, f = grid(9, 9, size=1.0)
    p = (v[:, :2] - 0.5) @ np.array([[0.8, -0.6], [0.6, 0.8]]).T * 20.0 + 16.0
    verts = torch.tensor(np.concatenate([p, np.ones((len(p), 1))], 1), dtype=torch.float32)[None]
    covered = rasterize(verts, torch.tensor(f), RasterSettings(32)).pix_to_face[0] >= 0
    centres = pixel_grid(32, 32).reshape(32, 32, 2)
    assert covered[(centres - 16).norm(dim=-1) < 9.5].all()


def test_zbuffer_picks_nearest_and_breaks_ties_by_face_index():
    quad = torch.tensor([[0.0, 0.0], [8.0, 0.0], [8.0, 8.0], [0.0, 8.0]], dtype=D64)
    depth = torch.tensor([3.0, 3.0, 3.0, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0], dtype=D64)
    verts = torch.cat([quad.repeat(3, 1), depth.unsqueeze(-1)], -1)[None]
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7], [8, 9, 10], [8, 10, 11]])
    frags = rasterize(verts, faces, RasterSettings(8))
    assert set(frags.pix_to_face.unique().tolist()) == {2, 3}
    assert torch.allclose(frags.zbuf, torch.full_like(frags.zbuf, 2.0))
    assert torch.allclose(frags.bary.sum(-1), torch.ones(1, 8, 8, dtype=D64))


def _vtk_silhouette(verts: np.ndarray, faces: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """VTK's flat white-on-black rendering of the screen-space mesh, parallel projection, the
    view covering exactly x in [0, W], y in [0, H] (y flipped: VTK's y points up)."""
    pv = pytest.importorskip("pyvista")
    height, width = size
    points = np.stack([verts[:, 0], height - verts[:, 1], -verts[:, 2]], 1)
    mesh = pv.PolyData(points, np.hstack([np.full((len(faces), 1), 3), faces]).ravel())
    try:
        plotter = pv.Plotter(off_screen=True, window_size=(width, height))
        plotter.disable_anti_aliasing()
        plotter.render_window.SetMultiSamples(0)
        plotter.set_background("black")
        plotter.add_mesh(mesh, color="white", lighting=False)
        plotter.enable_parallel_projection()
        plotter.camera.position = (width / 2, height / 2, 1e4)
        plotter.camera.focal_point = (width / 2, height / 2, 0.0)
        plotter.camera.up = (0.0, 1.0, 0.0)
        plotter.camera.parallel_scale = height / 2
        plotter.reset_camera_clipping_range()
        image = plotter.screenshot(return_img=True)
        plotter.close()
    except Exception as exc:  # no OpenGL context, no display...
        pytest.skip(f"VTK cannot render here: {exc}")
    if image.shape[:2] != (height, width) or not image.any():
        pytest.skip(f"VTK rendered nothing usable ({image.shape}, max {image.max()})")
    return image[..., 0] > 127


@pytest.mark.parametrize("case", ["icosphere", "demo_template"])
def test_hard_silhouette_matches_vtk(case):
    size = (128, 128)
    if case == "icosphere":
        v, f = icosphere(3)
        verts = project(v, size, 0.7)
    else:
        mesh = load_mesh(ROOT / "assets" / "demo_template.ply")
        verts, f = project(mesh.vertices, size, 0.8), mesh.faces
    ours = (
        rasterize(torch.tensor(verts)[None], torch.tensor(f), RasterSettings(size)).pix_to_face[0]
        >= 0
    ).numpy()
    theirs = _vtk_silhouette(verts, f, size)
    iou = (ours & theirs).sum() / (ours | theirs).sum()
    assert iou >= 0.99, iou


# ----------------------------------------------------------------------------- shaders


def test_interpolation_reproduces_positions_and_depth():
    verts, faces = sphere(2, (24, 32), batch=2)
    frags = rasterize(verts, faces, RasterSettings((24, 32)))
    image = interpolate_vertex_attributes(frags, verts, faces, verts)
    hit = frags.mask
    centres = pixel_grid(24, 32).reshape(1, 24, 32, 2).expand(2, -1, -1, -1)
    assert torch.allclose(image[..., :2][hit], centres[hit], atol=1e-10)
    assert torch.allclose(image[..., 2][hit], frags.zbuf[hit], atol=1e-10)
    assert not image[~hit].any()


def test_flow_of_a_translation_is_the_translation():
    verts, faces = sphere(2, (24, 32), batch=2)
    frags = rasterize(verts, faces, RasterSettings((24, 32)))
    moved = verts + torch.tensor([1.5, -2.0, 3.0], dtype=D64)
    flow, mask = render_flow(frags, verts, moved, faces)
    assert torch.equal(mask, frags.pix_to_face >= 0)
    assert torch.allclose(
        flow[mask], torch.tensor([1.5, -2.0], dtype=D64).expand(int(mask.sum()), 2)
    )
    assert not flow[~mask].any()


@pytest.mark.parametrize("v_up", [True, False])
def test_texture_sampling_follows_uv_convention(v_up):
    height, width, th, tw = 16, 20, 8, 10
    quad = torch.tensor(
        [[0.0, 0.0, 1.0], [width, 0.0, 1.0], [width, height, 1.0], [0.0, height, 1.0]], dtype=D64
    )
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    u = quad[:, 0] / width
    v = quad[:, 1] / height  # v down: 0 at the first texture row
    uv = torch.stack([u, 1 - v if v_up else v], -1)
    rows = torch.arange(th, dtype=D64).view(th, 1).expand(th, tw)
    cols = torch.arange(tw, dtype=D64).view(1, tw).expand(th, tw)
    texture = torch.stack([rows, cols])[None]
    frags = rasterize(quad[None], faces, RasterSettings((height, width)))
    image = sample_texture(frags, quad[None], faces, uv, faces, texture, v_up=v_up)[0]
    # Texel index of pixel centre i along an axis: (i + 0.5) * texels / pixels - 0.5.
    i = torch.arange(height, dtype=D64)
    j = torch.arange(width, dtype=D64)
    want_row = ((i + 0.5) * th / height - 0.5).clamp(0, th - 1).view(-1, 1).expand(height, width)
    want_col = ((j + 0.5) * tw / width - 0.5).clamp(0, tw - 1).view(1, -1).expand(height, width)
    assert torch.allclose(image[..., 0], want_row, atol=1e-9)
    assert torch.allclose(image[..., 1], want_col, atol=1e-9)


def _tiny_scene():
    """Two frames of a 3-face mesh on a 7x9 image with fixed fragments."""
    verts = torch.tensor(
        [[[0.6, 0.9, 1.0], [8.2, 1.4, 1.5], [3.7, 6.6, 2.0], [8.6, 6.1, 0.5]],
         [[1.4, 0.3, 2.0], [7.6, 2.2, 1.0], [2.1, 6.8, 1.5], [8.7, 5.3, 1.2]]],
        dtype=D64,
    )  # fmt: skip
    faces = torch.tensor([[0, 1, 2], [2, 1, 3], [0, 2, 3]])
    frags = rasterize(verts, faces, RasterSettings((7, 9)))
    assert frags.mask.sum() > 20
    return verts, faces, frags


def test_shader_gradchecks():
    verts, faces, frags = _tiny_scene()
    g = torch.Generator().manual_seed(4)
    v = verts.clone().requires_grad_(True)
    attrs = torch.rand(2, 4, 3, generator=g, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda v, a: interpolate_vertex_attributes(frags, v, faces, a), (v, attrs)
    )
    target = (verts + torch.rand(2, 4, 3, generator=g, dtype=D64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: render_flow(frags, a, b, faces)[0], (v, target))
    uv = (0.15 + 0.7 * torch.rand(4, 2, generator=g, dtype=D64)).requires_grad_(True)
    texture = torch.rand(2, 2, 5, 6, generator=g, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda v, uv, t: sample_texture(frags, v, faces, uv, faces, t), (v, uv, texture)
    )


def test_vertex_visibility_of_a_sphere():
    size = (64, 64)
    v, f = icosphere(3)
    verts = torch.tensor(project(v, size, 0.7, yaw=0.0, pitch=0.0))[None]
    frags = rasterize(verts, torch.tensor(f), RasterSettings(size))
    visible = vertex_visibility(frags, verts, torch.tensor(f))[0]
    facing = torch.tensor(v[:, 1])  # world y is depth: negative faces the camera
    assert visible[facing < -0.1].all()
    # Behind, and more than a pixel inside the outline (nearer the outline, a vertex whose pixel
    # centre is background counts as visible).
    assert not visible[facing > 0.3].any()
    # Outside the image: never visible; a wall in front hides what is behind it.
    shifted = verts.clone()
    shifted[0, :, 0] += 40.0
    frags = rasterize(shifted, torch.tensor(f), RasterSettings(size))
    assert not vertex_visibility(frags, shifted, torch.tensor(f))[0][shifted[0, :, 0] >= 64].any()
    wall = torch.tensor(
        [[0.0, 0.0, 0.0], [63.9, 0.0, 0.0], [63.9, 32.0, 0.0], [0.0, 32.0, 0.0]], dtype=D64
    )
    both = torch.cat([verts[0], wall])[None]
    faces = torch.cat([torch.tensor(f), torch.tensor([[0, 1, 2], [0, 2, 3]]) + len(v)])
    seen = vertex_visibility(rasterize(both, faces, RasterSettings(size)), both, faces)[0]
    assert not seen[: len(v)][verts[0, :, 1] < 31.0].any()
    assert seen[len(v) :].all() and seen[: len(v)][(facing < -0.1) & (verts[0, :, 1] > 33.0)].all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    verts, faces = sphere(3, (48, 64), batch=2, dtype=torch.float32)
    s = RasterSettings((48, 64))
    cpu = verts.clone().requires_grad_(True)
    gpu = verts.cuda().requires_grad_(True)
    sil_c, sil_g = soft_silhouette(cpu, faces, s), soft_silhouette(gpu, faces.cuda(), s)
    sil_c.square().sum().backward()
    sil_g.square().sum().backward()
    assert torch.allclose(sil_g.cpu(), sil_c, atol=1e-5)
    assert torch.allclose(gpu.grad.cpu(), cpu.grad, atol=1e-4 * cpu.grad.abs().max())
    fc, fg = rasterize(verts, faces, s), rasterize(verts.cuda(), faces.cuda(), s)
    assert (fg.pix_to_face.cpu() != fc.pix_to_face).float().mean() < 0.002
    texture = torch.rand(2, 3, 8, 8)
    uv = torch.rand(verts.shape[1], 2)
    img = sample_texture(fg, verts.cuda(), faces.cuda(), uv.cuda(), faces.cuda(), texture.cuda())
    assert torch.allclose(
        img.cpu(), sample_texture(fc, verts, faces, uv, faces, texture), atol=1e-4
    )
