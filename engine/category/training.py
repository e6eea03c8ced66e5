"""Training a category from images (seed 001, section 2.1): camera multiplex, deformation
database, the network pulled to them, and a dependency matrix that learns.

Per training instance the trainer keeps N_c camera hypotheses (a camera database, initialised at
distinct azimuths around the template and fitted to the instance's mask) and one handle offset
(a deformation database, zero at the start; mirrored images have their own table). One step:

1. The database's shape for each instance of the batch, ``deform(offset)`` through the learnable
   Laplacian deformer, is rendered under every active hypothesis (soft silhouette, hard
   fragments through a render proxy for large templates). Each hypothesis gets a loss ``L_i``
   (mask L1, outside distance transform, boundary, keypoints when given, texture with the
   network's colours when the set has RGB); ``p_i = softmax(-L_i / T)`` (detached, stored) and
   the fit costs ``sum_i p_i L_i``. The database therefore receives gradients: the shape that is
   rendered is the database's (the authors' released loop renders the template and never moves
   its database).
2. Motion: consecutive frames of a video are in the same batch; the visible vertices' projected
   displacement under each frame's most probable camera is compared with the flow.
3. Priors on the database shapes: edge lengths against the template, Laplacian smoothness,
   offset size.
4. The network reads the image and is pulled to the most probable camera (quaternion, scale,
   translation) and to the database's offset; its texture head is trained by the texture loss.
5. Mirror augmentation: a flipped image uses the mirrored cameras of its instance and the
   mirrored deformation table.

After the main steps, a network phase of ``network_steps`` steps keeps the databases and A fixed
and trains only the network: the pulls to the most probable camera and offset of each instance
(and its mirror), plus the texture loss rendered on the database's shape, from a fresh Adam with
a cosine-decayed learning rate and batches of ``network_batch``. During the main steps the network chases
databases whose rows move once per epoch; on the fixed databases it fits them (1000 such steps
after a trained default run took the network's IoU on its training images from 0.59 to 0.78
and on the validation split's held-out images from 0.57 to 0.66; README, category section).

Before that, a warm-up of ``warmup_epochs`` passes fits only the cameras on the undeformed
template (every hypothesis to its own optimum), and during training the hypotheses are halved
at the fractions ``prune_at`` of the main steps (8 -> 4 -> 2, the most probable kept). With one
hypothesis and keypoints, cameras start from rigid structure from motion on the keypoints; with
several and keypoints, each hypothesis is first moved to its nearest camera that projects the
template's keypoints onto the image's (unless ``config.extra["keypoint_init"]`` is False, as
for the single-camera baseline; no rendering; the rendered warm-up moves each row only
once per epoch, and its database cameras ended 17 degrees off in a 600-step run on the training
split, 14 with this fit).

Exact resume: the sampler (numpy generator state, permutation, position), the optimisers and
the databases are in the checkpoint; CPU results of a resumed run equal the uninterrupted run's.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.category import losses as L
from engine.category.config import CategoryConfig
from engine.category.model import (
    CategoryModel,
    cameras_to_params,
    params_to_cameras,
    template_log_scale,
)
from engine.category.multiplex import (
    fit_hypotheses_to_keypoints,
    initial_hypotheses,
    prune,
    rigid_cameras_from_keypoints,
)
from engine.category.row_adam import RowAdam
from engine.category.run import CategoryRun
from engine.category.template import CategoryTemplate, category_template
from engine.core.device import resolve_device
from engine.core.errors import DataError, InputError
from engine.core.loop import TrainingLoop
from engine.geometry.laplacian import cotangent_laplacian
from engine.geometry.proxy import RenderProxy, render_proxy
from engine.io.image_sets import ImageSet, load_image_set
from engine.render.cameras import mirror_cameras, project
from engine.render.rasterizer import RasterSettings, rasterize, soft_silhouette
from engine.render.shading import interpolate_vertex_attributes, vertex_visibility

#: Training-set images evaluated at most during training (evenly spaced).
EVAL_MAX_IMAGES = 64
#: Most mask-boundary points per image in the boundary loss.
BOUNDARY_POINTS = 300


@dataclass
class CategoryEvent:
    """What the loop reports after each step.

    Attributes:
        step: steps done (warm-up included); ``total_steps`` the run's last step.
        phase: of the step just done: ``"warm-up"``, ``"train"`` or ``"network"`` (see the
            module docstring).
        hypotheses: active camera hypotheses per instance.
        losses: the step's loss terms (before weights) and ``total``.
        lr, elapsed_s, eta_s: as for PRN's events.
        metrics: on evaluation steps (``iou``, and ``vertex_error`` / ``camera_error_deg`` with
            ground truth), else None.
        marks: events of this step for the curves (``"warm-up end"``, ``"4 hypotheses"``...).
    """

    step: int
    total_steps: int
    phase: str
    hypotheses: int
    losses: dict[str, float]
    lr: float
    elapsed_s: float
    eta_s: float
    metrics: dict[str, float] | None = None
    marks: tuple[str, ...] = ()


def _resolve_template(config: CategoryConfig, images: ImageSet) -> CategoryTemplate:
    from engine.synthetic.category import TEMPLATE_FILE, TEMPLATE_KEYPOINTS_FILE

    root = Path(images.root)
    template = config.template
    keypoints = config.template_keypoints
    if template is None and (root / TEMPLATE_FILE).is_file():
        template = root / TEMPLATE_FILE
        if keypoints is None and (root / TEMPLATE_KEYPOINTS_FILE).is_file():
            keypoints = root / TEMPLATE_KEYPOINTS_FILE
    return category_template(
        template, keypoints, up_axis=config.up_axis, front_axis=config.front_axis
    )


class CategoryTrainer(TrainingLoop, CategoryRun):
    """Learns a category's deformable mesh from an image set (module docstring).

    Args:
        config: settings (validated here).
        images: the training set; None loads ``config.data`` at ``config.size``.
        template: the template; None resolves it from the config and the set.
        autosave_path, autosave_every: see :class:`engine.core.loop.TrainingLoop`.

    Raises:
        InputError: bad settings, an unusable device, a template or image set that cannot be
            used (e.g. keypoints whose count differs from the template's keypoint vertices).
    """

    def __init__(
        self,
        config: CategoryConfig,
        images: ImageSet | None = None,
        template: CategoryTemplate | None = None,
        *,
        proxy: RenderProxy | None = None,
        autosave_path: str | Path | None = None,
        autosave_every: int = 0,
    ) -> None:
        super().__init__(autosave_path=autosave_path, autosave_every=autosave_every)
        config.validate()
        self.config = config
        try:
            self.device = resolve_device(config.device)
        except (ValueError, RuntimeError) as exc:
            raise InputError(str(exc), field="device") from None
        if images is None:
            images = load_image_set(config.data, size=config.size)
        if images.size != config.size:
            raise DataError(
                f"the image set is at {images.size} px, the config asks for {config.size}",
                field="size",
            )
        self.images = images
        self.database_names = list(images.names)
        self.data_root = str(images.root)
        self.template = template if template is not None else _resolve_template(config, images)
        mesh = self.template.mesh
        self.proxy: RenderProxy = (
            proxy
            if proxy is not None
            else render_proxy(mesh.vertices, mesh.faces, config.render_faces)
        )
        self.has_keypoints = images.keypoints is not None
        if self.has_keypoints and images.keypoints.shape[1] != len(self.template.keypoint_vertices):
            raise DataError(
                f"the set has {images.keypoints.shape[1]} keypoints per image, the template "
                f"{len(self.template.keypoint_vertices)} keypoint vertices: give the template's "
                "keypoint JSON with --template-keypoints",
                path=images.root,
                field="keypoints",
            )
        self.has_texture = images.images is not None and config.use_texture
        self.has_motion = (
            images.flow is not None and config.use_motion and bool((images.next_index >= 0).any())
        )
        self._build_tensors()
        self.model = CategoryModel(
            mesh.vertices,
            mesh.faces,
            config.handles,
            self.proxy.num_vertices,
            in_channels=3 if images.images is not None else 1,
            encoder_width=config.encoder_width,
            dependency_width=config.dependency_width,
            texture=self.has_texture,
            init_log_scale=template_log_scale(mesh.vertices),
            seed=config.seed,
        ).to(self.device)
        self.model.deformer.logits.requires_grad_(config.lr_dependency > 0)
        self.initial_logits = self.model.deformer.logits.detach().clone()
        self._build_databases()
        self._build_optimisers()
        self.warmup_steps = config.warmup_epochs * math.ceil(len(images) / config.batch_size)
        self._rng = np.random.default_rng(config.seed)
        self._perm = np.zeros(0, dtype=np.int64)
        self._pos = 0
        self.marks: list[tuple[int, str]] = []

    # ------------------------------------------------------------------ set-up
    def _build_tensors(self) -> None:
        im, dev, cfg = self.images, self.device, self.config
        t = lambda a, dtype=torch.float32: torch.as_tensor(np.asarray(a), dtype=dtype, device=dev)  # noqa: E731
        self.masks = t(im.masks)
        self.dt = L.mask_distance_transform(im.masks).to(dev)
        bp, bv = L.mask_boundary_points(im.masks, max_points=BOUNDARY_POINTS, seed=cfg.seed)
        self.boundary, self.boundary_valid = bp.to(dev), bv.to(dev)
        self.inputs = (
            t(im.images).permute(0, 3, 1, 2).contiguous()
            if im.images is not None
            else self.masks[:, None]
        )
        self.rgb = t(im.images) if im.images is not None else None
        self.keypoints = t(im.keypoints) if im.keypoints is not None else None
        self.flow = t(im.flow) if im.flow is not None else None
        self.next_index = torch.as_tensor(im.next_index, dtype=torch.int64)
        mesh = self.template.mesh
        self.template_vertices = t(mesh.vertices)
        self.faces = torch.as_tensor(mesh.faces, dtype=torch.int64, device=dev)
        self.proxy_faces = torch.as_tensor(self.proxy.faces, dtype=torch.int64, device=dev)
        self.edges = L.mesh_edges(self.faces)
        self.laplacian = cotangent_laplacian(self.template_vertices.double(), self.faces).float()
        self.keypoint_vertices = torch.as_tensor(
            self.template.keypoint_vertices, dtype=torch.int64, device=dev
        )
        self.raster = RasterSettings(image_size=cfg.size, sigma=cfg.sigma)
        self.symmetry_axis = cfg.symmetry_axis or self.template.left_axis

    def _build_databases(self) -> None:
        cfg, im = self.config, self.images
        count = len(im)
        mesh = self.template.mesh
        sfm = cfg.hypotheses == 1 and self.has_keypoints and cfg.extra.get("keypoint_init", True)
        if sfm:
            kp3d = mesh.vertices[self.template.keypoint_vertices]
            cams, ok = rigid_cameras_from_keypoints(im.keypoints, kp3d)
            fallback = initial_hypotheses(
                mesh.vertices,
                im.masks,
                1,
                up_axis=self.template.up_axis,
                front_axis=self.template.front_axis,
                elevations=cfg.elevations,
            )[:, 0]
            cams = torch.where(torch.as_tensor(ok)[:, None], cams, fallback)[:, None]
        else:
            cams = initial_hypotheses(
                mesh.vertices,
                im.masks,
                cfg.hypotheses,
                up_axis=self.template.up_axis,
                front_axis=self.template.front_axis,
                elevations=cfg.elevations,
            )
            if self.has_keypoints and cfg.extra.get("keypoint_init", True):
                cams = fit_hypotheses_to_keypoints(
                    cams, im.keypoints, mesh.vertices[self.template.keypoint_vertices], cfg.size
                )
        self.keypoint_initialised = bool(sfm)
        dev = self.device
        # Rows are instances, flattened so that a batch's rows are gathered as embeddings with
        # sparse gradients: the optimiser then moves only the rows of the batch (a dense Adam
        # would keep moving every other instance on stale momentum).
        self.camera_db = torch.nn.Parameter(
            cameras_to_params(cams, cfg.size).reshape(count, -1).to(dev)
        )
        self.probabilities = torch.full((count, cams.shape[1]), 1.0 / cams.shape[1], device=dev)
        k = cfg.handles
        self.deform_db = torch.nn.Parameter(torch.zeros(count, k * 3, device=dev))
        self.mirror_db = torch.nn.Parameter(torch.zeros(count, k * 3, device=dev))

    def _build_optimisers(self) -> None:
        cfg = self.config
        self.opt_net = self._network_optimiser()
        self.opt_cam = RowAdam([self.camera_db], lr=cfg.lr_cameras)
        self.opt_deform = RowAdam([self.deform_db, self.mirror_db], lr=cfg.lr_deformations)
        self.opt_dep = (
            torch.optim.Adam([self.model.deformer.logits], lr=cfg.lr_dependency)
            if cfg.lr_dependency > 0
            else None
        )

    def _network_optimiser(self) -> torch.optim.Adam:
        net = [p for n, p in self.model.named_parameters() if not n.startswith("deformer.")]
        return torch.optim.Adam(net, lr=self.config.lr)

    # ------------------------------------------------------------------ loop hooks
    @property
    def total_iterations(self) -> int:
        return self.warmup_steps + self.config.iterations + self.config.network_steps

    @property
    def eval_every(self) -> int:
        return self.config.eval_every

    def _learning_rate(self) -> float:
        return self.opt_net.param_groups[0]["lr"]

    @property
    def phase(self) -> str:
        """Phase of the next step (``"warm-up"``, ``"train"``, ``"network"``)."""
        return self._phase_of(self.step)

    def _phase_of(self, step: int) -> str:
        """Phase of the step that starts with ``step`` steps done."""
        if step < self.warmup_steps:
            return "warm-up"
        if step < self.warmup_steps + self.config.iterations:
            return "train"
        return "network"

    @property
    def num_hypotheses(self) -> int:
        return int(self.camera_db.shape[1]) // 7

    def _event(self, *, target, losses, lr, elapsed_s, eta_s, metrics) -> CategoryEvent:
        marks = tuple(text for step, text in self.marks if step == self.step)
        return CategoryEvent(
            step=self.step,
            total_steps=target,
            phase=self._phase_of(max(self.step - 1, 0)),
            hypotheses=self.num_hypotheses,
            losses=losses,
            lr=lr,
            elapsed_s=elapsed_s,
            eta_s=eta_s,
            metrics=metrics,
            marks=marks,
        )

    def _evaluate_metrics(self) -> dict[str, float]:
        from engine.category.evaluate import evaluate_model

        count = len(self.images)
        idx = np.unique(np.linspace(0, count - 1, min(count, EVAL_MAX_IMAGES)).round().astype(int))
        rows = evaluate_model(self, self.images.subset(idx), methods=("predicted",))
        out = {}
        for key, value in rows["predicted"].items():
            if value is not None:
                out[key] = float(value)
        return out

    # ------------------------------------------------------------------ batches
    def _next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """(B,) instance indices and (B,) mirror flags. With motion, consecutive pairs
        (frame, next frame) share a mirror flag and sit at positions (2j, 2j+1)."""
        cfg = self.config
        count = len(self.images)
        phase = self.phase
        if phase == "network":
            units, per = np.arange(count), cfg.network_batch
        elif self.has_motion and phase == "train":
            units = np.flatnonzero(self.images.next_index >= 0)
            per = max(cfg.batch_size // 2, 1)
        else:
            units = np.arange(count)
            per = cfg.batch_size
        while len(self._perm) - self._pos < per:
            self._perm = np.concatenate(
                [self._perm[self._pos :], units[self._rng.permutation(len(units))]]
            )
            self._pos = 0
        chosen = self._perm[self._pos : self._pos + per]
        self._pos += per
        flips = (
            self._rng.random(len(chosen)) < 0.5
            if cfg.mirror and phase != "warm-up"
            else np.zeros(len(chosen), dtype=bool)
        )
        if self.has_motion and phase == "train":
            nxt = self.images.next_index[chosen]
            idx = np.stack([chosen, nxt], 1).reshape(-1)
            flips = np.repeat(flips, 2)
        else:
            idx = chosen
        return idx.astype(np.int64), flips

    def _batch_data(self, idx: torch.Tensor, flips: torch.Tensor) -> dict[str, Any]:
        """Masks, distance transforms, boundaries, inputs, colours, flow and keypoints of the
        batch, flipped where ``flips`` (images mirrored left-right)."""
        size = self.config.size
        f3 = flips[:, None, None]

        def flip_image(a: torch.Tensor, width_dim: int) -> torch.Tensor:
            shape = [-1] + [1] * (a.ndim - 1)
            return torch.where(flips.view(shape), a.flip(width_dim), a)

        masks = flip_image(self.masks[idx], -1)
        dt = flip_image(self.dt[idx], -1)
        boundary = self.boundary[idx].clone()
        boundary[..., 0] = torch.where(f3[..., 0], size - boundary[..., 0], boundary[..., 0])
        inputs = flip_image(self.inputs[idx], -1)
        out = {
            "masks": masks,
            "dt": dt,
            "boundary": boundary,
            "boundary_valid": self.boundary_valid[idx],
            "inputs": inputs,
        }
        if self.rgb is not None:
            out["rgb"] = flip_image(self.rgb[idx], -2)
        if self.flow is not None:
            flow = flip_image(self.flow[idx], -2)
            flow = torch.stack([torch.where(f3, -flow[..., 0], flow[..., 0]), flow[..., 1]], dim=-1)
            out["flow"] = flow
        if self.keypoints is not None:
            kp = self.keypoints[idx].clone()
            # Mirrored keypoints would need the template's left-right keypoint pairs: dropped.
            kp[..., 2] = torch.where(flips[:, None], torch.zeros_like(kp[..., 2]), kp[..., 2])
            out["keypoints"] = kp
        return out

    # ------------------------------------------------------------------ the step
    def _database_cameras(self, idx: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """(B,H,7) pixel cameras of the batch's hypotheses (mirrored where flipped)."""
        size = self.config.size
        cams = params_to_cameras(_rows(self.camera_db, idx, 7), size)
        mirrored = mirror_cameras(cams.reshape(-1, 7), size, self.symmetry_axis).view_as(cams)
        return torch.where(flips[:, None, None], mirrored, cams)

    def _database_offsets(self, idx: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        scale = float(self.model.template_scale)
        mirrored, own = _rows(self.mirror_db, idx, 3), _rows(self.deform_db, idx, 3)
        table = torch.where(flips[:, None, None], mirrored, own)
        return table * scale

    def _hypothesis_losses(
        self, verts: torch.Tensor, cams: torch.Tensor, data: dict, colours: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Per-hypothesis losses (B,H), their terms, the proxy's screen vertices (B*H,Np,3) and
        their visibility (B*H,Np) for shapes ``verts`` (B,N,3) under ``cams`` (B,H,7)."""
        cfg = self.config
        b, h = cams.shape[:2]
        size = cfg.size
        flat_cams = cams.reshape(b * h, 7)
        proxy_verts = self.proxy.apply(verts)  # (B,Np,3)
        pv = proxy_verts[:, None].expand(b, h, -1, -1).reshape(b * h, -1, 3)
        screen = project(pv, flat_cams)
        rep = lambda a: a[:, None].expand(b, h, *a.shape[1:]).reshape(b * h, *a.shape[1:])  # noqa: E731
        sil = soft_silhouette(screen, self.proxy_faces, self.raster)
        terms = {
            "mask": L.silhouette_loss(sil, rep(data["masks"]), rep(data["dt"]), w_l1=1.0, w_dt=0.0),
            "dt": L.silhouette_loss(sil, rep(data["masks"]), rep(data["dt"]), w_l1=0.0, w_dt=1.0),
        }
        with torch.no_grad():
            frags = rasterize(screen.detach(), self.proxy_faces, self.raster)
            visible = vertex_visibility(frags, screen.detach(), self.proxy_faces)
        terms["boundary"] = L.boundary_loss(
            screen, visible, rep(data["boundary"]), rep(data["boundary_valid"]), size
        )
        total = (
            cfg.w_mask * terms["mask"] + cfg.w_dt * terms["dt"] + cfg.w_boundary * terms["boundary"]
        )
        if "keypoints" in data and cfg.w_keypoints > 0:
            kp3 = verts[:, self.keypoint_vertices]
            kp3 = kp3[:, None].expand(b, h, -1, -1).reshape(b * h, -1, 3)
            kp2 = project(kp3, flat_cams)[..., :2]
            terms["keypoints"] = L.keypoint_loss(kp2, rep(data["keypoints"]), size)
            total = total + cfg.w_keypoints * terms["keypoints"]
        if colours is not None and "rgb" in data and cfg.w_texture > 0:
            # As the authors: the texture render does not move the vertices.
            rendered = interpolate_vertex_attributes(
                frags, screen.detach(), self.proxy_faces, rep(colours)
            )
            terms["texture"] = L.texture_loss(
                rendered, rep(data["rgb"]), rep(data["masks"]), frags.mask
            )
            total = total + cfg.w_texture * terms["texture"]
        return (
            total.view(b, h),
            {k: v.view(b, h) for k, v in terms.items()},
            screen,
            visible,
        )

    def _train_step(self) -> dict[str, float] | None:
        cfg = self.config
        if self.phase == "network":
            return self._network_step()
        self._maybe_prune()
        warm = self.phase == "warm-up"
        idx_np, flips_np = self._next_batch()
        idx = torch.as_tensor(idx_np, device=self.device)
        flips = torch.as_tensor(flips_np, device=self.device)
        data = self._batch_data(idx, flips)
        cams = self._database_cameras(idx, flips)
        b, h = cams.shape[:2]
        pred = None
        if warm:
            verts = self.template_vertices.expand(b, -1, -1)
            offsets = None
        else:
            offsets = self._database_offsets(idx, flips)
            verts = self.model.deform(offsets)
            self.model.train()
            pred = self.model(data["inputs"])
        colours = None if pred is None else pred.get("colours")
        per_h, terms, screen, visible = self._hypothesis_losses(verts, cams, data, colours)
        with torch.no_grad():
            p = torch.softmax(-per_h.detach() / cfg.multiplex_temperature, dim=1)
            keep = ~flips
            self.probabilities[idx[keep]] = p[keep]
        fit = per_h.sum(1).mean() if warm else (p * per_h).sum(1).mean()
        total = fit
        report = {"fit": fit}
        best = p.argmax(1)
        sel = lambda a: a.view(b, h, *a.shape[1:])[torch.arange(b), best]  # noqa: E731
        for name, value in terms.items():
            report[name] = (p * value).sum(1).mean()
        if "keypoints" in report and not bool((data["keypoints"][..., 2] > 0).any()):
            # No visible keypoint in the batch (mirrored images drop theirs): the term is 0
            # by definition, not a measurement; curves would show it as a perfect fit.
            del report["keypoints"]
        if not warm:
            if self.has_motion and cfg.w_motion > 0:
                sb = sel(screen)
                vb = sel(visible)
                a, nxt = torch.arange(0, b, 2), torch.arange(1, b, 2)
                motion = L.motion_loss(sb[a], sb[nxt], vb[a], data["flow"][a], cfg.size).mean()
                report["motion"] = motion
                total = total + cfg.w_motion * motion
            scale = self.model.template_scale.float()
            edge = L.edge_length_loss(verts, self.template_vertices, self.edges).mean()
            smooth = L.laplacian_smoothness_loss(
                verts, self.template_vertices, self.laplacian
            ).mean()
            off = L.offset_loss(offsets, scale).mean()
            report.update(edge=edge, smooth=smooth, offsets=off)
            total = total + cfg.w_edge * edge + cfg.w_smooth * smooth + cfg.w_offsets * off
            best_cams = cams[torch.arange(b), best].detach()
            pred_cams = params_to_cameras(pred["camera_params"], cfg.size)
            pull_cam = L.camera_loss(pred_cams, best_cams, cfg.size).mean()
            pull_def = (((pred["offsets"] - offsets.detach()) / scale) ** 2).sum(-1).mean()
            report.update(pull_camera=pull_cam, pull_deform=pull_def)
            total = total + cfg.w_pull_camera * pull_cam + cfg.w_pull_deform * pull_def
            if cfg.w_network > 0:
                # The network's own shape under its own camera, rendered and scored like a
                # hypothesis: every step then trains it on every image of the batch, where the
                # pulls alone follow databases that each move once per epoch.
                # Its shape is detached: rendered under a wrong camera, the network's offsets
                # bent the mesh to fit the silhouette (predicted vertex error 0.042 against
                # the template's 0.021 in a 600-step run on the training split; 0.032 with the
                # offsets detached); they learn from the pull to the database instead.
                net_verts = self.model.deform(pred["offsets"].detach())
                net, _, _, _ = self._hypothesis_losses(
                    net_verts, pred_cams[:, None], data, pred.get("colours")
                )
                report["network"] = net.mean()
                total = total + cfg.w_network * net.mean()
        report["total"] = total
        optimisers = [self.opt_cam, self.opt_deform] + (
            [] if warm else [self.opt_net] + ([self.opt_dep] if self.opt_dep else [])
        )
        if not self._descend(total, optimisers):
            return None
        self.step += 1
        if self.step == self.warmup_steps and self.warmup_steps > 0:
            self.marks.append((self.step, "warm-up end"))
        return {k: float(v.detach()) for k, v in report.items()}

    def _descend(self, total: torch.Tensor, optimisers: list) -> bool:
        """Back-propagate ``total`` and step ``optimisers``; False (and :attr:`error` set,
        nothing stepped) when the loss or one of their gradients is not finite."""
        value = float(total.detach())
        if not math.isfinite(value):
            self.error = f"training diverged at step {self.step + 1}: the loss is {value}"
            return False
        for opt in (self.opt_cam, self.opt_deform, self.opt_net, self.opt_dep):
            if opt is not None:
                opt.zero_grad(set_to_none=True)
        total.backward()
        for opt in optimisers:
            for group in opt.param_groups:
                for prm in group["params"]:
                    grad = prm.grad
                    if grad is not None and grad.is_sparse:
                        grad = grad.coalesce().values()
                    if grad is not None and not bool(torch.isfinite(grad).all()):
                        self.error = (
                            f"training diverged at step {self.step + 1}: non-finite gradient"
                        )
                        return False
        for opt in optimisers:
            opt.step()
        return True

    def _network_step(self) -> dict[str, float] | None:
        """One step of the network phase (module docstring): databases and A fixed."""
        cfg = self.config
        k = self.step - self.warmup_steps - cfg.iterations
        if k == 0:
            # A fresh Adam: the main steps' second moments (render losses) made this phase's
            # steps small (validation split: training-image IoU 0.63 after 1000 steps with
            # them, 0.70 without; held-out 0.59 and 0.63).
            self.opt_net = self._network_optimiser()
            self.marks.append((self.step + 1, "network phase"))  # reported by this step
        lr = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * k / max(cfg.network_steps, 1)))
        for group in self.opt_net.param_groups:
            group["lr"] = lr
        idx_np, flips_np = self._next_batch()
        idx = torch.as_tensor(idx_np, device=self.device)
        flips = torch.as_tensor(flips_np, device=self.device)
        data = self._batch_data(idx, flips)
        b = len(idx)
        with torch.no_grad():
            best = self.probabilities[idx].argmax(1)
            best_cams = self._database_cameras(idx, flips)[torch.arange(b), best]
            offsets = self._database_offsets(idx, flips)
        self.model.train()
        pred = self.model(data["inputs"], detach_texture=True)
        scale = self.model.template_scale.float()
        pred_cams = params_to_cameras(pred["camera_params"], cfg.size)
        pull_cam = L.camera_loss(pred_cams, best_cams, cfg.size).mean()
        pull_def = (((pred["offsets"] - offsets) / scale) ** 2).sum(-1).mean()
        total = cfg.w_pull_camera * pull_cam + cfg.w_pull_deform * pull_def
        report = {"pull_camera": pull_cam, "pull_deform": pull_def}
        if "colours" in pred and "rgb" in data and cfg.w_texture > 0:
            # The encoder changes in this phase, so the texture head must follow it: the loss
            # trains the head alone (a linear read-out), on ``batch_size`` instances of the
            # batch, which keeps the phase's rendering cost a quarter of the batch's.
            t = min(b, cfg.batch_size)
            with torch.no_grad():
                verts = self.model.deform(offsets[:t])
                screen = project(self.proxy.apply(verts), best_cams[:t])
                frags = rasterize(screen, self.proxy_faces, self.raster)
            rendered = interpolate_vertex_attributes(
                frags, screen, self.proxy_faces, pred["colours"][:t]
            )
            texture = L.texture_loss(
                rendered, data["rgb"][:t], data["masks"][:t], frags.mask
            ).mean()
            report["texture"] = texture
            total = total + cfg.w_texture * texture
        report["total"] = total
        if not self._descend(total, [self.opt_net]):
            return None
        self.step += 1
        return {k: float(v.detach()) for k, v in report.items()}

    def _maybe_prune(self) -> None:
        """Halve the hypotheses at the configured fractions of the main training."""
        cfg = self.config
        main = self.step - self.warmup_steps
        if main < 0 or self.num_hypotheses <= 1:
            return
        stages = [math.floor(f * cfg.iterations) for f in cfg.prune_at]
        target = cfg.hypotheses
        for at in stages:
            if main >= at:
                target = max(target // 2, 1)
        target = max(target, 1 if cfg.hypotheses == 1 else min(2, cfg.hypotheses))
        if target >= self.num_hypotheses:
            return
        keep = prune(self.probabilities, target)
        with torch.no_grad():
            count = keep.shape[0]
            rows = torch.arange(count, device=self.device)[:, None]
            kept = self.camera_db.detach().view(count, -1, 7)[rows, keep]
            self.camera_db = torch.nn.Parameter(kept.reshape(count, -1).clone())
            self.probabilities = self.probabilities[rows, keep]
            self.probabilities /= self.probabilities.sum(1, keepdim=True)
        self.opt_cam = RowAdam([self.camera_db], lr=cfg.lr_cameras)
        self.marks.append((self.step + 1, f"{target} hypotheses"))  # reported by this step

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | Path) -> None:
        from engine.category.checkpoint import save_category_checkpoint

        save_category_checkpoint(path, self)

    def data_description(self) -> dict[str, Any]:
        im = self.images
        return {
            "source": str(self.config.data),
            "root": str(im.root),
            "images": len(im),
            "size": im.size,
            "has_images": im.images is not None,
            "has_keypoints": self.has_keypoints,
            "has_flow": im.flow is not None,
            "has_ground_truth": im.ground_truth is not None,
        }

    def state_for_resume(self) -> dict[str, Any]:
        return {
            "opt_net": self.opt_net.state_dict(),
            "opt_cam": self.opt_cam.state_dict(),
            "opt_deform": self.opt_deform.state_dict(),
            "opt_dep": None if self.opt_dep is None else self.opt_dep.state_dict(),
            "rng": _rng_state(self._rng),
            "perm": torch.as_tensor(self._perm),
            "pos": int(self._pos),
            "marks": [[int(s), str(t)] for s, t in self.marks],
        }

    def load_resume_state(self, extra: dict[str, Any]) -> None:
        self.opt_net.load_state_dict(extra["opt_net"])
        self.opt_cam = RowAdam([self.camera_db], lr=self.config.lr_cameras)
        self.opt_cam.load_state_dict(extra["opt_cam"])
        self.opt_deform.load_state_dict(extra["opt_deform"])
        if self.opt_dep is not None and extra.get("opt_dep") is not None:
            self.opt_dep.load_state_dict(extra["opt_dep"])
        self._rng = _rng_from_state(extra["rng"])
        self._perm = np.asarray(extra["perm"], dtype=np.int64)
        self._pos = int(extra["pos"])
        self.marks = [(int(s), str(t)) for s, t in extra.get("marks", [])]


def resume_trainer(
    path: str | Path,
    images: ImageSet | None = None,
    *,
    iterations: int | None = None,
    autosave_path: str | Path | None = None,
    autosave_every: int = 0,
) -> CategoryTrainer:
    """A trainer that continues the run saved in ``path`` exactly where it stopped.

    Args:
        images: the training set (None: load the checkpoint's ``config.data``); its image
            names must be the checkpoint's database names.
        iterations: a new number of main steps (None: the checkpoint's).

    Raises:
        CheckpointError / DataError: a damaged checkpoint, or data that is not the run's.
    """
    from engine.category.checkpoint import read_category_checkpoint

    raw = read_category_checkpoint(path)
    config = raw["config"]
    if iterations is not None:
        config = config_with(config, iterations=int(iterations))
    if images is None:
        images = load_image_set(config.data, size=config.size)
    names = [str(n) for n in raw["databases"]["names"]]
    if list(images.names) != names:
        raise DataError(
            f"the data has other images than the run's databases ({len(images)} against "
            f"{len(names)}): resume needs the training set",
            path=images.root,
        )
    trainer = CategoryTrainer(
        config,
        images,
        raw["template"],
        proxy=raw["proxy"],
        autosave_path=autosave_path,
        autosave_every=autosave_every,
    )
    try:
        trainer.model.load_state_dict(raw["model_state"])
    except RuntimeError as exc:
        raise DataError(
            f"the checkpoint's weights do not fit: {str(exc)[:160]}", path=path
        ) from None
    db = raw["databases"]
    dev = trainer.device
    trainer.camera_db = torch.nn.Parameter(db["camera_db"].to(dev))
    trainer.probabilities = db["probabilities"].to(dev)
    with torch.no_grad():
        trainer.deform_db.copy_(db["deform_db"].to(dev))
        trainer.mirror_db.copy_(db["mirror_db"].to(dev))
    init = raw.get("initial_logits")
    if isinstance(init, torch.Tensor):
        trainer.initial_logits = init.to(dev)
    trainer.step = raw["step"]
    trainer.history = list(raw.get("history", []))
    trainer.metrics = dict(raw["metrics"])
    trainer.load_resume_state(raw.get("extra", {}))
    return trainer


def _rows(db: torch.Tensor, idx: torch.Tensor, width: int) -> torch.Tensor:
    """Rows ``idx`` of a database (I, M * width) as (B, M, width), with a sparse gradient."""
    return torch.nn.functional.embedding(idx, db, sparse=True).view(len(idx), -1, width)


def _rng_state(rng: np.random.Generator) -> dict:
    state = rng.bit_generator.state
    return {
        "bit_generator": state["bit_generator"],
        "state": {k: str(v) for k, v in state["state"].items()},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def _rng_from_state(data: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = {
        "bit_generator": data["bit_generator"],
        "state": {k: int(v) for k, v in data["state"].items()},
        "has_uint32": int(data["has_uint32"]),
        "uinteger": int(data["uinteger"]),
    }
    return rng


def config_with(config: CategoryConfig, **changes: Any) -> CategoryConfig:
    """A copy of ``config`` with ``changes`` (validated)."""
    out = dataclasses.replace(config, **changes)
    out.validate()
    return out
