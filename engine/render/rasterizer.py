"""Rasterise screen-space triangle meshes in pure torch: a soft (SoftRas-style) silhouette that is
differentiable in the vertices, and a hard z-buffer pass that returns per-pixel "fragments" for
the shaders in :mod:`engine.render.shading`.

Conventions (the whole project's): vertices arrive already projected, ``verts (B,N,3)`` with x
and y in pixels and z the depth (larger = farther from the viewer); x points right, y points
down, the origin is the top-left corner of the top-left pixel, so pixel (row i, column j) has
its centre at (x, y) = (j + 0.5, i + 0.5). Images are (B,H,W) with row index = y. ``faces
(F,3)`` is shared by the batch; both windings count. NaN or inf coordinates raise
:class:`~engine.core.errors.InputError`; finite ones are fine up to about 2^22 pixels (beyond
that the crack-free guarantee of the hard pass lapses; float32 overflows near 1e18).

Cost: each face is evaluated only at the pixel centres inside its screen bounding box (grown by
the soft silhouette's cut-off radius), enumerated as a flat list of (face, pixel) pairs without
any cap on faces per pixel, in chunks of at most ``RasterSettings.chunk_size`` pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.core.errors import InputError

# Corners that start / end edge k (edge k is the one opposite corner k).
_EDGE_START = (1, 2, 0)
_EDGE_END = (2, 0, 1)


def _starts(corners: torch.Tensor, dim: int) -> torch.Tensor:
    """Per-corner values along ``dim`` (size 3) re-ordered to the start corner of each edge.
    (A roll copies; indexing with a list is many times slower on the CPU, backward too.)"""
    return torch.roll(corners, -1, dim)


def _ends(corners: torch.Tensor, dim: int) -> torch.Tensor:
    """Per-corner values along ``dim`` (size 3) re-ordered to the end corner of each edge."""
    return torch.roll(corners, 1, dim)


@dataclass(frozen=True)
class RasterSettings:
    """How to rasterise.

    Attributes:
        image_size: (H, W) in pixels; an int means a square image.
        sigma: width of the soft silhouette's edge in pixels^2: a pixel centre at distance d
            from a triangle gets probability ``sigmoid(+-d^2 / sigma)``. The default 0.5 px^2
            blurs about one pixel across the outline (probability 0.12 one pixel outside, 0.88
            one pixel inside), enough for gradients to reach the neighbouring pixels while
            keeping the outline sharp and each face's box small (cut-off radius 2.1 px).
        eps: probabilities below ``eps`` are dropped (SoftRas's bound); with ``sigma`` it gives
            the cut-off radius ``sqrt(sigma * ln(1/eps - 1))`` by which face boxes grow.
        chunk_size: most (face, pixel) pairs evaluated at once, about 200 bytes of working
            memory each. None picks 2^16 on the CPU, where chunks that stay in the cache run
            about three times faster than large ones, and 2^20 on a GPU, where fewer, larger
            kernels do.
        keep_pairs: the soft silhouette's backward reuses what its forward computed per pair
            (36 bytes each) when there are at most this many pairs, and re-evaluates each
            chunk otherwise (a second forward's cost, no memory).
    """

    image_size: tuple[int, int] | int
    sigma: float = 0.5
    eps: float = 1e-4
    chunk_size: int | None = None
    keep_pairs: int = 1 << 22

    def __post_init__(self) -> None:
        size = self.image_size
        if isinstance(size, int) and not isinstance(size, bool):
            size = (size, size)
        try:
            height, width = (int(s) for s in size)
        except (TypeError, ValueError):
            raise ValueError(
                f"image_size must be an int or (H, W), got {self.image_size!r}"
            ) from None
        if height < 1 or width < 1:
            raise ValueError(f"image_size must be positive, got {self.image_size!r}")
        object.__setattr__(self, "image_size", (height, width))
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be a positive number of pixels^2, got {self.sigma!r}")
        if not 0 < self.eps < 0.5:
            raise ValueError(f"eps must lie in (0, 0.5), got {self.eps!r}")
        if self.chunk_size is not None and not 1 <= self.chunk_size <= 1 << 30:
            raise ValueError(f"chunk_size must lie in [1, 2^30], got {self.chunk_size!r}")
        if self.keep_pairs < 0:
            raise ValueError(f"keep_pairs must be >= 0, got {self.keep_pairs!r}")

    def chunk(self, device: torch.device) -> int:
        """Pairs per chunk on ``device``."""
        if self.chunk_size is not None:
            return self.chunk_size
        return 1 << 20 if device.type == "cuda" else 1 << 16

    @property
    def cutoff_radius(self) -> float:
        """Distance (pixels) outside a triangle beyond which its soft probability is < eps."""
        return math.sqrt(self.sigma * math.log(1.0 / self.eps - 1.0))


@dataclass
class Fragments:
    """What the hard z-buffer pass knows about each pixel centre.

    Attributes:
        pix_to_face: (B,H,W) int64 index into ``faces`` of the nearest face covering the pixel
            centre, -1 for background.
        bary: (B,H,W,3) barycentric coordinates of the pixel centre in that face (weights of
            ``faces[f, 0..2]``), 0 for background. Not differentiable: shaders recompute them
            from the vertices.
        zbuf: (B,H,W) depth of the visible surface at the pixel centre, ``+inf`` for background.
    """

    pix_to_face: torch.Tensor
    bary: torch.Tensor
    zbuf: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """(B,H,W) bool: pixel centre covered by some face."""
        return self.pix_to_face >= 0


# ----------------------------------------------------------------------------- input checks


def check_mesh(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Validate a screen-space batch and return ``faces`` as int64 on ``verts``'s device.

    Raises:
        ValueError: wrong shapes, dtypes, devices or face indices (programmer errors).
        InputError: non-finite vertex coordinates.
    """
    if not isinstance(verts, torch.Tensor) or not isinstance(faces, torch.Tensor):
        raise ValueError("verts and faces must be torch tensors")
    if verts.dim() != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts must have shape (B,N,3), got {tuple(verts.shape)}")
    if verts.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"verts must be float32 or float64, got {verts.dtype}")
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape (F,3), got {tuple(faces.shape)}")
    if faces.dtype.is_floating_point or faces.dtype.is_complex or faces.dtype == torch.bool:
        raise ValueError(f"faces must hold integer vertex indices, got {faces.dtype}")
    if faces.device != verts.device:
        raise ValueError(f"faces are on {faces.device} but verts on {verts.device}")
    faces = faces.long()
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]):
        raise ValueError(
            f"face indices must lie in [0, {verts.shape[1]}), got [{int(faces.min())}, "
            f"{int(faces.max())}]"
        )
    finite = torch.isfinite(verts).all(dim=2).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        raise InputError(
            f"vertices of batch element(s) {bad[:5]} contain NaN or inf", field="verts"
        )
    return faces


