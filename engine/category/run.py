"""A trained (or training) category model without its optimisers: what evaluation,
reconstruction, the PCA explorer and the editor need.

:class:`CategoryRun` holds the config, the template, its render proxy, the network with the
deformer, and the databases (one row per training image, named). The trainer is a run that also
has data and optimisers; :func:`engine.category.checkpoint.load_category_run` makes one from a
checkpoint without the training data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from engine.category.model import params_to_cameras
from engine.io.image_sets import ImageSet
from engine.render.cameras import project
from engine.render.rasterizer import rasterize


class CategoryRun:
    """Attributes a run has (set by the trainer or the checkpoint loader):

    config (CategoryConfig), template (CategoryTemplate), proxy (RenderProxy), proxy_faces
    (Fp,3), raster (RasterSettings), model (CategoryModel), device, keypoint_vertices (P,),
    database_names (I names), data_root (the training set's folder), camera_db (I,H*7) normalised parameters
    (H hypotheses of 7), probabilities (I,H),
    deform_db (I,K*3) offsets in template-scale units.
    """

    config: Any
    template: Any
    proxy: Any
    model: Any
    device: torch.device
    database_names: list[str]
    data_root: str

    @torch.no_grad()
    def predict(self, images: ImageSet, batch: int = 32) -> dict[str, np.ndarray]:
        """The network on every image: ``offsets`` (I,K,3) and ``vertices`` (I,N,3) in template
        units, ``cameras`` (I,7) pixels of the crops."""
        self.model.eval()
        rgb = self.model.encoder.stem[0].in_channels == 3
        if rgb and images.images is None:
            from engine.core.errors import DataError

            raise DataError(
                "this model reads RGB images but the set has masks only", path=images.root
            )
        source = images.images if rgb else images.masks[..., None]
        out: dict[str, list] = {"offsets": [], "cameras": [], "vertices": []}
        for start in range(0, len(images), batch):
            x = torch.as_tensor(
                source[start : start + batch], dtype=torch.float32, device=self.device
            )
            pred = self.model(x.permute(0, 3, 1, 2))
            out["offsets"].append(pred["offsets"])
            out["cameras"].append(params_to_cameras(pred["camera_params"], images.size))
            out["vertices"].append(self.model.deform(pred["offsets"]))
        return {k: torch.cat(v).cpu().numpy() for k, v in out.items()}

    @torch.no_grad()
    def database_fit(self) -> dict[str, np.ndarray]:
        """The databases' most probable camera (I,7 pixels of the training crops) and shape
        (``offsets`` (I,K,3), ``vertices`` (I,N,3)) of every training image, in the order of
        :attr:`database_names`."""
        best = self.probabilities.argmax(1)
        rows = torch.arange(len(best), device=best.device)
        hypotheses = self.camera_db.detach().view(len(best), -1, 7)
        cams = params_to_cameras(hypotheses[rows, best], self.config.size)
        offsets = self.deform_db.detach().view(len(best), -1, 3) * self.model.template_scale.float()
        verts = torch.cat(
            [self.model.deform(offsets[i : i + 32]) for i in range(0, len(offsets), 32)]
        )
        return {
            "cameras": cams.cpu().numpy(),
            "offsets": offsets.cpu().numpy(),
            "vertices": verts.cpu().numpy(),
        }

    @torch.no_grad()
    def render_masks(self, vertices: np.ndarray, cameras: np.ndarray) -> np.ndarray:
        """(I,S,S) bool hard silhouettes of ``vertices`` (I,N,3) under ``cameras`` (I,7)."""
        out = []
        for start in range(0, len(vertices), 32):
            v = torch.as_tensor(
                vertices[start : start + 32], dtype=torch.float32, device=self.device
            )
            c = torch.as_tensor(
                cameras[start : start + 32], dtype=torch.float32, device=self.device
            )
            screen = project(self.proxy.apply(v), c)
            out.append(rasterize(screen, self.proxy_faces, self.raster).mask.cpu().numpy())
        return np.concatenate(out)

    def project_keypoints(self, vertices: np.ndarray, cameras: np.ndarray) -> np.ndarray:
        """(I,P,2) pixels of the template's keypoint vertices of ``vertices`` under ``cameras``."""
        kpv = np.asarray(self.template.keypoint_vertices)
        v = torch.as_tensor(vertices[:, kpv], dtype=torch.float64)
        return project(v, torch.as_tensor(cameras, dtype=torch.float64))[..., :2].numpy()
