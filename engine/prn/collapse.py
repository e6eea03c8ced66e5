"""Telling a reconstruction from a collapse to flat depth without 3D truth, and choosing among attempts by PRN's own cost.

On one sequence PRN can settle where every depth is (nearly) zero: the reprojection error is
then zero and the low-rank term is that of the flat shapes ``[u, 0]``. The cost alone cannot
tell that from a reconstruction: the nuclear norm grows with the shapes' size, so the true 3D
can cost MORE than flat depth (10.8 % more on the 40-frame generated sequence of
``tests/test_prn_collapse.py``), and good reconstructions cost only 1 to 8 % less (the generated
development sequences, README PRN section). So a run is collapsed when its shapes are flat: RMS
centred depth below :data:`COLLAPSE_DEPTH` of the RMS 2D radius, which needs no 3D truth.
Among attempts that all collapsed, the cost ``f + lam * g`` (g the nuclear norm over the whole
training sequence as one alignment group, with the run's reflection setting) chooses.

The trainer (:class:`engine.prn.training.Trainer`) checks at the end of the first stage and of
the run and, when it collapsed, restarts from other weights (``config.restarts`` times at most), keeps
the attempt of the lowest cost when every attempt collapsed, and warns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from engine.nrsfm.losses import nuclear_norm, reprojection_loss
from engine.nrsfm.procrustes import align

#: Below this RMS depth (relative to the RMS 2D radius) the shapes are flat. Real bodies and
#: faces seen in any view have ratios of 0.2 to 1 (0.38 to 0.48 on the generated development
#: sequences, whose own reconstructions were not flat); a collapse gives about 0.
COLLAPSE_DEPTH = 0.05


@dataclass
class CollapseCheck:
    """One check of a network against flat depth.

    Attributes:
        cost: ``f + lam * g`` of the network's shapes (nuclear norm, normalised units).
        flat_cost: the same for the flat shapes ``[u, 0]`` (f = 0 there).
        gain: ``1 - cost / flat_cost``: how much the network improves on flat depth.
        depth_ratio: RMS centred depth over RMS 2D radius of the network's shapes (about 0 for
            a collapse).
        collapsed: ``depth_ratio < COLLAPSE_DEPTH``.
    """

    cost: float
    flat_cost: float
    gain: float
    depth_ratio: float
    collapsed: bool

    def to_dict(self) -> dict:
        """Plain JSON-able dict (for checkpoints and reports)."""
        return asdict(self)


def sequence_cost(
    x: Tensor,
    u: Tensor,
    visibility: Tensor | None,
    lam: float,
    *,
    reflections: bool,
    max_iter: int = 100,
) -> Tensor:
    """PRN's first-stage cost ``f + lam * ||align(x)||_*`` with all frames in one group.

    Args:
        x: (F, P, 3) shapes in the normalised input frame.
        u: (F, P, 2) normalised 2D input.
        visibility: (F, P) bool or None.
        lam: weight of the nuclear norm.
        reflections: alignment may reflect frames (the run's setting).

    Returns:
        scalar tensor.
    """
    f = reprojection_loss(x, u, visibility)
    aligned, _ = align(x[None], reflections=reflections, max_iter=max_iter)
    return f + lam * nuclear_norm(aligned).sum()


@torch.no_grad()
def check_collapse(
    x: Tensor,
    u: Tensor,
    visibility: Tensor | None,
    lam: float,
    *,
    reflections: bool,
    max_iter: int = 100,
) -> CollapseCheck:
    """Compare the shapes ``x`` (F,P,3) with flat depth on the inputs ``u`` (F,P,2) (module
    docstring); arguments as :func:`sequence_cost`."""
    x = x.double()
    u = u.double()
    flat = torch.cat([u, torch.zeros_like(u[..., :1])], dim=-1)
    if visibility is not None:
        flat = flat * visibility[..., None]
    cost = float(sequence_cost(x, u, visibility, lam, reflections=reflections, max_iter=max_iter))
    flat_cost = float(
        sequence_cost(flat, u, visibility, lam, reflections=reflections, max_iter=max_iter)
    )
    gain = 1.0 - cost / flat_cost if flat_cost > 0 else 0.0
    depth = x[..., 2] - x[..., 2].mean(dim=1, keepdim=True)
    radius = u.square().sum(-1).mean().sqrt()
    ratio = float(depth.square().mean().sqrt() / radius) if float(radius) > 0 else 0.0
    return CollapseCheck(cost, flat_cost, gain, ratio, ratio < COLLAPSE_DEPTH)
