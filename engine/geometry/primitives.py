"""Procedural test meshes (icosphere, octasphere, grids) for tests, benchmarks and demos.

Every function returns plain numpy arrays ``(vertices (N,3) float64, faces (F,3) int64)`` with
outward-facing, counter-clockwise triangles, so the results can be fed to
:func:`engine.io.mesh.validate_mesh` or straight into the torch code.
"""

from __future__ import annotations

import numpy as np


def _subdivide_on_sphere(
    vertices: np.ndarray, faces: np.ndarray, subdivisions: int
) -> tuple[np.ndarray, np.ndarray]:
    """Loop-free midpoint subdivision, each new vertex projected onto the unit sphere."""
    verts = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    tris = faces
    for _ in range(subdivisions):
        n = len(verts)
        edges = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
        edges = np.sort(edges, axis=1)
        unique, inverse = np.unique(edges, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        mids = verts[unique[:, 0]] + verts[unique[:, 1]]
        mids /= np.linalg.norm(mids, axis=1, keepdims=True)
        f = len(tris)
        m01 = n + inverse[:f]
        m12 = n + inverse[f : 2 * f]
        m20 = n + inverse[2 * f :]
        a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
        tris = np.concatenate(
            [
                np.stack([a, m01, m20], axis=1),
                np.stack([b, m12, m01], axis=1),
                np.stack([c, m20, m12], axis=1),
                np.stack([m01, m12, m20], axis=1),
            ]
        )
        verts = np.concatenate([verts, mids])
    return verts.astype(np.float64), tris.astype(np.int64)


def icosphere(subdivisions: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere.

    Args:
        subdivisions: number of 1-to-4 midpoint subdivisions of the icosahedron (>= 0).

    Returns:
        vertices (N,3) float64 on the unit sphere with ``N = 10 * 4**s + 2`` (12, 42, 162, 642,
        2562, 10242, 40962, 163842, ...) and faces (F,3) int64 with ``F = 20 * 4**s``.
    """
    if subdivisions < 0:
        raise ValueError(f"subdivisions must be >= 0, got {subdivisions}")
    t = (1.0 + 5.0**0.5) / 2.0
    verts = np.array(
        [
            [-1, t, 0],
            [1, t, 0],
            [-1, -t, 0],
            [1, -t, 0],
            [0, -1, t],
            [0, 1, t],
            [0, -1, -t],
            [0, 1, -t],
            [t, 0, -1],
            [t, 0, 1],
            [-t, 0, -1],
            [-t, 0, 1],
        ],
        dtype=np.float64,
    )
    faces = np.array(
        [
            [0, 11, 5],
            [0, 5, 1],
            [0, 1, 7],
            [0, 7, 10],
            [0, 10, 11],
            [1, 5, 9],
            [5, 11, 4],
            [11, 10, 2],
            [10, 7, 6],
            [7, 1, 8],
            [3, 9, 4],
            [3, 4, 2],
            [3, 2, 6],
            [3, 6, 8],
            [3, 8, 9],
            [4, 9, 5],
            [2, 4, 11],
            [6, 2, 10],
            [8, 6, 7],
            [9, 8, 1],
        ],
        dtype=np.int64,
    )
    return _subdivide_on_sphere(verts, faces, subdivisions)


def octasphere(subdivisions: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere from a subdivided octahedron.

    Args:
        subdivisions: number of 1-to-4 midpoint subdivisions (>= 0).

    Returns:
        vertices (N,3) float64 with ``N = 4 * 4**s + 2`` (6, 18, 66, 258, ...) and faces (F,3)
        int64 with ``F = 8 * 4**s``.
    """
    if subdivisions < 0:
        raise ValueError(f"subdivisions must be >= 0, got {subdivisions}")
    verts = np.array(
        [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64
    )
    faces = np.array(
        [
            [0, 2, 4],
            [2, 1, 4],
            [1, 3, 4],
            [3, 0, 4],
            [2, 0, 5],
            [1, 2, 5],
            [3, 1, 5],
            [0, 3, 5],
        ],
        dtype=np.int64,
    )
    return _subdivide_on_sphere(verts, faces, subdivisions)


def grid(nx: int, ny: int, size: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Flat open square grid in the z = 0 plane (a mesh with a boundary).

    Args:
        nx, ny: number of vertices along x and y (each >= 2).
        size: side length of the square.

    Returns:
        vertices (nx*ny, 3) float64 and faces (2*(nx-1)*(ny-1), 3) int64, counter-clockwise
        seen from +z.
    """
    if nx < 2 or ny < 2:
        raise ValueError(f"grid needs at least 2x2 vertices, got {nx}x{ny}")
    xs, ys = np.meshgrid(np.linspace(0, size, nx), np.linspace(0, size, ny), indexing="xy")
    verts = np.stack([xs.ravel(), ys.ravel(), np.zeros(nx * ny)], axis=1)
    idx = np.arange(nx * ny).reshape(ny, nx)
    a = idx[:-1, :-1].ravel()
    b = idx[:-1, 1:].ravel()
    c = idx[1:, 1:].ravel()
    d = idx[1:, :-1].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return verts.astype(np.float64), faces.astype(np.int64)
