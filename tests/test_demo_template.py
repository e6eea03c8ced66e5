"""The shipped demo template: watertight, one component, right size, regenerable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from engine.geometry.demo_template import make_demo_template
from engine.io.mesh import load_mesh

ASSET = Path(__file__).resolve().parents[1] / "assets" / "demo_template.ply"


def _edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    return np.unique(edges, axis=0, return_counts=True)


def test_shipped_template_is_a_closed_single_component_mesh():
    mesh = load_mesh(ASSET)
    v, f = mesh.vertices, mesh.faces
    assert 1000 <= len(v) <= 3000
    edges, counts = _edges(f)
    assert np.all(counts == 2), "every edge must be shared by exactly two faces (watertight)"
    # Each directed edge once: consistent orientation (an edge appears as (a,b) and (b,a)).
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)
    adjacency = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(v),) * 2)
    assert connected_components(adjacency, directed=False)[0] == 1
    assert len(np.unique(f)) == len(v), "no unreferenced vertices"
    assert len(v) - len(edges) + len(f) == 2, "sphere topology (Euler characteristic 2)"
    # Well-shaped triangles: no slivers.
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    for p, q, r in ((a, b, c), (b, c, a), (c, a, b)):
        u, w = q - p, r - p
        cos = (u * w).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(w, axis=1)
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))).min() > 15.0
    # Outward orientation: positive signed volume.
    assert np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0 > 0


def test_generator_reproduces_the_shipped_file():
    vertices, faces = make_demo_template()
    mesh = load_mesh(ASSET)
    np.testing.assert_array_equal(faces, mesh.faces)
    np.testing.assert_allclose(vertices, mesh.vertices, rtol=0, atol=1e-12)
