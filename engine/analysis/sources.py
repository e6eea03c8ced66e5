"""Shape sets to run PCA on: PRN reconstructions, deformed meshes, handle offsets, files.

Every function returns a float64 CPU tensor of shape (S, P, 3) (S shapes, frames first, as
everywhere in the project) ready for :func:`engine.analysis.pca.pca`.

* :func:`reconstructions_for_pca` reconstructs a keypoint sequence with a PRN checkpoint and
  removes rotation and translation by generalised Procrustes alignment (so that rotation does
  not show up as a "mode"), see :func:`align_shapes` for how large sets are aligned.
* :func:`sample_handle_offsets` / :func:`sample_deformed_meshes` draw random handle offsets and
  push them through a Laplacian editing basis (seed 001's deformation model).
* :func:`load_handle_sets` reads the editor's saved handle-set JSON files (push their offsets
  through :func:`deform_offsets`); :func:`load_mesh_set` reads meshes with the same connectivity.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from engine.core.errors import DataError, InputError, MeshError
from engine.core.progress import CancelFn, Cancelled, ProgressFn


def align_shapes(shapes: Tensor | np.ndarray, *, group_size: int = 512) -> Tensor:
    """Remove translation and rotation from a set of shapes by Procrustes alignment.

    Aligning all S shapes in one generalised Procrustes problem is what the PRN uses; for large
    S it is done in two levels so that the cost stays linear and memory bounded: the shapes are
    split into consecutive groups of ``group_size`` (batched in one
    :func:`engine.nrsfm.procrustes.align` call), then the groups' mean shapes are themselves aligned
    and each group is rotated by its mean's rotation. For S <= group_size this is exactly one
    generalised Procrustes alignment. Rotation only, no scale (the project's convention).

    Args:
        shapes: (S, P, 3) float shapes.
        group_size: shapes per first-level group.

    Returns:
        (S, P, 3) float64 CPU tensor: each shape centred and rotated into a common frame.
    """
    from engine.nrsfm.procrustes import align

    x = torch.as_tensor(np.asarray(shapes) if not isinstance(shapes, Tensor) else shapes)
    x = x.detach().to(device="cpu", dtype=torch.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise DataError(f"expected shapes of shape (S, P, 3), got {tuple(x.shape)}", field="shapes")
    num = x.shape[0]
    group_size = max(1, int(group_size))
    with torch.no_grad():
        if num <= group_size:
            return align(x)[0]
        full = (num // group_size) * group_size
        parts = [
            align(x[:full].reshape(-1, group_size, *x.shape[1:]))[0].reshape(full, *x.shape[1:])
        ]
        if full < num:
            parts.append(align(x[full:])[0])
        sizes = [group_size] * (full // group_size) + ([num - full] if full < num else [])
        aligned = torch.cat(parts)
        groups = torch.split(aligned, sizes)
        means = torch.stack([g.mean(dim=0) for g in groups])
        _, rotations = align(means)
        # align returns (X_i - centroid_i) @ R_i^T; group means are already centred.
        return torch.cat([g @ r.T for g, r in zip(groups, rotations)])


def reconstructions_for_pca(
    checkpoint_path: str | Path,
    sequence: Any,
    *,
    device: str | torch.device | None = None,
    group_size: int = 512,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Tensor:
    """Reconstruct a keypoint sequence with a PRN checkpoint and align the reconstructions.

    Args:
        checkpoint_path: a PRN checkpoint (``engine.prn.checkpoint.load_model``).
        sequence: an ``engine.io.keypoints.KeypointSequence``, or a data spec / file path accepted by
            ``engine.io.keypoints.load_dataset`` (``"synthetic:human"``, ``drink.mat``, ``x.npz``).
        device: where the network runs (None: the engine's default device).
        group_size: see :func:`align_shapes`.
        progress, cancel: progress callback ``(fraction, message)`` and cancel poll.

    Returns:
        (F, P, 3) float64 CPU tensor: the reconstructions in the input's units, centred and
        rotated into a common frame.

    Raises:
        CheckpointError / DataError: unusable checkpoint or data; the checkpoint's number of
        points must match the sequence's.
    """
    from engine.io.keypoints import load_dataset
    from engine.prn.checkpoint import load_model
    from engine.prn.reconstruct import reconstruct

    def report(fraction: float, message: str) -> None:
        if cancel is not None and cancel():
            raise Cancelled()
        if progress is not None:
            progress(fraction, message)

    report(0.0, "loading checkpoint")
    model, _ = load_model(checkpoint_path, device=device)
    if isinstance(sequence, str | Path):
        report(0.1, "loading data")
        sequence = load_dataset(str(sequence))
    expected = _model_points(model)
    if expected is not None and expected != sequence.num_points:
        raise DataError(
            f"the checkpoint was trained on {expected} points but the data has {sequence.num_points}",
            path=checkpoint_path,
        )
    report(0.2, f"reconstructing {sequence.num_frames} frames")
    points3d = reconstruct(model, sequence.points2d, sequence.visibility, device=device)
    report(0.7, "Procrustes alignment")
    aligned = align_shapes(points3d, group_size=group_size)
    report(1.0, "reconstructions ready")
    return aligned


def _model_points(model: Any) -> int | None:
    num = getattr(model, "num_points", None)
    return int(num) if num is not None else None


def sample_handle_offsets(
    basis: Any,
    num_samples: int,
    scale: float,
    seed: int = 0,
    *,
    length_scale: float | None = 0.15,
) -> Tensor:
    """Random handle offsets for a Laplacian editing basis.

    Each offset coordinate is normal with standard deviation ``scale * diag``, ``diag`` the
    template's bounding-box diagonal (so ``scale`` means the same on every mesh). Offsets of
    nearby handles are correlated, as the parts of an articulated body move together: for each
    coordinate the K offsets are a Gaussian process over the handles' rest positions with the
    squared-exponential covariance ``exp(-|p_k - p_l|^2 / (2 (length_scale * diag)^2))``.
    ``length_scale=None`` draws independent offsets instead.

    Args:
        basis: an ``engine.deform.editing.EditingBasis`` (K handles on a template of N vertices).
        num_samples: S.
        scale: relative standard deviation (e.g. 0.03).
        seed: makes the draw reproducible.
        length_scale: correlation length relative to ``diag``, or None.

    Returns:
        (S, K, 3) float64 CPU tensor of offsets.
    """
    if num_samples < 1:
        raise InputError(f"num_samples must be >= 1, got {num_samples}", field="num_samples")
    if not scale > 0:
        raise InputError(f"scale must be > 0, got {scale}", field="scale")
    template = _template(basis)
    diag = float(torch.linalg.vector_norm(template.max(dim=0).values - template.min(dim=0).values))
    gen = torch.Generator().manual_seed(int(seed))
    k = int(basis.num_handles)
    z = torch.randn(int(num_samples), k, 3, generator=gen, dtype=torch.float64) * (scale * diag)
    if length_scale is None:
        return z
    if not length_scale > 0:
        raise InputError(f"length_scale must be > 0, got {length_scale}", field="length_scale")
    rest = torch.as_tensor(np.asarray(basis.rest_handles, dtype=np.float64))
    sq = torch.cdist(rest, rest) ** 2
    cov = torch.exp(-sq / (2.0 * (length_scale * diag) ** 2))
    # Jitter keeps the Cholesky factor defined when two handles (nearly) coincide.
    chol = torch.linalg.cholesky(cov + 1e-9 * torch.eye(k, dtype=torch.float64))
    return torch.einsum("kj,sjc->skc", chol, z)


def sample_deformed_meshes(
    basis: Any,
    num_samples: int,
    scale: float,
    seed: int = 0,
    *,
    length_scale: float | None = 0.15,
) -> Tensor:
    """Deformed copies of the basis's template under random handle offsets.

    Args: as :func:`sample_handle_offsets`.

    Returns:
        (S, N, 3) float64 CPU tensor: ``basis.deform(offsets)`` for S random offset sets.
    """
    offsets = sample_handle_offsets(basis, num_samples, scale, seed, length_scale=length_scale)
    return deform_offsets(basis, offsets)


def deform_offsets(basis: Any, offsets: Tensor) -> Tensor:
    """Push handle offsets (S, K, 3) through an editing basis: (S, N, 3) float64 CPU."""
    out = basis.deform(torch.as_tensor(offsets, dtype=torch.float64))
    return torch.as_tensor(out).to(device="cpu", dtype=torch.float64)


def load_mesh_set(paths: Sequence[str | Path]) -> Tensor:
    """Vertices of several meshes with the same connectivity, stacked.

    Args:
        paths: mesh files readable by ``engine.io.mesh.load_mesh`` (at least 2).

    Returns:
        (S, N, 3) float64 CPU tensor.

    Raises:
        MeshError: unreadable file, or a mesh whose vertex count or faces differ from the first.
    """
    from engine.io.mesh import load_mesh

    if len(paths) < 2:
        raise InputError(f"need at least 2 meshes for PCA, got {len(paths)}")
    first = load_mesh(paths[0])
    out = [first.vertices]
    for path in paths[1:]:
        mesh = load_mesh(path)
        if mesh.vertices.shape != first.vertices.shape:
            raise MeshError(
                f"has {len(mesh.vertices)} vertices but {paths[0]} has {len(first.vertices)}: "
                "PCA needs meshes with the same vertices",
                path=path,
            )
        if mesh.faces.shape != first.faces.shape or not np.array_equal(mesh.faces, first.faces):
            raise MeshError(f"its faces differ from those of {paths[0]}", path=path)
        out.append(mesh.vertices)
    return torch.from_numpy(np.stack(out).astype(np.float64))


def _template(basis: Any) -> Tensor:
    return torch.as_tensor(np.asarray(basis.template, dtype=np.float64))


def category_deformations(
    checkpoint: str | Path,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> tuple[Tensor, np.ndarray]:
    """The learned deformations of a category checkpoint's training instances (seed 001,
    section 4): each instance's database offsets pushed through the learned deformer.

    Returns:
        shapes (I, N, 3) float64 CPU tensor in template units, and the template's faces (F, 3).

    Raises:
        CheckpointError: not a readable category checkpoint.
        DataError: fewer than 2 instances.
    """
    from engine.category.checkpoint import load_category_run

    run = load_category_run(checkpoint, device="cpu")
    count = int(run.deform_db.shape[0])
    if count < 2:
        raise DataError(f"need at least 2 instances for PCA, the checkpoint has {count}")
    scale = float(run.model.template_scale)
    shapes = []
    with torch.no_grad():
        for start in range(0, count, 32):
            if cancel is not None and cancel():
                raise Cancelled()
            rows = run.deform_db[start : start + 32]
            offsets = rows.double().view(len(rows), -1, 3) * scale
            shapes.append(run.model.deformer(offsets))
            if progress is not None:
                progress(min(start + 32, count) / count, "deforming the learned instances")
    return torch.cat(shapes).double(), np.asarray(run.template.mesh.faces, dtype=np.int64)
