"""Tests of the keypoint loader/writer, missing points and per-frame normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from engine.core.errors import DataError
from engine.io.keypoints import (
    KeypointSequence,
    load_dataset,
    load_keypoints,
    save_keypoints,
    with_missing,
)
from engine.nrsfm.normalize import denormalize_3d, normalize_2d, normalize_3d

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def random_sequence(frames: int = 6, points: int = 5, seed: int = 0) -> KeypointSequence:
    rng = np.random.default_rng(seed)
    p3 = rng.normal(size=(frames, points, 3)) * 10 + 3
    return KeypointSequence(
        p3[..., :2], p3, names=[f"p{i}" for i in range(points)], edges=[[0, 1], [1, 2]]
    )


# ---------------------------------------------------------------------------------------------
# KeypointSequence


def test_sequence_properties_and_subset():
    seq = random_sequence(frames=7)
    assert seq.num_frames == 7 and seq.num_points == 5 and seq.missing_ratio == 0.0
    assert seq.points2d.dtype == np.float64 and seq.edges.dtype == np.int64
    sub = seq.subset([1, 3])
    assert sub.num_frames == 2
    np.testing.assert_array_equal(sub.points3d[1], seq.points3d[3])
    assert sub.names == seq.names
    mask = np.zeros(7, bool)
    mask[2:5] = True
    assert seq.subset(mask).num_frames == 3
    assert seq.subset(slice(0, 4)).num_frames == 4


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"points2d": np.zeros((4, 5, 3))}, "points2d"),
        ({"points2d": np.zeros((0, 5, 2))}, "points2d"),
        ({"points2d": np.zeros((4, 2, 2))}, "points2d"),
        ({"points2d": np.full((4, 5, 2), np.nan)}, "points2d"),
        ({"points2d": np.full((4, 5, 2), np.inf)}, "points2d"),
        ({"points2d": np.zeros((4, 5, 2)), "points3d": np.zeros((4, 6, 3))}, "points3d"),
        ({"points2d": np.zeros((4, 5, 2)), "points3d": np.full((4, 5, 3), np.nan)}, "points3d"),
        ({"points2d": np.zeros((4, 5, 2)), "visibility": np.ones((4, 4), bool)}, "visibility"),
        ({"points2d": np.zeros((4, 5, 2)), "names": ["a", "b"]}, "names"),
        ({"points2d": np.zeros((4, 5, 2)), "edges": [[0, 5]]}, "edges"),
        ({"points2d": np.zeros((4, 5, 2)), "edges": [0, 1, 2]}, "edges"),
    ],
)
def test_sequence_rejects_bad_arrays(kwargs, field):
    with pytest.raises(DataError) as info:
        KeypointSequence(**kwargs)
    assert info.value.field == field


def test_nan_allowed_only_where_missing():
    p2 = np.ones((3, 4, 2))
    p2[1, 2] = np.nan
    vis = np.ones((3, 4), bool)
    vis[1, 2] = False
    seq = KeypointSequence(p2, visibility=vis)
    assert np.isfinite(seq.points2d).all() and seq.points2d[1, 2].tolist() == [0.0, 0.0]
    assert seq.missing_ratio == pytest.approx(1 / 12)
    vis[1, 2] = True
    with pytest.raises(DataError, match="visible"):
        KeypointSequence(p2, visibility=vis)


# ---------------------------------------------------------------------------------------------
# Files


def test_npz_round_trip(tmp_path):
    seq = with_missing(random_sequence(), 0.2, seed=1)
    seq.description["note"] = "hello"
    path = tmp_path / "seq.npz"
    save_keypoints(path, seq)
    back = load_keypoints(path)
    np.testing.assert_array_equal(back.points2d, seq.points2d)
    np.testing.assert_array_equal(back.points3d, seq.points3d)
    np.testing.assert_array_equal(back.visibility, seq.visibility)
    np.testing.assert_array_equal(back.edges, seq.edges)
    assert back.names == seq.names
    assert back.description["note"] == "hello" and back.description["kind"] == "npz"
    assert back.description["path"] == str(path)


def test_npz_minimal(tmp_path):
    path = tmp_path / "min.npz"
    np.savez(path, points2d=np.arange(24.0).reshape(2, 4, 3)[..., :2])
    seq = load_keypoints(path)
    assert seq.points3d is None and seq.visibility is None and seq.num_points == 4


def test_mat_x_layout(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 6, 5))  # 3 x P x F
    path = tmp_path / "seq.mat"
    scipy.io.savemat(path, {"X": x})
    seq = load_keypoints(path)
    assert seq.num_frames == 5 and seq.num_points == 6
    np.testing.assert_allclose(seq.points3d[4, 2], x[:, 2, 4])
    np.testing.assert_allclose(seq.points2d, seq.points3d[..., :2])
    assert seq.description["kind"] == "mat-X"


def to_akhter(points3d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Akhter's layout of (F,P,3) camera-frame points: W (2F x P), S (3F x P)."""
    f, p, _ = points3d.shape
    w = points3d[..., :2].transpose(0, 2, 1).reshape(2 * f, p)
    s = points3d.transpose(0, 2, 1).reshape(3 * f, p)
    return w, s


