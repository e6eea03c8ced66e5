"""Starting a sequence's PRN at the classic NRSfM reconstruction (``TrainConfig.warm_start``).

On one sequence (the NRSfM setting) PRN's cost has poor solutions that its nuclear-norm first
stage can lead to and the log-sum stage then enlarges (README, "PRN on sequences nobody tuned
on"), while the log-sum penalty refines a good low-rank reconstruction towards the truth. So a
warm-started run fits the network to the prior-free NRSfM reconstruction of the same 2D
(:func:`engine.nrsfm.baselines.nrsfm_baseline`, the ``nrsfm_bmm`` baseline: seconds on a few
hundred frames, no training, no 3D truth) before its first step, then trains with the log-sum
penalty only. The fit is full-batch Adam on the mean squared error in the network's normalised
frame; it is deterministic (no sampling), so a resumed run never redoes it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from engine.nrsfm.baselines import DEFAULT_RANK, nrsfm_baseline
from engine.nrsfm.normalize import normalize_2d, normalize_3d

#: Full-batch Adam steps and learning rate of the fit to the classic reconstruction: after 500
#: steps a fresh network's e3D was within 0.0004 to 0.006 of the reconstruction's own on the
#: generated development sequences and on drink (development runs, README).
FIT_STEPS = 500
FIT_LR = 1e-3


def baseline_targets(points2d: np.ndarray, visibility: np.ndarray | None) -> np.ndarray:
    """The classic NRSfM reconstruction of a sequence in the network's normalised frame.

    Args:
        points2d: (F, P, 2) float orthographic 2D points, any units (missing values ignored).
        visibility: (F, P) bool, False = missing, or None.

    Returns:
        (F, P, 3) float64: per frame, x and y centred on the visible 2D mean and depth centred
        at 0, all divided by the frame's 2D Frobenius norm (:func:`normalize_3d`); x and y of
        visible points equal the normalised input.
    """
    shapes = nrsfm_baseline(points2d, visibility, rank=DEFAULT_RANK)
    _, center, scale = normalize_2d(points2d, visibility)
    return normalize_3d(shapes, center, scale)


def fit_to_targets(
    model: nn.Module, u: Tensor, targets: Tensor, *, steps: int = FIT_STEPS, lr: float = FIT_LR
) -> float:
    """Fit ``model`` to map the inputs ``u`` (F, P, 2) to ``targets`` (F, P, 3), in place.

    Full-batch Adam on the mean squared error (train mode, so BatchNorm learns the sequence's
    statistics); the model is left in train mode.

    Returns:
        the final mean squared error (normalised units).
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    loss = torch.zeros(())
    for _ in range(steps):
        loss = (model(u) - targets).square().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return float(loss.detach())
