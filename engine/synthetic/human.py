"""Synthetic human motion: the default PRN training set, made on the fly from a seed.

A 17-joint skeleton in Human3.6M joint order with Human3.6M-like bone lengths (mm) is posed by
forward kinematics from smooth joint-angle trajectories (sums of sinusoids with random
frequencies, phases and amplitudes) that stay inside per-joint rotation limits. Each sequence
plays one kind of motion (:data:`MOTIONS`: walking, reaching, bending, turning, squatting,
waving, jumping jacks, free movement) on top of small random movement of every joint, is seen
by its own orthographic camera (azimuth all around, elevation -10..40 deg, roll -10..10 deg),
and has its own body proportions (bone lengths constant within the sequence).

Conventions: body frame x = subject's left, y = up, z = forward; camera frame x = right,
y = up, z = towards the viewer; ``points3d`` are in the camera frame (pelvis at the origin),
``points2d = points3d[..., :2]``. Held-out data use ``seed + TEST_SEED_OFFSET``.

Joint angles are Euler angles ``(rx, ry, rz)`` in degrees; the local rotation of a joint is
``Rz(rz) @ Rx(rx) @ Ry(ry)`` (twist about the bone first) and rotates the offsets of its
children. The pelvis additionally turns about the vertical by an unlimited heading (yaw).
"""

from __future__ import annotations

import numpy as np

from engine.core.errors import DataError
from engine.io.keypoints import KeypointSequence

H36M_JOINT_NAMES: list[str] = [
    "pelvis",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_hip",
    "l_knee",
    "l_ankle",
    "spine",
    "thorax",
    "neck",
    "head",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
]
H36M_PARENTS: list[int] = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]
H36M_EDGES: list[tuple[int, int]] = [(p, j) for j, p in enumerate(H36M_PARENTS) if p >= 0]

# Rest pose (arms hanging) offsets from the parent in the parent's frame, mm. Lengths follow the
# Human3.6M skeleton (hip 133, thigh 443, shin 454, spine 233 + 254, neck/head 115, shoulder
# 151, upper arm 279, forearm 252).
REST_OFFSETS = np.array(
    [
        [0, 0, 0],
        [-133, 0, 0],
        [0, -443, 0],
        [0, -454, 0],
        [133, 0, 0],
        [0, -443, 0],
        [0, -454, 0],
        [0, 233, 0],
        [0, 254, 0],
        [0, 92, 69],
        [0, 112, -28],
        [151, -5, 0],
        [0, -279, 0],
        [0, -252, 0],
        [-151, -5, 0],
        [0, -279, 0],
        [0, -252, 0],
    ],
    dtype=np.float64,
)

# (J, 3, 2) limits in degrees of (rx, ry, rz) per joint; zero ranges for end joints. The pelvis
# row limits pitch (rx) and roll (rz); its heading is free. Signs: knees bend with rx > 0, hips
# and shoulders flex forward with rx < 0, elbows flex with rx < 0, the spine bends forward with
# rx > 0; left limbs abduct with rz > 0, right limbs with rz < 0.
JOINT_LIMITS_DEG = np.zeros((17, 3, 2))
for _joint, _limits in {
    0: [(-15, 80), (0, 0), (-20, 20)],
    1: [(-120, 30), (-30, 30), (-45, 10)],
    2: [(0, 140), (0, 0), (0, 0)],
    4: [(-120, 30), (-30, 30), (-10, 45)],
    5: [(0, 140), (0, 0), (0, 0)],
    7: [(-20, 60), (-35, 35), (-25, 25)],
    8: [(-10, 30), (-15, 15), (-10, 10)],
    9: [(-40, 50), (-70, 70), (-30, 30)],
    11: [(-170, 50), (-60, 60), (-20, 160)],
    12: [(-145, 0), (0, 0), (0, 0)],
    14: [(-170, 50), (-60, 60), (-160, 20)],
    15: [(-145, 0), (0, 0), (0, 0)],
}.items():
    JOINT_LIMITS_DEG[_joint] = _limits
JOINT_LIMITS_DEG.setflags(write=False)

MOTIONS: tuple[str, ...] = (
    "walking",
    "reaching",
    "bending",
    "turning",
    "squatting",
    "waving",
    "jumping_jacks",
    "free",
)
FPS = 25.0
TEST_SEED_OFFSET = 1000
# Left/right pairs share a length jitter so a body stays symmetric.
_BONE_GROUP = np.array([0, 1, 2, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 8, 9, 10])
_LEFT_RIGHT = {"l": (4, 5, 11, 12), "r": (1, 2, 14, 15)}


