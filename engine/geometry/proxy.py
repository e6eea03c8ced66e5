"""Render proxies: a decimated copy of a template whose vertices follow the full mesh linearly.

Training a category from images renders the deformed template hundreds of times per step, and
rasterisation cost grows with the face count, while the deformation (the Laplacian solve) needs
the full template. A :class:`RenderProxy` lets the two live at different resolutions: the
deformation runs on the full mesh's ``N`` vertices, the renderer draws ``Fp`` (about 1,000 to
1,300) proxy faces, and each of the proxy's ``Np`` vertices is a fixed convex combination of
the three corners of one full-mesh triangle. A deformed full mesh therefore maps to a deformed
proxy by one sparse ``(Np, N)`` product (:meth:`RenderProxy.apply`), and gradients flow back
through it to the full mesh.

How the mapping is built (:func:`render_proxy`):

1. Vertices with exactly equal coordinates are merged (so that a template split along a texture
   seam still decimates into a closed proxy) and faces with repeated corners are dropped.
2. The mesh is split into connected components, and the face budget ``max_faces`` is shared
   among them in proportion to their face counts; a component that already fits its share is
   kept whole. Decimating per component keeps every component present in the proxy, however
   small (at least :data:`MIN_COMPONENT_FACES` faces each, or the whole component if it has
   fewer). Only when the components are too many for the budget even at that minimum are those
   with the fewest faces dropped (ties: the later ones in the file), and the proxy's ``note``
   says how many.
3. Each component is decimated by VTK's quadric decimation (boundary edges constrained so that
   open borders keep their outline). If the result breaks the component's topology (a closed
   component opening up, new non-manifold edges), VTK's topology-preserving ``decimate_pro`` is
   tried instead.
4. Quadric decimation places vertices off the surface, so every proxy vertex is moved to its
   closest point on the original component (closest triangle from VTK's cell locator, then an
   exact closest point on that triangle, which copes with degenerate triangles). The barycentric
   coordinates of that point in its triangle are the proxy vertex's weights.

If decimation fails altogether, :func:`render_proxy` returns the identity proxy (the full mesh
itself) with the reason in ``note``: rendering is slower but still correct.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

#: Fewest faces a decimated component is given; a closed component cannot go below 4, and 8
#: keeps a small part (an eye, a claw) recognisable as a blob rather than a sliver.
MIN_COMPONENT_FACES = 8

#: How many times a component's decimation is retried with a stronger reduction when VTK stops
#: above the face budget (its target is a fraction, so the count can overshoot by a few faces).
_DECIMATION_ATTEMPTS = 4


@dataclass(frozen=True, eq=False)
class RenderProxy:
    """A (possibly decimated) copy of a mesh whose vertices are fixed combinations of its own.

    Proxy vertex ``j`` sits at ``sum_k weights[j, k] * V[corner_ids[j, k]]`` for any full-mesh
    vertex array ``V``: the three corners of the full-mesh triangle it lies on and its
    barycentric coordinates there.

    Attributes:
        faces: (Fp,3) int64 triangles of the proxy, indices into the proxy's vertices, with the
            full mesh's orientation.
        corner_ids: (Np,3) int64 full-mesh vertex ids of the triangle each proxy vertex lies on.
        weights: (Np,3) float64 barycentric weights, >= 0, rows summing to 1.
        is_identity: True when no decimation was done: the proxy is the full mesh,
            ``corner_ids[i] = (i, i, i)``, ``weights[i] = (1, 0, 0)`` and :meth:`apply` returns
            its input unchanged.
        num_source_vertices: N, the full mesh's vertex count (what :meth:`apply` expects).
        note: empty, or why the proxy is not what was asked for (decimation failed and the full
            mesh is used; components dropped; face budget exceeded).

    Equality is identity (the arrays make field-wise comparison ambiguous).
    """

    faces: np.ndarray
    corner_ids: np.ndarray
    weights: np.ndarray
    is_identity: bool
    num_source_vertices: int
    note: str = ""
    # Index and weight tensors per (device, dtype): apply() runs hundreds of times per training
    # step and should not copy the tables to the device each time.
    _tensors: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def num_vertices(self) -> int:
        """Np, the proxy's vertex count."""
        return int(self.corner_ids.shape[0])

    @property
    def num_faces(self) -> int:
        """Fp, the proxy's face count."""
        return int(self.faces.shape[0])

    def matrix(self) -> sp.csr_matrix:
        """The (Np, N) float64 sparse map from full-mesh to proxy vertices (3 entries a row)."""
        rows = np.repeat(np.arange(self.num_vertices), 3)
        return sp.csr_matrix(
            (self.weights.ravel(), (rows, self.corner_ids.ravel())),
            shape=(self.num_vertices, self.num_source_vertices),
        )

    def apply(self, verts: torch.Tensor) -> torch.Tensor:
        """Map full-mesh per-vertex values to the proxy's vertices.

        Args:
            verts: (B,N,C) or (N,C) floating tensor of full-mesh positions (any unit) or any other
                per-vertex attribute (colours, offsets).

        Returns:
            (B,Np,C) or (Np,C) tensor on verts' device and dtype, differentiable with respect to
            verts. For the identity proxy this is ``verts`` itself.
        """
        if verts.dim() not in (2, 3) or verts.shape[-2] != self.num_source_vertices:
            raise ValueError(
                f"expected verts of shape (B,{self.num_source_vertices},C) or "
                f"({self.num_source_vertices},C), got {tuple(verts.shape)}"
            )
        if self.is_identity:
            return verts
        key = (verts.device, verts.dtype)
        if key not in self._tensors:
            ids = torch.as_tensor(self.corner_ids.reshape(-1), device=verts.device)
            w = torch.as_tensor(self.weights, dtype=verts.dtype, device=verts.device)
            self._tensors[key] = (ids, w.unsqueeze(-1))
        ids, w = self._tensors[key]
        corners = verts.index_select(-2, ids).unflatten(-2, (self.num_vertices, 3))
        return (corners * w).sum(-2)


