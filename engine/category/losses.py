"""The training losses of seed 001, section 2: data terms on the rendered mesh and shape priors.

Every loss is batched torch and returns one value per sample, a ``(B,)`` tensor, so that the
camera multiplex can weight each hypothesis by its own loss (the trainer calls them with
``B = instances x hypotheses``). Image-space inputs follow :mod:`engine.render.cameras`: pixels,
x right, y down, pixel (row i, column j) centred at ``(j + 0.5, i + 0.5)``. Each loss is made
unitless so that its weight means the same at any image size or template scale:

* :func:`silhouette_loss`: mask L1 (a fraction of the pixels) plus the rendered mask times the
  outside distance transform in units of the image size.
* :func:`boundary_loss`: squared distance of mask-boundary pixels to the nearest visible projected
  vertex, in units of ``image_size ** 2``.
* :func:`texture_loss`: per-channel L1 in the units of the colours (e.g. ``[0, 1]``).
* :func:`motion_loss`, :func:`keypoint_loss`: 2D L1 distances in units of the image size.
* :func:`edge_length_loss`, :func:`laplacian_smoothness_loss`, :func:`offset_loss`: shape priors,
  scale-free (unchanged when the template and the shapes are scaled together).
* :func:`camera_loss`: the pull of predicted cameras to the multiplex's best camera.

The data preparation :func:`mask_distance_transform` and :func:`mask_boundary_points` run once
per image when the data is loaded (numpy / scipy on the CPU) and return torch tensors.

Degenerate inputs (no visible vertex, an empty boundary, zero flow, no visible keypoint) give a
loss of 0 with finite (zero) gradients rather than NaN. Wrong shapes are programmer errors and
raise ``ValueError``; data a user supplied (an empty mask) raises
:class:`~engine.core.errors.InputError`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from engine.core.errors import InputError, MeshError
from engine.render.cameras import normalize_quaternion

#: Elements of one (batch, boundary-chunk, vertices) distance block in :func:`boundary_loss`;
#: 8 x 1000 x 2000 distances would be 64 MB of float32 at once.
_CDIST_BLOCK = 1 << 22


# --------------------------------------------------------------------------- checks


def _check_shape(name: str, tensor: Tensor, shape: tuple[int | None, ...]) -> None:
    """``tensor.shape`` must match ``shape``; None entries match any size."""
    ok = tensor.dim() == len(shape) and all(
        want is None or have == want for have, want in zip(tensor.shape, shape)
    )
    if not ok:
        spec = ", ".join("*" if s is None else str(s) for s in shape)
        raise ValueError(f"expected {name} of shape ({spec}), got {tuple(tensor.shape)}")


def _check_image_size(image_size: float) -> float:
    size = float(image_size)
    if not size > 0:
        raise ValueError(f"expected a positive image_size in pixels, got {image_size!r}")
    return size


def _masks_numpy(masks: Tensor | np.ndarray) -> np.ndarray:
    """(B, H, W) bool numpy of a bool or float mask batch (float masks: object where > 0.5)."""
    if isinstance(masks, Tensor):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"expected masks of shape (B, H, W), got {masks.shape}")
    return masks if masks.dtype == np.bool_ else masks > 0.5


def _on(values: Tensor) -> Tensor:
    """A bool or [0, 1] mask as bool (float masks: on where > 0.5)."""
    return values if values.dtype == torch.bool else values > 0.5


# --------------------------------------------------------------------------- data preparation


def mask_distance_transform(masks: Tensor | np.ndarray) -> Tensor:
    """Distance from each pixel to the nearest object pixel, once per image at load time.

    Args:
        masks: (B, H, W) bool or float masks (float: the object where > 0.5), torch or numpy.

    Returns:
        (B, H, W) float32 torch tensor on the CPU: the Euclidean distance in PIXELS between the
        pixel's centre and the nearest object pixel's centre; 0 on the object.

    Raises:
        InputError: a mask has no object pixel (its distance would be undefined).
    """
    on = _masks_numpy(masks)
    out = np.empty(on.shape, dtype=np.float32)
    for b, mask in enumerate(on):
        if not mask.any():
            raise InputError(f"mask {b} has no object pixel", field="masks")
        # distance_transform_edt measures from non-zero pixels to the nearest zero: the object.
        out[b] = ndimage.distance_transform_edt(~mask)
    return torch.from_numpy(out)


def mask_boundary_points(
    masks: Tensor | np.ndarray, max_points: int = 1000, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Object pixels that touch the background, subsampled, once per image at load time.

    A boundary pixel is an object pixel with a background pixel among its 4 neighbours. The
    outside of the image does not count as background: where the crop cuts the object the mask
    edge is not the object's outline.

    Args:
        masks: (B, H, W) bool or float masks (float: the object where > 0.5), torch or numpy.
        max_points: at most this many points per image; images with more are subsampled
            without replacement by ``numpy.random.default_rng(seed)``, the same draw for an
            image wherever it sits in the batch, and kept in raster order.
        seed: seed of that draw.

    Returns:
        points: (B, M, 2) float32 pixel-centre coordinates (x, y) in pixels, where
            ``M = max(1, min(max_points, largest boundary count))``; padding rows are 0.
        valid: (B, M) bool, False on padding.
    """
    if max_points < 1:
        raise ValueError(f"expected max_points >= 1, got {max_points}")
    on = _masks_numpy(masks)
    padded = np.pad(on, ((0, 0), (1, 1), (1, 1)), mode="edge")
    background_near = (
        ~padded[:, :-2, 1:-1] | ~padded[:, 2:, 1:-1] | ~padded[:, 1:-1, :-2] | ~padded[:, 1:-1, 2:]
    )
    boundary = on & background_near
    per_image = []
    for mask in boundary:
        rows, cols = np.nonzero(mask)
        if rows.size > max_points:
            keep = np.sort(np.random.default_rng(seed).choice(rows.size, max_points, replace=False))
            rows, cols = rows[keep], cols[keep]
        per_image.append(np.stack((cols + 0.5, rows + 0.5), axis=-1))
    count = max([1] + [p.shape[0] for p in per_image])
    points = np.zeros((on.shape[0], count, 2), dtype=np.float32)
    valid = np.zeros((on.shape[0], count), dtype=bool)
    for b, p in enumerate(per_image):
        points[b, : p.shape[0]] = p
        valid[b, : p.shape[0]] = True
    return torch.from_numpy(points), torch.from_numpy(valid)


