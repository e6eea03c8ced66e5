"""The cotangent Laplacian of a triangle mesh, the operator that Laplacian editing preserves."""

from __future__ import annotations

import torch
from torch import Tensor

from engine.core.errors import MeshError

#: Bound on |cot| of a triangle angle: angles within ~1e-5 rad of 0 or pi are clamped here so
#: that needles and zero-area triangles keep the Laplacian finite.
COT_BOUND = 1e5


def cotangent_laplacian(vertices: Tensor, faces: Tensor) -> Tensor:
    """Cotangent Laplacian ``L = D - W`` of a triangle mesh.

    ``W_ij = (cot a_ij + cot b_ij) / 2`` over the (one or two) angles opposite edge ij, and
    ``D = diag(sum_j W_ij)``. Sign convention: ``L`` is positive semi-definite (the stiffness
    matrix of piecewise-linear FEM; ``x^T L x`` is the Dirichlet energy), symmetric, with rows and
    columns summing to zero; no mass matrix. Every face contributes, so duplicate faces count
    twice. Cotangents are clamped to ``[-COT_BOUND, COT_BOUND]`` and a zero-area triangle
    with coincident corners contributes 0, so the result is finite for any finite input.
    Vertices in no face get a row (and column) of zeros.

    Args:
        vertices: (N,3) float tensor.
        faces: (F,3) long tensor, indices in ``[0, N)``.

    Returns:
        (N,N) coalesced sparse COO tensor of the dtype and device of ``vertices``.
    """
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise MeshError(f"expected vertices of shape (N, 3), got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise MeshError(f"expected faces of shape (F, 3), got {tuple(faces.shape)}")
    n = vertices.shape[0]
    faces = faces.to(device=vertices.device, dtype=torch.int64)
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= n):
        raise MeshError(f"face index out of range: expected 0 <= index < {n}")
    tiny = torch.finfo(vertices.dtype).tiny
    rows, cols, vals = [], [], []
    for corner in range(3):
        i = faces[:, corner]
        j = faces[:, (corner + 1) % 3]
        k = faces[:, (corner + 2) % 3]
        u = vertices[j] - vertices[i]
        v = vertices[k] - vertices[i]
        dot = (u * v).sum(-1)
        cross = torch.linalg.vector_norm(torch.linalg.cross(u, v), dim=-1)
        scale = torch.linalg.vector_norm(u, dim=-1) * torch.linalg.vector_norm(v, dim=-1)
        # Relative floor on |u x v| so the clamp, not an inf, decides for flat triangles.
        denom = torch.maximum(cross, scale * (1.0 / COT_BOUND) ** 2).clamp_min(tiny)
        half_cot = 0.5 * (dot / denom).clamp(-COT_BOUND, COT_BOUND)
        rows += [j, k, j, k]
        cols += [k, j, j, k]
        vals += [-half_cot, -half_cot, half_cot, half_cot]
    indices = torch.stack([torch.cat(rows), torch.cat(cols)])
    values = torch.cat(vals)
    return torch.sparse_coo_tensor(
        indices,
        values,
        (n, n),
        dtype=vertices.dtype,
        device=vertices.device,
        check_invariants=False,  # indices are in range by the check above
    ).coalesce()