def test_mat_akhter_layout_camera_frame(tmp_path):
    seq = random_sequence(frames=4, points=6)
    w, s = to_akhter(seq.points3d)
    assert np.array_equal(w[2 * 3 + 1], seq.points2d[3, :, 1])  # row 2f+1 is y of frame f
    path = tmp_path / "akhter.mat"
    scipy.io.savemat(path, {"W": w, "S": s})
    back = load_keypoints(path)
    np.testing.assert_allclose(back.points2d, seq.points2d)
    np.testing.assert_allclose(back.points3d, seq.points3d)
    assert back.description["kind"] == "mat-W"
    scipy.io.savemat(path, {"W": w})
    assert load_keypoints(path).points3d is None


def test_mat_akhter_world_frame_with_rotations(tmp_path):
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(3)
    f, p = 5, 7
    world = rng.normal(size=(f, 3, p))
    rot = Rotation.random(f, random_state=4).as_matrix()
    cam = rot @ world
    w = cam[:, :2, :].reshape(2 * f, p)
    w = w - w.mean(axis=1, keepdims=True)  # Akhter's W is often centred per row
    path = tmp_path / "world.mat"
    scipy.io.savemat(
        path, {"W": w, "S": world.reshape(3 * f, p), "Rs": rot[:, :2, :].reshape(2 * f, 3)}
    )
    seq = load_keypoints(path)
    expected = cam.transpose(0, 2, 1)
    expected[..., :2] -= expected[..., :2].mean(axis=1, keepdims=True)
    np.testing.assert_allclose(seq.points3d[..., :2], seq.points2d, atol=1e-12)
    np.testing.assert_allclose(seq.points3d, expected, atol=1e-12)
    scipy.io.savemat(path, {"W": w, "S": world.reshape(3 * f, p)})
    with pytest.raises(DataError, match="Rs") as info:
        load_keypoints(path)
    assert info.value.field == "S" and str(path) in str(info.value)


@pytest.mark.parametrize(
    "variables, field, message",
    [
        ({"Y": np.zeros((3, 4, 5))}, "X", "expected a variable 'X'"),
        ({"X": np.zeros((2, 4, 5))}, "X", "3, P, F"),
        ({"X": np.zeros((3, 2, 5))}, "points2d", "at least 3 points"),
        ({"X": np.full((3, 4, 5), np.nan)}, "X", "NaN"),
        ({"W": np.zeros((3, 4))}, "W", "even"),
        ({"W": np.zeros((4, 4)), "S": np.zeros((5, 4))}, "S", "3F x P"),
        ({"W": np.zeros((4, 4)), "S": np.ones((6, 4)) * np.inf}, "S", "NaN"),
    ],
)
def test_mat_errors_name_file_and_field(tmp_path, variables, field, message):
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, variables)
    with pytest.raises(DataError, match=message) as info:
        load_keypoints(path)
    assert info.value.field == field
    assert info.value.path == str(path)
    assert str(path) in str(info.value)


