"""The hidden deformation of the synthetic articulated category: an automatic skeleton, linear-blend
skinning (LBS) and smooth random joint motion.

The synthetic image category is made of many instances of one template mesh in different poses.
Its ground-truth deformation must not be the Laplacian handle deformer that is later learned
from the images, so the instances are posed with a small skeleton fitted to the template
automatically, for templates the project has never seen (quadrupeds, birds, humans, any
orientation or scale).

How the skeleton is found, on the largest connected component (by area):

1. The average geodesic distance ``g`` (AGD; edge-graph Dijkstra from farthest-point-sampled
   sources, averaged) is low on the torso and grows along every protrusion, whatever the
   orientation of the mesh; its level sets are rings around the torso and around each limb.
2. Limb tips are the maxima of ``g`` ranked by topological persistence: sweeping ``g``
   downwards, a limb is born at its tip and dies where its superlevel set meets another one's.
   Persistence (how far a limb rises above where it joins the rest) tells legs, neck+head and
   tail apart from ears, toes and tessellation noise without any radius to tune; maxima below
   ``MIN_PROMINENCE`` of the geodesic diameter are ignored, so a sphere has no limbs at all.
3. A second sweep cuts the mesh into limbs: a kept limb's region is its superlevel component at
   the level where it first meets another substantial one. A small bump on the way (an ear on
   the head) is absorbed; a featureless high region at least ``BULGE`` of the limb's area (a
   rump behind a hind leg) belongs to the body and ends the limb. Everything else is the body.
4. Each limb gets ``joints_per_chain`` joints at equal steps of ``g`` from its base to its tip,
   each at the area-weighted centroid of the limb's vertices in a thin band of ``g`` around that
   level: the centroid of a ring around the limb, so joints lie inside it. The root joint is the
   centroid of the body.
5. Skinning weights: a vertex belongs to the bone segment its normalised ``g`` along the limb
   falls in (the body to the root); those hard labels are diffused over the surface (one
   implicit heat step on the edge-length-weighted graph Laplacian, a fraction of the bone length
   wide, so joints bend smoothly and weights never leak across to a neighbouring limb except
   through the surface between them), then tiny weights are dropped so a limb's joints do not
   move far parts of the body at all. Vertices of other connected components copy the weights
   of the main-component vertex nearest their component's centroid, so loose eyes or horns move
   with the head as one piece.

Posing is forward kinematics (each joint rotates about its own rest position, composed down its
chain; joint 0, the root, turns the whole body about the root position, which stays fixed) then
LBS. Angles are axis-angle vectors in radians. Everything is numpy float64 and deterministic
given the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.sparse.linalg import splu
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from engine.core.errors import MeshError

#: Number of farthest-point geodesic sources averaged into the AGD (more only smooths noise).
AGD_SOURCES = 32
#: A limb must rise at least this fraction of the geodesic diameter above where it joins.
MIN_PROMINENCE = 0.08
#: Width (std) of the weight diffusion as a fraction of the median bone length.
SMOOTHING = 0.5
#: Skinning weights below this are dropped (rows renormalised).
WEIGHT_CUTOFF = 1e-3
#: A featureless high region at least this fraction of a limb's area is body, not part of it.
BULGE = 0.5
#: Half-width of the AGD band whose centroid places a joint, as a fraction of a segment.
BAND = 0.25

# Component kinds in the limb sweep (values >= 0 are kept limbs, by chain id).
_BODY = -1
_BLOCKER = -2  # a substantial limb beyond max_chains: it ends the limbs it meets, joins the body
_NOISE = -3


@dataclass(frozen=True)
class Skeleton:
    """A skeleton fitted to a template, with its skinning weights.

    Joint 0 is the root; chain ``c`` owns joints ``1 + c*K .. K + c*K`` (``K`` joints per chain)
    ordered from the body outwards, each the parent of the next.

    Attributes:
        joints: (J,3) float64 rest positions, in the template's units.
        parents: (J,) int64 parent joint, ``-1`` for the root; ``parents[j] < j``.
        chains: (J,) int64 chain id of each joint, ``-1`` for the root.
        tips: (C,) int64 template vertex id at the end of each chain.
        tip_points: (C,3) float64 positions of those vertices (the end of each chain's last bone).
        weights: (N,J) float64 skinning weights, rows sum to 1, entries >= 0.
        regions: (N,) int64 chain whose limb each vertex lies on, ``-1`` for the body and for
            vertices of other connected components.
    """

    joints: np.ndarray
    parents: np.ndarray
    chains: np.ndarray
    tips: np.ndarray
    tip_points: np.ndarray
    weights: np.ndarray
    regions: np.ndarray

    @property
    def num_joints(self) -> int:
        """J, the number of joints including the root."""
        return int(self.joints.shape[0])

    @property
    def num_chains(self) -> int:
        """C, the number of limbs found."""
        return int(self.tips.shape[0])

    def bone_lengths(self) -> np.ndarray:
        """(J-1,) float64 rest distance of each non-root joint to its parent."""
        child = np.arange(1, self.num_joints)
        return np.linalg.norm(self.joints[child] - self.joints[self.parents[child]], axis=1)


def fit_skeleton(
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    max_chains: int = 6,
    joints_per_chain: int = 3,
    seed: int = 0,
) -> Skeleton:
    """Fit a skeleton and skinning weights to a template mesh (see the module docstring).

    Args:
        vertices: (N,3) float vertex positions, any units and orientation.
        faces: (F,3) integer triangle indices into ``vertices``.
        max_chains: at most this many limbs, the most prominent ones (>= 0).
        joints_per_chain: joints on each limb (>= 1).
        seed: chooses the first geodesic source; the result barely depends on it.

    Returns:
        A :class:`Skeleton` with ``J = 1 + C * joints_per_chain`` joints, ``C <= max_chains``
        (``C = 0``, a single rigid root, for a shape without protrusions such as a sphere).

    Raises:
        MeshError: arrays of the wrong shape, non-finite positions, face indices out of range.
        ValueError: ``max_chains < 0`` or ``joints_per_chain < 1``.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise MeshError(f"expected vertices of shape (N, 3) with N >= 1, got {v.shape}")
    if not np.isfinite(v).all():
        raise MeshError("vertex positions must be finite")
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise MeshError(f"expected integer faces of shape (F, 3), got {f.dtype} {f.shape}")
    f = f.astype(np.int64)
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise MeshError(f"face index out of range: expected 0 <= index < {len(v)}")
    if max_chains < 0:
        raise ValueError(f"max_chains must be >= 0, got {max_chains}")
    if joints_per_chain < 1:
        raise ValueError(f"joints_per_chain must be >= 1, got {joints_per_chain}")

    n = len(v)
    graph = _edge_graph(v, f)
    area = _vertex_areas(v, f)
    num_comp, comp = connected_components(graph, directed=False)
    comp_area = np.bincount(comp, weights=area, minlength=num_comp)
    comp_size = np.bincount(comp, minlength=num_comp)
    main = int(np.lexsort((-np.arange(num_comp), comp_size, comp_area))[-1])
    idx = np.flatnonzero(comp == main)
    sub = graph[idx][:, idx].tocsr()
    sub_area = area[idx]

    k = joints_per_chain
    g, diameter = _average_geodesic(sub, seed)
    tips, regions, base = _limbs(sub, g, sub_area, max_chains, MIN_PROMINENCE * diameter)
    num_chains = len(tips)

    joints = np.empty((1 + num_chains * k, 3))
    body = regions == _BODY
    joints[0] = _centroid(v[idx][body], sub_area[body]) if body.any() else v[idx].mean(axis=0)
    labels = np.zeros(len(idx), dtype=np.int64)
    for c, tip in enumerate(tips):
        limb = np.flatnonzero(regions == c)
        s = np.clip((g[limb] - base[c]) / max(g[tip] - base[c], 1e-300), 0.0, 1.0)
        labels[limb] = 1 + c * k + np.minimum((s * k).astype(np.int64), k - 1)
        for j in range(k):
            joints[1 + c * k + j] = _band_centroid(v[idx][limb], sub_area[limb], s, j / k, BAND / k)

    parents = np.zeros(len(joints), dtype=np.int64)
    parents[0] = -1
    chains = np.full(len(joints), -1, dtype=np.int64)
    for c in range(num_chains):
        first = 1 + c * k
        parents[first + 1 : first + k] = np.arange(first, first + k - 1)
        chains[first : first + k] = c

    tip_points = v[idx[tips]]
    w_main = np.zeros((len(idx), len(joints)))
    w_main[np.arange(len(idx)), labels] = 1.0
    if num_chains:
        bones = _chain_bone_lengths(joints, chains, tip_points, k)
        sigma = SMOOTHING * float(np.median(bones))
        w_main = _diffuse(sub, w_main, sigma)
        w_main[w_main < WEIGHT_CUTOFF] = 0.0
        w_main /= w_main.sum(axis=1, keepdims=True)

    weights = np.zeros((n, len(joints)))
    weights[idx] = w_main
    if num_comp > 1:
        tree = cKDTree(v[idx])
        for other in range(num_comp):
            if other == main:
                continue
            members = np.flatnonzero(comp == other)
            _, nearest = tree.query(v[members].mean(axis=0))
            weights[members] = w_main[nearest]
    all_regions = np.full(n, -1, dtype=np.int64)
    all_regions[idx] = regions
    return Skeleton(
        joints=joints,
        parents=parents,
        chains=chains,
        tips=idx[tips].astype(np.int64),
        tip_points=tip_points,
        weights=weights,
        regions=all_regions,
    )


def forward_kinematics(skeleton: Skeleton, rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global rigid transform of every joint.

    Args:
        skeleton: the skeleton.
        rotations: (B,J,3) axis-angle rotation of each joint about its own rest position, in
            radians, in the template's frame (joint 0 turns the whole body about the root).

    Returns:
        ``(R, t)``: (B,J,3,3) and (B,J,3) float64 such that a point ``x`` rigidly attached to
        joint ``j`` moves to ``R[:, j] @ x + t[:, j]``.

    Raises:
        ValueError: ``rotations`` not of shape (B, J, 3) or not finite.
    """
    rot = np.asarray(rotations, dtype=np.float64)
    num_joints = skeleton.num_joints
    if rot.ndim != 3 or rot.shape[1:] != (num_joints, 3):
        raise ValueError(f"expected rotations of shape (B, {num_joints}, 3), got {rot.shape}")
    if not np.isfinite(rot).all():
        raise ValueError("rotations must be finite")
    batch = rot.shape[0]
    local = Rotation.from_rotvec(rot.reshape(-1, 3)).as_matrix().reshape(batch, num_joints, 3, 3)
    glob_r = np.empty_like(local)
    glob_t = np.empty((batch, num_joints, 3))
    for j in range(num_joints):
        p = skeleton.joints[j]
        local_t = p - local[:, j] @ p
        parent = skeleton.parents[j]
        if parent < 0:
            glob_r[:, j] = local[:, j]
            glob_t[:, j] = local_t
        else:
            glob_r[:, j] = glob_r[:, parent] @ local[:, j]
            glob_t[:, j] = np.einsum("bij,bj->bi", glob_r[:, parent], local_t) + glob_t[:, parent]
    return glob_r, glob_t


def posed_joints(skeleton: Skeleton, rotations: np.ndarray) -> np.ndarray:
    """(B,J,3) float64 joint positions after :func:`forward_kinematics` (root fixed)."""
    glob_r, glob_t = forward_kinematics(skeleton, rotations)
    # A joint's own rotation fixes its position, so only its parent's transform moves it.
    parent = np.maximum(skeleton.parents, 0)
    moved = np.einsum("bjik,jk->bji", glob_r[:, parent], skeleton.joints) + glob_t[:, parent]
    moved[:, skeleton.parents < 0] = skeleton.joints[skeleton.parents < 0]
    return moved


def pose(skeleton: Skeleton, rotations: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Pose the template: forward kinematics, then linear-blend skinning.

    Args:
        skeleton: the skeleton fitted to this template.
        rotations: (B,J,3) axis-angle joint rotations in radians (see
            :func:`forward_kinematics`); zeros give the template back.
        vertices: (N,3) float template vertex positions (the ones the skeleton was fitted to).

    Returns:
        (B,N,3) float64 posed vertex positions, in the template's units and frame.

    Raises:
        ValueError: shapes that do not match the skeleton.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.shape != (skeleton.weights.shape[0], 3):
        raise ValueError(
            f"expected vertices of shape ({skeleton.weights.shape[0]}, 3), got {v.shape}"
        )
    glob_r, glob_t = forward_kinematics(skeleton, rotations)
    batch, num_joints = glob_r.shape[:2]
    # Blend the 3x4 joint transforms per vertex, a few poses at a time to bound memory.
    affine = np.concatenate([glob_r, glob_t[..., None]], axis=3).reshape(batch, num_joints, 12)
    chunk = max(1, 2_000_000 // max(1, len(v)))
    out = np.empty((batch, len(v), 3))
    for start in range(0, batch, chunk):
        blended = np.einsum("nj,bjk->bnk", skeleton.weights, affine[start : start + chunk])
        blended = blended.reshape(-1, len(v), 3, 4)
        out[start : start + chunk] = (
            np.einsum("bnik,nk->bni", blended[..., :3], v) + blended[..., 3]
        )
    return out


def random_motion(
    skeleton: Skeleton,
    num_frames: int,
    seed: int | np.random.Generator = 0,
    *,
    amplitude_deg: float = 30.0,
    root_amplitude_deg: float = 10.0,
    min_period: float = 60.0,
    twist: float = 0.25,
) -> np.ndarray:
    """Smooth random joint angles over time, for one video.

    Each joint swings about the two axes perpendicular to its bone (and twists a little about
    the bone); each of those three components is a sum of three sinusoids with random
    frequencies (periods ``min_period .. 4 * min_period`` frames), phases and weights, so
    consecutive frames differ by a few degrees and different seeds give unrelated motions. The
    root turns the whole body about all three axes, by less.

    Args:
        skeleton: the skeleton.
        num_frames: T >= 1.
        seed: an int or a numpy Generator (consumed).
        amplitude_deg: bound on every non-root joint's rotation angle, degrees.
        root_amplitude_deg: bound on the root's rotation angle, degrees.
        min_period: shortest period in frames; the rotation vector of a joint changes by at
            most ``amplitude * 2 * pi / min_period * sqrt(2 + twist**2)`` per frame.
        twist: amplitude of the twist about the bone relative to the swing.

    Returns:
        (T,J,3) float64 axis-angle rotations in radians, for :func:`pose`.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if min_period <= 0:
        raise ValueError(f"min_period must be > 0, got {min_period}")
    rng = np.random.default_rng(seed)
    shape = (skeleton.num_joints, 3, 3)  # joints x components x sinusoids
    freq = rng.uniform(0.25, 1.0, shape) / min_period
    phase = rng.uniform(0.0, 2.0 * np.pi, shape)
    weight = rng.uniform(0.0, 1.0, shape)
    weight /= weight.sum(axis=2, keepdims=True)
    t = np.arange(num_frames, dtype=np.float64)[:, None, None, None]
    components = (weight * np.sin(2.0 * np.pi * freq * t + phase)).sum(axis=3)
    return _rotations(skeleton, components, amplitude_deg, root_amplitude_deg, twist)


def random_poses(
    skeleton: Skeleton,
    num: int,
    seed: int | np.random.Generator = 0,
    *,
    amplitude_deg: float = 30.0,
    root_amplitude_deg: float = 10.0,
    twist: float = 0.25,
) -> np.ndarray:
    """Independent random poses (swing, twist and bounds as in :func:`random_motion`).

    Returns:
        (num,J,3) float64 axis-angle rotations in radians.
    """
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    rng = np.random.default_rng(seed)
    components = rng.uniform(-1.0, 1.0, (num, skeleton.num_joints, 3))
    return _rotations(skeleton, components, amplitude_deg, root_amplitude_deg, twist)


def _rotations(
    skeleton: Skeleton,
    components: np.ndarray,
    amplitude_deg: float,
    root_amplitude_deg: float,
    twist: float,
) -> np.ndarray:
    """Rotation vectors (T,J,3) from components in [-1, 1]: swing, swing, twist per joint."""
    amplitude = np.full(skeleton.num_joints, np.radians(amplitude_deg))
    axes = np.empty((skeleton.num_joints, 3, 3))
    for j in range(skeleton.num_joints):
        if skeleton.parents[j] < 0:
            # No bone: the root turns about the template's own axes.
            amplitude[j] = np.radians(root_amplitude_deg)
            axes[j] = np.eye(3)
            continue
        child = np.flatnonzero(skeleton.parents == j)
        end = skeleton.joints[child[0]] if len(child) else skeleton.tip_points[skeleton.chains[j]]
        bone = end - skeleton.joints[j]
        axes[j] = _perpendicular_frame(bone)
        axes[j, 2] *= twist
    rotvec = np.einsum("tjc,jcd->tjd", components, axes) * amplitude[:, None]
    # Radial projection onto the ball is 1-Lipschitz: it bounds the angle without adding jerks.
    norm = np.linalg.norm(rotvec, axis=2, keepdims=True)
    return rotvec * np.minimum(1.0, amplitude[:, None] / np.maximum(norm, 1e-300))


def _perpendicular_frame(direction: np.ndarray) -> np.ndarray:
    """(3,3) rows: two unit axes perpendicular to ``direction``, then ``direction`` itself."""
    length = np.linalg.norm(direction)
    d = direction / length if length > 0 else np.array([0.0, 0.0, 1.0])
    helper = np.eye(3)[int(np.argmin(np.abs(d)))]
    u = np.cross(d, helper)
    u /= np.linalg.norm(u)
    return np.stack([u, np.cross(d, u), d])


def _edge_graph(v: np.ndarray, f: np.ndarray) -> sp.csr_matrix:
    """Symmetric (N,N) sparse matrix of edge lengths."""
    n = len(v)
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    edges = edges[edges[:, 0] != edges[:, 1]]
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    length = np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1)
    # csgraph treats stored zeros as missing edges; coincident vertices are still neighbours.
    length = np.maximum(length, np.finfo(np.float64).tiny)
    graph = sp.coo_matrix((length, (edges[:, 0], edges[:, 1])), shape=(n, n))
    return (graph + graph.T).tocsr()


def _vertex_areas(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """(N,) a third of the area of the triangles around each vertex (0 for isolated ones)."""
    tri = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    return np.bincount(f.ravel(), weights=np.repeat(tri / 3.0, 3), minlength=len(v))


def _average_geodesic(graph: sp.csr_matrix, seed: int) -> tuple[np.ndarray, float]:
    """Average geodesic distance (N,) from farthest-point sources, and the largest distance seen.

    Farthest-point sources cover the surface about evenly, so their average approximates the
    area average that makes the AGD independent of the tessellation.
    """
    n = graph.shape[0]
    source = int(np.random.default_rng(seed).integers(n))
    nearest = np.full(n, np.inf)
    total = np.zeros(n)
    diameter = 0.0
    count = min(AGD_SOURCES, n)
    for _ in range(count):
        dist = dijkstra(graph, directed=False, indices=source)
        total += dist
        diameter = max(diameter, float(dist.max()))
        nearest = np.minimum(nearest, dist)
        source = int(np.argmax(nearest))
    return total / count, diameter


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x


def _limbs(
    graph: sp.csr_matrix,
    g: np.ndarray,
    areas: np.ndarray,
    max_chains: int,
    min_persistence: float,
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Limb tips, limb regions and limb base levels from two downward sweeps of ``g``.

    Returns:
        tips (C,) vertex ids, most persistent first; regions (N,) chain id or ``_BODY``;
        base (C,) the level of ``g`` where each limb joins the rest.
    """
    n = len(g)
    order = np.lexsort((np.arange(n), -g)).tolist()
    neighbours = np.split(graph.indices, graph.indptr[1:-1])
    neighbours = [nb.tolist() for nb in neighbours]

    # Sweep 1: elder rule. Where superlevel components meet, the one with the lower peak dies;
    # its persistence is how far its peak rises above that level.
    uf = _UnionFind(n)
    peak = [-1] * n
    persistence: dict[int, float] = {}
    done = [False] * n
    for v in order:
        roots = sorted(
            {uf.find(u) for u in neighbours[v] if done[u]}, key=lambda r: (-g[peak[r]], peak[r])
        )
        if roots:
            for r in roots[1:]:
                persistence[peak[r]] = float(g[peak[r]] - g[v])
                uf.parent[r] = roots[0]
            uf.parent[v] = roots[0]
        else:
            peak[v] = v
        done[v] = True
    persistence[order[0]] = float(g[order[0]] - g[order[-1]])
    ranked = sorted(
        (p for p, pers in persistence.items() if pers > min_persistence),
        key=lambda p: (-persistence[p], p),
    )
    kept = ranked[:max_chains]
    kind = {p: c for c, p in enumerate(kept)}
    kind.update({p: _BLOCKER for p in ranked[max_chains:]})

    # Sweep 2: a kept limb ends where it first meets another substantial component (limb,
    # blocker or body). Noise is absorbed by what it meets, except that a noise component as
    # large as a limb that already stands out is a bulge of the body (a rump), not a bump on
    # the limb, and ends it too.
    uf = _UnionFind(n)
    status = [_NOISE] * n
    members: list[list[int]] = [[] for _ in range(n)]
    comp_area = [0.0] * n
    regions = np.full(n, _BODY, dtype=np.int64)
    base: list[float | None] = [None] * len(kept)
    done = [False] * n
    for v in order:
        roots = sorted({uf.find(u) for u in neighbours[v] if done[u]})
        done[v] = True
        if not roots:
            status[v] = kind.get(v, _NOISE)
            members[v] = [v]
            comp_area[v] = float(areas[v])
            continue
        solid = [r for r in roots if status[r] != _NOISE]
        if len(solid) == 1 and status[solid[0]] >= 0:
            limb = solid[0]
            if g[kept[status[limb]]] - g[v] >= min_persistence and any(
                comp_area[r] >= BULGE * comp_area[limb] for r in roots if r != limb
            ):
                solid = roots
        if len(solid) >= 2:
            for r in solid:
                if status[r] >= 0:
                    regions[members[r]] = status[r]
                    base[status[r]] = float(g[v])
            merged = _BODY
        else:
            merged = status[solid[0]] if solid else _NOISE
        big = max(roots, key=lambda r: (len(members[r]), -r))
        for r in roots:
            if r != big:
                members[big].extend(members[r])
                members[r] = []
                comp_area[big] += comp_area[r]
                uf.parent[r] = big
        members[big].append(v)
        comp_area[big] += float(areas[v])
        uf.parent[v] = big
        status[big] = merged
    for c, p in enumerate(kept):
        if base[c] is None:
            # The only substantial protrusion never meets another: call its upper half the limb.
            base[c] = 0.5 * float(g[p] + g[order[-1]])
            regions[(g >= base[c]) & (regions == _BODY)] = c
    return np.asarray(kept, dtype=np.int64), regions, [float(b) for b in base]


def _centroid(points: np.ndarray, areas: np.ndarray) -> np.ndarray:
    total = areas.sum()
    if total > 0:
        return (areas[:, None] * points).sum(axis=0) / total
    return points.mean(axis=0)


def _band_centroid(
    points: np.ndarray, areas: np.ndarray, s: np.ndarray, center: float, half: float
) -> np.ndarray:
    """Centroid of the points whose ``s`` lies within ``half`` of ``center`` (at least three)."""
    near = np.flatnonzero(np.abs(s - center) <= half)
    if len(near) < 3:
        near = np.argsort(np.abs(s - center), kind="stable")[:3]
    return _centroid(points[near], areas[near])


def _chain_bone_lengths(
    joints: np.ndarray, chains: np.ndarray, tip_points: np.ndarray, k: int
) -> np.ndarray:
    """Lengths of every bone inside a chain, including each chain's last joint to its tip."""
    lengths = []
    for c in range(len(tip_points)):
        path = np.concatenate([joints[chains == c], tip_points[c : c + 1]])
        lengths.append(np.linalg.norm(np.diff(path, axis=0), axis=1))
    return np.concatenate(lengths)


def _diffuse(graph: sp.csr_matrix, values: np.ndarray, sigma: float) -> np.ndarray:
    """One implicit heat step ``(I + sigma^2/2 L) X = values`` on the surface.

    ``L`` is the graph Laplacian with weights ``1/length^2``, which approximates the surface
    Laplacian whatever the resolution, so ``sigma`` is a length, not a number of iterations.
    The system is an M-matrix with zero row sums: the result stays non-negative and keeps the
    row sums of ``values``.
    """
    if sigma <= 0:
        return values
    adjacency = graph.copy()
    floor = 1e-3 * float(np.median(adjacency.data))
    adjacency.data = 1.0 / np.maximum(adjacency.data, floor) ** 2
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    laplacian = sp.diags(degree) - adjacency
    system = (sp.identity(graph.shape[0]) + 0.5 * sigma**2 * laplacian).tocsc()
    return np.maximum(splu(system).solve(values), 0.0)