def euler_to_matrix(angles_deg: np.ndarray) -> np.ndarray:
    """``Rz(rz) @ Rx(rx) @ Ry(ry)`` for ``angles_deg`` (..., 3) = (rx, ry, rz) degrees -> (..., 3, 3)."""
    a = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    cx, sx = np.cos(a[..., 0]), np.sin(a[..., 0])
    cy, sy = np.cos(a[..., 1]), np.sin(a[..., 1])
    cz, sz = np.cos(a[..., 2]), np.sin(a[..., 2])
    # Closed form of the product (three stacked matmuls cost several times more).
    xy = np.empty((*cx.shape, 3, 3))
    xy[..., 0, 0], xy[..., 0, 1], xy[..., 0, 2] = cy, 0.0, sy
    xy[..., 1, 0], xy[..., 1, 1], xy[..., 1, 2] = sx * sy, cx, -sx * cy
    xy[..., 2, 0], xy[..., 2, 1], xy[..., 2, 2] = -cx * sy, sx, cx * cy
    out = np.empty_like(xy)
    out[..., 0, :] = cz[..., None] * xy[..., 0, :] - sz[..., None] * xy[..., 1, :]
    out[..., 1, :] = sz[..., None] * xy[..., 0, :] + cz[..., None] * xy[..., 1, :]
    out[..., 2, :] = xy[..., 2, :]
    return out


def _yaw_matrix(yaw_deg: np.ndarray) -> np.ndarray:
    """Rotation about the vertical (y) axis, (...,) degrees -> (..., 3, 3)."""
    zeros = np.zeros_like(np.asarray(yaw_deg, dtype=np.float64))
    return euler_to_matrix(np.stack([zeros, yaw_deg, zeros], -1))


def forward_kinematics(
    angles_deg: np.ndarray, root_yaw_deg: np.ndarray, bone_lengths: np.ndarray
) -> np.ndarray:
    """Joint positions of the posed skeleton, pelvis at the origin.

    Args:
        angles_deg: (S, T, 17, 3) Euler angles (rx, ry, rz) per joint, degrees.
        root_yaw_deg: (S, T) heading of the pelvis about the vertical, degrees.
        bone_lengths: (S, 17) length of the bone from each joint's parent to it, mm (entry 0
            unused).

    Returns:
        (S, T, 17, 3) float64 world positions (y up), mm.
    """
    return posed_skeleton(angles_deg, root_yaw_deg, bone_lengths)[0]