def test_npz_errors(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, points3d=np.zeros((2, 4, 3)))
    with pytest.raises(DataError, match="missing") as info:
        load_keypoints(path)
    assert info.value.field == "points2d" and info.value.path == str(path)
    np.savez(path, points2d=np.zeros((2, 4, 2)), points3d=np.zeros((3, 4, 3)))
    with pytest.raises(DataError) as info:
        load_keypoints(path)
    assert info.value.field == "points3d" and info.value.path == str(path)
    np.savez(path, points2d=np.zeros((2, 4, 2)), names=np.array([1, 2, 3, 4]))
    with pytest.raises(DataError) as info:
        load_keypoints(path)
    assert info.value.field == "names"
    np.savez(path, points2d=np.array([[object()] * 2] * 4, dtype=object))
    with pytest.raises(DataError, match="object"):
        load_keypoints(path)


@pytest.mark.parametrize(
    "name, content", [("x.mat", b"garbage" * 40), ("x.npz", b"PK\x03\x04 broken"), ("x.npz", b"")]
)
def test_corrupt_files(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match="cannot read") as info:
        load_keypoints(path)
    assert info.value.path == str(path)


def test_unsupported_and_missing_files(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("1,2\n")
    with pytest.raises(DataError, match=r"\.mat or \.npz"):
        load_keypoints(path)
    with pytest.raises(DataError, match="not found"):
        load_keypoints(tmp_path / "nope.npz")
    with pytest.raises(DataError, match="not found"):
        load_dataset(str(tmp_path / "nope.mat"))
    with pytest.raises(DataError, match=r"\.npz"):
        save_keypoints(tmp_path / "out.mat", random_sequence())


@pytest.mark.skipif(
    not (SHARED_DATA / "nrsfm").is_dir(), reason="reference data ../shared/data/nrsfm not present"
)
def test_reference_sequences_load_in_both_layouts(tmp_path):
    expected = {
        "drink": (1102, 41),
        "pickup": (357, 41),
        "yoga": (307, 41),
        "stretch": (370, 41),
        "face": (316, 40),
    }
    for name, shape in expected.items():
        seq = load_dataset(str(SHARED_DATA / "nrsfm" / f"{name}.mat"))
        assert (seq.num_frames, seq.num_points) == shape
        np.testing.assert_array_equal(seq.points2d, seq.points3d[..., :2])
    # The same sequence converted to Akhter's W/S layout loads to the same arrays.
    seq = load_keypoints(SHARED_DATA / "nrsfm" / "yoga.mat")
    x = scipy.io.loadmat(SHARED_DATA / "nrsfm" / "yoga.mat")["X"]
    w, s = to_akhter(seq.points3d)
    np.testing.assert_array_equal(w[2 * 10], x[0, :, 10])
    np.testing.assert_array_equal(s[3 * 10 + 2], x[2, :, 10])
    path = tmp_path / "yoga_akhter.mat"
    scipy.io.savemat(path, {"W": w, "S": s})
    back = load_keypoints(path)
    np.testing.assert_array_equal(back.points3d, seq.points3d)


# ---------------------------------------------------------------------------------------------
# Specs


def test_load_dataset_synthetic_specs():
    seq = load_dataset("synthetic:human?frames=250&length=100&seed=3")
    assert seq.num_frames == 250 and seq.num_points == 17 and seq.points3d is not None
    again = load_dataset(seq.description["spec"])
    np.testing.assert_array_equal(again.points3d, seq.points3d)
    test = load_dataset("synthetic:human?frames=250&length=100&seed=3&split=test")
    assert not np.allclose(test.points2d, seq.points2d)
    by_arg = load_dataset("synthetic:human?frames=250&length=100", seed=3)
    np.testing.assert_array_equal(by_arg.points2d, seq.points2d)


@pytest.mark.parametrize(
    "spec",
    [
        "synthetic:dog",
        "synthetic:human?frames=x",
        "synthetic:human?frames=0",
        "synthetic:human?color=1",
        "synthetic:human?split=val",
    ],
)
def test_load_dataset_bad_specs(spec):
    with pytest.raises(DataError) as info:
        load_dataset(spec)
    assert info.value.field == "spec"


# ---------------------------------------------------------------------------------------------
# Missing points


def test_with_missing_ratio_and_determinism():
    seq = random_sequence(frames=50, points=10)
    a = with_missing(seq, 0.2, seed=5)
    b = with_missing(seq, 0.2, seed=5)
    c = with_missing(seq, 0.2, seed=6)
    assert a.missing_ratio == pytest.approx(0.2)
    np.testing.assert_array_equal(a.visibility, b.visibility)
    assert not np.array_equal(a.visibility, c.visibility)
    assert np.all(a.points2d[~a.visibility] == 0)
    np.testing.assert_array_equal(a.points2d[a.visibility], seq.points2d[a.visibility])
    np.testing.assert_array_equal(a.points3d, seq.points3d)
    assert seq.visibility is None  # input untouched
    heavy = with_missing(seq, 0.9, seed=1)
    assert heavy.visibility.sum(axis=1).min() >= 2
    with pytest.raises(DataError):
        with_missing(seq, 1.0)


# ---------------------------------------------------------------------------------------------
# Normalisation


def test_normalize_2d_against_loop():
    seq = with_missing(random_sequence(frames=8, points=6), 0.25, seed=2)
    normed, center, scale = normalize_2d(seq.points2d, seq.visibility)
    for f in range(seq.num_frames):
        vis = seq.visibility[f]
        pts = seq.points2d[f][vis]
        c = pts.mean(axis=0)
        s = np.sqrt(((pts - c) ** 2).sum())
        np.testing.assert_allclose(center[f], c)
        np.testing.assert_allclose(scale[f], s)
        np.testing.assert_allclose(normed[f][vis], (pts - c) / s)
        assert np.all(normed[f][~vis] == 0)
        assert np.linalg.norm(normed[f][vis]) == pytest.approx(1.0)


def test_normalize_ignores_nan_of_missing_points_and_degenerate_frames():
    p = np.arange(24.0).reshape(3, 4, 2)
    p[0] = 5.0  # all points identical: zero scale
    p[1, 0] = np.nan
    vis = np.ones((3, 4), bool)
    vis[1, 0] = False
    normed, center, scale = normalize_2d(p, vis)
    assert np.isfinite(normed).all()
    assert scale[0] == 1.0 and np.all(normed[0] == 0) and center[0].tolist() == [5.0, 5.0]
    with pytest.raises(DataError):
        normalize_2d(p)


def test_normalize_3d_round_trip():
    seq = random_sequence(frames=5)
    _, center, scale = normalize_2d(seq.points2d)
    n3 = normalize_3d(seq.points3d, center, scale)
    np.testing.assert_allclose(n3[..., :2], normalize_2d(seq.points2d)[0])
    np.testing.assert_allclose(n3[..., 2].mean(axis=1), 0, atol=1e-12)
    back = denormalize_3d(n3, center, scale)
    expected = seq.points3d.copy()
    expected[..., 2] -= expected[..., 2].mean(axis=1, keepdims=True)
    np.testing.assert_allclose(back, expected, atol=1e-12)
    with pytest.raises(DataError):
        denormalize_3d(n3, center[:2], scale)
