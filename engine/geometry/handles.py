"""Handles for Laplacian editing: geodesic distances, farthest-point handle choice, and the
handle dependency matrix ``A`` (K x N, softmax over vertices) with the authors' initialisation.

Geodesic distance here is the shortest path along mesh edges (Dijkstra on the edge graph with
Euclidean edge lengths): it over-estimates the true surface geodesic by a few percent on
irregular meshes, which is irrelevant for choosing well-spread handles and initial weights.
Vertices in another connected component than a source (or isolated vertices) are at distance
``inf``; :func:`init_logits` turns that into a finite, very negative logit, so the dependency
matrix gives them (numerically) zero weight.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import dijkstra
from torch import Tensor

from engine.core.errors import MeshError

#: Exponent of the authors' inverse-distance initialisation ``A ~ 1 / d**16``.
INIT_POWER = 16.0
#: Logit gap below a row's smallest finite logit given to unreachable vertices.
UNREACHABLE_GAP = 1000.0


def _edge_graph(vertices: Tensor | np.ndarray, faces: Tensor | np.ndarray) -> sp.csr_matrix:
    v = torch.as_tensor(vertices).detach().to("cpu", torch.float64).numpy()
    f = torch.as_tensor(faces).detach().to("cpu", torch.int64).numpy()
    if v.ndim != 2 or v.shape[1] != 3:
        raise MeshError(f"expected vertices of shape (N, 3), got {tuple(v.shape)}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise MeshError(f"expected faces of shape (F, 3), got {tuple(f.shape)}")
    n = v.shape[0]
    if f.size and (f.min() < 0 or f.max() >= n):
        raise MeshError(f"face index out of range: expected 0 <= index < {n}")
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    edges = edges[edges[:, 0] != edges[:, 1]]
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    length = np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1)
    # csgraph treats explicit zeros as missing edges; coincident vertices are still neighbours.
    length = np.maximum(length, np.finfo(np.float64).tiny)
    graph = sp.coo_matrix((length, (edges[:, 0], edges[:, 1])), shape=(n, n))
    return (graph + graph.T).tocsr()


def geodesic_distances(vertices: Tensor, faces: Tensor, sources: Tensor) -> Tensor:
    """Edge-graph geodesic distances from source vertices.

    Args:
        vertices: (N,3) float positions.
        faces: (F,3) long triangle indices.
        sources: (K,) long vertex ids.

    Returns:
        (K,N) float64 tensor on the device of ``vertices``: shortest path lengths along mesh
        edges, in the units of ``vertices``; ``0`` at the source, ``inf`` for vertices that
        cannot be reached (other connected components, isolated vertices).

    Raises:
        MeshError: malformed arrays.
        ValueError: a source id outside ``[0, N)``.
    """
    graph = _edge_graph(vertices, faces)
    src = torch.as_tensor(sources).detach().to("cpu", torch.int64).reshape(-1).numpy()
    n = graph.shape[0]
    if src.size and (src.min() < 0 or src.max() >= n):
        raise ValueError(f"source vertex ids must lie in [0, {n}), got {src.min()}..{src.max()}")
    dist = dijkstra(graph, directed=False, indices=src)
    device = torch.as_tensor(vertices).device
    return torch.as_tensor(np.atleast_2d(dist), dtype=torch.float64, device=device)


def farthest_point_handles(vertices: Tensor, faces: Tensor, k: int, seed: int = 0) -> Tensor:
    """Choose ``k`` well-spread handle vertices by farthest-point sampling on geodesic distance.

    The first handle is drawn with ``numpy.random.default_rng(seed)`` among the vertices used
    by faces; each next one is the vertex farthest (edge-graph geodesic) from all chosen so far,
    ties broken by the lowest id. Unreachable vertices are infinitely far, so every connected
    component receives a handle before any component receives a second one (as long as
    ``k`` allows). Vertices used by no face are never chosen.

    Args:
        vertices: (N,3) float positions.
        faces: (F,3) long triangle indices.
        k: number of handles, ``1 <= k <= number of vertices used by faces``.
        seed: seed of the first pick; the result is deterministic for a given seed.

    Returns:
        (k,) int64 tensor of distinct vertex ids, on the device of ``vertices``.

    Raises:
        ValueError: ``k`` out of range.
    """
    graph = _edge_graph(vertices, faces)
    n = graph.shape[0]
    f = torch.as_tensor(faces).detach().to("cpu", torch.int64).numpy()
    used = np.zeros(n, dtype=bool)
    used[f.reshape(-1)] = True
    n_used = int(used.sum())
    if not isinstance(k, (int, np.integer)) or k < 1 or k > n_used:
        raise ValueError(
            f"number of handles must be an integer in [1, {n_used}] (vertices used by faces), "
            f"got {k}"
        )
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(used)
    chosen = [int(candidates[rng.integers(len(candidates))])]
    nearest = np.full(n, np.inf)
    nearest[~used] = -np.inf  # never pick vertices outside every face
    for _ in range(1, k):
        d = dijkstra(graph, directed=False, indices=chosen[-1])
        nearest = np.minimum(nearest, d)
        nearest[chosen] = -np.inf
        chosen.append(int(np.argmax(nearest)))
    device = torch.as_tensor(vertices).device
    return torch.tensor(chosen, dtype=torch.int64, device=device)


def init_logits(distances: Tensor, eps: float = 1e-3) -> Tensor:
    """The authors' initial dependency logits ``log(1 / d**16) = -16 log(d + eps)``.

    Args:
        distances: (K,N) float geodesic distances from each handle (mesh units), ``inf`` for
            unreachable vertices.
        eps: added to the distance so that the handle vertex itself gets a finite logit
            ``-16 log(eps)`` (mesh units; 1e-3 suits meshes about one unit across).

    Returns:
        (K,N) tensor of the dtype/device of ``distances`` (float64 for integer input), all
        finite: unreachable vertices get the row's smallest finite logit minus 1000, i.e. an
        exactly zero softmax weight, while the row stays usable.
    """
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    d = torch.as_tensor(distances)
    if not d.is_floating_point():
        d = d.to(torch.float64)
    if (d < 0).any() or torch.isnan(d).any():
        raise ValueError("distances must be >= 0 and not NaN")
    logits = -INIT_POWER * torch.log(d + eps)
    finite = torch.isfinite(logits)
    floor = torch.where(finite, logits, torch.full_like(logits, torch.inf)).amin(dim=-1)
    floor = torch.where(torch.isfinite(floor), floor, torch.zeros_like(floor)) - UNREACHABLE_GAP
    return torch.where(finite, logits, floor.unsqueeze(-1).expand_as(logits))


def handle_spacing(distances: Tensor, handle_ids: Tensor) -> float:
    """Median geodesic distance from each handle to its nearest other handle (mesh units).

    Args:
        distances: (K,N) geodesic distances from each handle to every vertex.
        handle_ids: (K,) the handles' vertex ids.

    Returns:
        The spacing, or the median finite distance of the rows when there is one handle.
    """
    d = torch.as_tensor(distances, dtype=torch.float64)
    between = d[:, torch.as_tensor(handle_ids, device=d.device)].clone()
    between.fill_diagonal_(torch.inf)
    nearest = between.amin(dim=1)
    nearest = nearest[torch.isfinite(nearest)]
    if nearest.numel():
        return float(nearest.median())
    finite = d[torch.isfinite(d) & (d > 0)]
    return float(finite.median()) if finite.numel() else 1.0


def gaussian_logits(distances: Tensor, width: float) -> Tensor:
    """Dependency logits ``-(d / width)^2 / 2``: each handle blends the vertices within about
    ``width`` of it (a Gaussian of geodesic distance), the parameterisation learned from images.

    Unlike :func:`init_logits` (``-16 log d``, whose rows are numerically one-hot, so that the
    softmax passes no gradient to the other vertices' logits), every vertex near a handle has a
    weight the gradient can change, and the logits depend on the mesh only through ``d / width``:
    with ``width`` a fraction of :func:`handle_spacing`, the same for a mesh in millimetres or
    metres, coarse or fine.

    Args:
        distances: (K,N) geodesic distances (mesh units), ``inf`` for unreachable vertices.
        width: length scale in mesh units (> 0).

    Returns:
        (K,N) finite logits; unreachable vertices get the row's smallest finite logit minus
        :data:`UNREACHABLE_GAP` (zero weight).
    """
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    d = torch.as_tensor(distances)
    if not d.is_floating_point():
        d = d.to(torch.float64)
    if (d < 0).any() or torch.isnan(d).any():
        raise ValueError("distances must be >= 0 and not NaN")
    logits = -0.5 * (d / width) ** 2
    finite = torch.isfinite(logits)
    floor = torch.where(finite, logits, torch.full_like(logits, torch.inf)).amin(dim=-1)
    floor = torch.where(torch.isfinite(floor), floor, torch.zeros_like(floor)) - UNREACHABLE_GAP
    return torch.where(finite, logits, floor.unsqueeze(-1).expand_as(logits))


def dependency_matrix(logits: Tensor) -> Tensor:
    """Right-stochastic handle dependency matrix ``A = softmax(logits)`` over vertices.

    Args:
        logits: (K,N) float.

    Returns:
        (K,N) tensor, entries >= 0, each row summing to 1 (differentiable).
    """
    return torch.softmax(logits, dim=-1)
