"""Where the shapes of a PCA come from: one object per kind of source, each with one method.

Every source is a small frozen dataclass with ``describe()`` (one line for titles) and
``shapes(progress, cancel) -> ShapeSet``; the Modes workspace builds one from its controls and
the PCA job calls ``shapes`` without knowing the kind, so a new kind of source is one more class
here, not one more branch in the app. The functions doing the work are in
:mod:`engine.analysis.sources`.

* :class:`DemoDeformations`: random, spatially correlated handle offsets on a template (the demo
  quadruped by default) pushed through its Laplacian editing basis.
* :class:`HandleSetFiles`: the editor's saved handle sets of one mesh.
* :class:`MeshFiles`: meshes with the same connectivity.
* :class:`PRNReconstructions`: a PRN checkpoint's reconstructions of a keypoint data set.
* :class:`CategoryDeformations`: a category checkpoint's learned per-instance deformations
  (seed 001, section 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from engine.core.errors import InputError
from engine.core.progress import CancelFn, Cancelled, ProgressFn

DEMO_TEMPLATE = Path(__file__).resolve().parents[2] / "assets" / "demo_template.ply"


@dataclass(frozen=True)
class ShapeSet:
    """Shapes to analyse.

    Attributes:
        shapes: (S, P, 3) float64 CPU tensor.
        faces: (F, 3) int64 triangles when the shapes are meshes, else None.
        edges: (E, 2) int64 bones when the shapes are skeletons, else None.
        aligned: rotation and translation already removed (Procrustes).
    """

    shapes: Tensor
    faces: np.ndarray | None = None
    edges: np.ndarray | None = None
    aligned: bool = False


def _reporter(progress: ProgressFn | None, cancel: CancelFn | None) -> ProgressFn:
    def report(fraction: float, message: str) -> None:
        if cancel is not None and cancel():
            raise Cancelled()
        if progress is not None:
            progress(fraction, message)

    return report


class ShapeSource:
    """Base of the sources (see the module docstring)."""

    def describe(self) -> str:
        raise NotImplementedError

    def shapes(
        self, progress: ProgressFn | None = None, cancel: CancelFn | None = None
    ) -> ShapeSet:
        raise NotImplementedError


@dataclass(frozen=True)
class DemoDeformations(ShapeSource):
    """``num_samples`` random deformations of ``mesh`` (None: the demo template) by
    ``num_handles`` handles; ``scale`` is relative to the bounding-box diagonal."""

    mesh: str | None = None
    num_samples: int = 400
    scale: float = 0.07
    num_handles: int = 16
    seed: int = 0

    def describe(self) -> str:
        name = "demo" if self.mesh is None else Path(self.mesh).name
        return f"{name}: {self.num_samples} deformations, {self.num_handles} handles"

    def shapes(self, progress=None, cancel=None) -> ShapeSet:
        from engine.analysis.sources import sample_deformed_meshes
        from engine.deform.editing import build_editing_basis
        from engine.io.mesh import load_mesh

        report = _reporter(progress, cancel)
        mesh = load_mesh(self.mesh or DEMO_TEMPLATE)
        basis = build_editing_basis(
            mesh.vertices, mesh.faces, num_handles=self.num_handles, cancel=cancel
        )
        report(0.6, "sampling deformations")
        shapes = sample_deformed_meshes(basis, self.num_samples, self.scale, self.seed)
        return ShapeSet(shapes, faces=mesh.faces)


@dataclass(frozen=True)
class HandleSetFiles(ShapeSource):
    """The editor's saved handle sets ``paths`` of ``mesh`` (None: the demo template)."""

    paths: tuple[str, ...] = ()
    mesh: str | None = None

    def describe(self) -> str:
        return f"{len(self.paths)} handle sets"

    def shapes(self, progress=None, cancel=None) -> ShapeSet:
        from engine.analysis.sources import deform_offsets
        from engine.deform.editing import build_editing_basis
        from engine.io.handle_sets import load_handle_sets
        from engine.io.mesh import load_mesh, mesh_hash

        report = _reporter(progress, cancel)
        mesh = load_mesh(self.mesh or DEMO_TEMPLATE)
        sets = load_handle_sets(self.paths)
        if sets.mesh_hash != mesh_hash(mesh.vertices, mesh.faces):
            raise InputError(
                f"the handle sets were saved for another mesh ({sets.num_vertices} vertices) "
                "than the chosen one: choose the mesh they were saved for",
                path=self.paths[0],
                field="mesh_hash",
            )
        report(0.2, "building the editing basis")
        basis = build_editing_basis(
            mesh.vertices, mesh.faces, handle_ids=torch.as_tensor(sets.handle_ids), cancel=cancel
        )
        return ShapeSet(deform_offsets(basis, sets.offsets), faces=mesh.faces)


@dataclass(frozen=True)
class MeshFiles(ShapeSource):
    """Meshes ``paths`` with the same connectivity."""

    paths: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{len(self.paths)} meshes"

    def shapes(self, progress=None, cancel=None) -> ShapeSet:
        from engine.analysis.sources import load_mesh_set
        from engine.io.mesh import load_mesh

        _reporter(progress, cancel)(0.0, "reading meshes")
        return ShapeSet(load_mesh_set(self.paths), faces=load_mesh(self.paths[0]).faces)


@dataclass(frozen=True)
class PRNReconstructions(ShapeSource):
    """A PRN ``checkpoint``'s aligned reconstructions of ``data`` (None: its training data)."""

    checkpoint: str = ""
    data: str | None = None

    def describe(self) -> str:
        return f"PRN {Path(self.checkpoint).name} on {self.data or 'its training data'}"

    def shapes(self, progress=None, cancel=None) -> ShapeSet:
        from engine.analysis.sources import reconstructions_for_pca
        from engine.io.keypoints import load_dataset, skeleton_edges
        from engine.prn.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(self.checkpoint)
        sequence = load_dataset(self.data or checkpoint.config.data)
        shapes = reconstructions_for_pca(
            self.checkpoint, sequence, progress=progress, cancel=cancel
        )
        return ShapeSet(shapes, edges=skeleton_edges(sequence), aligned=True)


@dataclass(frozen=True)
class CategoryDeformations(ShapeSource):
    """A category ``checkpoint``'s learned deformations of its training instances."""

    checkpoint: str = ""

    def describe(self) -> str:
        return f"category {Path(self.checkpoint).name}: learned deformations"

    def shapes(self, progress=None, cancel=None) -> ShapeSet:
        from engine.analysis.sources import category_deformations

        shapes, faces = category_deformations(self.checkpoint, progress=progress, cancel=cancel)
        return ShapeSet(shapes, faces=faces)
