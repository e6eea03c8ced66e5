"""A mesh's quality report: what a user should know before editing or learning on it.

Counts connected components, boundary loops (open holes), non-manifold edges (used by more than
two faces: fins, two solids sharing an edge), degenerate faces (repeated corners or zero area)
and vertices no face uses. None of these stops the engine (the Laplacian and the solve cope), but
each changes what a deformation does, so the editor and the command line show the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

#: A face whose area is below this fraction of the bounding box diagonal squared is degenerate.
AREA_TOLERANCE = 1e-12


@dataclass(frozen=True)
class MeshQuality:
    """Counts describing a triangle mesh (see the module docstring)."""

    num_vertices: int
    num_faces: int
    components: int
    boundary_loops: int
    boundary_edges: int
    non_manifold_edges: int
    degenerate_faces: int
    unreferenced_vertices: int

    @property
    def is_clean(self) -> bool:
        """One closed, manifold component with no degenerate faces or unused vertices."""
        return not self.problems()

    def problems(self) -> list[str]:
        """What is unusual about the mesh, one short phrase each (empty for a clean mesh)."""
        out = []
        if self.components > 1:
            out.append(f"{self.components} connected components")
        if self.boundary_loops:
            out.append(
                f"{self.boundary_loops} boundary loop{'s' * (self.boundary_loops > 1)} "
                f"({self.boundary_edges} open edges)"
            )
        if self.non_manifold_edges:
            out.append(f"{self.non_manifold_edges} non-manifold edges (used by > 2 faces)")
        if self.degenerate_faces:
            out.append(f"{self.degenerate_faces} degenerate faces")
        if self.unreferenced_vertices:
            out.append(f"{self.unreferenced_vertices} vertices in no face")
        return out

    def summary(self) -> str:
        """One line: sizes, then the problems or "closed manifold"."""
        head = f"{self.num_vertices:,} vertices, {self.num_faces:,} faces"
        problems = self.problems()
        return head + (": " + "; ".join(problems) if problems else ": one closed manifold piece")


def mesh_quality(vertices: np.ndarray, faces: np.ndarray) -> MeshQuality:
    """Quality report of a triangle mesh.

    Args:
        vertices: (N,3) float array.
        faces: (F,3) int array of indices in ``[0, N)``.

    Returns:
        :class:`MeshQuality`. Components count the vertices used by faces (isolated vertices are
        reported as unreferenced, not as components).
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    n = len(v)
    used = np.zeros(n, dtype=bool)
    used[f.ravel()] = True

    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    boundary = unique[counts == 1]

    graph = sp.coo_matrix((np.ones(len(unique)), (unique[:, 0], unique[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    components = len(np.unique(labels[used])) if used.any() else 0

    loops = 0
    if len(boundary):
        bgraph = sp.coo_matrix(
            (np.ones(len(boundary)), (boundary[:, 0], boundary[:, 1])), shape=(n, n)
        )
        _, blabels = connected_components(bgraph, directed=False)
        loops = len(np.unique(blabels[np.unique(boundary)]))

    corners_repeat = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 2] == f[:, 0])
    area2 = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    diag2 = float(np.sum((v[used].max(0) - v[used].min(0)) ** 2)) if used.any() else 0.0
    degenerate = corners_repeat | (area2 <= AREA_TOLERANCE * max(diag2, np.finfo(float).tiny))
    return MeshQuality(
        num_vertices=n,
        num_faces=len(f),
        components=int(components),
        boundary_loops=int(loops),
        boundary_edges=len(boundary),
        non_manifold_edges=int((counts > 2).sum()),
        degenerate_faces=int(degenerate.sum()),
        unreferenced_vertices=int((~used).sum()),
    )
