"""Image sets: layout, crop geometry, annotations that follow the crop, DIS flow cache, defects."""

from __future__ import annotations

import json
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from engine.core.errors import ImageSetError, InputError
from engine.io import image_sets
from engine.io.image_sets import load_image_set, load_template_keypoints, save_image_set
from engine.render.cameras import make_cameras, project, view_rotation

TEMPLATES = Path(__file__).resolve().parents[2] / "shared" / "data" / "templates"


def square_mask(height: int, width: int, x0: int, y0: int, side: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[y0 : y0 + side, x0 : x0 + side] = 255
    return mask


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB texture (uint8), so that optical flow has something to follow."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 4 + 2, width // 4 + 2, 3)).astype(np.float32)
    fine = np.kron(coarse, np.ones((4, 4, 1), np.float32))[:height, :width]
    blurred = sum(np.roll(fine, (dy, dx), axis=(0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    return np.clip(blurred / 9 * 255, 0, 255).astype(np.uint8)


def write_set(root: Path, masks: dict[str, np.ndarray], images: dict | None = None) -> Path:
    (root / "masks").mkdir(parents=True)
    for name, mask in masks.items():
        iio.imwrite(root / "masks" / f"{name}.png", mask)
    if images:
        (root / "images").mkdir()
        for name, image in images.items():
            iio.imwrite(root / "images" / f"{name}.png", image)
    return root


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data))


# ------------------------------------------------------------------ round trip and geometry


def test_round_trip_save_then_load(tmp_path):
    names = ["b", "a", "c"]
    masks = np.stack([square_mask(40, 50, 10 + 5 * k, 8, 20) for k in range(3)]) > 0
    images = np.stack([texture(40, 50, seed=k) for k in range(3)])
    keypoints = np.array(
        [[[15.0, 9.0, 1], [29.5, 27.5, 0]], [[22, 10, 1], [30, 20, 1]], [[26, 12, 0], [40, 25, 1]]]
    )
    flows = np.zeros((3, 40, 50, 2), np.float32)
    flows[1] = (5.0, 0.0)  # a -> c in the video below; b is a last frame, so no file
    quaternion = view_rotation(torch.tensor([0.0, 90.0, 180.0]), 10.0, "y", "-x")
    cameras = make_cameras(torch.full((3,), 12.0), torch.tensor([[20.0, 18.0]] * 3), quaternion)
    vertices = np.random.default_rng(0).normal(size=(3, 4, 3))
    ground_truth = {
        "vertices": vertices,
        "vertices2d": vertices[..., :2] * 3 + 20,
        "faces": np.array([[0, 1, 2], [1, 2, 3]]),
    }
    root = save_image_set(
        tmp_path / "set",
        names,
        masks,
        images=images,
        keypoints=keypoints,
        keypoint_names=["nose", "tail"],
        sequences={"walk": ["a", "c", "b"]},
        flow=flows,
        cameras=cameras.numpy(),
        ground_truth=ground_truth,
    )
    assert sorted(p.name for p in (root / "flow").iterdir()) == ["a.npy", "c.npy"]
    # margin 0 and size = side: the crop is the mask's 20 x 20 box, unresized.
    loaded = load_image_set(root, size=20, margin=0.0)
    assert loaded.names == ["a", "b", "c"]
    assert len(loaded) == 3 and loaded.root == str(root)
    order = [names.index(n) for n in loaded.names]
    np.testing.assert_array_equal(loaded.crops[:, 2], [20, 20, 20])
    np.testing.assert_array_equal(loaded.source_sizes, [[40, 50]] * 3)
    np.testing.assert_array_equal(loaded.masks, np.ones((3, 20, 20), np.float32))
    for row, k in enumerate(order):
        x0, y0 = loaded.crops[row, :2].astype(int)
        expected = images[k][y0 : y0 + 20, x0 : x0 + 20] / 255
        np.testing.assert_allclose(loaded.images[row], expected, atol=1e-6)
        np.testing.assert_allclose(loaded.keypoints[row, :, :2], keypoints[k, :, :2] - (x0, y0))
        np.testing.assert_array_equal(loaded.keypoints[row, :, 2], keypoints[k, :, 2])
    assert loaded.keypoint_names == ["nose", "tail"]
    assert loaded.sequences == {"walk": ["a", "c", "b"]}
    np.testing.assert_array_equal(loaded.next_index, [2, -1, 1])  # a -> c -> b
    np.testing.assert_array_equal(loaded.flow[1], 0)  # b has no next frame
    assert loaded.cameras.shape == (3, 7) and loaded.ground_truth["faces"].shape == (2, 3)
    np.testing.assert_allclose(loaded.ground_truth["vertices"], vertices[order])
    corners = loaded.crops[:, None, :2]
    np.testing.assert_allclose(
        loaded.ground_truth["vertices2d"], ground_truth["vertices2d"][order] - corners
    )
    np.testing.assert_allclose(
        loaded.cameras[:, 1:3], (20.0, 18.0) - loaded.crops[:, :2], atol=1e-5
    )
    np.testing.assert_allclose(loaded.cameras[:, 0], 12.0)


def test_mask_square_lands_centred_and_keypoints_follow(tmp_path):
    # A 10 x 10 square with its top-left pixel at column 20, row 40 of a 80 x 100 (W x H) image.
    root = write_set(tmp_path / "set", {"one": square_mask(100, 80, 20, 40, 10)})
    write_json(
        root / "keypoints.json",
        {
            "names": ["corner", "centre", "far"],
            "points": {"one": [[20, 40, 1], [25, 45, 1], [0, 0, 0]]},
        },
    )
    loaded = load_image_set(root, size=24, margin=0.1)
    # Box [20, 30] x [40, 50] grown by 1 px each side: crop [19, 31] x [39, 51], scaled x2.
    np.testing.assert_array_equal(loaded.crops[0], [19, 39, 12])
    mask = loaded.masks[0]
    rows, cols = np.nonzero(mask > 0.5)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2, 21, 2, 21)
    np.testing.assert_allclose(mask[3:21, 3:21], 1.0)  # bilinear enlarging blurs the rim
    np.testing.assert_allclose(mask, mask[::-1, ::-1])  # centred
    np.testing.assert_allclose(mask, mask.T)
    assert float(mask.sum()) == pytest.approx(400, abs=20)  # about 20 x 20
    np.testing.assert_allclose(
        loaded.keypoints[0], [[2, 2, 1], [12, 12, 1], [-38, -78, 0]], atol=1e-6
    )


def test_box_leaving_the_image_is_padded_with_zeros(tmp_path):
    mask = square_mask(30, 30, 0, 0, 10)  # touches the top-left corner
    image = np.full((30, 30, 3), 200, np.uint8)
    root = write_set(tmp_path / "set", {"edge": mask}, {"edge": image})
    loaded = load_image_set(root, size=20, margin=0.5)
    np.testing.assert_array_equal(loaded.crops[0], [-5, -5, 20])
    np.testing.assert_array_equal(loaded.masks[0, :5], 0)  # above the image: padding
    np.testing.assert_array_equal(loaded.images[0, :, :5], 0)
    np.testing.assert_allclose(loaded.masks[0, 5:15, 5:15], 1.0)
    np.testing.assert_allclose(loaded.images[0, 5:, 5:], 200 / 255, atol=1e-6)


def test_large_source_is_area_resized(tmp_path):
    mask = square_mask(200, 200, 40, 40, 120)
    image = np.zeros((200, 200, 3), np.uint8)
    image[:, ::2] = 255  # one-pixel stripes: area interpolation averages them to grey
    loaded = load_image_set(write_set(tmp_path / "s", {"m": mask}, {"m": image}), size=30, margin=0)
    np.testing.assert_allclose(loaded.images[0], 0.5, atol=0.01)
    np.testing.assert_allclose(loaded.masks[0], 1.0)


@pytest.mark.parametrize(
    "kind", ["grey", "grey16", "rgb", "rgba", "grey_alpha", "opaque_rgba", "bool"]
)
def test_mask_encodings(tmp_path, kind):
    obj = np.zeros((16, 16), bool)
    obj[4:12, 6:10] = True
    grey = np.where(obj, 200, 50).astype(np.uint8)
    if kind == "grey":
        picture = grey
    elif kind == "grey16":
        picture = np.where(obj, 40000, 30000).astype(np.uint16)  # both > 127, only one > 32767
    elif kind == "rgb":
        picture = np.stack([grey, grey, np.where(obj, 140, 0).astype(np.uint8)], axis=2)
    elif kind == "rgba":
        picture = np.dstack([np.full((16, 16, 3), 255, np.uint8), np.where(obj, 255, 0)]).astype(
            np.uint8
        )
    elif kind == "grey_alpha":
        picture = np.dstack([np.zeros_like(grey), np.where(obj, 255, 0)]).astype(np.uint8)
    elif kind == "opaque_rgba":  # constant alpha: the colour decides
        picture = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    else:
        picture = obj
    path = tmp_path / "m.png"
    iio.imwrite(path, picture)
    np.testing.assert_array_equal(image_sets._read_mask(path), obj)


def test_masks_only_set_loads(tmp_path):
    root = write_set(
        tmp_path / "set", {"x": square_mask(20, 30, 5, 5, 8), "y": square_mask(25, 25, 1, 2, 12)}
    )
    loaded = load_image_set(root, size=16)
    assert loaded.images is None and loaded.keypoints is None and loaded.flow is None
    assert loaded.cameras is None and loaded.ground_truth is None and loaded.sequences == {}
    np.testing.assert_array_equal(loaded.next_index, [-1, -1])
    np.testing.assert_array_equal(loaded.source_sizes, [[20, 30], [25, 25]])
    assert loaded.masks.dtype == np.float32 and loaded.masks.shape == (2, 16, 16)
    assert 0 <= loaded.masks.min() and loaded.masks.max() <= 1


def test_progress_is_reported(tmp_path):
    root = write_set(tmp_path / "set", {"x": square_mask(20, 20, 5, 5, 8)})
    calls = []
    load_image_set(root, progress=lambda fraction, message: calls.append(fraction))
    assert calls[-1] == 1.0 and calls == sorted(calls)


# ------------------------------------------------------------------ flow


def test_flow_is_re_expressed_between_the_two_crops(tmp_path):
    height, width = 60, 70
    # Frame 2's object is bigger and elsewhere, so the crops differ in place and scale.
    masks = {
        "f1": square_mask(height, width, 10, 12, 20),
        "f2": square_mask(height, width, 30, 20, 30),
    }
    root = write_set(tmp_path / "set", masks)
    write_json(root / "sequences.json", {"clip": ["f1", "f2"]})
    # An affine flow field (bilinear sampling is exact for it): q = p + A p + b.
    a_matrix, b_vector = np.array([[0.4, 0.1], [-0.05, 0.5]]), np.array([15.0, 4.0])
    centres_y, centres_x = np.mgrid[0:height, 0:width] + 0.5
    source_points = np.stack([centres_x, centres_y], axis=-1)
    field = source_points @ a_matrix.T + b_vector
    (root / "flow").mkdir()
    np.save(root / "flow" / "f1.npy", field.astype(np.float64))
    loaded = load_image_set(root, size=16, margin=0.1)
    x0, y0, side = loaded.crops[0]
    x1, y1, side1 = loaded.crops[1]
    assert side1 != side and (x1, y1) != (x0, y0)
    for row, col in [(0, 0), (7, 9), (15, 3), (8, 8)]:
        cropped = np.array([col + 0.5, row + 0.5])  # crop pixel centre in frame 1
        source = np.array([x0, y0]) + cropped * side / 16
        target_source = source + a_matrix @ source + b_vector
        target_cropped = (target_source - (x1, y1)) * 16 / side1
        np.testing.assert_allclose(cropped + loaded.flow[0, row, col], target_cropped, atol=1e-4)
    np.testing.assert_array_equal(loaded.flow[1], 0)  # the last frame has no next frame


def make_shifted_video(root: Path, with_images: bool = True) -> Path:
    """Two 48 x 48 frames whose texture (and object) moves 2 px to the right."""
    base = texture(48, 52, seed=3)
    frame1, frame2 = base[:, 2:50], base[:, 0:48]  # frame2[x] = frame1[x - 2]
    masks = {"t0": square_mask(48, 48, 8, 8, 30), "t1": square_mask(48, 48, 10, 8, 30)}
    images = {"t0": frame1, "t1": frame2} if with_images else None
    write_set(root, masks, images)
    write_json(root / "sequences.json", {"v": ["t0", "t1"]})
    return root


def test_dis_flow_is_computed_and_cached(tmp_path, monkeypatch):
    root = make_shifted_video(tmp_path / "set")
    loaded = load_image_set(root, size=48, margin=0.3)
    x0, _, side = loaded.crops[0]
    assert side == 48 and loaded.crops[1][0] == x0 + 2  # crops move with the object
    # In crop coordinates the texture is still: the crop moved with it.
    inner = loaded.flow[0, 8:40, 8:40]
    assert abs(float(np.median(inner[..., 0]))) < 0.1
    assert abs(float(np.median(inner[..., 1]))) < 0.1
    cache = root / ".flow_cache"
    source = np.load(cache / "t0.npy")
    assert source.shape == (48, 48, 2)
    assert float(np.median(source[8:40, 8:40, 0])) == pytest.approx(2.0, abs=0.1)
    assert json.loads((cache / "t0.json").read_text())["next"] == "t1"

    # A second load reads the cache (DIS must not run) and gives the same flow.
    class RefusingDIS:
        def calc(self, *args):
            raise AssertionError("DIS should not run when the cache is fresh")

    monkeypatch.setattr(image_sets.cv2, "DISOpticalFlow_create", lambda preset: RefusingDIS())
    again = load_image_set(root, size=48, margin=0.3)
    np.testing.assert_array_equal(again.flow, loaded.flow)
    # Editing a frame makes the cache stale: DIS runs again.
    image = iio.imread(root / "images" / "t1.png")
    iio.imwrite(root / "images" / "t1.png", image[:, ::-1])
    stamp = os.stat(root / "images" / "t1.png")
    os.utime(root / "images" / "t1.png", ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="DIS should not run"):
        load_image_set(root, size=48, margin=0.3)


def test_dis_flow_on_masks_and_user_cache_when_folder_not_writable(tmp_path, monkeypatch):
    root = make_shifted_video(tmp_path / "set", with_images=False)
    (root / ".flow_cache").write_text("not a folder")  # so the set's folder cannot hold the cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    loaded = load_image_set(root, size=48, margin=0.3)
    assert loaded.flow is not None and loaded.images is None
    cached = list((tmp_path / "xdg" / "shapebench" / "flow").glob("*/t0.npy"))
    assert len(cached) == 1
    # Flat binary masks give DIS little to follow, but the object does move right, not down.
    source = np.load(cached[0])[8:38, 8:40]
    assert float(np.median(source[..., 0])) > 0.3
    assert abs(float(np.median(source[..., 1]))) < 0.1


def test_flow_none_skips_flow(tmp_path):
    root = make_shifted_video(tmp_path / "set")
    loaded = load_image_set(root, size=32, flow="none")
    assert loaded.flow is None and not (root / ".flow_cache").exists()
    np.testing.assert_array_equal(loaded.next_index, [1, -1])


def test_subset_keeps_links_between_kept_frames(tmp_path):
    masks = {f"f{k}": square_mask(20, 20, 2 + k, 3, 10) for k in range(4)}
    root = write_set(tmp_path / "set", masks)
    write_json(root / "sequences.json", {"v": ["f0", "f1", "f2", "f3"]})
    (root / "flow").mkdir()
    for k in range(3):
        np.save(root / "flow" / f"f{k}.npy", np.ones((20, 20, 2)))
    loaded = load_image_set(root, size=10)
    part = loaded.subset([3, 0, 1])
    assert part.names == ["f3", "f0", "f1"]
    np.testing.assert_array_equal(part.next_index, [-1, 2, -1])
    assert part.sequences == {"v": ["f0", "f1", "f3"]}
    np.testing.assert_array_equal(part.flow[0], 0)
    np.testing.assert_array_equal(part.flow[1], loaded.flow[0])


# ------------------------------------------------------------------ cameras


def test_cameras_stay_consistent_with_keypoints_after_cropping(tmp_path):
    template = np.random.default_rng(1).normal(size=(6, 3))
    quaternion = view_rotation(torch.tensor([30.0, 200.0]), torch.tensor([15.0, -10.0]), "z", "x")
    source_cameras = make_cameras(
        torch.tensor([9.0, 14.0], dtype=torch.float64),
        torch.tensor([[40.0, 35.0], [52.0, 30.0]], dtype=torch.float64),
        quaternion.double(),
    )
    points = project(torch.from_numpy(template)[None].expand(2, 6, 3), source_cameras)[..., :2]
    masks = {"p": square_mask(70, 90, 25, 20, 30), "q": square_mask(70, 90, 40, 10, 40)}
    root = write_set(tmp_path / "set", masks)
    np.savez(root / "cameras.npz", names=np.array(["p", "q"]), cameras=source_cameras.numpy())
    entries = {name: [[float(x), float(y), 1] for x, y in points[k]] for k, name in enumerate("pq")}
    write_json(root / "keypoints.json", {"names": [f"k{i}" for i in range(6)], "points": entries})
    loaded = load_image_set(root, size=32)
    cameras = torch.from_numpy(loaded.cameras).double()
    reprojected = project(torch.from_numpy(template)[None].expand(2, 6, 3), cameras)[..., :2]
    np.testing.assert_allclose(reprojected.numpy(), loaded.keypoints[..., :2], atol=1e-3)


# ------------------------------------------------------------------ defects


def base_set(root: Path) -> Path:
    """A valid set (two frames, images, keypoints, a video) that each defect test breaks."""
    masks = {"a": square_mask(20, 20, 4, 4, 10), "b": square_mask(20, 20, 5, 4, 10)}
    images = {"a": texture(20, 20), "b": texture(20, 20, seed=1)}
    write_set(root, masks, images)
    write_json(
        root / "keypoints.json", {"names": ["n", "t"], "points": {"a": [[5, 5, 1], [9, 9, 0]]}}
    )
    write_json(root / "sequences.json", {"v": ["a", "b"]})
    (root / "flow").mkdir()
    np.save(root / "flow" / "a.npy", np.zeros((20, 20, 2), np.float32))
    np.savez(
        root / "cameras.npz",
        names=np.array(["a", "b"]),
        cameras=np.tile([5.0, 10, 10, 1, 0, 0, 0], (2, 1)),
    )
    return root


def _remove_masks(root):
    for path in (root / "masks").iterdir():
        path.unlink()
    (root / "masks").rmdir()


def _garbage_jpg(root):
    (root / "images" / "a.png").unlink()
    (root / "images" / "a.jpg").write_bytes(b"\xff\xd8 not a JPEG")


def _empty_masks(root):
    for path in (root / "masks").iterdir():
        path.unlink()
    for path in (root / "images").iterdir():
        path.unlink()


DEFECTS = {
    "no masks folder": (_remove_masks, "set", "masks/"),
    "no masks": (_empty_masks, "masks", "at least one"),
    "empty mask": (
        lambda r: iio.imwrite(r / "masks" / "b.png", np.zeros((20, 20), np.uint8)),
        "b.png",
        "empty mask",
    ),
    "image of another size": (
        lambda r: iio.imwrite(r / "images" / "a.png", texture(20, 24)),
        "a.png",
        "size of its mask",
    ),
    "unreadable png": (
        lambda r: (r / "masks" / "a.png").write_bytes(b"\x89PNG not really"),
        "a.png",
        "cannot read",
    ),
    "unreadable jpg": (_garbage_jpg, "a.jpg", "cannot read"),
    "image without mask": (
        lambda r: iio.imwrite(r / "images" / "c.png", texture(20, 20)),
        "c.png",
        "without a mask",
    ),
    "mask without image": (
        lambda r: (r / "images" / "b.png").unlink(),
        "b.png",
        "without an image",
    ),
    "keypoints unknown image": (
        lambda r: write_json(
            r / "keypoints.json", {"names": ["n", "t"], "points": {"zz": [[1, 1, 1], [2, 2, 1]]}}
        ),
        "keypoints.json",
        "unknown image",
    ),
    "keypoints wrong length": (
        lambda r: write_json(
            r / "keypoints.json", {"names": ["n", "t"], "points": {"a": [[1, 1, 1]]}}
        ),
        "keypoints.json",
        "expected 2 points",
    ),
    "keypoint with 2 numbers": (
        lambda r: write_json(
            r / "keypoints.json", {"names": ["n", "t"], "points": {"a": [[1, 1], [2, 2, 1]]}}
        ),
        "keypoints.json",
        "points.a[0]",
    ),
    "keypoint NaN": (
        lambda r: (r / "keypoints.json").write_text(
            '{"names": ["n", "t"], "points": {"a": [[NaN, 1, 1], [2, 2, 1]]}}'
        ),
        "keypoints.json",
        "finite",
    ),
    "keypoints JSON syntax": (
        lambda r: (r / "keypoints.json").write_text(
            '{"names": ["n", "t"],\n "points": {"a": [[1, 1, 1],, ]}}'
        ),
        "keypoints.json:2",
        "invalid JSON",
    ),
    "flow NaN": (
        lambda r: np.save(r / "flow" / "a.npy", np.full((20, 20, 2), np.nan)),
        "a.npy",
        "NaN",
    ),
    "flow wrong shape": (
        lambda r: np.save(r / "flow" / "a.npy", np.zeros((20, 21, 2))),
        "a.npy",
        "(H, W, 2)",
    ),
    "flow of a last frame": (
        lambda r: np.save(r / "flow" / "b.npy", np.zeros((20, 20, 2))),
        "b.npy",
        "no next frame",
    ),
    "flow missing": (lambda r: (r / "flow" / "a.npy").unlink(), "flow", "expected flow/a.npy"),
    "sequence missing frame": (
        lambda r: write_json(r / "sequences.json", {"v": ["a", "q"]}),
        "sequences.json",
        "unknown frame 'q'",
    ),
    "frame in two videos": (
        lambda r: write_json(r / "sequences.json", {"v": ["a", "b"], "w": ["b"]}),
        "sequences.json",
        "also in video",
    ),
    "sequences JSON syntax": (
        lambda r: (r / "sequences.json").write_text('{"v": ["a", "b"]\n\n'),
        "sequences.json:",
        "invalid JSON",
    ),
    "cameras wrong shape": (
        lambda r: np.savez(r / "cameras.npz", names=np.array(["a", "b"]), cameras=np.zeros((2, 6))),
        "cameras.npz",
        "(I, 7)",
    ),
    "cameras NaN": (
        lambda r: np.savez(
            r / "cameras.npz", names=np.array(["a", "b"]), cameras=np.full((2, 7), np.nan)
        ),
        "cameras.npz",
        "NaN",
    ),
    "cameras unknown name": (
        lambda r: np.savez(
            r / "cameras.npz",
            names=np.array(["a", "z"]),
            cameras=np.tile([5.0, 1, 1, 1, 0, 0, 0], (2, 1)),
        ),
        "cameras.npz",
        "unknown image",
    ),
    "cameras missing array": (
        lambda r: np.savez(r / "cameras.npz", names=np.array(["a", "b"])),
        "cameras.npz",
        "missing cameras",
    ),
    "mask not png": (
        lambda r: (r / "masks" / "notes.txt").write_text("hi"),
        "notes.txt",
        "NAME.png",
    ),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_is_one_image_set_error_naming_the_file(tmp_path, defect):
    root = base_set(tmp_path / "set")
    load_image_set(root, size=8)  # the base set is valid
    damage, file_part, problem_part = DEFECTS[defect]
    damage(root)
    with pytest.raises(ImageSetError) as info:
        load_image_set(root, size=8)
    message = str(info.value)
    assert file_part in message, message
    assert problem_part in message, message
    assert isinstance(info.value, InputError) and "\n" not in message


def test_flow_folder_without_sequences_is_refused(tmp_path):
    root = base_set(tmp_path / "set")
    (root / "sequences.json").unlink()
    with pytest.raises(ImageSetError, match=r"flow.*sequences\.json"):
        load_image_set(root)


def test_bad_arguments(tmp_path):
    root = base_set(tmp_path / "set")
    with pytest.raises(ImageSetError, match="flow"):
        load_image_set(root, flow="sometimes")
    with pytest.raises(ImageSetError, match="size"):
        load_image_set(root, size=0)
    with pytest.raises(ImageSetError, match="image set folder"):
        load_image_set(tmp_path / "missing")


def test_save_refuses_a_non_empty_folder_that_is_not_an_image_set(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    masks = [square_mask(10, 10, 2, 2, 5)]
    with pytest.raises(ImageSetError, match="not empty"):
        save_image_set(target, ["m"], masks, overwrite=True)
    assert (target / "thesis.tex").read_text() == "precious"
    save_image_set(tmp_path / "set", ["m"], masks)
    with pytest.raises(ImageSetError, match="not empty"):
        save_image_set(tmp_path / "set", ["m"], masks)
    save_image_set(tmp_path / "set", ["n"], masks, overwrite=True)
    assert load_image_set(tmp_path / "set").names == ["n"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set", "target"]  # no leftovers


def test_save_refuses_a_sequence_of_unknown_frames(tmp_path):
    with pytest.raises(ImageSetError, match="unknown frame 'x'"):
        save_image_set(
            tmp_path / "set", ["m"], [square_mask(10, 10, 2, 2, 5)], sequences={"v": ["m", "x"]}
        )
    assert list(tmp_path.iterdir()) == []


def test_save_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(ImageSetError, match="images"):
        save_image_set(
            tmp_path / "set",
            ["m"],
            [square_mask(10, 10, 2, 2, 5)],
            images=[np.zeros((9, 10, 3), np.uint8)],
        )
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ template keypoints


def test_load_template_keypoints(tmp_path):
    path = tmp_path / "kp.json"
    path.write_text('{"nose": 7, "tail": 0, "hoof": 9}')
    names, indices = load_template_keypoints(path, 10)
    assert names == ["nose", "tail", "hoof"]
    np.testing.assert_array_equal(indices, [7, 0, 9])


@pytest.mark.skipif(
    not (TEMPLATES / "horse_keypoints.json").is_file(), reason="shared templates not present"
)
def test_load_template_keypoints_of_the_shared_horse():
    names, indices = load_template_keypoints(TEMPLATES / "horse_keypoints.json", 642)
    assert names[0] == "leftEye" and len(names) == len(indices) == 18
    assert indices.dtype == np.int64 and indices[0] == 30


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"nose": 3, "nose": 4}', "duplicate key 'nose'"),
        ('{"nose": 10}', r"\[0, 10\)"),
        ('{"nose": -1}', r"\[0, 10\)"),
        ('{"nose": 1.5}', "integer"),
        ('{"nose": true}', "integer"),
        ("[1, 2]", "JSON object"),
        ('{\n"nose": 1,\n}', r"kp\.json:3"),
    ],
)
def test_template_keypoint_defects(tmp_path, text, problem):
    path = tmp_path / "kp.json"
    path.write_text(text)
    with pytest.raises(ImageSetError, match=problem) as info:
        load_template_keypoints(path, 10)
    assert "kp.json" in str(info.value)
