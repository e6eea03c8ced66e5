"""The project's own articulated demo template: a four-legged animal with neck, head and tail.

The body is a smooth union (polynomial smooth-min) of capsule signed distance functions,
contoured by marching cubes (VTK, through pyvista without Qt) on a grid coarse enough to give
~2k vertices, then evened out by Delaunay edge flips and tangential relaxation projected back
onto the implicit surface (marching cubes alone leaves slivers). The result is one watertight, manifold, connected triangle mesh with
well-shaped triangles, so the editor has limbs to pull without any downloaded data.

    python -m engine.geometry.demo_template assets/demo_template.ply

regenerates the shipped file; the construction is deterministic (fixed grid, no randomness).
Axes: x forward (towards the head), y to the animal's left, z up; units are arbitrary
(about 2.6 long, 1.9 tall).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# (start, end, radius) of each capsule; x forward, y left, z up.
_CAPSULES: list[tuple[tuple[float, float, float], tuple[float, float, float], float]] = [
    ((-0.55, 0.0, 1.00), (0.55, 0.0, 1.05), 0.30),  # torso
    ((0.60, 0.0, 1.15), (0.92, 0.0, 1.58), 0.13),  # neck
    ((0.90, 0.0, 1.65), (1.25, 0.0, 1.48), 0.12),  # head
    ((0.95, 0.07, 1.74), (0.92, 0.10, 1.88), 0.035),  # left ear
    ((0.95, -0.07, 1.74), (0.92, -0.10, 1.88), 0.035),  # right ear
    ((-0.62, 0.0, 1.10), (-0.95, 0.0, 0.95), 0.06),  # tail, upper
    ((-0.95, 0.0, 0.95), (-1.20, 0.0, 0.62), 0.05),  # tail, lower
]
for _side in (1.0, -1.0):
    _y = 0.17 * _side
    _CAPSULES += [
        ((0.45, _y, 0.90), (0.50, _y, 0.50), 0.09),  # front upper leg
        ((0.50, _y, 0.50), (0.48, _y, 0.08), 0.07),  # front lower leg
        ((-0.45, _y, 0.90), (-0.55, _y, 0.52), 0.10),  # hind upper leg
        ((-0.55, _y, 0.52), (-0.50, _y, 0.08), 0.07),  # hind lower leg
    ]

_BLEND = 0.08  # smooth-min width: fillets between parts
_SPACING = 0.06  # marching-cubes grid step: sets the vertex count (~2.1k)


def _capsule_sdf(points: np.ndarray, a, b, radius: float) -> np.ndarray:
    a = np.asarray(a)
    ab = np.asarray(b) - a
    ap = points - a
    t = np.clip(ap @ ab / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(ap - t[:, None] * ab, axis=1) - radius


def _smooth_min(d1: np.ndarray, d2: np.ndarray, k: float) -> np.ndarray:
    # Polynomial smooth minimum (Quilez): C1 blend of width k, exact min away from the seam.
    h = np.clip(0.5 + 0.5 * (d2 - d1) / k, 0.0, 1.0)
    return d2 * (1.0 - h) + d1 * h - k * h * (1.0 - h)


def body_sdf(points: np.ndarray) -> np.ndarray:
    """Signed distance-like field of the animal, negative inside.

    Args:
        points: (M,3) float64 positions.

    Returns:
        (M,) float64 field values; the surface is the zero level set.
    """
    field = None
    for a, b, r in _CAPSULES:
        d = _capsule_sdf(points, a, b, r)
        field = d if field is None else _smooth_min(field, d, _BLEND)
    return field


def make_demo_template(spacing: float = _SPACING) -> tuple[np.ndarray, np.ndarray]:
    """Build the demo animal.

    Args:
        spacing: marching-cubes grid step (the default gives about 2.1k vertices; the vertex
            count scales like 1/spacing^2, thin parts vanish above ~0.08).

    Returns:
        vertices (N,3) float64 and faces (F,3) int64 of a closed manifold triangle mesh with
        one connected component.
    """
    import pyvista as pv

    lo = np.array([-1.35, -0.45, -0.05])
    hi = np.array([1.45, 0.45, 2.05])
    dims = np.ceil((hi - lo) / spacing).astype(int) + 1
    grid = pv.ImageData(dimensions=tuple(dims), spacing=(spacing,) * 3, origin=tuple(lo))
    grid.point_data["sdf"] = body_sdf(np.asarray(grid.points, dtype=np.float64))
    surface = grid.contour([0.0], scalars="sdf", method="marching_cubes")
    surface = surface.clean().triangulate().connectivity("largest")
    surface = surface.extract_surface(algorithm="dataset_surface").triangulate().clean()
    vertices = np.asarray(surface.points, dtype=np.float64)
    faces = np.asarray(surface.faces, dtype=np.int64).reshape(-1, 4)[:, 1:].copy()
    # Marching cubes leaves slivers; alternate Delaunay edge flips with tangential
    # relaxation projected back onto the implicit surface to even the triangles out.
    for _ in range(8):
        faces = _delaunay_flips(vertices, faces)
        vertices = _relax(vertices, faces)
    faces = _delaunay_flips(vertices, faces)
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    if np.einsum("ij,ij->", a, np.cross(b, c)) < 0:  # outward normals: positive volume
        faces = faces[:, ::-1].copy()
    return vertices, faces


def _project(points: np.ndarray, steps: int = 3, h: float = 1e-5) -> np.ndarray:
    # Newton steps along the field gradient onto the zero level set.
    for _ in range(steps):
        f = body_sdf(points)
        grad = np.stack(
            [(body_sdf(points + h * e) - f) / h for e in np.eye(3)],
            axis=1,
        )
        points = points - (f / np.maximum((grad * grad).sum(1), 1e-12))[:, None] * grad
    return points


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    fn = np.cross(
        vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]]
    )
    normals = np.zeros_like(vertices)
    for i in range(3):
        np.add.at(normals, faces[:, i], fn)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def _relax(vertices: np.ndarray, faces: np.ndarray, step: float = 0.5) -> np.ndarray:
    # Move each vertex towards its neighbours' centroid within its tangent plane, then
    # re-project onto the surface (keeps the shape, evens out edge lengths).
    n = len(vertices)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    total = np.zeros_like(vertices)
    count = np.zeros(n)
    np.add.at(total, edges[:, 0], vertices[edges[:, 1]])
    np.add.at(count, edges[:, 0], 1.0)
    delta = total / count[:, None] - vertices
    normals = _vertex_normals(vertices, faces)
    delta -= (delta * normals).sum(1, keepdims=True) * normals
    return _project(vertices + step * delta)


def _opposite_angle(vertices: np.ndarray, apex: int, a: int, b: int) -> float:
    u = vertices[a] - vertices[apex]
    v = vertices[b] - vertices[apex]
    cos = float(u @ v) / (float(np.linalg.norm(u) * np.linalg.norm(v)) + 1e-300)
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def _delaunay_flips(vertices: np.ndarray, faces: np.ndarray, passes: int = 10) -> np.ndarray:
    # Flip an edge when the two angles facing it sum to more than pi (intrinsic Delaunay
    # criterion); skip flips that would create an existing edge (keeps the mesh manifold).
    faces = faces.copy()
    for _ in range(passes):
        edge_faces: dict[tuple[int, int], list[int]] = {}
        for fi, (i, j, k) in enumerate(faces.tolist()):
            for a, b in ((i, j), (j, k), (k, i)):
                edge_faces.setdefault((min(a, b), max(a, b)), []).append(fi)
        touched: set[int] = set()
        flipped = 0
        for (a, b), fs in edge_faces.items():
            if len(fs) != 2 or fs[0] in touched or fs[1] in touched:
                continue
            f0, f1 = faces[fs[0]].tolist(), faces[fs[1]].tolist()
            c = next(v for v in f0 if v != a and v != b)
            d = next(v for v in f1 if v != a and v != b)
            if (min(c, d), max(c, d)) in edge_faces or c == d:
                continue
            if (
                _opposite_angle(vertices, c, a, b) + _opposite_angle(vertices, d, a, b)
                <= np.pi + 1e-9
            ):
                continue
            # Keep f0's orientation: f0 has a->b (or b->a) followed by c.
            i0 = f0.index(c)
            p, q = f0[(i0 + 1) % 3], f0[(i0 + 2) % 3]  # f0 = (c, p, q), edge p-q = {a, b}
            faces[fs[0]] = (c, p, d)
            faces[fs[1]] = (c, d, q)
            touched.update(fs)
            flipped += 1
        if flipped == 0:
            break
    return faces


def main(argv: list[str] | None = None) -> int:
    """Command line: write the template to the given path (PLY/OBJ/STL by suffix)."""
    from engine.io.mesh import save_mesh

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output mesh file, e.g. assets/demo_template.ply")
    parser.add_argument("--spacing", type=float, default=_SPACING, help="grid step")
    args = parser.parse_args(argv)
    vertices, faces = make_demo_template(args.spacing)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_mesh(args.out, vertices, faces)
    print(f"wrote {args.out}: {len(vertices)} vertices, {len(faces)} faces")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
