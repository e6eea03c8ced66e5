"""Tests of engine.geometry.proxy: render proxies of templates and their linear vertex map."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import pyvista as pv
import torch

from engine.geometry import proxy as proxy_module
from engine.geometry.primitives import grid, icosphere
from engine.geometry.proxy import RenderProxy, render_proxy
from engine.io.mesh import load_mesh

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo_template.ply"


@pytest.fixture(scope="module")
def demo() -> tuple[np.ndarray, np.ndarray]:
    mesh = load_mesh(DEMO)
    return mesh.vertices, mesh.faces


@pytest.fixture(scope="module")
def demo_proxy(demo) -> RenderProxy:
    return render_proxy(*demo, max_faces=1300)


def _edge_counts(faces: np.ndarray) -> np.ndarray:
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    return np.unique(edges, axis=0, return_counts=True)[1]


def _surface_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    cells = np.hstack([np.full((len(faces), 1), 3), faces]).ravel()
    _, closest = pv.PolyData(vertices, cells).find_closest_cell(points, return_closest_point=True)
    return np.linalg.norm(closest - points, axis=1)


def _signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    return float(np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0)


def _positions(p: RenderProxy, vertices: np.ndarray) -> np.ndarray:
    return p.apply(torch.from_numpy(vertices)).numpy()


def _check_weights(p: RenderProxy, num_vertices: int) -> None:
    assert p.corner_ids.shape == p.weights.shape == (p.num_vertices, 3)
    assert p.corner_ids.dtype == np.int64 and p.faces.dtype == np.int64
    assert p.corner_ids.min() >= 0 and p.corner_ids.max() < num_vertices
    assert np.all(p.weights >= 0)
    np.testing.assert_allclose(p.weights.sum(axis=1), 1.0, atol=1e-12)
    assert p.faces.min() >= 0 and p.faces.max() < p.num_vertices
    assert len(np.unique(p.faces)) == p.num_vertices  # no proxy vertex outside every face


def test_small_mesh_gets_the_identity_proxy():
    v, f = icosphere(2)
    assert len(f) == 320
    p = render_proxy(v, f)
    assert p.is_identity and p.note == ""
    np.testing.assert_array_equal(p.faces, f)
    np.testing.assert_array_equal(p.corner_ids, np.repeat(np.arange(len(v))[:, None], 3, axis=1))
    np.testing.assert_array_equal(p.weights[:, 0], 1.0)
    assert p.num_vertices == len(v) and p.num_faces == 320
    verts = torch.from_numpy(v)
    assert p.apply(verts) is verts
    batch = verts.expand(4, -1, -1)
    assert p.apply(batch) is batch


def test_demo_template_proxy_lies_on_the_template(demo, demo_proxy):
    v, f = demo
    p = demo_proxy
    assert (len(v), len(f)) == (2108, 4212)
    assert not p.is_identity and p.note == ""
    assert 1000 <= p.num_faces <= 1300
    _check_weights(p, len(v))
    pos = _positions(p, v)
    diag = np.linalg.norm(v.max(0) - v.min(0))
    assert _surface_distance(pos, v, f).max() < 1e-9 * diag
    # What a silhouette sees: the extent and the outline, both close to the template's.
    assert np.abs(pos.min(0) - v.min(0)).max() < 0.02 * diag
    assert np.abs(pos.max(0) - v.max(0)).max() < 0.02 * diag
    assert _surface_distance(v, pos, p.faces).max() < 0.02 * diag


def test_demo_template_proxy_is_closed_and_outward(demo, demo_proxy):
    v, f = demo
    assert np.all(_edge_counts(f) == 2)
    assert np.all(_edge_counts(demo_proxy.faces) == 2)
    pos = _positions(demo_proxy, v)
    ratio = _signed_volume(pos, demo_proxy.faces) / _signed_volume(v, f)
    assert 0.9 < ratio <= 1.0 + 1e-9


def test_proxy_follows_similarity_transforms(demo, demo_proxy):
    v, _ = demo
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = q * np.sign(np.linalg.det(q))
    moved = 1.7 * v @ rotation.T + np.array([0.3, -2.0, 5.0])
    expected = 1.7 * _positions(demo_proxy, v) @ rotation.T + np.array([0.3, -2.0, 5.0])
    np.testing.assert_allclose(_positions(demo_proxy, moved), expected, atol=1e-12)


def test_apply_matches_the_sparse_matrix_batched_and_for_attributes(demo, demo_proxy):
    v, _ = demo
    p = demo_proxy
    m = p.matrix()
    assert m.shape == (p.num_vertices, len(v))
    attributes = np.random.default_rng(1).normal(size=(2, len(v), 5))
    out = p.apply(torch.from_numpy(attributes))
    assert out.shape == (2, p.num_vertices, 5) and out.dtype == torch.float64
    np.testing.assert_allclose(out[1].numpy(), m @ attributes[1], atol=1e-12)
    out32 = p.apply(torch.from_numpy(attributes).float())
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), out.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="2108"):
        p.apply(torch.zeros(len(v) - 1, 3))


def test_gradient_is_the_column_sums_of_the_weight_matrix(demo, demo_proxy):
    v, _ = demo
    verts = torch.from_numpy(v).clone().requires_grad_(True)
    demo_proxy.apply(verts).sum().backward()
    column_sums = np.asarray(demo_proxy.matrix().sum(axis=0)).ravel()
    np.testing.assert_allclose(verts.grad.numpy(), np.repeat(column_sums[:, None], 3, axis=1))
    assert column_sums.sum() == pytest.approx(demo_proxy.num_vertices)


def test_gradcheck_through_apply():
    v, f = icosphere(2)
    p = render_proxy(v, f, max_faces=100)
    verts = torch.from_numpy(v[None]).clone().requires_grad_(True)
    assert torch.autograd.gradcheck(p.apply, (verts,))


def test_render_proxy_is_deterministic(demo, demo_proxy):
    again = render_proxy(*demo, max_faces=1300)
    np.testing.assert_array_equal(again.faces, demo_proxy.faces)
    np.testing.assert_array_equal(again.corner_ids, demo_proxy.corner_ids)
    np.testing.assert_array_equal(again.weights, demo_proxy.weights)


@pytest.mark.parametrize("subdivisions", [5, 6])
def test_large_icospheres_decimate_quickly(subdivisions):
    v, f = icosphere(subdivisions)
    start = time.perf_counter()
    p = render_proxy(v, f)
    elapsed = time.perf_counter() - start
    print(f"icosphere({subdivisions}): {len(f)} -> {p.num_faces} faces in {elapsed:.2f} s")
    assert not p.is_identity and p.num_faces <= 1300 and p.note == ""
    assert np.all(_edge_counts(p.faces) == 2)
    radii = np.linalg.norm(_positions(p, v), axis=1)
    assert radii.max() <= 1.0 + 1e-12 and radii.min() > 0.99


def test_two_components_both_stay_and_share_the_budget():
    va, fa = icosphere(4)
    vb, fb = icosphere(3)
    v = np.concatenate([va, 0.5 * vb + [3.0, 0.0, 0.0]])
    f = np.concatenate([fa, fb + len(va)])
    p = render_proxy(v, f, max_faces=1000)
    assert p.num_faces <= 1000 and p.note == ""
    _check_weights(p, len(v))
    in_b = p.corner_ids[:, 0] >= len(va)
    assert np.all((p.corner_ids >= len(va)) == in_b[:, None])  # no vertex straddles components
    faces_b = in_b[p.faces].all(axis=1)
    assert np.all(in_b[p.faces].any(axis=1) == faces_b)
    # The budget is shared in proportion to the face counts (5120 : 1280).
    assert 150 <= faces_b.sum() <= 250
    assert np.all(_edge_counts(p.faces) == 2)


def test_small_components_stay_present():
    va, fa = icosphere(4)
    vb, fb = icosphere(0)
    tet = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    tet_faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    v = np.concatenate([va, 0.05 * vb + [2.0, 0.0, 0.0], 0.05 * tet + [0.0, 2.0, 0.0]])
    f = np.concatenate([fa, fb + len(va), tet_faces + len(va) + len(vb)])
    p = render_proxy(v, f, max_faces=1000)
    assert p.num_faces <= 1000 and p.note == ""
    assert np.all(_edge_counts(p.faces) == 2)
    part = np.searchsorted([len(va), len(va) + len(vb)], p.corner_ids[:, 0], side="right")
    face_part = part[p.faces]
    assert np.all(face_part == face_part[:, :1])
    # The icosahedron's share (about 4 faces) is raised to the minimum; the tetrahedron, below
    # the minimum, is kept whole, each vertex on itself.
    assert (face_part[:, 0] == 1).sum() == proxy_module.MIN_COMPONENT_FACES
    assert (face_part[:, 0] == 2).sum() == 4
    np.testing.assert_array_equal(
        np.sort(p.corner_ids[part == 2, 0]), len(va) + len(vb) + np.arange(4)
    )
    np.testing.assert_array_equal(p.weights[part == 2], np.tile([1.0, 0.0, 0.0], (4, 1)))


def test_too_many_components_drop_those_with_fewest_faces_with_a_note():
    tet = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    tet_faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    ico_v, ico_f = icosphere(0)
    parts = [(tet + np.array([2.0 * i, 0, 0]), tet_faces) for i in range(30)]
    parts += [(ico_v + np.array([4.0 * i, 5.0, 0]), ico_f) for i in range(10)]
    starts = np.cumsum([0] + [len(pts) for pts, _ in parts])
    v = np.concatenate([pts for pts, _ in parts])
    f = np.concatenate([pf + s for (_, pf), s in zip(parts, starts[:-1], strict=True)])
    p = render_proxy(v, f, max_faces=100)
    assert not p.is_identity and p.num_faces == 100
    assert p.note.startswith("25 of 40 components dropped")
    part = np.searchsorted(starts, p.corner_ids[:, 0], side="right") - 1
    # Every icosahedron (8 faces each) and the first 5 tetrahedra (whole) remain.
    np.testing.assert_array_equal(np.unique(part), np.r_[0:5, 30:40])
    assert np.all(_edge_counts(p.faces) == 2)


def test_open_mesh_keeps_its_border():
    v, f = grid(40, 40)
    p = render_proxy(v, f, max_faces=300)
    assert p.num_faces <= 300 and p.note == ""
    _check_weights(p, len(v))
    pos = _positions(p, v)
    np.testing.assert_allclose(pos.min(0), v.min(0), atol=1e-12)
    np.testing.assert_allclose(pos.max(0), v.max(0), atol=1e-12)
    counts = _edge_counts(p.faces)
    assert counts.max() == 2 and (counts == 1).any()
    area = np.linalg.norm(
        np.cross(pos[p.faces[:, 1]] - pos[p.faces[:, 0]], pos[p.faces[:, 2]] - pos[p.faces[:, 0]]),
        axis=1,
    ).sum()
    assert area / 2 == pytest.approx(1.0, rel=1e-9)


def test_degenerate_triangles_and_unused_vertices_are_tolerated(demo):
    v, f = demo
    extra = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [9.0, 9.0, 9.0]]) + v[0]
    vv = np.concatenate([v, extra])
    n = len(v)
    bad = np.array([[0, 0, 1], [n, n + 1, n + 2], [5, 5, 5]])  # repeated corners, collinear
    ff = np.concatenate([f[:2000], bad, f[2000:]])
    p = render_proxy(vv, ff, max_faces=1300)
    assert not p.is_identity and p.num_faces <= 1300
    _check_weights(p, len(vv))
    assert np.isfinite(_positions(p, vv)).all()
    assert n + 3 not in p.corner_ids


def test_triangle_soup_is_merged_into_a_closed_proxy():
    v, f = icosphere(4)
    soup = v[f].reshape(-1, 3)
    p = render_proxy(soup, np.arange(len(soup)).reshape(-1, 3), max_faces=800)
    assert p.num_faces <= 800 and p.note == ""
    assert np.all(_edge_counts(p.faces) == 2)


def test_topology_preserving_decimation_is_the_second_choice(demo, monkeypatch):
    original = proxy_module._decimate
    used = []

    def without_quadric(surface, method, budget):
        used.append(method)
        return None if method == "quadric" else original(surface, method, budget)

    monkeypatch.setattr(proxy_module, "_decimate", without_quadric)
    v, f = demo
    p = render_proxy(v, f, max_faces=1300)
    assert used == ["quadric", "pro"]
    assert not p.is_identity and p.num_faces <= 1300
    _check_weights(p, len(v))
    assert np.all(_edge_counts(p.faces) == 2)
    diag = np.linalg.norm(v.max(0) - v.min(0))
    assert _surface_distance(v, _positions(p, v), p.faces).max() < 0.02 * diag


def test_failed_decimation_falls_back_to_identity_with_a_note(monkeypatch):
    v, f = icosphere(3)
    monkeypatch.setattr(proxy_module, "_decimate", lambda surface, method, budget: None)
    p = render_proxy(v, f, max_faces=500)
    assert p.is_identity and p.num_faces == len(f)
    assert p.note.startswith("decimation failed")
    verts = torch.from_numpy(v)
    assert p.apply(verts) is verts


def test_all_degenerate_mesh_falls_back_to_identity():
    v = np.zeros((10, 3))
    f = np.tile([[0, 0, 1]], (50, 1))
    p = render_proxy(v, f, max_faces=20)
    assert p.is_identity and "repeated corners" in p.note


@pytest.mark.parametrize(
    "vertices, faces, max_faces, match",
    [
        (np.zeros((4, 2)), np.zeros((1, 3), dtype=int), 10, "vertices"),
        (np.zeros((4, 3)), np.zeros((1, 4), dtype=int), 10, "faces"),
        (np.zeros((4, 3)), np.array([[0, 1, 4]]), 10, r"\[0, 4\)"),
        (np.full((4, 3), np.nan), np.array([[0, 1, 2]]), 10, "NaN"),
        (np.zeros((4, 3)), np.array([[0, 1, 2]]), 3, "max_faces"),
    ],
)
def test_bad_input_is_rejected(vertices, faces, max_faces, match):
    with pytest.raises(ValueError, match=match):
        render_proxy(vertices, faces, max_faces=max_faces)
