"""Shaded pictures of meshes for people (not for gradients): per-vertex colours under two-sided
Lambertian light from the camera's direction, on a flat background.

Used by the synthetic category's images and by the README's pictures and the app's previews, so
that every shaded picture of the project is made the same way.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.render.cameras import project, quaternion_to_matrix
from engine.render.rasterizer import Fragments, RasterSettings, rasterize

#: Light direction in the camera frame (x right, y down, z away): from above-left, in front.
LIGHT = np.array([0.3, -0.5, -1.0]) / np.linalg.norm([0.3, -0.5, -1.0])


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(B,N,3) area-weighted unit vertex normals of (B,N,3) vertices."""
    a, b, c = (vertices[:, faces[:, k]] for k in range(3))
    fn = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, (slice(None), faces[:, k]), fn)
    return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


def shade(
    fragments: Fragments,
    vertices: np.ndarray,
    faces: np.ndarray,
    cameras: np.ndarray,
    colours: np.ndarray,
    background: float = 0.5,
) -> np.ndarray:
    """(B,H,W,3) uint8 pictures from hard ``fragments`` of ``vertices`` (B,N,3, world) seen by
    ``cameras`` (B,7), with per-vertex ``colours`` (N,3) or (B,N,3) in [0,1]."""
    normals = vertex_normals(vertices, faces)
    rot = quaternion_to_matrix(torch.as_tensor(cameras[:, 3:7], dtype=torch.float64)).numpy()
    cam_normals = np.einsum("bij,bnj->bni", rot, normals)
    pix = fragments.pix_to_face.cpu().numpy()
    bary = fragments.bary.cpu().numpy()
    corner = faces[np.where(pix >= 0, pix, 0)]  # (B,H,W,3)
    frame = np.arange(len(vertices))[:, None, None, None]
    colours = np.broadcast_to(colours, vertices.shape)
    col = np.einsum("bhwk,bhwkc->bhwc", bary, colours[frame, corner])
    nrm = np.einsum("bhwk,bhwkc->bhwc", bary, cam_normals[frame, corner])
    nrm /= np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-12)
    light = 0.35 + 0.65 * np.abs(nrm @ LIGHT)  # two-sided: thin parts lit either way
    image = np.where((pix >= 0)[..., None], col * light[..., None], background)
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def render_preview(
    vertices: np.ndarray,
    faces: np.ndarray,
    cameras: np.ndarray,
    size: int,
    colours: np.ndarray | None = None,
) -> np.ndarray:
    """(B,S,S,3) uint8 shaded pictures of (B,N,3) ``vertices`` under pixel cameras (B,7) of an
    S-pixel image (default colour: light grey)."""
    verts = np.asarray(vertices, dtype=np.float64)
    screen = project(torch.as_tensor(verts), torch.as_tensor(np.asarray(cameras, dtype=np.float64)))
    frags = rasterize(screen, torch.as_tensor(faces, dtype=torch.int64), RasterSettings(size))
    if colours is None:
        colours = np.full((verts.shape[1], 3), 0.78)
    return shade(frags, verts, np.asarray(faces), np.asarray(cameras, dtype=np.float64), colours)