# --------------------------------------------------------------------------- data terms


def silhouette_loss(
    rendered: Tensor, masks: Tensor, dt: Tensor, *, w_l1: float = 1.0, w_dt: float = 1.0
) -> Tensor:
    """Mask L1 plus the rendered silhouette's mass outside the mask, weighted by distance.

    ``w_l1 * mean |rendered - mask| + w_dt * mean(rendered * dt / max(H, W))`` over the pixels.
    The first term is a fraction of the image's pixels; the second is the rendered coverage
    times its distance to the mask in units of the image side (``max(H, W)`` pixels), averaged
    over the pixels, so neither changes with the resolution. Differentiable in ``rendered``.

    Args:
        rendered: (B, H, W) soft silhouette in [0, 1].
        masks: (B, H, W) data masks, bool or float in [0, 1] (used as given: soft masks allowed).
        dt: (B, H, W) :func:`mask_distance_transform` of the masks, in pixels.
        w_l1, w_dt: weights of the two terms.

    Returns:
        (B,) loss per sample.
    """
    _check_shape("rendered", rendered, (None, None, None))
    _check_shape("masks", masks, tuple(rendered.shape))
    _check_shape("dt", dt, tuple(rendered.shape))
    masks = masks.to(rendered.dtype)
    dt = dt.to(rendered.dtype)
    size = float(max(rendered.shape[1:]))
    l1 = (rendered - masks).abs().mean(dim=(1, 2))
    outside = (rendered * dt).mean(dim=(1, 2)) / size
    return w_l1 * l1 + w_dt * outside