# ----------------------------------------------------------------------------- pair enumeration


class _Pairs:
    """The (face, pixel) pairs of a batch: each of the B*F faces paired with every pixel centre in
    its bounding box grown by ``radius``, clipped to the image; enumerated in chunks of pair
    ranges, so that a face with a huge box is split across chunks.

    Pixel coordinates come back relative to each face's box corner (small integers, exact in
    float), so per-face tables store vertex positions relative to that corner too. For
    coordinates below 2^22 pixels, ``vertex - corner - 0.5`` is exact (the corner is an integer
    multiple of the vertex's ulp), so two faces sharing an edge still compute bit-identical
    offsets ``pixel - vertex``, which the hard pass's crack-free test relies on.
    """

    def __init__(
        self,
        xy: torch.Tensor,
        radius: float,
        size: tuple[int, int],
        chunk: int,
        active: torch.Tensor | None = None,
    ) -> None:
        height, width = size
        batch, nfaces = xy.shape[:2]
        if batch * height * width >= 1 << 31:
            raise ValueError(f"B*H*W = {batch * height * width} pixels exceed int32 indexing")
        limit = xy.new_tensor([width, height])
        # Centre j + 0.5 in [lo, hi] <=> ceil(lo - 0.5) <= j <= floor(hi - 0.5); clamping to the
        # image before the int conversion also keeps far-away vertices from overflowing.
        lo = torch.minimum((xy.amin(dim=2) - radius - 0.5).clamp_min(0.0), limit).ceil().long()
        hi = (
            torch.minimum((xy.amax(dim=2) + radius - 0.5).clamp_min(-1.0), limit - 1).floor().long()
        )
        extent = (hi - lo + 1).clamp_min(0).reshape(-1, 2)  # (B*F, 2): columns, rows
        self.corner = lo.reshape(-1, 2)  # (B*F, 2): first column, first row
        cols = extent[:, 0]
        counts = cols * extent[:, 1]
        if active is not None:  # faces that may produce pairs at all
            counts = counts * active
        self.ends = torch.cumsum(counts, 0)
        self.starts = self.ends - counts
        frame = torch.arange(batch, device=xy.device).repeat_interleave(nfaces)
        base = frame * (height * width) + self.corner[:, 1] * width + self.corner[:, 0]
        # Per face, as int32 (pixel and per-chunk pair indices fit): box columns, and what turns
        # (local index, row) into a pixel:
        # pix = base + row * W + col = base + local + row * (W - cols).
        self.cols = cols.int()
        self.rest = (width - cols).int()
        self.base = base.int()
        self.total = int(self.ends[-1]) if len(counts) else 0
        # First and last face of each chunk, with one host sync for all of them.
        bounds = [*range(0, self.total, chunk), self.total]
        marks = torch.tensor(
            bounds[:-1] + [b - 1 for b in bounds[1:]], dtype=torch.long, device=xy.device
        )
        faces = torch.searchsorted(self.ends, marks, right=True).tolist()
        n = len(bounds) - 1
        self.chunks = [(bounds[i], bounds[i + 1], faces[i], faces[n + i]) for i in range(n)]

    def enumerate(self, start: int, stop: int, first: int, last: int):
        """Pairs ``start..stop-1``, which belong to faces ``first..last``.

        Returns:
            face (P,) int64 index into the B*F faces, pix (P,) int32 flat index into B*H*W,
            col and row (P,) int32 pixel offsets from the face's box corner.
        """
        span = slice(first, last + 1)
        begins = self.starts[span].clamp(min=start)
        local_face = torch.repeat_interleave(
            self.ends[span].clamp(max=stop) - begins, output_size=stop - start
        )
        # 1-D index_select per quantity: much faster on the CPU than advanced indexing or a
        # multi-row index_select along dim 1.
        offset = (self.starts[span] - start).int().index_select(0, local_face)
        cols = self.cols[span].index_select(0, local_face)
        local = torch.arange(stop - start, dtype=torch.int32, device=begins.device).sub_(offset)
        row = torch.div(local, cols, rounding_mode="floor")
        col = local.sub(row * cols)
        pix = row.mul(self.rest[span].index_select(0, local_face))
        pix.add_(self.base[span].index_select(0, local_face)).add_(local)
        return local_face.add_(first), pix, col, row