def posed_skeleton(
    angles_deg: np.ndarray, root_yaw_deg: np.ndarray, bone_lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`forward_kinematics` with the frames it composes, for points fixed to the bones.

    Returns:
        ``positions`` (S, T, 17, 3) mm; ``rotations`` (S, T, 17, 3, 3): joint ``j``'s world
        rotation, the frame in which the bones hanging off ``j`` are fixed (a point ``m`` in
        that frame is at ``positions[..., j, :] + rotations[..., j, :, :] @ m``); ``offsets``
        (S, 17, 3): bone ``j`` in its parent's frame, mm.
    """
    directions = REST_OFFSETS / np.maximum(
        np.linalg.norm(REST_OFFSETS, axis=1, keepdims=True), 1e-12
    )
    offsets = directions[None] * bone_lengths[..., None]  # (S, 17, 3)
    s, t = angles_deg.shape[:2]
    positions = np.zeros((s, t, 17, 3))
    rotations: list[np.ndarray] = [_yaw_matrix(root_yaw_deg) @ euler_to_matrix(angles_deg[:, :, 0])]
    for j in range(1, 17):
        parent = H36M_PARENTS[j]
        positions[:, :, j] = (
            positions[:, :, parent] + (rotations[parent] @ offsets[:, None, j, :, None])[..., 0]
        )
        if j in H36M_PARENTS:
            rotations.append(rotations[parent] @ euler_to_matrix(angles_deg[:, :, j]))
        else:
            rotations.append(rotations[parent])  # end joints: nothing hangs off them
    return positions, np.stack(rotations, axis=2), offsets


class _Sampler:
    """Random smooth trajectories for S sequences of T frames."""

    def __init__(self, rng: np.random.Generator, s: int, t: int) -> None:
        self.rng = rng
        self.t = np.arange(t) / FPS  # seconds

    def uniform(self, lo: float, hi: float, n: int) -> np.ndarray:
        return self.rng.uniform(lo, hi, size=(n, 1))

    def phase(self, n: int, fmin: float, fmax: float) -> np.ndarray:
        """Phase (radians) of a random-frequency, random-start cycle, (n, T)."""
        return 2 * np.pi * self.uniform(fmin, fmax, n) * self.t + self.uniform(0, 2 * np.pi, n)

    def rise(self, n: int, fmin: float, fmax: float) -> np.ndarray:
        """A smooth 0..1..0 cycle, (n, T)."""
        return 0.5 - 0.5 * np.cos(self.phase(n, fmin, fmax))

    def smooth(self, shape: tuple[int, ...], fmin: float = 0.05, fmax: float = 0.5) -> np.ndarray:
        """Sum of 3 random sinusoids bounded by 1 in magnitude, shape (*shape, T)."""
        weights = self.rng.dirichlet(np.ones(3), size=shape)
        out = np.zeros((*shape, self.t.size))
        for k in range(3):
            f = self.rng.uniform(fmin, fmax, size=(*shape, 1))
            phi = self.rng.uniform(0, 2 * np.pi, size=(*shape, 1))
            out += weights[..., k : k + 1] * np.sin(2 * np.pi * f * self.t + phi)
        return out


def sample_motion(num_sequences: int, frames_per_sequence: int, seed: int) -> dict[str, np.ndarray]:
    """Random joint-angle trajectories, headings, bone lengths and cameras.

    Args:
        num_sequences: S >= 1.
        frames_per_sequence: T >= 1.
        seed: random seed (the same seed gives the same motion).

    Returns:
        dict with ``angles`` (S, T, 17, 3) degrees within :data:`JOINT_LIMITS_DEG`,
        ``root_yaw`` (S, T) degrees, ``bone_lengths`` (S, 17) mm, ``camera`` (S, 3, 3) world to
        camera rotations, ``motion`` (S,) indices into :data:`MOTIONS`.
    """
    rng = np.random.default_rng(seed)
    s, t = num_sequences, frames_per_sequence
    smp = _Sampler(rng, s, t)
    lo, hi = JOINT_LIMITS_DEG[..., 0], JOINT_LIMITS_DEG[..., 1]
    span = hi - lo
    # Every joint moves a little around a near-neutral pose.
    neutral = np.clip(rng.normal(0.0, 0.07, size=(s, 17, 3)) * span, lo, hi)
    moving = span > 0  # end joints and locked axes stay at 0
    wiggle = np.zeros((s, 17, 3, t))
    wiggle[:, moving] = 0.06 * span[moving][None, :, None] * smp.smooth((s, int(moving.sum())))
    angles = np.broadcast_to(neutral[..., None], wiggle.shape).copy()
    motion = rng.integers(len(MOTIONS), size=s)
    root_yaw = rng.uniform(0, 360, size=(s, 1)) + rng.uniform(-15, 15, size=(s, 1)) * smp.t

    def put(idx: np.ndarray, joint: int, dof: int, value: np.ndarray) -> None:
        angles[idx, joint, dof] = value

    for kind, name in enumerate(MOTIONS):
        idx = np.flatnonzero(motion == kind)
        n = idx.size
        if n == 0:
            continue
        u = smp.uniform
        if name == "walking":
            phase = smp.phase(n, 0.7, 1.1)
            sin = np.sin(phase)
            hip = u(-15, -5, n)
            amp = u(15, 30, n)
            put(idx, 1, 0, hip + amp * sin)
            put(idx, 4, 0, hip - amp * sin)
            knee = u(35, 60, n)
            phase_lag = np.sin(phase - 0.5)  # the knee bends a little after the hip swings
            put(idx, 2, 0, 5 + knee * (0.5 - 0.5 * phase_lag) ** 2)
            put(idx, 5, 0, 5 + knee * (0.5 + 0.5 * phase_lag) ** 2)
            arm = u(10, 35, n)
            put(idx, 11, 0, -5 + arm * sin)
            put(idx, 14, 0, -5 - arm * sin)
            put(idx, 11, 2, u(3, 15, n))
            put(idx, 14, 2, -u(3, 15, n))
            put(idx, 12, 0, -u(10, 40, n) - 10 * (0.5 + 0.5 * sin))
            put(idx, 15, 0, -u(10, 40, n) - 10 * (0.5 - 0.5 * sin))
            put(idx, 7, 1, u(3, 10, n) * sin)
            put(idx, 0, 2, u(0, 4, n) * sin)
            root_yaw[idx] += u(-25, 25, n) * smp.t
        elif name == "reaching":
            rise = smp.rise(n, 0.15, 0.5)
            left = rng.random(n) < 0.5
            for side_mask, shoulder, elbow, sign in ((left, 11, 12, 1.0), (~left, 14, 15, -1.0)):
                k = idx[side_mask]
                r = rise[side_mask]
                m = k.size
                put(k, shoulder, 0, -u(60, 160, m) * r)
                put(k, shoulder, 2, sign * u(-10, 40, m) * r)
                put(k, elbow, 0, -5 - u(40, 90, m) * (1 - r))
                put(k, 7, 1, sign * u(0, 30, m) * r)
            put(idx, 7, 0, u(0, 25, n) * rise)
            put(idx, 9, 0, u(-20, 20, n) * rise)
        elif name == "bending":
            rise = smp.rise(n, 0.1, 0.4)
            pitch = u(30, 75, n) * rise
            spine = u(0, 35, n) * rise
            put(idx, 0, 0, pitch)
            put(idx, 1, 0, -pitch * u(0.7, 1.0, n))
            put(idx, 4, 0, -pitch * u(0.7, 1.0, n))
            put(idx, 2, 0, u(0, 30, n) * rise)
            put(idx, 5, 0, u(0, 30, n) * rise)
            put(idx, 7, 0, spine)
            hang = -(pitch + spine) * u(0.6, 1.0, n)  # arms hang under gravity
            put(idx, 11, 0, hang)
            put(idx, 14, 0, hang)
            put(idx, 12, 0, -u(0, 30, n) * rise)
            put(idx, 15, 0, -u(0, 30, n) * rise)
        elif name == "turning":
            rise = smp.rise(n, 0.1, 0.3)
            root_yaw[idx] += rng.choice([-1.0, 1.0], size=(n, 1)) * u(90, 270, n) * rise
            twist = np.sin(smp.phase(n, 0.1, 0.4))
            put(idx, 7, 1, u(10, 35, n) * twist)
            put(idx, 9, 1, u(20, 60, n) * np.sin(smp.phase(n, 0.1, 0.4)))
            step = np.sin(smp.phase(n, 0.5, 1.0))
            put(idx, 1, 0, -10 + 10 * step)
            put(idx, 4, 0, -10 - 10 * step)
            put(idx, 2, 0, 10 + 10 * np.abs(step))
            put(idx, 5, 0, 10 + 10 * np.abs(step))
        elif name == "squatting":
            rise = smp.rise(n, 0.15, 0.5)
            put(idx, 0, 0, u(10, 35, n) * rise)
            hip = u(60, 110, n) * rise
            put(idx, 1, 0, -hip)
            put(idx, 4, 0, -hip)
            knee = u(80, 130, n) * rise
            put(idx, 2, 0, knee)
            put(idx, 5, 0, knee)
            put(idx, 1, 2, -u(0, 20, n) * rise)
            put(idx, 4, 2, u(0, 20, n) * rise)
            arms = -u(0, 90, n) * rise  # arms forward for balance
            put(idx, 11, 0, arms)
            put(idx, 14, 0, arms)
            put(idx, 7, 0, u(0, 20, n) * rise)
        elif name == "waving":
            sin = np.sin(smp.phase(n, 1.0, 2.2))
            left = rng.random(n) < 0.5
            for side_mask, shoulder, elbow, sign in ((left, 11, 12, 1.0), (~left, 14, 15, -1.0)):
                k = idx[side_mask]
                m = k.size
                sn = sin[side_mask]
                put(k, shoulder, 2, sign * (u(90, 140, m) + u(0, 15, m) * sn))
                put(k, shoulder, 0, -u(0, 40, m))
                put(k, elbow, 0, -u(30, 70, m) - u(20, 40, m) * (0.5 + 0.5 * sn))
            put(idx, 9, 1, u(-30, 30, n))
        elif name == "jumping_jacks":
            rise = smp.rise(n, 0.7, 1.3)
            arms = u(100, 160, n) * rise
            put(idx, 11, 2, arms)
            put(idx, 14, 2, -arms)
            legs = u(15, 35, n) * rise
            put(idx, 4, 2, legs)
            put(idx, 1, 2, -legs)
            put(idx, 2, 0, 5 + u(0, 20, n) * rise)
            put(idx, 5, 0, 5 + u(0, 20, n) * rise)
            put(idx, 12, 0, -u(0, 20, n))
            put(idx, 15, 0, -u(0, 20, n))
        elif name == "free":
            # Wide, slow exploration of every joint's range: poses no scripted motion reaches.
            anywhere = lo + span * rng.uniform(0.2, 0.8, size=(n, 17, 3))
            centre = neutral[idx] + rng.uniform(0, 0.6, size=(n, 17, 3)) * (anywhere - neutral[idx])
            reach = np.minimum(centre - lo, hi - centre) * rng.uniform(0.3, 1.0, size=(n, 17, 3))
            free = np.zeros((n, 17, 3, t))
            free[:, moving] = smp.smooth((n, int(moving.sum())), 0.05, 0.3)
            angles[idx] = centre[..., None] + reach[..., None] * free
            continue
        # Scripted joints keep a little of their random movement around the script.
        angles[idx] += wiggle[idx] * 0.5
    angles = np.clip(angles, lo[None, ..., None], hi[None, ..., None]).transpose(0, 3, 1, 2)

    base = np.linalg.norm(REST_OFFSETS, axis=1)
    jitter = rng.uniform(0.95, 1.05, size=(s, _BONE_GROUP.max() + 1))[:, _BONE_GROUP]
    bone_lengths = base[None] * jitter * rng.uniform(0.85, 1.15, size=(s, 1))

    azimuth = rng.uniform(0, 360, size=s)
    elevation = rng.uniform(-10, 40, size=s)
    roll = rng.uniform(-10, 10, size=s)
    camera = euler_to_matrix(np.stack([elevation, np.zeros(s), roll], -1)) @ _yaw_matrix(-azimuth)
    return {
        "angles": angles,
        "root_yaw": root_yaw,
        "bone_lengths": bone_lengths,
        "camera": camera,
        "motion": motion,
    }


def synthetic_human(num_sequences: int, frames_per_sequence: int, seed: int) -> KeypointSequence:
    """Generate ``num_sequences`` x ``frames_per_sequence`` frames of 17-joint human motion.

    Args:
        num_sequences: S >= 1 sequences (each its own body, motion and camera).
        frames_per_sequence: T >= 1 frames per sequence at 25 fps.
        seed: random seed; equal seeds give identical data. Held-out data: seed + 1000.

    Returns:
        :class:`KeypointSequence` with F = S * T frames (sequence-major), ``points3d`` (F,17,3)
        camera-frame mm, ``points2d`` their x, y, Human3.6M ``names`` and ``edges``, and a
        description recording the seed and sizes.

    Raises:
        DataError: sizes < 1.
    """
    for name, value in (
        ("num_sequences", num_sequences),
        ("frames_per_sequence", frames_per_sequence),
    ):
        if int(value) != value or value < 1:
            raise DataError(f"expected an integer >= 1, got {value!r}", field=name)
    s, t = int(num_sequences), int(frames_per_sequence)
    m = sample_motion(s, t, int(seed))
    world = forward_kinematics(m["angles"], m["root_yaw"], m["bone_lengths"])
    points3d = np.einsum("sij,stpj->stpi", m["camera"], world).reshape(s * t, 17, 3)
    counts = np.bincount(m["motion"], minlength=len(MOTIONS))
    description = {
        "source": "synthetic",
        "kind": "human",
        "seed": int(seed),
        "num_sequences": s,
        "frames_per_sequence": t,
        "fps": FPS,
        "units": "mm",
        "motions": {name: int(c) for name, c in zip(MOTIONS, counts)},
        "sequence_motions": [MOTIONS[k] for k in m["motion"]],
        "spec": f"synthetic:human?sequences={s}&length={t}&seed={int(seed)}",
    }
    return KeypointSequence(
        points2d=points3d[..., :2],
        points3d=points3d,
        names=list(H36M_JOINT_NAMES),
        edges=np.asarray(H36M_EDGES, dtype=np.int64),
        description=description,
    )