def boundary_loss(
    verts_screen: Tensor,
    vertex_visible: Tensor,
    boundary: Tensor,
    valid: Tensor,
    image_size: float,
) -> Tensor:
    """Mean squared distance of mask-boundary pixels to the nearest visible projected vertex.

    The authors' boundary term: every boundary pixel wants a visible vertex nearby, which pulls
    the mesh out over thin parts (legs, tails) whose mask L1 gradient is weak. Distances are 2D
    in pixels; the result is divided by ``image_size ** 2`` (unitless). The nearest vertex is
    searched without gradient (chunked ``torch.cdist``); the squared distance to it is then
    recomputed with gradient, which is the gradient of the min. Differentiable in
    ``verts_screen``. 0 for a sample with no visible vertex or no valid boundary point.

    Args:
        verts_screen: (B, N, 3) projected vertices (x, y pixels, depth); depth is ignored.
        vertex_visible: (B, N) bool, e.g. from :func:`engine.render.shading.vertex_visibility`.
        boundary: (B, M, 2) boundary pixel centres (x, y) from :func:`mask_boundary_points`.
        valid: (B, M) bool, False on padding.
        image_size: image side in pixels.

    Returns:
        (B,) loss per sample.
    """
    _check_shape("verts_screen", verts_screen, (None, None, 3))
    batch, nverts = verts_screen.shape[:2]
    _check_shape("vertex_visible", vertex_visible, (batch, nverts))
    _check_shape("boundary", boundary, (batch, None, 2))
    _check_shape("valid", valid, (batch, boundary.shape[1]))
    size = _check_image_size(image_size)
    xy = verts_screen[..., :2]
    boundary = boundary.to(xy.dtype)
    visible = vertex_visible.to(device=xy.device, dtype=torch.bool)
    valid = valid.to(device=xy.device, dtype=torch.bool)
    if nverts == 0:
        return xy.sum(dim=(1, 2)) * 0.0
    npoints = boundary.shape[1]
    nearest = torch.zeros(batch, npoints, dtype=torch.long, device=xy.device)
    if npoints:
        chunk = max(1, _CDIST_BLOCK // max(1, batch * nverts))
        hidden = torch.where(visible, 0.0, torch.inf).to(xy.dtype).unsqueeze(1)  # (B, 1, N)
        with torch.no_grad():
            for start in range(0, npoints, chunk):
                part = boundary[:, start : start + chunk]
                nearest[:, start : start + chunk] = (torch.cdist(part, xy) + hidden).argmin(-1)
    closest = torch.gather(xy, 1, nearest.unsqueeze(-1).expand(-1, -1, 2))  # (B, M, 2)
    squared = ((closest - boundary) ** 2).sum(-1)
    use = valid & visible.any(dim=1, keepdim=True)
    count = use.sum(dim=1).clamp_min(1)
    return torch.where(use, squared, 0.0).sum(dim=1) / count / size**2


def texture_loss(rendered_rgb: Tensor, image: Tensor, mask: Tensor, coverage: Tensor) -> Tensor:
    """Masked L1 between the rendered and the data colours.

    Over the pixels where the data mask (> 0.5 when float) and the rendered coverage are both
    on: the absolute difference averaged over the three channels, summed, divided by the number
    of those pixels; 0 where there is none. In the units of the colours (e.g. [0, 1]).
    Differentiable in ``rendered_rgb``.

    Args:
        rendered_rgb: (B, H, W, 3) rendered colours.
        image: (B, H, W, 3) data colours, same units.
        mask: (B, H, W) data mask, bool or float.
        coverage: (B, H, W) bool, pixels the rendered mesh covers (``Fragments.mask``).

    Returns:
        (B,) loss per sample.
    """
    _check_shape("rendered_rgb", rendered_rgb, (None, None, None, 3))
    _check_shape("image", image, tuple(rendered_rgb.shape))
    _check_shape("mask", mask, tuple(rendered_rgb.shape[:3]))
    _check_shape("coverage", coverage, tuple(rendered_rgb.shape[:3]))
    use = _on(mask) & coverage.to(torch.bool)
    diff = (rendered_rgb - image.to(rendered_rgb.dtype)).abs().mean(-1)
    count = use.sum(dim=(1, 2)).clamp_min(1)
    return torch.where(use, diff, 0.0).sum(dim=(1, 2)) / count


def sample_flow(flow: Tensor, points: Tensor) -> Tensor:
    """Bilinear samples of a per-pixel field at image points (pixels).

    Pixel (row i, column j) holds the value at its centre ``(j + 0.5, i + 0.5)``, which is
    ``grid_sample``'s ``align_corners=False`` convention; points within half a pixel of the
    border take the border value.

    Args:
        flow: (B, H, W, C) field, e.g. optical flow in pixels.
        points: (B, N, 2) image positions (x, y) in pixels.

    Returns:
        (B, N, C) samples, differentiable in ``flow`` and ``points``.
    """
    _check_shape("flow", flow, (None, None, None, None))
    _check_shape("points", points, (flow.shape[0], None, 2))
    height, width = flow.shape[1:3]
    scale = points.new_tensor([2.0 / width, 2.0 / height])
    grid = (points * scale - 1.0).unsqueeze(1)  # (B, 1, N, 2)
    sampled = F.grid_sample(
        flow.permute(0, 3, 1, 2).to(points.dtype),
        grid,
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    return sampled[:, :, 0].transpose(1, 2)


def motion_loss(
    verts_a: Tensor, verts_b: Tensor, visible_a: Tensor, flow: Tensor, image_size: float
) -> Tensor:
    """Projected vertex motion against the data's optical flow.

    For each vertex visible in frame t and inside the image (``0 <= x < W``, ``0 <= y < H``),
    the flow of frame t is sampled bilinearly at its projected position (:func:`sample_flow`;
    the position is detached, so the flow image is not a gradient path) and compared with the
    projected displacement ``(verts_b - verts_a)[..., :2]``: ``|dx| + |dy|`` in pixels,
    averaged over those vertices and divided by ``image_size`` (unitless). Differentiable in
    ``verts_a`` and ``verts_b``; 0 where no vertex is used.

    Args:
        verts_a: (B, N, 3) screen vertices of frame t (x, y pixels, depth).
        verts_b: (B, N, 3) screen vertices of frame t + 1, same mesh.
        visible_a: (B, N) bool visibility in frame t.
        flow: (B, H, W, 2) data flow of frame t to t + 1, (dx, dy) pixels at each pixel centre.
        image_size: image side in pixels.

    Returns:
        (B,) loss per sample.
    """
    _check_shape("verts_a", verts_a, (None, None, 3))
    _check_shape("verts_b", verts_b, tuple(verts_a.shape))
    _check_shape("visible_a", visible_a, tuple(verts_a.shape[:2]))
    _check_shape("flow", flow, (verts_a.shape[0], None, None, 2))
    size = _check_image_size(image_size)
    height, width = flow.shape[1:3]
    position = verts_a[..., :2].detach()
    x, y = position.unbind(-1)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    use = visible_a.to(device=verts_a.device, dtype=torch.bool) & inside
    with torch.no_grad():
        target = sample_flow(flow.to(verts_a.device), position)
    error = ((verts_b - verts_a)[..., :2] - target).abs().sum(-1)
    count = use.sum(dim=1).clamp_min(1)
    return torch.where(use, error, 0.0).sum(dim=1) / count / size


def keypoint_loss(projected: Tensor, keypoints: Tensor, image_size: float) -> Tensor:
    """L1 reprojection error of the visible keypoints.

    ``|dx| + |dy|`` in pixels per visible keypoint (``keypoints[..., 2] > 0.5``), averaged over
    them and divided by ``image_size`` (unitless); 0 where none is visible. Coordinates of
    invisible keypoints are ignored (they may be NaN). Differentiable in ``projected``.

    Args:
        projected: (B, P, 2) projected model keypoints (x, y) in pixels.
        keypoints: (B, P, 3) data keypoints [x, y, visible] in pixels.
        image_size: image side in pixels.

    Returns:
        (B,) loss per sample.
    """
    _check_shape("projected", projected, (None, None, 2))
    _check_shape("keypoints", keypoints, (*projected.shape[:2], 3))
    size = _check_image_size(image_size)
    keypoints = keypoints.to(projected.dtype)
    visible = keypoints[..., 2] > 0.5
    # Clean the target first: a NaN there would leak into the gradient through torch.where.
    target = torch.where(visible.unsqueeze(-1), keypoints[..., :2], 0.0)
    error = (projected - target).abs().sum(-1)
    count = visible.sum(dim=1).clamp_min(1)
    return torch.where(visible, error, 0.0).sum(dim=1) / count / size


# --------------------------------------------------------------------------- priors


def mesh_edges(faces: Tensor) -> Tensor:
    """Unique undirected edges ``(E, 2)`` (long, ``i < j``, sorted) of triangles ``faces (F, 3)``."""
    _check_shape("faces", faces, (None, 3))
    faces = faces.to(torch.long)
    pairs = torch.cat((faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]))
    pairs = torch.sort(pairs, dim=1).values
    return torch.unique(pairs, dim=0)


def bounding_box_diagonal(points: Tensor) -> Tensor:
    """Length of the axis-aligned bounding-box diagonal of ``points (..., N, 3)`` -> ``(...)``."""
    return torch.linalg.vector_norm(points.amax(dim=-2) - points.amin(dim=-2), dim=-1)


def _edge_lengths(verts: Tensor, edges: Tensor) -> Tensor:
    return torch.linalg.vector_norm(verts[..., edges[:, 0], :] - verts[..., edges[:, 1], :], dim=-1)


def _template_length(template: Tensor, edges: Tensor) -> Tensor:
    """Mean template edge length, refusing a template without any size."""
    mean = _edge_lengths(template, edges).mean()
    if not float(mean) > 0:
        raise MeshError("the template's edges all have zero length")
    return mean


def edge_length_loss(verts: Tensor, template: Tensor, edges: Tensor) -> Tensor:
    """Edge lengths kept to the template's.

    ``mean over edges of (|e| - |e0|)^2 / mean(|e0|)^2``: unitless and scale-free (scaling the
    template and the shapes together leaves it unchanged). Differentiable in ``verts``.

    Args:
        verts: (B, N, 3) deformed vertices, template units.
        template: (N, 3) template vertices.
        edges: (E, 2) vertex index pairs, e.g. :func:`mesh_edges`.

    Returns:
        (B,) loss per sample.
    """
    _check_shape("verts", verts, (None, None, 3))
    _check_shape("template", template, (verts.shape[1], 3))
    _check_shape("edges", edges, (None, 2))
    edges = edges.to(device=verts.device, dtype=torch.long)
    if edges.shape[0] == 0:
        raise ValueError("expected at least one edge")
    template = template.to(verts.dtype)
    rest = _edge_lengths(template, edges)
    mean = _template_length(template, edges)
    return ((_edge_lengths(verts, edges) - rest) ** 2).mean(dim=-1) / mean**2


def laplacian_smoothness_loss(verts: Tensor, template: Tensor, L: Tensor) -> Tensor:
    """Laplacian smoothness of the deformation ``V - T``.

    ``mean over vertices of |(L (V - T))_i|^2 / (h^2 * mean_i L_ii^2)`` where ``h`` is the mean
    template length of the edges that ``L`` couples (its stored off-diagonal entries when sparse,
    its non-zero ones when dense). A cotangent (or uniform) Laplacian is unitless, so the ratio
    is unitless and scale-free. Differentiable in ``verts``.

    Args:
        verts: (B, N, 3) deformed vertices, template units.
        template: (N, 3) template vertices.
        L: (N, N) Laplacian, sparse COO (e.g.
            :func:`engine.geometry.laplacian.cotangent_laplacian`) or dense.

    Returns:
        (B,) loss per sample.
    """
    _check_shape("verts", verts, (None, None, 3))
    batch, nverts = verts.shape[:2]
    _check_shape("template", template, (nverts, 3))
    _check_shape("L", L, (nverts, nverts))
    template = template.to(verts.dtype)
    L = L.to(device=verts.device, dtype=verts.dtype)
    if L.is_sparse:
        L = L.coalesce()
        index, values = L.indices(), L.values()
        off = index[0] != index[1]
        pairs = index[:, off].T
        diagonal = torch.zeros(nverts, dtype=verts.dtype, device=verts.device)
        diagonal = diagonal.index_add(0, index[0, ~off], values[~off])
    else:
        pairs = torch.nonzero(L * (1 - torch.eye(nverts, dtype=L.dtype, device=L.device)))
        diagonal = torch.diagonal(L)
    if pairs.shape[0] == 0:
        raise ValueError("expected a Laplacian that couples at least one pair of vertices")
    length = _template_length(template, pairs)
    normaliser = length**2 * (diagonal**2).mean()
    offsets = (verts - template).permute(1, 0, 2).reshape(nverts, batch * 3)
    smoothed = (L @ offsets).reshape(nverts, batch, 3).permute(1, 0, 2)
    return (smoothed**2).sum(-1).mean(dim=-1) / normaliser


def offset_loss(offsets: Tensor, scale: float | Tensor) -> Tensor:
    """Handle offsets kept small: ``mean over handles of |o_k|^2 / scale^2``.

    Args:
        offsets: (B, K, 3) handle offsets, template units.
        scale: template size, the bounding-box diagonal (:func:`bounding_box_diagonal`).

    Returns:
        (B,) unitless loss per sample. Differentiable in ``offsets``.
    """
    _check_shape("offsets", offsets, (None, None, 3))
    scale = torch.as_tensor(scale, dtype=offsets.dtype, device=offsets.device)
    if scale.dim() != 0:
        raise ValueError(f"expected a scalar scale, got shape {tuple(scale.shape)}")
    return (offsets**2).sum(-1).mean(dim=-1) / scale**2


def camera_loss(pred: Tensor, target: Tensor, image_size: float) -> Tensor:
    """Pull of predicted cameras to target cameras (the multiplex's most probable one).

    ``(1 - |<q_pred, q_target>|) + ((s_pred - s_target) / s_target)^2
    + |t_pred - t_target|^2 / image_size^2`` with both quaternions normalised. The first term is
    ``1 - |w|`` of the relative quaternion (the authors' choice): 0 for equal rotations, 1 at
    180 degrees, blind to ``q -> -q``. The scale error is relative and the translation error in
    units of the image size, so every term is unitless. Gradients flow into both arguments:
    detach ``target`` to train only the predictor.

    Args:
        pred: (B, 7) cameras ``[s, tx, ty, qw, qx, qy, qz]`` (s in pixels per template unit,
            t in pixels; see :mod:`engine.render.cameras`).
        target: (B, 7) cameras in the same units, ``s_target > 0``.
        image_size: image side in pixels.

    Returns:
        (B,) loss per sample.
    """
    _check_shape("pred", pred, (None, 7))
    _check_shape("target", target, tuple(pred.shape))
    size = _check_image_size(image_size)
    target = target.to(pred.dtype)
    dot = (normalize_quaternion(pred[:, 3:]) * normalize_quaternion(target[:, 3:])).sum(-1)
    rotation = 1.0 - dot.abs()
    scale = ((pred[:, 0] - target[:, 0]) / target[:, 0]) ** 2
    translation = ((pred[:, 1:3] - target[:, 1:3]) ** 2).sum(-1) / size**2
    return rotation + scale + translation


__all__ = [
    "boundary_loss",
    "bounding_box_diagonal",
    "camera_loss",
    "edge_length_loss",
    "keypoint_loss",
    "laplacian_smoothness_loss",
    "mask_boundary_points",
    "mask_distance_transform",
    "mesh_edges",
    "motion_loss",
    "offset_loss",
    "sample_flow",
    "silhouette_loss",
    "texture_loss",
]