def _oriented(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-batch faces re-ordered counter-clockwise in screen space (y down), so that a pixel is
    inside exactly when all three edge functions are positive.

    Returns:
        corners (B,F,3) int64 flat indices into ``verts.reshape(-1, 3)`` (each face in its
        original order or with corners 1 and 2 swapped), and solid (B,F) bool: not degenerate,
        i.e. twice the area exceeds 8 machine epsilons times the longest squared edge (thinner
        slivers count as segments).
    """
    batch, nverts = verts.shape[:2]
    flat = faces + nverts * torch.arange(batch, device=verts.device).view(-1, 1, 1)  # (B,F,3)
    tri = verts[..., :2].reshape(-1, 2).index_select(0, flat.reshape(-1)).view(*flat.shape, 2)
    d1 = tri[:, :, 1] - tri[:, :, 0]
    d2 = tri[:, :, 2] - tri[:, :, 0]
    d3 = tri[:, :, 2] - tri[:, :, 1]
    area2 = d1[..., 0] * d2[..., 1] - d1[..., 1] * d2[..., 0]
    span = torch.stack([d1, d2, d3]).square().sum(-1).amax(0)
    solid = area2.abs() > 8 * torch.finfo(verts.dtype).eps * span
    swapped = torch.stack([flat[..., 0], flat[..., 2], flat[..., 1]], -1)
    corners = torch.where((area2 < 0).unsqueeze(-1), swapped, flat)
    return corners, solid


# ----------------------------------------------------------------------------- soft silhouette


class _SoftPlan:
    """Everything the soft silhouette's forward and backward share for one batch: the pair list
    and a per-face table (one row per quantity, one column per face, so that gathering a row by
    face is one 1-D ``index_select``)."""

    def __init__(self, verts: torch.Tensor, faces: torch.Tensor, settings: RasterSettings) -> None:
        batch, nverts = verts.shape[:2]
        corners, solid = _oriented(verts, faces)
        # Corner-major layout: corner c of face bf is entry c * B*F + bf.
        self.vertex_of_corner = corners.reshape(-1, 3).T.reshape(-1)
        xy = verts[..., :2].reshape(-1, 2).index_select(0, self.vertex_of_corner).view(3, -1, 2)
        self.pairs = _Pairs(
            xy.permute(1, 0, 2).view(batch, -1, 3, 2),
            settings.cutoff_radius,
            settings.image_size,
            settings.chunk(verts.device),
        )
        # Edge k runs from corner k+1 to corner k+2.
        edge = _ends(xy, 0) - _starts(xy, 0)  # (3, B*F, 2)
        length2 = edge.square().sum(-1)
        # A zero-length edge keeps t = 0: its closest point is its start vertex.
        inv = torch.where(length2 > 0, 1.0 / length2.clamp_min(torch.finfo(xy.dtype).tiny), 0.0)
        # Added to the smallest edge function: a degenerate face has no inside.
        bias = torch.where(solid.reshape(1, -1), 0.0, -math.inf).to(xy.dtype)
        # Corner positions relative to the centre of the face's first box pixel.
        rel = xy - self.pairs.corner.to(xy.dtype) - 0.5
        self.table = torch.cat([rel[..., 0], rel[..., 1], inv, bias]).contiguous()
        # rows: x0 x1 x2 y0 y1 y2 (corners), inv0 inv1 inv2 (1 / squared edge length), bias
        self.inv_sigma = 1.0 / settings.sigma
        self.num_faces = batch * faces.shape[0]
        self.num_pixels = batch * settings.image_size[0] * settings.image_size[1]
        self.shape = (batch, nverts)

    def evaluate(self, chunk: tuple[int, int, int, int], with_grad: bool):
        """Log-probabilities that the chunk's pairs leave their pixel empty, and, with
        ``with_grad``, what the backward needs.

        Returns:
            pix (P,) int32 and log_empty (P,) = log(1 - D); with ``with_grad`` also
            ``(start_corner, end_corner, grads)``: corner-major indices of the ends of each
            pair's nearest edge and four (P,) d(log_empty)/d(x, y of the start, x, y of the end).
        """
        face, pix, col, row = self.pairs.enumerate(*chunk)
        dtype = self.table.dtype
        px = col.to(dtype)
        py = row.to(dtype)
        x0, x1, x2, y0, y1, y2, inv0, inv1, inv2, bias = (
            r.index_select(0, face) for r in self.table
        )
        cx, cy, inv = (x0, x1, x2), (y0, y1, y2), (inv0, inv1, inv2)
        for k in range(3):
            a, b = _EDGE_START[k], _EDGE_END[k]
            ex = cx[b] - cx[a]
            ey = cy[b] - cy[a]
            ux = px - cx[a]
            uy = py - cy[a]
            cross = (uy * ex).addcmul_(ux, ey, value=-1.0)
            along = (ux * ex).addcmul_(uy, ey).mul_(inv[k]).clamp_(0.0, 1.0)
            rx = ux.addcmul_(along, ex, value=-1.0)
            ry = uy.addcmul_(along, ey, value=-1.0)
            d2 = (rx * rx).addcmul_(ry, ry)
            if k == 0:
                inside, best, near = cross, d2, (rx, ry, along)
                nearest = torch.zeros_like(d2) if with_grad else None
                continue
            torch.minimum(inside, cross, out=inside)
            if with_grad:
                # Float masks and lerp: far cheaper than torch.where on the CPU.
                closer = (d2 < best).to(dtype)
                for held, new in zip(near, (rx, ry, along)):
                    held.lerp_(new, closer)
                torch.maximum(nearest, closer.mul_(k), out=nearest)
            torch.minimum(best, d2, out=best)
        # x = delta * d^2 / sigma, delta = sign of the smallest edge function (after the bias);
        # log(1 - sigmoid(x)) = logsigmoid(-x) is finite for any x.
        inside.add_(bias)
        x = torch.copysign(best, inside).mul_(self.inv_sigma)
        log_empty = F.logsigmoid(x.neg())
        if not with_grad:
            return pix, log_empty
        # d log_empty / d d^2 = -delta D / sigma, D = sigmoid(x); d d^2 / d closest = -2 r; the
        # closest point is (1 - t) start + t end.
        coef = torch.copysign(torch.sigmoid(x), inside).mul_(2.0 * self.inv_sigma)
        rx, ry, along = near
        gx, gy = rx.mul_(coef), ry.mul_(coef)
        ex, ey = gx * along, gy * along
        grads = (gx.sub_(ex), gy.sub_(ey), ex, ey)
        which = nearest.long()
        lut = torch.tensor([_EDGE_START, _EDGE_END], device=face.device) * self.num_faces
        start = lut[0].index_select(0, which).add_(face)
        end = lut[1].index_select(0, which).add_(face)
        return pix, log_empty, (start, end, grads)


class _SoftSilhouette(torch.autograd.Function):
    """S = 1 - prod_f (1 - D_f), D_f = sigmoid(delta d_f^2 / sigma), with a backward that walks
    the forward's pair list (kept up to ``keep_pairs`` pairs, re-enumerated beyond)."""

    @staticmethod
    def forward(ctx, verts: torch.Tensor, faces: torch.Tensor, settings: RasterSettings):
        plan = _SoftPlan(verts.detach(), faces, settings)
        keep = ctx.needs_input_grad[0] and plan.pairs.total <= settings.keep_pairs
        log_empty = verts.new_zeros(plan.num_pixels)
        saved = [] if keep else None
        for chunk in plan.pairs.chunks:
            out = plan.evaluate(chunk, with_grad=keep)
            log_empty.index_add_(0, out[0], out[1])
            if keep:
                saved.append((out[0], out[2]))
        empty = log_empty.exp_()
        ctx.plan, ctx.saved = plan, saved
        ctx.save_for_backward(empty)
        height, width = settings.image_size
        return (1.0 - empty).view(-1, height, width)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_s: torch.Tensor):
        (empty,) = ctx.saved_tensors
        plan = ctx.plan
        # dL/d log_empty = -grad_s * (1 - S); each pair's own factor is in its grads.
        weight = -grad_s.reshape(-1) * empty
        corner_grad = weight.new_zeros(2, 3 * plan.num_faces)
        if ctx.saved is not None:
            pieces = ctx.saved
        else:
            pieces = (plan.evaluate(chunk, with_grad=True)[::2] for chunk in plan.pairs.chunks)
        for pix, (ia, ib, grads) in pieces:
            w = weight.index_select(0, pix)
            for axis in range(2):
                corner_grad[axis].index_add_(0, ia, grads[axis] * w)
                corner_grad[axis].index_add_(0, ib, grads[2 + axis] * w)
        batch, nverts = plan.shape
        grad = weight.new_zeros(batch * nverts, 3)
        grad[:, :2].index_add_(0, plan.vertex_of_corner, corner_grad.T)
        return grad.view(batch, nverts, 3), None, None