def render_proxy(vertices: np.ndarray, faces: np.ndarray, max_faces: int = 1300) -> RenderProxy:
    """Build the render proxy of a triangle mesh (see the module docstring for the method).

    Args:
        vertices: (N,3) float array of positions (any unit).
        faces: (F,3) int array of vertex indices in ``[0, N)``; degenerate triangles, open
            boundaries, several components and unreferenced vertices are all accepted.
        max_faces: face budget of the proxy (>= 4). Meshes with ``F <= max_faces`` get the
            identity proxy.

    Returns:
        A :class:`RenderProxy` with at most ``max_faces`` faces (unless its ``note`` says
        otherwise). Deterministic: the same input gives the same proxy.

    Raises:
        ValueError: for arrays of the wrong shape, non-finite vertices, out-of-range face
            indices or ``max_faces < 4``.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must have shape (N,3), got {v.shape}")
    if f.size == 0:
        f = f.reshape(0, 3)
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces must be an (F,3) integer array, got {f.shape} {f.dtype}")
    f = f.astype(np.int64)
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"face indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
    if not np.isfinite(v).all():
        raise ValueError("vertices contain NaN or infinite coordinates")
    if max_faces < 4:
        raise ValueError(f"max_faces must be >= 4, got {max_faces}")
    if len(f) <= max_faces:
        return _identity(v, f)
    try:
        return _decimated_proxy(v, f, max_faces)
    except _DecimationError as exc:
        return _identity(v, f, note=f"decimation failed ({exc}); the full mesh is rendered")


class _DecimationError(RuntimeError):
    """The mesh could not be decimated into a usable proxy."""


def _identity(vertices: np.ndarray, faces: np.ndarray, note: str = "") -> RenderProxy:
    n = len(vertices)
    weights = np.zeros((n, 3))
    weights[:, 0] = 1.0
    return RenderProxy(
        faces=faces.copy(),
        corner_ids=np.repeat(np.arange(n, dtype=np.int64)[:, None], 3, axis=1),
        weights=weights,
        is_identity=True,
        num_source_vertices=n,
        note=note,
    )


def _decimated_proxy(vertices: np.ndarray, faces: np.ndarray, max_faces: int) -> RenderProxy:
    points, first, merged = np.unique(vertices, axis=0, return_index=True, return_inverse=True)
    merged = merged.reshape(-1)
    mfaces = merged[faces]
    valid = (
        (mfaces[:, 0] != mfaces[:, 1])
        & (mfaces[:, 1] != mfaces[:, 2])
        & (mfaces[:, 2] != mfaces[:, 0])
    )
    if not valid.any():
        raise _DecimationError("every face has repeated corners")
    face_ids = np.nonzero(valid)[0]
    labels = _face_components(mfaces[face_ids], len(points))
    sizes = np.bincount(labels)
    budgets = _share_budget(sizes, max_faces)

    notes = []
    dropped = int((budgets == 0).sum())
    if dropped:
        notes.append(
            f"{dropped} of {len(sizes)} components dropped (those with the fewest faces, "
            f"{sizes[budgets == 0].sum()} in all): at up to {MIN_COMPONENT_FACES} faces each, "
            f"all components would exceed max_faces={max_faces}"
        )
    all_faces, all_ids, all_weights = [], [], []
    offset = 0
    with _quiet_vtk():
        for c in np.nonzero(budgets)[0]:
            comp = face_ids[labels == c]
            if budgets[c] >= len(comp):
                pfaces, ids, w = _kept_component(mfaces[comp], first)
            else:
                pfaces, ids, w = _decimated_component(
                    vertices, faces[comp], mfaces[comp], points, int(budgets[c])
                )
            all_faces.append(pfaces + offset)
            all_ids.append(ids)
            all_weights.append(w)
            offset += len(ids)
    proxy_faces = np.concatenate(all_faces)
    if len(proxy_faces) > max_faces:
        notes.append(f"{len(proxy_faces)} faces, above max_faces={max_faces}")
    return RenderProxy(
        faces=proxy_faces,
        corner_ids=np.concatenate(all_ids),
        weights=np.concatenate(all_weights),
        is_identity=False,
        num_source_vertices=len(vertices),
        note="; ".join(notes),
    )


def _face_components(faces: np.ndarray, num_points: int) -> np.ndarray:
    """(F,) component label of each face, labels 0..C-1 in order of first appearance."""
    rows = np.concatenate([faces[:, 0], faces[:, 1]])
    cols = np.concatenate([faces[:, 1], faces[:, 2]])
    graph = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_points, num_points))
    _, vertex_labels = connected_components(graph, directed=False)
    labels = vertex_labels[faces[:, 0]]
    _, order = np.unique(labels, return_index=True)
    relabel = np.empty(vertex_labels.max() + 1, dtype=np.int64)
    relabel[labels[np.sort(order)]] = np.arange(len(order))
    return relabel[labels]


def _share_budget(sizes: np.ndarray, max_faces: int) -> np.ndarray:
    """(C,) face budget per component, 0 for a dropped one.

    The largest components are admitted while their minimum sizes fit ``max_faces``; the budget
    is then filled from the smallest admitted component up, each taking its share of what is
    left in proportion to its size (all of itself if that is less), so that what small
    components do not need goes to the large ones.
    """
    by_size = np.lexsort((np.arange(len(sizes)), -sizes))
    minimum = np.minimum(sizes[by_size], MIN_COMPONENT_FACES)
    admitted = by_size[: max(1, int(np.searchsorted(np.cumsum(minimum), max_faces, "right")))]
    budgets = np.zeros(len(sizes), dtype=np.int64)
    left, faces_left = max_faces, int(sizes[admitted].sum())
    for c in admitted[::-1]:
        share = left * sizes[c] / faces_left
        budgets[c] = min(sizes[c], max(MIN_COMPONENT_FACES, int(share)))
        left -= budgets[c]
        faces_left -= sizes[c]
    return budgets


def _kept_component(
    mfaces: np.ndarray, first: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A component small enough to keep whole: its faces, each vertex weighted on itself."""
    used, local = np.unique(mfaces, return_inverse=True)
    ids = np.repeat(first[used][:, None], 3, axis=1)
    weights = np.zeros((len(used), 3))
    weights[:, 0] = 1.0
    return local.reshape(-1, 3), ids, weights


