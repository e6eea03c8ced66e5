"""The PRN training loop, shared by the command line and the GUI.

:class:`Trainer` owns a network, its optimiser and a deterministic batch sampler over one
:class:`~engine.io.keypoints.KeypointSequence`. :meth:`Trainer.run` blocks (call it from a worker thread
in a GUI); :meth:`Trainer.pause`, :meth:`Trainer.resume`, :meth:`Trainer.stop` and
:meth:`Trainer.save_checkpoint` may be called from any other thread. Every step reports a
:class:`TrainEvent` to the registered callbacks (from the training thread).

Cost per batch (seed 000, eq. 1): ``J = sum_i f(X_i) + lam * sum_groups g(align(group))`` with
``f`` the orthographic reprojection error ``1/2 ||X_i[:, :2] - U_i||^2`` over visible points and
``g`` the nuclear norm of each Procrustes-aligned group of ``group_size`` frames (with
``config.logsum``, from step ``config.logsum_from`` on the log-sum penalty
:func:`engine.nrsfm.losses.log_sum_penalty` at scale ``logsum_eps * sqrt(group_size)``); inputs are
normalised per frame (centre, divide by the 2D Frobenius norm).

Automatic settings: fields left None in the config (batch and group size, learning-rate
schedule, reflections, the log-sum stage) are chosen from the number of frames by
:meth:`~engine.prn.config.TrainConfig.resolved` when the trainer is built; :attr:`Trainer.config`
and the checkpoints hold the resolved values. With ``reflections`` the alignment inside g may
reflect each frame (orthographic 2D cannot tell a shape from its mirror image, so a frame whose
depth sign is flipped relative to the others is aligned onto them instead of being penalised by
the nuclear norm, which pushes mixed-sign groups towards flat depth; evaluation picks the depth
sign per frame anyway).

Data checks: frames that carry no information after normalisation (no visible point, a single
one, or all visible points at one place; :func:`engine.nrsfm.normalize.informative_frames`) are
left out of the training batches (:attr:`Trainer.skipped_frames`; automatic sizes follow the
frames that train) but stay in the evaluation; data with fewer than 2 informative frames (e.g. an
all-False visibility) is refused with a :class:`~engine.core.errors.DataError`.

Convergence of the alignment: each step's alignment in g runs at most ``config.align_max_iter``
sweeps. A group that has not converged by then still trains (on its last iterate; the implicit
gradient assumes convergence, so it is approximate); the trainer counts such groups per step
(:attr:`TrainEvent.align_not_converged`) and in total (:attr:`Trainer.align_not_converged`,
saved in checkpoints and carried on by a resume), and reports the total as the metric
``align_not_converged`` whenever it is above 0.

Collapse to flat depth (one sequence trained as one group): at the end of the first stage and
of the run the network is checked against flat depth (:mod:`engine.prn.collapse`); a flat
attempt is restarted from the weights of ``seed + k * RESTART_SEED_STEP`` (``config.restarts``
times at most; the run then lasts ``config.iterations`` steps from the start of the attempt kept,
:attr:`Trainer.attempt_start`), and when every attempt is flat the lowest-cost one goes on and
:attr:`Trainer.warnings` says so.

Warm start (``config.warm_start``, automatic for one sequence as one group): before the first
step the network is fitted to the classic NRSfM reconstruction of the training frames
(:mod:`engine.prn.warm_start`) and the optimiser starts afresh; such a run is checked for a
collapse at its end only, and a flat end is warned about without restarts (other weights would
be fitted to the same reconstruction).

Determinism and exact resume: weights are initialised from ``config.seed`` without touching the
global torch RNG; the loop draws no torch randomness (no dropout), and batches come from the
trainer's own ``numpy.random.Generator``. A checkpoint stores the optimiser, the lr scheduler and
the sampler (generator state, current permutation and position), so a run resumed from it
computes the same losses as an uninterrupted run (CPU ops are deterministic for a fixed thread
count; on CUDA the same holds for the dense ops used here, which have deterministic kernels).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.core.device import resolve_device
from engine.core.errors import CheckpointError, DataError, InputError
from engine.core.loop import TrainingLoop
from engine.io.keypoints import KeypointSequence, load_dataset, with_missing
from engine.nrsfm.losses import log_sum_penalty, nuclear_norm, reprojection_loss
from engine.nrsfm.metrics import mpjpe, normalized_error
from engine.nrsfm.normalize import check_trainable, normalize_2d
from engine.nrsfm.procrustes import align
from engine.prn.checkpoint import load_checkpoint, save_checkpoint
from engine.prn.collapse import CollapseCheck, check_collapse
from engine.prn.config import SEQUENCE_MAX_FRAMES, TrainConfig, complete_2d
from engine.prn.model import PRNFCN
from engine.prn.reconstruct import reconstruct
from engine.prn.warm_start import baseline_targets, fit_to_targets

#: Evaluations during training use at most this many frames (evenly spaced) to stay cheap.
EVAL_MAX_FRAMES = 4096
#: A step whose total loss exceeds this multiple of the first step's loss counts as divergence.
DIVERGENCE_FACTOR = 1e4
#: Events carry a preview prediction every this many steps (and on evaluation steps).
PREVIEW_EVERY = 10
#: Attempt k (a restart after a collapse) initialises its weights from ``seed + k * this``.
RESTART_SEED_STEP = 1_000_003
#: Runs whose first stage is shorter than this are not checked for a collapse: the depth
#: layer starts at zero, so a few steps are flat by construction, not collapsed.
MIN_CHECK_STEPS = 200


@dataclass
class TrainEvent:
    """What the training loop reports after each step.

    Attributes:
        step: optimiser steps done (1-based after the first step).
        total_steps: the step the run trains to.
        losses: ``f`` (reprojection, summed over the batch), ``g`` (nuclear norms, or in the
            log-sum stage log-sum penalties, summed over groups, before lambda; it drops where
            the log-sum stage starts), ``mirror`` (squared depth of mirrored frames, before its
            weight) and ``total`` (``f + lam * g + mirror_weight * mirror``).
        lr: learning rate used for this step.
        elapsed_s: seconds of training in this run (pauses excluded).
        eta_s: estimated seconds to ``total_steps``.
        preview: (P, 3) float32 normalised prediction of ``config.preview_frame``, or None on
            steps without a preview.
        metrics: on evaluation steps ``e3d`` and ``mpjpe`` (units of the ground truth) when
            the data has 3D ground truth (empty dict otherwise), and ``align_not_converged``
            (the running total, see below) when it is above 0; None on other steps.
        align_not_converged: alignment groups of this step's g that did not converge within
            ``config.align_max_iter`` sweeps (0 normally).
        align_not_converged_total: the same summed over every step of the training so far
            (resumed runs included).
    """

    step: int
    total_steps: int
    losses: dict[str, float]
    lr: float
    elapsed_s: float
    eta_s: float
    preview: np.ndarray | None = None
    metrics: dict[str, float] | None = None
    align_not_converged: int = 0
    align_not_converged_total: int = 0


class Trainer(TrainingLoop):
    """Trains a :class:`PRNFCN` on one keypoint sequence.

    Args:
        config: training settings (validated here).
        sequence: training data; None loads ``config.data``.
        autosave_path: when set with ``autosave_every > 0``, a checkpoint is written there every
            ``autosave_every`` steps and at the end of the run (never after a failure, so the
            last good checkpoint survives).
        autosave_every: steps between autosaves (0 = off).

    Attributes:
        state: ``'idle' | 'running' | 'paused' | 'stopped' | 'finished' | 'failed'``.
        step: optimiser steps done.
        history: one ``{'f', 'g', 'total'}`` dict per step done.
        metrics: the latest evaluation metrics (plus ``align_not_converged`` when above 0).
        error: the reason of a ``'failed'`` state, else None.
        align_not_converged: alignment groups that did not converge within
            ``config.align_max_iter`` sweeps, summed over all steps done (0 normally).
        skipped_frames: (K,) int64 indices of the frames left out of the training batches
            because they carry no information (module docstring); usually empty.

    Raises:
        InputError: invalid config, unusable device, or data unusable for training
            (:class:`~engine.core.errors.DataError`: fewer than 2 frames, or fewer than 2
            frames with 2 distinct visible points, e.g. an all-False visibility).
    """

    def __init__(
        self,
        config: TrainConfig,
        sequence: KeypointSequence | None = None,
        *,
        autosave_path: str | Path | None = None,
        autosave_every: int = 0,
    ) -> None:
        super().__init__(autosave_path=autosave_path, autosave_every=autosave_every)
        config.validate()
        #: The settings as given (automatic fields None), stored in checkpoints for forms.
        self.requested_config = config
        try:
            self.device = resolve_device(config.device)
        except (ValueError, RuntimeError) as exc:
            raise InputError(str(exc), field="device") from None
        if sequence is None:
            sequence = load_dataset(config.data, seed=config.seed)
        if sequence.num_frames < 2:
            raise DataError(
                f"need at least 2 frames to train, got {sequence.num_frames}", field="points2d"
            )
        self.sequence = sequence
        # missing_ratio and seed are never automatic: the points to remove can be chosen
        # before the automatic sizes, which follow the frames that train.
        train_seq = sequence
        if config.missing_ratio > 0:
            train_seq = with_missing(sequence, config.missing_ratio, seed=config.seed)
            if sequence.visibility is not None:
                # with_missing gives points back in frames left with fewer than 2 visible; in
                # frames that had fewer to begin with those points are missing in the data.
                vis = train_seq.visibility & sequence.visibility
                train_seq = dataclasses.replace(
                    train_seq,
                    points2d=np.where(vis[..., None], train_seq.points2d, 0.0),
                    visibility=vis,
                )
        self.train_sequence = train_seq
        path = sequence.description.get("path")
        informative = check_trainable(
            train_seq.points2d, train_seq.visibility, path=None if path is None else str(path)
        )
        self._frames = np.flatnonzero(informative).astype(np.int64)
        self.skipped_frames = np.flatnonzero(~informative).astype(np.int64)
        vis = None if sequence.visibility is None else sequence.visibility[self._frames]
        complete = complete_2d(vis, config.missing_ratio)
        config = config.resolved(len(self._frames), complete=complete)
        config.validate()
        #: The run's settings with the automatic ones resolved for this data.
        self.config = config
        if config.warm_start and not self.one_group:
            raise InputError(
                "a warm start needs one sequence trained as one group (at most "
                f"{SEQUENCE_MAX_FRAMES} frames, automatic batch and group size)",
                field="warm_start",
            )
        u, _, _ = normalize_2d(train_seq.points2d, train_seq.visibility)
        self._u = torch.as_tensor(np.asarray(u), dtype=torch.float32, device=self.device)
        self._vis = (
            None
            if train_seq.visibility is None
            else torch.as_tensor(train_seq.visibility, dtype=torch.bool, device=self.device)
        )
        self.model = self._new_model(config.seed)
        self._new_optimiser()
        #: Step at which the current attempt started (0, or the step of the last restart);
        #: schedules count from it and the run ends ``config.iterations`` steps after it.
        self.attempt_start = 0
        #: One :class:`~engine.prn.collapse.CollapseCheck` dict (plus ``seed`` and ``step``)
        #: per first-stage check of each attempt, and one for the end of the run.
        self.checks: list[dict[str, Any]] = []
        #: Messages for the user (a collapse that restarts could not avoid).
        self.warnings: list[str] = []
        #: Restarts after a collapse so far, and the seed of the current attempt's weights.
        self.restarts_done = 0
        self.attempt_seed = config.seed
        self._best_collapsed: tuple[float, dict] | None = None
        self._rng = np.random.default_rng(config.seed)
        self._perm = np.zeros(0, dtype=np.int64)
        self._pos = 0
        eval_count = min(sequence.num_frames, EVAL_MAX_FRAMES)
        self._eval_idx = np.unique(
            np.linspace(0, sequence.num_frames - 1, eval_count).round().astype(np.int64)
        )
        self.align_not_converged = 0
        self._step_not_converged = 0

    def _new_model(self, seed: int) -> PRNFCN:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = PRNFCN(self.sequence.num_points, self.config.hidden)
        return model.to(self.device)

    def _new_optimiser(self) -> None:
        cfg = self.config
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=cfg.lr_step, gamma=cfg.lr_decay
        )

    def _warm_start(self) -> None:
        """Fit the fresh network to the classic reconstruction of the training frames
        (:mod:`engine.prn.warm_start`) and give the training a fresh optimiser."""
        seq = self.train_sequence
        vis = None if seq.visibility is None else seq.visibility[self._frames]
        targets = baseline_targets(seq.points2d[self._frames], vis)
        frames = torch.as_tensor(self._frames, device=self.device)
        target = torch.as_tensor(targets, dtype=torch.float32, device=self.device)
        with self._lock:
            fit_to_targets(self.model, self._u[frames], target)
            self._new_optimiser()

    # ----------------------------------------------------------------- collapse and restarts
    @property
    def one_group(self) -> bool:
        """Whether every step trains the whole sequence (all frames that train) as one group."""
        cfg = self.config
        return cfg.batch_size == cfg.group_size == len(self._frames)

    @property
    def checks_collapse(self) -> bool:
        """Whether this run checks for a collapse: one sequence trained as one group, warm
        started or with a first stage of at least :data:`MIN_CHECK_STEPS` steps."""
        cfg = self.config
        return self.one_group and (bool(cfg.warm_start) or self.first_stage_end >= MIN_CHECK_STEPS)

    @property
    def first_stage_end(self) -> int:
        """Attempt-local step at which the first (nuclear-norm) stage ends and is checked (0
        for a warm start, which has no such stage)."""
        cfg = self.config
        return min(cfg.logsum_from, cfg.iterations) if cfg.logsum else cfg.iterations

    def check_collapse(self) -> CollapseCheck:
        """The current network against flat depth on the training frames
        (:mod:`engine.prn.collapse`)."""
        frames = torch.as_tensor(self._frames, device=self.device)
        u = self._u[frames]
        vis = None if self._vis is None else self._vis[frames]
        with self._lock:
            was = self.model.training
            self.model.eval()
            with torch.no_grad():
                x = self.model(u)
            self.model.train(was)
        cfg = self.config
        return check_collapse(
            x, u, vis, cfg.lam, reflections=bool(cfg.reflections), max_iter=cfg.align_max_iter
        )

    def _after_step(self) -> None:
        """Collapse checks at the end of the first stage and of the run (module docstring of
        :mod:`engine.prn.collapse`): a collapsed attempt is restarted from other weights while
        ``config.restarts`` allows; then the lowest-cost collapsed attempt goes on, with a
        warning."""
        if not self.checks_collapse:
            return
        local = self.step - self.attempt_start
        cfg = self.config
        final = local == cfg.iterations
        if not final and local != self.first_stage_end:
            return
        check = self.check_collapse()
        self.checks.append(
            {"seed": self.attempt_seed, "step": self.step, "final": final, **check.to_dict()}
        )
        if not check.collapsed:
            return
        if cfg.warm_start:
            # Other weights would be fitted to the same classic reconstruction again.
            self.warnings.append(
                f"the reconstruction is flat (RMS depth {check.depth_ratio:.3f} of the 2D "
                "radius) after starting from the classic NRSfM reconstruction: PRN found no "
                "depth in this sequence (a run without the warm start may)"
            )
            return
        if self._best_collapsed is None or check.cost < self._best_collapsed[0]:
            self._best_collapsed = (
                check.cost,
                {
                    "model": {k: v.clone() for k, v in self.model.state_dict().items()},
                    "optimizer": _clone_state(self.optimizer.state_dict()),
                    "scheduler": dict(self.scheduler.state_dict()),
                    "local": local,
                    "seed": self.attempt_seed,
                },
            )
        if self.restarts_done < cfg.restarts:
            self.restarts_done += 1
            self.attempt_seed = cfg.seed + self.restarts_done * RESTART_SEED_STEP
            self.model.load_state_dict(self._new_model(self.attempt_seed).state_dict())
            self._new_optimiser()
            self.attempt_start = self.step
            return
        best_cost, best = self._best_collapsed
        if best_cost < check.cost:
            self.model.load_state_dict(best["model"])
            self._new_optimiser()
            self.optimizer.load_state_dict(best["optimizer"])
            self.scheduler.load_state_dict(best["scheduler"])
            self.attempt_start = self.step - best["local"]
            self.attempt_seed = best["seed"]
        self._best_collapsed = None
        self.warnings.append(
            f"the reconstruction is flat after {self.restarts_done + 1} attempt(s) (RMS depth "
            f"{check.depth_ratio:.3f} of the 2D radius, cost {100 * check.gain:.1f} % below flat "
            "depth's): PRN found no depth in this sequence"
        )

    # ----------------------------------------------------------------- loop hooks
    @property
    def total_iterations(self) -> int:
        return self.config.iterations + self.attempt_start

    @property
    def eval_every(self) -> int:
        return self.config.eval_every

    def _learning_rate(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def _evaluate_metrics(self) -> dict[str, float]:
        return self._reported(self.evaluate())

    def _event(self, *, target, losses, lr, elapsed_s, eta_s, metrics) -> TrainEvent:
        preview = None
        if metrics is not None or self.step % PREVIEW_EVERY == 0 or self.step == 1:
            preview = self.preview()
        return TrainEvent(
            step=self.step,
            total_steps=target,
            losses=losses,
            lr=lr,
            elapsed_s=elapsed_s,
            eta_s=eta_s,
            preview=preview,
            metrics=metrics,
            align_not_converged=self._step_not_converged,
            align_not_converged_total=self.align_not_converged,
        )

    def _reported(self, metrics: dict[str, float]) -> dict[str, float]:
        """Evaluation metrics plus ``align_not_converged`` (the current total) when above 0."""
        out = {k: v for k, v in metrics.items() if k != "align_not_converged"}
        if self.align_not_converged > 0:
            out["align_not_converged"] = float(self.align_not_converged)
        return out

    def _next_batch(self) -> np.ndarray:
        """Indices of the next batch: consecutive slices of per-epoch random permutations of
        the frames that train (all frames, in the same order, when none is skipped)."""
        n = self.config.batch_size
        frames = self._frames
        while len(self._perm) - self._pos < n:
            epoch = frames[self._rng.permutation(len(frames))]
            self._perm = np.concatenate([self._perm[self._pos :], epoch])
            self._pos = 0
        idx = self._perm[self._pos : self._pos + n]
        self._pos += n
        return idx

    def _train_step(self) -> dict[str, float] | None:
        """One optimiser step; None (and :attr:`error` set) if the loss or gradient is bad."""
        cfg = self.config
        if cfg.warm_start and self.step == 0:
            self._warm_start()
        idx = torch.as_tensor(self._next_batch(), device=self.device)
        u = self._u[idx]
        vis = None if self._vis is None else self._vis[idx]
        self.model.train()
        x = self.model(u)
        if not bool(torch.isfinite(x).all()):
            self.error = f"training diverged at step {self.step + 1}: non-finite predictions"
            return None
        f = reprojection_loss(x, u, vis)
        groups = cfg.batch_size // cfg.group_size
        grouped = x.reshape(groups, cfg.group_size, x.shape[1], 3)
        aligned, _, info = align(
            grouped, reflections=cfg.reflections, max_iter=cfg.align_max_iter, return_info=True
        )
        if cfg.logsum and self.step - self.attempt_start >= cfg.logsum_from:
            g = log_sum_penalty(aligned, cfg.logsum_eps * math.sqrt(cfg.group_size)).sum()
        else:
            g = nuclear_norm(aligned).sum()
        total = f + cfg.lam * g
        mirror = x.new_zeros(())
        if cfg.mirror_weight > 0:
            proper = aligned
            if cfg.reflections:
                # Found with proper rotations (a reflection-aligned group has none).
                with torch.no_grad():
                    proper, _ = align(grouped.detach(), max_iter=cfg.align_max_iter)
            flipped = mirrored_frames(proper, cfg.mirror_margin).reshape(-1)
            depth = x[..., 2] - x[..., 2].mean(dim=1, keepdim=True)
            mirror = (depth[flipped] ** 2).sum()
            total = total + cfg.mirror_weight * mirror
        value = float(total.detach())
        first = self.history[0]["total"] if self.history else None
        if not math.isfinite(value):
            self.error = f"training diverged at step {self.step + 1}: the loss is {value}"
            return None
        if first is not None and value > DIVERGENCE_FACTOR * max(first, 1e-12):
            self.error = (
                f"training diverged at step {self.step + 1}: loss {value:.4g} is over "
                f"{DIVERGENCE_FACTOR:g} times the first step's {first:.4g} (try a lower lr)"
            )
            return None
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        for p in self.model.parameters():
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                self.error = f"training diverged at step {self.step + 1}: non-finite gradient"
                self.optimizer.zero_grad(set_to_none=True)
                return None
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self._step_not_converged = info.not_converged
        self.align_not_converged += self._step_not_converged
        self._after_step()
        return {
            "f": float(f.detach()),
            "g": float(g.detach()),
            "mirror": float(mirror.detach()),
            "total": value,
        }

    # ----------------------------------------------------------------- evaluation
    def evaluate(self) -> dict[str, float]:
        """Metrics of the current network on (up to :data:`EVAL_MAX_FRAMES` frames of) the data.

        Returns:
            ``{'e3d', 'mpjpe'}`` (MPJPE in the ground truth's units) when the sequence has 3D
            ground truth, else an empty dict. Inputs are the training inputs (with the same
            missing points).
        """
        seq = self.sequence
        if seq.points3d is None:
            return {}
        idx = self._eval_idx
        vis = (
            None if self.train_sequence.visibility is None else self.train_sequence.visibility[idx]
        )
        with self._lock:
            pred = reconstruct(
                self.model, self.train_sequence.points2d[idx], vis, device=self.device
            )
        gt = seq.points3d[idx]
        return {"e3d": float(normalized_error(pred, gt)), "mpjpe": float(mpjpe(pred, gt))}

    def preview(self) -> np.ndarray:
        """(P, 3) float32 normalised prediction of ``config.preview_frame`` (clamped to the data)."""
        frame = min(self.config.preview_frame, self.sequence.num_frames - 1)
        with self._lock:
            was_training = self.model.training
            self.model.eval()
            with torch.no_grad():
                out = self.model(self._u[frame : frame + 1])[0]
            self.model.train(was_training)
        return out.cpu().numpy().astype(np.float32)

    def predict(self, points2d: np.ndarray, visibility: np.ndarray | None = None) -> np.ndarray:
        """Reconstruct (F, P, 2) 2D points to (F, P, 3) in the input's camera frame and units.

        Thread-safe: waits for the current step to finish. See
        :func:`engine.prn.reconstruct.reconstruct`.
        """
        with self._lock:
            return reconstruct(self.model, points2d, visibility, device=self.device)

    # ----------------------------------------------------------------- checkpoints
    def data_description(self) -> dict[str, Any]:
        """JSON-able description of the training data stored in checkpoints."""
        seq = self.sequence
        desc = dict(seq.description)
        desc.update(
            num_frames=seq.num_frames,
            num_points=seq.num_points,
            has_ground_truth=seq.points3d is not None,
            missing_ratio=float(self.config.missing_ratio),
        )
        if seq.names is not None:
            desc["names"] = [str(n) for n in seq.names]
        if seq.edges is not None:
            desc["edges"] = np.asarray(seq.edges).astype(int).tolist()
        # A JSON round trip turns numpy scalars and paths into plain types that
        # torch.load(weights_only=True) accepts.
        return json.loads(json.dumps(desc, default=_jsonable))

    def save_checkpoint(self, path: str | Path) -> None:
        """Write weights, config, data description, metrics, history and resume state atomically.

        Thread-safe: waits for the current step to finish, so the file is a consistent snapshot.
        """
        with self._lock:
            extra = {
                "requested_config": self.requested_config.to_dict(),
                "align_not_converged": int(self.align_not_converged),
                "attempt_start": int(self.attempt_start),
                "restarts_done": int(self.restarts_done),
                "attempt_seed": int(self.attempt_seed),
                "checks": [dict(c) for c in self.checks],
                "warnings": list(self.warnings),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "sampler": {
                    "rng": self._rng.bit_generator.state,
                    "perm": torch.as_tensor(self._perm, dtype=torch.int64),
                    "pos": int(self._pos),
                },
            }
            save_checkpoint(
                path,
                model_state=self.model.state_dict(),
                config=self.config.to_dict(),
                data_description=self.data_description(),
                metrics=self._reported(self.metrics),
                extra=extra,
                step=self.step,
                history=list(self.history),
            )

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        sequence: KeypointSequence | None = None,
        *,
        device: str | None = None,
        **kwargs: Any,
    ) -> Trainer:
        """Rebuild a trainer from a checkpoint to continue exactly where it stopped.

        Args:
            path: checkpoint file.
            sequence: the training data; None loads the checkpoint's ``config.data``.
            device: overrides the checkpoint's device (e.g. ``"cpu"`` for a CUDA-trained run).
            **kwargs: passed to the constructor (``autosave_path``, ``autosave_every``).

        Raises:
            CheckpointError: unusable checkpoint, or data with a different number of points.
        """
        ckpt = load_checkpoint(path)
        config = ckpt.config
        if device is not None:
            config.device = device
            config.validate()
        if sequence is not None and sequence.num_points != ckpt.num_points:
            raise CheckpointError(
                f"the checkpoint's network takes {ckpt.num_points} points but the data has "
                f"{sequence.num_points}",
                path=path,
            )
        trainer = cls(config, sequence, **kwargs)
        if trainer.sequence.num_points != ckpt.num_points:
            raise CheckpointError(
                f"the checkpoint's network takes {ckpt.num_points} points but its data "
                f"'{config.data}' has {trainer.sequence.num_points}",
                path=path,
            )
        try:
            trainer.model.load_state_dict(ckpt.model_state, strict=True)
            extra = ckpt.extra
            if "optimizer" in extra:
                trainer.optimizer.load_state_dict(extra["optimizer"])
            if "scheduler" in extra:
                trainer.scheduler.load_state_dict(extra["scheduler"])
            if "sampler" in extra:
                sampler = extra["sampler"]
                trainer._rng.bit_generator.state = sampler["rng"]
                trainer._perm = sampler["perm"].numpy().astype(np.int64)
                trainer._pos = int(sampler["pos"])
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"cannot restore the training state: {first[:160]}", path=path
            ) from None
        trainer.requested_config = ckpt.requested_config()
        trainer.step = ckpt.step
        trainer.history = [dict(h) for h in ckpt.history]
        trainer.metrics = dict(ckpt.metrics)
        count = ckpt.extra.get("align_not_converged", ckpt.metrics.get("align_not_converged", 0))
        if (
            not isinstance(count, int | float)
            or isinstance(count, bool)
            or not math.isfinite(count)
            or count < 0
        ):
            raise CheckpointError(
                f"expected a count >= 0, got {count!r}", path=path, field="align_not_converged"
            )
        trainer.align_not_converged = int(count)
        start = ckpt.extra.get("attempt_start", 0)
        if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start <= trainer.step:
            raise CheckpointError(
                f"expected a step in [0, {trainer.step}], got {start!r}",
                path=path,
                field="attempt_start",
            )
        trainer.attempt_start = start
        trainer.restarts_done = int(ckpt.extra.get("restarts_done", 0))
        trainer.attempt_seed = int(ckpt.extra.get("attempt_seed", config.seed))
        trainer.checks = [dict(c) for c in ckpt.extra.get("checks", []) if isinstance(c, dict)]
        trainer.warnings = [str(w) for w in ckpt.extra.get("warnings", [])]
        return trainer


def mirrored_frames(aligned: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Frames whose mirror image fits their group's consensus shape clearly better than they do.

    Args:
        aligned: (G, n_f, P, 3) Procrustes-aligned groups (output of :func:`engine.nrsfm.procrustes.align`).
        margin: in (0, 1]; a frame counts as mirrored when its mirror image's residual is below
            ``margin`` times its own. Under 1 it spares true shapes whose mirror image happens
            to fit a little better (a fifth of the frames of correct 3D in random groups of
            128 synthetic human frames at 1, none at 0.8).

    Returns:
        (G, n_f) bool, no gradient: True where negating the frame's depth (a reflection, which
        orthographic 2D cannot see) and re-rotating it optimally onto the group's mean shape
        leaves a residual below ``margin`` times the frame's own.
    """
    with torch.no_grad():
        mean = aligned.mean(dim=1, keepdim=True)
        residual = (aligned - mean).square().sum(dim=(-1, -2))
        mirrored = aligned * aligned.new_tensor([1.0, 1.0, -1.0])
        # min over rotations R of ||A R - M||^2 = |A|^2 + |M|^2 - 2 (s1 + s2 + sign(det H) s3),
        # H = A^T M (Kabsch with the det +1 constraint).
        h = mirrored.transpose(-1, -2) @ mean
        sv = torch.linalg.svdvals(h)
        sign = torch.sign(torch.linalg.det(h))
        trace = sv[..., 0] + sv[..., 1] + sign * sv[..., 2]
        mirrored_residual = (
            mirrored.square().sum(dim=(-1, -2)) + mean.square().sum(dim=(-1, -2)) - 2 * trace
        )
        return mirrored_residual < margin * residual


def _clone_state(state: dict) -> dict:
    """A deep copy of an optimiser state dict (tensors cloned)."""
    out = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.clone()
        elif isinstance(value, dict):
            out[key] = _clone_state(value)
        elif isinstance(value, list):
            out[key] = [_clone_state(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
