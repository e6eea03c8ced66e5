"""Shaders: turn the hard rasteriser's :class:`~engine.render.rasterizer.Fragments` into images of
per-vertex attributes (colour), a bilinearly sampled texture or optical flow, and tell which
vertices are visible.

The fragment pass fixes which face each pixel sees (piecewise constant, no gradient); the
shaders recompute the barycentric coordinates of the covered pixel centres from the vertices,
so their images are differentiable in the vertices as well as in the attributes or texture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.render.rasterizer import Fragments, barycentric, check_mesh, pixel_centres


def _check_fragments(
    fragments: Fragments, verts: torch.Tensor, faces: torch.Tensor
) -> torch.Tensor:
    """Validate the mesh against the fragments it was rasterised from; return int64 faces."""
    faces = check_mesh(verts, faces)
    if fragments.pix_to_face.dim() != 3:
        raise ValueError(
            f"fragments.pix_to_face must be (B,H,W), got {tuple(fragments.pix_to_face.shape)}"
        )
    if fragments.pix_to_face.shape[0] != verts.shape[0]:
        raise ValueError(
            f"fragments hold {fragments.pix_to_face.shape[0]} images but verts "
            f"{verts.shape[0]} meshes"
        )
    if fragments.pix_to_face.device != verts.device:
        raise ValueError(
            f"fragments are on {fragments.pix_to_face.device} but verts on {verts.device}"
        )
    if fragments.pix_to_face.numel() and int(fragments.pix_to_face.max()) >= faces.shape[0]:
        raise ValueError("fragments index faces beyond the given face list")
    return faces


def _covered(fragments: Fragments, verts: torch.Tensor, faces: torch.Tensor):
    """The covered pixels, the flat vertex indices of their faces' corners and their barycentric
    coordinates recomputed (with gradient) from ``verts``.

    Returns:
        index (M,) int64 into B*H*W, corners (M,3) int64 into ``verts.reshape(-1, 3)``,
        bary (M,3).
    """
    height, width = fragments.pix_to_face.shape[1:]
    flat_face = fragments.pix_to_face.reshape(-1)
    index = torch.nonzero(flat_face >= 0).squeeze(1)
    frame = index // (height * width)
    corners = faces.index_select(0, flat_face.index_select(0, index))
    corners = corners + (frame * verts.shape[1]).unsqueeze(-1)
    tri = _gather(verts[..., :2].reshape(-1, 2), corners)
    bary = barycentric(tri, pixel_centres(index, (height, width), verts.dtype))
    return index, corners, bary


def _gather(rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``rows[index]`` for an (M,3) index, through index_select: its backward is an index_add,
    much faster on the CPU than advanced indexing's index_put."""
    return rows.index_select(0, index.reshape(-1)).view(*index.shape, rows.shape[-1])