def soft_silhouette(
    verts: torch.Tensor, faces: torch.Tensor, settings: RasterSettings
) -> torch.Tensor:
    """SoftRas-style silhouette of a batch of screen-space meshes.

    For pixel centre p and face f, ``D = sigmoid(delta * d^2 / sigma)`` with d the distance
    (pixels) from p to the triangle, edges included, and delta = +1 inside, -1 outside; the
    pixel's value is ``S = 1 - prod_f (1 - D)`` over the faces whose grown box holds p (the
    others have D < eps). Degenerate triangles act as their segment, which keeps S continuous
    as a triangle collapses.

    Args:
        verts: (B,N,3) float32/float64 screen-space vertices: x, y in pixels, z ignored.
        faces: (F,3) integer vertex indices, shared by the batch; either winding.
        settings: image size, sigma, eps and chunk size.

    Returns:
        (B,H,W) silhouette in [0,1], differentiable in ``verts`` (x and y).

    Raises:
        ValueError: wrong shapes or dtypes. InputError: NaN or inf vertices.
    """
    faces = check_mesh(verts, faces)
    return _SoftSilhouette.apply(verts, faces, settings)


# ----------------------------------------------------------------------------- hard z-buffer


def barycentric(tri: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Barycentric coordinates of 2D points in 2D triangles (unclamped, so points outside get
    negative weights), differentiable in both.

    Args:
        tri: (..., 3, 2) triangle corners (pixels); must not be degenerate.
        points: (..., 2) points (pixels).

    Returns:
        (..., 3) weights of the three corners, summing to 1.
    """
    start = _starts(tri, -2)
    edge = _ends(tri, -2) - start
    rel = points.unsqueeze(-2) - start
    cross = edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0]
    d1 = tri[..., 1, :] - tri[..., 0, :]
    d2 = tri[..., 2, :] - tri[..., 0, :]
    area2 = d1[..., 0] * d2[..., 1] - d1[..., 1] * d2[..., 0]
    return cross / area2.unsqueeze(-1)


def rasterize(verts: torch.Tensor, faces: torch.Tensor, settings: RasterSettings) -> Fragments:
    """Hard z-buffer: the nearest face at each pixel centre.

    A pixel centre is covered by a face when all three edge functions are >= 0 (after orienting
    the face); each edge function is evaluated from the edge's lower-numbered vertex, so two
    faces sharing an edge compute the same value with opposite signs and a centre exactly on it
    is covered by at least one of them (no cracks). Faces whose doubled area is below 8 machine
    epsilons times their longest squared edge count as degenerate and cover nothing. Depth is
    interpolated linearly in screen space (exact for orthographic / weak-perspective
    projection); ties in depth go to the lower face index. Not differentiable (the face choice
    is piecewise constant): shaders recompute barycentrics from the vertices. Besides a chunk's
    working memory it keeps about 24 bytes per covered (pixel, face) pair until the end.

    Args:
        verts: (B,N,3) float32/float64 screen-space vertices (x, y pixels; z depth, larger is
            farther).
        faces: (F,3) integer vertex indices, shared by the batch; either winding.
        settings: image size and chunk size (sigma and eps are not used).

    Returns:
        :class:`Fragments` with pix_to_face (B,H,W), bary (B,H,W,3), zbuf (B,H,W).

    Raises:
        ValueError: wrong shapes or dtypes. InputError: NaN or inf vertices.
    """
    faces = check_mesh(verts, faces)
    verts = verts.detach()
    batch, nverts = verts.shape[:2]
    height, width = settings.image_size
    device, dtype = verts.device, verts.dtype
    corners, solid = _oriented(verts, faces)
    flat = corners.reshape(-1, 3)
    tri = (
        verts.reshape(-1, 3).index_select(0, flat.reshape(-1)).view(-1, 3, 3)
    )  # (B*F, corner, xyz)
    pairs = _Pairs(
        tri[..., :2].view(batch, -1, 3, 2),
        0.0,
        (height, width),
        settings.chunk(device),
        solid.reshape(-1),
    )
    # Edge k evaluated from its lower-numbered vertex o towards q: e(p) = cross(q - o, p - o).
    swap = (_ends(flat, 1) < _starts(flat, 1)).unsqueeze(-1)
    head, tail = _starts(tri[..., :2], 1), _ends(tri[..., :2], 1)
    origin = torch.where(swap, tail, head)
    direction = torch.where(swap, head, tail) - origin
    origin = origin - pairs.corner.unsqueeze(1).to(dtype) - 0.5
    sign = 1.0 - 2.0 * swap.squeeze(-1).to(dtype)
    table = torch.cat(
        [
            origin.permute(2, 1, 0).reshape(6, -1),
            direction.permute(2, 1, 0).reshape(6, -1),
            sign.T,
            tri[:, :, 2].T,
        ]
    ).contiguous()
    # rows: ox0..2 oy0..2 dx0..2 dy0..2 sign0..2 z0..2

    # Pass 1 keeps each chunk's covered (pixel, face, depth) and the nearest depth per pixel;
    # pass 2 picks, per pixel, the lowest face at that depth. Both update the image-sized
    # buffers in place, so a chunk costs nothing per untouched pixel.
    num_pixels = batch * height * width
    zbuf = torch.full((num_pixels,), math.inf, dtype=dtype, device=device)
    covered_pairs = []
    for chunk in pairs.chunks:
        face, pix, col, row = pairs.enumerate(*chunk)
        px, py = col.to(dtype), row.to(dtype)
        t = [r.index_select(0, face) for r in table[:15]]
        edge = [((py - t[3 + k]) * t[6 + k] - (px - t[k]) * t[9 + k]) * t[12 + k] for k in range(3)]
        # Compact once to the covered pairs (index_select is far cheaper than boolean masks).
        keep = torch.nonzero(torch.minimum(torch.minimum(edge[0], edge[1]), edge[2]) >= 0)
        keep = keep.squeeze(1)
        face, pix = face.index_select(0, keep), pix.index_select(0, keep).long()
        edge = [e.index_select(0, keep) for e in edge]
        z = sum(e * table[15 + k].index_select(0, face) for k, e in enumerate(edge))
        z = z / (edge[0] + edge[1] + edge[2])
        zbuf.scatter_reduce_(0, pix, z, "amin")
        covered_pairs.append((face, pix, z))
    none = torch.iinfo(torch.long).max
    best = torch.full((num_pixels,), none, dtype=torch.long, device=device)
    for face, pix, z in covered_pairs:
        win = torch.nonzero(z == zbuf.index_select(0, pix)).squeeze(1)
        best.scatter_reduce_(0, pix.index_select(0, win), face.index_select(0, win), "amin")
    covered = best != none
    pix_to_face = torch.where(covered, best % max(faces.shape[0], 1), -1)
    idx = torch.nonzero(covered).squeeze(1)
    frame = idx // (height * width)
    corner_ids = faces.index_select(0, pix_to_face.index_select(0, idx))
    corner_ids = corner_ids + (frame * nverts).unsqueeze(-1)
    tri_xy = verts[..., :2].reshape(-1, 2).index_select(0, corner_ids.reshape(-1)).view(-1, 3, 2)
    bary = torch.zeros(num_pixels, 3, dtype=dtype, device=device).index_copy_(
        0, idx, barycentric(tri_xy, pixel_centres(idx, settings.image_size, dtype))
    )
    return Fragments(
        pix_to_face.view(batch, height, width),
        bary.view(batch, height, width, 3),
        zbuf.view(batch, height, width),
    )


def pixel_centres(index: torch.Tensor, size: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """(M,2) (x, y) pixel centres of flat indices into a (B,H,W) image batch."""
    width = size[1]
    pixel = index % (size[0] * width)
    return torch.stack([(pixel % width).to(dtype) + 0.5, (pixel // width).to(dtype) + 0.5], -1)
