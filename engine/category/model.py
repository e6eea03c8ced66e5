"""The network of seed 001 (section 2.2): image -> handle offsets, camera and texture, with the
learnable Laplacian deformer between the offsets and the mesh.

Units: offsets are predicted in units of the template's bounding-box diagonal (so heads and
priors do not depend on the mesh's units) and returned in template units. Cameras are predicted
as normalised parameters ``p = [log s_n, tx_n, ty_n, q (4)]`` with ``s_n = s / (S/2)`` and
``t_n = t / (S/2) - 1`` (:func:`params_to_cameras` turns them into the project's pixel cameras
for an S-pixel image). Texture is one RGB colour per render-proxy vertex, in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from engine.category.encoder import Encoder
from engine.deform.deformer import LaplacianDeformer
from engine.render.cameras import normalize_quaternion


def params_to_cameras(params: Tensor, size: int) -> Tensor:
    """Pixel cameras ``(..., 7)`` of normalised camera parameters ``(..., 7)`` (module docstring)
    for a ``size``-pixel square image; the quaternion is normalised."""
    half = 0.5 * size
    scale = torch.exp(params[..., :1]) * half
    translation = (params[..., 1:3] + 1.0) * half
    return torch.cat([scale, translation, normalize_quaternion(params[..., 3:7])], dim=-1)


def cameras_to_params(cameras: Tensor, size: int) -> Tensor:
    """Inverse of :func:`params_to_cameras` (the quaternion as given, assumed unit)."""
    half = 0.5 * size
    return torch.cat(
        [torch.log(cameras[..., :1] / half), cameras[..., 1:3] / half - 1.0, cameras[..., 3:7]],
        dim=-1,
    )


class CategoryModel(nn.Module):
    """Encoder, heads and deformer.

    Args:
        vertices: (N,3) template vertices (template units).
        faces: (F,3) template triangles.
        num_handles: K.
        proxy_vertices: Np, vertices of the render proxy (texture is per proxy vertex).
        in_channels: 3 for RGB sets, 1 for masks-only sets.
        encoder_width: channels of the encoder's first stage.
        dependency_width: blend radius of the initial Gaussian dependency rows (fraction of
            the handle spacing).
        texture: whether to predict a texture.
        init_log_scale: initial ``log s_n`` of the camera head (the template filling the crop).
        seed: seeds the weights and the handle placement.
    """

    def __init__(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        num_handles: int,
        proxy_vertices: int,
        *,
        in_channels: int = 3,
        encoder_width: int = 16,
        dependency_width: float = 0.3,
        texture: bool = True,
        init_log_scale: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.encoder = Encoder(in_channels, encoder_width)
            d = self.encoder.feature_dim
            self.offset_head = nn.Linear(d, num_handles * 3)
            self.camera_head = nn.Linear(d, 7)
            self.texture_head = nn.Linear(d, proxy_vertices * 3) if texture else None
        # Start at the template seen from the front, centred: small weights, a neutral bias.
        with torch.no_grad():
            self.offset_head.weight.mul_(0.01)
            self.offset_head.bias.zero_()
            self.camera_head.weight.mul_(0.01)
            self.camera_head.bias.copy_(torch.tensor([init_log_scale, 0, 0, 1, 0, 0, 0]))
            if self.texture_head is not None:
                self.texture_head.weight.mul_(0.01)
                self.texture_head.bias.zero_()
        self.deformer = LaplacianDeformer(
            torch.as_tensor(vertices, dtype=torch.float64),
            torch.as_tensor(faces, dtype=torch.int64),
            num_handles=num_handles,
            seed=seed,
            init="gaussian",
            width=dependency_width,
        )
        lo, hi = np.min(vertices, 0), np.max(vertices, 0)
        self.register_buffer(
            "template_scale",
            torch.tensor(float(np.linalg.norm(hi - lo)) or 1.0, dtype=torch.float64),
        )
        self.num_handles = num_handles

    def forward(self, images: Tensor, *, detach_texture: bool = False) -> dict[str, Tensor]:
        """Predict from ``images`` (B, C, S, S) in [0, 1]; with ``detach_texture`` the texture
        head reads detached features (a texture loss then trains that head alone).

        Returns:
            ``offsets`` (B,K,3) template units, ``camera_params`` (B,7) normalised (see the
            module docstring), ``colours`` (B,Np,3) in [0,1] or absent without texture.
        """
        features = self.encoder(images)
        b = images.shape[0]
        offsets = self.offset_head(features).view(b, self.num_handles, 3)
        out = {
            "offsets": offsets * self.template_scale.to(offsets.dtype),
            "camera_params": self.camera_head(features),
        }
        if self.texture_head is not None:
            tex = features.detach() if detach_texture else features
            out["colours"] = torch.sigmoid(self.texture_head(tex).view(b, -1, 3))
        return out

    def deform(self, offsets: Tensor) -> Tensor:
        """(B,N,3) vertices (dtype of ``offsets``) of the template moved by ``offsets`` (B,K,3)."""
        return self.deformer(offsets.to(self.deformer.template.dtype)).to(offsets.dtype)


def template_log_scale(vertices: np.ndarray, fill: float = 1.0 / 1.2) -> float:
    """``log s_n`` at which the template's bounding sphere spans ``fill`` of a crop's width."""
    centre = 0.5 * (np.min(vertices, 0) + np.max(vertices, 0))
    radius = float(np.linalg.norm(vertices - centre, axis=1).max()) or 1.0
    return math.log(fill / radius)