def _scatter_image(fragments: Fragments, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(M,C) values at flat pixel ``index`` -> (B,H,W,C) image, 0 elsewhere (differentiable)."""
    shape = fragments.pix_to_face.shape
    image = values.new_zeros(shape.numel(), values.shape[-1]).index_copy(0, index, values)
    return image.view(*shape, values.shape[-1])


def interpolate_vertex_attributes(
    fragments: Fragments, verts: torch.Tensor, faces: torch.Tensor, attrs: torch.Tensor
) -> torch.Tensor:
    """Barycentric interpolation of per-vertex attributes (e.g. colours) at the visible surface.

    Args:
        fragments: from :func:`~engine.render.rasterizer.rasterize` of ``verts``, ``faces``.
        verts: (B,N,3) screen-space vertices (pixels, depth); only x and y are used here.
        faces: (F,3) integer vertex indices, as rasterised.
        attrs: (B,N,C) attributes, same dtype as ``verts``.

    Returns:
        (B,H,W,C) image, 0 on the background; differentiable in ``verts`` and ``attrs``.
    """
    faces = _check_fragments(fragments, verts, faces)
    if attrs.dim() != 3 or attrs.shape[:2] != verts.shape[:2]:
        raise ValueError(
            f"attrs must have shape (B,N,C) = {tuple(verts.shape[:2])} + (C,), "
            f"got {tuple(attrs.shape)}"
        )
    if attrs.dtype != verts.dtype or attrs.device != verts.device:
        raise ValueError(
            f"attrs must be {verts.dtype} on {verts.device}, got {attrs.dtype} on {attrs.device}"
        )
    index, corners, bary = _covered(fragments, verts, faces)
    values = (bary.unsqueeze(-1) * _gather(attrs.reshape(-1, attrs.shape[-1]), corners)).sum(1)
    return _scatter_image(fragments, index, values)


def sample_texture(
    fragments: Fragments,
    verts: torch.Tensor,
    faces: torch.Tensor,
    uv: torch.Tensor,
    uv_faces: torch.Tensor,
    texture: torch.Tensor,
    *,
    v_up: bool = True,
) -> torch.Tensor:
    """Texture the visible surface: interpolate texture coordinates, then sample bilinearly.

    Texture coordinates run over [0,1] x [0,1] of the texture's extent (``grid_sample`` with
    ``align_corners=False``: u = 0 is the left edge of the first texel column, not its centre);
    coordinates outside repeat the border texels.

    Args:
        fragments: from :func:`~engine.render.rasterizer.rasterize` of ``verts``, ``faces``.
        verts: (B,N,3) screen-space vertices; only x and y are used here.
        faces: (F,3) integer vertex indices, as rasterised.
        uv: (U,2) texture coordinates (u right; v up when ``v_up``, as OBJ's ``vt``, else v
            down, i.e. v = 0 is the texture's first row), same dtype as ``verts``.
        uv_faces: (F,3) integer indices into ``uv`` per face corner (OBJ's ``f v/vt``).
        texture: (B,C,Ht,Wt) or (1,C,Ht,Wt) texture images, same dtype as ``verts``.
        v_up: whether v = 1 is the texture's top row (True) or bottom row (False).

    Returns:
        (B,H,W,C) image, 0 on the background; differentiable in ``texture``, ``uv`` and
        ``verts``.
    """
    faces = _check_fragments(fragments, verts, faces)
    if uv.dim() != 2 or uv.shape[-1] != 2:
        raise ValueError(f"uv must have shape (U,2), got {tuple(uv.shape)}")
    if uv_faces.shape != faces.shape or uv_faces.dtype.is_floating_point:
        raise ValueError(
            f"uv_faces must be integer indices of shape {tuple(faces.shape)}, "
            f"got {uv_faces.dtype} {tuple(uv_faces.shape)}"
        )
    uv_faces = uv_faces.long().to(verts.device)
    if uv_faces.numel() and (int(uv_faces.min()) < 0 or int(uv_faces.max()) >= uv.shape[0]):
        raise ValueError(f"uv_faces must index [0, {uv.shape[0]})")
    batch = verts.shape[0]
    if texture.dim() != 4 or texture.shape[0] not in (1, batch):
        raise ValueError(
            f"texture must have shape ({batch} or 1, C, Ht, Wt), got {tuple(texture.shape)}"
        )
    for name, t in (("uv", uv), ("texture", texture)):
        if t.dtype != verts.dtype or t.device != verts.device:
            raise ValueError(
                f"{name} must be {verts.dtype} on {verts.device}, got {t.dtype} on {t.device}"
            )
    index, _, bary = _covered(fragments, verts, faces)
    face = fragments.pix_to_face.reshape(-1).index_select(0, index)
    coords = (bary.unsqueeze(-1) * _gather(uv, uv_faces.index_select(0, face))).sum(1)  # (M,2)
    # grid_sample's grid: x = -1 left edge, y = -1 top edge of the texture.
    v = 1.0 - coords[:, 1] if v_up else coords[:, 1]
    grid = torch.stack([2.0 * coords[:, 0] - 1.0, 2.0 * v - 1.0], -1)
    grid = _scatter_image(fragments, index, grid)
    sampled = F.grid_sample(
        texture.expand(batch, -1, -1, -1),
        grid,
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    return (sampled * fragments.mask.unsqueeze(1)).permute(0, 2, 3, 1)


def render_flow(
    fragments: Fragments, verts_a: torch.Tensor, verts_b: torch.Tensor, faces: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Optical flow of the visible surface of mesh A when its vertices move to ``verts_b``.

    Each covered pixel gets the screen displacement of the surface point of A it sees:
    the barycentric interpolation of ``(verts_b - verts_a)[..., :2]``.

    Args:
        fragments: from :func:`~engine.render.rasterizer.rasterize` of ``verts_a``, ``faces``.
        verts_a: (B,N,3) screen-space vertices of the first frame (pixels, depth).
        verts_b: (B,N,3) the same vertices in the second frame.
        faces: (F,3) integer vertex indices, shared by both frames.

    Returns:
        flow (B,H,W,2) in pixels (x right, y down), 0 on the background, differentiable in
        both vertex sets; mask (B,H,W) bool, the covered pixels.
    """
    if verts_b.shape != verts_a.shape:
        raise ValueError(
            f"verts_b must have the shape of verts_a {tuple(verts_a.shape)}, "
            f"got {tuple(verts_b.shape)}"
        )
    motion = (verts_b - verts_a)[..., :2]
    return interpolate_vertex_attributes(fragments, verts_a, faces, motion), fragments.mask


def vertex_visibility(
    fragments: Fragments, verts: torch.Tensor, faces: torch.Tensor, tol: float | None = None
) -> torch.Tensor:
    """Which vertices the camera sees.

    A vertex is visible when it lies inside the image (0 <= x < W, 0 <= y < H) and is not
    behind the visible surface at its pixel by more than ``tol``. The visible surface's depth
    is taken at the vertex's own (x, y) on the plane of the face the z-buffer holds at that
    pixel, not at the pixel centre: a vertex of that face then compares exactly, and steep
    faces near the outline do not hide their own vertices. A vertex whose pixel centre is
    background is visible: so is a vertex just behind the outline (within about a pixel of
    it) when its pixel centre falls outside the rendered mesh.

    Args:
        fragments: from :func:`~engine.render.rasterizer.rasterize` of ``verts``, ``faces``.
        verts: (B,N,3) screen-space vertices (pixels, depth; larger depth is farther).
        faces: (F,3) integer vertex indices, as rasterised.
        tol: depth tolerance in the units of z; default 1 % of each mesh's depth extent
            (max z - min z over its vertices), which absorbs the curvature between a vertex
            and a neighbouring face's plane yet is far thinner than most occluders.

    Returns:
        (B,N) bool.
    """
    faces = _check_fragments(fragments, verts, faces)
    verts = verts.detach()
    batch, nverts = verts.shape[:2]
    height, width = fragments.pix_to_face.shape[1:]
    x, y, z = verts.unbind(-1)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    col = x.clamp(0, width - 1).floor().long()
    row = y.clamp(0, height - 1).floor().long()
    frame = torch.arange(batch, device=verts.device).unsqueeze(-1)
    face = fragments.pix_to_face.reshape(-1)[(frame * height + row) * width + col]  # (B,N)
    if faces.shape[0] == 0:
        return inside
    if tol is None:
        tol_b = 0.01 * (z.amax(1, keepdim=True) - z.amin(1, keepdim=True))
    else:
        tol_b = torch.full((batch, 1), float(tol), dtype=verts.dtype, device=verts.device)
    corners = faces[face.clamp_min(0)] + (frame * nverts).unsqueeze(-1)  # (B,N,3)
    tri = verts.reshape(-1, 3)[corners]  # (B,N,3,3)
    weights = barycentric(tri[..., :2], verts[..., :2])
    surface = (weights * tri[..., 2]).sum(-1)
    # Rounding slack: a corner's own barycentric weight is 1 only up to a few ulps.
    slack = 16 * torch.finfo(verts.dtype).eps * surface.abs()
    return inside & ((face < 0) | (z <= surface + tol_b + slack))
