"""Training configuration of a Procrustean Regression Network: one validated, serialisable record.

The same :class:`TrainConfig` drives the CLI (``python main.py train``), the GUI training panel and
the checkpoints (a checkpoint stores ``config.to_dict()`` and restores it with ``from_dict``).

Defaults follow the PRN authors (seed 000 / DESIGN.md) where that works on a 2-core CPU: Adam
with lr 1e-4 and weight decay 1e-4, lr x0.8 every 5000 iterations, f summed over the batch.
Deviations, each measured as e3D on the NRSfM sequence pickup (settings of each test said; these
development runs used a zero-initialised depth layer, see :mod:`engine.prn.model`; the README's
tables come from ``benchmarks/prn_*.py`` with the final code):

- ``iterations`` 3000 (for one sequence; larger data below) and ``hidden`` 256 instead of
  14k-70k and 1024: one NRSfM sequence must train in under 5 minutes on a 2-core CPU. Width
  1024 trains 4x slower per step and was no better (1500 steps, groups of 64: 0.060 vs
  0.057); the error plateaus after about 2000 steps (3000 steps: 0.0535; 5000 steps at lr
  1e-3: 0.059).
- Large data: ``batch_size`` 256 in ``group_size`` 128 instead of 128 in groups of 32 (the
  automatic settings below; for sequences one whole-sequence group): the nuclear norm of a
  larger group is a better low-rank signal (800 steps at lr 1e-3: groups of 32 0.079, of 64
  0.069; 1500 steps at lr 1e-4: groups of 64 in batches of 128 0.057, groups of 128 in
  batches of 256 0.054, one group of 256 0.054).
- ``lam`` 0.01 instead of 0.05: the nuclear norm also pulls the xy outputs away from the
  observed 2D; with 0.05 that 2D error alone is about 0.027 e3D (0.007 with 0.01; 800 steps,
  groups of 32), 0.03 gave 0.062 against 0.057 (groups of 64), and 0.003 learns depth more
  slowly (stretch, 2000 steps: 0.071 vs 0.049).
- ``mirror_weight`` (not in the paper; default 0, the authors' cost): the squared depth of
  frames whose mirror image fits their group better is penalised. With the authors' groups of
  32 the network settled where the frames seen from some view angles are reconstructed
  mirrored (e3D 0.13 on pickup; 0.09 with a weight of 0.5), but with small random initial
  depths the term sees half of the frames as mirrored and can hold the network at flat depth
  (yoga: 0.38 with 0.5), so it is off for sequences. Reflections in g (below) handle mirrored
  frames there instead; on large data, where g has no reflections, it is on (below).
- Automatic settings (``None`` in the fields ``lam``, ``mirror_weight``, ``batch_size``,
  ``group_size``, ``lr``, ``lr_decay``, ``lr_step``, ``reflections``, ``logsum``,
  ``logsum_from``, ``logsum_eps`` and ``warm_start``; :meth:`TrainConfig.resolved` fills them
  from the number of frames, and a trainer and its checkpoints hold the resolved values). Data
  of at most :data:`SEQUENCE_MAX_FRAMES` frames (one NRSfM sequence) trains as one sequence:
  the WHOLE sequence is one alignment group per step, reflection-invariant alignment in g, and
  (without the warm start, last item) Adam at lr 1e-3 halved every 1000 steps, g the nuclear
  norm for the first 1000 steps and the log-sum penalty after them. Larger data: batches of
  256 in groups of 128, no reflections, lr 1e-4 x0.8 every 5000 steps, and the stages and
  weights of the item below. Measured with the defaults
  otherwise (3000 steps, e3D on drink / face / pickup / stretch / yoga, 1 thread): the
  large-data settings 0.103 / 0.038 / 0.306 / 0.098 / 0.080 (pickup stays at flat depth, zero
  depth 0.331); with reflections 0.033 / 0.038 / 0.303 / 0.053 / 0.096 (mirrored frames no
  longer pull depth flat); plus lr 1e-3 halved every 1000 steps 0.032 / 0.038 / 0.068 / 0.052 /
  0.100; plus one group of min(frames, 512) 0.031 / 0.034 / 0.054 / 0.039 / 0.074. Without the
  decay (lr 1e-3 constant) yoga gave 0.155; at lr 1e-4 one whole-sequence group left pickup flat
  (0.289); lam hardly matters there (yoga 0.003: 0.077, 0.01: 0.074, 0.03: 0.075). On the
  synthetic human set (20,000 frames, held-out MPJPE 127.9 mm with the large-data settings) each
  of these changes hurt: reflections 152.5 mm, the lr 1e-3 schedule 157.1, groups of 512 with
  both 154.7, hence the size rule.
- Large data's g: lam 0.1, the log-sum stage at scale 0.01 and the depth-sign term at 0.5
  (``mirror_weight``; sequences keep 0.01, 0.003 and 0). Chosen on held-out motions of
  another generator seed (``synthetic:human?split=test&frames=2000&seed=7``, validation MPJPE
  in mm, one thread, 4000 steps unless said; the README's held-out set, seed 0, was not used
  for any choice): the nuclear norm alone stays at 117-132 whatever lam (0.01: 122, 0.03: 125,
  0.1: 124), steps (10,000: 132), data (100,000 frames: 117 at 10,000 steps) or the depth-sign
  term (0.5: 122). The log-sum
  stage at lam 0.01 with scale 0.003 / 0.01 / 0.03 gave 114 / 104 / 119, and with scale 0.01
  lam 0.03 99 and lam 0.1 92 (seed 0); but on training seeds 1 and 2 it inflated the depth
  (RMS depth 1.2 of the RMS 2D radius against 0.45 for good runs; 320-390 mm), also at lam
  0.03, when switched later (step 2500) or with 0.3 of the nuclear norm kept (156). With the
  depth-sign term it held on all three seeds: 101.5 / 93.2 / 100.3 (4000 steps) and 105.3 /
  93.8 (3000 steps, seeds 0 / 1), hence the rule and the unchanged 3000 steps. With 10 % of
  the 2D points missing (10,000 frames, 1500 steps, the validation frames with 10 % removed)
  the depth-sign term failed: 174.9 with it, 121.7 without, 149.3 for the nuclear norm at lam
  0.01; so it is used only when the training 2D is complete (one seed, one ratio: a rule to
  check further).
- ``mirror_margin`` 0.8 (not in the paper): the depth-sign term counts a frame as mirrored
  only when its mirror image's residual to the group's mean is below 0.8 of its own. The
  measurements above used the plain test (margin 1), under which a fifth of the frames of the
  TRUE 3D count as mirrored in random groups of 128 validation frames (0.1 % at 0.8): the term
  flattened correct frames. The seed-0 network of 3000 steps on the 100 clips of
  ``synthetic:human`` (the demo checkpoint then) had 0.77 of the truth's RMS depth,
  and on validation groups f + lam g of the truth was 10 % below the network's while the term
  made the truth's whole cost nine times the network's. Validation MPJPE with margin 0.8:
  93.0 / 92.9 (seeds 0 / 1, 3000 steps; margin 1: 105.3 / 93.8), 0.6: 94.4 (seed 0); seed 1
  without the term inflated the depth again (333.8 at step 2000), with margin 0.8 it held
  (RMS depth 0.43 of the 2D radius; the truth's 0.52). Tried with margin 0.8 and found no
  better (seed 0): 6000 steps 92.6, lr 3e-4 105.3 (5000 steps), lam 0.03 96.8 and scale 0.03
  101.3 (4000 steps), hidden 512 194.6 at step 2000 (depth inflating); with margin 1, 15,000
  steps reached 92.7, and 1000 clips of 20 frames instead of 100 of 200 92.7 at 10,000 steps
  (96.1 with 100 clips). With 10 % of the points missing (the setting above, margin 0.8) the
  term no longer fails (124.5 with it, 122.5 without), so the rule that keeps it off there stays.
- ``iterations`` automatic: 3000 for a sequence (above), 20,000 for larger data. With the
  margin the network fits its training frames better than it generalises (seed 0, 3000 steps
  on the 100 clips of ``synthetic:human``: 73.7 mm on all its training frames, 88.5 on the
  100 validation clips ``synthetic:human?split=test&frames=20000&seed=7``), so more clips and
  more steps help, measured on those 100 validation clips (``nrsfm_bmm`` fitted to each block
  of 10 clips there: 77.2): 100 clips 88.5 / 85.2 at 3000 / 10,000 steps; 500 clips (100,000
  frames) 84.8 / 77.9 (seed 0), 78.4 / 76.4 / 75.8 at 10,000 / 12,000 / 14,000 (seed 1); 1000
  clips 78.1 / 76.6 / 77.2 at 10,000 / 12,000 / 14,000 (seed 0), no better than 500. 20,000
  steps take about 15 minutes on one thread, inside the 30-minute budget of the learned
  setting (the README's "PRN on held-out synthetic human motion", trained on 500 clips).
- The log-sum stage (``logsum``, ``logsum_from`` 1000, ``logsum_eps`` 0.003; not in the paper).
  With the nuclear norm alone PRN could not reach the classic ``nrsfm_bmm`` (0.014 / 0.020 /
  0.030 / 0.025 / 0.024): minimising that cost directly over free depths
  (``benchmarks/prn_cost_floor.py``) ends, from small depths and from the ground truth alike,
  at 0.018 / 0.030 / 0.050 / 0.038 / 0.070, with g below the ground truth's; the nuclear norm
  shrinks the dominant singular values (the mean shape's depth) as much as the small ones.
  The log-sum penalty ``sum s log(1 + sigma / s)`` (:func:`engine.nrsfm.losses.log_sum_penalty`)
  penalises small singular values like the nuclear norm and large ones ever less. Started from
  scratch it leads the network to a wrong reconstruction (yoga 0.57-0.62; likewise g = the
  singular values after the first 1 or 3, where the depth grew without bound), but as a
  refinement of a nuclear-norm solution it converges near the truth: over free depths from the
  nuclear-norm minimiser (the same benchmark, final scale) it reaches 0.008 / 0.017 / 0.016 /
  0.016 / 0.015, below ``nrsfm_bmm`` everywhere. In the network (a prototype whose scale was
  relative to the group's largest singular value, about ``sqrt(group_size)`` here), switching
  at step 2000 gave yoga 0.024, at step 1000 0.025 (0.020 with 4000 steps); drink needed the
  whole sequence as one group (groups of 512: 0.019, whole: 0.012); a smaller scale (0.005
  instead of 0.01) gave drink / face / pickup / stretch / yoga 0.009 / 0.019 / 0.019 / 0.018 /
  0.021, a larger one (0.03) yoga 0.024 and face 0.021; lam 0.03 gave yoga 0.023 and face
  0.020, lam 0.1 yoga 0.034 (the 2D error grows). With the final form of the scale, seeds
  0 / 1 / 2: ``logsum_eps`` 0.005 gave face 0.0190 / 0.0201 / 0.0199 (``nrsfm_bmm`` 0.0199) and
  yoga 0.0228 / 0.0203 / 0.0183; 0.003 gave face 0.0180 / 0.0195 / 0.0190 and yoga 0.0219 /
  0.0194 (seeds 0 / 1), and on seed 0 drink 0.0097 (0.0116 with 0.005), pickup 0.0203
  (0.0199), stretch 0.0177 (0.0179); 0.002 gave face 0.0188 / 0.0200; switching at step 500
  instead of 1000 gave face 0.0193 / 0.0200. Hence 0.003. The final settings' results are the
  README's tables.
- ``warm_start`` (not in the paper; automatic: on for one sequence trained as one group): the
  network is first fitted to the classic NRSfM reconstruction of the same 2D
  (:mod:`engine.prn.warm_start`, the ``nrsfm_bmm`` baseline), then trains 1000 steps with the
  log-sum penalty from step 0 at lr 1e-4 (``WARM_ITERATIONS``, ``WARM_LR``). The settings above
  (3000 steps, nuclear norm then log-sum, lr 1e-3) are what ``warm_start`` False runs. Chosen
  on ten generated development sequences (``engine.synthetic.nrsfm.sequence_spec(i, 100)``,
  i = 0..9, seed 0, one thread; never the README's collection 1), e3D without / with the warm
  start: 0.062 / 0.035, 0.185 / 0.111, 0.061 / 0.064, 0.147 / 0.153, 0.055 / 0.037, 0.101 /
  0.130, 0.433 / 0.427, 0.280 / 0.220, 0.116 / 0.114, 0.589 / 0.185 (better on 7 of 10, mean
  0.203 / 0.148), in 46-131 s instead of 105-282 s. With lr 1e-3 the log-sum stage from the
  warm start inflated the depth (e3D 1.53 on the first, 0.37 on the fifth) or diverged (the
  third); a linear learning-rate warm-up over the first 100 steps after the fit gave mean
  0.155 over the ten (0.208 against 0.111 on the second), so none. PRN's own cost cannot
  choose between the two per sequence: it was lower for the run without the warm start on
  five of the six development sequences compared, where that run was worse on two (0.062
  against 0.035, 0.185 against 0.111). The shared sequences' leave-one-out choice between the
  two is the README's table.
- The network's xy output is the input plus a correction and its output layers start at zero
  (see :mod:`engine.prn.model`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.core.errors import CheckpointError, InputError

#: Data of at most this many frames is one sequence to reconstruct (the NRSfM setting) and gets
#: the sequence settings of :meth:`TrainConfig.resolved`.
SEQUENCE_MAX_FRAMES = 2048
#: Automatic ``iterations``: for one sequence, and for larger data (module docstring).
SEQUENCE_ITERATIONS = 3000
LARGE_DATA_ITERATIONS = 20000
#: Fields added after format version 1: a checkpoint without them gets their default, or the
#: value in :data:`_OLD_BEHAVIOUR` where the default (automatic) would train differently.
_ADDED_FIELDS = (
    "reflections",
    "logsum",
    "logsum_from",
    "logsum_eps",
    "align_max_iter",
    "restarts",
    "mirror_margin",
    "warm_start",
)
_OLD_BEHAVIOUR: dict[str, Any] = {
    "reflections": False,
    "logsum": False,
    "logsum_from": 1000,
    "logsum_eps": 0.003,
    "restarts": 0,
    "mirror_margin": 1.0,
    "warm_start": False,
}
#: Automatic ``iterations`` and ``lr`` of a warm-started sequence (module docstring).
WARM_ITERATIONS = 1000
WARM_LR = 1e-4


@dataclass
class TrainConfig:
    """Hyper-parameters and data choice of one PRN training run.

    Attributes:
        data: ``"synthetic:human"`` (optionally with query options, see
            :func:`engine.io.keypoints.load_dataset`) or a path to a ``.mat`` / ``.npz`` keypoint file.
        iterations: number of optimiser steps (batches). None = automatic.
        lam: weight lambda of the Procrustean low-rank term g (nuclear norm) against f. None =
            automatic.
        mirror_weight: weight of the depth-sign consistency term (0 = the authors' cost): the
            squared depth of frames whose mirror image fits their alignment group better
            (see :func:`engine.prn.training.mirrored_frames`). None = automatic.
        mirror_margin: in (0, 1]: a frame counts as mirrored for the depth-sign term only when
            its mirror image's residual to the group's mean is below this fraction of its own
            (1 = whenever it fits better at all).
        hidden: width of the fully connected residual blocks.
        missing_ratio: fraction in [0, 0.9] of 2D training inputs removed at random (seed 000,
            Table 1): input set to 0 and excluded from f.
        seed: seeds weight initialisation, batch sampling and missing-point selection.
        device: ``"cpu"``, ``"cuda"`` or None (CUDA when present, see :mod:`engine.core.device`).
        batch_size: frames per step; a multiple of ``group_size``. None = automatic.
        group_size: frames per Procrustes alignment group (n_f of g). None = automatic.
        lr: Adam start learning rate. None = automatic.
        weight_decay: Adam L2 weight decay.
        lr_decay: learning-rate factor applied every ``lr_step`` iterations. None = automatic.
        lr_step: iterations between learning-rate decays. None = automatic.
        reflections: let the alignment in g reflect frames (mirror images align, so the
            nuclear norm does not penalise frames whose depth sign is flipped; see
            :func:`engine.nrsfm.procrustes.align`). None = automatic.
        logsum: from step ``logsum_from`` on, g is the log-sum rank penalty
            (:func:`engine.nrsfm.losses.log_sum_penalty`) instead of the nuclear norm. None =
            automatic.
        logsum_from: steps of nuclear norm before the log-sum penalty takes over. None =
            automatic (0 for a warm start, else 1000).
        logsum_eps: the log-sum penalty's scale relative to ``sqrt(group_size)`` (the largest
            singular value of a group of identical unit-size frames; inputs are normalised to
            unit size): singular values below ``logsum_eps * sqrt(group_size)`` are penalised
            like the nuclear norm, larger ones ever less. None = automatic.
        warm_start: one sequence only: before the first step, fit the network to the classic
            NRSfM reconstruction of the training 2D (:mod:`engine.prn.warm_start`), then train
            from there. None = automatic (on for a sequence trained as one group, off for
            larger data or explicit smaller groups).
        restarts: when the first stage (the nuclear norm) ends flat (no better than flat
            depth by PRN's own cost, :mod:`engine.prn.collapse`), train it again from other
            weights at most this many times; a single sequence only (one alignment group),
            not with a warm start (which has no first stage and warns instead).
        align_max_iter: at most this many sweeps of the Procrustes alignment in g (the
            authors' 100). A group that has not converged by then still trains (on the last
            iterate, with an approximate gradient); the trainer counts such groups
            (``Trainer.align_not_converged``) and the CLI warns.
        eval_every: iterations between evaluations (metrics in the callback events).
        preview_frame: index of the training frame whose prediction events carry.

    Automatic fields (None) are chosen from the data size by :meth:`resolved` (module
    docstring); an explicit value is always used as given.
    """

    data: str = "synthetic:human"
    iterations: int | None = None
    lam: float | None = None
    mirror_weight: float | None = None
    mirror_margin: float = 0.8
    hidden: int = 256
    missing_ratio: float = 0.0
    seed: int = 0
    device: str | None = None
    batch_size: int | None = None
    group_size: int | None = None
    lr: float | None = None
    weight_decay: float = 1e-4
    lr_decay: float | None = None
    lr_step: int | None = None
    reflections: bool | None = None
    logsum: bool | None = None
    logsum_from: int | None = None
    logsum_eps: float | None = None
    warm_start: bool | None = None
    align_max_iter: int = 100
    restarts: int = 2
    eval_every: int = 100
    preview_frame: int = 0

    def resolved(self, num_frames: int, complete: bool = True) -> TrainConfig:
        """A copy with every automatic (None) field chosen for data of ``num_frames`` frames;
        ``complete``: every 2D point of those frames is observed (none missing in the data,
        none removed by ``missing_ratio``).

        At most :data:`SEQUENCE_MAX_FRAMES` frames: the whole sequence as one group per step,
        reflections, lam 0.01, no depth-sign term, lr halved every 1000 steps, the log-sum
        penalty at scale 0.003, and (when the batch is that one group) a warm start: 1000 steps
        of the log-sum penalty at lr 1e-4 from the classic reconstruction (without the warm
        start: 3000 steps at lr 1e-3, the log-sum penalty from step 1000 after the nuclear
        norm); more: 20,000 steps, batches of 256 in groups of 128, no reflections, the log-sum
        penalty (scale 0.01) after the nuclear norm, lam 0.1, depth-sign weight 0.5 when
        ``complete`` (else 0), lr 1e-4 x0.8 every 5000 steps (measured reasons: module
        docstring).
        """
        sequence = num_frames <= SEQUENCE_MAX_FRAMES
        group = self.group_size
        if group is None:
            group = max(2, num_frames) if sequence else 128
        # One group per step for a sequence; otherwise batches of about 256 frames.
        batch = self.batch_size
        if batch is None:
            batch = group * (1 if sequence else max(1, 256 // group))
        # Automatically on only where the run is the whole sequence as one group.
        warm = self.warm_start
        if warm is None:
            warm = sequence and batch == group == num_frames
        auto: dict[str, Any] = {
            "warm_start": warm,
            "group_size": group,
            "batch_size": batch,
            "iterations": (WARM_ITERATIONS if warm else SEQUENCE_ITERATIONS)
            if sequence
            else LARGE_DATA_ITERATIONS,
            "lam": 0.01 if sequence else 0.1,
            "mirror_weight": 0.5 if complete and not sequence else 0.0,
            "logsum_eps": 0.003 if sequence else 0.01,
            "lr": (WARM_LR if warm else 1e-3) if sequence else 1e-4,
            "lr_decay": 0.5 if sequence else 0.8,
            "lr_step": 1000 if sequence else 5000,
            "reflections": sequence,
            "logsum": True,
            "logsum_from": 0 if warm else 1000,
        }
        chosen = {k: v for k, v in auto.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **chosen)

    def validate(self) -> None:
        """Check every field; raise :class:`InputError` naming the first bad field."""

        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise InputError(f"expected {expected}, got {getattr(self, name)!r}", field=name)

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return (is_int(v) or isinstance(v, float)) and math.isfinite(v)

        need(isinstance(self.data, str) and self.data.strip() != "", "data", "a non-empty string")
        need(
            self.iterations is None or (is_int(self.iterations) and self.iterations >= 1),
            "iterations",
            "an integer >= 1 (or automatic)",
        )
        need(
            self.lam is None or (is_num(self.lam) and self.lam >= 0),
            "lam",
            "a finite number >= 0 (or automatic)",
        )
        need(
            self.mirror_weight is None or (is_num(self.mirror_weight) and self.mirror_weight >= 0),
            "mirror_weight",
            "a finite number >= 0 (or automatic)",
        )
        need(
            is_num(self.mirror_margin) and 0 < self.mirror_margin <= 1,
            "mirror_margin",
            "a number in (0, 1]",
        )
        need(
            is_int(self.hidden) and 1 <= self.hidden <= 16384, "hidden", "an integer in [1, 16384]"
        )
        need(
            is_num(self.missing_ratio) and 0 <= self.missing_ratio <= 0.9,
            "missing_ratio",
            "a number in [0, 0.9]",
        )
        need(is_int(self.seed) and 0 <= self.seed < 2**63, "seed", "an integer in [0, 2^63)")
        need(
            self.device is None or self.device in ("cpu", "cuda") or _is_cuda_index(self.device),
            "device",
            "'cpu', 'cuda', 'cuda:N' or None",
        )
        need(
            self.group_size is None or (is_int(self.group_size) and self.group_size >= 2),
            "group_size",
            "an integer >= 2 (or automatic)",
        )
        need(
            self.batch_size is None
            or (
                is_int(self.batch_size)
                and self.batch_size >= 1
                and (self.group_size is None or self.batch_size % self.group_size == 0)
            ),
            "batch_size",
            f"a positive multiple of group_size ({self.group_size}) (or automatic)",
        )
        need(self.lr is None or (is_num(self.lr) and self.lr > 0), "lr", "a finite number > 0")
        need(is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(
            self.lr_decay is None or (is_num(self.lr_decay) and 0 < self.lr_decay <= 1),
            "lr_decay",
            "a number in (0, 1]",
        )
        need(
            self.lr_step is None or (is_int(self.lr_step) and self.lr_step >= 1),
            "lr_step",
            "an integer >= 1",
        )
        for flag in ("reflections", "logsum", "warm_start"):
            value = getattr(self, flag)
            need(value is None or isinstance(value, bool), flag, "true, false or automatic")
        need(
            self.logsum_from is None or (is_int(self.logsum_from) and self.logsum_from >= 0),
            "logsum_from",
            "an integer >= 0 (or automatic)",
        )
        need(
            self.logsum_eps is None or (is_num(self.logsum_eps) and self.logsum_eps > 0),
            "logsum_eps",
            "a finite number > 0 (or automatic)",
        )
        need(
            is_int(self.align_max_iter) and self.align_max_iter >= 1,
            "align_max_iter",
            "an integer >= 1",
        )
        need(
            is_int(self.restarts) and 0 <= self.restarts <= 10, "restarts", "an integer in [0, 10]"
        )
        need(is_int(self.eval_every) and self.eval_every >= 1, "eval_every", "an integer >= 1")
        need(
            is_int(self.preview_frame) and self.preview_frame >= 0,
            "preview_frame",
            "an integer >= 0",
        )

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-able dict (the form stored in checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild and validate a config from :meth:`to_dict` output.

        Raises:
            CheckpointError: ``d`` is not a dict, lacks a field or has an unknown one.
            InputError: a field has an invalid value (field named).
        """
        if not isinstance(d, dict):
            raise CheckpointError(
                f"expected a dict of training settings, got {type(d).__name__}", field="config"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise CheckpointError(f"unknown training setting(s) {unknown}", field="config")
        added = {name: _OLD_BEHAVIOUR.get(name, getattr(cls, name)) for name in _ADDED_FIELDS}
        d = {**added, **d}
        missing = sorted(names - set(d))
        if missing:
            raise CheckpointError(f"missing training setting(s) {missing}", field="config")
        config = cls(**d)
        config.validate()
        return config


def complete_2d(visibility: Any, missing_ratio: float) -> bool:
    """Whether training sees every 2D point (the ``complete`` of :meth:`TrainConfig.resolved`):
    no point missing in ``visibility`` ((F, P) bool array or None = all observed) and none
    removed by ``missing_ratio``."""
    return missing_ratio == 0 and (visibility is None or bool(np.asarray(visibility).all()))


def _is_cuda_index(name: Any) -> bool:
    return isinstance(name, str) and name.startswith("cuda:") and name[5:].isdigit()