def _decimated_component(
    vertices: np.ndarray,
    faces: np.ndarray,
    mfaces: np.ndarray,
    points: np.ndarray,
    budget: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decimate one component to at most ``budget`` faces and map its vertices onto it.

    Args:
        vertices: (N,3) full-mesh positions; faces: (Fc,3) the component's full-mesh faces.
        mfaces: (Fc,3) the same faces in merged-point indices; points: the merged points.
        budget: the component's face budget.

    Returns:
        proxy faces (Fp,3) in local indices, corner ids (Np,3) and weights (Np,3).
    """
    import pyvista as pv

    used, local = np.unique(mfaces, return_inverse=True)
    local = local.reshape(-1, 3)
    surface = pv.PolyData(points[used], _vtk_cells(local))
    before = _edge_report(local)
    decimated = None
    for method in ("quadric", "pro"):
        candidate = _decimate(surface, method, budget)
        if candidate is not None and _keeps_topology(before, _edge_report(candidate[1])):
            decimated = candidate
            break
    if decimated is None:
        raise _DecimationError(
            f"a component of {len(faces)} faces could not be decimated to {budget} faces "
            "without changing its topology"
        )
    proxy_points, proxy_faces = decimated

    nearest = np.asarray(surface.find_closest_cell(proxy_points), dtype=np.int64).reshape(-1)
    corner_ids = faces[nearest]
    weights = _closest_barycentric(proxy_points, vertices[corner_ids])
    return proxy_faces, corner_ids, weights


def _decimate(surface, method: str, budget: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Decimated (points (Np,3) float64, triangles (Fp,3) int64) or None when VTK failed."""
    faces = surface.n_cells
    target = budget
    best = None
    for _ in range(_DECIMATION_ATTEMPTS):
        reduction = min(1.0 - target / faces, 0.9999)
        try:
            if method == "quadric":
                out = surface.decimate(reduction, boundary_constraints=True)
            else:
                out = surface.decimate_pro(
                    reduction,
                    preserve_topology=True,
                    splitting=False,
                    boundary_vertex_deletion=False,
                )
        except (RuntimeError, ValueError):
            return best
        if out.n_cells == 0:
            return best
        cells = np.asarray(out.faces, dtype=np.int64)
        if cells.size % 4 or not np.all(cells[::4] == 3):
            return best
        best = (np.asarray(out.points, dtype=np.float64), cells.reshape(-1, 4)[:, 1:].copy())
        if out.n_cells <= budget:
            break
        # VTK's target is a fraction of the input; aim lower by the factor it overshot.
        target = max(4, int(target * budget / out.n_cells))
    return best


def _vtk_cells(triangles: np.ndarray) -> np.ndarray:
    return np.hstack([np.full((len(triangles), 1), 3, dtype=np.int64), triangles]).ravel()


def _edge_report(triangles: np.ndarray) -> tuple[int, int]:
    """(boundary edges, non-manifold edges): undirected edges used by 1 and by > 2 faces."""
    edges = np.sort(
        np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1
    )
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return int((counts == 1).sum()), int((counts > 2).sum())


def _keeps_topology(before: tuple[int, int], after: tuple[int, int]) -> bool:
    """A closed component stays closed, a manifold one stays manifold."""
    return (before[0] > 0 or after[0] == 0) and (before[1] > 0 or after[1] == 0)


def _closest_barycentric(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of each point's closest point on its triangle.

    Args:
        points: (M,3) query points; triangles: (M,3,3) corners of each point's triangle.

    Returns:
        (M,3) float64 weights >= 0 summing to 1. Degenerate triangles (zero area, repeated
        corners) are handled as the segments or points they are.
    """
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    e0, e1, d = b - a, c - a, points - a
    g00 = np.einsum("ij,ij->i", e0, e0)
    g01 = np.einsum("ij,ij->i", e0, e1)
    g11 = np.einsum("ij,ij->i", e1, e1)
    r0 = np.einsum("ij,ij->i", d, e0)
    r1 = np.einsum("ij,ij->i", d, e1)
    det = g00 * g11 - g01 * g01
    flat = det <= 1e-12 * g00 * g11
    safe = np.where(flat, 1.0, det)
    s = (g11 * r0 - g01 * r1) / safe
    t = (g00 * r1 - g01 * r0) / safe
    inside = ~flat & (s >= 0) & (t >= 0) & (s + t <= 1)
    weights = np.stack([1.0 - s - t, s, t], axis=1)

    # Outside the triangle (or on a flat one) the closest point lies on one of its edges.
    outside = ~inside
    if outside.any():
        p = points[outside]
        corners = triangles[outside]
        best_dist = np.full(len(p), np.inf)
        best = np.zeros((len(p), 3))
        for i, j in ((0, 1), (1, 2), (2, 0)):
            u, w = corners[:, i], corners[:, j]
            edge = w - u
            length2 = np.einsum("ij,ij->i", edge, edge)
            along = np.einsum("ij,ij->i", p - u, edge) / np.maximum(length2, 1e-300)
            along = np.clip(along, 0.0, 1.0)
            dist = np.linalg.norm(u + along[:, None] * edge - p, axis=1)
            closer = dist < best_dist
            best_dist[closer] = dist[closer]
            best[closer] = 0.0
            best[closer, i] = 1.0 - along[closer]
            best[closer, j] = along[closer]
        weights[outside] = best
    weights = np.clip(weights, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


@contextlib.contextmanager
def _quiet_vtk() -> Iterator[None]:
    """Silence VTK's warnings on degenerate input: failures surface as the proxy's note."""
    from vtkmodules.vtkCommonCore import vtkObject

    previous = vtkObject.GetGlobalWarningDisplay()
    vtkObject.GlobalWarningDisplayOff()
    try:
        yield
    finally:
        vtkObject.SetGlobalWarningDisplay(previous)
